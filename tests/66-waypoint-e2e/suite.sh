#!/usr/bin/env bash
# tests/66-waypoint-e2e/suite.sh [BIN_DIR] — the waypoint end to end with the real binaries:
# `controlplane serve` (YAML directory -> delta ADS + Istio CA), ambient-cni and a shared-mode
# ztunnel on each of two nodes, the waypoint binary in its own (uncaptured) pod netns, the
# seeds' Calculate app (v1 cat-plus on node 1, v2 dog-multi on node 2) and a client pod using
# curl, h2load and python grpcio. Topology and mesh: lib.sh. Needs root; about a minute in the
# release build.
#
# Each seed scenario goes through client -> ztunnel (node 1) -> HBONE -> waypoint -> HBONE ->
# the chosen pod's ztunnel -> app, and is judged from what the client got plus what the other
# side saw (the app's per-request log, the waypoint's access log and metrics, the destination
# ztunnel's metrics): canary 90/10 over 2,000 requests inside a binomial bound at p < 0.001,
# blue/green 0/100, dark launch by header `version: dog`, timeout (504 UT) against a v1 that
# sleeps, retries counted at the back end, abort 503 FI (always, and at 50% inside a binomial
# bound), delay DI, mirror copies, redirect, direct response, WebSocket upgrade, the destination
# ztunnel seeing the waypoint's identity, a pod-IP call skipping the service-only waypoint, live
# VirtualService edits under load with no failed request, HTTP/2 and gRPC through the mesh (a
# second Service added live: h2c to nginx, curl and h2load 2,000 requests all 2xx; python grpcio
# unary, server streaming and an error status, trailers at the client, grpc_response_status in the
# waypoint's metrics), L7 AuthorizationPolicy (DENY by path and by method on the Gateway, ALLOW by
# principal on the Service: a second client pod is denied; a dry-run DENY does not deny, its shadow
# result is on the access line and in envoy_http_rbac_shadow_denied) and RequestAuthentication (JWT
# valid / invalid / missing, keys and tokens from the openssl CLI; then a jwksUri http:// served
# from a pod by python's http.server and fetched by the controlplane: 401 while never fetched,
# then valid 200 / invalid 401 / missing 403), AuthorizationPolicy on a plain TCP service
# (a DENY of HTTP-only rules closes all TCP; ALLOW by principal relays the client, closes the
# intruder, with istio_tcp_* metrics flagged RBAC).
#
# Prints PASS/FAIL lines and "N passed, N failed"; exit 1 on any failure.
# shellcheck disable=SC2015,SC2154,SC1091
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib/waypoint-mesh.sh" "${1:-}"
wpm_init wp-e2e h2load nginx openssl
ID_WP=$(zn_spiffe e2e waypoint)
ID_CLIENT=$(zn_spiffe e2e client)

wpm_bringup || abort "mesh up: controlplane, ambient-cni + ztunnel on 2 nodes, waypoint ready" "$WPM_BRINGUP_LOG"
pass "mesh up: controlplane serve, ambient-cni + ztunnel on both nodes, waypoint ready (xDS + certificate from the controlplane)"

dump=$(wp_config_dump)
check "waypoint /config_dump: istiod's node id, its own identity, the calculate route and subset clusters" \
  "$ZT_PY" -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["nodeId"] == "waypoint~10.99.1.9~waypoint-0.e2e~e2e.svc.cluster.local", d["nodeId"]
assert d["identity"] == sys.argv[2], d["identity"]
names = [r["name"] for r in d["routes"]]
assert names == ["inbound-vip|80|http|calculate.e2e.svc.cluster.local"], names
cl = sorted(c["name"] for c in d["clusters"])
assert "inbound-vip|80|http/dog-with-multi|calculate.e2e.svc.cluster.local" in cl, cl
' "$dump" "$ID_WP"

# ---- helpers ------------------------------------------------------------------------------------

# get [CURL-ARGS...] URL — one request from the client pod: "CODE VERSION-HEADER BODY".
get() {
  nsx_exec client curl -s --max-time 8 -w '\n%{http_code} %header{x-app-version}' "$@" 2>&1 |
    awk 'NR == 1 { body = $0; next } { last = $0 } END { print last, body }'
}

# many N URL [CURL-ARGS...] — N requests on one keep-alive connection (curl's URL glob);
# prints one "CODE VERSION" line per request.
many() {
  local n="$1" url="$2"; shift 2
  nsx_exec client curl -s --max-time 120 -o /dev/null -w '%{http_code} %header{x-app-version}\n' "$@" \
    "${url}?i=[1-$n]"
}

# tally and access_has: tests/lib/waypoint-mesh.sh.

# app_count APP PATH — requests the app logged for exactly PATH.
app_count() { grep -cF "path=$2 " "$T/app-$1.log"; }

# ---- basic path ----------------------------------------------------------------------------------
r=$(get "$VIP/calc?a=2&b=3")
[[ $r == "200 cat-plus cat-plus 2+3=5" || $r == "200 dog-multi dog-multi 2x3=6" ]] &&
  pass "client -> VIP -> ztunnel -> waypoint -> pod: $r" || fail "a request to the calculate VIP is answered" "$r"
check "waypoint access log: source identity from the outer TLS peer, upstream cluster and host from the route" \
  access_has "src.identity=$ID_CLIENT .*path=\"?/calc\?a=2&b=3\"? .*response_code=200 .*upstream_cluster=inbound-vip\|80\|http/(cat-with-plus|dog-with-multi)\|$WP_HOST upstream_host=10\.99\.[12]\.2:8080"

