#!/usr/bin/env bash
# tests/65-waypoint-xds/suite.sh BIN_DIR — the waypoint's xDS config source against an
# independent Envoy xDS server: python grpcio with message classes compiled at test time by
# `protoc --python_out` from OUR proto/ files (Envoy route/cluster/endpoint/fault protos plus
# the discovery and workload protos), serving delta ADS over TLS. The waypoint side is
# build/bin/waypoint-xds-probe (the waypoint's config source with no data path), which prints
# what it would install. Needs root (a private network namespace keeps the port to itself).
#
# The scenario (waypoint_xds_server.py) checks the wire (requests, ACK/NACK with named fields);
# this script checks what the probe installed: the good resources are in its snapshots, the
# NACKed ones are not, the NACK lines name the fields, and a removal reaches the snapshot.
#
# Case B: `controlplane serve` compiles a VirtualService + DestinationRule for a waypoint and
# serves it to the probe (identified by its node id); a live edit of the YAML reaches the probe
# as a delta, and nothing the controlplane sends is NACKed.
#
# Case C: the independent server (waypoint_xds_traffic.py) drives the real `waypoint` binary
# (certificate from LOCAL_CA_DIR) with plain Envoy resources, and an independent HBONE client
# (python3-h2) sends HTTP/1.1 through it to two apps: routed by header, a direct response, a
# NACKed unimplemented field that leaves the waypoint serving, then a live route edit.
#
# Prints PASS/FAIL lines and "N passed, N failed"; exit 1 on any failure.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ZT_ROOT=$(cd "$HERE/../.." && pwd)
BIN_DIR=$(cd "${1:-$ZT_ROOT/build/bin}" 2>/dev/null && pwd || echo "${1:-$ZT_ROOT/build/bin}")
PROBE="$BIN_DIR/waypoint-xds-probe"
PY="${ZT_PY:-/usr/bin/python3}"
[[ -x $PY ]] || PY=python3

# shellcheck source=../lib/netns.sh
source "$ZT_ROOT/tests/lib/netns.sh"

require_root
for t in openssl protoc timeout; do
  command -v "$t" >/dev/null 2>&1 || { fail "required tool $t missing"; summary; exit 1; }
done
if ! "$PY" -c 'import grpc, google.protobuf' 2>/dev/null; then
  fail "python3-grpcio and python3-protobuf importable by $PY"
  summary; exit 1
fi
[[ -x $PROBE ]] || { fail "waypoint-xds-probe built at $PROBE"; summary; exit 1; }

nsx_init wp-xds
T="$NSX_TMP"
nsx_add_netns "$(nsx_ns lo)"

mkdir -p "$T/py"
P="$ZT_ROOT/proto"
# Every file of proto/ (they compile together in CMake): an import added to route.proto (as
# Route.tracing's custom_tag.proto was) is then never missing here.
mapfile -t PROTOS < <(cd "$P" && find . -name '*.proto' | sed 's|^\./||' | sort)
if ! (cd "$P" && protoc --python_out="$T/py" -I . -I /usr/include "${PROTOS[@]}") >"$T/protoc.log" 2>&1; then
  fail "protoc --python_out compiles proto/" "$(cat "$T/protoc.log")"
  summary; exit 1
fi
export INTEROP_PB="$T/py" PYTHONDONTWRITEBYTECODE=1

if ! { "$ZT_ROOT/scripts/make-cacerts.sh" "$T/tlsca" interop.test &&
       openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/server-key.pem" &&
       openssl req -new -key "$T/server-key.pem" -subj "/CN=xds" -out "$T/server.csr" &&
       printf '[s]\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$T/server.ext" &&
       openssl x509 -req -in "$T/server.csr" -CA "$T/tlsca/ca-cert.pem" -CAkey "$T/tlsca/ca-key.pem" \
         -set_serial "0x$(openssl rand -hex 16)" -days 2 -sha256 -extfile "$T/server.ext" -extensions s \
         -out "$T/server-cert.pem" &&
       cat "$T/server-cert.pem" "$T/tlsca/ca-cert.pem" >"$T/server-chain.pem"; } >"$T/certs.log" 2>&1; then
  fail "test certificates created" "$(cat "$T/certs.log")"
  summary; exit 1
