#!/usr/bin/env bash
# tests/70-xds-e2e/suite.sh [BIN_DIR] — ztunnel configured ONLY by `controlplane serve` (delta
# ADS over gRPC + TLS) and given certificates ONLY by its Istio CA service; no LOCAL_XDS_PATH,
# no LOCAL_CA_DIR in any ztunnel. Needs root; about two minutes.
#
#   node 1 (zt-xds-e2e-n1; br0 10.99.1.254; uplink 10.99.100.1)
#     controlplane serve  0.0.0.0:15012   (node 1's ztunnel dials https://127.0.0.1:15012)
#     ztunnel (shared, token of istio-system/ztunnel on node-1), ambient-cni
#     client-a 10.99.1.1 sa client-a   server-1 10.99.1.2 sa server (app=web)
#     ded      10.99.1.3 sa ded: its own DEDICATED ztunnel (token of e2e/ded, no impersonation),
#              with XDS_ON_DEMAND=true (DNS capture off): it fetches workloads/services by address
#   node 2 (zt-xds-e2e-n2; br0 10.99.2.254; uplink 10.99.100.2)
#     ztunnel (shared, node-2 token) dialling https://10.99.100.1:15012 with ALT_XDS_HOSTNAME /
#     ALT_CA_HOSTNAME=localhost (the server certificate names localhost, not that address)
#     server-2 10.99.2.2 sa server (app=web)   rogue 10.99.2.9: claims sa client-a, which only
#     runs on node 1 (its Pod record says node-1) -> the CA must refuse node 2's impersonation
#     request, and rogue's connections fail with that refusal
#   Service e2e/web 10.99.200.10:80 -> 8080 (server-1, server-2)
#
# The mesh is Kubernetes YAML in $T/mesh, edited while traffic flows. Every case prints
# PASS/FAIL; the last line is "N passed, N failed"; exit 1 on any failure.
# shellcheck disable=SC2015,SC2119,SC2154,SC2034,SC1091
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ZT_ROOT=$(cd "$HERE/../.." && pwd)
BIN_DIR=$(cd "${1:-$ZT_ROOT/build/bin}" 2>/dev/null && pwd || echo "${1:-$ZT_ROOT/build/bin}")
ZT_BIN="$BIN_DIR/ztunnel"
CNI_BIN="$BIN_DIR/ambient-cni"
CP_BIN="$BIN_DIR/controlplane"

source "$ZT_ROOT/tests/lib/netns.sh"
source "$ZT_ROOT/tests/50-node-e2e/lib.sh"

require_root
for t in ss "$ZT_PY" openssl; do
  command -v "$t" >/dev/null 2>&1 || { fail "required tool $t present"; summary; exit 1; }
done
for b in "$ZT_BIN" "$CNI_BIN" "$CP_BIN"; do
  [[ -x $b ]] || { fail "binary present at $b"; summary; exit 1; }
done

nsx_init xds-e2e
T="$NSX_TMP"
MESH="$T/mesh"
CACERTS="$T/cacerts"
ROOT_PEM="$CACERTS/root-cert.pem"
ID_A=$(zn_spiffe e2e client-a)
ID_S=$(zn_spiffe e2e server)
ID_D=$(zn_spiffe e2e ded)
TOOL=("$ZT_PY" -u "$NODETOOL")
ADDR_WL="type.googleapis.com/istio.workload.Address"

log_tail() {
  local f
  for f in "$@"; do echo "--- $f:"; tail -n "${LOG_LINES:-15}" "$T/$f.log" 2>/dev/null; done
}
abort() { fail "$1" "${2:-}"; NSX_KEEP_TMP=1; echo "logs kept in $T" >&2; summary; exit 1; }

# ---- mesh YAML --------------------------------------------------------------------------------
mkdir -p "$MESH"
# xpod NAME NODE IP SA [APP] [VERSION] — a scheduled, running pod.
xpod() {
  cat <<POD
apiVersion: v1
kind: Pod
metadata:
  name: $1
  namespace: e2e
  labels:
    app: ${5:-$1}
    name: $1
    version: ${6:-v1}
spec:
  serviceAccountName: $4
  nodeName: $2
  containers:
  - name: app
    ports:
    - name: http
      containerPort: 8080
status:
  phase: Running
  podIP: $3
POD
}
# put FILE — stdin atomically into the mesh directory (hidden temp name, then rename).
put() { cat >"$MESH/.$1.tmp" && mv -f "$MESH/.$1.tmp" "$MESH/$1"; }