# ---- canary 90/10 ----------------------------------------------------------------------------
# binom_bounds N P — "LO HI": the two-sided exact binomial acceptance interval for N trials of
# probability P at alpha = 0.001 (each tail < 0.0005).
binom_bounds() {
  "$ZT_PY" -c '
import sys
from math import exp, lgamma, log
n, p, a = int(sys.argv[1]), float(sys.argv[2]), 0.001
pmf = [exp(lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1) + k * log(p) + (n - k) * log(1 - p)) for k in range(n + 1)]
lo, acc = 0, 0.0
while acc + pmf[lo] < a / 2: acc += pmf[lo]; lo += 1
hi, acc = n, 0.0
while acc + pmf[hi] < a / 2: acc += pmf[hi]; hi -= 1
print(lo, hi)' "$1" "$2"
}
N=2000
split=$(many "$N" "$VIP/calc")
ncat=$(grep -c '^200 cat-plus$' <<<"$split")
ndog=$(grep -c '^200 dog-multi$' <<<"$split")
read -r lo hi < <(binom_bounds "$N" 0.1)
if [[ $((ncat + ndog)) == "$N" && $ndog -ge $lo && $ndog -le $hi ]]; then
  pass "canary 90/10: $N requests -> $ncat cat, $ndog dog (binomial bound at p<0.001: $lo..$hi)"
else
  fail "canary 90/10 over $N requests inside $lo..$hi dogs, all 200" "$(tally <<<"$split")"
fi

# ---- blue/green 0/100 --------------------------------------------------------------------------
wp_vs 0 100
check "blue/green: live VirtualService edit 0/100 reaches the waypoint" wp_wait_weights 0 100
bg=$(many 200 "$VIP/calc")
[[ $(grep -c '^200 dog-multi$' <<<"$bg") == 200 ]] && pass "blue/green 0/100: 200 of 200 requests served by dog (v2)" \
  || fail "blue/green 0/100: only dogs" "$(tally <<<"$bg")"

# ---- dark launch by header ----------------------------------------------------------------------
wp_vs 100 0
check "dark launch: live edit (default 100% cat) reaches the waypoint" wp_wait_weights 100 0
plain=$(many 100 "$VIP/calc")
dog=$(many 100 "$VIP/calc" -H 'version: dog')
[[ $(grep -c '^200 cat-plus$' <<<"$plain") == 100 && $(grep -c '^200 dog-multi$' <<<"$dog") == 100 ]] &&
  pass "dark launch: 100/100 without the header -> cat, 100/100 with 'version: dog' -> dog" ||
  fail "dark launch by header version: dog" "without: $(tally <<<"$plain"); with: $(tally <<<"$dog")"

# ---- timeout: v1 sleeps 3 s, route timeout 1 s ---------------------------------------------------
r=$(get "$VIP/slow?s=3")
[[ $r == "504  upstream request timeout" ]] && pass "timeout: v1 sleeping 3 s behind a 1 s route timeout -> 504 'upstream request timeout'" \
  || fail "timeout -> 504 upstream request timeout" "$r"
check "timeout: access log response_flags=UT, response_code=504" access_has 'path="?/slow\?s=3"? .*response_code=504 response_flags=UT '

# ---- per-try timeout: retries {attempts: 2, perTryTimeout: 300ms}, v1 sleeps 2 s ----------------
r=$(get -H 'x-try: per-try' "$VIP/slow?s=2&id=pt1")
n=$(app_count cat "/slow?s=2&id=pt1")
[[ $r == "504  upstream request timeout" && $n == 3 ]] &&
  pass "per-try timeout: each of 3 tries cut at perTryTimeout (the back end counted $n), then 504 'upstream request timeout'" ||
  fail "per-try timeout: 3 tries at the back end, then 504" "client: $r; back end tries: $n"
# Envoy (1.30+) lists flags in the order they were set: retries exhausted, then the timeout.
check "per-try timeout: access log response_flags=URX,UT attempts=3" access_has 'path="?/slow\?s=2&id=pt1"? .*response_code=504 response_flags=URX,UT .*attempts=3'

# ---- a request body with Expect: 100-continue ------------------------------------------------------
head -c 200000 /dev/urandom >"$T/body.bin"
r=$(get -H 'Expect: 100-continue' -H 'version: dog' --data-binary "@$T/body.bin" "$VIP/upload")
[[ $r == "200 dog-multi dog-multi got 200000 bytes" ]] && pass "POST 200,000 bytes with Expect: 100-continue through the waypoint: $r" \
  || fail "POST with Expect: 100-continue reaches the app whole" "$r"

# ---- retries: v1 answers 503, retries {attempts: 3, retryOn: 5xx} --------------------------------
r=$(get "$VIP/fail?id=retry1")
n=$(app_count cat "/fail?id=retry1")
[[ ${r%% *} == 503 && $n == 4 ]] && pass "retries: attempts 3 on 5xx -> the back end counted $n tries (1 + 3 retries), client got 503" \
  || fail "retries counted at the back end: 4 tries, final 503" "client: $r; back end tries: $n"
check "retries: access log attempts=4 and response_flags=URX" access_has 'path="?/fail\?id=retry1"? .*response_code=503 response_flags=URX .*attempts=4'

# ---- faults -------------------------------------------------------------------------------------
r=$(get -H 'x-fault: abort' "$VIP/calc?id=abort1")
n=$(app_count cat "/calc?id=abort1")
[[ $r == "503  fault filter abort" && $n == 0 ]] && pass "abort: 503 'fault filter abort' and the request never reached the back end" \
  || fail "abort 503 without reaching the back end" "client: $r; back end saw it $n times"
