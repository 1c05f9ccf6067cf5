#!/usr/bin/env bash
# tests/40-inpod-zds/suite.sh BIN_DIR — ZDS interop and the ambient-cni node agent. Root needed
# (network namespaces, iptables inside them); fails, never skips. Takes ~10 s.
#
# Part A: zds_peer.py, an independent Python ZDS node agent (hand-rolled protobuf), drives
#         zds-probe (the real ZdsClient) through hello, snapshot, add/keep/del and a series of
#         malformed messages.
# Part B: `ambient-cni serve` with zds-probe as ztunnel, and the CLI on pod netns made here:
#         agent-down and no-ztunnel errors, rules inside the netns (identical to
#         scripts/inpod-iptables.sh), ADD/DEL seen by ztunnel, list, bad input, replay to a
#         restarted ztunnel, newest-ztunnel add and broadcast del, rules gone after remove,
#         state surviving an agent restart.
# Every case prints PASS/FAIL; the last line is "N passed, N failed"; exit 1 on any failure.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ZT_ROOT=$(cd "$HERE/../.." && pwd)
BIN_DIR=$(cd "${1:-$ZT_ROOT/build/bin}" 2>/dev/null && pwd || echo "${1:-$ZT_ROOT/build/bin}")
CNI="$BIN_DIR/ambient-cni"
PROBE="$BIN_DIR/zds-probe"
PY="${ZT_PY:-python3}"

# shellcheck source=../lib/netns.sh
source "$ZT_ROOT/tests/lib/netns.sh"

require_root
for b in "$CNI" "$PROBE"; do
  if [[ ! -x $b ]]; then
    fail "binary present: $b"
    summary
    exit 1
  fi
done

nsx_init inpod-zds
T="$NSX_TMP"
for p in a b c d ref; do nsx_add_netns "$(nsx_ns "$p")"; done
NS_A=/var/run/netns/$(nsx_ns a)
NS_B=/var/run/netns/$(nsx_ns b)
NS_C=/var/run/netns/$(nsx_ns c)
NS_D=/var/run/netns/$(nsx_ns d)
ino() { stat -L -c %i "$1"; }

# ---- Part A: independent Python peer vs ZdsClient --------------------------------------------
"$PY" "$HERE/zds_peer.py" --socket "$T/peer.sock" --probe "$PROBE" \
  --netns-a "$NS_A" --netns-b "$NS_B" --log "$T/peer-probe.log" >"$T/peer.out" 2>&1
peer_rc=$?
while IFS= read -r line; do
  case "$line" in
    PASS:*) pass "zds-peer: ${line#PASS: }" ;;
    FAIL:*) fail "zds-peer: ${line#FAIL: }" ;;
  esac
done <"$T/peer.out"
if [[ $peer_rc != 0 ]] && ! grep -q '^FAIL:' "$T/peer.out"; then
  fail "zds-peer ran to completion (exit $peer_rc)" "$(tail -n 20 "$T/peer.out")"
fi

# ---- Part B: ambient-cni agent + zds-probe as ztunnel ----------------------------------------
SOCK="$T/zds.sock"
STATE="$T/state"
cni() { "$CNI" "$@" --socket "$SOCK"; }

# Background helpers: own process group, remembered for the cleanup trap.
AGENT_PID=""
start_agent() {
  setsid "$CNI" serve --socket "$SOCK" --state-dir "$STATE" >>"$T/agent.log" 2>&1 </dev/null &
  AGENT_PID=$!
  NSX_PIDS+=("$AGENT_PID")
  for _ in $(seq 1 50); do [[ -S $SOCK.ctl ]] && return 0; sleep 0.1; done
  return 1
}
start_probe() {  # start_probe LOGFILE -> PROBE_PID
  setsid "$PROBE" --socket "$SOCK" >"$1" 2>&1 </dev/null &
  PROBE_PID=$!
  NSX_PIDS+=("$PROBE_PID")
}
ipt_all() { nsx_exec "$1" iptables-save 2>/dev/null; nsx_exec "$1" ip6tables-save 2>/dev/null; }
# Our rules as a comparable text: table headers and ISTIO lines, no comments/counters.
rules_of() {
  { nsx_exec "$1" iptables-save; echo "--v6"; nsx_exec "$1" ip6tables-save; } 2>/dev/null \
    | grep -E '^\*|ISTIO|^--v6' | sed -E 's/\[[0-9]+:[0-9]+\]//'
}

