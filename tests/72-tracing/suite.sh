#!/usr/bin/env bash
# tests/72-tracing/suite.sh [BIN_DIR] — tracing configured by Istio's Telemetry API, end to end
# with the real binaries, on the 66-waypoint-e2e mesh (controlplane serve, ambient-cni + ztunnel
# on two nodes, the calculate waypoint) plus:
#   zipkin-0  10.99.1.40 (node 1, ns istio-system, not captured): tests/72-tracing/
#             zipkin_collector.py on :9411 behind the Service istio-system/zipkin;
#   MeshConfig (ConfigMap istio-system/istio): extensionProvider `zipkin` (maxTagLength 40);
#   Telemetry istio-system/mesh-default: provider zipkin, 100 %, a literal custom tag —
#   written after the mesh is up, so the whole configuration arrives live over xDS.
# The waypoint has no ZIPKIN_ADDRESS: only the controlplane's config turns tracing on.
# Checks: the waypoint's span at the collector joins the client's B3 context (parent = the
# client's span, kind SERVER, Istio's name, the custom tag, http.url cut at maxTagLength) and the
# app receives the waypoint's span as its caller; at 100 % every new request is traced; a
# namespace Telemetry edited live to 0 % stops new traces while a caller's sampled decision still
# wins; back to 100 % all are traced again.
# Then through the ingress gateway (ingress-0 10.99.1.20, the waypoint binary as PROXY_TYPE=router,
# Istio Gateway + VirtualService `gateways:`) to front (10.99.1.21, Service front with
# istio.io/ingress-use-waypoint, tests/72-tracing/front_app.py: calls calculate forwarding the
# trace headers, as Bookinfo's productpage calls reviews): one trace over the gateway's span,
# front's waypoint span (its child) and calculate's waypoint span (child of what the app
# forwarded), with and without the client's context; a Telemetry targetRefs kind Gateway edited
# live to 0 % stops the gateway's spans only.
# Needs root; about 25 s in the release build.
# shellcheck disable=SC2015,SC2154,SC1091
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib/waypoint-mesh.sh" "${1:-}"
wpm_init tracing
ZK_IP=10.99.1.40
IG_IP=10.99.1.20
FRONT_IP=10.99.1.21
SPANS="$T/spans.jsonl"

eval "wp_tokens_base() $(declare -f wp_tokens | tail -n +2)"
wp_tokens() {
  wp_tokens_base
  echo "- {token: ingress-token, serviceAccount: istio-ingress/ingress}" >>"$NSX_TMP/tokens.yaml"
  echo ingress-token >"$NSX_TMP/token-ig"
}
eval "wp_topology_base() $(declare -f wp_topology | tail -n +2)"
wp_topology() {
  wp_topology_base
  zn_pod 1 zipkin-0 "$ZK_IP"
  zn_pod 1 ingress-0 "$IG_IP"
  zn_pod 1 front-1 "$FRONT_IP"
}
tr_apps() {
  wp_apps || return 1
  nsx_bg zipkin-0 "$T/zipkin.log" "$ZT_PY" -u "$HERE/zipkin_collector.py" 9411 "$SPANS"
  nsx_bg front-1 "$T/app-front.log" "$ZT_PY" -u "$HERE/front_app.py" 8080 "$WP_VIP"
  wait_for_port zipkin-0 9411 10 || { echo "collector not listening"; tail -n 5 "$T/zipkin.log"; return 1; }
  wait_for_port front-1 8080 10 || { echo "front app not listening"; tail -n 5 "$T/app-front.log"; return 1; }
}
WP_APPS=tr_apps
# The waypoint flushes every span at once (batch 1) so the suite waits little.
eval "wp_waypoint_start_base() $(declare -f wp_waypoint_start | tail -n +2 | sed 's/CONNECTION_TERMINATION_DEADLINE=3s/CONNECTION_TERMINATION_DEADLINE=3s TRACING_BATCH_SIZE=1 TRACING_FLUSH_INTERVAL=100ms/')"
wp_waypoint_start() { wp_waypoint_start_base; }

wpm_bringup || abort "mesh up" "$WPM_BRINGUP_LOG"
pass "mesh up (waypoint without ZIPKIN_ADDRESS)"

