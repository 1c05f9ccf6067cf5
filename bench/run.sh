#!/usr/bin/env bash
# bench/run.sh [BIN_DIR] — runs every benchmark and prints one summary table with ratios.
#
# throughput.sh (~1.5 min), connections.sh (~1 min), idle_rss.sh (~15 s); each builds and
# tears down its own namespaces (tests/lib/netns.sh). Raw per-run lines go to stderr-free
# logs under BENCH_OUT (default a temp dir, path printed). Needs root. Figures on this 2-vCPU
# VM vary ±10-20% run to run; compare ratios taken in the same run, not absolute numbers
# across runs or machines (see docs/benchmarks.md).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN_DIR=$(cd "${1:-$HERE/../build/bin}" 2>/dev/null && pwd || echo "${1:-$HERE/../build/bin}")
OUT=${BENCH_OUT:-$(mktemp -d /tmp/zt-bench-out.XXXXXX)}
mkdir -p "$OUT"

if [[ $(id -u) != 0 ]]; then echo "bench/run.sh needs root (network namespaces)" >&2; exit 1; fi
start=$(date +%s)
rc=0
for b in throughput connections idle_rss; do
  echo "### $b"
  timeout 300 bash "$HERE/$b.sh" "$BIN_DIR" 2>&1 | tee "$OUT/$b.log" | grep -v '^RESULT'
  [[ ${PIPESTATUS[0]} == 0 ]] || rc=1
done
grep -h '^RESULT ' "$OUT"/*.log | sed 's/^RESULT //' >"$OUT/results.txt"

v() { local x; x=$(grep -h "^$1=" "$OUT/results.txt" | tail -n1 | cut -d= -f2-); echo "${x:-n/a}"; }
row() { printf '%-38s %10s %10s %10s %10s %9s %9s\n' "$@"; }
echo
echo "=== summary ($(nproc) vCPU, load at end $(cut -d' ' -f1-3 /proc/loadavg); ours client side: $(v throughput.ours.client_mode))"
row "metric" "direct" "stunnel" "haproxy" "ours" "ours/st" "ours/hap"
row "throughput, 1 stream (Gbps)" "$(v throughput.direct.gbps)" "$(v throughput.stunnel.gbps)" "$(v throughput.haproxy.gbps)" "$(v throughput.ours.gbps)" "$(v throughput.ratio.gbps_ours_over_stunnel)" "$(v throughput.ratio.gbps_ours_over_haproxy)"
row "CPU-s per GB, client-side proxy" "-" "$(v throughput.stunnel.cpu_s_per_gb.client)" "$(v throughput.haproxy.cpu_s_per_gb.client)" "$(v throughput.ours.cpu_s_per_gb.client)" "$(v throughput.ratio.cpu_per_gb_client_ours_over_stunnel)" "$(v throughput.ratio.cpu_per_gb_client_ours_over_haproxy)"
row "CPU-s per GB, server-side proxy" "-" "$(v throughput.stunnel.cpu_s_per_gb.server)" "$(v throughput.haproxy.cpu_s_per_gb.server)" "$(v throughput.ours.cpu_s_per_gb.server)" "$(v throughput.ratio.cpu_per_gb_server_ours_over_stunnel)" "$(v throughput.ratio.cpu_per_gb_server_ours_over_haproxy)"
row "new connections per second" "$(v conns.direct.rate)" "$(v conns.stunnel.rate)" "$(v conns.haproxy.rate)" "$(v conns.ours.rate)" "$(v conns.ratio.rate_ours_over_stunnel)" "$(v conns.ratio.rate_ours_over_haproxy)"
row "connection latency p50 (us)" "$(v conns.direct.p50_us)" "$(v conns.stunnel.p50_us)" "$(v conns.haproxy.p50_us)" "$(v conns.ours.p50_us)" "-" "-"
row "connection latency p99 (us)" "$(v conns.direct.p99_us)" "$(v conns.stunnel.p99_us)" "$(v conns.haproxy.p99_us)" "$(v conns.ours.p99_us)" "-" "-"
row "CPU us per connection, client side" "-" "$(v conns.stunnel.cpu_us_per_conn.client)" "$(v conns.haproxy.cpu_us_per_conn.client)" "$(v conns.ours.cpu_us_per_conn.client)" "$(v conns.ratio.cpu_per_conn_client_ours_over_stunnel)" "$(v conns.ratio.cpu_per_conn_client_ours_over_haproxy)"
row "CPU us per connection, server side" "-" "$(v conns.stunnel.cpu_us_per_conn.server)" "$(v conns.haproxy.cpu_us_per_conn.server)" "$(v conns.ours.cpu_us_per_conn.server)" "$(v conns.ratio.cpu_per_conn_server_ours_over_stunnel)" "$(v conns.ratio.cpu_per_conn_server_ours_over_haproxy)"
row "idle RSS (kB)" "-" "$(v idle.stunnel.rss_kb)" "$(v idle.haproxy.rss_kb)" "$(v idle.ours.rss_kb)" "$(v idle.ratio.rss_ours_over_stunnel)" "$(v idle.ratio.rss_ours_over_haproxy)"
row "peak RSS after throughput, server (kB)" "-" "-" "-" "$(v throughput.ours.ztunnel_b_hwm_kb)" "-" "-"
echo "raw logs and results.txt in $OUT; took $(( $(date +%s) - start ))s"
exit $rc
