#!/usr/bin/env bash
# scripts/demo-node.sh [BIN_DIR] — the node-mode tour for `make demo`: one "node" (a network
# namespace with a bridge) running the control plane (`controlplane serve`: delta xDS + Istio
# CA over TLS), the node agent (ambient-cni) and ONE ztunnel for every pod on it; three ambient
# pods in namespace "demo", a service spread over two of them. The mesh is the Kubernetes YAML
# of examples/k8s; the demo then edits it live: a policy that denies the third pod is added
# (closing its open connection), then removed again. Each outcome is printed with ✔ (as expected) or ✘ (not as expected);
# the exit status is non-zero when anything was not as expected.
#
# Nothing is injected into the pods: ambient-cni installs the redirection rules inside each
# pod's netns and hands the netns to ztunnel over ZDS; ztunnel (running in the node's netns)
# opens its listeners inside the pod. Everything created (zt-demo-node-* namespaces, processes,
# temp files) is removed on exit. Needs root. Config: examples/k8s/ (mesh) and
# examples/controlplane-tokens.yaml (who may connect).
# ok()/bad() always return 0, so "cond && ok || bad" is a safe if/else; ZN_* and NSX_KEEP_TMP
# are read by the sourced libraries.
# shellcheck disable=SC2015,SC2034,SC1091
set -uo pipefail

# shellcheck source=lib/demo.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/demo.sh"
demo_setup demo-node "${1:-}"
demo_require demo-node "$ZT_BIN" "$CNI_BIN" "$CP_BIN" -- curl ip iptables ss
EX="$ZT_ROOT/examples/k8s"

# shellcheck source=../tests/lib/netns.sh
source "$ZT_ROOT/tests/lib/netns.sh"
# shellcheck source=../tests/50-node-e2e/lib.sh
source "$ZT_ROOT/tests/50-node-e2e/lib.sh"

if [[ -t 1 ]]; then B=$'\e[1m'; G=$'\e[32m'; R=$'\e[31m'; N=$'\e[0m'; else B=; G=; R=; N=; fi
UNEXPECTED=0
step() { echo; echo "${B}== $*${N}"; }
say() { echo "   $*"; }
ok() { echo "   ${G}✔${N} $*"; }
bad() { echo "   ${R}✘ $*${N}"; UNEXPECTED=$((UNEXPECTED + 1)); }
indent() { sed 's/^/     /'; }
die() { echo "${R}demo failed: $*${N}"; exit 1; }

# al_fmt — condense ztunnel "connection complete" access-log lines to the interesting fields.
al_field() { grep -oE "(^| )$1=(\"[^\"]*\"|[^ ]*)" <<<"$2" | head -n 1 | sed -E "s/^ ?[^=]*=//; s/\"//g"; }
al_fmt() {
  local l err svc
  while IFS= read -r l; do
    err=$(al_field error "$l"); svc=$(al_field 'dst\.service' "$l")
    printf '%-8s %s (%s) -> %s%s (%s)  bytes sent=%s recv=%s%s\n' \
      "$(al_field direction "$l")" "$(al_field 'src\.workload' "$l")" "$(al_field 'src\.identity' "$l")" \
      "${svc:+$svc/}" "$(al_field 'dst\.workload' "$l")" "$(al_field 'dst\.identity' "$l")" \
      "$(al_field bytes_sent "$l")" "$(al_field bytes_recv "$l")" "${err:+  error=\"$err\"}"
  done
}

nsx_init demo-node
T="$NSX_TMP"
MESH="$T/mesh"
CACERTS="$T/cacerts"
TOOL=("$ZT_PY" -u "$NODETOOL")
ZN_UID_PREFIX="demo-"

step "1. A node: network namespace zt-demo-node-n1 with bridge br0 (10.99.1.254)"
zn_node 1
zn_pod 1 web-1 10.99.1.11
zn_pod 1 web-2 10.99.1.12
zn_pod 1 client 10.99.1.13
say "pods (network namespaces behind veth links on the node's bridge):"
say "  web-1   10.99.1.11  namespace demo, service account web"
say "  web-2   10.99.1.12  namespace demo, service account web"
say "  client  10.99.1.13  namespace demo, service account client"
for p in web-1 web-2 client; do nsx_bg "$p" "$T/app-$p.log" "${TOOL[@]}" serve "$p"; done
for p in web-1 web-2 client; do wait_for_port "$p" 8080 10 || die "app in $p did not start"; done
say "each pod runs a tiny HTTP app on :8080 answering /whoami with its own name"