# tr_telemetry NAME NAMESPACE PERCENT — a Telemetry file (replaced atomically).
tr_telemetry() {
  wp_put "45-telemetry-$1.yaml" <<Y
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: $1, namespace: $2}
spec:
  tracing:
  - providers: [{name: zipkin}]
    randomSamplingPercentage: $3
    customTags:
      suite: {literal: {value: tracing-72}}
Y
}
wp_put 40-zipkin.yaml <<Y
apiVersion: v1
kind: Namespace
metadata: {name: istio-system}
---
apiVersion: v1
kind: Service
metadata: {name: zipkin, namespace: istio-system}
spec:
  clusterIP: 10.99.200.94
  selector: {app: zipkin}
  ports: [{name: http-query, port: 9411, targetPort: 9411}]
---
apiVersion: v1
kind: Pod
metadata: {name: zipkin-0, namespace: istio-system, labels: {app: zipkin, istio.io/dataplane-mode: none}}
spec:
  serviceAccountName: zipkin
  nodeName: node-1
  containers: [{name: zipkin, ports: [{name: http-query, containerPort: 9411}]}]
status: {phase: Running, podIP: $ZK_IP}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    extensionProviders:
    - name: zipkin
      zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411, maxTagLength: 40}
Y
tr_telemetry mesh-default istio-system 100

# The ingress gateway (the waypoint binary as PROXY_TYPE=router, not captured) and front, the
# seeds' productpage: a Service behind the waypoint that the gateway reaches through it
# (istio.io/ingress-use-waypoint) and whose app calls calculate, forwarding the trace headers.
wp_put 50-ingress.yaml <<Y
apiVersion: v1
kind: Namespace
metadata: {name: istio-ingress}
---
apiVersion: v1
kind: Pod
metadata: {name: ingress-0, namespace: istio-ingress, labels: {istio: ingressgateway, istio.io/dataplane-mode: none}}
spec:
  serviceAccountName: ingress
  nodeName: node-1
  containers: [{name: istio-proxy, ports: [{name: http, containerPort: 80}]}]
status: {phase: Running, podIP: $IG_IP}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: front-gateway, namespace: istio-ingress}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [front.example.com]}]
---
apiVersion: v1
kind: Service
metadata:
  name: front
  namespace: e2e
  labels: {istio.io/use-waypoint: waypoint, istio.io/ingress-use-waypoint: "true"}
spec:
  clusterIP: 10.99.200.21
  selector: {app: front}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
$(wp_pod front-1 node-1 "$FRONT_IP" front "app: front")
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: front, namespace: e2e}
spec:
  hosts: [front.example.com]
  gateways: [istio-ingress/front-gateway]
  http: [{route: [{destination: {host: front, port: {number: 80}}}]}]
Y
zn_cni_add 1 front-1 e2e front >/dev/null || abort "cni add front-1"
nsx_bg_env ingress-0 "$T/ingress.log" \
  PROXY_TYPE=router POD_NAME=ingress-0 POD_NAMESPACE=istio-ingress SERVICE_ACCOUNT=ingress \
  INSTANCE_IP="$IG_IP" NODE_NAME=node-1 TRUST_DOMAIN="$ZT_TRUST_DOMAIN" \
  XDS_ADDRESS=https://10.99.1.254:15012 CA_ADDRESS=https://10.99.1.254:15012 \
  ALT_XDS_HOSTNAME=localhost ALT_CA_HOSTNAME=localhost \
  XDS_ROOT_CA="$T/cacerts/root-cert.pem" CA_ROOT_CA="$T/cacerts/root-cert.pem" \
  AUTH_TOKEN="$T/token-ig" RUST_LOG=info LOG_FORMAT=plain WAYPOINT_WORKER_THREADS=2 \
  CONNECTION_TERMINATION_DEADLINE=3s TRACING_BATCH_SIZE=1 TRACING_FLUSH_INTERVAL=100ms -- "$WP_BIN"
IG_PID=$NSX_LAST_PID

