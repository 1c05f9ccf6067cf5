#!/usr/bin/env bash
# tests/20-interop/suite.sh BIN_DIR — interop of our HBONE endpoints with independent HTTP/2
# stacks (python3-h2 and Node's http2), plus the negative and abuse cases of the HBONE server.
#
# Topology: one loopback-only netns (zt-interop-zt) runs a dedicated-mode ztunnel whose
# workload IP is 127.0.0.1 (identity spiffe://cluster.local/ns/interop/sa/server) and an echo
# server on 127.0.0.1:9000. A second netns (zt-interop-deny) runs the same with an L4 DENY
# policy. A third (zt-interop-py) runs h2_connect_server.py (python3-h2 HBONE server) and an
# echo server, for our hbone-cli as the client. Everything is torn down by the EXIT trap of
# tests/lib/netns.sh. Needs root; prints "N passed, N failed" last; exits non-zero on failure.
#
# Environment: NSX_KEEP_TMP=1 keeps the logs; INTEROP_ABUSE_RR (rapid-reset count, default
# 10000), INTEROP_VERBOSE=1 prints every client's output.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN_DIR=$(cd "${1:-$ROOT/build/bin}" 2>/dev/null && pwd || echo "${1:-$ROOT/build/bin}")
PY=/usr/bin/python3
NODE=/usr/bin/node
RR_COUNT=${INTEROP_ABUSE_RR:-10000}
VERBOSE=${INTEROP_VERBOSE:-0}

# shellcheck source=../lib/netns.sh
source "$ROOT/tests/lib/netns.sh"
require_root

