#!/usr/bin/env bash
# tests/25-kube-controlplane/suite.sh BIN_DIR — `controlplane serve --kubeconfig` against a
# Kubernetes API test server (kube_api_server.py: discovery, list, chunked watch with
# resourceVersion, bookmarks and 410 Gone, create/update/patch/delete, /status), which is itself
# first checked with the real kubectl 1.33 (get, watch, create, label, patch, delete), so its
# wire format is one real clients accept. Everything runs on the loopback of a private network
# namespace (root; run under `flock /tmp/ambient-netns.lock`).
#
# What it shows (issue 12, "What it must show" 4):
#   - the controlplane lists and watches over TLS with a bearer token from a kubeconfig;
#   - a ztunnel-like delta xDS subscriber (xds_watch.py: python grpcio + our protos) sees a
#     namespace labelled istio.io/dataplane-mode=ambient take its pods into the mesh (HBONE),
#     and removing the label take them out (no tunnel); Node locality labels reach workloads;
#   - a waypoint Gateway makes the controlplane create its ServiceAccount, Deployment and
#     Service (owned by the Gateway) and set status.addresses + Programmed, and publish the
#     root certificate ConfigMap istio-ca-root-cert the waypoint mounts; deleting the
#     Gateway removes them; with --leader-elect the writes come from the Lease holder;
#   - a VirtualService edit (kubectl patch) reaches the waypoint's RouteConfiguration
#     (waypoint-xds-probe, the waypoint's own config source); a Gateway of class istio +
#     HTTPRoute reach the ingress gateway pod's routes (the probe with PROXY_TYPE=router), and
#     the Gateway gets <name>-istio Deployment/Service/ServiceAccount and a status that
#     follows its LoadBalancer's address (AddressNotAssigned until there is one);
#   - a watch broken by a partition plus compaction gets 410 Gone, re-lists, and nothing is
#     lost: changes made while it was away (a pod deleted, a pod created) are in the xDS.
# Prints PASS/FAIL lines and "N passed, N failed"; exit 1 on any failure.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ZT_ROOT=$(cd "$HERE/../.." && pwd)
BIN_DIR=$(cd "${1:-$ZT_ROOT/build/bin}" 2>/dev/null && pwd || echo "${1:-$ZT_ROOT/build/bin}")
CP_BIN="$BIN_DIR/controlplane"
PROBE="$BIN_DIR/waypoint-xds-probe"
PY="${ZT_PY:-/usr/bin/python3}"
[[ -x $PY ]] || PY=python3

# shellcheck source=../lib/netns.sh
source "$ZT_ROOT/tests/lib/netns.sh"

require_root
for t in openssl protoc timeout curl; do
  command -v "$t" >/dev/null 2>&1 || { fail "required tool $t missing"; summary; exit 1; }
done
"$PY" -c 'import grpc, google.protobuf' 2>/dev/null || { fail "python3-grpcio and python3-protobuf importable"; summary; exit 1; }
for b in "$CP_BIN" "$PROBE"; do [[ -x $b ]] || { fail "binary built at $b"; summary; exit 1; }; done
if ! tools=$(bash "$ZT_ROOT/scripts/k8s-tools.sh" 2>"${TMPDIR:-/tmp}/k8s-tools-25.err"); then
  fail "k8s tools (kubectl) installed" "$(cat "${TMPDIR:-/tmp}/k8s-tools-25.err")"
  summary; exit 1
fi
eval "$tools"   # HELM, KUBECTL, NODE_MODULES
[[ -x ${KUBECTL:-} ]] || { fail "kubectl from scripts/k8s-tools.sh"; summary; exit 1; }

