#!/usr/bin/env bash
# tests/60-grpc-interop/suite.sh BIN_DIR — xDS and CA wire interop against gRPC's reference
# stack: Python (python3-grpcio + python3-protobuf, message classes compiled at test time by
# `protoc --python_out` from OUR proto/ files, grpcio's generic API, no generated stubs) talks
# to our binaries over TLS, in both directions. Needs root (a private network namespace keeps
# every port to itself). Takes ~40 s.
#
#   0. harness self-check: the Python clients against the Python servers
#   C. Python CA client   -> `controlplane serve` (CreateCertificate; impersonation rules)
#   A. Python ADS client  -> `controlplane serve` (wildcard Address/Authorization, edits of the
#                            YAML dir pushed as deltas, NACK, reconnect with initial versions)
#   B. Python ADS server  -> ztunnel (shared mode) xDS client (request shape, NACK of a malformed
#                            resource, config_dump, readiness, reconnect with initial versions)
#   D. Python CA server   -> ztunnel (dedicated mode) CA client (request shape, retry, identity
#                            check, certificate in config_dump)
#   E. ztunnel refuses xDS/CA servers whose certificate does not chain to XDS_ROOT_CA/CA_ROOT_CA
#      or does not name the host (ALT_XDS_HOSTNAME/ALT_CA_HOSTNAME as the positive control)
#
# Every case prints PASS/FAIL; the last line is "N passed, N failed"; exit 1 on any failure.
# NSX_KEEP_TMP=1 keeps certificates and logs (path printed at the end).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ZT_ROOT=$(cd "$HERE/../.." && pwd)
BIN_DIR=$(cd "${1:-$ZT_ROOT/build/bin}" 2>/dev/null && pwd || echo "${1:-$ZT_ROOT/build/bin}")
ZT_BIN="$BIN_DIR/ztunnel"
CP_BIN="$BIN_DIR/controlplane"
# The Debian python3-grpcio lives in the system interpreter, not in a pyenv/venv one.
PY="${ZT_PY:-/usr/bin/python3}"
[[ -x $PY ]] || PY=python3
SCENARIO_TIMEOUT="${INTEROP_TIMEOUT:-180}"

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

nsx_init grpc-interop
T="$NSX_TMP"
# All processes run in a netns with only `lo`: fixed ports cannot collide with anything else.
nsx_add_netns "$(nsx_ns lo)"
in_ns() { nsx_exec lo "$@"; }

# ---- protos -> Python message classes ------------------------------------------------------
mkdir -p "$T/py"
P="$ZT_ROOT/proto"
if ! protoc --python_out="$T/py" -I "$P" -I /usr/include \
     "$P/google/rpc/status.proto" "$P/envoy/config/core/v3/base.proto" \
     "$P/envoy/service/discovery/v3/discovery.proto" "$P/istio/workload/workload.proto" \
     "$P/istio/security/authorization.proto" "$P/istio/v1/auth/ca.proto" "$P/zds.proto" \
     >"$T/protoc.log" 2>&1; then
  fail "protoc --python_out compiles proto/" "$(cat "$T/protoc.log")"
  summary; exit 1
fi
export INTEROP_PB="$T/py"
export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ in the source tree

# ---- certificates ----------------------------------------------------------------------------
# cacerts: the mesh CA (controlplane --cacerts, ztunnel LOCAL_CA_DIR, signer of the Python CA).
# tlsca:   a different CA for the Python servers' TLS certificate (XDS_ROOT_CA / CA_ROOT_CA).
# server_cert NAME SAN — $T/NAME-key.pem and $T/NAME-chain.pem (leaf + tlsca intermediate).
server_cert() {
  local n="$1" san="$2"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/$n-key.pem" &&
  openssl req -new -key "$T/$n-key.pem" -subj "/CN=$n" -out "$T/$n.csr" &&
  printf '[s]\nsubjectAltName=%s\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n' "$san" >"$T/$n.ext" &&
  openssl x509 -req -in "$T/$n.csr" -CA "$T/tlsca/ca-cert.pem" -CAkey "$T/tlsca/ca-key.pem" \
    -set_serial "0x$(openssl rand -hex 16)" -days 2 -sha256 -extfile "$T/$n.ext" -extensions s \
    -out "$T/$n-cert.pem" &&
  cat "$T/$n-cert.pem" "$T/tlsca/ca-cert.pem" >"$T/$n-chain.pem" &&
  openssl verify -CAfile "$T/tlsca/root-cert.pem" -untrusted "$T/tlsca/ca-cert.pem" "$T/$n-cert.pem"
}
mk_certs() {
  "$ZT_ROOT/scripts/make-cacerts.sh" "$T/cacerts" cluster.local &&
  "$ZT_ROOT/scripts/make-cacerts.sh" "$T/tlsca" interop.test &&
  server_cert server "DNS:localhost,IP:127.0.0.1" &&
  server_cert alt "DNS:istiod.istio-system.svc"
}
if ! mk_certs >"$T/certs.log" 2>&1; then
  fail "test certificates created" "$(cat "$T/certs.log")"
  summary; exit 1
