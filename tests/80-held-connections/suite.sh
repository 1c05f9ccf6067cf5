#!/usr/bin/env bash
# tests/80-held-connections/suite.sh BIN_DIR — matrix row R1: 5,000 connections held for 2
# minutes through a ztunnel pair. Needs root; ~3.5 min. Release build only (label "matrix").
#
#   zt-r1-a 10.99.0.1  in-pod rules + dedicated ztunnel (r1/a/a); conn_load.py hold
#   zt-r1-b 10.99.0.2  in-pod rules + dedicated ztunnel (r1/b/b); connbench echo server :9000
#
# Every connection goes a:15001 -> HBONE (pooled, up to 100 streams per connection) -> b:15008
# -> echo, sends a numbered 16-byte message every 10 s and checks its echo. Pass: 0 failed
# connections, 0 bad echoes; every app socket returned after close (fd count of both ztunnels
# back to its idle baseline plus the pooled HBONE connections, which may stay until
# POOL_UNUSED_RELEASE_TIMEOUT). Figures: ramp, RSS per ztunnel before/peak/after, fds.
# R1_CONNS / R1_SECONDS override the size (defaults 5000 / 120).
# shellcheck disable=SC2154,SC1091
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ZT_ROOT=$(cd "$HERE/../.." && pwd)
BIN_DIR=$(cd "${1:-$ZT_ROOT/build/bin}" 2>/dev/null && pwd || echo "${1:-$ZT_ROOT/build/bin}")
ZT_BIN="$BIN_DIR/ztunnel"
CONNS=${R1_CONNS:-5000}
SECS=${R1_SECONDS:-120}

source "$ZT_ROOT/tests/lib/netns.sh"
source "$ZT_ROOT/tests/30-e2e/helpers.sh"

source "$ZT_ROOT/tests/lib/matrix_pair.sh"
mp_setup r1
# 5,000 client sockets in ztunnel a, as many app sockets in b, plus the load tool's own.
mp_raise_fd_limit
pass "ztunnel pair ready, echo server up"

PA=$(mp_pid a); PB=$(mp_pid b)
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { find "/proc/$1/fd" -maxdepth 1 -type l 2>/dev/null | wc -l; }
# One warm-up connection so both sides have their pooled HBONE connection and certificates.
nsx_exec a "$PY" "$HERE/conn_load.py" rate 10.99.0.2 9000 --rate 5 --seconds 1 >"$T/warm.out" 2>&1
grep -q 'failed=0 timed_out=0' "$T/warm.out" || abort "warm-up connections through the pair" "$(cat "$T/warm.out")"
rss_a0=$(rss "$PA"); rss_b0=$(rss "$PB"); fd_a0=$(fds "$PA"); fd_b0=$(fds "$PB")

timeout $((SECS + 240)) ip netns exec "$(nsx_ns a)" "$PY" "$HERE/conn_load.py" hold 10.99.0.2 9000 \
  --conns "$CONNS" --seconds "$SECS" --every 10 >"$T/hold.out" 2>&1 &
LOAD=$!
peak_a=$rss_a0; peak_b=$rss_b0; fd_peak_a=$fd_a0; fd_peak_b=$fd_b0
while kill -0 "$LOAD" 2>/dev/null; do
  r=$(rss "$PA"); [[ $r -gt $peak_a ]] && peak_a=$r
  r=$(rss "$PB"); [[ $r -gt $peak_b ]] && peak_b=$r
  f=$(fds "$PA"); [[ $f -gt $fd_peak_a ]] && fd_peak_a=$f
  f=$(fds "$PB"); [[ $f -gt $fd_peak_b ]] && fd_peak_b=$f
  sleep 2
done
wait "$LOAD"
echo "figures: $(grep -E '^(RAMP|HOLD)' "$T/hold.out" | tr '\n' ' ')"
grep '^ERROR' "$T/hold.out" | head -n 5 | sed 's/^/  /'
line=$(grep '^HOLD' "$T/hold.out")
if [[ $line == "HOLD conns=$CONNS up=$CONNS failed=0 "* && $line == *" bad=0 "* ]]; then
  pass "$CONNS connections held ${SECS}s through the pair: 0 failures, every echo right"
else
  fail "$CONNS connections held ${SECS}s with 0 failures" "$(cat "$T/hold.out")"
fi
msgs=$(sed -n 's/.* msgs=\([0-9]*\).*/\1/p' <<<"$line")
min_msgs=$((CONNS * (SECS / 10)))
if [[ ${msgs:-0} -ge $min_msgs ]]; then pass "traffic flowed on every held connection ($msgs messages >= $min_msgs)"
else fail "traffic flowed on every held connection" "msgs=${msgs:-?}, wanted >= $min_msgs"; fi

# fds back: every client/app socket closed; what may stay is the idle baseline plus pooled
# HBONE connections (at most CONNS/100 + a few; released after POOL_UNUSED_RELEASE_TIMEOUT).
pool_slack=$((CONNS / 100 + 8))
back=0
for _ in $(seq 1 150); do
  fa=$(fds "$PA"); fb=$(fds "$PB")
  if [[ $fa -le $((fd_a0 + pool_slack)) && $fb -le $((fd_b0 + pool_slack)) ]]; then back=1; break; fi
  sleep 0.2
done
echo "figures: fds a ${fd_a0} -> peak ${fd_peak_a} -> ${fa}; b ${fd_b0} -> peak ${fd_peak_b} -> ${fb} (pool slack ${pool_slack})"
[[ $back == 1 ]] && pass "fds returned within 30 s (a $fa, b $fb; baseline $fd_a0/$fd_b0 + pooled connections)" \
  || fail "fds returned within 30 s" "a $fa (baseline $fd_a0), b $fb (baseline $fd_b0), slack $pool_slack"
rss_a1=$(rss "$PA"); rss_b1=$(rss "$PB")
echo "figures: RSS a ${rss_a0} -> peak ${peak_a} -> ${rss_a1} KiB; b ${rss_b0} -> peak ${peak_b} -> ${rss_b1} KiB"
echo "figures: per held connection: a $(( (peak_a - rss_a0) * 1024 / CONNS )) B, b $(( (peak_b - rss_b0) * 1024 / CONNS )) B"
if [[ $((peak_a - rss_a0)) -lt $((128 * 1024)) && $((peak_b - rss_b0)) -lt $((128 * 1024)) ]]; then
  pass "RSS growth under $CONNS held connections < 128 MiB per ztunnel"
else
  fail "RSS growth < 128 MiB per ztunnel" "a +$(((peak_a - rss_a0) / 1024)) MiB, b +$(((peak_b - rss_b0) / 1024)) MiB"
fi
check "both ztunnels alive" bash -c "kill -0 $PA && kill -0 $PB"
[[ $NSX_FAILED -gt 0 ]] && { NSX_KEEP_TMP=1; echo "logs kept in $T"; }
summary