# tr_wait_sampling WANT — until the waypoint's calculate route runs sampling WANT (per million,
# e.g. "1000000/1000000") with the zipkin provider: how the suite knows an edit is applied.
TR_DUMP_PY='
import json, sys
d = json.load(sys.stdin)
rc = [x for x in d["routes"] if x["name"].endswith("|calculate.e2e.svc.cluster.local")][0]
t = rc["virtualHosts"][0].get("tracing", {})
print(t.get("randomSampling", "-"), t.get("report", "-"), t.get("collectorCluster", "-"))'
tr_wait_sampling() {
  local want="$1 True outbound|9411||zipkin.istio-system.svc.cluster.local" got=""
  for _ in $(seq 1 75); do
    got=$(wp_config_dump | "$ZT_PY" -c "$TR_DUMP_PY" 2>/dev/null)
    [[ $got == "$want" ]] && return 0
    sleep 0.2
  done
  echo "waypoint tracing '${got:-?}', wanted '$want'"
  logs cp waypoint
  return 1
}
check "Telemetry + MeshConfig provider reach the waypoint live (100 %, collector cluster)" \
  tr_wait_sampling 1000000/1000000

# tr_spans PY-FILTER — the collected spans (a Python list `spans`) through an assertion script.
tr_spans() { "$ZT_PY" -c "import json,sys; spans=[json.loads(l) for l in open(sys.argv[1])]; $1" "$SPANS" "${@:2}"; }
# tr_wait_span URL-PART [N] — until N (default 1) spans whose http.url contains URL-PART arrived.
tr_wait_span() {
  local n="${2:-1}"
  for _ in $(seq 1 50); do
    tr_spans 'sys.exit(0 if sum(sys.argv[2] in s["tags"].get("http.url","") for s in spans) >= int(sys.argv[3]) else 1)' \
      "$1" "$n" && return 0
    sleep 0.2
  done
  echo "fewer than $n spans for $1 at the collector:"
  tail -n 3 "$SPANS"
  logs zipkin waypoint
  return 1
}
curl_client() { nsx_exec client curl -s -o /dev/null --max-time 5 -w '%{http_code}' "$@"; }

TRACE=463ac35c9f6413ad48485a3953bb6124
CALLER=a2fb4a1d1a96d312
code=$(curl_client -H "x-b3-traceid: $TRACE" -H "x-b3-spanid: $CALLER" -H "x-b3-sampled: 1" "$VIP/calc?from=client&a=1&b=2")
[[ $code == 200 ]] && pass "client request through the waypoint: 200" || fail "client request through the waypoint" "$code"
check "the waypoint's span reached the collector" tr_wait_span "from=client"
joined() {
  tr_spans '
s = [x for x in spans if "from=client" in x["tags"].get("http.url", "")][0]
assert s["traceId"] == sys.argv[2] and s["parentId"] == sys.argv[3], s
assert s["kind"] == "SERVER" and s["name"] == "calculate.e2e.svc.cluster.local:80/*", s
assert s["localEndpoint"]["serviceName"] == "waypoint.e2e", s
assert s["tags"]["suite"] == "tracing-72", s["tags"]
assert len(s["tags"]["http.url"]) == 40, s["tags"]["http.url"]
assert s["tags"]["http.status_code"] == "200", s["tags"]
print(s["id"])' "$TRACE" "$CALLER"
}
check "span: the client's trace, parent = the client's span, SERVER, Istio's name, custom tag, url cut at maxTagLength" joined
WP_SPAN=$(joined 2>/dev/null)
app_joined() {
  grep -h "tp=00-$TRACE-$WP_SPAN-01" "$T/app-cat.log" "$T/app-dog.log" >/dev/null ||
    { echo "no app request with traceparent 00-$TRACE-$WP_SPAN-01"; grep -h "from=client" "$T"/app-*.log; return 1; }
}
check "the app received the waypoint's span as its caller (traceparent)" app_joined

all_traced() {
  local i
  for i in 1 2 3 4 5; do [[ $(curl_client "$VIP/calc?run=full$i") == 200 ]] || return 1; done
  tr_wait_span "run=full" 5 || return 1
  tr_spans 'ids = {s["traceId"] for s in spans if "run=full" in s["tags"].get("http.url", "")}; assert len(ids) == 5, ids'
}
check "100 %: five new requests, five spans, five new traces" all_traced

# A namespace Telemetry overrides the root one: 0 %.
tr_telemetry e2e-ns e2e 0
check "Telemetry edited live: the waypoint runs 0 %" tr_wait_sampling 0/1000000
none_traced() {
  local i
  for i in 1 2 3 4 5; do [[ $(curl_client "$VIP/calc?run=zero$i") == 200 ]] || return 1; done
  # The caller's decision still wins; its span is queued after the five above, so once it
  # arrived none of them is on its way.
  [[ $(curl_client -H "x-b3-sampled: 1" "$VIP/calc?run=forced") == 200 ]] || return 1
  tr_wait_span "run=forced" || return 1
  tr_spans 'n = sum("run=zero" in s["tags"].get("http.url", "") for s in spans); assert n == 0, n'
}
check "0 %: no span for new requests; a caller's sampled decision is still traced" none_traced

