#!/usr/bin/env bash
# tests/46-cni-kube/suite.sh BIN_DIR — the cni node agent on Kubernetes metadata
# (`ambient-cni serve --metadata-source kube --kubeconfig`): it watches Namespaces and this
# node's Pods on the Kubernetes API test server of tests/25-kube-controlplane (checked with the
# real kubectl there) and reconciles the pods the CNI plugin ADDed when their labels change.
# Real netns, real iptables, the real ztunnel over ZDS; the plugin is executed as a container
# runtime does (CNI_COMMAND, config on stdin). Root needed; fails, never skips. Run it under
# the shared lock: flock /tmp/ambient-netns.lock ctest -R 46-cni-kube.
#
#   1. ADD of two pods in an unlabelled namespace: both left alone (no rules, not held);
#   2. the namespace labelled istio.io/dataplane-mode=ambient through the API: the pod is taken
#      into the mesh (in-pod rules, ZDS add: ztunnel listens in its netns); the pod labelled
#      dataplane-mode=none stays out; an ambient pod of the node never ADDed is logged, skipped;
#   3. the label removed: the pod is taken out (rules gone, ZDS del: ztunnel's listener gone);
#   4. a pod label alone takes it in again; DEL by the plugin drops it.
# Last line "N passed, N failed"; exit 1 on any failure.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ZT_ROOT=$(cd "$HERE/../.." && pwd)
BIN_DIR=$(cd "${1:-$ZT_ROOT/build/bin}" 2>/dev/null && pwd || echo "${1:-$ZT_ROOT/build/bin}")
CNI="$BIN_DIR/ambient-cni"
PLUGIN="$BIN_DIR/ambient-cni-plugin"
ZT_BIN="$BIN_DIR/ztunnel"
PY="${ZT_PY:-python3}"
API_SERVER="$ZT_ROOT/tests/25-kube-controlplane/kube_api_server.py"

# shellcheck source=../lib/netns.sh
source "$ZT_ROOT/tests/lib/netns.sh"

require_root
for b in "$CNI" "$PLUGIN" "$ZT_BIN"; do [[ -x $b ]] || { fail "binary built at $b"; summary; exit 1; }; done

nsx_init cni-kube
T="$NSX_TMP"
HOST=$(nsx_ns host)
nsx_add_netns "$HOST"
P1=$(nsx_ns p1)
P2=$(nsx_ns p2)
nsx_add_netns "$P1"
nsx_add_netns "$P2"
TOKEN=cni-kube-token

# ---- the API server and its objects ---------------------------------------------------------
nsx_bg host "$T/api.log" "$PY" -u "$API_SERVER" --token "$TOKEN"
API_PID=$NSX_LAST_PID
PORT=""
for _ in $(seq 1 100); do
  PORT=$(sed -n 's/^LISTENING \([0-9]*\)$/\1/p' "$T/api.log" 2>/dev/null)
  [[ -n $PORT ]] && break
  sleep 0.1
done
[[ -n $PORT ]] || { fail "API test server started" "$(cat "$T/api.log")"; summary; exit 1; }
API="http://127.0.0.1:$PORT"
api() {  # api METHOD PATH [JSON]
  local ct=application/json
  [[ $1 == PATCH ]] && ct=application/merge-patch+json
  nsx_exec host curl -sf -X "$1" -H "Authorization: Bearer $TOKEN" -H "Content-Type: $ct" \
    ${3:+--data "$3"} "$API$2"
}
pod_json() {  # pod_json NAME NODE LABELS_JSON
  printf '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"%s","namespace":"demo","labels":%s},"spec":{"nodeName":"%s","serviceAccountName":"sleep","containers":[{"name":"c","image":"x"}]}}' \
    "$1" "$3" "$2"
}
check "API: namespace demo created (no labels)" api POST /api/v1/namespaces '{"metadata":{"name":"demo"}}'
check "API: pod demo/p1 on node-1" api POST /api/v1/namespaces/demo/pods "$(pod_json p1 node-1 '{}')"
check "API: pod demo/p2 on node-1, labelled dataplane-mode=none" \
  api POST /api/v1/namespaces/demo/pods "$(pod_json p2 node-1 '{"istio.io/dataplane-mode":"none"}')"
