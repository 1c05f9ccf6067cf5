/* bench/connbench.c — new-connections-per-second load generator and echo server.
 *
 * Role: measures how many short TCP connections per second a path sustains (connect, send
 * MSG bytes, read them echoed back, close), the shape that makes a proxy pay its per-
 * connection cost: accept + upstream connect, a TLS handshake (stunnel) or an HTTP/2 CONNECT
 * stream on a pooled connection (HBONE). Single-threaded epoll on both sides, so the tool
 * itself is not the bottleneck below ~20k conn/s on this machine.
 *
 *   connbench server IP:PORT                      echo until EOF, then close
 *   connbench client IP:PORT CONC SECONDS [MSG]   CONC sessions in flight for SECONDS
 *
 * Client output (one line): "CONNS rate=<conn/s> done=<n> errors=<n> p50_us=<..> p99_us=<..>"
 * where latency is connect() start to the echo's last byte. Bounded: stops after SECONDS
 * (plus at most 5 s for in-flight sessions, which are then counted as errors).
 * Threading: none. Invariant: every fd opened is closed before exit.
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

/* ---------------------------------------------------------------- server */

static int run_server(const char *addr) {
  struct sockaddr_in sa;
  if (parse_addr(addr, &sa)) { fprintf(stderr, "bad address %s\n", addr); return 2; }
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(ls, (struct sockaddr *)&sa, sizeof sa) || listen(ls, 4096)) { perror("bind/listen"); return 1; }
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  signal(SIGPIPE, SIG_IGN);
  printf("LISTEN %s\n", addr);
  fflush(stdout);
  char buf[65536];
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == ls) {
        for (;;) {
          int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
          if (c < 0) break;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r > 0) {
          /* Echo; small messages, so a short write is treated as the peer being gone. */
          if (write(fd, buf, (size_t)r) != r) { close(fd); break; }
          continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        close(fd); /* EOF or error: closing also removes it from epoll */
        break;
      }
    }
  }
}

/* ---------------------------------------------------------------- client */

struct sess {
  int fd;
  int state; /* 0 connecting, 1 reading echo */
  size_t got;
  double t0;
};

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int start(int ep, struct sockaddr_in *sa, struct sess *s, int idx) {
  s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (s->fd < 0) return -1;
  int one = 1;
  setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  s->state = 0;
  s->got = 0;
  s->t0 = now_s();
  int r = connect(s->fd, (struct sockaddr *)sa, sizeof *sa);
  if (r < 0 && errno != EINPROGRESS) { close(s->fd); s->fd = -1; return -1; }
  struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)idx};
  epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
  return 0;
}

static int run_client(const char *addr, int conc, double secs, size_t msg) {
  struct sockaddr_in sa;
  if (parse_addr(addr, &sa) || conc < 1 || conc > 4096 || secs <= 0 || msg < 1 || msg > 65536) {
    fprintf(stderr, "bad arguments\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  char *out = malloc(msg), buf[65536];
  memset(out, 'x', msg);
  struct sess *ss = calloc((size_t)conc, sizeof *ss);
  size_t lat_cap = 1 << 20, nlat = 0;
  double *lat = malloc(lat_cap * sizeof *lat);
  int ep = epoll_create1(0);
  long done = 0, errors = 0;
  double t_start = now_s(), t_end = t_start + secs, hard_end = t_end + 5;
  int active = 0;
  for (int i = 0; i < conc; i++) {
    if (start(ep, &sa, &ss[i], i) == 0) active++; else { errors++; ss[i].fd = -1; }
  }
  struct epoll_event evs[512];
  while (active > 0) {
    double t = now_s();
    if (t > hard_end) break;
    int n = epoll_wait(ep, evs, 512, 100);
    for (int k = 0; k < n; k++) {
      int i = (int)evs[k].data.u32;
      struct sess *s = &ss[i];
      int fail = 0, fin = 0;
      if (s->state == 0) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err || (evs[k].events & (EPOLLERR | EPOLLHUP))) fail = 1;
        else if (write(s->fd, out, msg) != (ssize_t)msg) fail = 1;
        else {
          s->state = 1;
          struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
          epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
        }
      } else {
        for (;;) {
          ssize_t r = read(s->fd, buf, sizeof buf);
          if (r > 0) { s->got += (size_t)r; if (s->got >= msg) { fin = 1; break; } continue; }
          if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
          fail = 1; /* EOF before the whole echo, or an error */
          break;
        }
      }
      if (fail || fin) {
        close(s->fd);
        s->fd = -1;
        active--;
        if (fin) {
          done++;
          if (nlat < lat_cap) lat[nlat++] = now_s() - s->t0;
        } else {
          errors++;
        }
        if (now_s() < t_end) {
          if (start(ep, &sa, s, i) == 0) active++; else errors++;
        }
      }
    }
  }
  double elapsed = now_s() - t_start;
  if (elapsed > secs) elapsed = secs; /* the drain tail is not part of the rate window */
  for (int i = 0; i < conc; i++) if (ss[i].fd >= 0) { close(ss[i].fd); errors++; }
  qsort(lat, nlat, sizeof *lat, cmp_d);
  double p50 = nlat ? lat[nlat / 2] : 0, p99 = nlat ? lat[(nlat * 99) / 100] : 0;
  printf("CONNS rate=%.0f done=%ld errors=%ld p50_us=%.0f p99_us=%.0f\n", (double)done / elapsed, done,
         errors, p50 * 1e6, p99 * 1e6);
  free(out); free(ss); free(lat);
  close(ep);
  return errors > done / 100 ? 1 : 0; /* more than 1% failed sessions is a failed run */
}

int main(int argc, char **argv) {
  if (argc >= 3 && !strcmp(argv[1], "server")) return run_server(argv[2]);
  if (argc >= 5 && !strcmp(argv[1], "client"))
    return run_client(argv[2], atoi(argv[3]), atof(argv[4]), argc > 5 ? (size_t)atol(argv[5]) : 64);
  fprintf(stderr, "usage: connbench server IP:PORT | connbench client IP:PORT CONC SECONDS [MSG]\n");
  return 2;
}
