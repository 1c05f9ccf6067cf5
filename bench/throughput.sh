#!/usr/bin/env bash
# bench/throughput.sh [BIN_DIR] — single-stream bulk throughput and CPU cost per GB.
#
# iperf3 (1 stream, BENCH_SECS s, BENCH_RUNS runs) from pod A to pod B through:
#   direct   app -> app
#   stunnel  stunnel client (A) => mTLS 1.3 => stunnel server (B)   (off-the-shelf floor)
#   haproxy  HAProxy client (A) => mTLS 1.3 => HAProxy server (B), TCP mode (second anchor)
#   ours     ztunnel A (capture) => HBONE => ztunnel B               (or hbone-cli => ztunnel B)
# Reports the median Gbps and, per proxy process, CPU-seconds per GB moved (utime+stime from
# /proc/PID/stat around each run, divided by the bytes iperf3's receiver counted), and the
# ratios ours/stunnel. Topology and contenders: bench/lib.sh. Needs root. ~1.5 min.
set -uo pipefail
BIN_DIR=$(cd "${1:-$(dirname "$0")/../build/bin}" 2>/dev/null && pwd || echo "${1:-}")
export BIN_DIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS=${BENCH_RUNS:-3}
SECS=${BENCH_SECS:-8}
PY=/usr/bin/python3

bench_require
bench_setup
nsx_bg b "$T/iperf3.log" iperf3 -s -B "$IP_B" -p 5201
wait_for_port b 5201 5 || { echo "iperf3 server did not start" >&2; exit 1; }
ZT_OK=1
bench_start_ztunnels || ZT_OK=0
bench_start_stunnel "iperf:25221:25222:5201" || { echo "stunnel did not start" >&2; exit 1; }
HAP_OK=1
bench_start_haproxy "iperf:25223:25224:5201" || { HAP_OK=0; echo "haproxy did not start: its column reads nan" >&2; }

# run_path NAME HOST PORT [ROLE=PID ...] — RUNS iperf3 runs; prints per-run lines and RESULTs.
run_path() {
  local name="$1" host="$2" port="$3"; shift 3
  local roles=("$@") i r
  local -A t0 f0
  : >"$T/$name.gbps"
  for r in "${roles[@]}"; do : >"$T/$name.${r%%=*}.cpg"; : >"$T/$name.${r%%=*}.fpg"; done
  for i in $(seq 1 "$RUNS"); do
    for r in "${roles[@]}"; do t0[${r%%=*}]=$(cputicks "${r#*=}"); f0[${r%%=*}]=$(minflt "${r#*=}"); done
    nsx_exec a timeout $((SECS + 20)) iperf3 -c "$host" -p "$port" -t "$SECS" -J >"$T/$name.$i.json" 2>&1
    local line
    line=$($PY - "$T/$name.$i.json" <<'EOF'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
    s = j["end"]["sum_received"]
    print("%d %.6f" % (s["bytes"], s["seconds"]))
except Exception as e:
    print("0 0")
EOF
)
    local bytes=${line% *} secs=${line#* }
    if [[ $bytes == 0 ]]; then
      echo "  $name run $i: iperf3 failed: $(head -c 300 "$T/$name.$i.json")" >&2
      continue
    fi
    local gbps cpu_desc=""
    gbps=$(awk -v b="$bytes" -v s="$secs" 'BEGIN {printf "%.2f", b*8/s/1e9}')
    echo "$gbps" >>"$T/$name.gbps"
    for r in "${roles[@]}"; do
      local role=${r%%=*} pid=${r#*=} dt cpg
      dt=$(( $(cputicks "$pid") - ${t0[$role]} ))
      cpg=$(awk -v t="$dt" -v hz="$CLK_TCK" -v b="$bytes" 'BEGIN {printf "%.3f", (t/hz)/(b/1e9)}')
      echo "$cpg" >>"$T/$name.$role.cpg"
      # Minor page faults per GB: memory churn (buffers mapped afresh) shows up here.
      local fpg
      fpg=$(awk -v f="$(( $(minflt "$pid") - ${f0[$role]} ))" -v b="$bytes" 'BEGIN {printf "%.0f", f/(b/1e9)}')
      echo "$fpg" >>"$T/$name.$role.fpg"
      cpu_desc+=" $role=$(awk -v t="$dt" -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", t/hz}')cpu-s(${cpg}/GB, ${fpg} faults/GB)"
    done
    echo "  $name run $i: ${gbps} Gbps$cpu_desc"
  done
  local med
  med=$(median <"$T/$name.gbps")
  result "throughput.$name.gbps=$med"
  for r in "${roles[@]}"; do
    result "throughput.$name.cpu_s_per_gb.${r%%=*}=$(median <"$T/$name.${r%%=*}.cpg")"
    result "throughput.$name.minor_faults_per_gb.${r%%=*}=$(median <"$T/$name.${r%%=*}.fpg")"
  done
}

echo "== throughput: iperf3 1 stream, ${SECS}s x $RUNS, pod A -> pod B (2 vCPUs shared by everything)"
run_path direct "$IP_B" 5201
run_path stunnel 127.0.0.1 25221 client="$ST_CLI_PID" server="$ST_SRV_PID"
if [[ $HAP_OK == 1 ]]; then run_path haproxy 127.0.0.1 25223 client="$HAP_CLI_PID" server="$HAP_SRV_PID"
else result "throughput.haproxy.gbps=nan"; fi
if [[ $ZT_OK == 1 ]] && bench_ours_client 5201 25241; then
  result "throughput.ours.client_mode=$ZT_CLIENT_MODE"
  run_path ours "${OURS_ADDR%:*}" "${OURS_ADDR#*:}" client="$OURS_CLI_PID" server="$ZT_B_PID"
  result "throughput.ours.ztunnel_b_hwm_kb=$(hwm_kb "$ZT_B_PID")"
  [[ $ZT_CLIENT_MODE == capture ]] && result "throughput.ours.ztunnel_a_hwm_kb=$(hwm_kb "$ZT_A_PID")"
else
  result "throughput.ours.gbps=nan"
  echo "  ours: not measured (see logs above)" >&2
fi

# Ratios (ours / stunnel): throughput >1 is better for ours; CPU per GB <1 is better for ours.
ratio throughput.ratio.gbps_ours_over_stunnel "$(get_result throughput.ours.gbps)" "$(get_result throughput.stunnel.gbps)"
ratio throughput.ratio.cpu_per_gb_client_ours_over_stunnel \
  "$(get_result throughput.ours.cpu_s_per_gb.client)" "$(get_result throughput.stunnel.cpu_s_per_gb.client)"
ratio throughput.ratio.cpu_per_gb_server_ours_over_stunnel \
  "$(get_result throughput.ours.cpu_s_per_gb.server)" "$(get_result throughput.stunnel.cpu_s_per_gb.server)"
ratio throughput.ratio.gbps_ours_over_haproxy "$(get_result throughput.ours.gbps)" "$(get_result throughput.haproxy.gbps)"
ratio throughput.ratio.cpu_per_gb_client_ours_over_haproxy \
  "$(get_result throughput.ours.cpu_s_per_gb.client)" "$(get_result throughput.haproxy.cpu_s_per_gb.client)"
ratio throughput.ratio.cpu_per_gb_server_ours_over_haproxy \
  "$(get_result throughput.ours.cpu_s_per_gb.server)" "$(get_result throughput.haproxy.cpu_s_per_gb.server)"
