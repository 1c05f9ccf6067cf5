#!/usr/bin/env bash
# tests/69-ingress-gateway/suite.sh [BIN_DIR] — the ingress gateway role end to end with the real
# binaries, on the 66-waypoint-e2e mesh (controlplane serve, ambient-cni + ztunnel on two nodes,
# the calculate waypoint) plus:
#   ingress-0  10.99.1.20 (node 1, ns istio-ingress, labels istio: ingressgateway, not captured):
#              the waypoint binary with PROXY_TYPE=router; its "LoadBalancer" address 10.99.250.2
#              is a veth into the host netns, where curl runs (outside the mesh);
#   Bookinfo-like services in e2e (ambient): productpage (1 pod), reviews v1/v2/v3 (3 pods,
#              DestinationRule subsets), and legacy/legacy, a plain pod outside the mesh;
#   calculate  (behind the waypoint) labelled istio.io/ingress-use-waypoint: "true".
# An Istio Gateway (port 80 HTTP, selector istio: ingressgateway) with VirtualServices bound by
# `gateways:` routes bookinfo.example.com /productpage, /static, /login, /logout,
# /api/v1/products to productpage:9080 and /reviews 5/5/90 over v1/v2/v3 (checked over 2,000
# requests inside binomial bounds at p < 0.001), calc.example.com to calculate (through the
# waypoint: its istio_requests_total grows, the calc app sees the waypoint as peer),
# legacy.example.com to the plain pod; any other host gets 404 with flag NR. Downstream HTTP/2:
# curl --http2 over TLS (ALPN h2), --http2-prior-knowledge on :80 and h2load (300 h2c requests);
# a server on :8000 with tls.httpsRedirect answers 301 to https://<host><path>.
# Then the same pod as a Gateway API gateway (docs/ingress.md): the Istio Gateway is replaced by
# a Gateway of class istio (HTTP :80, HTTPS :443 with certificateRefs) and an HTTPRoute
# (Exact /productpage with a ResponseHeaderModifier, a header match, /reviews weighted 1:3 over
# the reviews-v1 / reviews-v3 Services, checked over 1,000 requests at p < 0.001) and a GRPCRoute
# (one grpcio unary call to a grpcio server in the legacy pod), over xDS to the running gateway.
# MUTUAL: a server on :8443 requires client certificates of the test CA with one SAN (curl
# --cert: accepted; none, another SAN, another CA: handshake failure).
# Needs root; about 40 s in the release build.
# shellcheck disable=SC2015,SC2154,SC1091
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib/waypoint-mesh.sh" "${1:-}"
wpm_init ingress
IG_IP=10.99.1.20
IG_LB=10.99.250.2
IG_HOSTLINK="zti$$"; IG_HOSTLINK="${IG_HOSTLINK:0:15}"
GW="http://$IG_LB"

# ---- the mesh: 66's, plus the ingress pod, Bookinfo-like services and a plain backend ----------
eval "wp_tokens_base() $(declare -f wp_tokens | tail -n +2)"
wp_tokens() {
  wp_tokens_base
  echo "- {token: ingress-token, serviceAccount: istio-ingress/ingress}" >>"$NSX_TMP/tokens.yaml"
  echo ingress-token >"$NSX_TMP/token-ig"
}
eval "wp_topology_base() $(declare -f wp_topology | tail -n +2)"
wp_topology() {
  wp_topology_base
  zn_pod 1 ingress-0 "$IG_IP"
  zn_pod 1 productpage-1 10.99.1.21
  zn_pod 1 reviews-v1 10.99.1.22
  zn_pod 1 reviews-v2 10.99.1.23
  zn_pod 2 reviews-v3 10.99.2.24
  zn_pod 1 legacy-1 10.99.1.30
  # The gateway's external address: a veth from the host netns (no route added on the host:
  # the /30 is connected), as a LoadBalancer's address would be.
  ip link add "$IG_HOSTLINK" type veth peer name lb0 netns "$(nsx_ns ingress-0)"
  ip addr add 10.99.250.1/30 dev "$IG_HOSTLINK"
  ip link set "$IG_HOSTLINK" up
  ip -n "$(nsx_ns ingress-0)" addr add "$IG_LB/30" dev lb0
  ip -n "$(nsx_ns ingress-0)" link set lb0 up
}
ig_apps() {
  wp_apps || return 1
  local p
  for p in productpage-1:productpage reviews-v1:v1 reviews-v2:v2 reviews-v3:v3 legacy-1:legacy; do
    nsx_bg "${p%%:*}" "$T/app-${p%%:*}.log" "$ZT_PY" -u "$WP_APP" serve "${p##*:}" 8080
  done
  for p in productpage-1 reviews-v1 reviews-v2 reviews-v3 legacy-1; do
    wait_for_port "$p" 8080 10 || { echo "$p app not listening"; return 1; }
  done
}
WP_APPS=ig_apps