# B1: CLI without an agent.
out=$(cni add --netns "$NS_A" --uid uid-a --name pod-a --namespace default --service-account sa-a 2>&1)
rc=$?
if [[ $rc != 0 && $out == *"ambient-cni serve"* ]]; then pass "add without a running agent fails clearly"
else fail "add without a running agent fails clearly" "rc=$rc: $out"; fi

if ! start_agent; then
  fail "agent started" "$(cat "$T/agent.log")"
  summary; exit 1
fi
pass "agent started (control socket $SOCK.ctl)"

# B2: no ztunnel connected -> refused, netns untouched.
out=$(cni add --netns "$NS_A" --uid uid-a --name pod-a --namespace default --service-account sa-a 2>&1)
rc=$?
if [[ $rc != 0 && $out == *"no ztunnel connection"* ]] && ! ipt_all a | contains ISTIO; then
  pass "add with no ztunnel connected fails with 'no ztunnel connection', netns untouched"
else fail "add with no ztunnel connected fails with 'no ztunnel connection'" "rc=$rc: $out"; fi

# B3: ztunnel (probe) connects; empty snapshot.
start_probe "$T/probe1.log"
PROBE1=$PROBE_PID
if wait_for_file_match "$T/probe1.log" '^SNAPSHOT$' 5; then pass "ztunnel connected and got an empty snapshot"
else fail "ztunnel connected and got an empty snapshot" "$(cat "$T/probe1.log")"; fi

# B4: add pod a.
out=$(cni add --netns "$NS_A" --uid uid-a --name pod-a --namespace default --service-account sa-a 2>&1)
rc=$?
check "add pod a succeeds" test "$rc" = 0
if wait_for_file_match "$T/probe1.log" "^ADD uid-a default/pod-a sa=sa-a netns=$(ino "$NS_A")\$" 5; then
  pass "ztunnel got AddWorkload with pod a's identity and netns"
else fail "ztunnel got AddWorkload with pod a's identity and netns" "$out; $(cat "$T/probe1.log")"; fi

saved=$(nsx_exec a iptables-save)
ok=1; msg=""
for want in \
  '-A PREROUTING -j ISTIO_PRERT' '-A OUTPUT -j ISTIO_OUTPUT' \
  '-A ISTIO_PRERT -m mark --mark 0x539/0xfff -j CONNMARK --set-xmark 0x111/0xfff' \
  '-A ISTIO_PRERT -s 169.254.7.127/32 -p tcp -j ACCEPT' \
  '-A ISTIO_PRERT ! -d 127.0.0.1/32 -p tcp -m tcp ! --dport 15008 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15006' \
  '-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001' \
  '-m udp --dport 53 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15053'; do
  grep -qF -- "$want" <<<"$saved" || { ok=0; msg+="missing: $want; "; }
done
[[ $(nsx_exec a ip rule show | grep -c 'fwmark 0x111/0xfff lookup 100') == 1 ]] || { ok=0; msg+="ip rule fwmark 0x111/0xfff lookup 100 missing; "; }
nsx_exec a ip route show table 100 | contains '^local default dev lo' || { ok=0; msg+="table 100 local route missing; "; }
if [[ $ok == 1 ]]; then pass "in-pod rules installed inside pod a's netns"
else fail "in-pod rules installed inside pod a's netns" "$msg"; fi

