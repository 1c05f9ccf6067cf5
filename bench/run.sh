#!/usr/bin/env bash
# bench/run.sh [BIN_DIR] — every issue-11 figure in one run, with both anchors, and one table.
#
# Role: repeats the dedicated-mode benchmarks BENCH_REPEAT times (default 3) — throughput.sh
# (iperf3, 1 stream), connections.sh (connbench), idle_rss.sh — each repeat on fresh
# namespaces with one run per contender (direct, stunnel pair, HAProxy pair, ours, interleaved
# within the repeat), then bench/node_run.sh once with BENCH_REPEAT rounds of each of its
# phases (node mode: fixed-rate latency and CPU per request, 10k idle tunnels and the churn
# and memory after they close, throughput; stunnel AND HAProxy beside the ztunnels). Prints a
# per-metric table (medians) and the issue-11 table of bench/report.py: every row, the median
# of ours / stunnel / haproxy, the median of the per-repeat ratios, the goal, met or missed.
#
# Knobs: BENCH_REPEAT (3), BENCH_NODE (1; 0 skips node_run.sh), BENCH_OUT (directory kept with
# results.txt, issue_rows.txt and the raw logs; default a temp dir, path printed),
# BENCH_QUICK=1: 1 repeat, 2 s per run, 1,000 held connections — only to check that the
# scripts work, never for figures. The other knobs of each script pass through (bench/lib.sh,
# node_run.sh header). Needs root; ~12 min at the defaults (each script has its own timeout).
# Figures on this 2-vCPU VM vary ±10-20 % run to run: compare ratios taken in the same run.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN_DIR=$(cd "${1:-$HERE/../build/bin}" 2>/dev/null && pwd || echo "${1:-$HERE/../build/bin}")
OUT=${BENCH_OUT:-$(mktemp -d /tmp/zt-bench-out.XXXXXX)}
mkdir -p "$OUT"
if [[ ${BENCH_QUICK:-0} == 1 ]]; then
  REPEAT=${BENCH_REPEAT:-1}
  export BENCH_SECS=${BENCH_SECS:-2} BENCH_CONN_SECS=${BENCH_CONN_SECS:-1} BENCH_IDLE_SECS=${BENCH_IDLE_SECS:-1}
else
  REPEAT=${BENCH_REPEAT:-3}
fi
export BENCH_QUICK=${BENCH_QUICK:-0}

if [[ $(id -u) != 0 ]]; then echo "bench/run.sh needs root (network namespaces)" >&2; exit 1; fi
start=$(date +%s)
rc=0
: >"$OUT/results.txt"
: >"$OUT/issue_rows.txt"
# issue_rows REP — maps one repeat's RESULT keys onto report.py's rows (rep<N>.<metric>.<who>).
issue_rows() {
  local rep="$1" who
  for who in ours stunnel haproxy; do
    awk -F= -v rep="$rep" -v w="$who" '
      $1 == "throughput." w ".gbps"                  {print "rep" rep ".tp_gbps." w "=" $2}
      $1 == "throughput." w ".cpu_s_per_gb.client"   {print "rep" rep ".cpu_gb_client." w "=" $2}
      $1 == "throughput." w ".cpu_s_per_gb.server"   {print "rep" rep ".cpu_gb_server." w "=" $2}
      $1 == "conns." w ".rate"                       {print "rep" rep ".conn_rate." w "=" $2}
      $1 == "idle." w ".rss_kb" && $2 != "nan"       {printf "rep%s.idle_rss_mb.%s=%.2f\n", rep, w, $2 / 1000}
    ' "$OUT/rep$rep.results"
  done >>"$OUT/issue_rows.txt"
}
for rep in $(seq 1 "$REPEAT"); do
  : >"$OUT/rep$rep.results"
  for b in throughput connections idle_rss; do
    echo "### repeat $rep/$REPEAT: $b (load $(cut -d' ' -f1 /proc/loadavg))"
    BENCH_RUNS=1 timeout 300 bash "$HERE/$b.sh" "$BIN_DIR" 2>&1 | tee "$OUT/$b.rep$rep.log" | grep -v '^RESULT'
    [[ ${PIPESTATUS[0]} == 0 ]] || rc=1
    grep -h '^RESULT ' "$OUT/$b.rep$rep.log" | sed 's/^RESULT //' >>"$OUT/rep$rep.results"
  done
  sed "s/^/rep$rep./" "$OUT/rep$rep.results" >>"$OUT/results.txt"
  issue_rows "$rep"
