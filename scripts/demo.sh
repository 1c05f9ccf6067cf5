#!/usr/bin/env bash
# scripts/demo.sh [BIN_DIR] — a guided tour of the ambient data plane on one host (`make demo`).
#
# Builds two "pods" as network namespaces on a bridge, installs the istio-cni in-pod rules in
# each, starts one dedicated-mode ztunnel per pod, has the client pod curl the server pod and
# then shows what happened: identities, bytes, the Prometheus lines, the access-log lines, and
# the packet capture proving that only TLS on port 15008 crossed the wire. Everything it creates
# (namespaces zt-demo-*, processes, temp files) is removed on exit. Needs root.
set -uo pipefail

# shellcheck source=lib/demo.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/demo.sh"
demo_setup demo "${1:-}"
demo_require demo "$ZT_BIN" -- tcpdump curl ip iptables
CONFIG="$ZT_ROOT/examples/demo/mesh.yaml"

# shellcheck source=../tests/lib/netns.sh
source "$ZT_ROOT/tests/lib/netns.sh"
# shellcheck source=../tests/30-e2e/helpers.sh
source "$ZT_ROOT/tests/30-e2e/helpers.sh"

if [[ -t 1 ]]; then B=$'\e[1m'; G=$'\e[32m'; R=$'\e[31m'; D=$'\e[2m'; N=$'\e[0m'; else B=; G=; R=; D=; N=; fi
step() { echo; echo "${B}== $*${N}"; }
say() { echo "   $*"; }
indent() { sed 's/^/     /'; }
die() { echo "${R}demo failed: $*${N}"; exit 1; }

nsx_init demo
T="$NSX_TMP"
ID_C=$(zt_spiffe demo client)
ID_S=$(zt_spiffe demo server)

step "1. Two pods on one L2 segment"
nsx_pod client 10.99.0.1
nsx_pod server 10.99.0.2
say "zt-demo-client  10.99.0.1  identity $ID_C"
say "zt-demo-server  10.99.0.2  identity $ID_S"
say "both attached to bridge br0 in zt-demo-node (the 'wire')"

step "2. Mesh certificates (Istio plugged-in cacerts layout)"
"$ZT_ROOT/scripts/make-cacerts.sh" "$T/cacerts" "$ZT_TRUST_DOMAIN" >"$T/cacerts.log" 2>&1 \
  || die "make-cacerts.sh: $(cat "$T/cacerts.log")"
say "root + intermediate CA in $T/cacerts; each ztunnel signs its own workload certificate"

step "3. In-pod redirection rules (same as istio-cni installs)"
for p in client server; do
  nsx_exec "$p" "$ZT_ROOT/scripts/inpod-iptables.sh" install --no-dns >"$T/rules-$p.log" 2>&1 \
    || die "inpod-iptables.sh in $p: $(cat "$T/rules-$p.log")"
done
say "nat rules in zt-demo-client:"
nsx_exec client iptables -t nat -S ISTIO_OUTPUT | grep REDIRECT | indent
nsx_exec client iptables -t nat -S ISTIO_PRERT | grep REDIRECT | indent

step "4. One ztunnel per pod (dedicated mode) and an HTTP server in the server pod"
nsx_bg server "$T/app.log" "$ZT_PY" -u -m http.server 8080 --bind 0.0.0.0 --directory "$T"
zt_start client demo/client-0/client "$CONFIG" "$T/cacerts" "$T/zt-client.log"
zt_start server demo/server-0/server "$CONFIG" "$T/cacerts" "$T/zt-server.log"
for p in client server; do
  zt_wait_ready "$p" 20 >/dev/null || { tail -n 20 "$T/zt-$p.log"; die "ztunnel in $p not ready"; }
  say "ztunnel in zt-demo-$p: ready (15001 outbound, 15006 inbound plaintext, 15008 HBONE)"
done
wait_for_http server http://127.0.0.1:8080/ 10 || die "http server did not start"