tr_telemetry e2e-ns e2e 100
check "Telemetry back to 100 % live" tr_wait_sampling 1000000/1000000
again_traced() {
  local i
  for i in 1 2 3; do [[ $(curl_client "$VIP/calc?run=again$i") == 200 ]] || return 1; done
  tr_wait_span "run=again" 3
}
check "100 % again: every request traced" again_traced

# ---- through the ingress gateway: gateway -> front's waypoint -> front app -> calculate's waypoint
ig_ready() {
  local code=""
  for _ in $(seq 1 100); do
    code=$(nsx_exec ingress-0 curl -s -o /dev/null -w '%{http_code}' --max-time 1 http://127.0.0.1:15021/healthz/ready)
    [[ $code == 200 ]] && wait_for_port ingress-0 80 5 && zn_wait_pods n1 3 5 >/dev/null && return 0
    nsx_alive "$IG_PID" || { echo "ingress exited"; break; }
    sleep 0.2
  done
  echo "ingress not ready (last status ${code:-none})"; logs ingress cp
  return 1
}
check "ingress gateway (PROXY_TYPE=router) ready, front-1 in ztunnel" ig_ready
# ig_get PATH [CURL-ARGS...] — status of one request to the gateway for front.example.com (curl
# runs in the gateway's netns: the gateway is outside the mesh, so it is the client's first hop).
ig_get() {
  local p=$1; shift
  nsx_exec ingress-0 curl -s -o /dev/null --max-time 8 -w '%{http_code}' -H 'Host: front.example.com' "$@" "http://$IG_IP$p"
}
# tr_wait_trace TRACE N — until N spans of trace TRACE arrived.
tr_wait_trace() {
  for _ in $(seq 1 50); do
    tr_spans 'sys.exit(0 if sum(s["traceId"] == sys.argv[2] for s in spans) >= int(sys.argv[3]) else 1)' "$1" "$2" && return 0
    sleep 0.2
  done
  echo "fewer than $2 spans of trace $1 at the collector:"
  grep -F "$1" "$SPANS"
  logs zipkin ingress waypoint app-front
  return 1
}
# The chain as parent links: the gateway's SERVER span (serviceName ingress.istio-ingress, named
# after its virtual host) joins the client (PARENT, or none: it is the root), front's waypoint
# span is its child, and calculate's waypoint span is the child of what front's app forwarded
# (the first waypoint's span). Prints the three span ids.
TR_CHAIN_PY='
t, parent = sys.argv[2], sys.argv[3] or None
mine = [s for s in spans if s["traceId"] == t]
assert len(mine) == 3, mine
def one(svc, name):
    m = [s for s in mine if s["localEndpoint"]["serviceName"] == svc and s["name"] == name]
    assert len(m) == 1, (svc, name, mine)
    assert m[0]["kind"] == "SERVER" and m[0]["tags"]["http.status_code"] == "200", m[0]
    return m[0]
g = one("ingress.istio-ingress", "front.example.com:80/*")
w1 = one("waypoint.e2e", "front.e2e.svc.cluster.local:80/*")
w2 = one("waypoint.e2e", "calculate.e2e.svc.cluster.local:80/*")
assert g.get("parentId") == parent, ("gateway parent", g.get("parentId"), parent)
assert w1.get("parentId") == g["id"], ("front waypoint parent", w1, g["id"])
assert w2.get("parentId") == w1["id"], ("calculate waypoint parent", w2, w1["id"])
print(g["id"], w1["id"], w2["id"])'
IG_TRACE=5a1b2c3d4e5f60718293a4b5c6d7e8f9
IG_CALLER=0f1e2d3c4b5a6978
r=$(ig_get /f -H "x-b3-traceid: $IG_TRACE" -H "x-b3-spanid: $IG_CALLER" -H "x-b3-sampled: 1")
[[ $r == 200 ]] && pass "client -> gateway -> front's waypoint -> front -> calculate's waypoint -> calculate: 200" ||
  fail "request through the gateway and two waypoints" "$r $(logs ingress app-front)"
check "three spans of the client's trace at the collector (gateway, two waypoints)" tr_wait_trace "$IG_TRACE" 3
check "one trace: gateway span child of the client's, front's waypoint child of the gateway's, calculate's waypoint child of what the app forwarded" \
  tr_spans "$TR_CHAIN_PY" "$IG_TRACE" "$IG_CALLER"
read -r _ _ W2_SPAN < <(tr_spans "$TR_CHAIN_PY" "$IG_TRACE" "$IG_CALLER" 2>/dev/null)
check "calculate's app received calculate's waypoint span as its caller" \
  grep -qh "tp=00-$IG_TRACE-${W2_SPAN:-none}-01" "$T/app-cat.log" "$T/app-dog.log"

# No client context: the gateway starts the trace (its span is the root).
r=$(ig_get "/f?run=root")
root_trace() {
  local t
  for _ in $(seq 1 50); do
    t=$(tr_spans 'print(next(s["traceId"] for s in spans if s["localEndpoint"]["serviceName"] == "ingress.istio-ingress" and "run=root" in s["tags"].get("http.url", "")))' 2>/dev/null)
    [[ -n $t ]] && break
    sleep 0.2
  done
  [[ -n $t ]] || { echo "no gateway span for run=root"; return 1; }
  tr_wait_trace "$t" 3 && tr_spans "$TR_CHAIN_PY" "$t" ""
}
[[ $r == 200 ]] && check "no client context: the gateway's span is the root of a new trace, the chain below it the same" root_trace ||
  fail "request through the gateway without trace headers" "$r"

# A Telemetry in the gateway's namespace with targetRefs to its Gateway: 0 % there only.
wp_put 46-telemetry-gateway.yaml <<Y
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: front-gateway, namespace: istio-ingress}
spec:
  targetRefs: [{group: networking.istio.io, kind: Gateway, name: front-gateway}]
  tracing: [{randomSamplingPercentage: 0}]
