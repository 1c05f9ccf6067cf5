#!/usr/bin/env bash
# tests/71-waypoint-extauthz/suite.sh [BIN_DIR] — CUSTOM AuthorizationPolicy (external
# authorization) at the waypoint, end to end with the real binaries: the 66-waypoint-e2e mesh
# (controlplane serve, ambient-cni + ztunnel on two nodes, the waypoint, the Calculate app, a
# curl client) plus an independent ext_authz service (ext_authz_server.py: python grpcio with
# messages protoc-compiled from this repository's proto/ files, and python http.server) running
# as a mesh workload (Service ext-authz, pod authz-1, reached over HBONE).
#
# The providers come from the mesh config (ConfigMap istio-system/istio, extensionProviders);
# one CUSTOM policy on Service calculate selects paths /calc*, switched between providers by
# live edits:
#   gRPC   allowed (x-ext-authz: allow): 200, the service's header reaches the app upstream and
#          its response header the client; denied: the service's 403, body and header, flag
#          UAEX; a request the CUSTOM rule does not select is never sent (counted at the server);
#   HTTP   the same through envoyExtAuthzHttp (pathPrefix, headersToUpstreamOnAllow,
#          headersToDownstreamOnDeny);
#   down   the service stopped: 403 UAEX (fail closed); with the failOpen provider: served,
#          failure_mode_allowed counted.
# Needs root; about half a minute in the release build.
# shellcheck disable=SC2015,SC2154,SC1091
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib/waypoint-mesh.sh" "${1:-}"
wpm_init wp-xa protoc
"$ZT_PY" -c 'import grpc' 2>/dev/null || { fail "python3-grpcio importable by $ZT_PY"; summary; exit 1; }

# xa_policy PROVIDER — the CUSTOM policy on Service calculate, selecting /calc*.
xa_policy() {
  wp_put 41-custom.yaml <<Y
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: calculate-ext-authz, namespace: e2e}
spec:
  targetRefs: [{kind: Service, group: "", name: calculate}]
  action: CUSTOM
  provider: {name: $1}
  rules: [{to: [{operation: {paths: ["/calc*"]}}]}]
Y
}

mkdir -p "$WP_MESH"
wp_put 05-mesh.yaml <<Y
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    extensionProviders:
    - name: authz-grpc
      envoyExtAuthzGrpc: {service: ext-authz.e2e.svc.cluster.local, port: 9000, timeout: 5s}
    - name: authz-grpc-open
      envoyExtAuthzGrpc: {service: ext-authz.e2e.svc.cluster.local, port: 9000, timeout: 5s, failOpen: true}
    - name: authz-http
      envoyExtAuthzHttp:
        service: ext-authz.e2e.svc.cluster.local
        port: 8000
        timeout: 5s
        pathPrefix: /check
        includeRequestHeadersInCheck: [x-ext-authz]
        includeAdditionalHeadersInCheck: {x-added: "by-waypoint"}
        headersToUpstreamOnAllow: [x-ext-authz-user]
        headersToDownstreamOnDeny: [x-ext-authz-check-result]
Y
wp_put 40-ext-authz-svc.yaml <<Y
apiVersion: v1
kind: Service
metadata: {name: ext-authz, namespace: e2e}
spec:
  clusterIP: 10.99.200.30
  selector: {app: ext-authz}
  ports: [{name: grpc, port: 9000, targetPort: 9000}, {name: http, port: 8000, targetPort: 8000}]
---
$(wp_pod authz-1 node-1 10.99.1.3 ext-authz "app: ext-authz")
Y
xa_policy authz-grpc
wpm_bringup || abort "mesh up: controlplane, ambient-cni + ztunnel on 2 nodes, waypoint ready" "$WPM_BRINGUP_LOG"
pass "mesh up with the mesh config's ext_authz providers and a CUSTOM policy, waypoint ready"
if grep -qE '(error|warning).*(AuthorizationPolicy|extensionProviders|ConfigMap)' "$T/cp.log"; then
  fail "controlplane accepted the mesh config and the CUSTOM policy without diagnostics" \
    "$(grep -iE 'authz|provider|ConfigMap' "$T/cp.log" | head)"
else
  pass "controlplane accepted the mesh config and the CUSTOM policy without diagnostics"
fi

zn_pod 1 authz-1 10.99.1.3
nsx_bg authz-1 "$T/xa.log" "$ZT_PY" -u "$HERE/ext_authz_server.py" "$ZT_ROOT/proto" "$T/xa-pb" 0.0.0.0:9000 0.0.0.0:8000
XA_PID=$NSX_LAST_PID
wait_for_file_match "$T/xa.log" 'ext_authz listening' 20 >/dev/null 2>&1 ||
  abort "ext_authz service listening in pod authz-1" "$(tail -n 20 "$T/xa.log")"
{ zn_cni_add 1 authz-1 e2e ext-authz >/dev/null && zn_wait_pods n1 3 15; } >"$T/xa-add.out" 2>&1 ||
  abort "pod authz-1 added to the mesh" "$(cat "$T/xa-add.out")"
