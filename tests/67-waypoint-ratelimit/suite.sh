#!/usr/bin/env bash
# tests/67-waypoint-ratelimit/suite.sh [BIN_DIR] — rate limiting at the waypoint, end to end with
# the real binaries: the 66-waypoint-e2e mesh (controlplane serve, ambient-cni + ztunnel on two
# nodes, the waypoint, the Calculate app, a curl client) plus an independent rate limit service
# (rls_server.py: python grpcio, messages compiled by protoc from the .proto it writes, counting
# per minute as the seeds' example does, quota 5).
#
# The policies are ours (RateLimitPolicy, ambient.dev/v1alpha1), scoped to named VirtualService
# routes so each story has its own bucket:
#   /rl-local   local token bucket of 5 per minute: 5 x 200, then 429 "local_rate_limited" with
#               x-ratelimit-* headers, flag RL in the access log, the rate_limited counter;
#   /rl-global  global limit against the RLS at a plain address (h2c): the waypoint's
#               descriptors (generic_key and the client's address) reach the service; 5 x 200,
#               then 429 + x-envoy-ratelimited, RL;
#   /rl-mesh    the same against an RLS that is a mesh workload (Service ratelimit, pod rls-1
#               captured by ztunnel): the call goes over HBONE with the waypoint's identity;
#   RLS down    requests are allowed (failure_mode_allowed counted); with failureModeDeny: true
#               they get 500 and flag RLSE.
# Needs root; about half a minute in the release build.
# shellcheck disable=SC2015,SC2154,SC1091
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib/waypoint-mesh.sh" "${1:-}"
wpm_init wp-rl openssl protoc
"$ZT_PY" -c 'import grpc' 2>/dev/null || { fail "python3-grpcio importable by $ZT_PY"; summary; exit 1; }
RLS_ADDR=10.99.1.254:18081  # node 1's bridge address: a plain (non-mesh) address for the waypoint

# Named routes in front of the Calculate VirtualService (wp_vs's EXTRA_HTTP_RULES).
RL_RULES='  - name: rl-local
    match: [{uri: {prefix: /rl-local}}]
    route: [{destination: {host: calculate, subset: cat-with-plus}}]
  - name: rl-global
    match: [{uri: {prefix: /rl-global}}]
    route: [{destination: {host: calculate, subset: cat-with-plus}}]
  - name: rl-mesh
    match: [{uri: {prefix: /rl-mesh}}]
    route: [{destination: {host: calculate, subset: cat-with-plus}}]'
wpm_extra_rules "$RL_RULES"

# rl_policies FAILURE_MODE_DENY
rl_policies() {
  wp_put 40-ratelimit.yaml <<Y
apiVersion: ambient.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: calculate-local, namespace: e2e}
spec:
  targetRefs: [{kind: Service, group: "", name: calculate}]
  routes: [rl-local]
  local: {requests: 5, unit: minute}
---
apiVersion: ambient.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: calculate-global, namespace: e2e}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  routes: [rl-global]
  global:
    domain: calculate
    service: "$RLS_ADDR"
    timeout: 2s  # margin for a starved python RLS on a loaded CI host (the suite asserts no timing)
    failureModeDeny: $1
    descriptors:
    - actions: [{genericKey: {value: calculate}}, {remoteAddress: {}}]
---
apiVersion: ambient.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: calculate-mesh, namespace: e2e}
spec:
  targetRefs: [{kind: Service, group: "", name: calculate}]
  routes: [rl-mesh]
  global:
    domain: calculate-mesh
    service: ratelimit:8081
    timeout: 2s
    descriptors:
    - actions: [{genericKey: {value: mesh}}]
---
apiVersion: v1
kind: Service
metadata: {name: ratelimit, namespace: e2e}
spec:
  clusterIP: 10.99.200.20
  selector: {app: ratelimit}
  ports: [{name: grpc, port: 8081, targetPort: 8081}]
---
$(wp_pod rls-1 node-1 10.99.1.3 ratelimit "app: ratelimit")
Y
}