# Same rule set as the reference script, v4 and v6.
nsx_exec ref "$ZT_ROOT/scripts/inpod-iptables.sh" install >"$T/ref.log" 2>&1
ref_n=$(rules_of ref | grep -c -- '-A ')
if [[ $ref_n -gt 20 ]] && diff <(rules_of ref | sort) <(rules_of a | sort) >"$T/rules.diff"; then
  pass "rules identical to scripts/inpod-iptables.sh ($ref_n lines, iptables + ip6tables)"
else fail "rules identical to scripts/inpod-iptables.sh" "reference rules: $ref_n; $(cat "$T/rules.diff" "$T/ref.log")"; fi
once=$(ipt_all a | grep -c -- '-A ')
cni add --netns "$NS_A" --uid uid-a --name pod-a --namespace default --service-account sa-a >/dev/null 2>&1
twice=$(ipt_all a | grep -c -- '-A ')
rules_n=$(nsx_exec a ip rule show | grep -c 'lookup 100')
if [[ $once == "$twice" && $rules_n == 1 ]]; then pass "re-adding a pod is idempotent ($once rules, 1 ip rule)"
else fail "re-adding a pod is idempotent" "once=$once twice=$twice ip-rules=$rules_n"; fi

# B5: list.
out=$(cni list 2>&1)
if grep -Eq "^uid-a +pod-a +default +sa-a +$NS_A\$" <<<"$out"; then pass "list shows pod a"
else fail "list shows pod a" "$out"; fi

# B6: ztunnel refuses a pod -> error printed, nothing left behind.
out=$(cni add --netns "$NS_B" --uid fail-b --name pod-b --namespace default --service-account sa-b 2>&1)
rc=$?
if [[ $rc != 0 && $out == *"probe: refusing fail-b"* ]] && ! ipt_all b | contains ISTIO \
   && ! cni list 2>/dev/null | contains fail-b; then
  pass "ztunnel's Ack error is printed; failed add rolled back (no rules, not listed)"
else fail "ztunnel's Ack error is printed; failed add rolled back" "rc=$rc: $out; $(ipt_all b | grep ISTIO | head -3)"; fi

# B7: bad input.
out=$(cni add --netns "$T/no-such-netns" --uid x --name x --namespace x --service-account x 2>&1); rc=$?
if [[ $rc != 0 && $out == *"cannot open netns"* ]]; then pass "add with a missing netns path fails clearly"
else fail "add with a missing netns path fails clearly" "rc=$rc: $out"; fi
out=$(cni add --netns /etc/hostname --uid x --name x --namespace x --service-account x 2>&1); rc=$?
if [[ $rc != 0 && $out == *"not a network namespace"* ]]; then pass "add with a non-netns path fails clearly"
else fail "add with a non-netns path fails clearly" "rc=$rc: $out"; fi
out=$(cni add --netns "$NS_B" --uid x 2>&1); rc=$?
if [[ $rc == 2 && $out == *"--name is required"* ]]; then pass "add with missing flags is a usage error"
else fail "add with missing flags is a usage error" "rc=$rc: $out"; fi
out=$(cni remove --uid no-such-pod 2>&1); rc=$?
if [[ $rc != 0 && $out == *"unknown pod uid"* ]]; then pass "remove of an unknown uid fails clearly"
else fail "remove of an unknown uid fails clearly" "rc=$rc: $out"; fi

# B8: ztunnel restart -> replay.
nsx_stop "$PROBE1" 3 || true
start_probe "$T/probe2.log"
PROBE2=$PROBE_PID
if wait_for_file_match "$T/probe2.log" '^SNAPSHOT uid-a$' 5 \
   && grep -q "^ADD uid-a default/pod-a sa=sa-a netns=$(ino "$NS_A")\$" "$T/probe2.log"; then
  pass "restarted ztunnel gets the pod replayed, then SnapshotSent"
