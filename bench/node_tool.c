/* bench/node_tool.c — the two programs bench/node_run.sh runs inside its pods.
 *
 *   node_tool serve IP:PORT
 *       HTTP/1.1 origin: answers every request (any method/path, no body expected) with
 *       200 and a fixed 1024-byte body, keep-alive, pipelining-safe. Single-threaded epoll,
 *       so it costs a few µs per request and holds as many idle connections as RLIMIT_NOFILE
 *       allows (the caller raises it).
 *
 *   node_tool hold IP:PORT N HOLD_SECONDS [INFLIGHT] [LINGER_SECONDS]
 *       Opens N TCP connections (at most INFLIGHT, default 200, still being set up at once),
 *       sends one GET on each and reads the full 1 KiB response, so a connection only counts
 *       as open once it has carried a request end to end (a local accept by a proxy is not
 *       enough). Prints "OPEN ok=.. failed=.. secs=.." and flushes, keeps every connection
 *       idle for HOLD_SECONDS while watching for any that the far side closes, then sends a
 *       second GET on every survivor and prints
 *       "CHECK alive=.. dropped_while_idle=.. failed_check=..", keeps the connections open
 *       LINGER_SECONDS more (default 0; lets the caller sample memory after the second
 *       request), then closes them all. Exit 0 only when all N opened and all N answered the
 *       second request.
 *
 * Threading: none. Invariants: every phase has a deadline (open 90 s, check 60 s), so the
 * program always ends; every fd is closed before exit.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BODY_LEN 1024

#include "bench_util.h"

static size_t max_fds(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 65536;
  return (size_t)rl.rlim_cur;
}

/* ---------------------------------------------------------------- server */

struct sconn {
  char in[8192];
  size_t in_len;
  char *out;      /* pending response bytes (only when a write would block) */
  size_t out_len, out_off, out_cap;
};

static char g_resp[256 + BODY_LEN];
static size_t g_resp_len;

static void sconn_close(int ep, struct sconn **tab, int fd) {
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
  if (tab[fd]) {
    free(tab[fd]->out);
    free(tab[fd]);
    tab[fd] = NULL;
  }
}

/* Appends n copies of the response to c->out after trying to write them directly. */
static int sconn_respond(int ep, int fd, struct sconn *c, int n) {
  for (int i = 0; i < n; i++) {
    if (c->out_len == c->out_off) {
      ssize_t w = send(fd, g_resp, g_resp_len, MSG_NOSIGNAL);
      if (w == (ssize_t)g_resp_len) continue;
      if (w < 0 && errno != EAGAIN) return -1;
      if (w < 0) w = 0;
      c->out_len = c->out_off = 0;
      if (c->out_cap < g_resp_len) {
        c->out = realloc(c->out, g_resp_len * 4);
        c->out_cap = g_resp_len * 4;
      }
      memcpy(c->out, g_resp + w, g_resp_len - (size_t)w);
      c->out_len = g_resp_len - (size_t)w;
    } else {
      if (c->out_len + g_resp_len > c->out_cap) {
        c->out_cap = (c->out_len + g_resp_len) * 2;
        c->out = realloc(c->out, c->out_cap);
      }
      memcpy(c->out + c->out_len, g_resp, g_resp_len);
      c->out_len += g_resp_len;
    }
  }
  struct epoll_event ev = {.events = EPOLLIN | (c->out_len > c->out_off ? EPOLLOUT : 0), .data.fd = fd};
  epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
  return 0;
}