step "5. Traffic: curl http://10.99.0.2:8080/ from the client pod (3 requests)"
nsx_capture_start node v-client "$T/wire.pcap" || die "tcpdump did not start"
okc=0
for i in 1 2 3; do
  code=$(nsx_exec client curl -s --max-time 10 -o /dev/null -w '%{http_code}' \
         "http://10.99.0.2:8080/?demo-secret-$i" 2>/dev/null) || true
  say "request $i -> HTTP ${code:-error}"
  [[ $code == 200 ]] && okc=$((okc + 1))
done
nsx_capture_stop
[[ $okc -gt 0 ]] || { tail -n 10 "$T/zt-client.log" "$T/zt-server.log"; die "no request succeeded"; }
say "server app saw: $(grep -a 'demo-secret' "$T/app.log" | head -n 1 | awk '{print $1, $6, $7, $8, $9}')"
sleep 1   # let both sides record the closed connections

step "6. Access log (one 'connection complete' line per connection)"
say "${B}client side (outbound):${N}"
grep -a 'connection complete' "$T/zt-client.log" | tail -n 3 | indent
say "${B}server side (inbound):${N}"
grep -a 'connection complete' "$T/zt-server.log" | tail -n 3 | indent
last=$(grep -a 'connection complete' "$T/zt-server.log" | tail -n 1)
src=$(grep -aoE 'src\.identity="?[^" ]+' <<<"$last" | sed 's/.*=//; s/"//')
dst=$(grep -aoE 'dst\.identity="?[^" ]+' <<<"$last" | sed 's/.*=//; s/"//')
sent=$(grep -aoE 'bytes_sent=[0-9]+' <<<"$last" | cut -d= -f2)
recv=$(grep -aoE 'bytes_recv=[0-9]+' <<<"$last" | cut -d= -f2)
say "=> peer identity verified by mTLS: ${G}${src:-?}${N} -> ${G}${dst:-?}${N}, bytes sent ${sent:-?} / received ${recv:-?}"

step "7. Metrics (curl 127.0.0.1:15020/metrics inside each pod)"
for p in client server; do
  say "${B}$p:${N}"
  zt_metrics "$p" | grep -E '^istio_tcp_(connections_opened|connections_closed|sent_bytes|received_bytes)_total\{' \
    | sed -E 's/(source|destination)_(canonical_revision|cluster|app|version|workload_namespace|service_namespace|service_name|canonical_service)="[^"]*",?//g' \
    | head -n 8 | indent
done

step "8. What crossed the wire (tcpdump on the client's veth)"
cap_flows "$T/wire.pcap" \
  | awk '{ if ($2 < $4) print $1 ":" $2 " -> " $3; else print $1 " -> " $3 ":" $4 }' \
  | sort | uniq -c | sort -rn | awk '{printf "%6d packets  %s %s %s\n", $1, $2, $3, $4}' | indent
total=$(cap_flows "$T/wire.pcap" | wc -l)
non15008=$(cap_flows "$T/wire.pcap" | awk '$2 != 15008 && $4 != 15008' | wc -l)
if [[ $total -gt 0 && $non15008 == 0 ]]; then
  say "${G}all $total TCP packets are on port 15008${N}"
else
  say "${R}$non15008 of $total packets were NOT on port 15008${N}"
fi
if cap_ascii "$T/wire.pcap" | contains -a 'demo-secret'; then
  say "${R}the request line 'GET /?demo-secret-N' IS visible on the wire${N}"
else
  say "${G}the request line 'GET /?demo-secret-N' is nowhere in the capture (encrypted)${N}"
fi
if command -v tshark >/dev/null 2>&1; then
  tshark -r "$T/wire.pcap" -d tcp.port==15008,tls -Y 'tls.handshake.type == 1 || tls.handshake.type == 2' \
    -T fields -e ip.src -e ip.dst -e tls.handshake.type -e tls.handshake.extensions.supported_version \
    2>/dev/null | awk '{t = ($3 == 1 ? "ClientHello" : "ServerHello");
                       printf "%s -> %s  %s  versions %s\n", $1, $2, t, $4}' | head -n 4 | indent
  say "${D}(0x0304 = TLS 1.3; everything after the handshake is encrypted application data)${N}"
fi

step "Done; cleaning up namespaces and processes"