# The gateway's namespace and pod (out of the mesh: the gateway is its own proxy); LABELS, a
# YAML flow-map body, say which gateway selects it (an Istio Gateway's selector, or the
# Gateway API's gateway-name label).
ig_pod() {
  cat <<Y
apiVersion: v1
kind: Namespace
metadata: {name: istio-ingress}
---
apiVersion: v1
kind: Pod
metadata:
  name: ingress-0
  namespace: istio-ingress
  labels: {$1, istio.io/dataplane-mode: none}
spec:
  serviceAccountName: ingress
  nodeName: node-1
  containers: [{name: istio-proxy, ports: [{name: http, containerPort: 80}]}]
status: {phase: Running, podIP: $IG_IP}
Y
}

ig_mesh() {
  wp_put 50-ingress.yaml <<Y
$(ig_pod "istio: ingressgateway")
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway, namespace: istio-ingress}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [bookinfo.example.com]
    tls: {mode: SIMPLE, credentialName: bookinfo-cert}
  - port: {number: 8000, name: http-redirect, protocol: HTTP}
    hosts: [bookinfo.example.com, istio-ingress/plain.example.com]
    tls: {httpsRedirect: true}
  - port: {number: 8443, name: https-mutual, protocol: HTTPS}
    hosts: [bookinfo.example.com]
    tls: {mode: MUTUAL, credentialName: bookinfo-cert, subjectAltNames: [spiffe://test/client]}
Y
  wp_put 60-bookinfo.yaml <<Y
apiVersion: v1
kind: Service
metadata: {name: productpage, namespace: e2e}
spec:
  clusterIP: 10.99.200.20
  selector: {app: productpage}
  ports: [{name: http, port: 9080, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: e2e}
spec:
  clusterIP: 10.99.200.21
  selector: {app: reviews}
  ports: [{name: http, port: 9080, targetPort: 8080}]
---
$(wp_pod productpage-1 node-1 10.99.1.21 bookinfo "app: productpage")
---
$(wp_pod reviews-v1 node-1 10.99.1.22 bookinfo "app: reviews, version: v1")
---
$(wp_pod reviews-v2 node-1 10.99.1.23 bookinfo "app: reviews, version: v2")
---
$(wp_pod reviews-v3 node-2 10.99.2.24 bookinfo "app: reviews, version: v3")
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: e2e}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo, namespace: e2e}
spec:
  hosts: [bookinfo.example.com]
  gateways: [istio-ingress/bookinfo-gateway]
  http:
  - match:
    - uri: {exact: /productpage}
    - uri: {prefix: /static}
    - uri: {exact: /login}
    - uri: {exact: /logout}
    - uri: {prefix: /api/v1/products}
    route: [{destination: {host: productpage, port: {number: 9080}}}]
  - match: [{uri: {prefix: /reviews}}]
    route:
    - {destination: {host: reviews, subset: v1}, weight: 5}
    - {destination: {host: reviews, subset: v2}, weight: 5}
    - {destination: {host: reviews, subset: v3}, weight: 90}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: calc-ingress, namespace: e2e}
spec:
  hosts: [calc.example.com]
  gateways: [istio-ingress/bookinfo-gateway]
  http:
  - route: [{destination: {host: calculate}}]
---
apiVersion: v1
kind: Namespace
metadata: {name: legacy}
---
apiVersion: v1
kind: Service
metadata: {name: legacy, namespace: legacy}
spec:
  clusterIP: 10.99.200.30
  selector: {app: legacy}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: legacy-1, namespace: legacy, labels: {app: legacy}}
spec:
  serviceAccountName: default
  nodeName: node-1
  containers: [{name: app, ports: [{name: http, containerPort: 8080}]}]
status: {phase: Running, podIP: 10.99.1.30}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: legacy, namespace: legacy}
spec:
  hosts: [legacy.example.com]
  gateways: [istio-ingress/bookinfo-gateway]
  http:
  - route: [{destination: {host: legacy.legacy.svc.cluster.local}}]