# The chart's rendered command line is one the binary accepts (no unknown option; it gets as
# far as looking for the in-cluster service account, which is not here).
chart_args_accepted() {
  local args rc out
  args=$("$HELM" template cp "$ZT_ROOT/charts/controlplane" -n istio-system --set replicaCount=2 |
    "$PY" -c '
import sys, yaml
for d in yaml.safe_load_all(sys.stdin):
    if d and d.get("kind") == "Deployment":
        print("\n".join(d["spec"]["template"]["spec"]["containers"][0]["args"]))')
  [[ $args == *--kube* && $args == *--token-review* && $args == *--leader-elect* ]] || { echo "args: $args"; return 1; }
  mapfile -t argv <<<"$args"
  out=$(env -u KUBERNETES_SERVICE_HOST -u KUBERNETES_SERVICE_PORT timeout 10 "$CP_BIN" "${argv[@]}" 2>&1)
  rc=$?
  [[ $rc == 1 && $out == *KUBERNETES_SERVICE_HOST* ]] || { echo "rc=$rc: $out"; return 1; }
}
check "the controlplane chart's args (--kube, --token-review, --leader-elect, waypoint image) are real flags" \
  chart_args_accepted

nsx_init kubecp
T="$NSX_TMP"
LO=$(nsx_ns lo)
nsx_add_netns "$LO"
inns() { nsx_exec lo "$@"; }

# ---- protos for the python xDS subscriber ----
mkdir -p "$T/py"
P="$ZT_ROOT/proto"
if ! protoc --python_out="$T/py" -I "$P" -I /usr/include "$P/google/rpc/status.proto" \
     "$P/envoy/config/core/v3/base.proto" "$P/envoy/service/discovery/v3/discovery.proto" \
     "$P/istio/workload/workload.proto" >"$T/protoc.log" 2>&1; then
  fail "protoc --python_out compiles proto/" "$(cat "$T/protoc.log")"
  summary; exit 1
fi
export INTEROP_PB="$T/py" PYTHONDONTWRITEBYTECODE=1

# ---- API server certificate (its own CA), kubeconfig with a bearer token ----
if ! { "$ZT_ROOT/scripts/make-cacerts.sh" "$T/apica" kube.test &&
       openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/api-key.pem" &&
       openssl req -new -key "$T/api-key.pem" -subj "/CN=kube-apiserver" -out "$T/api.csr" &&
       printf '[s]\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$T/api.ext" &&
       openssl x509 -req -in "$T/api.csr" -CA "$T/apica/ca-cert.pem" -CAkey "$T/apica/ca-key.pem" \
         -set_serial "0x$(openssl rand -hex 16)" -days 2 -sha256 -extfile "$T/api.ext" -extensions s \
         -out "$T/api-cert.pem" &&
       cat "$T/api-cert.pem" "$T/apica/ca-cert.pem" >"$T/api-chain.pem"; } >"$T/certs.log" 2>&1; then
  fail "test certificates created" "$(cat "$T/certs.log")"
  summary; exit 1
fi
API_TOKEN=$(openssl rand -hex 16)
ZT_SA_TOKEN=$(openssl rand -hex 24)   # ztunnel's projected service-account token (TokenReview)
nsx_bg lo "$T/api.out" "$PY" -u "$HERE/kube_api_server.py" --listen 127.0.0.1 --port 0 \
  --cert "$T/api-chain.pem" --key "$T/api-key.pem" --token "$API_TOKEN" \
  --sa-token "$ZT_SA_TOKEN=istio-system/ztunnel@node-a"
for _ in $(seq 1 100); do grep -q '^LISTENING' "$T/api.out" 2>/dev/null && break; sleep 0.1; done
API_PORT=$(awk '/^LISTENING/{print $2}' "$T/api.out")
[[ -n $API_PORT ]] || { fail "API test server listening" "$(tail -n 20 "$T/api.out")"; summary; exit 1; }
cat >"$T/kubeconfig" <<EOF2
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: apica/root-cert.pem
users:
- name: controlplane
  user:
    token: $API_TOKEN
contexts:
- name: test
  context: {cluster: test, user: controlplane}
current-context: test
EOF2
K() { inns "$KUBECTL" --kubeconfig "$T/kubeconfig" "$@"; }
ctl() { inns curl -sf --cacert "$T/apica/root-cert.pem" -X POST "https://127.0.0.1:$API_PORT/testctl/$1"; }

# ---- A: the test server, checked with the real kubectl ----
wrong_token_refused() {
  local out
  out=$(inns "$KUBECTL" --server "https://127.0.0.1:$API_PORT" --certificate-authority "$T/apica/root-cert.pem" \
    --token wrong get ns 2>&1) && { echo "$out"; return 1; }
  [[ $out == *"provide credentials"* || $out == *Unauthorized* ]] || { echo "$out"; return 1; }
}
check "kubectl: a wrong token is refused (401 Status)" wrong_token_refused
K create -f "$HERE/fixtures/cluster.yaml" --validate=false >"$T/create.out" 2>&1
created_12() { [[ $(grep -c ' created$' "$T/create.out") == 12 ]] || { cat "$T/create.out"; return 1; }; }
check "kubectl create -f: all 12 fixture objects created" created_12
api_resources_ok() {
  local out
  out=$(K api-resources 2>&1)
  grep -qE '^virtualservices +vs +networking.istio.io/v1 +true +VirtualService' <<<"$out" &&
    grep -qE '^gateways +gtw +gateway.networking.k8s.io/v1 +true +Gateway' <<<"$out" &&
    grep -qE '^pods +po +v1 +true +Pod' <<<"$out" || { echo "$out"; return 1; }
}
check "kubectl api-resources reads the discovery (core, Istio, Gateway API kinds)" api_resources_ok
get_pods_ok() {
  local out
  out=$(K get pods -A 2>&1)
  grep -qE '^demo +web-1 ' <<<"$out" && grep -qE '^demo +calc-dog ' <<<"$out" || { echo "$out"; return 1; }
}
check "kubectl get pods -A lists the fixture pods" get_pods_ok
timeout -k 2 8 ip netns exec "$LO" "$KUBECTL" --kubeconfig "$T/kubeconfig" get ns -w --output-watch-events \
  >"$T/kwatch.out" 2>"$T/kwatch.err" &
KW=$!
for _ in $(seq 1 50); do grep -q 'ADDED' "$T/kwatch.out" 2>/dev/null && break; sleep 0.1; done
K label namespace demo kubectl-check=yes >/dev/null 2>&1
K create namespace scratch --dry-run=client -o json 2>/dev/null | K create -f - --validate=false >/dev/null 2>&1
K delete namespace scratch >/dev/null 2>&1
for _ in $(seq 1 50); do grep -q 'DELETED' "$T/kwatch.out" 2>/dev/null && break; sleep 0.1; done
kill "$KW" 2>/dev/null; wait "$KW" 2>/dev/null
kwatch_ok() {
  grep -qE '^ADDED +demo' "$T/kwatch.out" && grep -qE '^MODIFIED +demo' "$T/kwatch.out" &&
    grep -qE '^ADDED +scratch' "$T/kwatch.out" && grep -qE '^DELETED +scratch' "$T/kwatch.out" ||
    { cat "$T/kwatch.out" "$T/kwatch.err"; return 1; }
}
check "kubectl get -w streams ADDED, MODIFIED and DELETED from the chunked watch" kwatch_ok
check_not "kubectl reported no protocol errors" grep -qiE 'unsolicited|malformed|unexpected EOF|decode' "$T/kwatch.err"

# ---- B: the controlplane on the API ----
# ztunnel authenticates by TokenReview; the waypoint's token is in the static file (both
# sources at once).
cat >"$T/tokens.yaml" <<'TOK'
tokens:
- token: waypoint-token-3f1c
  serviceAccount: demo/waypoint
- token: ingress-token-8e2a
  serviceAccount: demo/ingress-gw
TOK
start_cp() {  # start_cp LOG IDENTITY
  nsx_bg lo "$1" "$CP_BIN" serve --kubeconfig "$T/kubeconfig" --listen 127.0.0.1:0 --cacerts "$T/cacerts" \
    --tokens "$T/tokens.yaml" --token-review --leader-elect --lease-namespace istio-system --lease-identity "$2" \
    --waypoint-image registry.test/ambient:1.0 --kube-list-page-size 2
}
cp_addr() { sed -n 's/.*serving on \([0-9.:]*\) .*/\1/p' "$1" | head -n 1; }
start_cp "$T/cp1.log" cp-1
CP1=$NSX_LAST_PID
for _ in $(seq 1 150); do [[ -n $(cp_addr "$T/cp1.log") ]] && break; sleep 0.1; done
CP_ADDR=$(cp_addr "$T/cp1.log")
[[ -n $CP_ADDR ]] || { fail "controlplane serving" "$(tail -n 30 "$T/cp1.log")"; summary; exit 1; }
listed_all() {
  local k
  for k in namespaces nodes pods services serviceaccounts endpointslices workloadentries virtualservices \
           destinationrules envoyfilters authorizationpolicies peerauthentications requestauthentications \
           gateways httproutes grpcroutes ratelimitpolicies telemetries; do
    grep -qE "listed [0-9]+ $k at resourceVersion" "$T/cp1.log" || { echo "no list of $k"; return 1; }
  done
}
check "controlplane listed every watched kind" listed_all
# Pages of 2 (client-go's limit/continue): kinds with more objects than that took several pages,
# and the complete lists (checked by everything below) were assembled from them.
paged() {
  "$PY" -c 'import json,sys; s=json.loads(sys.argv[1]); p=s.get("pages", {}); assert p.get("pods", 0) >= 1, s' "$(ctl stats)"
}
check "lists are paged (limit=2 + continue): the 4 pods took more than one page" paged

nsx_bg lo "$T/xds-bad.out" "$PY" -u "$HERE/xds_watch.py" "$CP_ADDR" "$T/cacerts/root-cert.pem" not-a-valid-token \
  "sidecar~10.244.1.2~ztunnel-abc.istio-system~istio-system.svc.cluster.local" 20
XDS_BAD=$NSX_LAST_PID
nsx_bg lo "$T/xds.out" "$PY" -u "$HERE/xds_watch.py" "$CP_ADDR" "$T/cacerts/root-cert.pem" "$ZT_SA_TOKEN" \
  "sidecar~10.244.1.2~ztunnel-abc.istio-system~istio-system.svc.cluster.local" 120
XDS=$NSX_LAST_PID
# wait_state PYTHON-EXPR: the subscriber's latest STATE `s` satisfies EXPR (20 s).
wait_state() {
  for _ in $(seq 1 200); do
    tail -n 1 "$T/xds.out" 2>/dev/null | grep '^STATE ' | cut -d' ' -f2- | "$PY" -c '
import json, sys
for line in sys.stdin:
    s = json.loads(line)
    sys.exit(0 if ('"$1"') else 1)
sys.exit(1)' && return 0
    sleep 0.1
  done
  echo "last state: $(tail -n 1 "$T/xds.out")"
  return 1
}
check "a token the TokenReview does not authenticate gets UNAUTHENTICATED" \
  wait_for_file_match "$T/xds-bad.out" '^ERROR StatusCode.UNAUTHENTICATED' 20
check "ztunnel's service-account token is accepted by TokenReview (its stream gets the mesh)" \
  wait_state "'web-1' in s"
check "xDS: without the ambient label the pods are workloads without a tunnel" \
  wait_state "s.get('web-1', {}).get('protocol') == 'NONE' and s.get('calc-cat', {}).get('protocol') == 'NONE'"
check "xDS: Node topology labels are the workloads' locality" \
  wait_state "s['web-1']['locality'][:2] == ['eu-west1', 'eu-west1-b'] and s['web-1']['node'] == 'node-a'"
K label namespace demo istio.io/dataplane-mode=ambient >/dev/null
check "xDS: labelling the namespace ambient takes its pods into the mesh (HBONE)" \
  wait_state "all(s.get(p, {}).get('protocol') == 'HBONE' for p in ('web-1', 'web-2', 'calc-cat', 'calc-dog'))"
K label namespace demo istio.io/dataplane-mode- >/dev/null
check "xDS: removing the label takes them out again" \
  wait_state "all(s.get(p, {}).get('protocol') == 'NONE' for p in ('web-1', 'web-2', 'calc-cat', 'calc-dog'))"
K label namespace demo istio.io/dataplane-mode=ambient >/dev/null
wait_state "s.get('web-1', {}).get('protocol') == 'HBONE'" >/dev/null

wait_k() {  # wait_k JSONPATH-ARGS... -- EXPECTED : kubectl get ... -o jsonpath equals EXPECTED (20 s)
  local args=() want
  while [[ $1 != -- ]]; do args+=("$1"); shift; done
  want=$2
  local got=""
  for _ in $(seq 1 200); do
    got=$(K get "${args[@]}" 2>&1)
    [[ $got == "$want" ]] && return 0
    sleep 0.1
  done
  echo "got '$got', want '$want'"
  return 1
}
# ---- C: waypoint Gateway -> ServiceAccount, Deployment, Service, status ----
check "the Lease names the first replica as holder" \
  wait_k lease -n istio-system ambient-controlplane-waypoints -o 'jsonpath={.spec.holderIdentity}' -- cp-1
K create -f "$HERE/fixtures/waypoint.yaml" --validate=false >/dev/null
GW_UID=$(K get gateway -n demo waypoint -o jsonpath='{.metadata.uid}')
check "the Gateway gets a Deployment owned by it, running the waypoint image" \
  wait_k deployment -n demo waypoint -o 'jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].uid} {.spec.template.spec.containers[0].image} {.spec.template.spec.serviceAccountName}' \
  -- "Gateway/$GW_UID registry.test/ambient:1.0 waypoint"
check "... and a ServiceAccount and a Service (HBONE 15008) owned by it" \
  wait_k service -n demo waypoint -o 'jsonpath={.metadata.ownerReferences[0].uid} {.spec.ports[0].port} {.spec.selector.gateway\.networking\.k8s\.io/gateway-name}' \
  -- "$GW_UID 15008 waypoint"
check "... ServiceAccount present" wait_k serviceaccount -n demo waypoint -o 'jsonpath={.metadata.ownerReferences[0].uid}' -- "$GW_UID"
SVC_IP=$(K get service -n demo waypoint -o 'jsonpath={.spec.clusterIP}')
check "the Gateway status has the Service address and Programmed=True" \
  wait_k gateway -n demo waypoint -o 'jsonpath={.status.addresses[0].value} {.status.conditions[?(@.type=="Programmed")].status}' \
  -- "$SVC_IP True"

root_cert_published() {
  local got
  for _ in $(seq 1 100); do
    got=$(K get configmap -n demo istio-ca-root-cert -o 'jsonpath={.data.root-cert\.pem}' 2>/dev/null)
    [[ -n $got && $got == "$(cat "$T/cacerts/root-cert.pem")" ]] && return 0
    sleep 0.1
  done
  echo "got: $got"
  return 1
}
check "the mesh root certificate is published as ConfigMap istio-ca-root-cert (as istiod does)" root_cert_published

# The Deployment's pod, as the kubelet would report it (nothing runs Deployments here).
K create -f - --validate=false >/dev/null <<'POD'
apiVersion: v1
kind: Pod
metadata:
  name: waypoint-5c9d7-x2k4q
  namespace: demo
  labels: {gateway.networking.k8s.io/gateway-name: waypoint, istio.io/dataplane-mode: none}
spec: {serviceAccountName: waypoint, nodeName: node-a, containers: [{name: istio-proxy, image: registry.test/ambient:1.0}]}
status: {phase: Running, podIP: 10.244.1.9, podIPs: [{ip: 10.244.1.9}], conditions: [{type: Ready, status: "True"}]}
POD

# ---- D: VirtualService edit -> the waypoint's RouteConfiguration ----
nsx_bg lo "$T/probe.out" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin XDS_ADDRESS="https://$CP_ADDR" \
  XDS_ROOT_CA="$T/cacerts/root-cert.pem" AUTH_TOKEN=waypoint-token-3f1c INSTANCE_IP=10.244.1.9 \
  POD_NAME=waypoint-5c9d7-x2k4q POD_NAMESPACE=demo RUST_LOG=info "$PROBE" 90
PROBE_PID=$NSX_LAST_PID
wait_snapshot() {  # wait_snapshot PYTHON-EXPR over the probe's last SNAPSHOT `s` (20 s)
  for _ in $(seq 1 200); do
    grep '^SNAPSHOT ' "$T/probe.out" 2>/dev/null | tail -n 1 | cut -d' ' -f2- | "$PY" -c '
import json, sys
for line in sys.stdin:
    s = json.loads(line)
    sys.exit(0 if ('"$1"') else 1)
sys.exit(1)' && return 0
    sleep 0.1
  done
  echo "last: $(grep '^SNAPSHOT ' "$T/probe.out" | tail -n 1)"
  return 1
}
R='"inbound-vip|8080|http|calculate.demo.svc.cluster.local"'
CAT='"inbound-vip|8080|http/cat-with-plus|calculate.demo.svc.cluster.local"'
DOG='"inbound-vip|8080|http/dog-with-multi|calculate.demo.svc.cluster.local"'
check "the waypoint gets its RouteConfiguration from the API's VirtualService (90/10)" \
  wait_snapshot "s['routes'].get($R, [{}])[0].get('weighted') == {$CAT: 90, $DOG: 10} and s['endpoints'].get($DOG) == ['10.244.1.22:80']"
K patch virtualservice -n demo calculate --type merge >"$T/patch.out" 2>&1 \
  -p '{"spec":{"http":[{"route":[{"destination":{"host":"calculate","subset":"dog-with-multi"},"weight":100}]}]}}'
check "kubectl patch of the VirtualService reaches the waypoint's route (all to dog)" \
  wait_snapshot "s['routes'].get($R, [{}])[0].get('cluster') == $DOG"
check_not "the waypoint NACKed nothing" contains -E '^NACK |xDS NACK' "$T/probe.out"

# ---- D1: an ingress gateway from the Gateway API (Gateway class istio + HTTPRoute) over --kube ----
K create -f - --validate=false >/dev/null <<'Y'
apiVersion: v1
kind: List
items:
- apiVersion: gateway.networking.k8s.io/v1
  kind: Gateway
  metadata: {name: ingress-gw, namespace: demo}
  spec:
    gatewayClassName: istio
    listeners: [{name: http, port: 80, protocol: HTTP}, {name: admin, port: 8080, protocol: HTTP}]
- apiVersion: v1
  kind: Pod
  metadata:
    name: ingress-gw-0
    namespace: demo
    labels: {gateway.networking.k8s.io/gateway-name: ingress-gw, istio.io/dataplane-mode: none}
  spec: {serviceAccountName: ingress-gw, nodeName: node-a, containers: [{name: istio-proxy, image: registry.test/ambient:1.0}]}
  status: {phase: Running, podIP: 10.244.1.10, podIPs: [{ip: 10.244.1.10}]}
- apiVersion: gateway.networking.k8s.io/v1
  kind: HTTPRoute
  metadata: {name: calc-ingress, namespace: demo}
  spec:
    parentRefs: [{name: ingress-gw, sectionName: http}]
    hostnames: [calc.example.com]
    rules: [{backendRefs: [{name: calculate, port: 8080}]}]
- apiVersion: gateway.networking.k8s.io/v1
  kind: HTTPRoute
  metadata: {name: calc-typo, namespace: demo}
  spec:
    parentRefs: [{name: ingress-gw, sectionName: htp}]
    rules: [{backendRefs: [{name: calculate, port: 8080}]}]
- apiVersion: gateway.networking.k8s.io/v1
  kind: HTTPRoute
  metadata: {name: calc-mesh-ghost, namespace: demo}
  spec:
    parentRefs: [{group: "", kind: Service, name: calculate}]
    rules: [{backendRefs: [{name: ghost, port: 8080}]}]
Y
nsx_bg lo "$T/probe-ig.out" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin XDS_ADDRESS="https://$CP_ADDR" \
  XDS_ROOT_CA="$T/cacerts/root-cert.pem" AUTH_TOKEN=ingress-token-8e2a INSTANCE_IP=10.244.1.10 PROXY_TYPE=router \
  POD_NAME=ingress-gw-0 POD_NAMESPACE=demo RUST_LOG=info "$PROBE" 30
PROBE_IG_PID=$NSX_LAST_PID
ig_snapshot() {
  local last
  for _ in $(seq 1 200); do
    last=$(grep '^SNAPSHOT ' "$T/probe-ig.out" 2>/dev/null | tail -n 1 | cut -d' ' -f2-)
    [[ -n $last ]] && "$PY" -c '
import json, sys
s = json.loads(sys.argv[1])
sys.exit(0 if s["routes"].get("http.80", [{}])[0].get("cluster") == "outbound|8080||calculate.demo.svc.cluster.local" else 1)' "$last" && return 0
    sleep 0.1
  done
  echo "last: $last"; grep -v '^SNAPSHOT' "$T/probe-ig.out" | tail -n 5
  return 1
}
check "a Gateway (class istio) + HTTPRoute from the API reach its pod as router routes (http.80 -> calculate)" ig_snapshot
nsx_stop "$PROBE_IG_PID" 5

# The gateway controller's side of a class-istio Gateway, as istiod's: <name>-istio objects
# running the router, a LoadBalancer Service, and a status that follows the load balancer.
check "the class-istio Gateway gets Deployment ingress-gw-istio, owned by it, running the router" \
  wait_k deployment -n demo ingress-gw-istio -o 'jsonpath={.metadata.ownerReferences[0].kind} {.spec.template.spec.containers[0].env[?(@.name=="PROXY_TYPE")].value} {.spec.template.spec.serviceAccountName} {.metadata.labels.gateway\.istio\.io/managed}' \
  -- "Gateway router ingress-gw-istio istio.io-gateway-controller"
check "... and a LoadBalancer Service: status-port 15021, then the listener's port 80" \
  wait_k service -n demo ingress-gw-istio -o 'jsonpath={.spec.type} {.spec.ports[*].port} {.spec.ports[1].appProtocol}' \
  -- "LoadBalancer 15021 80 8080 http"
IG_STATUS='jsonpath={.status.addresses[0].value} {.status.conditions[?(@.type=="Programmed")].status} {.status.conditions[?(@.type=="Programmed")].reason}'
check "no load balancer address yet: the Service host, Programmed=False AddressNotAssigned (as istiod)" \
  wait_k gateway -n demo ingress-gw -o "$IG_STATUS" -- "ingress-gw-istio.demo.svc.cluster.local False AddressNotAssigned"
K patch service -n demo ingress-gw-istio --subresource=status --type=merge \
  -p '{"status":{"loadBalancer":{"ingress":[{"ip":"203.0.113.10"}]}}}' >/dev/null
check "the load balancer's address reaches the Gateway's status: Programmed=True" \
  wait_k gateway -n demo ingress-gw -o "$IG_STATUS" -- "203.0.113.10 True Programmed"
# Listener and route status from what the compile attached (controlplane/kube/route_status.h).
check "status.listeners: attachedRoutes 1 on http (the route's sectionName), 0 on admin; Accepted, ResolvedRefs" \
  wait_k gateway -n demo ingress-gw -o 'jsonpath={.status.listeners[*].name} {.status.listeners[*].attachedRoutes} {.status.listeners[0].conditions[?(@.type=="Accepted")].status} {.status.listeners[0].conditions[?(@.type=="ResolvedRefs")].status} {.status.listeners[0].supportedKinds[0].kind}' \
  -- "http admin 1 0 True True HTTPRoute"
check "the attached HTTPRoute's status.parents: istio.io/gateway-controller, Accepted=True, ResolvedRefs=True" \
  wait_k httproute -n demo calc-ingress -o 'jsonpath={.status.parents[0].controllerName} {.status.parents[0].parentRef.sectionName} {.status.parents[0].conditions[?(@.type=="Accepted")].status} {.status.parents[0].conditions[?(@.type=="ResolvedRefs")].status}' \
  -- "istio.io/gateway-controller http True True"
check "a wrong sectionName: Accepted=False NoMatchingParent" \
  wait_k httproute -n demo calc-typo -o 'jsonpath={.status.parents[0].conditions[?(@.type=="Accepted")].status} {.status.parents[0].conditions[?(@.type=="Accepted")].reason}' \
  -- "False NoMatchingParent"
check "a route bound to a waypoint's Service with a missing backend: Accepted=True, ResolvedRefs=False BackendNotFound" \
  wait_k httproute -n demo calc-mesh-ghost -o 'jsonpath={.status.parents[0].parentRef.kind} {.status.parents[0].conditions[?(@.type=="Accepted")].status} {.status.parents[0].conditions[?(@.type=="ResolvedRefs")].reason}' \
  -- "Service True BackendNotFound"
check "... and the waypoint Gateway's mesh listener counts it (attachedRoutes 1)" \
  wait_k gateway -n demo waypoint -o 'jsonpath={.status.listeners[0].name} {.status.listeners[0].attachedRoutes}' -- "mesh 1"
# Stale parents go: calc-ingress's parentRef now names another controller's kind, and calc-typo
# becomes invalid (an unsupported filter: left out of the compile); the entries we wrote for them
# are removed.
K patch httproute -n demo calc-ingress --type=merge \
  -p '{"spec":{"parentRefs":[{"group":"example.com","kind":"Thing","name":"elsewhere"}]}}' >/dev/null
K patch httproute -n demo calc-typo --type=merge \
  -p '{"spec":{"rules":[{"filters":[{"type":"CORS"}],"backendRefs":[{"name":"calculate","port":8080}]}]}}' >/dev/null
check "a parentRef moved to another controller's kind: our status.parents entry is removed" \
  wait_k httproute -n demo calc-ingress -o 'jsonpath={.status.parents[*].controllerName}' -- ""
check "a route that became invalid (left out of the compile): our status.parents entry is removed" \
  wait_k httproute -n demo calc-typo -o 'jsonpath={.status.parents[*].controllerName}' -- ""
K delete httproute -n demo calc-typo calc-mesh-ghost >/dev/null
K delete gateway -n demo ingress-gw >/dev/null
ig_objects_gone() {
  local left
  for _ in $(seq 1 200); do
    left=$(K get deployment,service,serviceaccount -n demo -l gateway.istio.io/managed=istio.io-gateway-controller -o name 2>&1)
    [[ -z $left ]] && return 0
    sleep 0.1
  done
  echo "left: $left"
  return 1
}
check "the Gateway deleted: its Deployment, Service and ServiceAccount are deleted" ig_objects_gone

# ---- D1b: an Istio Gateway (networking.istio.io, same plural "gateways") + a VirtualService
# naming it, over --kube: served to the pods its selector matches, as in the seeds' Bookinfo ----
K create -f - --validate=false >"$T/istio-gw.out" 2>&1 <<'Y'
apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: Gateway
  metadata: {name: calc-gateway, namespace: demo}
  spec:
    selector: {istio: ingressgateway}
    servers: [{port: {number: 8081, name: http, protocol: HTTP}, hosts: ["*"]}]
- apiVersion: networking.istio.io/v1
  kind: VirtualService
  metadata: {name: calc-via-gateway, namespace: demo}
  spec:
    hosts: ["*"]
    gateways: [calc-gateway]
    http: [{route: [{destination: {host: calculate, port: {number: 8080}}}]}]
- apiVersion: v1
  kind: Pod
  metadata:
    name: istio-ingressgateway-0
    namespace: demo
    labels: {istio: ingressgateway, istio.io/dataplane-mode: none}
  spec: {serviceAccountName: ingress-gw, nodeName: node-a, containers: [{name: istio-proxy, image: registry.test/ambient:1.0}]}
  status: {phase: Running, podIP: 10.244.1.12, podIPs: [{ip: 10.244.1.12}]}
Y
check "kubectl creates an Istio Gateway beside the Gateway API's (both plural gateways)" \
  contains -E 'gateway.networking.istio.io/calc-gateway created' "$T/istio-gw.out"
nsx_bg lo "$T/probe-igi.out" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin XDS_ADDRESS="https://$CP_ADDR" \
  XDS_ROOT_CA="$T/cacerts/root-cert.pem" AUTH_TOKEN=ingress-token-8e2a INSTANCE_IP=10.244.1.12 PROXY_TYPE=router \
  POD_NAME=istio-ingressgateway-0 POD_NAMESPACE=demo RUST_LOG=info "$PROBE" 30
PROBE_IGI_PID=$NSX_LAST_PID
igi_snapshot() {  # igi_snapshot PYTHON-EXPR over the router probe's last SNAPSHOT `s`
  local last
  for _ in $(seq 1 200); do
    last=$(grep '^SNAPSHOT ' "$T/probe-igi.out" 2>/dev/null | tail -n 1 | cut -d' ' -f2-)
    [[ -n $last ]] && "$PY" -c 'import json, sys; s = json.loads(sys.argv[1]); sys.exit(0 if eval(sys.argv[2]) else 1)' \
      "$last" "$1" && return 0
    sleep 0.1
  done
  echo "last: $last"; grep -v '^SNAPSHOT' "$T/probe-igi.out" | tail -n 5
  return 1
}
check "the Istio Gateway + VirtualService from the API reach the selected pod as router routes (http.8081 -> calculate)" \
  igi_snapshot "s['routes'].get('http.8081', [{}])[0].get('cluster') == 'outbound|8080||calculate.demo.svc.cluster.local'"
K delete gateway.networking.istio.io -n demo calc-gateway >/dev/null 2>&1
check "the Istio Gateway deleted over the API: its routes leave the pod" igi_snapshot "'http.8081' not in s['routes']"
check "... and the Gateway API's Gateways were never touched by it (waypoint still there)" \
  wait_k gateway.gateway.networking.k8s.io -n demo waypoint -o 'jsonpath={.metadata.name}' -- "waypoint"
nsx_stop "$PROBE_IGI_PID" 5
K delete virtualservice -n demo calc-via-gateway >/dev/null
K delete pod -n demo istio-ingressgateway-0 >/dev/null

# ---- D2: the kinds --kube reads like the directory: RequestAuthentication, RateLimitPolicy ----
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/jwt-key.pem" 2>/dev/null
"$PY" - "$T/jwt-key.pem" "$ZT_ROOT/tests/66-waypoint-e2e/jwt_tool.py" >"$T/authn-rl.json" <<'PY'
import json, subprocess, sys
jwks = subprocess.run([sys.executable, sys.argv[2], "jwks", sys.argv[1]], check=True, capture_output=True, text=True).stdout
svc = [{"group": "", "kind": "Service", "name": "calculate"}]
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
    {"apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication",
     "metadata": {"name": "jwt", "namespace": "demo"},
     "spec": {"targetRefs": svc, "jwtRules": [{"issuer": "https://issuer.test", "jwks": jwks}]}},
    {"apiVersion": "ambient.dev/v1alpha1", "kind": "RateLimitPolicy",
     "metadata": {"name": "calculate", "namespace": "demo"},
     "spec": {"targetRefs": svc, "local": {"requests": 5, "unit": "minute"}}}]}))