static int run_server(const char *addr) {
  struct sockaddr_in sa;
  if (parse_addr(addr, &sa)) { fprintf(stderr, "bad address %s\n", addr); return 2; }
  char body[BODY_LEN];
  memset(body, 'x', sizeof body);
  g_resp_len = (size_t)snprintf(g_resp, sizeof g_resp,
                                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", BODY_LEN);
  memcpy(g_resp + g_resp_len, body, BODY_LEN);
  g_resp_len += BODY_LEN;

  size_t nfd = max_fds();
  struct sconn **tab = calloc(nfd, sizeof *tab);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(ls, (struct sockaddr *)&sa, sizeof sa) || listen(ls, 4096)) { perror("bind/listen"); return 1; }
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  fprintf(stderr, "serving %s (fd limit %zu)\n", addr, nfd);
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == ls) {
        for (;;) {
          int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
          if (c < 0) break;
          if ((size_t)c >= nfd) { close(c); continue; }
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          tab[c] = calloc(1, sizeof **tab);
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      struct sconn *c = tab[fd];
      if (!c) continue;
      if (evs[i].events & EPOLLOUT) {
        while (c->out_off < c->out_len) {
          ssize_t w = send(fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
          if (w <= 0) break;
          c->out_off += (size_t)w;
        }
        if (c->out_off == c->out_len) {
          c->out_off = c->out_len = 0;
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = fd};
          epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
        } else if (errno != EAGAIN) {
          sconn_close(ep, tab, fd);
          continue;
        }
      }
      if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        ssize_t r = recv(fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN)) { sconn_close(ep, tab, fd); continue; }
        if (r < 0) continue;
        c->in_len += (size_t)r;
        /* Count complete request heads; keep the unfinished tail. */
        int reqs = 0;
        size_t start = 0;
        for (;;) {
          char *e = memmem(c->in + start, c->in_len - start, "\r\n\r\n", 4);
          if (!e) break;
          reqs++;
          start = (size_t)(e - c->in) + 4;
        }
        memmove(c->in, c->in + start, c->in_len - start);
        c->in_len -= start;
        if (c->in_len == sizeof c->in) { sconn_close(ep, tab, fd); continue; } /* oversized head */
        if (reqs && sconn_respond(ep, fd, c, reqs)) sconn_close(ep, tab, fd);
      }
    }
  }
}

/* ---------------------------------------------------------------- hold client */

enum { C_FREE, C_CONNECTING, C_WAITING, C_IDLE, C_DEAD };

struct hconn {
  int fd;
  int state;
  int hdr_len;    /* bytes of the response head collected so far */
  int body_left;  /* -1 until the head is complete */
  char hdr[384];
};

static const char k_req[] = "GET /hold HTTP/1.1\r\nHost: bench\r\nUser-Agent: node_tool\r\n\r\n";

/* Feeds received bytes to the response parser; returns 1 when the response is complete,
 * 0 when more is needed, -1 on a malformed response. */
static int hconn_feed(struct hconn *h, const char *p, size_t n) {
  while (n > 0) {
    if (h->body_left < 0) {
      if (h->hdr_len >= (int)sizeof h->hdr - 1) return -1;
      h->hdr[h->hdr_len++] = *p++;
      n--;
      h->hdr[h->hdr_len] = 0;
      if (h->hdr_len >= 4 && memcmp(h->hdr + h->hdr_len - 4, "\r\n\r\n", 4) == 0) {
        if (strncmp(h->hdr, "HTTP/1.1 200", 12) != 0) return -1;
        const char *cl = strcasestr(h->hdr, "Content-Length:");
        if (!cl) return -1;
        h->body_left = atoi(cl + 15);
        if (h->body_left == 0) return 1;
      }
    } else {
      size_t take = n < (size_t)h->body_left ? n : (size_t)h->body_left;
      h->body_left -= (int)take;
      p += take;
      n -= take;
      if (h->body_left == 0) return n == 0 ? 1 : -1;
    }
  }
  return h->body_left == 0 ? 1 : 0;
}

static void hconn_reset_parser(struct hconn *h) {
  h->hdr_len = 0;
  h->body_left = -1;
}

static void hconn_kill(int ep, struct hconn *h) {
  if (h->fd >= 0) {
    epoll_ctl(ep, EPOLL_CTL_DEL, h->fd, NULL);
    close(h->fd);
  }
  h->fd = -1;
  h->state = C_DEAD;
}