Y
IG_DUMP_PY='
import json, sys
d = json.load(sys.stdin)
print(" ".join(v.get("tracing", {}).get("randomSampling", "-") for r in d["routes"] for v in r["virtualHosts"]
               if v["name"].startswith("front.example.com")))'
ig_wait_zero() {
  local got=""
  for _ in $(seq 1 75); do
    got=$(nsx_exec ingress-0 curl -s --max-time 3 http://127.0.0.1:15000/config_dump | "$ZT_PY" -c "$IG_DUMP_PY" 2>/dev/null)
    [[ $got == 0/1000000 ]] && return 0
    sleep 0.2
  done
  echo "gateway front.example.com sampling '${got:-?}', wanted 0/1000000"; logs cp
  return 1
}
check "Telemetry targetRefs kind Gateway reaches the running gateway live: 0 %" ig_wait_zero
gw_unsampled() {
  [[ $(ig_get "/f?run=gw0") == 200 ]] || return 1
  # The gateway's queue is FIFO: once the forced request's span arrived, a span of run=gw0 would
  # have arrived before it.
  [[ $(ig_get "/f?run=gwf" -H "x-b3-sampled: 1") == 200 ]] || return 1
  for _ in $(seq 1 50); do
    tr_spans 'sys.exit(0 if [s for s in spans if s["localEndpoint"]["serviceName"] == "ingress.istio-ingress"
                             and "run=gwf" in s["tags"].get("http.url", "")] else 1)' && break
    sleep 0.2
  done
  tr_spans '
g = [s for s in spans if s["localEndpoint"]["serviceName"] == "ingress.istio-ingress"]
assert not [s for s in g if "run=gw0" in s["tags"].get("http.url", "")], "gateway span at 0 %"
assert [s for s in g if "run=gwf" in s["tags"].get("http.url", "")], "no forced gateway span"'
}
check "gateway at 0 %: no gateway span for a new request; a caller's sampled decision still traced" gw_unsampled
# The waypoint (its own Telemetry, 100 %) still traces the same request, as a new trace's root.
check "the waypoint behind it still samples run=gw0 (its Telemetry is its own)" tr_wait_span "run=gw0"
nsx_alive "$IG_PID" && pass "gateway alive after the run" || fail "gateway alive" "$(logs ingress)"

bad_collector() { ! grep -q "bad " "$T/zipkin.log" || { grep "bad " "$T/zipkin.log"; return 1; }; }
check "the collector received only well-formed Zipkin v2 POSTs" bad_collector

summary