fi
TLS_ARGS=(--key "$T/server-key.pem" --chain "$T/server-chain.pem")

# ---- helpers ---------------------------------------------------------------------------------

# relay PREFIX FILE — turn a scenario's PASS/FAIL lines (and their indented details) into ours.
relay() {
  local prefix="$1" file="$2" line name="" detail="" state=""
  flush() {
    if [[ $state == pass ]]; then pass "$prefix: $name"
    elif [[ $state == fail ]]; then fail "$prefix: $name" "${detail%$'\n'}"; fi
    state=""; detail=""
  }
  while IFS= read -r line; do
    case "$line" in
      PASS:*) flush; state=pass; name="${line#PASS: }" ;;
      FAIL:*) flush; state=fail; name="${line#FAIL: }" ;;
      "      "*) [[ $state == fail ]] && detail+="${line#      }"$'\n' ;;
    esac
  done <"$file"
  flush
}

# scenario PREFIX OUTFILE script args... — run a Python scenario in the netns (bounded), relay.
scenario() {
  local prefix="$1" out="$2"; shift 2
  local rc=0
  in_ns timeout -k 5 "$SCENARIO_TIMEOUT" "$PY" -u "$HERE/$1" "${@:2}" >"$out" 2>"$out.err" || rc=$?
  relay "$prefix" "$out"
  if [[ $rc != 0 ]] && ! grep -q '^FAIL:' "$out"; then
    fail "$prefix: $1 ran to completion (exit $rc)" "$(tail -n 25 "$out.err")"
  fi
}