check "API: pod demo/p4 on node-1 (never ADDed here)" api POST /api/v1/namespaces/demo/pods "$(pod_json p4 node-1 '{}')"
cat >"$T/kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "$API"}}]
users: [{name: agent, user: {token: "$TOKEN"}}]
contexts: [{name: test, context: {cluster: test, user: agent}}]
current-context: test
YAML

# ---- agent and ztunnel ----------------------------------------------------------------------
"$ZT_ROOT/scripts/make-cacerts.sh" "$T/ca" cluster.local >"$T/cacerts.log" 2>&1
cat >"$T/mesh.yaml" <<'YAML'
workloads:
- {uid: uid-p1, name: p1, namespace: demo, serviceAccount: sleep, workloadIps: ["10.89.7.1"], protocol: HBONE, node: node-1}
- {uid: uid-p2, name: p2, namespace: demo, serviceAccount: sleep, workloadIps: ["10.89.7.2"], protocol: HBONE, node: node-1}
services: []
YAML
SOCK="$T/zds.sock"
nsx_bg host "$T/agent.log" "$CNI" serve --socket "$SOCK" --state-dir "$T/state" \
  --metadata-source kube --kubeconfig "$T/kubeconfig" --node-name node-1
AGENT_PID=$NSX_LAST_PID
up=0
for _ in $(seq 1 100); do [[ -S $SOCK.ctl ]] && { up=1; break; }; sleep 0.1; done
if [[ $up == 1 ]]; then pass "agent started on kube metadata (initial list of namespaces and node-1's pods)"
else fail "agent started on kube metadata" "$(cat "$T/agent.log")"; summary; exit 1; fi
check "agent: pods watched with fieldSelector spec.nodeName=node-1" \
  contains -F 'fieldSelector=spec.nodeName%3Dnode-1' "$T/api.log"
nsx_bg_env host "$T/zt.log" PROXY_MODE=shared INPOD_UDS="$SOCK" LOCAL_XDS_PATH="$T/mesh.yaml" \
  LOCAL_CA_DIR="$T/ca" XDS_ADDRESS= TRUST_DOMAIN=cluster.local NODE_NAME=node-1 \
  ZTUNNEL_WORKER_THREADS=1 CONNECTION_TERMINATION_DEADLINE=2s ADMIN_ADDR=127.0.0.1:15000 \
  STATS_ADDR=127.0.0.1:15020 READINESS_ADDR=127.0.0.1:15021 -- "$ZT_BIN"