put 00-namespace.yaml <<'Y'
apiVersion: v1
kind: Namespace
metadata:
  name: e2e
  labels:
    istio.io/dataplane-mode: ambient
Y
# rogue runs on node 2 but its record names node-1: node 2's ztunnel knows it as a workload
# (so its traffic gets as far as needing a certificate) and may not obtain its identity.
{ xpod client-a node-1 10.99.1.1 client-a; echo ---; xpod server-1 node-1 10.99.1.2 server web; echo ---
  xpod ded node-1 10.99.1.3 ded; echo ---; xpod rogue node-1 10.99.2.9 client-a; } | put pods-node1.yaml
{ xpod server-2 node-2 10.99.2.2 server web; } | put pods-node2.yaml
put svc-web.yaml <<'Y'
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: e2e
spec:
  clusterIP: 10.99.200.10
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
Y
cat >"$T/tokens.yaml" <<'Y'
tokens:
- token: node1-token
  serviceAccount: istio-system/ztunnel
  node: node-1
- token: node2-token
  serviceAccount: istio-system/ztunnel
  node: node-2
- token: ded-token
  serviceAccount: e2e/ded
Y
echo node1-token >"$T/token-n1"
echo node2-token >"$T/token-n2"

# ---- topology ---------------------------------------------------------------------------------
zn_node 1
zn_node 2
zn_link 1 2
zn_pod 1 client-a 10.99.1.1
zn_pod 1 server-1 10.99.1.2
zn_pod 1 ded 10.99.1.3
zn_pod 2 server-2 10.99.2.2
zn_pod 2 rogue 10.99.2.9
for p in client-a server-1 server-2 ded rogue; do
  nsx_bg "$p" "$T/app-$p.log" "${TOOL[@]}" serve "$p"
done
for p in client-a server-1 server-2; do
  wait_for_port "$p" 8080 10 || fail "app in $p listening on 8080" "$(tail -n 5 "$T/app-$p.log")"
done

# ---- control plane ------------------------------------------------------------------------------
cp_start() {
  nsx_bg n1 "$T/cp.log" "$CP_BIN" serve --dir "$MESH" --listen 0.0.0.0:15012 --cacerts "$CACERTS" \
    --tokens "$T/tokens.yaml"
  CP_PID=$NSX_LAST_PID
  local _
  for _ in $(seq 1 100); do
    grep -q 'serving on' "$T/cp.log" 2>/dev/null && return 0
    nsx_alive "$CP_PID" || break
    sleep 0.1
  done
  echo "controlplane did not start:"; tail -n 20 "$T/cp.log"
  return 1
}
cp_start >"$T/cp-start.out" || abort "controlplane serve started (TLS on 0.0.0.0:15012, cacerts created)" "$(cat "$T/cp-start.out")"
pass "controlplane serve started; cacerts created at $CACERTS"
[[ -s $ROOT_PEM ]] || abort "cacerts/root-cert.pem exists"

# xzt_start N TAG TOKEN_FILE [VAR=VAL...] — a shared-mode ztunnel in node N, xDS + CA only.
xzt_start() {
  local n="$1" tag="$2" tok="$3"; shift 3
  local addr="https://127.0.0.1:15012" alt=()
  [[ $n != 1 ]] && addr="https://10.99.100.1:15012" && alt=(ALT_XDS_HOSTNAME=localhost ALT_CA_HOSTNAME=localhost)
  nsx_bg_env "n$n" "$T/zt-$tag.log" \
    PROXY_MODE=shared INPOD_UDS="$(zn_sock "$n")" \
    XDS_ADDRESS="$addr" CA_ADDRESS="$addr" "${alt[@]}" \
    XDS_ROOT_CA="$ROOT_PEM" CA_ROOT_CA="$ROOT_PEM" AUTH_TOKEN="$tok" \
    NODE_NAME="node-$n" POD_NAME="ztunnel-$n" POD_NAMESPACE=istio-system INSTANCE_IP="10.99.100.$n" \
    TRUST_DOMAIN="$ZT_TRUST_DOMAIN" PACKET_MARK=1337 RUST_LOG=info LOG_FORMAT=plain \
    ZTUNNEL_WORKER_THREADS=1 CONNECTION_TERMINATION_DEADLINE=3s \
    ADMIN_ADDR="127.0.0.1:15000" STATS_ADDR="[::]:15020" READINESS_ADDR="[::]:15021" "$@" \
    -- "$ZT_BIN"
  printf -v "ZT_PID_$tag" '%s' "$NSX_LAST_PID"
  printf -v "ZT_OFF_$tag" '%s' 0
  printf -v "ZT_NODE_$tag" '%s' "$n"
}