# bg_py OUTFILE script args... — start a Python server scenario in the background (PID in
# NSX_LAST_PID); returns 1 when it does not print LISTENING within 15 s.
bg_py() {
  local out="$1"; shift
  nsx_bg lo "$out" timeout -k 5 "$SCENARIO_TIMEOUT" "$PY" -u "$HERE/$1" "${@:2}"
  local pid=$NSX_LAST_PID
  for _ in $(seq 1 150); do
    grep -q '^LISTENING' "$out" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# zt_bg LOGFILE VAR=VAL... — ztunnel in the netns with exactly these variables (no leakage of
# ISTIO_META_*/XDS_* from the caller's environment). PID in NSX_LAST_PID.
zt_bg() {
  local logf="$1"; shift
  nsx_bg lo "$logf" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@" RUST_LOG="${ZT_RUST_LOG:-debug}" \
    LOG_FORMAT=plain ZTUNNEL_WORKER_THREADS=1 "$ZT_BIN"
}

# await_pair PY_PID ZT_PID PREFIX ZT_LOG — wait (bounded) for the Python scenario to finish; if
# ztunnel dies first, stop the scenario and report that with ztunnel's log.
await_pair() {
  local py="$1" zt="$2" prefix="$3" zlog="$4"
  for _ in $(seq 1 $((SCENARIO_TIMEOUT * 10))); do
    kill -0 "$py" 2>/dev/null || return 0
    if ! kill -0 "$zt" 2>/dev/null; then
      sleep 1   # let the scenario report what it saw
      kill -0 "$py" 2>/dev/null && nsx_stop "$py" 2
      local zrc=0; wait "$zt" 2>/dev/null || zrc=$?
      fail "$prefix: ztunnel stayed up during the scenario (exit $zrc)" "$(tail -n 25 "$zlog")"
      return 1
    fi
    sleep 0.1
  done
  nsx_stop "$py" 2
  return 1
}

# finish_bg PREFIX PY_PID OUTFILE — relay a background scenario's lines; a crash without FAIL
# lines is a failure of its own.
finish_bg() {
  local prefix="$1" py="$2" out="$3" rc=0
  wait "$py" 2>/dev/null || rc=$?
  relay "$prefix" "$out"
  if [[ $rc != 0 ]] && ! grep -q '^FAIL:' "$out"; then
    fail "$prefix: scenario ran to completion (exit $rc)" "$(grep -v '^PASS:' "$out" | tail -n 25)"
  fi
}

# ---- 0. harness self-check -------------------------------------------------------------------
scenario "harness" "$T/selftest.out" selftest.py "${TLS_ARGS[@]}" --root "$T/tlsca/root-cert.pem" \
  --ca-cert "$T/cacerts/ca-cert.pem" --ca-key "$T/cacerts/ca-key.pem" --ca-root "$T/cacerts/root-cert.pem"

# ---- A + C: controlplane serve ----------------------------------------------------------------
CP_ADDR=127.0.0.1:15012
mkdir -p "$T/mesh"
cp "$ZT_ROOT"/examples/k8s/*.yaml "$T/mesh/"
cat >"$T/tokens.yaml" <<'EOF'
tokens:
- token: node-a-token-5b2e
  serviceAccount: istio-system/ztunnel
  node: demo-node
- token: node-b-token-c91d
  serviceAccount: istio-system/ztunnel
  node: other-node
- token: client-token-77aa
  serviceAccount: demo/client
EOF
cp_ok=0
if [[ ! -x $CP_BIN ]]; then
  fail "controlplane binary present at $CP_BIN"
else
  nsx_bg lo "$T/controlplane.log" "$CP_BIN" serve --dir "$T/mesh" --listen "$CP_ADDR" \
    --cacerts "$T/cacerts" --tokens "$T/tokens.yaml"
  CP_PID=$NSX_LAST_PID
  if wait_for_file_match "$T/controlplane.log" 'serving on' 15; then
    pass "controlplane serve is listening on $CP_ADDR"
    cp_ok=1
  else
    fail "controlplane serve prints 'serving on' within 15s" "$(tail -n 20 "$T/controlplane.log")"
    nsx_stop "$CP_PID" 3
  fi
fi
if [[ $cp_ok == 1 ]]; then
  scenario "C ca-client->controlplane" "$T/case-c.out" ca_client.py --addr "$CP_ADDR" \
    --root "$T/cacerts/root-cert.pem" --node-token node-a-token-5b2e \
    --other-node-token node-b-token-c91d --client-token client-token-77aa
  scenario "A ads-client->controlplane" "$T/case-a.out" xds_client.py --addr "$CP_ADDR" \
    --root "$T/cacerts/root-cert.pem" --token node-a-token-5b2e --dir "$T/mesh"
  if nsx_alive "$CP_PID"; then
    if nsx_stop "$CP_PID" 10; then pass "controlplane serve exits 0 on SIGTERM"
    else fail "controlplane serve exits 0 on SIGTERM" "$(tail -n 10 "$T/controlplane.log")"; fi
  else
    fail "controlplane serve still running after cases A and C" "$(tail -n 20 "$T/controlplane.log")"
  fi
fi

# ---- B: Python ADS server -> ztunnel xDS client (shared mode) ----------------------------------
if [[ ! -x $ZT_BIN ]]; then
  fail "ztunnel binary present at $ZT_BIN"
else
  if bg_py "$T/case-b.out" xds_server.py --listen 127.0.0.1:15010 "${TLS_ARGS[@]}" \
       --token b-literal-token-3f0c --cluster-id interop-cluster --pod ztunnel-0 --ns istio-system \
       --ip 10.99.7.7 --node node-a --zds-socket "$T/zds.sock" \
       --admin http://127.0.0.1:15100 --ready http://127.0.0.1:15121/healthz/ready; then
    B_PY=$NSX_LAST_PID
    zt_bg "$T/ztunnel-b.log" PROXY_MODE=shared XDS_ADDRESS=https://127.0.0.1:15010 \
      XDS_ROOT_CA="$T/tlsca/root-cert.pem" AUTH_TOKEN=b-literal-token-3f0c CLUSTER_ID=interop-cluster \
      LOCAL_CA_DIR="$T/cacerts" INPOD_UDS="$T/zds.sock" ADMIN_ADDR=127.0.0.1:15100 \
      STATS_ADDR=127.0.0.1:15120 READINESS_ADDR=127.0.0.1:15121 POD_NAME=ztunnel-0 \
      POD_NAMESPACE=istio-system INSTANCE_IP=10.99.7.7 NODE_NAME=node-a ISTIO_META_FOO=bar \
      ISTIO_METAJSON_LABELS='{"app":"zt","n":2}' XDS_HEADER_X_INTEROP_TEST=hdr-1 \
      TRUST_DOMAIN=cluster.local
    B_ZT=$NSX_LAST_PID
    if await_pair "$B_PY" "$B_ZT" "B ads-server->ztunnel" "$T/ztunnel-b.log"; then
      finish_bg "B ads-server->ztunnel" "$B_PY" "$T/case-b.out"
    else
      relay "B ads-server->ztunnel" "$T/case-b.out"
    fi
    if nsx_alive "$B_ZT"; then
      if nsx_stop "$B_ZT" 15; then pass "B ads-server->ztunnel: ztunnel exits 0 on SIGTERM"
      else fail "B ads-server->ztunnel: ztunnel exits 0 on SIGTERM" "exit status $?; $(tail -n 10 "$T/ztunnel-b.log")"; fi
    fi
  else
    fail "B: Python ADS server listening" "$(tail -n 20 "$T/case-b.out")"
  fi

  # ---- D: Python CA server -> ztunnel CA client (dedicated mode) --------------------------------
  cat >"$T/d-local.yaml" <<'EOF'
workloads:
- uid: Kubernetes//Pod/demo/web-1
  name: web-1
  namespace: demo
  serviceAccount: web
  workloadIps: ["10.99.1.11"]
  protocol: HBONE
  node: demo-node
EOF
  printf '%s' d-file-token-8e4a >"$T/d-token"
  if bg_py "$T/case-d.out" ca_server.py --listen 127.0.0.1:15011 "${TLS_ARGS[@]}" \
       --ca-cert "$T/cacerts/ca-cert.pem" --ca-key "$T/cacerts/ca-key.pem" \
       --ca-root "$T/cacerts/root-cert.pem" --token d-file-token-8e4a --cluster-id interop-cluster \
       --identity spiffe://cluster.local/ns/demo/sa/web --ttl 7200 \
       --admin http://127.0.0.1:15200 --ready http://127.0.0.1:15221/healthz/ready; then
    D_PY=$NSX_LAST_PID
    zt_bg "$T/ztunnel-d.log" PROXY_MODE=dedicated PROXY_WORKLOAD_INFO=demo/web-1/web \
      LOCAL_XDS_PATH="$T/d-local.yaml" CA_ADDRESS=https://127.0.0.1:15011 \
      CA_ROOT_CA="$T/tlsca/root-cert.pem" AUTH_TOKEN="$T/d-token" SECRET_TTL=2h \
      CLUSTER_ID=interop-cluster TRUST_DOMAIN=cluster.local PACKET_MARK=1337 \
      ADMIN_ADDR=127.0.0.1:15200 STATS_ADDR=127.0.0.1:15220 READINESS_ADDR=127.0.0.1:15221
    D_ZT=$NSX_LAST_PID
    if await_pair "$D_PY" "$D_ZT" "D ca-server->ztunnel" "$T/ztunnel-d.log"; then
      finish_bg "D ca-server->ztunnel" "$D_PY" "$T/case-d.out"
    else
      relay "D ca-server->ztunnel" "$T/case-d.out"
    fi
    if nsx_alive "$D_ZT"; then
      if nsx_stop "$D_ZT" 15; then pass "D ca-server->ztunnel: ztunnel exits 0 on SIGTERM"
      else fail "D ca-server->ztunnel: ztunnel exits 0 on SIGTERM" "exit status $?; $(tail -n 10 "$T/ztunnel-d.log")"; fi
    fi
  else
    fail "D: Python CA server listening" "$(tail -n 20 "$T/case-d.out")"
  fi
fi

# ---- E: ztunnel verifies the xDS and CA servers' certificates ---------------------------------
# A dedicated ztunnel with both XDS_ADDRESS and CA_ADDRESS on tls_probe.py, which counts the
# streams/calls that got through the handshake. The last run is the positive control.
tls_case() {  # tls_case NAME none|some CERT_NAME VAR=VAL...
  local name="$1" want="$2" cert="$3"; shift 3
  local out="$T/tls-$cert-$want.out" zlog="$T/ztunnel-tls-$cert-$want.log" counts
  if ! bg_py "$out" tls_probe.py --listen 127.0.0.1:15014 --key "$T/$cert-key.pem" \
       --chain "$T/$cert-chain.pem" --seconds 6; then
    fail "E: $name (probe server listening)" "$(cat "$out")"
    return
  fi
  local probe=$NSX_LAST_PID
  zt_bg "$zlog" PROXY_MODE=dedicated PROXY_WORKLOAD_INFO=demo/web-1/web \
    LOCAL_XDS_PATH="$T/d-local.yaml" XDS_ADDRESS=https://127.0.0.1:15014 \
    CA_ADDRESS=https://127.0.0.1:15014 AUTH_TOKEN=e-token CLUSTER_ID=interop-cluster \
    PACKET_MARK=1337 ADMIN_ADDR=127.0.0.1:15300 STATS_ADDR=127.0.0.1:15320 \
    READINESS_ADDR=127.0.0.1:15321 "$@"
  local zt=$NSX_LAST_PID
  for _ in $(seq 1 150); do kill -0 "$probe" 2>/dev/null || break; sleep 0.1; done
  nsx_alive "$probe" && nsx_stop "$probe" 2
  counts=$(grep -m1 '^STREAMS' "$out")
  local alive=1
  nsx_alive "$zt" || alive=0
  nsx_alive "$zt" && nsx_stop "$zt" 5
  local streams calls
  read -r _ streams _ calls <<<"${counts:-STREAMS ? CALLS ?}"
  if [[ $alive == 0 ]]; then
    fail "E: $name" "ztunnel exited: $(tail -n 15 "$zlog")"
  elif [[ $want == none && $streams == 0 && $calls == 0 ]] || \
       [[ $want == some && $streams =~ ^[1-9] && $calls =~ ^[1-9] ]]; then
    pass "E: $name ($counts)"
  else
    fail "E: $name" "probe saw: ${counts:-nothing}; ztunnel log:
$(grep -aiE 'xds|ca|tls|certif|handshake' "$zlog" | tail -n 12)"
  fi
}
if [[ -x $ZT_BIN ]]; then
  tls_case "server certificate from another root (XDS_ROOT_CA/CA_ROOT_CA = mesh root): no stream, no CSR" \
    none server XDS_ROOT_CA="$T/cacerts/root-cert.pem" CA_ROOT_CA="$T/cacerts/root-cert.pem"
  tls_case "server certificate without the address host in its SANs: no stream, no CSR" \
    none alt XDS_ROOT_CA="$T/tlsca/root-cert.pem" CA_ROOT_CA="$T/tlsca/root-cert.pem"
  tls_case "same certificate with ALT_XDS_HOSTNAME/ALT_CA_HOSTNAME naming its SAN: stream and CSR get through" \
    some alt XDS_ROOT_CA="$T/tlsca/root-cert.pem" CA_ROOT_CA="$T/tlsca/root-cert.pem" \
    ALT_XDS_HOSTNAME=istiod.istio-system.svc ALT_CA_HOSTNAME=istiod.istio-system.svc
fi

# Sanitizer builds (-DAMBIENT_SANITIZE=ON) report into the logs of our binaries.
san=$(grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/*.log 2>/dev/null)
if [[ -z $san ]]; then pass "no sanitizer reports in the controlplane/ztunnel logs"
else fail "no sanitizer reports in the controlplane/ztunnel logs" "$(for f in $san; do echo "== $f"; grep -m3 -A8 -E 'ERROR: |runtime error:' "$f"; done)"; fi

# shellcheck disable=SC2034  # read by nsx_cleanup
[[ $NSX_FAILED -gt 0 ]] && NSX_KEEP_TMP=1 && echo "logs kept in $T" >&2
summary