PY
K create -f "$T/authn-rl.json" --validate=false >"$T/authn-rl.out" 2>&1
check "kubectl creates a RequestAuthentication and a RateLimitPolicy (ambient.dev CRD)" \
  contains -c 'created' "$T/authn-rl.out"
check "the waypoint gets the RequestAuthentication (jwt_authn) and the RateLimitPolicy (local_ratelimit) from the API" \
  wait_snapshot "s['routes'].get($R, [{}])[0].get('jwt') is True and s['routes'].get($R, [{}])[0].get('localRateLimit') is True"
K delete ratelimitpolicy -n demo calculate >/dev/null 2>&1
check "deleting the RateLimitPolicy takes the limit off the waypoint's route (the JWT rule stays)" \
  wait_snapshot "s['routes'].get($R, [{}])[0].get('jwt') is True and 'localRateLimit' not in s['routes'].get($R, [{}])[0]"

# An Istio EnvoyFilter carrying a local_ratelimit patch (ratelimit_loader.h) arrives the same way.
K create -f - --validate=false >/dev/null 2>&1 <<'EF'
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: calculate-ratelimit, namespace: demo}
spec:
  targetRefs: [{kind: Service, group: "", name: calculate}]
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: WAYPOINT
      listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager}}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: http_local_rate_limiter
          token_bucket: {max_tokens: 5, tokens_per_fill: 5, fill_interval: 60s}