pass "independent ext_authz service (python grpcio + http.server) in pod authz-1, captured by ztunnel"

# req PATH [HEADER...] — one request: "CODE|x-ext-authz-check|x-ext-authz-check-result|BODY".
req() {
  local path="$1" args=()
  shift
  for h in "$@"; do args+=(-H "$h"); done
  nsx_exec client curl -s --max-time 20 "${args[@]}" -o "$T/body" \
    -w '%{http_code}|%header{x-ext-authz-check}|%header{x-ext-authz-check-result}|' "$VIP$path"
  cat "$T/body" 2>/dev/null
}
checks() { grep -c "^check kind=$1 " "$T/xa.log"; }
# wait_answer PATH WANT — polls until a live edit shows (the CUSTOM policy is re-served).
wait_answer() {
  local got=""
  for _ in $(seq 1 50); do
    got=$(req "$1")
    [[ $got == "$2" ]] && return 0
    sleep 0.2
  done
  echo "last answer: $got"
  return 1
}

# ---- gRPC provider ------------------------------------------------------------------------------
r=$(req /calc "x-ext-authz: allow")
[[ $r == "200|ok||cat-plus 2+3=5" || $r == "200|ok||dog-multi 2x3=6" ]] &&
  pass "gRPC check allows (x-ext-authz: allow): 200, the service's x-ext-authz-check: ok reaches the client" ||
  fail "gRPC allow" "$r"
check "the service's x-ext-authz-user: alice was set on the request the app received" \
  grep -qE 'path=/calc .* xa=alice' "$T/app-cat.log" "$T/app-dog.log"
r=$(req /calc)
[[ $r == "403||denied|denied by ext_authz (grpc)" ]] &&
  pass "gRPC check denies: the service's 403, body and x-ext-authz-check-result header reach the client" ||
  fail "gRPC deny" "$r"
check "waypoint access log: the denied request carries flag UAEX, 403" \
  access_has 'path="?/calc.* response_code=403 response_flags=UAEX '
check "the CheckRequest carried the client's identity and the request (path, method, host)" \
  grep -qE "check kind=grpc path=/calc principal=spiffe://$ZT_TRUST_DOMAIN/ns/e2e/sa/client method=GET host=" "$T/xa.log"
before=$(checks grpc)
codes=""
for _ in 1 2 3; do codes+="$(req / | cut -d'|' -f1) "; done
after=$(checks grpc)
[[ $codes == "200 200 200 " && $after == "$before" ]] &&
  pass "requests the CUSTOM rule does not select (/) are served and never sent to the service ($before checks before and after)" ||
  fail "unselected requests skip the check" "codes $codes, checks $before -> $after"
check "waypoint metrics: envoy_ext_authz_ok counted" expect_metric wp_metrics wp envoy_ext_authz_ok
check "waypoint metrics: envoy_ext_authz_denied counted" expect_metric wp_metrics wp envoy_ext_authz_denied

# ---- HTTP provider ------------------------------------------------------------------------------
xa_policy authz-http
if wait_answer /calc "403||denied|denied by ext_authz (http)"; then
  pass "HTTP check denies (live edit to the envoyExtAuthzHttp provider): 403, body, allowed client header"
else
  fail "HTTP deny after the live edit" "$(wait_answer /calc x 2>&1 | tail -n 1)"
fi
r=$(req /calc "x-ext-authz: allow")
[[ ${r%%|*} == 200 ]] && pass "HTTP check allows (x-ext-authz: allow): 200" || fail "HTTP allow" "$r"
check "the HTTP check carried pathPrefix + path and the additional header" \
  grep -qE 'check kind=http path=/check/calc method=GET host=.* added=by-waypoint verdict=allow' "$T/xa.log"
check "headersToUpstreamOnAllow: x-ext-authz-user: bob reached the app" \
  grep -qE 'path=/calc .* xa=bob' "$T/app-cat.log" "$T/app-dog.log"

# ---- service down: fail closed, then failOpen ----------------------------------------------------
nsx_stop "$XA_PID" 3 || true
xa_policy authz-grpc
if wait_answer /calc "403|||"; then
  pass "ext_authz service down, failOpen false: 403 with no body (status_on_error)"
else
  fail "service down: 403" "$(req /calc)"
fi
check "waypoint metrics: envoy_ext_authz_error counted" expect_metric wp_metrics wp envoy_ext_authz_error
xa_policy authz-grpc-open
r=""
for _ in $(seq 1 50); do
  r=$(req /calc)
  [[ ${r%%|*} == 200 ]] && break
  sleep 0.2
done
[[ ${r%%|*} == 200 ]] && pass "ext_authz service down, failOpen true (live edit): the request is served" ||
  fail "service down, failOpen: 200" "$r"
check "waypoint metrics: envoy_ext_authz_failure_mode_allowed counted" \
  expect_metric wp_metrics wp envoy_ext_authz_failure_mode_allowed

summary