agent_list() { "$CNI" list --json --socket "$SOCK"; }
ztunnels_connected() {
  for _ in $(seq 1 50); do
    [[ $(agent_list 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["ztunnels"])' 2>/dev/null) == 1 ]] && return 0
    sleep 0.2
  done
  agent_list
  return 1
}
held() { agent_list | "$PY" -c 'import json,sys; sys.exit(0 if any(p["uid"]==sys.argv[1] for p in json.load(sys.stdin)["pods"]) else 1)' "$1"; }
has_rules() { ip netns exec "$1" iptables-save | contains 'ISTIO_OUTPUT.*--to-ports 15001'; }
zt_listens() { ip netns exec "$1" ss -Hltn | contains ':15001 '; }
# eventually CMD... : the agent reacts to the watch asynchronously; a hang guard (15 s), not a
# timing check.
eventually() { for _ in $(seq 1 75); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; "$@"; }
not_held() { ! held "$1"; }
no_rules() { ! ip netns exec "$1" iptables-save | contains ISTIO; }
no_listener() { ! zt_listens "$1"; }
plugin() {  # plugin ADD|DEL NAME NETNS UID
  local conf
  conf=$(printf '{"cniVersion":"1.0.0","name":"kube-net","type":"ambient-cni","agentSocket":"%s","prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[]}}' "$SOCK.ctl")
  CNI_COMMAND=$1 CNI_CONTAINERID="sandbox-$2" CNI_NETNS="/run/netns/$3" CNI_IFNAME=eth0 CNI_PATH="$BIN_DIR" \
    CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=$2;K8S_POD_UID=$4" "$PLUGIN" <<<"$conf"
}
check "ztunnel connected to the agent over ZDS" ztunnels_connected

# 1. ADD in an unlabelled namespace: left alone
out=$(plugin ADD p1 "$P1" uid-p1 2>&1)
if [[ $? == 0 && $out == *'"cniVersion"'* ]]; then pass "ADD p1 (namespace not ambient): succeeds, prevResult passed on"
else fail "ADD p1 (namespace not ambient)" "$out"; fi
check "ADD p2 (pod label none)" plugin ADD p2 "$P2" uid-p2
check_not "p1 left alone: no in-pod rules" has_rules "$P1"
check_not "p1 left alone: not held by the agent" held uid-p1
check_not "p1 left alone: ztunnel has no listener in its netns" zt_listens "$P1"

# 2. the namespace labelled ambient: p1 taken in, p2 (opted out) stays out
check "API: namespace demo labelled istio.io/dataplane-mode=ambient" \
  api PATCH /api/v1/namespaces/demo '{"metadata":{"labels":{"istio.io/dataplane-mode":"ambient"}}}'
check "label added: p1 held by the agent" eventually held uid-p1
check "label added: in-pod rules installed in p1's netns" eventually has_rules "$P1"
check "label added: ip rule fwmark lookup 100 in p1's netns" \
  bash -c "ip netns exec '$P1' ip rule show | grep -c 'fwmark 0x111/0xfff lookup 100'"
check "label added: ztunnel got the ZDS add (listens on 15001 in p1's netns)" eventually zt_listens "$P1"
check_not "label added: p2 (dataplane-mode=none) not held" held uid-p2
check_not "label added: p2 has no rules" has_rules "$P2"
check "an ambient pod never ADDed (demo/p4) is logged and skipped" \
  eventually contains -F 'pod demo/p4 is ambient but this agent never saw its CNI ADD' "$T/agent.log"

# 3. the label removed: p1 taken out
check "API: label removed from namespace demo" \
  api PATCH /api/v1/namespaces/demo '{"metadata":{"labels":{"istio.io/dataplane-mode":null}}}'
check "label removed: p1 no longer held" eventually not_held uid-p1
check "label removed: in-pod rules gone from p1's netns" eventually no_rules "$P1"
check "label removed: ztunnel's listener gone from p1's netns (ZDS del)" eventually no_listener "$P1"

# 4. a pod label alone takes it in again; DEL drops it
check "API: pod demo/p1 labelled istio.io/dataplane-mode=ambient" \
  api PATCH /api/v1/namespaces/demo/pods/p1 '{"metadata":{"labels":{"istio.io/dataplane-mode":"ambient"}}}'
check "pod label: p1 held again" eventually held uid-p1
check "pod label: rules back in p1's netns" eventually has_rules "$P1"
check "DEL p1 by the plugin" plugin DEL p1 "$P1" uid-p1
check_not "DEL: p1 not held" held uid-p1
check_not "DEL: no rules left in p1's netns" has_rules "$P1"
check "DEL p2 by the plugin (left alone: nothing to undo)" plugin DEL p2 "$P2" uid-p2

nsx_stop "$AGENT_PID" 5 >/dev/null 2>&1
nsx_stop "$API_PID" 2 >/dev/null 2>&1
[[ $NSX_FAILED == 0 ]] || { echo "--- agent log"; tail -n 40 "$T/agent.log"; echo "--- ztunnel log"; tail -n 20 "$T/zt.log"; }
summary