check "abort: access log response_flags=FI" access_has 'path="?/calc\?id=abort1"? .*response_code=503 response_flags=FI '
# The seeds' "503 at that probability": abort 50% over 400 requests, inside a binomial bound;
# the aborted ones never reach the back end, the others all do.
half=$(many 400 "$VIP/abhalf" -H 'x-fault: abort-half')
n503=$(grep -c '^503 $' <<<"$half")
n200=$(grep -c '^200 cat-plus$' <<<"$half")
nseen=$(grep -c 'path=/abhalf?i=' "$T/app-cat.log")
read -r lo hi < <(binom_bounds 400 0.5)
if [[ $((n503 + n200)) == 400 && $n503 -ge $lo && $n503 -le $hi && $nseen == "$n200" ]]; then
  pass "abort at 50%: $n503 of 400 got 503 (binomial bound at p<0.001: $lo..$hi), the back end saw exactly the other $n200"
else
  fail "abort at 50% over 400 requests: 503s inside $lo..$hi, back end sees only the rest" \
    "$(tally <<<"$half"); back end saw $nseen"
fi
r=$(get -H 'x-fault: delay' "$VIP/calc?id=delay1")
[[ $r == "200 cat-plus cat-plus 2+3=5" ]] && pass "delay: the delayed request is then served (200 cat)" || fail "delay: request served after the delay" "$r"
check "delay: access log response_flags=DI" access_has 'path="?/calc\?id=delay1"? .*response_code=200 response_flags=DI '

# ---- mirror ---------------------------------------------------------------------------------------
r=$(get "$VIP/mirror?id=m1")
[[ ${r%% *} == 200 && $r == *cat-plus* ]] && pass "mirror: the client is answered by the route's destination (cat)" || fail "mirror: answered by cat" "$r"
mirrored() {
  for _ in $(seq 1 25); do
    grep -F 'path=/mirror?id=m1 ' "$T/app-dog.log" | grep -q -- '-shadow' && return 0
    sleep 0.2
  done
  echo "dog never received the mirrored copy:"; tail -n 3 "$T/app-dog.log"; return 1
}
check "mirror: dog (v2) received the copy, authority suffixed -shadow" mirrored

# ---- redirect and direct response ------------------------------------------------------------------
loc=$(nsx_exec client curl -s -o /dev/null --max-time 5 -w '%{http_code} %{redirect_url}' "$VIP/old/page")
[[ $loc == "301 http://$WP_VIP/calc" ]] && pass "redirect: /old/page -> 301 Location http://$WP_VIP/calc" || fail "redirect 301 to /calc" "$loc"
before=$(grep -c . "$T/app-cat.log"; grep -c . "$T/app-dog.log")
r=$(get "$VIP/direct")
after=$(grep -c . "$T/app-cat.log"; grep -c . "$T/app-dog.log")
[[ $r == "200  answered by the waypoint" && $before == "$after" ]] && pass "direct response: 200 'answered by the waypoint', no back end involved" \
  || fail "direct response from the waypoint" "$r (app log lines before/after: $before / $after)"

# ---- WebSocket ------------------------------------------------------------------------------------
ws=$(nsx_exec client timeout 15 "$ZT_PY" -u "$WP_APP" ws "$WP_VIP" 80 /ws hello-mesh 2>&1)
[[ $ws == "HTTP/1.1 101 "*"text=HELLO-MESH" ]] && pass "WebSocket: upgrade through the waypoint and an echoed frame ($ws)" \
  || fail "WebSocket upgrade through the waypoint" "$ws"

# ---- identities at the destination ------------------------------------------------------------------
check "destination ztunnel (node 2) sees the waypoint's identity as the source of the v2 traffic" \
  zn_expect_metric n2 istio_tcp_connections_opened_total reporter=destination "source_principal=$ID_WP" destination_workload=dog-1

# ---- pod-IP call skips the service-only waypoint --------------------------------------------------------
r=$(get "http://$WP_DOG_IP:8080/direct-pod?id=p1")
rid=$(grep -F 'path=/direct-pod?id=p1 ' "$T/app-dog.log" | sed -nE 's/.* rid=([^ ]+).*/\1/p')
if [[ ${r%% *} == 200 && $rid == "-" ]] && ! grep -qF 'path=/direct-pod?id=p1' "$T/waypoint.log"; then
  pass "pod-IP call: answered by dog directly, no waypoint (no x-request-id added, no waypoint access line)"
else
  fail "a pod-IP call skips the service-only waypoint" "client: $r; x-request-id at the app: '${rid:-no request}'"
fi
check "pod-IP call: node 2 ztunnel saw the client's own identity" \
  zn_expect_metric n2 istio_tcp_connections_opened_total reporter=destination "source_principal=$ID_CLIENT" destination_workload=dog-1

# ---- telemetry ----------------------------------------------------------------------------------------
check "waypoint metrics: istio_requests_total reporter=waypoint with the client as source, 200s" \
  expect_metric wp_metrics wp istio_requests_total reporter=waypoint "source_principal=$ID_CLIENT" response_code=200
check "waypoint metrics: the timeout counted with response_flags=UT" \
  expect_metric wp_metrics wp istio_requests_total reporter=waypoint response_code=504 response_flags=UT

# ---- live edits under load -------------------------------------------------------------------------------
# 4 loaders, each a sequence of curl runs of 40 keep-alive requests (bounded: 150 runs), until
# the stop file appears; meanwhile the VirtualService goes 100/0 -> 0/100 -> 50/50.
wp_vs 100 0
wp_wait_weights 100 0 >/dev/null
loader() {
  local i
  for i in $(seq 1 150); do
    [[ -e $T/stop-load ]] && break
    many 40 "$VIP/calc" >>"$T/load-$1.out"
  done
}
rm -f "$T/stop-load" "$T"/load-*.out
LOADERS=()
for k in 1 2 3 4; do loader "$k" & LOADERS+=($!); done
sleep 1
wp_vs 0 100
e1=$(wp_wait_weights 0 100 2>&1) && sleep 1
wp_vs 50 50
e2=$(wp_wait_weights 50 50 2>&1) && sleep 1
touch "$T/stop-load"
wait "${LOADERS[@]}"  # not a bare `wait`: the apps and proxies are children of this shell too
load=$(cat "$T"/load-*.out)
total=$(grep -c . <<<"$load")
bad=$(grep -vcE '^200 (cat-plus|dog-multi)$' <<<"$load")
[[ -z $e1 && -z $e2 ]] && pass "live edits 100/0 -> 0/100 -> 50/50 applied while loaded" || fail "live edits applied" "$e1 $e2"
# Both versions seen = the load spanned the edits (before them only cat can answer).
if [[ $total -ge 100 && $bad == 0 ]] && grep -q 'dog-multi' <<<"$load" && grep -q 'cat-plus' <<<"$load"; then
  pass "live edits: $total requests in flight across the edits, 0 failed ($(tally <<<"$load"))"
