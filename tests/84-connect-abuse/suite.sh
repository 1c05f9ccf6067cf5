#!/usr/bin/env bash
# tests/84-connect-abuse/suite.sh BIN_DIR — matrix row P4: CONNECT target abuse and the 15006
# plaintext path, every ztunnel port, in both modes. Needs root; ~30 s. Runs in the release
# build only (label "matrix", excluded from `make test-asan`).
#
# Dedicated mode (ztunnel shares the pod's netns, so 15000/15020/15021 are reachable there):
#   zt-p4-srv 10.99.0.2  in-pod rules + dedicated ztunnel (p4/srv/srv), echo :9000
#   zt-p4-atk 10.99.0.1  attacker: python3-h2 HBONE client with a valid mesh certificate,
#                        and a plaintext prober (its traffic to srv is REDIRECTed to 15006)
# Shared (in-pod) mode: node n1 (10.99.1.254) runs ambient-cni + a shared-mode ztunnel; pod
#   srv1 10.99.1.2 is added through the agent (listeners 15001/15006/15008/15053 in its netns),
#   echo :9000 and an app of its own on :15020 (not ztunnel's there); atk1 10.99.1.50 attacks.
#
# Pass: every ztunnel port (and loopback, the node, another pod, 169.254.169.254) is refused
# with 400 on HBONE and closed without a byte on the plaintext path, counted in
# istio_inbound_self_target_rejections_total; the ordinary target still works.
# Last line "N passed, N failed"; exit 1 on any failure.
# shellcheck disable=SC2154,SC1091
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ZT_ROOT=$(cd "$HERE/../.." && pwd)
BIN_DIR=$(cd "${1:-$ZT_ROOT/build/bin}" 2>/dev/null && pwd || echo "${1:-$ZT_ROOT/build/bin}")
ZT_BIN="$BIN_DIR/ztunnel"
CNI_BIN="$BIN_DIR/ambient-cni"

source "$ZT_ROOT/tests/lib/netns.sh"
source "$ZT_ROOT/tests/30-e2e/helpers.sh"
source "$ZT_ROOT/tests/50-node-e2e/lib.sh"

require_root
PY=/usr/bin/python3
for t in socat "$PY"; do command -v "$t" >/dev/null 2>&1 || { fail "required tool $t present"; summary; exit 1; }; done
for b in "$ZT_BIN" "$CNI_BIN"; do [[ -x $b ]] || { fail "binary present at $b"; summary; exit 1; }; done

nsx_init p4
T="$NSX_TMP"
H2C=("$PY" "$ZT_ROOT/tests/20-interop/h2_connect_client.py" --port 15008 --timeout 10)
PROBE=("$PY" "$HERE/probe_plain.py")
ALL_PORTS=(15000 15001 15006 15008 15020 15021 15053)
abort() { fail "$1" "${2:-}"; NSX_KEEP_TMP=1; echo "logs kept in $T" >&2; summary; exit 1; }

"$ZT_ROOT/scripts/make-cacerts.sh" "$T/ca" cluster.local >"$T/ca.log" 2>&1 \
  && "$ZT_ROOT/scripts/issue-cert.sh" "$T/ca" spiffe://cluster.local/ns/p4/sa/attacker "$T/atk" >>"$T/ca.log" 2>&1 \
  || abort "certificates" "$(cat "$T/ca.log")"

