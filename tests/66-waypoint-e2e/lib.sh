# shellcheck shell=bash
# tests/66-waypoint-e2e/lib.sh — the seeds' Calculate mesh behind a waypoint, on two nodes, with
# the real binaries; shared by tests/66-waypoint-e2e/suite.sh and scripts/demo-waypoint.sh.
#
# Role: write the mesh as Kubernetes YAML (wp_mesh_*), build the topology, start
# `controlplane serve`, ambient-cni + a shared-mode ztunnel per node (xDS + CA from the
# controlplane only), the waypoint in its own pod netns (NOT captured: labelled
# istio.io/dataplane-mode=none, as istiod's waypoint pods are), the apps, and edit the
# VirtualService live (wp_vs).
#
#   node 1 (n1; br0 10.99.1.254; uplink 10.99.100.1)         node 2 (n2; 10.99.2.254; .100.2)
#     controlplane serve 0.0.0.0:15012                         ztunnel (node-2)
#     ztunnel (node-1), ambient-cni                            ambient-cni
#     client     10.99.1.1  sa client                          dog-1 10.99.2.2 sa calculate
#     cat-1      10.99.1.2  sa calculate (version cat-plus)          (version dog-multi)
#     waypoint-0 10.99.1.9  sa waypoint (the waypoint binary; not captured)
#   Service e2e/calculate 10.99.200.10:80 -> 8080, istio.io/use-waypoint: waypoint
#   Gateway e2e/waypoint (istio-waypoint, waypoint-for: service)
#
# Needs: netns.sh and 50-node-e2e/lib.sh sourced, nsx_init done; BIN_DIR set.
# Knobs (defaults for the suite): WP_CAT0/WP_DOG0 initial weights (90/10), WP_TIMEOUT route
# timeout of /slow (1s), WP_ABORT_PCT abort percentage (100), WP_RUST_LOG proxies' log filter
# (info), WP_APPS the function that starts the back ends (wp_apps; bench/ starts its own).
# Invariants: every wait is bounded; the mesh files are replaced atomically (write + rename),
# so the controlplane never reads half a file.

WP_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WP_APP="$WP_HERE/calc_app.py"
WP_VIP=10.99.200.10
WP_IP=10.99.1.9
WP_CAT_IP=10.99.1.2
WP_DOG_IP=10.99.2.2
WP_HOST=calculate.e2e.svc.cluster.local

wp_put() { cat >"$WP_MESH/.$1.tmp" && mv -f "$WP_MESH/.$1.tmp" "$WP_MESH/$1"; }

# wp_pod NAME NODE IP SA [LABELS-FLOW-MAP] — a scheduled, running pod.
wp_pod() {
  cat <<POD
apiVersion: v1
kind: Pod
metadata:
  name: $1
  namespace: e2e
  labels: {name: $1${5:+, $5}}
spec:
  serviceAccountName: $4
  nodeName: $2
  containers: [{name: app, ports: [{name: http, containerPort: 8080}]}]
status:
  phase: Running
  podIP: $3
POD
}

# wp_mesh_base — namespace, waypoint Gateway and pod, the calculate Service, pods, subsets.
wp_mesh_base() {
  wp_put 00-namespace.yaml <<'Y'
apiVersion: v1
kind: Namespace
metadata:
  name: e2e
  labels: {istio.io/dataplane-mode: ambient}
Y
  wp_put 10-waypoint.yaml <<Y
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: waypoint
  namespace: e2e
  labels: {istio.io/waypoint-for: service}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
---
$(wp_pod waypoint-0 node-1 "$WP_IP" waypoint "gateway.networking.k8s.io/gateway-name: waypoint, istio.io/dataplane-mode: none")
Y
  wp_put 20-calculate.yaml <<Y
apiVersion: v1
kind: Service
metadata:
  name: calculate
  namespace: e2e
  labels: {istio.io/use-waypoint: waypoint}
spec:
  clusterIP: $WP_VIP
  selector: {app: calculate}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
$(wp_pod cat-1 node-1 "$WP_CAT_IP" calculate "app: calculate, version: cat-plus")
---
$(wp_pod dog-1 node-2 "$WP_DOG_IP" calculate "app: calculate, version: dog-multi")
---
$(wp_pod client node-1 10.99.1.1 client "app: client")
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: calculate, namespace: e2e}
spec:
  host: calculate
  subsets:
  - {name: cat-with-plus, labels: {version: cat-plus}}
  - {name: dog-with-multi, labels: {version: dog-multi}}
