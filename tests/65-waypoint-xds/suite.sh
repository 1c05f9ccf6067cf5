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
if ! protoc --python_out="$T/py" -I "$P" -I /usr/include \
     "$P/google/rpc/status.proto" "$P/envoy/config/core/v3/base.proto" \
     "$P/envoy/service/discovery/v3/discovery.proto" "$P/istio/workload/workload.proto" \
     "$P/istio/security/authorization.proto" "$P/istio/v1/auth/ca.proto" "$P/zds.proto" \
     "$P/envoy/type/v3/percent.proto" "$P/envoy/type/matcher/v3/string.proto" \
     "$P/envoy/config/core/v3/extension.proto" "$P/envoy/config/core/v3/l7_base.proto" \
     "$P/envoy/config/route/v3/route.proto" "$P/envoy/config/endpoint/v3/endpoint.proto" \
     "$P/envoy/config/cluster/v3/cluster.proto" "$P/envoy/extensions/filters/common/fault/v3/fault.proto" \
     "$P/envoy/extensions/filters/http/fault/v3/fault.proto" >"$T/protoc.log" 2>&1; then
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

summary