fi

NODE_ID="waypoint~10.0.0.9~waypoint-0.demo~demo.svc.cluster.local"
ADDR=127.0.0.1:15012
nsx_bg lo "$T/server.out" timeout -k 5 120 "$PY" -u "$HERE/waypoint_xds_server.py" --listen "$ADDR" \
  --key "$T/server-key.pem" --chain "$T/server-chain.pem" --node-id "$NODE_ID"
PY_PID=$NSX_LAST_PID
for _ in $(seq 1 150); do
  grep -q '^LISTENING' "$T/server.out" 2>/dev/null && break
  sleep 0.1
done
nsx_bg lo "$T/probe.out" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin XDS_ADDRESS="https://$ADDR" \
  XDS_ROOT_CA="$T/tlsca/root-cert.pem" INSTANCE_IP=10.0.0.9 POD_NAME=waypoint-0 POD_NAMESPACE=demo \
  RUST_LOG=info "$PROBE" 60
PROBE_PID=$NSX_LAST_PID

# Wait (bounded) for the scenario to end, then stop the probe.
for _ in $(seq 1 600); do
  kill -0 "$PY_PID" 2>/dev/null || break
  sleep 0.1
done
wait "$PY_PID" 2>/dev/null
nsx_stop "$PROBE_PID" 5

while IFS= read -r line; do
  case "$line" in
    PASS:*) pass "server: ${line#PASS: }" ;;
    FAIL:*) fail "server: ${line#FAIL: }" "$(grep -A20 -F "$line" "$T/server.out" | sed -n '2,20p' | grep '^      ')" ;;
  esac
done <"$T/server.out"
grep -q '^DONE' "$T/server.out" || fail "scenario ran to completion" "$(tail -n 20 "$T/server.out.err" 2>/dev/null; tail -n 20 "$T/server.out")"

check "probe presents the waypoint node id" grep -qxF "NODE $NODE_ID" "$T/probe.out"
check "probe reports SYNCED after the first response of every type" grep -qx "SYNCED" "$T/probe.out"
# The first snapshot (at sync): the good route and clusters are installed, the rejected are not.
FIRST=$(grep -m1 '^SNAPSHOT ' "$T/probe.out" | cut -d' ' -f2-)
LAST=$(grep '^SNAPSHOT ' "$T/probe.out" | tail -n 1 | cut -d' ' -f2-)
snap_ok() {
  "$PY" - "$1" <<'PYEOF'
import json, sys
s = json.loads(sys.argv[1])
host = "calc.demo.svc.cluster.local"
r = s["routes"].get("inbound-vip|8080|http|" + host)
assert r and r[0]["weighted"] == {"inbound-vip|8080|http|" + host: 90, "inbound-vip|8080|http/dog|" + host: 10}, s
assert r[0]["timeoutMs"] == 2000 and r[0]["abort"] == 503, r
assert "bad-unknown" not in s["routes"] and "bad-header" not in s["routes"], s["routes"].keys()
assert sorted(s["clusters"]) == sorted(["inbound-vip|8080|http|" + host, "inbound-vip|8080|http/dog|" + host]), s
assert s["endpoints"]["inbound-vip|8080|http|" + host] == ["10.0.1.1:80"], s
assert s["workloads"] == 1, s
PYEOF
}
check "first snapshot: good route/clusters/endpoints/workload installed, NACKed ones absent" snap_ok "$FIRST"
last_ok() {
  "$PY" -c 'import json,sys; s=json.loads(sys.argv[1]); assert not s["routes"], s["routes"]; assert len(s["clusters"]) == 2' "$1"
}
check "a route removal reaches the snapshot" last_ok "$LAST"
check "probe logged the cluster NACK naming the field" contains -F "bad-cluster: cluster: unknown field #8" "$T/probe.out"
check "probe logged the route NACK naming cluster_header" contains -F "route.virtual_hosts[0].routes[0].route.cluster_header: field not implemented" "$T/probe.out"