else
  fail "live edits: no failed request, both versions seen, >= 100 requests" "total $total, failed $bad: $(tally <<<"$load")"
fi

# ---- request id and trace context pass through --------------------------------------------------------
TP=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
B3=80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1
r=$(get -H "x-request-id: rid-e2e-1" -H "traceparent: $TP" -H "b3: $B3" "$VIP/calc?id=trace1")
seen=$(grep -hF 'path=/calc?id=trace1 ' "$T/app-cat.log" "$T/app-dog.log")
[[ ${r%% *} == 200 && $seen == *"rid=rid-e2e-1 tp=$TP b3=$B3 "* ]] &&
  pass "x-request-id kept, traceparent and b3 passed through intact to the app" ||
  fail "request id and trace headers reach the app unchanged" "client: $r; app: $seen"

# ---- L7 authorization (AuthorizationPolicy bound to the waypoint) ----------------------------------
# A second client pod with its own service account; a DENY on the waypoint Gateway (paths /admin*,
# method DELETE) and an ALLOW on the calculate Service for the first client's principal only.
ID_INTRUDER=$(zn_spiffe e2e intruder)
zn_pod 1 intruder 10.99.1.3
wp_pod intruder node-1 10.99.1.3 intruder "app: intruder" | wp_put 30-intruder.yaml
zn_cni_add 1 intruder e2e intruder >/dev/null && zn_wait_pods n1 3 15 >"$T/intruder.out" 2>&1 &&
  pass "second client pod (sa intruder) in the mesh" || fail "second client pod in the mesh" "$(cat "$T/intruder.out")"
wp_put 40-authz.yaml <<'Y'
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin-and-delete, namespace: e2e}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
  - to: [{operation: {methods: [DELETE]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-client, namespace: e2e}
spec:
  targetRefs: [{kind: Service, group: "", name: calculate}]
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/e2e/sa/client"]}}]
Y
# from POD [CURL-ARGS...] URL — like get, from another pod.
from() {
  local pod="$1"; shift
  nsx_exec "$pod" curl -s --max-time 8 -w '\n%{http_code} %header{x-app-version}' "$@" 2>&1 |
    awk 'NR == 1 { body = $0; next } { last = $0 } END { print last, body }'
}
denied_seen=""
for _ in $(seq 1 75); do
  denied_seen=$(from intruder "$VIP/calc?id=authz-wait")
  [[ $denied_seen == "403  RBAC: access denied" ]] && break
  sleep 0.2
done
[[ $denied_seen == "403  RBAC: access denied" ]] &&
  pass "ALLOW by principal: the intruder pod gets 403 'RBAC: access denied'" ||
  fail "ALLOW by principal: intruder denied with 403 'RBAC: access denied'" "$denied_seen"
r=$(get "$VIP/calc?id=authz-ok")
[[ $r == "200 cat-plus cat-plus 2+3=5" || $r == "200 dog-multi dog-multi 2x3=6" ]] &&
  pass "ALLOW by principal: the client pod (sa client) is still served ($r)" || fail "ALLOW by principal: client served" "$r"
r=$(get "$VIP/admin/users?id=authz-path")
n=$(( $(app_count cat "/admin/users?id=authz-path") + $(app_count dog "/admin/users?id=authz-path") ))
[[ $r == "403  RBAC: access denied" && $n == 0 ]] &&
  pass "DENY by path: /admin/users -> 403 and the back ends never saw it" || fail "DENY by path /admin*" "client: $r; back ends saw it $n times"
r=$(get -X DELETE "$VIP/calc?id=authz-method")
n=$(( $(app_count cat "/calc?id=authz-method") + $(app_count dog "/calc?id=authz-method") ))
[[ $r == "403  RBAC: access denied" && $n == 0 ]] &&
  pass "DENY by method: DELETE /calc -> 403 and the back ends never saw it" || fail "DENY by method DELETE" "client: $r; back ends saw it $n times"
check "authz: access log response_code=403 response_flags=RBAC for the denied DELETE" \
  access_has 'method=DELETE .*path="?/calc\?id=authz-method"? .*response_code=403 response_flags=RBAC '
check "authz: istio_requests_total counts the intruder's 403 with response_flags=RBAC" \
  expect_metric wp_metrics wp istio_requests_total reporter=waypoint "source_principal=$ID_INTRUDER" response_code=403 response_flags=RBAC

# ---- AuthorizationPolicy dry-run (istio.io/dry-run): shadow rules, evaluated but never enforced ------
wp_put 42-dryrun.yaml <<'Y'
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: dry-deny-reports, namespace: e2e, annotations: {istio.io/dry-run: "true"}}
spec:
  targetRefs: [{kind: Service, group: "", name: calculate}]
  action: DENY
  rules:
  - to: [{operation: {paths: ["/reports*"]}}]
Y
dry_seen=""
for i in $(seq 1 75); do
  dry_seen=$(get "$VIP/reports/q?id=dry-wait-$i")
  grep -E 'request complete' "$T/waypoint.log" | grep -Fq "id=dry-wait-$i" &&
    grep -E 'request complete' "$T/waypoint.log" | grep -F "id=dry-wait-$i" | grep -q 'istio_dry_run_deny_shadow_engine_result=' && break
  sleep 0.2
done
r=$(get "$VIP/reports/q?id=dry-run")
n=$(( $(app_count cat "/reports/q?id=dry-run") + $(app_count dog "/reports/q?id=dry-run") ))
[[ ${r%% *} == 200 && $n == 1 ]] &&
  pass "dry-run DENY on /reports*: the request is not denied (200, the back end saw it)" ||
  fail "dry-run DENY does not deny" "client: $r; back ends saw it $n times; last wait answer: $dry_seen"
check "dry-run: the access line carries istio_dry_run_deny_shadow_engine_result=denied and the policy id" \
  access_has 'path="?/reports/q\?id=dry-run"? .*response_code=200 .*istio_dry_run_deny_shadow_engine_result=denied istio_dry_run_deny_shadow_effective_policy_id=ns\[e2e\]-policy\[dry-deny-reports\]-rule\[0\]'
check "dry-run: envoy_http_rbac_shadow_denied counted with shadow_rules_stat_prefix istio_dry_run_deny_" \
  expect_metric wp_metrics wp envoy_http_rbac_shadow_denied shadow_rules_stat_prefix=istio_dry_run_deny_
r=$(get "$VIP/calc?id=dry-other")
check "dry-run: a path the dry-run DENY does not match is shadow-allowed" \
  access_has 'path="?/calc\?id=dry-other"? .*istio_dry_run_deny_shadow_engine_result=allowed'
check "dry-run: envoy_http_rbac_shadow_allowed counted too" \
  expect_metric wp_metrics wp envoy_http_rbac_shadow_allowed shadow_rules_stat_prefix=istio_dry_run_deny_
rm -f "$WP_MESH/42-dryrun.yaml"

# ---- RequestAuthentication (JWT) at the waypoint ------------------------------------------------------
# Keys and tokens from the openssl CLI (jwt_tool.py); the JWKS is read by the controlplane from a
# file (jwksUri file://) and inlined. A DENY on /secure* for requests without a request principal
# is Istio's "require a JWT" pattern.
openssl genrsa -out "$T/jwt-key.pem" 2048 2>/dev/null && openssl genrsa -out "$T/jwt-other.pem" 2048 2>/dev/null
"$ZT_PY" "$HERE/jwt_tool.py" jwks "$T/jwt-key.pem" >"$T/jwks.json"
wp_put 41-authn.yaml <<Y
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: e2e}
spec:
  targetRefs: [{kind: Service, group: "", name: calculate}]
  jwtRules:
  - issuer: https://issuer.e2e
    jwksUri: file://$T/jwks.json
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt-on-secure, namespace: e2e}
spec:
  targetRefs: [{kind: Service, group: "", name: calculate}]
  action: DENY
  rules:
  - from: [{source: {notRequestPrincipals: ["*"]}}]
    to: [{operation: {paths: ["/secure*"]}}]