mkdir -p "$WP_MESH"
rl_policies false
wpm_bringup || abort "mesh up: controlplane, ambient-cni + ztunnel on 2 nodes, waypoint ready" "$WPM_BRINGUP_LOG"
pass "mesh up with RateLimitPolicies (local on route rl-local, global on route rl-global), waypoint ready"
if grep -qE '(error|warning).*RateLimitPolicy' "$T/cp.log"; then
  fail "controlplane accepted the RateLimitPolicies without diagnostics" "$(grep -i ratelimit "$T/cp.log" | head)"
else
  pass "controlplane accepted the RateLimitPolicies without diagnostics"
fi

nsx_bg n1 "$T/rls.log" "$ZT_PY" -u "$HERE/rls_server.py" "$T/rls-pb" "$RLS_ADDR" 5
RLS_PID=$NSX_LAST_PID
wait_for_file_match "$T/rls.log" 'rls listening' 15 >/dev/null 2>&1 ||
  abort "independent RLS (python grpcio) listening on $RLS_ADDR" "$(tail -n 20 "$T/rls.log")"
pass "independent RLS (python grpcio, protoc-compiled messages) listening on $RLS_ADDR"

# burst PATH N — N requests on one keep-alive connection; one line per request:
# "CODE x-ratelimit-limit x-ratelimit-remaining x-envoy-ratelimited BODY-SIZE".
burst() {
  nsx_exec client curl -s --max-time 30 -o /dev/null \
    -w '%{http_code} %header{x-ratelimit-limit}|%header{x-ratelimit-remaining}|%header{x-envoy-ratelimited} %{size_download}\n' \
    "$VIP$1?i=[1-$2]"
}


# ---- local rate limit: 5 per minute ------------------------------------------------------------
codes=$(burst /rl-local 6)
want_local="200 5|4| 0
200 5|3| 0
200 5|2| 0
200 5|1| 0
200 5|0| 0"
first5=$(head -n 5 <<<"$codes" | awk '{ print $1, $2, 0 }')
sixth=$(sed -n 6p <<<"$codes")
[[ $first5 == "$want_local" && $sixth == "429 5|0| 18" ]] &&
  pass "local limit 5/minute: requests 1-5 answered 200 (x-ratelimit-remaining 4..0), the 6th 429 (18-byte body)" ||
  fail "local limit 5/minute: 5 x 200 then 429 with x-ratelimit-* headers" "$codes"
body=$(nsx_exec client curl -s --max-time 5 "$VIP/rl-local")
[[ $body == "local_rate_limited" ]] && pass "a locally limited request's body is Envoy's 'local_rate_limited'" ||
  fail "local limit body" "$body"
check "waypoint access log: the limited request carries flag RL, 429, and never reached an upstream" \
  access_has 'path="?/rl-local.* response_code=429 response_flags=RL .*route_name=rl-local upstream_cluster=[^ ]+ x_request_id='
check "waypoint metrics: envoy_http_local_rate_limit_rate_limited counted" \
  expect_metric wp_metrics wp envoy_http_local_rate_limit_rate_limited stat_prefix=http_local_rate_limiter
other=$(burst /calc 8 | awk '{ print $1 }' | sort | uniq -c | awk '{ print $1 "x" $2 }')
[[ $other == "8x200" ]] && pass "routes without a policy are not limited (8 x 200 on /calc)" ||
  fail "unlimited route" "$other"

# ---- global rate limit against the RLS ---------------------------------------------------------
codes=$(burst /rl-global 6)
first5=$(head -n 5 <<<"$codes" | awk '{ print $1 }' | tr '\n' ' ')
sixth=$(sed -n 6p <<<"$codes" | awk '{ print $1, $2 }')
[[ $first5 == "200 200 200 200 200 " && $sixth == "429 ||true" ]] &&
  pass "global limit (RLS quota 5/minute): requests 1-5 answered 200, the 6th 429 with x-envoy-ratelimited: true" ||
  fail "global limit: 5 x 200 then 429 + x-envoy-ratelimited" "$codes"