# ---- B: controlplane serve -> waypoint config source (per-waypoint resources, live edits) -----
CP_BIN="$BIN_DIR/controlplane"
mkdir -p "$T/mesh"
cat >"$T/tokens.yaml" <<'TOK'
tokens:
- token: waypoint-token-3f1c
  serviceAccount: demo/waypoint
TOK
write_mesh() {  # write_mesh CAT_WEIGHT DOG_WEIGHT
  cat >"$T/mesh/mesh.yaml.tmp" <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: demo, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: demo}
spec: {gatewayClassName: istio-waypoint}
---
apiVersion: v1
kind: Pod
metadata: {name: waypoint-0, namespace: demo, labels: {gateway.networking.k8s.io/gateway-name: waypoint, istio.io/dataplane-mode: none}}
spec: {serviceAccountName: waypoint}
status: {podIP: 10.0.0.9}
---
apiVersion: v1
kind: Service
metadata: {name: calculate, namespace: demo, labels: {istio.io/use-waypoint: waypoint}}
spec:
  selector: {app: calculate}
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 8080, targetPort: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: cat, namespace: demo, labels: {app: calculate, version: cat-plus}}
status: {podIP: 10.0.1.1}
---
apiVersion: v1
kind: Pod
metadata: {name: dog, namespace: demo, labels: {app: calculate, version: dog-multi}}
status: {podIP: 10.0.1.2}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: calculate, namespace: demo}
spec:
  host: calculate
  subsets:
  - {name: cat-with-plus, labels: {version: cat-plus}}
  - {name: dog-with-multi, labels: {version: dog-multi}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: calculate, namespace: demo}
spec:
  hosts: [calculate]
  http:
  - route:
    - {destination: {host: calculate, subset: cat-with-plus}, weight: $1}
    - {destination: {host: calculate, subset: dog-with-multi}, weight: $2}
YAML
  mv "$T/mesh/mesh.yaml.tmp" "$T/mesh/mesh.yaml"
}
# wait_snapshot FILE PYTHON-EXPR: a SNAPSHOT line of FILE whose json `s` satisfies EXPR (20 s).
wait_snapshot() {
  for _ in $(seq 1 200); do
    grep '^SNAPSHOT ' "$1" 2>/dev/null | cut -d' ' -f2- | "$PY" -c '
import json, sys
for line in sys.stdin:
    s = json.loads(line)
    if '"$2"':
        sys.exit(0)
sys.exit(1)' && return 0
    sleep 0.1
  done
  return 1
}
if [[ ! -x $CP_BIN ]]; then
  fail "controlplane binary present at $CP_BIN"
else
  write_mesh 90 10
  CP_ADDR=127.0.0.1:15013
  nsx_bg lo "$T/controlplane.log" "$CP_BIN" serve --dir "$T/mesh" --listen "$CP_ADDR" --cacerts "$T/cacerts" \
    --tokens "$T/tokens.yaml"
  CP_PID=$NSX_LAST_PID
  for _ in $(seq 1 100); do grep -q "serving on" "$T/controlplane.log" 2>/dev/null && break; sleep 0.1; done
  nsx_bg lo "$T/probe-cp.out" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin XDS_ADDRESS="https://$CP_ADDR" \
    XDS_ROOT_CA="$T/cacerts/root-cert.pem" AUTH_TOKEN=waypoint-token-3f1c INSTANCE_IP=10.0.0.9 \
    POD_NAME=waypoint-0 POD_NAMESPACE=demo RUST_LOG=info "$PROBE" 60
  PROBE2=$NSX_LAST_PID
  R='"inbound-vip|8080|http|calculate.demo.svc.cluster.local"'
  CAT='"inbound-vip|8080|http/cat-with-plus|calculate.demo.svc.cluster.local"'
  DOG='"inbound-vip|8080|http/dog-with-multi|calculate.demo.svc.cluster.local"'
  check "controlplane serves the waypoint its istiod-named route (90/10), clusters and endpoints" \
    wait_snapshot "$T/probe-cp.out" "s['routes'].get($R, [{}])[0].get('weighted') == {$CAT: 90, $DOG: 10} and len(s['clusters']) == 3 and s['endpoints'].get($DOG) == ['10.0.1.2:80'] and s['workloads'] >= 3"
  write_mesh 0 100
  check "a live VirtualService edit (blue/green 0/100) reaches the waypoint as a delta" \
    wait_snapshot "$T/probe-cp.out" "s['routes'].get($R, [{}])[0].get('cluster') == $DOG"
  check_not "the waypoint NACKed nothing the controlplane sent" contains -E '^NACK |xDS NACK' "$T/probe-cp.out"
  nsx_stop "$PROBE2" 5
  nsx_stop "$CP_PID" 5