Y
}

# wp_vs CAT_WEIGHT DOG_WEIGHT [EXTRA_HTTP_RULES] — the calculate VirtualService: the seeds'
# steps as match rules in front (first match wins), then the default weighted route.
# EXTRA_HTTP_RULES (YAML list items, indented by 2) go first.
wp_vs() {
  wp_put 30-vs.yaml <<Y
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: calculate, namespace: e2e}
spec:
  hosts: [calculate]
  http:
${3:-}
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /calc, redirectCode: 301}
  - match: [{uri: {exact: /direct}}]
    directResponse: {status: 200, body: {string: "answered by the waypoint"}}
  - match: [{headers: {x-fault: {exact: abort}}}]
    fault: {abort: {httpStatus: 503, percentage: {value: ${WP_ABORT_PCT:-100}}}}
    route: [{destination: {host: calculate, subset: cat-with-plus}}]
  - match: [{headers: {x-fault: {exact: abort-half}}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 50}}}
    route: [{destination: {host: calculate, subset: cat-with-plus}}]
  - match: [{headers: {x-fault: {exact: delay}}}]
    fault: {delay: {fixedDelay: 500ms, percentage: {value: 100}}}
    route: [{destination: {host: calculate, subset: cat-with-plus}}]
  - match: [{headers: {x-fault: {exact: delay-long}}}]
    fault: {delay: {fixedDelay: 2s, percentage: {value: 100}}}
    route: [{destination: {host: calculate, subset: cat-with-plus}}]
  - match: [{uri: {prefix: /slow}, headers: {x-try: {exact: per-try}}}]
    timeout: 10s
    retries: {attempts: 2, perTryTimeout: 300ms, retryOn: 5xx}
    route: [{destination: {host: calculate, subset: cat-with-plus}}]
  - match: [{uri: {prefix: /slow}}]
    timeout: ${WP_TIMEOUT:-1s}
    route: [{destination: {host: calculate, subset: cat-with-plus}}]
  - match: [{uri: {prefix: /fail}}]
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: 5xx}
    route: [{destination: {host: calculate, subset: cat-with-plus}}]
  - match: [{uri: {prefix: /mirror}}]
    route: [{destination: {host: calculate, subset: cat-with-plus}}]
    mirror: {host: calculate, subset: dog-with-multi}
    mirrorPercentage: {value: 100}
  - match: [{headers: {version: {exact: dog}}}]
    route: [{destination: {host: calculate, subset: dog-with-multi}}]
  - route:
    - {destination: {host: calculate, subset: cat-with-plus}, weight: $1}
    - {destination: {host: calculate, subset: dog-with-multi}, weight: $2}
Y
}

wp_tokens() {
  cat >"$NSX_TMP/tokens.yaml" <<'Y'
tokens:
- {token: node1-token, serviceAccount: istio-system/ztunnel, node: node-1}
- {token: node2-token, serviceAccount: istio-system/ztunnel, node: node-2}
- {token: waypoint-token, serviceAccount: e2e/waypoint}
Y
  echo node1-token >"$NSX_TMP/token-n1"
  echo node2-token >"$NSX_TMP/token-n2"
  echo waypoint-token >"$NSX_TMP/token-wp"
}

# wp_topology — nodes, link, pod namespaces (the waypoint's included).
wp_topology() {
  zn_node 1
  zn_node 2
  zn_link 1 2
  zn_pod 1 client 10.99.1.1
  zn_pod 1 cat-1 "$WP_CAT_IP"
  zn_pod 1 waypoint-0 "$WP_IP"
  zn_pod 2 dog-1 "$WP_DOG_IP"
}