done

if [[ ${BENCH_NODE:-1} == 1 ]]; then
  echo "### node mode: bench/node_run.sh, $REPEAT round(s) per phase"
  NODE_BENCH_REPEAT=$REPEAT NODE_BENCH_OUT="$OUT/node" timeout 900 bash "$HERE/node_run.sh" "$BIN_DIR" 2>&1 \
    | tee "$OUT/node_run.log"
  [[ ${PIPESTATUS[0]} == 0 ]] || rc=1
  cat "$OUT/node/issue_rows.txt" >>"$OUT/issue_rows.txt" 2>/dev/null || { echo "node_run.sh left no issue_rows.txt" >&2; rc=1; }
fi

# v KEY — median over the repeats of a dedicated-mode RESULT key ("n/a" when absent).
v() {
  grep -hE "^rep[0-9]+\.$1=" "$OUT/results.txt" | cut -d= -f2- | grep -v nan \
    | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}
row() { printf '%-38s %10s %10s %10s %10s\n' "$@"; }
echo
echo "=== dedicated mode, details: median over $REPEAT repeat(s) ($(nproc) vCPU, load at end $(cut -d' ' -f1-3 /proc/loadavg))"
row "metric" "direct" "stunnel" "haproxy" "ours"
row "throughput, 1 stream (Gbps)" "$(v throughput.direct.gbps)" "$(v throughput.stunnel.gbps)" "$(v throughput.haproxy.gbps)" "$(v throughput.ours.gbps)"
row "CPU-s per GB, client-side proxy" "-" "$(v throughput.stunnel.cpu_s_per_gb.client)" "$(v throughput.haproxy.cpu_s_per_gb.client)" "$(v throughput.ours.cpu_s_per_gb.client)"
row "CPU-s per GB, server-side proxy" "-" "$(v throughput.stunnel.cpu_s_per_gb.server)" "$(v throughput.haproxy.cpu_s_per_gb.server)" "$(v throughput.ours.cpu_s_per_gb.server)"
row "new connections per second" "$(v conns.direct.rate)" "$(v conns.stunnel.rate)" "$(v conns.haproxy.rate)" "$(v conns.ours.rate)"
row "connection latency p50 (us)" "$(v conns.direct.p50_us)" "$(v conns.stunnel.p50_us)" "$(v conns.haproxy.p50_us)" "$(v conns.ours.p50_us)"
row "connection latency p99 (us)" "$(v conns.direct.p99_us)" "$(v conns.stunnel.p99_us)" "$(v conns.haproxy.p99_us)" "$(v conns.ours.p99_us)"
row "CPU us per connection, client side" "-" "$(v conns.stunnel.cpu_us_per_conn.client)" "$(v conns.haproxy.cpu_us_per_conn.client)" "$(v conns.ours.cpu_us_per_conn.client)"
row "CPU us per connection, server side" "-" "$(v conns.stunnel.cpu_us_per_conn.server)" "$(v conns.haproxy.cpu_us_per_conn.server)" "$(v conns.ours.cpu_us_per_conn.server)"
row "idle RSS (kB)" "-" "$(v idle.stunnel.rss_kb)" "$(v idle.haproxy.rss_kb)" "$(v idle.ours.rss_kb)"
row "peak RSS after throughput, server (kB)" "-" "-" "-" "$(v throughput.ours.ztunnel_b_hwm_kb)"
echo "ours client side: $(grep -h 'throughput.ours.client_mode=' "$OUT/results.txt" | cut -d= -f2 | sort -u | tr '\n' ' ')"
echo
python3 "$HERE/report.py" "$OUT/issue_rows.txt"
[[ ${BENCH_QUICK} == 1 ]] && echo "BENCH_QUICK=1: sizes cut down to check the scripts; these are not figures."
echo "raw logs, results.txt and issue_rows.txt in $OUT; took $(( $(date +%s) - start ))s"
exit $rc