for n in 1 2; do
  zn_cni_start "$n" >"$T/cni-start-$n.out" || abort "ambient-cni serve on node $n" "$(cat "$T/cni-start-$n.out")"
done
# Node 1 rotates its certificates every ~10 s (SECRET_TTL=20s), so rotation happens under load.
xzt_start 1 n1 "$T/token-n1" SECRET_TTL=20s
xzt_start 2 n2 "$T/token-n2"
for n in 1 2; do
  out=$(zn_zt_wait_ready "n$n" 30) && pass "node $n ztunnel ready: xDS synced from the controlplane (both types) + ZDS" \
    || abort "node $n ztunnel ready from xDS" "$out
$(log_tail "zt-n$n" cp)"
done

dump_n1=$(zn_config_dump n1)
if grep -q '"Kubernetes//Pod/e2e/client-a"' <<<"$dump_n1" && grep -q 'web.e2e.svc.cluster.local' <<<"$dump_n1"; then
  pass "node 1 /config_dump: workloads and services came from the controlplane (uid Kubernetes//Pod/e2e/client-a)"
else
  fail "node 1 /config_dump holds the controlplane's workloads" "$(head -c 600 <<<"$dump_n1")"
fi
grep -q 'LOCAL_XDS\|"localXdsConfig": {' <<<"$dump_n1" \
  && fail "no local config source in use" "$(grep -n 'localXds' <<<"$dump_n1")" || pass "no LOCAL_XDS_PATH / LOCAL_CA_DIR in use"

# ---- pods via the node agents -----------------------------------------------------------------------
while read -r n pod sa; do
  out=$(zn_cni_add "$n" "$pod" e2e "$sa" 2>&1) && pass "ambient-cni add $pod (node $n)" \
    || fail "ambient-cni add $pod (node $n)" "$out"
done <<'P'
1 client-a client-a
1 server-1 server
2 server-2 server
2 rogue client-a
P