calls=$(grep -c '^call ' "$T/rls.log")
[[ $calls -ge 6 ]] && pass "the RLS answered $calls ShouldRateLimit calls" || fail "RLS calls >= 6" "$(tail -n 5 "$T/rls.log")"
check "the waypoint's descriptors reached the RLS: domain calculate, generic_key and the client's address" \
  grep -q 'call domain=calculate descriptors=generic_key=calculate,remote_address=10.99.1.1 code=OVER_LIMIT' "$T/rls.log"
check "waypoint access log: the RLS-limited request carries flag RL, 429" \
  access_has 'path="?/rl-global.* response_code=429 response_flags=RL '
check "waypoint metrics: envoy_ratelimit_over_limit counted" \
  expect_metric wp_metrics wp envoy_ratelimit_over_limit stat_prefix=calculate

# ---- global rate limit against the mesh RLS (HBONE) --------------------------------------------
# The same service as a mesh workload: pod rls-1 on node 1, captured by ztunnel. Added only now:
# a new port on node 1's bridge can change the bridge's MAC, which the plain-address calls above
# (to the bridge's IP) would otherwise meet with a stale neighbour entry.
zn_pod 1 rls-1 10.99.1.3
nsx_bg rls-1 "$T/rls-mesh.log" "$ZT_PY" -u "$HERE/rls_server.py" "$T/rls-mesh-pb" 0.0.0.0:8081 5
wait_for_file_match "$T/rls-mesh.log" 'rls listening' 15 >/dev/null 2>&1 ||
  abort "mesh RLS listening in pod rls-1" "$(tail -n 20 "$T/rls-mesh.log")"
{ zn_cni_add 1 rls-1 e2e ratelimit >/dev/null && zn_wait_pods n1 3 15; } >"$T/rls-mesh-add.out" 2>&1 ||
  abort "pod rls-1 added to the mesh" "$(cat "$T/rls-mesh-add.out")"
pass "the same RLS as a mesh workload: pod rls-1 (Service ratelimit:8081) captured by ztunnel on node 1"
codes=$(burst /rl-mesh 6 | awk '{ print $1 }' | tr '\n' ' ')
[[ $codes == "200 200 200 200 200 429 " ]] &&
  pass "global limit against the mesh RLS: 5 x 200, then 429" || fail "mesh RLS: 5 x 200 then 429" "$codes
$(tail -n 3 "$T/rls-mesh.log")"
check "the mesh RLS counted the waypoint's calls (domain calculate-mesh, generic_key mesh)" \
  grep -q 'call domain=calculate-mesh descriptors=generic_key=mesh code=OVER_LIMIT' "$T/rls-mesh.log"
check "node 1 ztunnel carried the RLS call inbound over HBONE from the waypoint's identity" \
  zn_expect_metric n1 istio_tcp_connections_opened_total reporter=destination \
  "source_principal=$(zn_spiffe e2e waypoint)" destination_workload=rls-1

# ---- RLS down: allow; failureModeDeny: deny with RLSE -------------------------------------------
nsx_stop "$RLS_PID" 3 || true
codes=$(burst /rl-global 3 | awk '{ print $1 }' | tr '\n' ' ')
[[ $codes == "200 200 200 " ]] && pass "RLS down, failure mode allow: requests are served (200 200 200)" ||
  fail "RLS down: allowed" "$codes"
check "waypoint metrics: envoy_ratelimit_failure_mode_allowed counted" \
  expect_metric wp_metrics wp envoy_ratelimit_failure_mode_allowed stat_prefix=calculate
rl_policies true
denied=""
for _ in $(seq 1 50); do
  denied=$(nsx_exec client curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$VIP/rl-global")
  [[ $denied == 500 ]] && break
  sleep 0.2
done
[[ $denied == 500 ]] && pass "RLS down with failureModeDeny: true (live policy edit): 500" ||
  fail "RLS down, failureModeDeny: 500" "last status $denied"
check "waypoint access log: the denied request carries flag RLSE" \
  access_has 'path="?/rl-global.* response_code=500 response_flags=RLSE '

summary
