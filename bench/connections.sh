#!/usr/bin/env bash
# bench/connections.sh [BIN_DIR] — new connections per second (connect, 64-byte echo, close).
#
# bench/connbench.c (epoll, BENCH_CONC sessions in flight, BENCH_CONN_SECS s, BENCH_RUNS
# runs) from pod A to an epoll echo server in pod B through:
#   direct   app -> app
#   stunnel  a full mTLS 1.3 handshake per connection (stunnel has no pooling)
#   haproxy  the same with an HAProxy pair in TCP mode (TLS session resumption by default)
#   ours     ztunnel A => pooled HBONE (one CONNECT stream per connection) => ztunnel B
# Reports the median rate, latency p50/p99 of the median run, CPU-microseconds per
# connection for each proxy process, and ratios ours/stunnel. Needs root. ~1 min.
set -uo pipefail
BIN_DIR=$(cd "${1:-$(dirname "$0")/../build/bin}" 2>/dev/null && pwd || echo "${1:-}")
export BIN_DIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS=${BENCH_RUNS:-3}
SECS=${BENCH_CONN_SECS:-5}
CONC=${BENCH_CONC:-32}

bench_require
bench_setup
ZT_OK=1
bench_start_ztunnels || ZT_OK=0
bench_start_stunnel "conn:25231:25232:7000" || { echo "stunnel did not start" >&2; exit 1; }
HAP_OK=1
bench_start_haproxy "conn:25233:25234:7000" || { HAP_OK=0; echo "haproxy did not start: its column reads nan" >&2; }

# run_path NAME ADDR [ROLE=PID ...]
run_path() {
  local name="$1" addr="$2"; shift 2
  local roles=("$@") i r
  local -A t0
  : >"$T/$name.rate"
  for r in "${roles[@]}"; do : >"$T/$name.${r%%=*}.us"; done
  for i in $(seq 1 "$RUNS"); do
    for r in "${roles[@]}"; do t0[${r%%=*}]=$(cputicks "${r#*=}"); done
    nsx_exec a timeout $((SECS + 15)) "$T/connbench" client "$addr" "$CONC" "$SECS" 64 >"$T/$name.$i.out" 2>&1
    local out done_n rate
    out=$(grep '^CONNS' "$T/$name.$i.out")
    if [[ -z $out ]]; then echo "  $name run $i: failed: $(head -c 300 "$T/$name.$i.out")" >&2; continue; fi
    rate=$(sed -E 's/.*rate=([0-9]+).*/\1/' <<<"$out")
    done_n=$(sed -E 's/.*done=([0-9]+).*/\1/' <<<"$out")
    echo "$rate $out" >>"$T/$name.rate"
    local cpu_desc=""
    for r in "${roles[@]}"; do
      local role=${r%%=*} pid=${r#*=} dt us
      dt=$(( $(cputicks "$pid") - ${t0[$role]} ))
      us=$(awk -v t="$dt" -v hz="$CLK_TCK" -v n="$done_n" 'BEGIN {if (n==0) print "nan"; else printf "%.0f", (t/hz)/n*1e6}')
      echo "$us" >>"$T/$name.$role.us"
      cpu_desc+=" $role=${us}us/conn"
    done
    # Leak watch (upstream ztunnel#1630/#1694): memory and fds of every proxy after each run.
    for r in "${roles[@]}"; do
      local pid=${r#*=}
      cpu_desc+=" ${r%%=*}_rss=$(rss_kb "$pid")kB/$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)fds"
    done
    echo "  $name run $i: $out$cpu_desc"
  done
  local med medline
  med=$(cut -d' ' -f1 "$T/$name.rate" | median)
  medline=$(sort -n "$T/$name.rate" | awk -v m="$med" '$1>=m {print; exit}')
  result "conns.$name.rate=$med"
  result "conns.$name.p50_us=$(sed -nE 's/.*p50_us=([0-9]+).*/\1/p' <<<"$medline")"
  result "conns.$name.p99_us=$(sed -nE 's/.*p99_us=([0-9]+).*/\1/p' <<<"$medline")"
  result "conns.$name.errors=$(sed -nE 's/.*errors=([0-9]+).*/\1/p' <<<"$medline")"
  for r in "${roles[@]}"; do
    result "conns.$name.cpu_us_per_conn.${r%%=*}=$(median <"$T/$name.${r%%=*}.us")"
  done
}

echo "== connections: connbench $CONC in flight, ${SECS}s x $RUNS, 64-byte echo per connection"
run_path direct "$IP_B:7000"
run_path stunnel 127.0.0.1:25231 client="$ST_CLI_PID" server="$ST_SRV_PID"
if [[ $HAP_OK == 1 ]]; then run_path haproxy 127.0.0.1:25233 client="$HAP_CLI_PID" server="$HAP_SRV_PID"
else result "conns.haproxy.rate=nan"; fi
if [[ $ZT_OK == 1 ]] && bench_ours_client 7000 25242; then
  result "conns.ours.client_mode=$ZT_CLIENT_MODE"
  run_path ours "$OURS_ADDR" client="$OURS_CLI_PID" server="$ZT_B_PID"
else
  result "conns.ours.rate=nan"
  echo "  ours: not measured (see logs above)" >&2
fi
ratio conns.ratio.rate_ours_over_stunnel "$(get_result conns.ours.rate)" "$(get_result conns.stunnel.rate)"
ratio conns.ratio.cpu_per_conn_client_ours_over_stunnel \
  "$(get_result conns.ours.cpu_us_per_conn.client)" "$(get_result conns.stunnel.cpu_us_per_conn.client)"
ratio conns.ratio.cpu_per_conn_server_ours_over_stunnel \
  "$(get_result conns.ours.cpu_us_per_conn.server)" "$(get_result conns.stunnel.cpu_us_per_conn.server)"
ratio conns.ratio.rate_ours_over_haproxy "$(get_result conns.ours.rate)" "$(get_result conns.haproxy.rate)"
ratio conns.ratio.cpu_per_conn_client_ours_over_haproxy \
  "$(get_result conns.ours.cpu_us_per_conn.client)" "$(get_result conns.haproxy.cpu_us_per_conn.client)"
ratio conns.ratio.cpu_per_conn_server_ours_over_haproxy \
  "$(get_result conns.ours.cpu_us_per_conn.server)" "$(get_result conns.haproxy.cpu_us_per_conn.server)"