# hbone_status NS HOST AUTHORITY EXPECT_ID — the CONNECT status ztunnel answers ("STATUS n" line).
hbone_status() {
  timeout 30 ip netns exec "$(nsx_ns "$1")" "${H2C[@]}" --host "$2" --cert-dir "$T/atk" --expect "$4" \
    --authority "$3" --no-payload 2>&1 | grep -E '^(STATUS|TLS_ERROR|CONNECT_ERROR)' | head -n 1
}
# expect_400 NS HOST AUTHORITY ID
expect_400() {
  local got; got=$(hbone_status "$@")
  [[ $got == "STATUS 400" ]] && return 0
  echo "CONNECT $3 via $2:15008 -> '${got:-no answer}' (wanted STATUS 400)"
  return 1
}
# expect_closed NS HOST PORT — the plaintext path answers nothing and closes.
expect_closed() {
  local got; got=$(timeout 20 ip netns exec "$(nsx_ns "$1")" "${PROBE[@]}" "$2" "$3" 3 2>&1)
  [[ $got == "REPLY bytes=0 first=-" ]] && return 0
  echo "plaintext $2:$3 -> '$got' (wanted REPLY bytes=0)"
  return 1
}
# counted FETCH WHO LISTENER PORT — the rejection counter has a sample >= 1.
counted() { expect_metric "$1" "$2" istio_inbound_self_target_rejections_total "listener=$3" "port=$4" >/dev/null; }

# ================================ dedicated mode ==============================================
nsx_pod srv 10.99.0.2
nsx_pod atk 10.99.0.1
nsx_pod other 10.99.0.3
cat >"$T/ded.yaml" <<'YAML'
workloads:
- uid: p4-srv
  name: srv
  namespace: p4
  serviceAccount: srv
  workloadIps: ["10.99.0.2"]
  protocol: HBONE
  node: p4-node
YAML
nsx_exec srv "$ZT_ROOT/scripts/inpod-iptables.sh" install --no-dns >"$T/rules.log" 2>&1 \
  || abort "in-pod rules in srv" "$(cat "$T/rules.log")"
nsx_bg srv "$T/echo-srv.log" socat TCP-LISTEN:9000,fork,reuseaddr EXEC:cat
nsx_bg other "$T/echo-other.log" socat TCP-LISTEN:9000,fork,reuseaddr EXEC:cat
zt_start srv p4/srv/srv "$T/ded.yaml" "$T/ca" "$T/zt-ded.log"
out=$(zt_wait_ready srv 20) || abort "dedicated ztunnel ready" "$out $(tail -n 20 "$T/zt-ded.log")"
wait_for_port srv 9000 5 || abort "echo app in srv"
pass "dedicated ztunnel ready in srv"
SRV_ID=$(zt_spiffe p4 srv)

check "dedicated: an ordinary target works (CONNECT 10.99.0.2:9000 -> echo)" \
  bash -c "timeout 30 ip netns exec $(nsx_ns atk) ${H2C[*]} --host 10.99.0.2 --cert-dir $T/atk --expect $SRV_ID --authority 10.99.0.2:9000 | grep -q '^ECHO_OK'"
for p in "${ALL_PORTS[@]}"; do
  check "dedicated: HBONE CONNECT 10.99.0.2:$p refused (400)" expect_400 atk 10.99.0.2 "10.99.0.2:$p" "$SRV_ID"
done
for a in 127.0.0.1:15020 127.0.0.1:9000 169.254.169.254:80 10.99.0.3:9000 10.99.0.254:15020 '[::1]:15000'; do
  check "dedicated: HBONE CONNECT $a refused (400, no SSRF)" expect_400 atk 10.99.0.2 "$a" "$SRV_ID"
done
for p in "${ALL_PORTS[@]}"; do
  [[ $p == 15008 ]] && continue   # not captured: 15008 is the HBONE listener itself
  check "dedicated: plaintext to 10.99.0.2:$p (15006 path) closed without a byte" expect_closed atk 10.99.0.2 "$p"
done
check "dedicated: plaintext to an ordinary port still works (15006 -> echo)" \
  bash -c "echo ping | timeout 10 ip netns exec $(nsx_ns atk) socat -T3 - TCP:10.99.0.2:9000 | grep -q ping"