Y
  # calculate (behind the waypoint) is reached from ingress through its waypoint.
  sed -i 's|labels: {istio.io/use-waypoint: waypoint}|labels: {istio.io/use-waypoint: waypoint, istio.io/ingress-use-waypoint: "true"}|' \
    "$WP_MESH/20-calculate.yaml"
  grep -q 'ingress-use-waypoint' "$WP_MESH/20-calculate.yaml"
}

# ig_certs — a test CA and a certificate for bookinfo.example.com, mounted as a Kubernetes TLS
# Secret would be: $T/creds/bookinfo-cert/tls.crt, tls.key.
ig_certs() {
  local d="$T/creds/bookinfo-cert"
  mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=ingress-test-ca \
    -keyout "$T/ca.key" -out "$T/ca.crt" 2>/dev/null &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bookinfo.example.com \
      -keyout "$d/tls.key" -out "$T/bookinfo.csr" 2>/dev/null &&
    openssl x509 -req -in "$T/bookinfo.csr" -CA "$T/ca.crt" -CAkey "$T/ca.key" -CAcreateserial -days 2 \
      -extfile <(printf 'subjectAltName=DNS:bookinfo.example.com') -out "$d/tls.crt" 2>/dev/null || return 1
  # MUTUAL: the client CA as istiod names it (Secret bookinfo-cert-cacert, key ca.crt); client
  # certificates: good (test CA, the allowed SAN), wrong-san (test CA), other-ca (another CA).
  mkdir -p "$T/creds/bookinfo-cert-cacert" && cp "$T/ca.crt" "$T/creds/bookinfo-cert-cacert/ca.crt" || return 1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=other-ca \
    -keyout "$T/other-ca.key" -out "$T/other-ca.crt" 2>/dev/null || return 1
  local c ca san
  for c in good:ca:spiffe://test/client wrong-san:ca:spiffe://test/other other-ca:other-ca:spiffe://test/client; do
    IFS=: read -r c ca san <<<"$c"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$c" \
      -keyout "$T/client-$c.key" -out "$T/client-$c.csr" 2>/dev/null &&
      openssl x509 -req -in "$T/client-$c.csr" -CA "$T/$ca.crt" -CAkey "$T/$ca.key" -CAcreateserial -days 2 \
        -extfile <(printf 'subjectAltName=URI:%s\nextendedKeyUsage=clientAuth' "$san") \
        -out "$T/client-$c.crt" 2>/dev/null || return 1
  done
}