EF
check "an EnvoyFilter with a local_ratelimit patch from the API limits the waypoint's route" \
  wait_snapshot "s['routes'].get($R, [{}])[0].get('localRateLimit') is True"
K delete envoyfilter -n demo calculate-ratelimit >/dev/null 2>&1
check "deleting the EnvoyFilter takes the limit off again" \
  wait_snapshot "'localRateLimit' not in s['routes'].get($R, [{}])[0]"

# ---- D2b: the mesh config (ConfigMap istio-system/istio) arrives and changes; only it is read ----
# Listed from /api/v1/namespaces/istio-system/configmaps with fieldSelector metadata.name=istio:
# the istio-ca-root-cert ConfigMaps the controlplane publishes (istio-system among them) are not.
cm_scoped() {
  grep -qE 'GET /api/v1/namespaces/istio-system/configmaps\?[^ ]*fieldSelector=metadata\.name%3Distio' "$T/api.out" &&
    grep -qE 'GET /api/v1/namespaces/istio-system/configmaps\?watch=1[^ ]*fieldSelector=metadata\.name%3Distio' "$T/api.out" &&
    ! grep -qE 'GET /api/v1/configmaps' "$T/api.out" &&
    grep -qE "listed 0 configmaps at resourceVersion" "$T/cp1.log"
}
check "configmaps are listed and watched in istio-system by name only (/namespaces/istio-system, fieldSelector metadata.name=istio)" \
  cm_scoped