# cert_state TAG IDENTITY — "state serial" of IDENTITY in TAG's /config_dump certificates.
cert_state() {
  zn_config_dump "$1" | "$ZT_PY" -c '
import json, sys
want = sys.argv[1]
for c in json.load(sys.stdin).get("certificates", []):
    if c.get("identity") == want:
        chain = c.get("certChain") or [{}]
        print(c.get("state"), chain[0].get("serialNumber", "-"), c.get("error", "").replace(" ", "_")[:200])
' "$2" 2>/dev/null
}
wait_cert() {   # wait_cert TAG IDENTITY STATE [TIMEOUT]
  local s="" _
  for _ in $(seq 1 $((${4:-10} * 5))); do
    s=$(cert_state "$1" "$2"); [[ $s == "$3"* ]] && return 0; sleep 0.2
  done
  echo "certificate $2 on $1: '${s:-absent}' (wanted $3)"; return 1
}
check "node 1: client-a's certificate issued by the controlplane's CA (state Available)" wait_cert n1 "$ID_A" Available 15
check "node 2: server's certificate issued by the CA for node 2 (a server pod runs there)" wait_cert n2 "$ID_S" Available 15
leaf=$(zn_config_dump n1 | "$ZT_PY" -c '
import base64, json, sys
for c in json.load(sys.stdin)["certificates"]:
    if c["identity"] == sys.argv[1]: print(base64.b64decode(c["certChain"][0]["pem"]).decode())' "$ID_A" 2>/dev/null)
if [[ -n $leaf ]] && openssl verify -CAfile "$ROOT_PEM" -untrusted "$CACERTS/cert-chain.pem" <(echo "$leaf") >/dev/null 2>&1; then
  pass "client-a's leaf verifies against the controlplane's root-cert.pem"
else
  fail "client-a's leaf verifies against the controlplane's root-cert.pem" "$(head -c 300 <<<"$leaf")"
fi
check "impersonation refused: node 2 asking for client-a's identity (no such pod on node-2) gets no certificate" \
  wait_cert n2 "$ID_A" Unavailable 15
st=$(cert_state n2 "$ID_A")
grep -qi 'PERMISSION_DENIED' <<<"$st" && pass "impersonation refusal carries PERMISSION_DENIED ($st)" \
  || fail "impersonation refusal reason is PERMISSION_DENIED" "$st"
grep -q 'node-2' "$T/cp.log" && grep -qi 'refus\|denied' "$T/cp.log" \
  && pass "controlplane logged the refused impersonation" || fail "controlplane logged the refused impersonation" "$(log_tail cp)"
# The refused pod's connections fail at once with the CA's reason (upstream: a failed fetch
# fails the connection), rather than waiting for a certificate that is not coming.
check "rogue pod (certificate refused) cannot open a mesh connection" zn_expect_refused rogue "http://10.99.1.2:8080/whoami"
if grep -a 'certificate fetch failed' "$T/zt-n2.log" | contains -ai 'PERMISSION_DENIED'; then
  pass "node 2 failed rogue's connection with the fetch error: $(grep -a 'certificate fetch failed' "$T/zt-n2.log" | tail -n 1 | cut -c1-200)"
else
  fail "node 2 failed rogue's connection with the certificate fetch error" "$(grep -a 'rogue\|10.99.2.9\|certificate' "$T/zt-n2.log" | tail -n 5)"
fi

# ---- traffic ------------------------------------------------------------------------------------------
check "client-a (node 1) -> server-2:8080 (node 2) over HBONE" zn_expect_get client-a "http://10.99.2.2:8080/whoami" server-2
declare -A seen=()
for i in $(seq 1 12); do r=$(zn_get client-a "http://10.99.200.10/whoami"); seen[${r#200 }]=1; done
[[ -n ${seen[server-1]:-} && -n ${seen[server-2]:-} ]] && pass "service VIP 10.99.200.10 reaches both endpoints (from xDS)" \
  || fail "service VIP 10.99.200.10 reaches both endpoints" "seen: ${!seen[*]}"

# ---- dedicated mode ----------------------------------------------------------------------------------
nsx_exec ded "$ZT_ROOT/scripts/inpod-iptables.sh" install --no-dns >"$T/rules-ded.log" 2>&1 \
  || fail "in-pod rules installed in ded" "$(cat "$T/rules-ded.log")"
# No exemption for the control plane: the dedicated ztunnel's gRPC sockets (xDS and CA) carry
# PACKET_MARK like its data-path sockets, so the pod's own capture rules let them through. The
# counter check below proves the mark was on the wire, not merely that the rules were loose.
# (Unmarked, the connection would be redirected to ztunnel's own 15001 and passed through,
# which also works: hence counting rules rather than trusting readiness.)
for m in "" "!"; do
  nsx_exec ded iptables -t mangle -A OUTPUT -d 10.99.1.254/32 -p tcp --dport 15012 -m mark $m --mark 0x539/0xfff
done
nsx_bg_env ded "$T/zt-ded.log" PROXY_MODE=dedicated PROXY_WORKLOAD_INFO=e2e/ded/ded \
  XDS_ADDRESS=https://10.99.1.254:15012 CA_ADDRESS=https://10.99.1.254:15012 \
  ALT_XDS_HOSTNAME=localhost ALT_CA_HOSTNAME=localhost XDS_ROOT_CA="$ROOT_PEM" CA_ROOT_CA="$ROOT_PEM" \
  AUTH_TOKEN=ded-token POD_NAME=ded POD_NAMESPACE=e2e INSTANCE_IP=10.99.1.3 NODE_NAME=node-1 \
  XDS_ON_DEMAND=true ISTIO_META_DNS_CAPTURE=false PACKET_MARK=1337 RUST_LOG=info ZTUNNEL_WORKER_THREADS=1 \
  ADMIN_ADDR=127.0.0.1:15000 STATS_ADDR="[::]:15020" READINESS_ADDR="[::]:15021" -- "$ZT_BIN"
ZT_PID_ded=$NSX_LAST_PID; ZT_OFF_ded=0
ded_ready() {
  local code _
  for _ in $(seq 1 100); do
    code=$(nsx_exec ded curl -s -o /dev/null -w '%{http_code}' --max-time 1 http://127.0.0.1:15021/healthz/ready)
    [[ $code == 200 ]] && return 0
    nsx_alive "$ZT_PID_ded" || break
    sleep 0.2
  done
  echo "dedicated ztunnel not ready (last $code)"; tail -n 20 "$T/zt-ded.log"; return 1
}
check "dedicated-mode ztunnel (ded) ready: xDS + its own certificate (no impersonation) from the controlplane" ded_ready
cp_packets() {  # packets from ded to the control plane, marked ($1 = "") or not ($1 = "!")
  nsx_exec ded iptables -t mangle -L OUTPUT -v -n -x | awk -v want="$1" '
    $0 ~ /10\.99\.1\.254/ && $0 ~ /dpt:15012/ { neg = ($0 ~ /mark match !/); if ((want == "!") == neg) print $1 }'
}
marked=$(cp_packets ""); unmarked=$(cp_packets "!")
[[ ${marked:-0} -gt 0 && ${unmarked:-x} == 0 ]] \
  && pass "ded's xDS/CA connections leave with SO_MARK 0x539 ($marked packets marked, 0 unmarked): no capture exemption needed" \
  || fail "ded's control-plane packets carry the mark" "marked=${marked:-?} unmarked=${unmarked:-?}"
ded_cert=$(nsx_exec ded curl -s --max-time 3 http://127.0.0.1:15000/config_dump | "$ZT_PY" -c '
import json, sys
print(" ".join(c["identity"] + "=" + c["state"] for c in json.load(sys.stdin).get("certificates", [])))' 2>/dev/null)
[[ $ded_cert == *"$ID_D=Available"* ]] && pass "dedicated ztunnel holds $ID_D from the CA" \
  || fail "dedicated ztunnel holds its identity's certificate" "$ded_cert"
check "dedicated: ded -> server-2:8080 (captured, HBONE across nodes)" zn_expect_get ded "http://10.99.2.2:8080/whoami" server-2
# XDS_ON_DEMAND: ded's ztunnel got nothing in bulk; its own workload and server-2 were fetched
# by address when the connection above needed them, the Service (and its endpoints) by VIP now.
ded_vip() {
  local r; r=$(zn_get ded "http://10.99.200.10/whoami")
  [[ $r == "200 server-1" || $r == "200 server-2" ]] && return 0
  echo "GET the web VIP from ded -> '$r'"; tail -n 5 "$T/zt-ded.log"; return 1
}
check "on-demand: ded -> Service web VIP 10.99.200.10:80 (fetched by network/ip on the miss)" ded_vip
ded_dump=$(nsx_exec ded curl -s --max-time 3 http://127.0.0.1:15000/config_dump)
if grep -q '"Kubernetes//Pod/e2e/ded"' <<<"$ded_dump" && grep -q '"Kubernetes//Pod/e2e/server-2"' <<<"$ded_dump" \
  && grep -q 'web.e2e.svc.cluster.local' <<<"$ded_dump" && ! grep -q 'Kubernetes//Pod/e2e/client-a' <<<"$ded_dump" \
  && ! grep -q 'Kubernetes//Pod/e2e/rogue' <<<"$ded_dump"; then
  pass "on-demand: ded's /config_dump holds only what was demanded (ded, server-2, web + endpoints; no client-a, no rogue)"
else
  fail "on-demand: ded's /config_dump holds only the demanded resources" "$(head -c 800 <<<"$ded_dump")"
fi

# ---- live edits: pod added, changed, removed -----------------------------------------------------------
zn_pod 1 late 10.99.1.4
nsx_bg late "$T/app-late.log" "${TOOL[@]}" serve late
xpod late node-1 10.99.1.4 late late v1 | put pod-late.yaml
check "pod added in YAML appears in node 1's /config_dump" zn_wait_config n1 'Kubernetes//Pod/e2e/late' present 8
out=$(zn_cni_add 1 late e2e late 2>&1) || fail "ambient-cni add late" "$out"
check "new pod gets a certificate and serves: client-a -> late:8080" zn_expect_get client-a "http://10.99.1.4:8080/whoami" late
xpod late node-1 10.99.1.4 late late v2 | put pod-late.yaml
check "pod changed in YAML (version v2) is visible in /config_dump (canonicalRevision v2)" \
  zn_wait_config n1 '"canonicalRevision": "v2"' present 8
rm -f "$MESH/pod-late.yaml"
check "pod removed from YAML disappears from /config_dump" zn_wait_config n1 'Kubernetes//Pod/e2e/late' absent 8

# ---- service added, changed, removed ---------------------------------------------------------------------
svc_api() {
  cat <<S
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: e2e
spec:
  clusterIP: 10.99.200.20
  selector:
    name: $1
  ports:
  - port: 80
    targetPort: 8080
S
}
svc_api server-2 | put svc-api.yaml
zn_wait_config n1 'api.e2e.svc.cluster.local' present 8 >/dev/null
ok=0
for _ in $(seq 1 40); do [[ $(zn_get client-a "http://10.99.200.20/whoami") == "200 server-2" ]] && { ok=1; break; }; sleep 0.2; done
[[ $ok == 1 ]] && pass "service added: 10.99.200.20 -> server-2" \
  || fail "service added: VIP reaches server-2" "$(zn_get client-a http://10.99.200.20/whoami)"
svc_api server-1 | put svc-api.yaml
ok=0
for _ in $(seq 1 40); do [[ $(zn_get client-a "http://10.99.200.20/whoami") == "200 server-1" ]] && { ok=1; break; }; sleep 0.2; done
[[ $ok == 1 ]] && pass "service changed (selector -> server-1): the VIP now reaches server-1" \
  || fail "service changed: VIP reaches server-1" "$(zn_get client-a http://10.99.200.20/whoami)"
rm -f "$MESH/svc-api.yaml"
check "service removed: gone from /config_dump" zn_wait_config n1 'api.e2e.svc.cluster.local' absent 8
check "service removed: its VIP no longer answers" zn_expect_refused client-a "http://10.99.200.20/whoami"

# ---- policy added, changed, removed while a connection is live ---------------------------------------------
policy() {   # policy NAME ACTION SA
  cat <<A
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: $1
  namespace: e2e
spec:
  action: $2
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/e2e/sa/$3"]
A
}
nsx_bg client-a "$T/hold1.log" "${TOOL[@]}" hold 10.99.2.2 9000 30
HOLD_PID=$NSX_LAST_PID
if wait_for_file_match "$T/hold1.log" '^open' 8; then
  policy deny-a DENY client-a | put authz.yaml
  if wait_for_file_match "$T/hold1.log" 'closed at=' 12; then
    pass "a new DENY (added in YAML, pushed over xDS) closed client-a's live connection to server-2"
  else
    fail "new DENY closes the live connection" "$(cat "$T/hold1.log")
$(log_tail zt-n2)"
  fi
else
  fail "live connection client-a -> server-2:9000 opened" "$(cat "$T/hold1.log")"
fi
nsx_stop "$HOLD_PID" 1 >/dev/null 2>&1
check "DENY: client-a -> server-2 refused" zn_expect_refused client-a "http://10.99.2.2:8080/whoami"
policy deny-a DENY nobody | put authz.yaml
ok=0
for _ in $(seq 1 40); do [[ $(zn_get client-a "http://10.99.2.2:8080/whoami") == "200 server-2" ]] && { ok=1; break; }; sleep 0.2; done
[[ $ok == 1 ]] && pass "policy changed (denies another principal): client-a allowed again" || fail "policy changed: client-a allowed again"
rm -f "$MESH/authz.yaml"
check "policy removed: gone from node 2's /config_dump" zn_wait_config n2 'deny-a' absent 8

# ---- controlplane killed and restarted while traffic flows --------------------------------------------------
wl_count() { zn_config_dump "$1" | "$ZT_PY" -c 'import json,sys; d=json.load(sys.stdin); print(len(d.get("workloads",[])), len(d.get("services",[])), len(d.get("policies",[])))' 2>/dev/null; }
before=$(wl_count n1)
nsx_bg client-a "$T/loop-outage.log" "${TOOL[@]}" loop 10.99.2.2 8080 60 12
LOOP_PID=$NSX_LAST_PID
nsx_bg client-a "$T/hold2.log" "${TOOL[@]}" hold 10.99.2.2 9000 14
HOLD2_PID=$NSX_LAST_PID
sleep 1
kill -KILL "$CP_PID" 2>/dev/null
pass "controlplane killed (SIGKILL) with traffic flowing"
sleep 3
# Changed while the server is away: must arrive after the reconnect, exactly once.
xpod extra node-2 10.99.2.7 extra | put pod-extra.yaml
cp_start >"$T/cp-start.out" || fail "controlplane restarted" "$(cat "$T/cp-start.out")"
rc=0; wait "$LOOP_PID" || rc=$?
[[ $rc == 0 ]] && pass "traffic kept flowing on the last good config through the outage: $(head -n 1 "$T/loop-outage.log")" \
  || fail "traffic kept flowing through the outage" "$(cat "$T/loop-outage.log")"
wait_for_file_match "$T/hold2.log" 'still open|closed at=' 20 >/dev/null
grep -q 'still open' "$T/hold2.log" && pass "a connection held across the outage stayed open" \
  || fail "a connection held across the outage stayed open" "$(cat "$T/hold2.log")"
check "after restart: the pod added during the outage reached node 1 (client resynced)" \
  zn_wait_config n1 'Kubernetes//Pod/e2e/extra' present 15
after=$(wl_count n1)
b_w=${before%% *}; a_w=${after%% *}
[[ $a_w == $((b_w + 1)) && ${after#* } == "${before#* }" ]] \
  && pass "after resync: nothing duplicated or lost (workloads $b_w -> $a_w, services/policies ${after#* })" \
  || fail "after resync: exactly one more workload, same services/policies" "before '$before' after '$after'"
m=$(zn_metrics n1 | grep -E '^istio_xds_connection_terminations_total' | head -n 3)
[[ -n $m ]] && pass "node 1 counted the xDS connection termination: $(tr '\n' ' ' <<<"$m")" \
  || fail "istio_xds_connection_terminations_total present" "$(zn_metrics n1 | grep -i xds | head)"

# ---- certificate rotation under load (node 1 TTL 20 s) ---------------------------------------------------------
s1=$(cert_state n1 "$ID_A"); s1=${s1#* }; s1=${s1%% *}
nsx_bg client-a "$T/loop-rot.log" "${TOOL[@]}" loop 10.99.1.2 8080 120 14
LOOP_PID=$NSX_LAST_PID
nsx_bg client-a "$T/loop-rot2.log" "${TOOL[@]}" loop 10.99.2.2 8080 120 14
LOOP2_PID=$NSX_LAST_PID
rc=0; wait "$LOOP_PID" || rc=$?
rc2=0; wait "$LOOP2_PID" || rc2=$?
s2=$(cert_state n1 "$ID_A"); s2=${s2#* }; s2=${s2%% *}
[[ -n $s1 && -n $s2 && $s1 != "$s2" ]] && pass "client-a's certificate rotated under load (serial $s1 -> $s2)" \
  || fail "client-a's certificate rotated within 14 s (TTL 20 s)" "serial before '$s1' after '$s2'"
[[ $rc == 0 && $rc2 == 0 ]] && pass "no failed connection during rotation: same node $(head -n 1 "$T/loop-rot.log"); cross node $(head -n 1 "$T/loop-rot2.log")" \
  || fail "no failed connection during rotation" "$(cat "$T/loop-rot.log" "$T/loop-rot2.log")"

# ---- a wrong token is refused ---------------------------------------------------------------------------------
echo not-a-token >"$T/token-bad"
nsx_bg_env n2 "$T/zt-bad.log" PROXY_MODE=shared INPOD_UDS="$T/none.sock" \
  XDS_ADDRESS=https://10.99.100.1:15012 CA_ADDRESS=https://10.99.100.1:15012 ALT_XDS_HOSTNAME=localhost \
  ALT_CA_HOSTNAME=localhost XDS_ROOT_CA="$ROOT_PEM" CA_ROOT_CA="$ROOT_PEM" AUTH_TOKEN="$T/token-bad" \
  NODE_NAME=node-2 RUST_LOG=info ZTUNNEL_WORKER_THREADS=1 \
  ADMIN_ADDR=127.0.0.1:16000 STATS_ADDR="[::]:16020" READINESS_ADDR="[::]:16021" -- "$ZT_BIN"
BAD_PID=$NSX_LAST_PID
if wait_for_file_match "$T/zt-bad.log" 'UNAUTHENTICATED|gRPC status 16: missing or unknown bearer token' 10; then
  pass "a ztunnel with a wrong token is refused (UNAUTHENTICATED)"
else
  fail "a ztunnel with a wrong token is refused" "$(tail -n 10 "$T/zt-bad.log")"
fi
code=$(nsx_exec n2 curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:16021/healthz/ready)
[[ $code != 200 ]] && pass "...and it never becomes ready (readiness $code)" || fail "refused ztunnel not ready" "readiness $code"
nsx_stop "$BAD_PID" 2 >/dev/null 2>&1

summary
