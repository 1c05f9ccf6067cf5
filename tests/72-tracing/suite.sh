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
# Needs root; about 20 s in the release build.
# shellcheck disable=SC2015,SC2154,SC1091
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib/waypoint-mesh.sh" "${1:-}"
wpm_init tracing
ZK_IP=10.99.1.40
SPANS="$T/spans.jsonl"

eval "wp_topology_base() $(declare -f wp_topology | tail -n +2)"
wp_topology() {
  wp_topology_base
  zn_pod 1 zipkin-0 "$ZK_IP"
}
tr_apps() {
  wp_apps || return 1
  nsx_bg zipkin-0 "$T/zipkin.log" "$ZT_PY" -u "$HERE/zipkin_collector.py" 9411 "$SPANS"
  wait_for_port zipkin-0 9411 10 || { echo "collector not listening"; tail -n 5 "$T/zipkin.log"; return 1; }
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

bad_collector() { ! grep -q "bad " "$T/zipkin.log" || { grep "bad " "$T/zipkin.log"; return 1; }; }
check "the collector received only well-formed Zipkin v2 POSTs" bad_collector

summary