ig_start() {
  ig_certs || { echo "openssl could not make the test certificates"; return 1; }
  nsx_bg_env ingress-0 "$T/ingress.log" \
    PROXY_TYPE=router GATEWAY_CREDENTIAL_DIR="$T/creds" POD_NAME=ingress-0 POD_NAMESPACE=istio-ingress SERVICE_ACCOUNT=ingress \
    INSTANCE_IP="$IG_IP" NODE_NAME=node-1 TRUST_DOMAIN="$ZT_TRUST_DOMAIN" \
    XDS_ADDRESS=https://10.99.1.254:15012 CA_ADDRESS=https://10.99.1.254:15012 \
    ALT_XDS_HOSTNAME=localhost ALT_CA_HOSTNAME=localhost \
    XDS_ROOT_CA="$T/cacerts/root-cert.pem" CA_ROOT_CA="$T/cacerts/root-cert.pem" \
    AUTH_TOKEN="$T/token-ig" RUST_LOG=info LOG_FORMAT=plain WAYPOINT_WORKER_THREADS=2 \
    CONNECTION_TERMINATION_DEADLINE=3s -- "$WP_BIN"
  IG_PID=$NSX_LAST_PID
  local code=""
  for _ in $(seq 1 150); do
    code=$(nsx_exec ingress-0 curl -s -o /dev/null -w '%{http_code}' --max-time 1 http://127.0.0.1:15021/healthz/ready)
    [[ $code == 200 ]] && wait_for_port ingress-0 80 5 && wait_for_port ingress-0 443 5 && return 0
    nsx_alive "$IG_PID" || { echo "ingress exited"; tail -n 20 "$T/ingress.log"; return 1; }
    sleep 0.2
  done
  echo "ingress not ready (last status ${code:-none})"
  tail -n 20 "$T/ingress.log"
  return 1
}
ig_metrics() { nsx_exec ingress-0 curl -s --max-time 3 http://127.0.0.1:15020/metrics; }

mkdir -p "$WP_MESH"
ig_mesh_written=0
eval "wp_mesh_base_orig() $(declare -f wp_mesh_base | tail -n +2)"
wp_mesh_base() { wp_mesh_base_orig && ig_mesh && ig_mesh_written=1; }

wpm_bringup || abort "mesh up" "$WPM_BRINGUP_LOG"
[[ $ig_mesh_written == 1 ]] || abort "ingress objects written"
for p in productpage-1 reviews-v1 reviews-v2; do
  zn_cni_add 1 "$p" e2e bookinfo >/dev/null || abort "cni add $p"
done
zn_cni_add 2 reviews-v3 e2e bookinfo >/dev/null || abort "cni add reviews-v3"
zn_wait_pods n1 5 15 >/dev/null || abort "node 1 pods in ztunnel" "$(logs zt-n1)"
zn_wait_pods n2 2 15 >/dev/null || abort "node 2 pods in ztunnel" "$(logs zt-n2)"
ig_start >"$T/ig.out" 2>&1 || abort "ingress up" "$(cat "$T/ig.out")
$(logs cp ingress)"
pass "mesh up; the ingress gateway (PROXY_TYPE=router) listens on :80 and :443 from its Listeners"

grep -Eq 'connecting to .* as router~10\.99\.1\.20~ingress-0\.istio-ingress~istio-ingress\.svc\.cluster\.local' "$T/ingress.log" &&
  pass "ingress node id is Istio's router~<ip>~<pod>.<ns>~<ns>.svc.cluster.local" ||
  fail "ingress node id router~..." "$(grep -m1 'connecting to' "$T/ingress.log")"

# get HOST PATH — "CODE VERSION" of one request from the host netns to the gateway address.
get() { curl -s --max-time 8 -o /dev/null -w '%{http_code} %header{x-app-version}' -H "Host: $1" "$GW$2"; }

# ---- Bookinfo paths -> productpage -------------------------------------------------------------
ok=1
for path in /productpage /static/css/x.css /login /logout /api/v1/products/0; do
  r=$(get bookinfo.example.com "$path")
  [[ $r == "200 productpage" ]] || { ok=0; fail "GET $path via the gateway -> productpage" "$r"; }
done
[[ $ok == 1 ]] && pass "host netns -> gateway:80 -> productpage for /productpage /static /login /logout /api/v1/products"
r=$(get bookinfo.example.com /other)
[[ $r == "404 " ]] && pass "a path the VirtualService does not route: 404" || fail "unrouted path 404" "$r"
r=$(get unknown.example.com /productpage)
[[ $r == "404 " ]] && pass "unknown host: 404" || fail "unknown host 404" "$r"
check "unknown host logged with flag NR and reporter source" \
  wait_for_file_match "$T/ingress.log" 'request complete.*authority="?unknown\.example\.com.*response_code=404.*response_flags=NR' 5

# ---- HTTPS: TLS terminated with the Secret's certificate, SNI per server hosts ---------------------
r=$(curl -s --max-time 8 --cacert "$T/ca.crt" --resolve "bookinfo.example.com:443:$IG_LB" -o /dev/null \
  -w '%{http_code} %header{x-app-version}' https://bookinfo.example.com/productpage)
[[ $r == "200 productpage" ]] && pass "HTTPS (curl --cacert, SNI bookinfo.example.com) -> productpage: $r" ||
  fail "HTTPS to bookinfo.example.com" "$r $(grep -i 'tls\|credential' "$T/ingress.log" | tail -n 3)"
r=$(curl -s --max-time 8 --cacert "$T/ca.crt" --resolve "bookinfo.example.com:443:$IG_LB" -o /dev/null \
  -w '%{http_code}' https://bookinfo.example.com/other)
[[ $r == "404" ]] && pass "HTTPS route table is the server's own: unrouted path 404" || fail "HTTPS 404" "$r"
r=$(curl -s --max-time 8 --cacert "$T/ca.crt" --resolve "other.example.com:443:$IG_LB" -o /dev/null \
  -w '%{http_code}' https://other.example.com/productpage)
rc=$?
[[ $rc != 0 && $r == "000" ]] && pass "an SNI no server admits gets no TLS session (curl exit $rc)" ||
  fail "unknown SNI refused" "curl exit $rc, status $r"

# ---- tls.mode MUTUAL: client certificates against the Secret's CA, subjectAltNames exact -------
wait_for_port ingress-0 8443 5 || fail "port 8443 (the MUTUAL server) listening" "$(tail -n 3 "$T/ingress.log")"
# mtls ARGS... — "CODE" of one request to the MUTUAL server; curl's exit status is kept in $rc.
mtls() {
  curl -s --max-time 8 --cacert "$T/ca.crt" --resolve "bookinfo.example.com:8443:$IG_LB" -o /dev/null \
    -w '%{http_code}' "$@" https://bookinfo.example.com:8443/productpage
}
r=$(mtls --cert "$T/client-good.crt" --key "$T/client-good.key")
[[ $r == "200" ]] && pass "MUTUAL: a client certificate of the CA with the allowed SAN -> productpage: $r" ||
  fail "MUTUAL with a good client certificate" "$r $(grep -i 'tls\|credential' "$T/ingress.log" | tail -n 3)"
for c in none wrong-san other-ca; do
  if [[ $c == none ]]; then r=$(mtls); else r=$(mtls --cert "$T/client-$c.crt" --key "$T/client-$c.key"); fi
  rc=$?
  [[ $rc != 0 && $r == "000" ]] && pass "MUTUAL: client certificate '$c' fails the TLS handshake (curl exit $rc)" ||
    fail "MUTUAL refuses client certificate '$c'" "curl exit $rc, status $r"
done
grep -q 'gateway TLS handshake from .* on 0.0.0.0_8443 failed' "$T/ingress.log" &&
  pass "the refused handshakes are logged on the MUTUAL listener" ||
  fail "refused handshakes logged" "$(grep -i 'handshake' "$T/ingress.log" | tail -n 3)"

# ---- downstream HTTP/2: ALPN h2 on the HTTPS listener, h2c prior knowledge on the HTTP one -----
# getv ARGS... — "HTTP-VERSION CODE VERSION" of one request.
getv() { curl -s --max-time 8 -o /dev/null -w '%{http_version} %{http_code} %header{x-app-version}' "$@"; }
r=$(getv --http2 --cacert "$T/ca.crt" --resolve "bookinfo.example.com:443:$IG_LB" https://bookinfo.example.com/productpage)
[[ $r == "2 200 productpage" ]] && pass "HTTPS with ALPN h2 (curl --http2) -> productpage over HTTP/2: $r" ||
  fail "HTTPS ALPN h2" "$r"
r=$(getv --http1.1 --cacert "$T/ca.crt" --resolve "bookinfo.example.com:443:$IG_LB" https://bookinfo.example.com/productpage)
[[ $r == "1.1 200 productpage" ]] && pass "HTTPS with ALPN http/1.1 only still served over HTTP/1.1: $r" ||
  fail "HTTPS ALPN http/1.1" "$r"
r=$(getv --http2-prior-knowledge -H 'Host: bookinfo.example.com' "$GW/productpage")
[[ $r == "2 200 productpage" ]] && pass "h2c prior knowledge on :80 (curl --http2-prior-knowledge) -> productpage: $r" ||
  fail "h2c prior knowledge" "$r"
r=$(getv --http2-prior-knowledge -H 'Host: bookinfo.example.com' "$GW/other")
[[ $r == "2 404 " ]] && pass "h2c: an unrouted path is 404 on its stream" || fail "h2c 404" "$r"
h2l=$(h2load -n 300 -c 3 -m 10 -H ':authority: bookinfo.example.com' "$GW/productpage" 2>&1)
grep -q 'requests: 300 total, 300 started, 300 done, 300 succeeded' <<<"$h2l" &&
  grep -q 'status codes: 300 2xx, 0 3xx, 0 4xx, 0 5xx' <<<"$h2l" &&
  pass "h2load: 300 requests on 3 h2c connections, 10 streams each at a time, all 200" ||
  fail "h2load 300 h2c requests" "$(grep -E 'requests:|status codes:|error' <<<"$h2l" | head -n 4)"

# ---- tls.httpsRedirect: a 301 to https for the server's hosts, with or without routes -----------
wait_for_port ingress-0 8000 5 || fail "port 8000 (the httpsRedirect server) listening" "$(tail -n 3 "$T/ingress.log")"
r=$(curl -s --max-time 8 -o /dev/null -w '%{http_code} %header{location}' -H 'Host: bookinfo.example.com'   "http://$IG_LB:8000/productpage?x=1")
[[ $r == "301 https://bookinfo.example.com/productpage?x=1" ]] && pass "httpsRedirect: 301 to https://<host><path>: $r" ||
  fail "httpsRedirect 301" "$r"
r=$(curl -s --max-time 8 -o /dev/null -w '%{http_code} %header{location}' --http2-prior-knowledge \
  -H 'Host: plain.example.com:8000' "http://$IG_LB:8000/a")
[[ $r == "301 https://plain.example.com:8000/a" ]] &&
  pass "httpsRedirect: a server host no VirtualService serves redirects too (over h2c, host with port): $r" ||
  fail "httpsRedirect without a VirtualService" "$r"
r=$(curl -s --max-time 8 -o /dev/null -w '%{http_code}' -H 'Host: bookinfo.example.com' -H 'X-Forwarded-Proto: https' \
  "http://$IG_LB:8000/productpage")
[[ $r == "301" ]] && pass "httpsRedirect: a client's own X-Forwarded-Proto: https is overwritten (still 301)" ||
  fail "httpsRedirect ignores the client's x-forwarded-proto" "$r"
r=$(get bookinfo.example.com /productpage)
[[ $r == "200 productpage" ]] && pass "port 80 (no httpsRedirect) still serves the same host: $r" || fail ":80 unaffected" "$r"

# ---- reviews 5/5/90 over 2,000 requests ------------------------------------------------------------
N=2000
split=$(curl -s --max-time 180 -o /dev/null -w '%{http_code} %header{x-app-version}\n' -H 'Host: bookinfo.example.com' \
  "$GW/reviews?i=[1-$N]")
n1=$(grep -c '^200 v1$' <<<"$split")
n2=$(grep -c '^200 v2$' <<<"$split")
n3=$(grep -c '^200 v3$' <<<"$split")
# Two-sided exact binomial acceptance interval at alpha = 0.001 for each share.
bounds() {
  "$ZT_PY" -c '
import sys
from math import exp, lgamma, log
n, p, a = int(sys.argv[1]), float(sys.argv[2]), 0.001
pmf = [exp(lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1) + k * log(p) + (n - k) * log(1 - p)) for k in range(n + 1)]
lo, acc = 0, 0.0
while acc + pmf[lo] < a / 2: acc += pmf[lo]; lo += 1
hi, acc = n, 0.0
while acc + pmf[hi] < a / 2: acc += pmf[hi]; hi -= 1
print(lo, hi)' "$N" "$1"
}
read -r lo5 hi5 < <(bounds 0.05)
read -r lo90 hi90 < <(bounds 0.90)
if [[ $((n1 + n2 + n3)) == "$N" && $n1 -ge $lo5 && $n1 -le $hi5 && $n2 -ge $lo5 && $n2 -le $hi5 &&
      $n3 -ge $lo90 && $n3 -le $hi90 ]]; then
  pass "reviews 5/5/90 through the gateway: $N requests -> v1 $n1, v2 $n2, v3 $n3 (bounds $lo5..$hi5, $lo90..$hi90)"
else
  fail "reviews 5/5/90 over $N requests (v1,v2 in $lo5..$hi5, v3 in $lo90..$hi90, all 200)" \
    "v1 $n1 v2 $n2 v3 $n3; $(sort <<<"$split" | uniq -c | head -5 | tr '\n' ' ')"
fi
# Mesh pods are reached over HBONE with the gateway's own identity: reviews-v3's ztunnel
# (node 2) counts the inbound connections as from the gateway (counted when opened; the gateway
# keeps them alive, so no close record is written yet).
ID_IG=$(zn_spiffe istio-ingress ingress)
check "reviews-v3's ztunnel counts inbound HBONE from the gateway's identity" \
  zn_expect_metric n2 istio_tcp_connections_opened_total reporter=destination "source_principal=$ID_IG"

# ---- ingress-use-waypoint: calculate through its waypoint ---------------------------------------
wp_before=$(wp_metrics | grep '^istio_requests_total' | grep -c "source_principal=\"$ID_IG\"" || true)
r=$(get calc.example.com /calc)
[[ $r == "200 cat-plus" || $r == "200 dog-multi" ]] && pass "calc.example.com -> gateway -> waypoint -> calculate: $r" ||
  fail "calc.example.com through the waypoint" "$r"
wp_has() {
  local m
  for _ in $(seq 1 25); do
    m=$(wp_metrics | grep '^istio_requests_total')
    grep -F "source_principal=\"$ID_IG\"" <<<"$m" | grep -E 'destination_service="calculate\.e2e' >/dev/null && return 0
    sleep 0.2
  done
  echo "no waypoint istio_requests_total with source_principal=$ID_IG (before: $wp_before series)"
  head -n 3 <<<"$m"
  return 1
}
check "the waypoint's istio_requests_total counts the gateway's request (source = the gateway's identity)" wp_has
ID_WP=$(zn_spiffe e2e waypoint)
calc_from_waypoint() {
  local pair
  for _ in $(seq 1 25); do
    for pair in n1:cat-1 n2:dog-1; do
      zn_metric_lines "${pair%%:*}" istio_tcp_connections_opened_total reporter=destination \
        "source_principal=$ID_WP" "destination_workload=${pair#*:}" >/dev/null && return 0
    done
    sleep 0.2
  done
  echo "no ztunnel istio_tcp_connections_opened_total from $ID_WP to cat-1 or dog-1"
  return 1
}
check "the destination ztunnel sees the waypoint's identity (the gateway crossed the waypoint)" calc_from_waypoint
# (Output captured first: `grep -q` closing a pipe early fails the pipeline under pipefail.)
wp_saw_reviews() {
  local m; m=$(wp_metrics)
  [[ -n $m ]] || { echo "waypoint metrics unreadable"; return 0; }  # fails the check_not
  grep -E '^istio_requests_total' <<<"$m" | grep -E 'reviews|productpage'
}
check_not "the waypoint saw no Bookinfo traffic (services without ingress-use-waypoint go direct)" wp_saw_reviews

# ---- a plain (non-mesh) backend --------------------------------------------------------------------
r=$(get legacy.example.com /anything)
[[ $r == "200 legacy" ]] && pass "legacy.example.com -> plain TCP to a pod outside the mesh: $r" || fail "plain backend" "$r"
check "the plain pod saw the gateway's own address (no tunnel)" \
  wait_for_file_match "$T/app-legacy-1.log" "peer=$IG_IP" 5

# ---- gateway telemetry ------------------------------------------------------------------------------
ig_source_metric() {
  local m; m=$(ig_metrics | grep '^istio_requests_total')
  grep -E 'reporter="source".*destination_workload="reviews-v3".*response_code="200"' <<<"$m" >/dev/null && return 0
  head -n 3 <<<"$m"
  return 1
}
check "gateway istio_requests_total with reporter=source" ig_source_metric

# ---- the same gateway from the Gateway API: Gateway (class istio) + HTTPRoute ----------------------
# The Istio Gateway is replaced by a gateway.networking.k8s.io Gateway whose pod is chosen by
# istio's label gateway.networking.k8s.io/gateway-name; the running gateway gets the new
# Listeners/routes over xDS.
wp_put 50-ingress.yaml <<Y
$(ig_pod "gateway.networking.k8s.io/gateway-name: bookinfo-k8s")
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: bookinfo-k8s, namespace: istio-ingress}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
  - name: https
    port: 443
    protocol: HTTPS
    hostname: bookinfo.example.com
    tls: {mode: Terminate, certificateRefs: [{name: bookinfo-cert}]}
    allowedRoutes: {namespaces: {from: All}}
Y
wp_put 70-gateway-api.yaml <<Y
apiVersion: v1
kind: Service
metadata: {name: reviews-v1, namespace: e2e}
spec:
  clusterIP: 10.99.200.22
  selector: {app: reviews, version: v1}
  ports: [{name: http, port: 9080, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v3, namespace: e2e}
spec:
  clusterIP: 10.99.200.24
  selector: {app: reviews, version: v3}
  ports: [{name: http, port: 9080, targetPort: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bookinfo, namespace: e2e}
spec:
  parentRefs: [{name: bookinfo-k8s, namespace: istio-ingress}]
  hostnames: [bookinfo.example.com]
  rules:
  - matches: [{path: {type: Exact, value: /productpage}}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: x-route, value: gateway-api}]}
    backendRefs: [{name: productpage, port: 9080}]
  - matches: [{path: {type: PathPrefix, value: /reviews}}]
    backendRefs: [{name: reviews-v1, port: 9080, weight: 1}, {name: reviews-v3, port: 9080, weight: 3}]
  - matches: [{path: {type: PathPrefix, value: /reviews}, headers: [{name: end-user, value: jason}]}]
    backendRefs: [{name: reviews-v1, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: grpc-echo, namespace: legacy}
spec:
  clusterIP: 10.99.200.31
  selector: {app: legacy}
  ports: [{name: grpc, port: 9090, targetPort: 9090}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc-echo, namespace: legacy}
spec:
  parentRefs: [{name: bookinfo-k8s, namespace: istio-ingress, sectionName: http}]
  hostnames: [grpc.example.com]
  rules:
  - matches: [{method: {service: calc.Calc, method: Echo}}]
    backendRefs: [{name: grpc-echo, port: 9090}]
Y
# A grpcio server (tests/66's grpc_app.py) in the plain legacy pod, behind the GRPCRoute.
nsx_bg legacy-1 "$T/grpc-legacy.log" "$ZT_PY" -u "$HERE/../66-waypoint-e2e/grpc_app.py" serve legacy-grpc 9090
wait_for_port legacy-1 9090 10 || fail "grpcio server in legacy-1 listening" "$(tail -n 3 "$T/grpc-legacy.log")"
# getr HOST PATH [CURL-ARGS...] — "CODE VERSION ROUTE" of one request to the gateway address.
getr() {
  local h=$1 p=$2; shift 2
  curl -s --max-time 8 -o /dev/null -w '%{http_code} %header{x-app-version} %header{x-route}' -H "Host: $h" "$@" "$GW$p"
}
switched() {
  local r
  for _ in $(seq 1 75); do
    r=$(getr bookinfo.example.com /productpage)
    [[ $r == "200 productpage gateway-api" ]] && return 0
    sleep 0.2
  done
  echo "last: $r"; logs cp ingress
  return 1
}
check "Gateway (class istio) + HTTPRoute served by the running gateway: /productpage -> productpage, x-route set" switched
r=$(getr bookinfo.example.com /static/x.css)
[[ $r == "404  " ]] && pass "Gateway API: a path the HTTPRoute does not route: 404" || fail "Gateway API unrouted path 404" "$r"
r=$(getr calc.example.com /productpage)
[[ $r == "404  " ]] && pass "Gateway API: a host outside the HTTPRoute's hostnames: 404" || fail "Gateway API host filter" "$r"
ok=1
for _ in 1 2 3 4 5; do
  r=$(getr bookinfo.example.com /reviews -H 'end-user: jason')
  [[ $r == "200 v1 " ]] || { ok=0; fail "header match end-user: jason -> reviews-v1" "$r"; break; }
done
[[ $ok == 1 ]] && pass "Gateway API header match (end-user: jason) outranks the plain prefix: 5/5 to reviews-v1"
r=$(curl -s --max-time 8 --cacert "$T/ca.crt" --resolve "bookinfo.example.com:443:$IG_LB" -o /dev/null \
  -w '%{http_code} %header{x-app-version} %header{x-route}' https://bookinfo.example.com/productpage)
[[ $r == "200 productpage gateway-api" ]] && pass "Gateway API HTTPS listener (certificateRefs bookinfo-cert, SNI): $r" ||
  fail "Gateway API HTTPS" "$r $(grep -i 'tls\|credential' "$T/ingress.log" | tail -n 3)"
N=1000
split=$(curl -s --max-time 120 -o /dev/null -w '%{http_code} %header{x-app-version}\n' -H 'Host: bookinfo.example.com' \
  "$GW/reviews?i=[1-$N]")
n1=$(grep -c '^200 v1$' <<<"$split")
n3=$(grep -c '^200 v3$' <<<"$split")
read -r lo25 hi25 < <(bounds 0.25)
if [[ $((n1 + n3)) == "$N" && $n1 -ge $lo25 && $n1 -le $hi25 ]]; then
  pass "HTTPRoute backendRef weights 1:3 through the gateway: $N requests -> reviews-v1 $n1, reviews-v3 $n3 (v1 bounds $lo25..$hi25)"
else
  fail "HTTPRoute weights 1:3 over $N requests (v1 in $lo25..$hi25, all 200)" \
    "v1 $n1 v3 $n3; $(sort <<<"$split" | uniq -c | head -5 | tr '\n' ' ')"
fi

# GRPCRoute: one unary call with :authority grpc.example.com through the gateway's :80 (h2c).
grpc_call() {
  "$ZT_PY" - "$IG_LB:80" <<'PY'
import sys, grpc
ch = grpc.insecure_channel(sys.argv[1], options=[("grpc.default_authority", "grpc.example.com"),
                                                  ("grpc.enable_http_proxy", 0)])
try:
    print("REPLY", ch.unary_unary("/calc.Calc/Echo")(b"gw", timeout=5).decode())
except grpc.RpcError as e:
    print("ERROR", e.code(), e.details())
PY
}
g=$(grpc_call 2>&1)
[[ $g == "REPLY legacy-grpc echo:gw" ]] && pass "GRPCRoute at the gateway: unary calc.Calc/Echo -> the grpcio back end: $g" ||
  fail "GRPCRoute unary call through the gateway" "$g $(tail -n 2 "$T/grpc-legacy.log")"

nsx_alive "$IG_PID" && pass "gateway alive after the run" || fail "gateway alive" "$(logs ingress)"
summary