# wp_apps — the calculate back ends; fails naming the app that did not listen.
wp_apps() {
  nsx_bg cat-1 "$NSX_TMP/app-cat.log" "$ZT_PY" -u "$WP_APP" serve cat-plus 8080
  nsx_bg dog-1 "$NSX_TMP/app-dog.log" "$ZT_PY" -u "$WP_APP" serve dog-multi 8080
  wait_for_port cat-1 8080 10 || { echo "cat app not listening"; tail -n 5 "$NSX_TMP/app-cat.log"; return 1; }
  wait_for_port dog-1 8080 10 || { echo "dog app not listening"; tail -n 5 "$NSX_TMP/app-dog.log"; return 1; }
}

# wp_cp_start — controlplane serve in node 1; CP_PID.
wp_cp_start() {
  nsx_bg n1 "$NSX_TMP/cp.log" "$CP_BIN" serve --dir "$WP_MESH" --listen 0.0.0.0:15012 \
    --cacerts "$NSX_TMP/cacerts" --tokens "$NSX_TMP/tokens.yaml"
  CP_PID=$NSX_LAST_PID
  local _
  for _ in $(seq 1 100); do
    grep -q 'serving on' "$NSX_TMP/cp.log" 2>/dev/null && return 0
    nsx_alive "$CP_PID" || break
    sleep 0.1
  done
  echo "controlplane did not start:"
  tail -n 20 "$NSX_TMP/cp.log"
  return 1
}

# wp_zt_start N — shared-mode ztunnel in node N, configured by the controlplane only.
wp_zt_start() {
  local n="$1" addr="https://127.0.0.1:15012" alt=()
  [[ $n != 1 ]] && addr="https://10.99.100.1:15012" && alt=(ALT_XDS_HOSTNAME=localhost ALT_CA_HOSTNAME=localhost)
  nsx_bg_env "n$n" "$NSX_TMP/zt-n$n.log" \
    PROXY_MODE=shared INPOD_UDS="$(zn_sock "$n")" XDS_ADDRESS="$addr" CA_ADDRESS="$addr" "${alt[@]}" \
    XDS_ROOT_CA="$NSX_TMP/cacerts/root-cert.pem" CA_ROOT_CA="$NSX_TMP/cacerts/root-cert.pem" \
    AUTH_TOKEN="$NSX_TMP/token-n$n" NODE_NAME="node-$n" POD_NAME="ztunnel-$n" \
    POD_NAMESPACE=istio-system INSTANCE_IP="10.99.100.$n" TRUST_DOMAIN="$ZT_TRUST_DOMAIN" \
    PACKET_MARK=1337 RUST_LOG="${WP_RUST_LOG:-info}" LOG_FORMAT=plain ZTUNNEL_WORKER_THREADS=1 \
    CONNECTION_TERMINATION_DEADLINE=3s ADMIN_ADDR=127.0.0.1:15000 STATS_ADDR="[::]:15020" \
    READINESS_ADDR="[::]:15021" -- "$ZT_BIN"
  printf -v "ZT_PID_n$n" '%s' "$NSX_LAST_PID"
  printf -v "ZT_OFF_n$n" '%s' 0
  printf -v "ZT_NODE_n$n" '%s' "$n"
}

# wp_waypoint_start — the waypoint binary in its own pod netns, as an Istio waypoint pod is
# started (downward-API variables), xDS and certificate from the controlplane; WP_PID.
wp_waypoint_start() {
  nsx_bg_env waypoint-0 "$NSX_TMP/waypoint.log" \
    POD_NAME=waypoint-0 POD_NAMESPACE=e2e SERVICE_ACCOUNT=waypoint INSTANCE_IP="$WP_IP" \
    NODE_NAME=node-1 TRUST_DOMAIN="$ZT_TRUST_DOMAIN" \
    XDS_ADDRESS=https://10.99.1.254:15012 CA_ADDRESS=https://10.99.1.254:15012 \
    ALT_XDS_HOSTNAME=localhost ALT_CA_HOSTNAME=localhost \
    XDS_ROOT_CA="$NSX_TMP/cacerts/root-cert.pem" CA_ROOT_CA="$NSX_TMP/cacerts/root-cert.pem" \
    AUTH_TOKEN="$NSX_TMP/token-wp" RUST_LOG="${WP_RUST_LOG:-info}" LOG_FORMAT=plain WAYPOINT_WORKER_THREADS="${WP_WORKER_THREADS:-2}" LD_PRELOAD="${WP_PRELOAD:-}" \
    CONNECTION_TERMINATION_DEADLINE=3s -- "$WP_BIN"
  WP_PID=$NSX_LAST_PID
}

