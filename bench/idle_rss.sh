#!/usr/bin/env bash
# bench/idle_rss.sh [BIN_DIR] — memory of an idle dedicated-mode ztunnel after startup.
#
# Starts ztunnel in pod B of the bench topology (2 workloads in its local config, its
# certificate signed at startup by the local CA), waits for readiness, lets it sit for
# BENCH_IDLE_SECS s and reads VmRSS / VmHWM / threads / open fds from procfs. An idle stunnel
# and an idle HAProxy server endpoint are measured the same way for scale. Upstream reference: ~12 MB at 1000 rps
# (istio.io, Istio 1.24); idle footprints of 30-50 MB are reported (secondary source).
set -uo pipefail
BIN_DIR=$(cd "${1:-$(dirname "$0")/../build/bin}" 2>/dev/null && pwd || echo "${1:-}")
export BIN_DIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
IDLE=${BENCH_IDLE_SECS:-3}

bench_require
bench_setup
echo "== idle memory after startup (+${IDLE}s idle)"
if bench_start_ztunnels; then
  sleep "$IDLE"
  for side in a b; do
    pid=$ZT_A_PID; [[ $side == b ]] && pid=$ZT_B_PID
    rss=$(rss_kb "$pid"); hwm=$(hwm_kb "$pid")
    thr=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status")
    fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
    echo "  ztunnel $side: VmRSS ${rss} kB, VmHWM ${hwm} kB, threads $thr, fds $fds"
  done
  # Where the idle RSS sits: Rss per mapping (file-backed libraries, heap, anonymous: thread
  # stacks and arenas), largest first, and the anonymous total from smaps_rollup.
  echo "  ztunnel b: $(awk '/^(Rss|Anonymous|Shared_Clean|Private_Clean):/ {printf "%s %s kB  ", $1, $2}' "/proc/$ZT_B_PID/smaps_rollup")"
  awk '/^[0-9a-f]+-[0-9a-f]+ / {name = ($6 == "") ? "[anon]" : $6; sub(".*/", "", name)} /^Rss:/ {rss[name] += $2}
       END {for (n in rss) if (rss[n] >= 200) printf "%8d kB  %s\n", rss[n], n}' "/proc/$ZT_B_PID/smaps" \
    | sort -rn | head -n 12 | sed 's/^/    /'
  result "idle.ours.anon_kb=$(awk '/^Anonymous:/ {print $2}' "/proc/$ZT_B_PID/smaps_rollup")"
  result "idle.ours.rss_kb=$(rss_kb "$ZT_B_PID")"
  result "idle.ours.hwm_kb=$(hwm_kb "$ZT_B_PID")"
  result "idle.ours.threads=$(awk '/^Threads:/ {print $2}' "/proc/$ZT_B_PID/status")"
else
  result "idle.ours.rss_kb=nan"
fi
bench_start_stunnel "idle:25251:25252:7000" || exit 1
sleep 1
echo "  stunnel server: VmRSS $(rss_kb "$ST_SRV_PID") kB, VmHWM $(hwm_kb "$ST_SRV_PID") kB"
result "idle.stunnel.rss_kb=$(rss_kb "$ST_SRV_PID")"
ratio idle.ratio.rss_ours_over_stunnel "$(get_result idle.ours.rss_kb)" "$(get_result idle.stunnel.rss_kb)"
if bench_start_haproxy "idle:25253:25254:7000"; then
  sleep 1
  echo "  haproxy server: VmRSS $(rss_kb "$HAP_SRV_PID") kB, VmHWM $(hwm_kb "$HAP_SRV_PID") kB"
  result "idle.haproxy.rss_kb=$(rss_kb "$HAP_SRV_PID")"
else
  result "idle.haproxy.rss_kb=nan"
fi
ratio idle.ratio.rss_ours_over_haproxy "$(get_result idle.ours.rss_kb)" "$(get_result idle.haproxy.rss_kb)"
# The working set: ztunnel drops the clean library pages start-up touched (common/resident_trim.h),
# so its idle RSS above is what it holds, not what traffic needs. Carry connections through it
# for 2 s and read RSS again (the pages the data path uses are back), then once more after it has
# been idle for a re-trim (every 15 s without live connections). Anonymous memory does not depend
# on the trim: compare it with the stunnel server's.
echo "  stunnel server: $(awk '/^(Anonymous):/ {printf "%s %s kB", $1, $2}' "/proc/$ST_SRV_PID/smaps_rollup")"
result "idle.stunnel.anon_kb=$(awk '/^Anonymous:/ {print $2}' "/proc/$ST_SRV_PID/smaps_rollup")"
if [[ $(get_result idle.ours.rss_kb) != nan ]] && bench_ours_client 7000 25242; then
  nsx_exec a timeout 20 "$T/connbench" client "$OURS_ADDR" 8 2 1024 >"$T/rss-traffic.out" 2>&1
  echo "  ztunnel b after 2 s of connections ($(grep -o 'done=[0-9]*' "$T/rss-traffic.out")): VmRSS $(rss_kb "$ZT_B_PID") kB, $(awk '/^(Anonymous|Shared_Clean):/ {printf "%s %s kB  ", $1, $2}' "/proc/$ZT_B_PID/smaps_rollup")"
  result "idle.ours.rss_after_traffic_kb=$(rss_kb "$ZT_B_PID")"
  sleep "${BENCH_RETRIM_SECS:-17}"
  echo "  ztunnel b idle again (+${BENCH_RETRIM_SECS:-17}s): VmRSS $(rss_kb "$ZT_B_PID") kB"
  result "idle.ours.rss_idle_again_kb=$(rss_kb "$ZT_B_PID")"
fi
