#!/usr/bin/env bash
# tests/82-impairment/suite.sh BIN_DIR — matrix row R8: network impairment between a ztunnel
# pair. Needs root; ~2 min. Release build only (label "matrix"). netem is not available here,
# so: tc tbf (rate limit) on pod b's link, iptables `statistic --mode random` drop (1 %, 5 %) on
# pod b's eth0, and a full black hole.
#
#   zt-r8-a 10.99.0.1  in-pod rules + dedicated ztunnel; conn_load.py rate (20 conn/s, 10 s timeout)
#   zt-r8-b 10.99.0.2  in-pod rules + dedicated ztunnel; connbench echo :9000
#
# Pass: under each impairment every request completes or fails within its own timeout (the
# tool accounts for every one it started; none hangs), and with tbf / 1 % drop all succeed;
# with 5 % drop at least 90 %. Black hole: ztunnel a's PING keepalive (10 s interval, 20 s
# timeout) closes the pooled HBONE connection (istio_hbone_timeouts_total{phase="ping"}) within
# 60 s (upstream bar: 40 s; the figure is printed), and traffic recovers once the hole is gone. Figures: p99 and counts per phase.
# shellcheck disable=SC2154,SC1091
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ZT_ROOT=$(cd "$HERE/../.." && pwd)
BIN_DIR=$(cd "${1:-$ZT_ROOT/build/bin}" 2>/dev/null && pwd || echo "${1:-$ZT_ROOT/build/bin}")
ZT_BIN="$BIN_DIR/ztunnel"
LOAD_PY="$ZT_ROOT/tests/80-held-connections/conn_load.py"

source "$ZT_ROOT/tests/lib/netns.sh"
source "$ZT_ROOT/tests/30-e2e/helpers.sh"

source "$ZT_ROOT/tests/lib/matrix_pair.sh"
mp_setup r8 tc
pass "ztunnel pair ready"

# phase NAME MIN_OK_PERCENT — 20 new connections/s for 10 s, each with a 10 s timeout.
phase() {
  local name="$1" min_pct="$2" line started ok failed tout
  timeout 60 ip netns exec "$(nsx_ns a)" "$PY" "$LOAD_PY" rate 10.99.0.2 9000 --rate 20 --seconds 10 --timeout 10 \
    >"$T/$name.out" 2>&1
  line=$(grep '^RATE' "$T/$name.out")
  echo "figures: $name: ${line:-no result}"
  started=$(sed -n 's/.* started=\([0-9]*\).*/\1/p' <<<"$line")
  ok=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' <<<"$line")
  failed=$(sed -n 's/.* failed=\([0-9]*\).*/\1/p' <<<"$line")
  tout=$(sed -n 's/.* timed_out=\([0-9]*\).*/\1/p' <<<"$line")
  if [[ -n $started && $started -gt 0 && $((ok + failed + tout)) == "$started" ]]; then
    pass "$name: every one of $started requests completed or failed within its 10 s timeout"
  else
    fail "$name: every request completed or failed within its timeout" "$(cat "$T/$name.out")"
    return
  fi
  if [[ $((ok * 100)) -ge $((started * min_pct)) ]]; then pass "$name: $ok/$started succeeded (>= $min_pct %)"
  else fail "$name: $ok/$started succeeded (wanted >= $min_pct %)" "$(grep '^ERROR' "$T/$name.out")"; fi
}

phase baseline 100
# Rate limit on b's link (node side of the veth: traffic towards b).
ip -n "$(nsx_ns node)" link show v-b >/dev/null 2>&1 || abort "node-side veth v-b exists"
ip netns exec "$(nsx_ns node)" tc qdisc add dev v-b root tbf rate 2mbit burst 16kb latency 300ms \
  || abort "tc tbf on v-b"
nsx_exec b tc qdisc add dev eth0 root tbf rate 2mbit burst 16kb latency 300ms || abort "tc tbf on b eth0"
phase "tbf-2mbit" 100
ip netns exec "$(nsx_ns node)" tc qdisc del dev v-b root
nsx_exec b tc qdisc del dev eth0 root

drop() {  # drop PROBABILITY add|del
  local op=-A; [[ $2 == del ]] && op=-D
  nsx_exec b iptables "$op" INPUT -i eth0 -m statistic --mode random --probability "$1" -j DROP &&
    nsx_exec b iptables "$op" OUTPUT -o eth0 -m statistic --mode random --probability "$1" -j DROP
}
drop 0.01 add || abort "iptables random drop 1 %"
phase "drop-1pct" 100
drop 0.01 del
drop 0.05 add || abort "iptables random drop 5 %"
phase "drop-5pct" 90
drop 0.05 del

# ---- black hole: keepalive must notice ------------------------------------------------------
pings0=$(zt_metrics a | awk '$1 == "istio_hbone_timeouts_total{phase=\"ping\"}" {print $2}')
nsx_exec b iptables -I INPUT -i eth0 -j DROP && nsx_exec b iptables -I OUTPUT -o eth0 -j DROP || abort "black hole"
t0=$(date +%s); detected=""
for _ in $(seq 1 120); do
  n=$(zt_metrics a | awk '$1 == "istio_hbone_timeouts_total{phase=\"ping\"}" {print $2}')
  if [[ -n $n && $n -gt ${pings0:-0} ]]; then detected=$(( $(date +%s) - t0 )); break; fi
  sleep 0.5
done
nsx_exec b iptables -D INPUT -i eth0 -j DROP; nsx_exec b iptables -D OUTPUT -o eth0 -j DROP
if [[ -n $detected ]]; then
  echo "figures: black-holed peer detected by PING keepalive after ${detected} s"
  pass "keepalive closed the black-holed HBONE connection (istio_hbone_timeouts_total{phase=\"ping\"} rose)"
else
  fail "keepalive closed the black-holed HBONE connection within 60 s" "$(grep -i ping "$T/zt-a.log" | tail -n 5)"
fi
phase "after-black-hole" 100
check "both ztunnels alive" bash -c "kill -0 $ZT_PID_a && kill -0 $ZT_PID_b"
[[ $NSX_FAILED -gt 0 ]] && { NSX_KEEP_TMP=1; echo "logs kept in $T"; }
summary