/* Reads whatever is available; returns 1 complete, 0 need more, -1 dead. */
static int hconn_read(struct hconn *h) {
  char buf[4096];
  for (;;) {
    ssize_t r = recv(h->fd, buf, sizeof buf, 0);
    if (r == 0) return -1;
    if (r < 0) return errno == EAGAIN ? 0 : -1;
    int st = hconn_feed(h, buf, (size_t)r);
    if (st != 0) return st;
  }
}

static int run_hold(const char *addr, int total, double hold_s, int inflight_max, double linger_s) {
  struct sockaddr_in sa;
  if (parse_addr(addr, &sa)) { fprintf(stderr, "bad address %s\n", addr); return 2; }
  signal(SIGPIPE, SIG_IGN);
  struct hconn *cs = calloc((size_t)total, sizeof *cs);
  for (int i = 0; i < total; i++) { cs[i].fd = -1; cs[i].state = C_FREE; }
  int ep = epoll_create1(0);
  struct epoll_event evs[512];
  int one = 1;
  int next = 0, inflight = 0, ok = 0, failed = 0;
  char first_err[160] = "";
  double t0 = now_s(), deadline = t0 + 90;

  /* Phase 1: open + first request. */
  while ((ok + failed) < total && now_s() < deadline) {
    while (inflight < inflight_max && next < total) {
      struct hconn *h = &cs[next];
      h->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      if (h->fd < 0) {
        if (!first_err[0]) snprintf(first_err, sizeof first_err, "socket #%d: %s", next, strerror(errno));
        h->state = C_DEAD; failed++; next++; continue;
      }
      setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      /* The client closes first, so a second round meets 10k TIME_WAITs of its own towards
       * the same ip:port; without a per-socket range the kernel rescans the even ports on
       * every connect (seconds of the client's own CPU). The proxies' cost is what we time,
       * so the client walks both parities in one pass (IP_LOCAL_PORT_RANGE = 51, Linux 6.3+;
       * ignored where unknown). */
      if (getenv("NODE_TOOL_PLAIN_CONNECT") == NULL) {
        uint32_t whole = (65535u << 16) | 1u;
        setsockopt(h->fd, IPPROTO_IP, 51, &whole, sizeof whole);
      }
      hconn_reset_parser(h);
      int r = connect(h->fd, (struct sockaddr *)&sa, sizeof sa);
      if (r < 0 && errno != EINPROGRESS) {
        if (!first_err[0]) snprintf(first_err, sizeof first_err, "connect #%d: %s", next, strerror(errno));
        close(h->fd); h->fd = -1; h->state = C_DEAD; failed++; next++; continue;
      }
      h->state = C_CONNECTING;
      struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = (uint32_t)next};
      epoll_ctl(ep, EPOLL_CTL_ADD, h->fd, &ev);
      inflight++;
      next++;
    }
    int n = epoll_wait(ep, evs, 512, 200);
    for (int i = 0; i < n; i++) {
      int idx = (int)evs[i].data.u32;
      struct hconn *h = &cs[idx];
      if (h->state == C_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err || send(h->fd, k_req, sizeof k_req - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof k_req - 1)) {
          if (!first_err[0]) snprintf(first_err, sizeof first_err, "connect/send #%d: %s", idx, strerror(err ? err : errno));
          hconn_kill(ep, h); failed++; inflight--; continue;
        }
        h->state = C_WAITING;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)idx};
        epoll_ctl(ep, EPOLL_CTL_MOD, h->fd, &ev);
        continue;
      }
      if (h->state == C_WAITING) {
        int st = hconn_read(h);
        if (st == 0) continue;
        inflight--;
        if (st < 0) {
          if (!first_err[0]) snprintf(first_err, sizeof first_err, "response #%d: closed or malformed", idx);
          hconn_kill(ep, h); failed++; continue;
        }
        h->state = C_IDLE;
        ok++;
        continue;
      }
      if (h->state == C_IDLE) {  /* an idle connection became readable: data or close */
        char b[64];
        ssize_t r = recv(h->fd, b, sizeof b, 0);
        if (r <= 0 && !(r < 0 && errno == EAGAIN)) {
          if (!first_err[0]) snprintf(first_err, sizeof first_err, "idle #%d closed by peer during open phase", idx);
          hconn_kill(ep, h); ok--; failed++;
        }
      }
    }
  }
  for (int i = 0; i < total; i++)
    if (cs[i].state == C_CONNECTING || cs[i].state == C_WAITING || cs[i].state == C_FREE) {
      if (!first_err[0]) snprintf(first_err, sizeof first_err, "#%d timed out in the open phase", i);
      if (cs[i].state != C_FREE) hconn_kill(ep, &cs[i]);
      cs[i].state = C_DEAD;
      failed++;
    }
  printf("OPEN ok=%d failed=%d secs=%.2f%s%s\n", ok, failed, now_s() - t0, first_err[0] ? " first_error=" : "", first_err);
  fflush(stdout);

  /* Phase 2: hold idle; any readable idle connection was closed or got stray data. */
  int dropped = 0;
  double hold_end = now_s() + hold_s;
  while (now_s() < hold_end) {
    int ms = (int)((hold_end - now_s()) * 1000) + 1;
    int n = epoll_wait(ep, evs, 512, ms);
    for (int i = 0; i < n; i++) {
      struct hconn *h = &cs[evs[i].data.u32];
      if (h->state != C_IDLE) continue;
      char b[64];
      ssize_t r = recv(h->fd, b, sizeof b, 0);
      if (r < 0 && errno == EAGAIN) continue;
      hconn_kill(ep, h);
      dropped++;
    }
  }
  printf("HELD secs=%.1f dropped_while_idle=%d\n", hold_s, dropped);
  fflush(stdout);

  /* Phase 3: a second request on every survivor. */
  int waiting = 0, alive = 0, failed_check = 0;
  for (int i = 0; i < total; i++) {
    struct hconn *h = &cs[i];
    if (h->state != C_IDLE) continue;
    hconn_reset_parser(h);
    if (send(h->fd, k_req, sizeof k_req - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof k_req - 1)) {
      hconn_kill(ep, h); failed_check++; continue;
    }
    h->state = C_WAITING;
    waiting++;
  }
  double check_end = now_s() + 60;
  while (waiting > 0 && now_s() < check_end) {
    int n = epoll_wait(ep, evs, 512, 200);
    for (int i = 0; i < n; i++) {
      struct hconn *h = &cs[evs[i].data.u32];
      if (h->state != C_WAITING) continue;
      int st = hconn_read(h);
      if (st == 0) continue;
      waiting--;
      if (st < 0) { hconn_kill(ep, h); failed_check++; continue; }
      h->state = C_IDLE;
      alive++;
    }
  }
  failed_check += waiting;
  printf("CHECK alive=%d dropped_while_idle=%d failed_check=%d\n", alive, dropped, failed_check);
  fflush(stdout);
  if (linger_s > 0) {
    struct timespec ts = {.tv_sec = (time_t)linger_s, .tv_nsec = (long)((linger_s - (double)(time_t)linger_s) * 1e9)};
    nanosleep(&ts, NULL);
  }
  for (int i = 0; i < total; i++)
    if (cs[i].fd >= 0) close(cs[i].fd);
  free(cs);
  return (ok == total && alive == total) ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "serve") == 0) return run_server(argv[2]);
  if (argc >= 5 && strcmp(argv[1], "hold") == 0) {
    int inflight = argc >= 6 ? atoi(argv[5]) : 200;
    double linger = argc >= 7 ? atof(argv[6]) : 0;
    return run_hold(argv[2], atoi(argv[3]), atof(argv[4]), inflight > 0 ? inflight : 200, linger);
  }
  fprintf(stderr,
          "usage: %s serve IP:PORT\n"
          "       %s hold IP:PORT N HOLD_SECONDS [INFLIGHT] [LINGER_SECONDS]\n", argv[0], argv[0]);
  return 2;
}