else fail "restarted ztunnel gets the pod replayed, then SnapshotSent" "$(cat "$T/probe2.log")"; fi

# B9: two ztunnels (upgrade overlap): add goes to the newest only, del to both.
start_probe "$T/probe3.log"
PROBE3=$PROBE_PID
wait_for_file_match "$T/probe3.log" '^SNAPSHOT' 5
cni add --netns "$NS_C" --uid uid-c --name pod-c --namespace default --service-account sa-c >"$T/add-c.log" 2>&1
if wait_for_file_match "$T/probe3.log" '^ADD uid-c ' 5 && ! grep -q '^ADD uid-c ' "$T/probe2.log"; then
  pass "add goes to the newest ztunnel only"
else fail "add goes to the newest ztunnel only" "$(cat "$T/add-c.log"; grep ADD "$T"/probe[23].log)"; fi
cni remove --uid uid-c >"$T/rm-c.log" 2>&1
if wait_for_file_match "$T/probe2.log" '^DEL uid-c$' 5 && wait_for_file_match "$T/probe3.log" '^DEL uid-c$' 5; then
  pass "remove broadcasts DelWorkload to every connected ztunnel"
else fail "remove broadcasts DelWorkload to every connected ztunnel" "$(cat "$T/rm-c.log")"; fi
nsx_stop "$PROBE3" 3 || true

# B10: remove pod a -> DEL, rules gone.
out=$(cni remove --uid uid-a 2>&1); rc=$?
check "remove pod a succeeds" test "$rc" = 0
if wait_for_file_match "$T/probe2.log" '^DEL uid-a$' 5; then pass "ztunnel got DelWorkload for pod a"
else fail "ztunnel got DelWorkload for pod a" "$out; $(cat "$T/probe2.log")"; fi
ok=1; msg=""
ipt_all a | contains ISTIO && { ok=0; msg+="ISTIO rules left: $(ipt_all a | grep ISTIO | head -3); "; }
nsx_exec a ip rule show | contains 'lookup 100' && { ok=0; msg+="ip rule left; "; }
[[ -z $(nsx_exec a ip route show table 100 2>/dev/null) ]] || { ok=0; msg+="table 100 not empty; "; }
cni list 2>/dev/null | contains uid-a && { ok=0; msg+="still listed; "; }
if [[ $ok == 1 ]]; then pass "rules, ip rule and table 100 gone from pod a after remove; not listed"
else fail "rules gone from pod a after remove" "$msg"; fi

# B11: agent restart keeps its pods and replays them to ztunnel.
cni add --netns "$NS_D" --uid uid-d --name pod-d --namespace default --service-account sa-d >"$T/add-d.log" 2>&1
nsx_stop "$AGENT_PID" 5 || true
: >"$T/probe2.mark"
if start_agent; then
  out=$(cni list 2>&1)
  if grep -Eq "^uid-d +pod-d +default +sa-d +$NS_D\$" <<<"$out" && ! grep -q uid-a <<<"$out"; then
    pass "agent restart: pods reloaded from the state dir"
  else fail "agent restart: pods reloaded from the state dir" "$(cat "$T/add-d.log"); $out"; fi
  if wait_for_file_match "$T/probe2.log" '^SNAPSHOT uid-d$' 10; then
    pass "ztunnel reconnected to the restarted agent and got the pods replayed"
  else fail "ztunnel reconnected to the restarted agent and got the pods replayed" "$(tail -n 8 "$T/probe2.log")"; fi
  cni remove --uid uid-d >/dev/null 2>&1
else
  fail "agent restarted" "$(tail -n 20 "$T/agent.log")"
fi

nsx_alive "$AGENT_PID" && pass "agent still running at the end" || fail "agent still running at the end" "$(tail -n 20 "$T/agent.log")"
[[ $NSX_KEEP_TMP == 1 ]] && echo "logs kept in $T"
summary