missing=()
[[ -x $BIN_DIR/ztunnel ]] || missing+=("$BIN_DIR/ztunnel")
$PY -c 'import h2, hpack' 2>/dev/null || missing+=("python3-h2 for $PY")
[[ -x $NODE ]] || missing+=("$NODE")
command -v socat >/dev/null || missing+=("socat")
if ((${#missing[@]})); then
  echo "FAIL: missing ${missing[*]}"
  echo "0 passed, 1 failed"
  exit 1
fi

nsx_init interop
# Remember failed case names so they can be repeated just above the summary line.
FAILED_NAMES=()
eval "nsx_orig_fail() $(declare -f fail | tail -n +2)"
fail() { FAILED_NAMES+=("$1"); nsx_orig_fail "$@"; }
T=$NSX_TMP
ZT_NS=$(nsx_ns zt)
DENY_NS=$(nsx_ns deny)
PY_NS=$(nsx_ns py)
for ns in "$ZT_NS" "$DENY_NS" "$PY_NS"; do nsx_add_netns "$ns"; done

SERVER_ID=spiffe://cluster.local/ns/interop/sa/server
CLIENT_ID=spiffe://cluster.local/ns/interop/sa/pyclient

# ---- certificates -------------------------------------------------------------------------
mk() { "$ROOT/scripts/make-cacerts.sh" "$@" >/dev/null; }
issue() { "$ROOT/scripts/issue-cert.sh" "$@" >/dev/null; }
if ! { mk "$T/ca" cluster.local && mk "$T/ca-other" other.td &&
       issue "$T/ca" "$CLIENT_ID" "$T/client" &&
       issue "$T/ca-other" spiffe://other.td/ns/interop/sa/pyclient "$T/client-otherca" &&
       issue "$T/ca" spiffe://other.td/ns/interop/sa/pyclient "$T/client-othertd" &&
       issue "$T/ca" spiffe://cluster.local/ns/interop/sa/pyserver "$T/pyserver" &&
       issue "$T/ca" spiffe://cluster.local/ns/interop/sa/hbonecli "$T/hbcli"; }; then
  fail "certificates (scripts/make-cacerts.sh, scripts/issue-cert.sh)"
  summary; exit 1
fi
# A client that trusts our root but presents a chain from another CA.
cp "$T/client/root.pem" "$T/client-otherca/trust.pem"

# ---- ztunnel configs ------------------------------------------------------------------------
cat >"$T/zt.yaml" <<'EOF'
workloads:
- uid: Kubernetes//Pod/interop/server-0
  name: server-0
  namespace: interop
  serviceAccount: server
  workloadIps: ["127.0.0.1"]
  protocol: HBONE
  node: interop-node
  canonicalName: server
  canonicalRevision: v1
EOF
cp "$T/zt.yaml" "$T/zt-deny.yaml"
cat >>"$T/zt-deny.yaml" <<'EOF'
policies:
- name: deny-pyclient
  namespace: interop
  scope: Namespace
  action: Deny
  rules:
  - - - principals:
        - Exact: cluster.local/ns/interop/sa/pyclient
EOF

start_zt() {  # NS CONFIG LOG
  nsx_bg "$1" "$3" env PROXY_MODE=dedicated PROXY_WORKLOAD_INFO=interop/server-0/server \
    LOCAL_XDS_PATH="$2" LOCAL_CA_DIR="$T/ca" TRUST_DOMAIN=cluster.local RUST_LOG=info \
    ZTUNNEL_WORKER_THREADS=2 "$BIN_DIR/ztunnel"
}
start_zt "$ZT_NS" "$T/zt.yaml" "$T/ztunnel.log"; ZT_PID=$NSX_LAST_PID
start_zt "$DENY_NS" "$T/zt-deny.yaml" "$T/ztunnel-deny.log"; ZT_DENY_PID=$NSX_LAST_PID
for ns in "$ZT_NS" "$DENY_NS" "$PY_NS"; do
  nsx_bg "$ns" "$T/echo-${ns}.log" socat TCP-LISTEN:9000,bind=127.0.0.1,fork,reuseaddr EXEC:cat
done
nsx_bg "$PY_NS" "$T/pyserver.log" "$PY" "$HERE/h2_connect_server.py" --listen 127.0.0.1:15008 \
  --cert-dir "$T/pyserver" --trust-domain cluster.local
PYSRV_PID=$NSX_LAST_PID

ready=1
for ns in "$ZT_NS" "$DENY_NS"; do
  wait_for_http "$ns" http://127.0.0.1:15021/healthz/ready 20 || ready=0
  wait_for_port "$ns" 15008 10 || ready=0
  wait_for_port "$ns" 9000 5 || ready=0
done
wait_for_port "$PY_NS" 15008 10 || ready=0
if [[ $ready == 0 ]]; then
  fail "ztunnel ready (healthz + 15008 + echo)" "$(tail -n 30 "$T/ztunnel.log" "$T/ztunnel-deny.log" "$T/pyserver.log" 2>&1)"
  NSX_KEEP_TMP=1; echo "logs kept in $T"
  summary; exit 1
fi
pass "ztunnel ready in both namespaces"

# ---- helpers ------------------------------------------------------------------------------
# run_client OUTFILE NS cmd... : runs a client (bounded by timeout), stores output, returns rc.
run_client() {
  local of="$1" ns="$2"; shift 2
  timeout 60 ip netns exec "$ns" "$@" >"$of" 2>&1
  local rc=$?
  [[ $VERBOSE == 1 ]] && sed 's/^/      | /' "$of" >&2
  return $rc
}
PYC=("$PY" "$HERE/h2_connect_client.py" --port 15008 --timeout 15)
NODEC=("$NODE" "$HERE/node_connect_client.js" --port 15008 --timeout 15)
n=0
# expect NAME RC REGEX NS cmd... : PASS when the exit code equals RC (or RC is '!0' and the
# exit code is non-zero) and the output matches REGEX.
expect() {
  local name="$1" want="$2" re="$3" ns="$4"; shift 4
  n=$((n + 1))
  local of="$T/case-$n.out" rc
  run_client "$of" "$ns" "$@"; rc=$?
  local rc_ok=0
  if [[ $want == '!0' ]]; then [[ $rc != 0 ]] && rc_ok=1; else [[ $rc == "$want" ]] && rc_ok=1; fi
  if [[ $rc_ok == 1 ]] && grep -Eq -- "$re" "$of"; then
    pass "$name"
  else
    fail "$name (rc=$rc, want rc=$want and /$re/)" "$(cat "$of")"
  fi
}

# ---- interop: success paths --------------------------------------------------------------
expect "python3-h2 client: CONNECT 127.0.0.1:9000, echo" 0 '^ECHO_OK' "$ZT_NS" \
  "${PYC[@]}" --cert-dir "$T/client" --expect "$SERVER_ID" --std-headers --authority 127.0.0.1:9000
expect "python3-h2 client: 1 MiB echo" 0 '^ECHO_OK bytes=1048576' "$ZT_NS" \
  "${PYC[@]}" --cert-dir "$T/client" --expect "$SERVER_ID" --size 1048576
expect "python3-h2 client: TLS 1.3 + ALPN h2 negotiated" 0 '^TLS TLSv1.3 ALPN h2' "$ZT_NS" \
  "${PYC[@]}" --cert-dir "$T/client" --expect "$SERVER_ID" --no-payload
expect "node http2 client: CONNECT echo" 0 '^ECHO_OK' "$ZT_NS" \
  "${NODEC[@]}" --cert-dir "$T/client" --expect "$SERVER_ID" --std-headers
expect "node http2 client: 10 streams on one connection" 0 '^STREAMS ok=10/10' "$ZT_NS" \
  "${NODEC[@]}" --cert-dir "$T/client" --expect "$SERVER_ID" --streams 10 --size 20000
expect "python3-h2 client: 20 concurrent streams on one connection" 0 '^STREAMS ok=20/20' "$ZT_NS" \
  "${PYC[@]}" --cert-dir "$T/client" --expect "$SERVER_ID" --streams 20 --size 65536

# ---- TLS / identity negatives (P1, P2) ----------------------------------------------------
expect "client cert from another CA/trust domain refused at TLS" 2 '^TLS_ERROR' "$ZT_NS" \
  "${PYC[@]}" --cert "$T/client-otherca/chain.pem" --key "$T/client-otherca/key.pem" \
  --ca "$T/client-otherca/trust.pem" --expect "$SERVER_ID"
expect "client cert from our CA but SPIFFE trust domain other.td refused at TLS" 2 '^TLS_ERROR' "$ZT_NS" \
  "${PYC[@]}" --cert-dir "$T/client-othertd" --expect "$SERVER_ID"
expect "no client certificate refused at TLS" 2 '^TLS_ERROR' "$ZT_NS" \
  "${PYC[@]}" --ca "$T/client/root.pem" --no-client-cert --expect "$SERVER_ID"
expect "client expecting another server identity refuses (SAN check)" 3 '^SAN_MISMATCH' "$ZT_NS" \
  "${PYC[@]}" --cert-dir "$T/client" --expect spiffe://cluster.local/ns/interop/sa/someone-else
expect "node client expecting another server identity refuses" 3 '^SAN_MISMATCH' "$ZT_NS" \
  "${NODEC[@]}" --cert-dir "$T/client" --expect spiffe://cluster.local/ns/interop/sa/someone-else
expect "plaintext h2 (prior knowledge) to 15008 refused" '!0' '.' "$ZT_NS" \
  "${PYC[@]}" --plaintext
# The refusal must not have reached the app: no 200 in the plaintext output.
if grep -q '^STATUS 200\|^ECHO_OK' "$T/case-$n.out"; then fail "plaintext: no tunnel" "$(cat "$T/case-$n.out")"; fi
expect "TLS 1.2 only refused" 2 '^TLS_ERROR' "$ZT_NS" \
  "${PYC[@]}" --cert-dir "$T/client" --tls12
expect "no ALPN offered refused" '!0' '^(TLS_ERROR|CLOSED|GOAWAY|NO_)' "$ZT_NS" \
  "${PYC[@]}" --cert-dir "$T/client" --no-alpn
expect "ALPN http/1.1 only refused" 2 '^TLS_ERROR' "$ZT_NS" \
  "${PYC[@]}" --cert-dir "$T/client" --alpn http/1.1

# ---- CONNECT semantics -----------------------------------------------------------------
expect "CONNECT to a non-local IP (127.0.0.2:9000) -> 400" 1 '^STATUS 400' "$ZT_NS" \
  "${PYC[@]}" --cert-dir "$T/client" --expect "$SERVER_ID" --authority 127.0.0.2:9000
expect "CONNECT to another IP (10.99.77.1:9000) -> 400" 1 '^STATUS 400' "$ZT_NS" \
  "${PYC[@]}" --cert-dir "$T/client" --expect "$SERVER_ID" --authority 10.99.77.1:9000
expect "CONNECT with an unparsable authority -> 400" 1 '^STATUS 400' "$ZT_NS" \
  "${PYC[@]}" --cert-dir "$T/client" --expect "$SERVER_ID" --authority not-an-address
expect "CONNECT to a closed app port (127.0.0.1:9001) -> 503" 1 '^STATUS 503' "$ZT_NS" \
  "${PYC[@]}" --cert-dir "$T/client" --expect "$SERVER_ID" --authority 127.0.0.1:9001
expect "L4 DENY policy -> 401" 1 '^STATUS 401' "$DENY_NS" \
  "${PYC[@]}" --cert-dir "$T/client" --expect "$SERVER_ID"
expect "node client: L4 DENY policy -> 401" 1 '^STATUS 401' "$DENY_NS" \
  "${NODEC[@]}" --cert-dir "$T/client" --expect "$SERVER_ID"
# Same identity-less view: a different SA is not matched by the DENY rule.
issue "$T/ca" spiffe://cluster.local/ns/interop/sa/other "$T/client-othersa"
expect "L4 DENY policy does not hit another service account" 0 '^ECHO_OK' "$DENY_NS" \
  "${PYC[@]}" --cert-dir "$T/client-othersa" --expect "$SERVER_ID"

# ---- abuse (S3, S4, S5, S7) with a concurrent good client --------------------------------
# good_loop OUT : good clients one after another until $T/stop exists (max 200 runs).
good_loop() {
  local out="$1" i
  : >"$out"
  for i in $(seq 1 200); do
    [[ -e $T/stop ]] && break
    if timeout 20 ip netns exec "$ZT_NS" "${PYC[@]}" --cert-dir "$T/client" --expect "$SERVER_ID" \
        --payload "good-$i" >"$out.last" 2>&1; then
      echo ok >>"$out"
    else
      { echo "fail run $i:"; cat "$out.last"; } >>"$out"
    fi
    sleep 0.1
  done
}
abuse_case() {  # NAME REGEX client-args...
  local name="$1" re="$2"; shift 2
  local glog="$T/good-during-$((n + 1)).log"
  rm -f "$T/stop"
  good_loop "$glog" &
  local gl=$!
  sleep 0.3
  expect "$name" 0 "$re" "$ZT_NS" "${PYC[@]}" --cert-dir "$T/client" --expect "$SERVER_ID" --abuse-wait 8 "$@"
  sleep 0.5
  touch "$T/stop"
  wait "$gl"
  local oks fails
  oks=$(grep -c '^ok$' "$glog" 2>/dev/null)
  fails=$(grep -c '^fail' "$glog" 2>/dev/null)
  if [[ ${oks:-0} -ge 1 && ${fails:-0} == 0 ]]; then
    pass "  ...a concurrent good client kept working ($oks ok)"
  else
    fail "  ...a concurrent good client kept working (ok=${oks:-0} fail=${fails:-0})" "$(head -n 20 "$glog")"
  fi
}
abuse_case "rapid reset ($RR_COUNT x HEADERS+RST_STREAM) ends the connection" '^(GOAWAY|CLOSED)' \
  --rapid-reset "$RR_COUNT"
abuse_case "CONTINUATION flood ends the connection" '^(GOAWAY|CLOSED)' --continuation-flood 10000
abuse_case "SETTINGS flood ends the connection" '^(GOAWAY|CLOSED)' --settings-flood 20000
# Upstream (Rust h2) answers an over-limit header block with 431 + REFUSED_STREAM and keeps
# the connection; a connection error is accepted too. A 200 is the failure.
abuse_case "oversized header block (256 KiB) refused (stream or connection error)" \
  '^(GOAWAY|CLOSED|STREAM_REFUSED)' --oversized-headers 256 --accept-stream-error
if nsx_alive "$ZT_PID"; then pass "ztunnel survived the abuse cases"; else
  fail "ztunnel survived the abuse cases" "$(tail -n 30 "$T/ztunnel.log")"; fi
expect "python3-h2 client still served after abuse" 0 '^ECHO_OK' "$ZT_NS" \
  "${PYC[@]}" --cert-dir "$T/client" --expect "$SERVER_ID"

# ---- our client (hbone-cli --listen) against the python3-h2 server and against ztunnel ----
ECHO=("$PY" "$HERE/tcp_echo_check.py")
# hbone_listen NS PORT TARGET EXPECT LOG : start hbone-cli --listen, wait for its port.
hbone_listen() {
  nsx_bg "$1" "$5" "$BIN_DIR/hbone-cli" --cert-dir "$T/hbcli" --target "$3" \
    --authority 127.0.0.1:9000 --expect "$4" --listen "127.0.0.1:$2"
  HBL_PID=$NSX_LAST_PID
  wait_for_port "$1" "$2" 10
}
if [[ ! -x $BIN_DIR/hbone-cli ]]; then
  fail "hbone-cli cases: $BIN_DIR/hbone-cli not built"
else
  PYSRV_ID=spiffe://cluster.local/ns/interop/sa/pyserver
  if hbone_listen "$PY_NS" 25100 127.0.0.1:15008 "$PYSRV_ID" "$T/hbcli-py.log"; then
    expect "hbone-cli -> python3-h2 HBONE server -> echo (5 connections, 100 kB each)" 0 '^TCP_ECHO ok=5/5' \
      "$PY_NS" "${ECHO[@]}" --port 25100 --count 5 --size 100000
    if grep -q 'CONNECT authority=127.0.0.1:9000 status=200 peer=spiffe://cluster.local/ns/interop/sa/hbonecli' "$T/pyserver.log"; then
      pass "python3-h2 server saw hbone-cli's identity and a classic CONNECT"
    else
      fail "python3-h2 server saw hbone-cli's identity and a classic CONNECT" "$(tail -n 10 "$T/pyserver.log")"
    fi
    # Pooling: 5 sequential TCP connections should have needed 1 TLS connection.
    conns=$(grep -c '^CONN peer=spiffe://cluster.local/ns/interop/sa/hbonecli' "$T/pyserver.log")
    if [[ $conns == 1 ]]; then pass "hbone-cli pooled 5 tunnels on 1 HBONE connection"
    else fail "hbone-cli pooled 5 tunnels on 1 HBONE connection (saw $conns TLS connections)"; fi
  else
    fail "hbone-cli --listen came up (python server)" "$(tail -n 20 "$T/hbcli-py.log")"
  fi
  nsx_stop "$HBL_PID" 2 || true
  if hbone_listen "$PY_NS" 25101 127.0.0.1:15008 spiffe://cluster.local/ns/interop/sa/not-the-server "$T/hbcli-bad.log"; then
    expect "hbone-cli refuses a server whose URI SAN is not --expect (no bytes carried)" 0 '^TCP_ECHO ok=0/1' \
      "$PY_NS" "${ECHO[@]}" --port 25101 --count 1 --size 100 --expect-refused --timeout 15
  else
    fail "hbone-cli --listen came up (wrong --expect)" "$(tail -n 20 "$T/hbcli-bad.log")"
  fi
  nsx_stop "$HBL_PID" 2 || true
  if hbone_listen "$ZT_NS" 25102 127.0.0.1:15008 "$SERVER_ID" "$T/hbcli-zt.log"; then
    expect "hbone-cli -> ztunnel 15008 -> echo (5 connections)" 0 '^TCP_ECHO ok=5/5' \
      "$ZT_NS" "${ECHO[@]}" --port 25102 --count 5 --size 100000
  else
    fail "hbone-cli --listen came up (ztunnel)" "$(tail -n 20 "$T/hbcli-zt.log")"
  fi
  nsx_stop "$HBL_PID" 2 || true
fi

# ---- access log / metrics evidence -------------------------------------------------------
if grep -q 'connection complete' "$T/ztunnel.log" && grep -q "$CLIENT_ID\|cluster.local/ns/interop/sa/pyclient" "$T/ztunnel.log"; then
  pass "access log names the python client's identity"
else
  fail "access log names the python client's identity" "$(grep -m5 'connection' "$T/ztunnel.log")"
fi
metrics=$(ip netns exec "$ZT_NS" curl -sf --max-time 3 http://127.0.0.1:15020/metrics 2>&1)
if grep -q 'istio_tcp_connections_opened_total{.*source_principal="spiffe://cluster.local/ns/interop/sa/pyclient"' <<<"$metrics"; then
  pass "metrics: istio_tcp_connections_opened_total has the python client as source_principal"
else
  fail "metrics: istio_tcp_connections_opened_total has the python client as source_principal" \
    "$(grep -m5 'istio_tcp_connections_opened_total' <<<"$metrics")"
fi

if [[ $NSX_FAILED != 0 ]]; then
  NSX_KEEP_TMP=1
  printf 'failed: %s\n' "${FAILED_NAMES[@]}"
  echo "logs kept in $T (ztunnel.log, ztunnel-deny.log, pyserver.log, case-N.out)"
fi
summary
