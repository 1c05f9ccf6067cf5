/* bench_util.h - what the C load tools (connbench.c, node_tool.c) share: a monotonic clock in
 * seconds and "a.b.c.d:port" parsing. Header-only (static functions), so each tool still
 * builds with a single `gcc -O2 tool.c`. */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* IPv4 "host:port" into *sa; -1 when malformed. */
static inline int parse_addr(const char *s, struct sockaddr_in *sa) {
  char host[64];
  const char *c = strrchr(s, ':');
  if (!c || (size_t)(c - s) >= sizeof host) return -1;
  memcpy(host, s, (size_t)(c - s));
  host[c - s] = 0;
  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  sa->sin_port = htons((uint16_t)atoi(c + 1));
  return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

#endif