fi

# ---- C: the independent xDS server drives the REAL waypoint binary, traffic through it -------------
# waypoint_xds_traffic.py serves plain Envoy resources (no controlplane involved); the waypoint
# gets its certificate from LOCAL_CA_DIR (the test CA above); an independent HBONE client
# (python3-h2, tests/unit/waypoint/hbone_http1_client.py) sends HTTP/1.1 inside CONNECT to the
# VIP; two apps (tests/66-waypoint-e2e/calc_app.py) on 127.0.0.1:18080 (a) and :18081 (b).
WP_BIN="$BIN_DIR/waypoint"
HBONE_PY="$ZT_ROOT/tests/unit/waypoint/hbone_http1_client.py"
APP_PY="$ZT_ROOT/tests/66-waypoint-e2e/calc_app.py"
WP_ID="spiffe://interop.test/ns/demo/sa/waypoint"
if [[ ! -x $WP_BIN ]]; then
  fail "waypoint binary present at $WP_BIN"
elif ! { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/client-key.pem" &&
         openssl req -new -key "$T/client-key.pem" -subj "/O=interop.test" -out "$T/client.csr" &&
         printf '[c]\nsubjectAltName=critical,URI:spiffe://interop.test/ns/demo/sa/client\nextendedKeyUsage=clientAuth,serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' >"$T/client.ext" &&
         openssl x509 -req -in "$T/client.csr" -CA "$T/tlsca/ca-cert.pem" -CAkey "$T/tlsca/ca-key.pem" \
           -set_serial "0x$(openssl rand -hex 16)" -days 2 -sha256 -extfile "$T/client.ext" -extensions c \
           -out "$T/client-cert.pem" &&
         cat "$T/client-cert.pem" "$T/tlsca/ca-cert.pem" >"$T/client-chain.pem"; } >"$T/client-certs.log" 2>&1; then
  fail "client certificate for the HBONE client created" "$(cat "$T/client-certs.log")"
