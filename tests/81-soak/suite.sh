#!/usr/bin/env bash
# tests/81-soak/suite.sh BIN_DIR — matrix row R3 (CI tier, short): bulk traffic plus 300 new
# connections per second for 3 minutes through a ztunnel pair. Needs root; ~3.5 min. Release
# build only (label "matrix").
#
#   zt-r3-a 10.99.0.1  in-pod rules + dedicated ztunnel; iperf3 client (100 Mbit/s) and
#                      conn_load.py rate (300 conn/s, 64-byte echo each, 10 s timeout)
#   zt-r3-b 10.99.0.2  in-pod rules + dedicated ztunnel; iperf3 server :5201, connbench echo :9000
#
# Pass: 0 failed or timed-out connections, iperf3 completes, RSS of each ztunnel grows < 10 %
# between the end of a 30 s warm-up and the end of the run (a leak grows; RSS may fall: ztunnel
# drops its clean library pages when idle, common/resident_trim.h), no fd leak (fds back to baseline +
# pooled HBONE connections). Figures: conn/s achieved, p99, iperf3 rate, RSS and fds.
# R3_SECONDS overrides the duration (default 180).
# shellcheck disable=SC2154,SC1091
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ZT_ROOT=$(cd "$HERE/../.." && pwd)
BIN_DIR=$(cd "${1:-$ZT_ROOT/build/bin}" 2>/dev/null && pwd || echo "${1:-$ZT_ROOT/build/bin}")
ZT_BIN="$BIN_DIR/ztunnel"
LOAD_PY="$ZT_ROOT/tests/80-held-connections/conn_load.py"
SECS=${R3_SECONDS:-180}

source "$ZT_ROOT/tests/lib/netns.sh"
source "$ZT_ROOT/tests/30-e2e/helpers.sh"

source "$ZT_ROOT/tests/lib/matrix_pair.sh"
mp_before_start() {
  local p
  for p in a b; do
    # Connection churn: 300/s for minutes would exhaust ephemeral ports in TIME_WAIT otherwise.
    nsx_exec "$p" sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="10000 65000"
  done
  nsx_bg b "$T/iperf-server.log" iperf3 -s -p 5201
}
mp_setup r3 iperf3
mp_raise_fd_limit
wait_for_port b 5201 5 || abort "iperf3 server in b"
pass "ztunnel pair ready"

PA=$(mp_pid a); PB=$(mp_pid b)
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
anon() { awk '/^Anonymous:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
fds() { find "/proc/$1/fd" -maxdepth 1 -type l 2>/dev/null | wc -l; }
fd_a0=$(fds "$PA"); fd_b0=$(fds "$PB")

timeout $((SECS + 60)) ip netns exec "$(nsx_ns a)" iperf3 -c 10.99.0.2 -p 5201 -t "$SECS" -b 100M -J \
  >"$T/iperf.json" 2>"$T/iperf.err" &
BULK=$!
timeout $((SECS + 60)) ip netns exec "$(nsx_ns a)" "$PY" "$LOAD_PY" rate 10.99.0.2 9000 --rate 300 \
  --seconds "$SECS" --timeout 10 >"$T/rate.out" 2>&1 &
CHURN=$!
sleep 30
rss_a_w=$(rss "$PA"); rss_b_w=$(rss "$PB")
anon_a_w=$(anon "$PA"); anon_b_w=$(anon "$PB")
while kill -0 "$CHURN" 2>/dev/null || kill -0 "$BULK" 2>/dev/null; do sleep 2; done
wait "$CHURN"; wait "$BULK"; bulk_rc=$?
rss_a_e=$(rss "$PA"); rss_b_e=$(rss "$PB")
anon_a_e=$(anon "$PA"); anon_b_e=$(anon "$PB")
line=$(grep '^RATE' "$T/rate.out")
echo "figures: churn: ${line:-no result}"
bps=$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(int(d["end"]["sum_received"]["bits_per_second"]))' "$T/iperf.json" 2>/dev/null)
echo "figures: bulk: iperf3 ${bps:-?} bit/s received over ${SECS}s"
if [[ $line == *" failed=0 timed_out=0 "* ]] && [[ $line =~ started=([0-9]+)\ ok=([0-9]+) ]] \
   && [[ ${BASH_REMATCH[1]} == "${BASH_REMATCH[2]}" && ${BASH_REMATCH[1]} -gt 0 ]]; then
  pass "300 conn/s for ${SECS}s: every connection succeeded (${BASH_REMATCH[2]})"
else
  fail "300 conn/s for ${SECS}s with 0 failures" "$(cat "$T/rate.out")"
fi
[[ $bulk_rc == 0 && -n $bps && $bps -gt 0 ]] && pass "bulk iperf3 stream completed through the tunnel" \
  || fail "bulk iperf3 stream completed" "rc=$bulk_rc $(tail -n 5 "$T/iperf.err")"
# Growth, signed: a leak only grows; the idle trim only shrinks (file pages come back on use).
drift() { awk -v w="$1" -v e="$2" 'BEGIN { printf "%.1f", (e - w) / w * 100 }'; }
da=$(drift "$rss_a_w" "$rss_a_e"); db=$(drift "$rss_b_w" "$rss_b_e")
echo "figures: RSS a ${rss_a_w} -> ${rss_a_e} KiB (${da} %), b ${rss_b_w} -> ${rss_b_e} KiB (${db} %) after the 30 s warm-up"
if awk -v a="$da" -v b="$db" 'BEGIN { exit !(a < 10 && b < 10) }'; then pass "RSS growth < 10 % on both ztunnels"
else fail "RSS growth < 10 % on both ztunnels" "a ${da} %, b ${db} %"; fi
# The same on anonymous memory alone (heap, stacks: where a leak lives), which the trim of file
# pages does not move.
aa=$(drift "$anon_a_w" "$anon_a_e"); ab=$(drift "$anon_b_w" "$anon_b_e")
echo "figures: anonymous a ${anon_a_w} -> ${anon_a_e} KiB (${aa} %), b ${anon_b_w} -> ${anon_b_e} KiB (${ab} %)"
if awk -v a="$aa" -v b="$ab" 'BEGIN { exit !(a < 10 && b < 10) }'; then pass "anonymous memory growth < 10 % on both ztunnels"
else fail "anonymous memory growth < 10 % on both ztunnels" "a ${aa} %, b ${ab} %"; fi
back=0
for _ in $(seq 1 150); do
  fa=$(fds "$PA"); fb=$(fds "$PB")
  if [[ $fa -le $((fd_a0 + 8)) && $fb -le $((fd_b0 + 8)) ]]; then back=1; break; fi
  sleep 0.2
done
echo "figures: fds a ${fd_a0} -> ${fa}, b ${fd_b0} -> ${fb}"
[[ $back == 1 ]] && pass "no fd leak (fds back to baseline + pooled connections)" \
  || fail "no fd leak" "a $fa (baseline $fd_a0), b $fb (baseline $fd_b0)"
check "both ztunnels alive" bash -c "kill -0 $PA && kill -0 $PB"
[[ $NSX_FAILED -gt 0 ]] && { NSX_KEEP_TMP=1; echo "logs kept in $T"; }
summary