Y
TOKEN=$("$ZT_PY" "$HERE/jwt_tool.py" sign "$T/jwt-key.pem" https://issuer.e2e alice)
BAD_TOKEN=$("$ZT_PY" "$HERE/jwt_tool.py" sign "$T/jwt-other.pem" https://issuer.e2e alice)
r=""
for _ in $(seq 1 75); do
  r=$(get -H "Authorization: Bearer $BAD_TOKEN" "$VIP/calc?id=jwt-wait")
  [[ $r == "401  Jwt verification fails" ]] && break
  sleep 0.2
done
[[ $r == "401  Jwt verification fails" ]] && pass "JWT invalid (signed by another key): 401 'Jwt verification fails'" ||
  fail "JWT invalid -> 401 'Jwt verification fails'" "$r"
r=$(get -H "Authorization: Bearer $TOKEN" "$VIP/secure?id=jwt-valid")
seen=$(grep -hF 'path=/secure?id=jwt-valid ' "$T/app-cat.log" "$T/app-dog.log")
[[ ${r%% *} == 200 && $seen == *"auth=-"* ]] &&
  pass "JWT valid: /secure served, the token stripped before the app (forwardOriginalToken false)" ||
  fail "JWT valid: /secure served without the Authorization header at the app" "client: $r; app: $seen"
r=$(get "$VIP/secure?id=jwt-missing")
[[ $r == "403  RBAC: access denied" ]] && pass "JWT missing on /secure: 403 'RBAC: access denied' (no request principal)" ||
  fail "JWT missing on /secure -> 403" "$r"
r=$(get "$VIP/calc?id=jwt-missing-open")
[[ ${r%% *} == 200 ]] && pass "JWT missing elsewhere: allowed (RequestAuthentication alone never requires a token)" ||
  fail "JWT missing on /calc -> allowed" "$r"

# ---- RequestAuthentication with a remote jwksUri (http://, fetched by the controlplane) -----------
# The JWKS is served by python's http.server in a pod of its own (10.99.1.30, not in the mesh);
# the controlplane (node 1) fetches it as written and inlines the keys (controlplane/jwks_resolver.h).
# First the URL points at a port nothing serves: until one fetch succeeds, every token of that
# issuer is rejected (401), never let through.
openssl genrsa -out "$T/jwt-remote.pem" 2048 2>/dev/null
mkdir -p "$T/jwks-srv"
"$ZT_PY" "$HERE/jwt_tool.py" jwks "$T/jwt-remote.pem" >"$T/jwks-srv/jwks.json"
zn_pod 1 jwks 10.99.1.30
nsx_bg jwks "$T/jwks-srv.log" "$ZT_PY" -m http.server --bind 10.99.1.30 --directory "$T/jwks-srv" 8000
wait_for_port jwks 8000 10 || abort "JWKS server listening in pod jwks" "$(tail -n 5 "$T/jwks-srv.log")"
remote_ra() {  # remote_ra URL
  wp_put 42-authn-remote.yaml <<Y
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt-remote, namespace: e2e}
spec:
  targetRefs: [{kind: Service, group: "", name: calculate}]
  jwtRules:
  - issuer: https://remote.e2e
    jwksUri: $1
Y
}
REMOTE_TOKEN=$("$ZT_PY" "$HERE/jwt_tool.py" sign "$T/jwt-remote.pem" https://remote.e2e bob)
REMOTE_BAD=$("$ZT_PY" "$HERE/jwt_tool.py" sign "$T/jwt-other.pem" https://remote.e2e bob)
remote_ra http://10.99.1.30:8001/jwks.json
wait_for_file_match "$T/cp.log" 'JWKS from http://10\.99\.1\.30:8001/jwks\.json not fetched yet' 20 ||
  fail "controlplane warns that the jwksUri is not fetched yet" "$(grep -i jwks "$T/cp.log" | tail -n 3)"
r=""
for _ in $(seq 1 75); do
  r=$(get -H "Authorization: Bearer $REMOTE_TOKEN" "$VIP/secure?id=jwks-down")
  [[ $r == "401  Jwt verification fails" ]] && break
  sleep 0.2
done
[[ $r == "401  Jwt verification fails" ]] && pass "jwksUri never fetched (server down): a valid token is rejected 401, not let through" ||
  fail "jwksUri never fetched -> 401" "$r"
remote_ra http://10.99.1.30:8000/jwks.json
for _ in $(seq 1 75); do
  r=$(get -H "Authorization: Bearer $REMOTE_TOKEN" "$VIP/secure?id=jwks-valid")
  [[ ${r%% *} == 200 ]] && break
  sleep 0.2
done
[[ ${r%% *} == 200 ]] && pass "jwksUri http:// fetched by the controlplane: a valid token on /secure is 200" ||
  fail "remote JWKS: valid token -> 200" "$r"
r=$(get -H "Authorization: Bearer $REMOTE_BAD" "$VIP/secure?id=jwks-invalid")
[[ $r == "401  Jwt verification fails" ]] && pass "remote JWKS: a token signed by another key is 401" ||
  fail "remote JWKS: invalid token -> 401" "$r"
r=$(get "$VIP/secure?id=jwks-missing")
[[ $r == "403  RBAC: access denied" ]] && pass "remote JWKS: no token on /secure is 403 (the DENY policy)" ||
  fail "remote JWKS: missing token -> 403" "$r"
grep -q 'GET /jwks.json' "$T/jwks-srv.log" && pass "the JWKS was fetched from the pod's http.server" ||
  fail "JWKS server saw the fetch" "$(tail -n 5 "$T/jwks-srv.log")"
rm -f "$WP_MESH/42-authn-remote.yaml"

# ---- HTTP/2 (prior knowledge) and gRPC with trailers through the mesh ------------------------------
# A second Service, greeter (10.99.200.11), on the same pods and the same waypoint, added live: port
# `http2-web` 8081 (nginx speaking h2c in each pod, so the upstream leg is HTTP/2 too) and port
# `grpc` 9090 (a grpcio server in each pod). Istio's port naming makes both HTTP/2 to the back end.
GREETER_VIP=10.99.200.11
greeter_nginx() {  # greeter_nginx POD VERSION — h2c-only nginx on 8081 answering "VERSION PROTOCOL"
  mkdir -p "$T/ngx-$1"
  cat >"$T/ngx-$1/nginx.conf" <<CFG
worker_processes 1;
daemon off;
pid $T/ngx-$1/nginx.pid;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path $T/ngx-$1/body;
  proxy_temp_path $T/ngx-$1/proxy;
  fastcgi_temp_path $T/ngx-$1/fastcgi;
  uwsgi_temp_path $T/ngx-$1/uwsgi;
  scgi_temp_path $T/ngx-$1/scgi;
  server {
    listen 8081 http2;
    location / {
      add_header x-app-version $2 always;
      return 200 "$2 \$server_protocol\n";
    }
  }
}
CFG
  nsx_bg "$1" "$T/nginx-$1.log" nginx -p "$T/ngx-$1" -e "$T/ngx-$1/error.log" -c "$T/ngx-$1/nginx.conf"
}
greeter_nginx cat-1 cat-plus
greeter_nginx dog-1 dog-multi
nsx_bg cat-1 "$T/grpc-cat.log" "$ZT_PY" -u "$HERE/grpc_app.py" serve cat-plus 9090
nsx_bg dog-1 "$T/grpc-dog.log" "$ZT_PY" -u "$HERE/grpc_app.py" serve dog-multi 9090
apps_up=""
for p in cat-1:8081 dog-1:8081 cat-1:9090 dog-1:9090; do
  wait_for_port "${p%:*}" "${p#*:}" 10 || apps_up+=" $p"
done
[[ -z $apps_up ]] && pass "greeter back ends up: nginx h2c on 8081 and grpcio on 9090 in cat-1 and dog-1" ||
  fail "greeter back ends listening" "not listening:$apps_up
$(tail -n 3 "$T"/nginx-*.log "$T"/ngx-*/error.log "$T"/grpc-*.log 2>/dev/null)"
wp_put 25-greeter.yaml <<Y
apiVersion: v1
kind: Service
metadata:
  name: greeter
  namespace: e2e
  labels: {istio.io/use-waypoint: waypoint}
spec:
  clusterIP: $GREETER_VIP
  selector: {app: calculate}
  ports:
  - {name: http2-web, port: 8081, targetPort: 8081}
  - {name: grpc, port: 9090, targetPort: 9090}
Y
# h2 [CURL-ARGS...] URL — one HTTP/2 prior-knowledge request from the client pod: "CODE BODY".
h2() {
  nsx_exec client curl -s --http2-prior-knowledge --max-time 5 -w '\n%{http_code} %{http_version}' "$@" 2>&1 |
    awk 'NR == 1 { body = $0; next } { last = $0 } END { print last, body }'
}
r=""
for _ in $(seq 1 75); do   # the live addition reaches the client's ztunnel and the waypoint
  r=$(h2 "http://$GREETER_VIP:8081/hello")
  [[ $r == "200 2 "* ]] && break
  sleep 0.2
done
[[ $r == "200 2 cat-plus HTTP/2.0" || $r == "200 2 dog-multi HTTP/2.0" ]] &&
  pass "h2c: curl --http2-prior-knowledge -> ztunnel -> waypoint -> ztunnel -> nginx, HTTP/2 on both legs ($r)" ||
  fail "h2c request through the waypoint, HTTP/2 at the client and at the app" "client: '$r' (code, client HTTP version, app body)"
check "h2c: waypoint access log protocol=HTTP/2, greeter's port-8081 cluster" \
  access_has "authority=$GREETER_VIP:8081 .*path=/hello .*protocol=HTTP/2 response_code=200 .*upstream_cluster=inbound-vip\|8081\|http\|greeter\.e2e\.svc\.cluster\.local"
out=$(nsx_exec client timeout 60 h2load -n 2000 -c 4 -m 8 "http://$GREETER_VIP:8081/load" 2>&1)
if grep -q 'Application protocol: h2c' <<<"$out" &&
   grep -q 'requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed' <<<"$out" &&
   grep -q 'status codes: 2000 2xx, 0 3xx, 0 4xx, 0 5xx' <<<"$out"; then
  pass "h2load through the mesh: 2,000 h2c requests (4 connections x 8 streams), all 2xx"
else
  fail "h2load -n 2000 -c 4 -m 8 through the mesh, all 2xx" "$(grep -E 'protocol|requests:|status codes|error|fail' <<<"$out" | head -n 8)"
fi
g=$(nsx_exec client timeout 30 "$ZT_PY" -u "$HERE/grpc_app.py" call "$GREETER_VIP:9090" 2>&1)
ver='(cat-plus|dog-multi)'
if grep -Eq "^UNARY $ver echo:hello$" <<<"$g" && grep -qx 'TRAILER x-app-trailer=t-hello' <<<"$g"; then
  pass "gRPC unary through the mesh: reply, grpc-status 0 and the app's trailer x-app-trailer at the client"
else
  fail "gRPC unary through the mesh with its trailer" "$g"
fi
grep -Eq "^STREAM 5 $ver item-0\.\.$ver item-4$" <<<"$g" &&
  pass "gRPC server streaming through the mesh: 5 messages, then the status trailer" ||
  fail "gRPC server streaming through the mesh" "$g"
# A gRPC error is trailers-only (one HEADERS frame that ends the stream), so the headers the
# waypoint adds to responses (x-envoy-upstream-service-time, as Envoy) arrive among the trailers.
grep -Eq '^FAIL NOT_FOUND no such calculation( TRAILER [^ ]+)* TRAILER x-app-trailer=t-fail( |$)' <<<"$g" &&
  pass "gRPC error through the mesh: grpc-status 5 NOT_FOUND, grpc-message and the custom trailer at the client" ||
  fail "gRPC error status and trailers reach the client" "$g"
check "gRPC: istio_requests_total at the waypoint, request_protocol=grpc grpc_response_status=0" \
  expect_metric wp_metrics wp istio_requests_total reporter=waypoint request_protocol=grpc \
  destination_service=greeter.e2e.svc.cluster.local response_code=200 grpc_response_status=0
check "gRPC: istio_requests_total at the waypoint counts the NOT_FOUND as grpc_response_status=5" \
  expect_metric wp_metrics wp istio_requests_total reporter=waypoint request_protocol=grpc \
  destination_service=greeter.e2e.svc.cluster.local grpc_response_status=5

# ---- AuthorizationPolicy on a TCP service behind the waypoint ----------------------------------------
# A third Service, echo (10.99.200.12), port `tcp-echo` 9100 (Istio: TCP by its name) and `raw`
# 9101 (unknown protocol: sniffed), on the same pods: tcp_echo.py answers "VERSION <bytes>". The Gateway-wide DENY above (rules made only of a
# path and of a method) already applies to it: on TCP a missing HTTP attribute counts as a match
# in DENY rules, so every connection is closed. Then that DENY goes and an ALLOW on the echo
# Service admits the client's principal on port 9100 (plus a path-only rule, which on TCP never
# matches): the client's bytes come back, the intruder's connection is closed before any upstream.
ECHO_VIP=10.99.200.12
nsx_bg cat-1 "$T/echo-cat.log" "$ZT_PY" -u "$HERE/tcp_echo.py" serve cat-plus 9100
nsx_bg dog-1 "$T/echo-dog.log" "$ZT_PY" -u "$HERE/tcp_echo.py" serve dog-multi 9100
wait_for_port cat-1 9100 10 && wait_for_port dog-1 9100 10 || fail "echo back ends listening on 9100" "$(tail -n 3 "$T"/echo-*.log)"
wp_put 26-echo.yaml <<Y
apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: e2e
  labels: {istio.io/use-waypoint: waypoint}
spec:
  clusterIP: $ECHO_VIP
  selector: {app: calculate}
  ports: [{name: tcp-echo, port: 9100, targetPort: 9100}, {name: raw, port: 9101, targetPort: 9100}]
Y
# tcp_call POD TEXT [PORT] — TEXT to echo (port 9100 unless given); what came back, or CLOSED.
tcp_call() { nsx_exec "$1" timeout 10 "$ZT_PY" "$HERE/tcp_echo.py" call "$ECHO_VIP:${3:-9100}" "$2" 2>&1; }
echo_seen() { cat "$T"/echo-*.log 2>/dev/null | grep -c -- "data=$1\$"; }
r=""
for _ in $(seq 1 75); do   # until the waypoint has the echo cluster and judged a connection
  r=$(tcp_call client tcp-deny-all)
  grep -q "CONNECT $ECHO_VIP:9100 from .* connection denied" "$T/waypoint.log" && break
  sleep 0.2
done
[[ $r == CLOSED && $(echo_seen tcp-deny-all) == 0 ]] &&
  pass "TCP: a Gateway DENY made of path-only and method-only rules closes every TCP connection (missing attribute = match)" ||
  fail "TCP: DENY with HTTP-only rules closes the client's TCP connection" "client: $r; back ends saw it $(echo_seen tcp-deny-all) times
$(grep -F "$ECHO_VIP:9100" "$T/waypoint.log" | tail -n 3)"
wp_put 40-authz.yaml <<'Y'
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-client, namespace: e2e}
spec:
  targetRefs: [{kind: Service, group: "", name: calculate}]
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/e2e/sa/client"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: echo-client-only, namespace: e2e}
spec:
  targetRefs: [{kind: Service, group: "", name: echo}]
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/e2e/sa/client"], namespaces: [e2e]}}]
    to: [{operation: {ports: ["9100", "9101"]}}]
  - to: [{operation: {paths: ["/public*"]}}]
Y
for _ in $(seq 1 75); do
  r=$(tcp_call client tcp-allowed)
  [[ $r == *" tcp-allowed" ]] && break
  sleep 0.2
done
[[ $r == "cat-plus tcp-allowed" || $r == "dog-multi tcp-allowed" ]] &&
  pass "TCP: ALLOW by principal, namespace and port: the client's bytes are relayed both ways ($r)" ||
  fail "TCP: the allowed client's bytes come back from the echo service" "$r"
r=$(tcp_call intruder tcp-intruder)
[[ $r == CLOSED && $(echo_seen tcp-intruder) == 0 ]] &&
  pass "TCP: the intruder (not allowed; the path-only ALLOW rule never matches TCP) is closed, the back ends saw nothing" ||
  fail "TCP: intruder closed before any upstream" "client: $r; back ends saw it $(echo_seen tcp-intruder) times"
# Port 9101 (`raw`) is of unknown protocol: sniffed, and bytes that are not HTTP take its TCP chain.
r=$(tcp_call client tcp-sniffed 9101)
[[ $r == "cat-plus tcp-sniffed" || $r == "dog-multi tcp-sniffed" ]] &&
  pass "TCP on a port of unknown protocol: non-HTTP bytes of the allowed client are relayed ($r)" ||
  fail "TCP on port 9101 (unknown protocol): the client's bytes come back" "$r"
r=$(tcp_call intruder tcp-sniffed-intruder 9101)
[[ $r == CLOSED && $(echo_seen tcp-sniffed-intruder) == 0 ]] &&
  pass "TCP on a port of unknown protocol: the intruder's non-HTTP bytes are closed by the network RBAC" ||
  fail "TCP on port 9101: intruder closed" "client: $r; back ends saw it $(echo_seen tcp-sniffed-intruder) times"
check "TCP: istio_tcp_connections_closed_total at the waypoint counts the intruder with response_flags=RBAC" \
  expect_metric wp_metrics wp istio_tcp_connections_closed_total reporter=waypoint "source_principal=$ID_INTRUDER" \
  destination_service=echo.e2e.svc.cluster.local request_protocol=tcp response_flags=RBAC
check "TCP: access log 'connection complete' protocol=tcp response_flags=RBAC for the intruder" \
  grep -Eq "connection complete .*src\.identity=$ID_INTRUDER .*authority=$ECHO_VIP:9100 protocol=tcp .*response_flags=RBAC " "$T/waypoint.log"
check "TCP: the client's relayed connection is counted with its bytes (istio_tcp_received_bytes_total, flags -)" \
  expect_metric wp_metrics wp istio_tcp_received_bytes_total reporter=waypoint "source_principal=$ID_CLIENT" \
  destination_service=echo.e2e.svc.cluster.local response_flags=-

check_not "the controlplane logged no NACK from any proxy" contains -E 'NACK from' "$T/cp.log"
nsx_alive "$WP_PID" && pass "waypoint still running" || fail "waypoint still running" "$(logs waypoint)"

# ---- SIGTERM drain: a request in flight (fault delay 2 s) finishes, then the waypoint exits -----------
nsx_exec client curl -s -o /dev/null --max-time 10 -w '%{http_code}' -H 'x-fault: delay-long' "$VIP/calc?id=drain1" \
  >"$T/drain.out" 2>&1 &
DRAIN_CURL=$!
sleep 1   # the request reaches the waypoint in milliseconds; the delay holds it there for 2 s
kill -TERM "$WP_PID"
wait "$DRAIN_CURL"
[[ $(cat "$T/drain.out") == 200 ]] && pass "SIGTERM drain: the in-flight (delayed 2 s) request still completed with 200" \
  || fail "SIGTERM drain: in-flight request completes" "curl: $(cat "$T/drain.out")"
for _ in $(seq 1 100); do nsx_alive "$WP_PID" || break; sleep 0.1; done
if nsx_alive "$WP_PID"; then
  fail "waypoint exits after SIGTERM within its 3 s termination deadline (+ margin)" "$(logs waypoint)"
else
  wait "$WP_PID"; rc=$?
  if [[ $rc == 0 ]]; then
    pass "waypoint exited 0 after SIGTERM"
  else
    fail "waypoint exit status after SIGTERM is 0" "rc=$rc
$(logs waypoint)"
  fi
fi
[[ $NSX_FAILED == 0 ]] || { NSX_KEEP_TMP=1; echo "logs kept in $T" >&2; }
summary