else
  nsx_bg lo "$T/app-a.log" "$PY" -u "$APP_PY" serve cat-plus 18080
  nsx_bg lo "$T/app-b.log" "$PY" -u "$APP_PY" serve dog-multi 18081
  WP_NODE="waypoint~127.0.0.1~waypoint-0.demo~demo.svc.cluster.local"
  echo waypoint-token-c >"$T/wp-token"   # sent as istiod expects; this server does not check it
  nsx_bg lo "$T/traffic-server.out" timeout -k 5 150 "$PY" -u "$HERE/waypoint_xds_traffic.py" \
    --listen 127.0.0.1:15014 --key "$T/server-key.pem" --chain "$T/server-chain.pem" --node-id "$WP_NODE" \
    --phase2 "$T/phase2" --done "$T/done"
  TS_PID=$NSX_LAST_PID
  for _ in $(seq 1 150); do grep -q '^LISTENING' "$T/traffic-server.out" 2>/dev/null && break; sleep 0.1; done
  nsx_bg lo "$T/waypoint.log" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin POD_NAME=waypoint-0 POD_NAMESPACE=demo \
    SERVICE_ACCOUNT=waypoint INSTANCE_IP=127.0.0.1 TRUST_DOMAIN=interop.test LOCAL_CA_DIR="$T/tlsca" \
    XDS_ADDRESS=https://127.0.0.1:15014 XDS_ROOT_CA="$T/tlsca/root-cert.pem" AUTH_TOKEN="$T/wp-token" RUST_LOG=info LOG_FORMAT=plain \
    WAYPOINT_WORKER_THREADS=1 "$WP_BIN"
  WPX_PID=$NSX_LAST_PID
  ready=""
  for _ in $(seq 1 150); do
    [[ $(nsx_exec lo curl -s -o /dev/null -w '%{http_code}' --max-time 1 http://127.0.0.1:15021/healthz/ready) == 200 ]] &&
      ready=1 && break
    nsx_alive "$WPX_PID" || break
    sleep 0.2
  done
  if [[ -n $ready ]] && wait_for_port lo 18080 10 && wait_for_port lo 18081 10; then
    pass "the waypoint binary is ready on configuration from the independent xDS server alone (certificate from LOCAL_CA_DIR)"
  else
    fail "waypoint ready on the independent xDS server's configuration" "$(tail -n 15 "$T/waypoint.log" "$T/traffic-server.out")"
  fi
  # hbone REQUEST... — one tunnel from the independent client, the requests on it.
  hbone() {
    nsx_exec lo timeout 30 "$PY" "$HBONE_PY" 127.0.0.1 15008 "$T/client-chain.pem" "$T/client-key.pem" \
      "$T/tlsca/root-cert.pem" 10.96.0.10:80 "$WP_ID" "$@" 2>&1
  }
  out=$(hbone "GET /hello" "GET /hello x-version:b" "GET /direct")
  got=$(grep -E '^(PEER|CONNECT|RESPONSE)' <<<"$out" | tr '\n' '|')
  want="PEER $WP_ID|CONNECT 200|RESPONSE 200 cat-plus|RESPONSE 200 dog-multi|RESPONSE 200 answered from the python xds server's route|"
  [[ $got == "$want" ]] &&
    pass "python3-h2 HBONE client -> waypoint, routed by the python server's RouteConfiguration: default -> a, x-version: b -> b, /direct answered locally" ||
    fail "traffic routed by the independent xDS server's resources" "got:  $got
want: $want
$out"
  touch "$T/phase2"
  for _ in $(seq 1 100); do grep -q '^EDITED' "$T/traffic-server.out" && break; sleep 0.1; done
  out=""
  for _ in $(seq 1 25); do   # the ACK can precede the switch of the running snapshot by a moment
    out=$(hbone "GET /after-edit")
    grep -qx 'RESPONSE 200 dog-multi' <<<"$out" && break
    sleep 0.2
  done
  grep -qx 'RESPONSE 200 dog-multi' <<<"$out" &&
    pass "after the NACKed route and the live edit, the default route goes to b (the NACK kept the waypoint serving)" ||
    fail "live route edit from the independent xDS server applied" "$out"
  touch "$T/done"
  for _ in $(seq 1 100); do nsx_alive "$TS_PID" || break; sleep 0.1; done
  wait "$TS_PID" 2>/dev/null
  while IFS= read -r line; do
    case "$line" in
      PASS:*) pass "server (case C): ${line#PASS: }" ;;
      FAIL:*) fail "server (case C): ${line#FAIL: }" ;;
      "      "*) echo "$line" ;;
    esac
  done <"$T/traffic-server.out"
  grep -q '^PASS: ' "$T/traffic-server.out" || fail "case C server ran its checks" "$(tail -n 20 "$T/traffic-server.out")"
  nsx_alive "$WPX_PID" && pass "waypoint still running after the NACK" || fail "waypoint still running" "$(tail -n 20 "$T/waypoint.log")"
  nsx_stop "$WPX_PID" 5
fi

summary