mesh_cm() {  # mesh_cm PROVIDER — the ConfigMap istio-system/istio with one ext_authz provider
  cat <<CM
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    extensionProviders:
    - name: $1
      envoyExtAuthzHttp: {service: ext-authz.demo.svc.cluster.local, port: 8000}
CM
}
mesh_cm authz-one | K create -f - --validate=false >/dev/null 2>&1
check "the mesh config arrives from the API: the controlplane logs its extension provider" \
  wait_for_file_match "$T/cp1.log" 'mesh config from kube:configmaps .*istio-system/istio: extension providers \[authz-one\]' 20
mesh_cm authz-two | K replace -f - --validate=false >/dev/null 2>&1
check "a change of the mesh config is seen: the new provider is logged" \
  wait_for_file_match "$T/cp1.log" 'mesh config from kube:configmaps .*extension providers \[authz-two\]' 20
K create configmap other -n istio-system --from-literal=mesh='extensionProviders: [{name: nope}]' >/dev/null 2>&1
K delete configmap istio -n istio-system >/dev/null 2>&1
check "deleting it is seen (another ConfigMap in istio-system is not the mesh config)" \
  wait_for_file_match "$T/cp1.log" 'mesh config none \(no ConfigMap istio-system/istio\)' 20

# ---- D3: a Service without a selector gets its endpoints from EndpointSlices ----
K create -f - --validate=false >/dev/null <<'EPS'
apiVersion: v1
kind: Service
metadata: {name: db, namespace: demo}
spec: {clusterIP: 10.96.7.7, clusterIPs: [10.96.7.7], ports: [{name: pg, port: 5432, protocol: TCP, targetPort: 5432}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-x7k2p
  namespace: demo
  labels: {kubernetes.io/service-name: db, endpointslice.kubernetes.io/managed-by: external-db-operator}
addressType: IPv4
ports: [{name: pg, port: 15432, protocol: TCP}]
endpoints:
- {addresses: [192.168.50.10], conditions: {ready: true}}
- {addresses: [192.168.50.11], conditions: {ready: true}}
- {addresses: [10.244.1.22], targetRef: {kind: Pod, name: calc-dog, namespace: demo}}
EPS
D1="db-x7k2p/192.168.50.10" D2="db-x7k2p/192.168.50.11" DBH="demo/db.demo.svc.cluster.local"
check "xDS: each non-pod EndpointSlice address is a workload of the Service (slice port 15432 for 5432, host network, no tunnel)" \
  wait_state "s.get('$D1', {}).get('services', {}).get('$DBH') == {'5432': 15432} and s['$D1']['network_mode'] == 'HOST_NETWORK' and s['$D1']['protocol'] == 'NONE' and s['$D1']['uid'] == 'Kubernetes/discovery.k8s.io/EndpointSlice/demo/db-x7k2p/192.168.50.10' and '$D2' in s"
check "xDS: the slice's Pod targetRef joins that pod to the selector-less Service" \
  wait_state "s.get('calc-dog', {}).get('services', {}).get('$DBH') == {'5432': 15432}"
K patch endpointslice -n demo db-x7k2p --type merge >"$T/eps-patch.out" 2>&1 \
  -p '{"endpoints":[{"addresses":["192.168.50.11"],"conditions":{"ready":false}}]}'
check "kubectl patch of the slice: the removed address leaves, the other turns unhealthy, the pod leaves the Service" \
  wait_state "'$D1' not in s and s.get('$D2', {}).get('status') == 'UNHEALTHY' and '$DBH' not in s.get('calc-dog', {}).get('services', {})"

# ---- E: a watch broken by 410 re-lists with nothing lost ----
ctl partition >/dev/null
sleep 0.5
K delete pod -n demo web-2 >/dev/null
K create -f - --validate=false >/dev/null <<'POD'
apiVersion: v1
kind: Pod
metadata: {name: web-3, namespace: demo, labels: {app: web}}
spec: {serviceAccountName: web, nodeName: node-a, containers: [{name: web, image: nginx:1.27, ports: [{name: http, containerPort: 8080}]}]}
status: {phase: Running, podIP: 10.244.1.13, podIPs: [{ip: 10.244.1.13}], conditions: [{type: Ready, status: "True"}]}
POD
ctl compact >/dev/null
ctl heal >/dev/null
check "the controlplane's pod watch got 410 Gone and re-listed" \
  wait_for_file_match "$T/cp1.log" 'watch pods: 410 Gone.*re-listing' 20
check "nothing lost: the pod deleted during the outage is gone, the one created is in the mesh" \
  wait_state "'web-2' not in s and s.get('web-3', {}).get('protocol') == 'HBONE' and s.get('web-1', {}).get('protocol') == 'HBONE' and 'calc-dog' in s"
relisted() {
  "$PY" -c 'import json,sys; s=json.loads(sys.argv[1]); assert s["gone"] >= 1 and s["lists"]["pods"] >= 2, s' "$(ctl stats)"
}
check "the API server sent 410s and the controlplane listed pods again" relisted

# ---- F: a second replica waits; Gateway delete cleans up ----
start_cp "$T/cp2.log" cp-2
CP2=$NSX_LAST_PID
for _ in $(seq 1 150); do grep -q "serving on" "$T/cp2.log" 2>/dev/null && break; sleep 0.1; done
sleep 3
check "a second replica does not take the Lease while the holder renews it" \
  wait_k lease -n istio-system ambient-controlplane-waypoints -o 'jsonpath={.spec.holderIdentity}' -- cp-1
check_not "... and writes nothing" contains 'applied /' "$T/cp2.log"
K delete gateway -n demo waypoint >/dev/null
managed_gone() {
  local out
  for _ in $(seq 1 200); do
    out=$(K get deploy,svc,sa -n demo -l gateway.istio.io/managed=istio.io-mesh-controller -o name 2>&1)
    [[ -z $out ]] && return 0
    sleep 0.1
  done
  echo "$out"
  return 1
}
check "deleting the Gateway deletes its Deployment, Service and ServiceAccount" managed_gone
nsx_stop "$CP1" 5
check "when the holder stops, the second replica takes the Lease over after it expires" \
  wait_for_file_match "$T/cp2.log" 'acquired the lease istio-system/ambient-controlplane-waypoints as cp-2' 30

nsx_stop "$PROBE_PID" 5
nsx_stop "$XDS" 5
nsx_stop "$CP2" 5
summary