check "dedicated: HBONE refusals counted (port 15020)" counted zt_metrics srv inbound_hbone 15020
check "dedicated: plaintext refusals counted (port 15000)" counted zt_metrics srv inbound_plaintext 15000
check "dedicated: plaintext refusals counted (port 15021)" counted zt_metrics srv inbound_plaintext 15021
echo "figures: dedicated rejections:"
zt_metrics srv | grep '^istio_inbound_self_target_rejections_total' | sed 's/^/  /'

# ================================ shared (in-pod) mode ========================================
ZN_MESH="$T/mesh.yaml"
ZN_CA="$T/ca"
zn_node 1
zn_pod 1 srv1 10.99.1.2
zn_pod 1 atk1 10.99.1.50
cat >"$ZN_MESH" <<'YAML'
workloads:
- uid: e2e-srv1
  name: srv1
  namespace: p4
  serviceAccount: srv
  workloadIps: ["10.99.1.2"]
  protocol: HBONE
  node: node-1
YAML
nsx_bg srv1 "$T/echo-srv1.log" socat TCP-LISTEN:9000,fork,reuseaddr EXEC:cat
# The pod's own app on 15020: in shared mode that port is not ztunnel's inside the pod.
nsx_bg srv1 "$T/app15020-srv1.log" socat TCP-LISTEN:15020,fork,reuseaddr EXEC:cat
out=$(zn_cni_start 1) || abort "ambient-cni serve" "$out"
zn_zt_start 1 n1
out=$(zn_zt_wait_ready n1 20) || abort "shared ztunnel ready" "$out"
out=$(zn_cni_add 1 srv1 p4 srv 2>&1) || abort "ambient-cni add srv1" "$out $(tail -n 20 "$T/zt-n1.log")"
out=$(zn_wait_pods n1 1 10) || abort "srv1 served by the node ztunnel" "$out"
wait_for_port srv1 15008 10 || abort "15008 inside srv1"
pass "shared ztunnel serves srv1 (listeners in the pod's netns)"

check "shared: an ordinary target works (CONNECT 10.99.1.2:9000 -> echo)" \
  bash -c "timeout 30 ip netns exec $(nsx_ns atk1) ${H2C[*]} --host 10.99.1.2 --cert-dir $T/atk --expect $SRV_ID --authority 10.99.1.2:9000 | grep -q '^ECHO_OK'"
for p in 15001 15006 15008 15053; do
  check "shared: HBONE CONNECT 10.99.1.2:$p (ztunnel's in the pod) refused (400)" expect_400 atk1 10.99.1.2 "10.99.1.2:$p" "$SRV_ID"
done
for a in 10.99.1.254:15020 10.99.1.254:15000 10.99.1.254:15021 127.0.0.1:15020 169.254.169.254:80; do
  check "shared: HBONE CONNECT $a (ztunnel's node netns, loopback, metadata) refused (400)" expect_400 atk1 10.99.1.2 "$a" "$SRV_ID"
done
check "shared: the pod's own app on 15020 stays reachable over HBONE (not ztunnel's port there)" \
  bash -c "timeout 30 ip netns exec $(nsx_ns atk1) ${H2C[*]} --host 10.99.1.2 --cert-dir $T/atk --expect $SRV_ID --authority 10.99.1.2:15020 | grep -q '^ECHO_OK'"
for p in 15001 15006 15053; do
  check "shared: plaintext to 10.99.1.2:$p (15006 path) closed without a byte" expect_closed atk1 10.99.1.2 "$p"
done
check "shared: HBONE refusals counted (port 15001)" counted zn_metrics n1 inbound_hbone 15001
check "shared: plaintext refusals counted (port 15006)" counted zn_metrics n1 inbound_plaintext 15006
echo "figures: shared rejections:"
zn_metrics n1 | grep '^istio_inbound_self_target_rejections_total' | sed 's/^/  /'

check "both ztunnels still alive after the abuse" bash -c "kill -0 $ZT_PID_srv && kill -0 $ZT_PID_n1"
[[ $NSX_FAILED -gt 0 ]] && { NSX_KEEP_TMP=1; echo "logs kept in $T"; }
summary