# wp_wait_ready [TIMEOUT_S] — the waypoint's /healthz/ready answers 200 (first sync + cert).
wp_wait_ready() {
  local timeout="${1:-30}" code=""
  for _ in $(seq 1 $((timeout * 5))); do
    code=$(nsx_exec waypoint-0 curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
      http://127.0.0.1:15021/healthz/ready 2>/dev/null)
    [[ $code == 200 ]] && return 0
    nsx_alive "$WP_PID" || { echo "waypoint exited"; tail -n 20 "$NSX_TMP/waypoint.log"; return 1; }
    sleep 0.2
  done
  echo "waypoint not ready after ${timeout}s (last status ${code:-none})"
  tail -n 20 "$NSX_TMP/waypoint.log"
  return 1
}

wp_config_dump() { nsx_exec waypoint-0 curl -s --max-time 3 http://127.0.0.1:15000/config_dump; }
wp_metrics() { nsx_exec waypoint-0 curl -s --max-time 3 http://127.0.0.1:15020/metrics; }

# wp_weights — "CAT DOG" weights of calculate's default (last) route in the waypoint's /config_dump
# (a single-cluster route counts 100 for its subset).
WP_WEIGHTS_PY='
import json, sys
d = json.load(sys.stdin)
rc = [x for x in d["routes"] if x["name"].endswith("|calculate.e2e.svc.cluster.local")][0]
r = rc["virtualHosts"][0]["routes"][-1]["route"]
w = {"cat": 0, "dog": 0}
for c in r.get("weightedClusters") or [{"name": r.get("cluster", ""), "weight": 100}]:
    w["cat" if "cat-with-plus" in c["name"] else "dog"] += c["weight"]
print(w["cat"], w["dog"])'
wp_weights() { wp_config_dump | "$ZT_PY" -c "$WP_WEIGHTS_PY" 2>/dev/null; }

# wp_wait_weights CAT DOG [TIMEOUT_S] — until the waypoint runs a default route with those
# weights: how a caller knows a live VirtualService edit has been applied.
wp_wait_weights() {
  local want="$1 $2" timeout="${3:-15}" got=""
  for _ in $(seq 1 $((timeout * 5))); do
    got=$(wp_weights)
    [[ $got == "$want" ]] && return 0
    sleep 0.2
  done
  echo "waypoint default route weights '${got:-?}' (cat dog), wanted '$want' within ${timeout}s"
  return 1
}

# wp_bringup — everything above, in order; prints why and returns 1 on the first failure.
wp_bringup() {
  mkdir -p "$WP_MESH"
  wp_tokens
  wp_mesh_base
  wp_vs "${WP_CAT0:-90}" "${WP_DOG0:-10}"
  wp_topology
  "${WP_APPS:-wp_apps}" || return 1
  wp_cp_start || return 1
  [[ -s $NSX_TMP/cacerts/root-cert.pem ]] || { echo "controlplane created no cacerts"; return 1; }
  local n
  for n in 1 2; do zn_cni_start "$n" || return 1; done
  wp_zt_start 1
  wp_zt_start 2
  wp_waypoint_start
  for n in 1 2; do zn_zt_wait_ready "n$n" 30 || return 1; done
  zn_cni_add 1 client e2e client >/dev/null || { echo "cni add client failed"; return 1; }
  zn_cni_add 1 cat-1 e2e calculate >/dev/null || { echo "cni add cat-1 failed"; return 1; }
  zn_cni_add 2 dog-1 e2e calculate >/dev/null || { echo "cni add dog-1 failed"; return 1; }
  zn_wait_pods n1 2 15 || return 1
  zn_wait_pods n2 1 15 || return 1
  wp_wait_ready 30 || return 1
}