step "2. Control plane: controlplane serve (delta xDS + Istio CA, TLS, bearer tokens)"
mkdir -p "$MESH"
cp "$EX/namespace.yaml" "$EX/pods.yaml" "$EX/service.yaml" "$MESH/"
say "mesh directory $MESH (Kubernetes YAML from examples/k8s):"
for f in "$MESH"/*.yaml; do
  say "  $(basename "$f"): $(grep -E '^kind:' "$f" | awk '{print $2}' | sort | uniq -c | awk '{printf "%s %s, ", $1, $2}' | sed 's/, $//')"
done
nsx_bg n1 "$T/cp.log" "$CP_BIN" serve --dir "$MESH" --listen 127.0.0.1:15012 --cacerts "$CACERTS" \
  --tokens "$ZT_ROOT/examples/controlplane-tokens.yaml"
CP_PID=$NSX_LAST_PID
for _ in $(seq 1 100); do grep -q 'serving on' "$T/cp.log" 2>/dev/null && break; sleep 0.1; done
grep -q 'serving on' "$T/cp.log" || die "controlplane did not start: $(tail -n 5 "$T/cp.log")"
ok "$(grep -m1 'serving on' "$T/cp.log" | sed -E 's/^.*\] //')"
say "it created a mesh CA in $CACERTS (root-cert.pem, ca-cert.pem, cert-chain.pem)"
say "no AuthorizationPolicy yet"

step "3. Node agent (ambient-cni) and ONE ztunnel for the whole node, both in the node's netns"
zn_cni_start 1 >"$T/cni-start.out" || die "ambient-cni: $(cat "$T/cni-start.out")"
echo demo-node-ztunnel-token >"$T/istio-token"
nsx_bg_env n1 "$T/zt-node.log" PROXY_MODE=shared INPOD_UDS="$(zn_sock 1)" \
  XDS_ADDRESS=https://127.0.0.1:15012 CA_ADDRESS=https://127.0.0.1:15012 \
  XDS_ROOT_CA="$CACERTS/root-cert.pem" CA_ROOT_CA="$CACERTS/root-cert.pem" AUTH_TOKEN="$T/istio-token" \
  NODE_NAME=demo-node POD_NAME=ztunnel-demo POD_NAMESPACE=istio-system INSTANCE_IP=10.99.1.254 \
  PACKET_MARK=1337 RUST_LOG=info LOG_FORMAT=plain ZTUNNEL_WORKER_THREADS=1 \
  ADMIN_ADDR=127.0.0.1:15000 STATS_ADDR="[::]:15020" READINESS_ADDR="[::]:15021" -- "$ZT_BIN"
ZT_PID_node=$NSX_LAST_PID; ZT_OFF_node=0; ZT_NODE_node=1
out=$(zn_zt_wait_ready node 20) || die "ztunnel not ready: $out"
zn_wait_cni_ztunnels 1 1 10 >/dev/null || die "ztunnel did not connect to ambient-cni"
ok "ztunnel synced its configuration from the controlplane over xDS, connected to ambient-cni, ready"
say "${B}what ztunnel received (from its /config_dump):${N}"
zn_config_dump node | "$ZT_PY" -c '
import json, sys
d = json.load(sys.stdin)
for w in d.get("workloads", []):
    print("workload", w.get("uid"), w.get("workloadIps"), "sa=" + str(w.get("serviceAccount")))
for s in d.get("services", []):
    print("service ", s.get("hostname"), s.get("vips"), s.get("ports"))' 2>/dev/null | indent

step "4. Pods join the ambient mesh: ambient-cni add"
for p in web-1 web-2 client; do
  sa=web; [[ $p == client ]] && sa=client
  out=$(zn_cni_add 1 "$p" demo "$sa" 2>&1) || die "ambient-cni add $p: $out"
  ok "$out"
done
say "${B}ambient-cni list:${N}"
zn_cni 1 list 2>&1 | indent
say "${B}rules ambient-cni installed inside the client pod (nat table):${N}"
nsx_exec client iptables -t nat -S 2>/dev/null | grep -E 'REDIRECT' | indent
say "${B}ztunnel's listeners, opened inside the client pod's netns:${N}"
nsx_exec client ss -Hltn | awk '{print $4}' | grep -E ':150(01|06|08)$' | sort -u | indent
nsx_exec client ss -Hlun 2>/dev/null | awk '{print $4 " (udp)"}' | grep -E ':15053' | indent

step "5. client -> service web (http://10.99.250.10/whoami), 16 requests"
declare -A hits=()
okc=0
for i in $(seq 1 16); do
  r=$(zn_get client "http://10.99.250.10/whoami?r=$i")
  if [[ ${r%% *} == 200 ]]; then okc=$((okc + 1)); hits[${r#200 }]=$(( ${hits[${r#200 }]:-0} + 1 )); fi
done
for b in "${!hits[@]}"; do say "answered by $b: ${hits[$b]}"; done
if [[ $okc == 16 && ${#hits[@]} == 2 ]]; then ok "all 16 answered, spread over both endpoints of the service"
else bad "expected 16 answers from web-1 and web-2, got $okc from: ${!hits[*]}"; fi
peer=$(zn_app_peer "$T/app-web-1.log" 'r=' ); [[ -n $peer ]] || peer=$(zn_app_peer "$T/app-web-2.log" 'r=')
[[ $peer == 10.99.1.13 ]] && ok "the web app sees the real client address ($peer), not ztunnel's" \
  || bad "the web app saw peer '$peer' instead of 10.99.1.13"
if nsx_exec client ss -Hlun 'sport = :15053' 2>/dev/null | contains .; then
  out=$(nsx_exec client "${TOOL[@]}" dns 10.99.1.254 53 web 2>&1)
  grep -q '10\.99\.250\.10' <<<"$out" && ok "DNS inside the pod: 'web' -> 10.99.250.10 (answered by ztunnel's DNS proxy)" \
    || bad "DNS for 'web' inside the pod: $out"
else
  say "(ztunnel's DNS proxy is not listening in the pod; DNS step skipped)"
fi
sleep 0.5
say "${B}ztunnel access log, one request (outbound side in the client pod, inbound side in web):${N}"
grep -a 'connection complete' "$T/zt-node.log" | tail -n 2 | al_fmt | indent

step "6. Live policy edit: add an AuthorizationPolicy that DENYs service account 'client'"
say "client opens a long-lived connection to web-1 first (an echo session on :9000)"
nsx_bg client "$T/hold.log" "${TOOL[@]}" hold 10.99.1.11 9000 30
HOLD_PID=$NSX_LAST_PID
wait_for_file_match "$T/hold.log" '^open' 8 || bad "the echo session did not open"
grep -vE '^#' "$EX/authz-deny-client.yaml" | indent
cp "$EX/authz-deny-client.yaml" "$MESH/.authz.tmp" && mv "$MESH/.authz.tmp" "$MESH/authz-deny-client.yaml"
say "copied into $MESH; the controlplane pushes it to ztunnel as a delta:"
zn_wait_config node deny-client present 8 >/dev/null || bad "ztunnel did not pick up the new policy"
grep -a 'push' "$T/cp.log" | tail -n 2 | sed -E 's/^.*\] //' | indent
if wait_for_file_match "$T/hold.log" 'closed at=' 10; then
  ok "the client's open connection was closed by the new policy (ztunnel re-checks live connections)"
else
  bad "the client's open connection survived the DENY"
fi
nsx_stop "$HOLD_PID" 1 >/dev/null 2>&1
r=$(zn_get client "http://10.99.250.10/whoami?denied=1")
[[ ${r%% *} != 200 ]] && ok "client -> web is now refused (the connection is reset; no HTTP answer)" || bad "client -> web still answered: $r"
grep -aq 'denied=1' "$T/app-web-1.log" "$T/app-web-2.log" && bad "a web app saw the denied request" \
  || ok "neither web app ever saw the denied request"
r=$(zn_get web-1 "http://10.99.250.10/whoami?from-web")
[[ ${r%% *} == 200 ]] && ok "web-1 -> web still works (answered by ${r#200 }): the policy only shuts out 'client'" \
  || bad "web-1 -> web failed: $r"
sleep 0.5
say "${B}ztunnel's record of the rejection:${N}"
grep -a 'connection complete' "$T/zt-node.log" | grep -aiE 'denied|401' | tail -n 2 | al_fmt | indent
say "${B}metrics (response_flags=DENY):${N}"
zn_metrics node | grep -E '^istio_tcp_connections_opened_total\{.*response_flags="DENY"' \
  | grep -oE '(reporter|source_principal|destination_principal|response_flags)="[^"]*"' \
  | paste -sd' ' | cut -c1-300 | indent
say "now delete the policy file again:"
rm -f "$MESH/authz-deny-client.yaml"
zn_wait_config node deny-client absent 8 >/dev/null || bad "ztunnel still holds the deleted policy"
r=$(zn_get client "http://10.99.250.10/whoami?allowed-again=1")
[[ ${r%% *} == 200 ]] && ok "policy removed: client -> web answered again (by ${r#200 })" || bad "client still refused: $r"
say "${B}certificates ztunnel holds, issued by the controlplane's CA (rotated at half life):${N}"
zn_config_dump node | "$ZT_PY" -c '
import json, sys
for c in json.load(sys.stdin).get("certificates", []):
    ch = (c.get("certChain") or [{}])[0]
    print(c.get("identity"), c.get("state"), "expires", ch.get("expirationTime"))' 2>/dev/null | indent

step "7. The client pod leaves the mesh: ambient-cni remove"
out=$(zn_cni 1 remove --uid demo-client 2>&1) && ok "$out" || bad "remove: $out"
nsx_exec client iptables-save | contains ISTIO && bad "rules still in the client pod" \
  || ok "its redirection rules are gone"
gone=0
for _ in $(seq 1 40); do
  nsx_exec client ss -Hltn 'sport = :15001' | contains . || { gone=1; break; }
  sleep 0.2
done
[[ $gone == 1 ]] && ok "ztunnel closed its listeners in the pod (DelWorkload); the apps keep running" \
  || bad "ztunnel's listeners still open in the client pod"

step "Done; cleaning up namespaces and processes"
if [[ $UNEXPECTED == 0 ]]; then echo "${G}demo complete: every outcome as expected${N}"
else echo "${R}demo complete: $UNEXPECTED outcome(s) not as expected (logs kept in $T)${N}"; NSX_KEEP_TMP=1; fi
[[ $UNEXPECTED == 0 ]]
