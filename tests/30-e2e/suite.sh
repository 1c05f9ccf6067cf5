#!/usr/bin/env bash
# tests/30-e2e/suite.sh BIN_DIR — end-to-end: two ambient "pods" in network namespaces, each
# with the istio-cni in-pod rules and its own dedicated-mode ztunnel, talking HBONE over a veth
# bridge; a third, non-mesh pod for passthrough (and a DNS server for on-demand DNS). Needs root. Takes ~10 s.
#
#   zt-e2e-a 10.99.0.1  rules + ztunnel (default/pod-a/sa-a)      curl client
#   zt-e2e-b 10.99.0.2  rules + ztunnel (default/pod-b/sa-b)      python http.server :8080
#   zt-e2e-c 10.99.0.3  nothing (not in the mesh config)          python http.server :8080
#   zt-e2e-node         bridge br0; tcpdump on v-a sees everything pod A puts on the wire
#
# Every case prints PASS/FAIL; the last line is "N passed, N failed"; exit 1 on any failure.
# NSX_KEEP_TMP=1 keeps logs and captures (path printed at the end).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ZT_ROOT=$(cd "$HERE/../.." && pwd)
BIN_DIR=$(cd "${1:-$ZT_ROOT/build/bin}" 2>/dev/null && pwd || echo "${1:-$ZT_ROOT/build/bin}")
ZT_BIN="$BIN_DIR/ztunnel"

# shellcheck source=../lib/netns.sh
source "$ZT_ROOT/tests/lib/netns.sh"
# shellcheck source=helpers.sh
source "$HERE/helpers.sh"

require_root
for t in tcpdump "$ZT_PY"; do
  command -v "$t" >/dev/null 2>&1 || { fail "required tool $t missing"; summary; exit 1; }
done
if [[ ! -x $ZT_BIN ]]; then
  fail "ztunnel binary present at $ZT_BIN"
  summary
  exit 1
fi

nsx_init e2e
T="$NSX_TMP"
ID_A=$(zt_spiffe default sa-a)
ID_B=$(zt_spiffe default sa-b)
CURL=(curl -s --max-time 10 --connect-timeout 5)

# ---- 1. in-pod rules script: idempotent install, clean remove --------------------------------
nsx_add_netns "$(nsx_ns ipt)"
{
  ok=1; msg=""
  nsx_exec ipt iptables-save >"$T/ipt-before.txt"
  nsx_exec ipt "$ZT_ROOT/scripts/inpod-iptables.sh" install >"$T/ipt.log" 2>&1 || { ok=0; msg+="first install failed; "; }
  once=$(nsx_exec ipt iptables-save | grep -c -- '-A ')
  nsx_exec ipt "$ZT_ROOT/scripts/inpod-iptables.sh" install >>"$T/ipt.log" 2>&1 || { ok=0; msg+="second install failed; "; }
  twice=$(nsx_exec ipt iptables-save | grep -c -- '-A ')
  [[ $once == "$twice" && $once -gt 10 ]] || { ok=0; msg+="rule count once=$once twice=$twice; "; }
  nsx_exec ipt iptables-save | contains -- '-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001' \
    || { ok=0; msg+="outbound REDIRECT 15001 rule missing; "; }
  nsx_exec ipt iptables-save | contains -- '-A ISTIO_PRERT ! -d 127.0.0.1/32 -p tcp -m tcp ! --dport 15008 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15006' \
    || { ok=0; msg+="inbound REDIRECT 15006 rule missing; "; }
  [[ $(nsx_exec ipt ip rule show | grep -c 'fwmark 0x111/0xfff lookup 100') == 1 ]] || { ok=0; msg+="ip rule count != 1; "; }
  nsx_exec ipt "$ZT_ROOT/scripts/inpod-iptables.sh" remove >>"$T/ipt.log" 2>&1 || { ok=0; msg+="remove failed; "; }
  nsx_exec ipt iptables-save | contains ISTIO && { ok=0; msg+="ISTIO chains left after remove; "; }
  nsx_exec ipt ip6tables-save 2>/dev/null | contains ISTIO && { ok=0; msg+="ISTIO v6 chains left; "; }
  nsx_exec ipt ip rule show | contains 'lookup 100' && { ok=0; msg+="ip rule left; "; }
  [[ -z $(nsx_exec ipt ip route show table 100 2>/dev/null) ]] || { ok=0; msg+="table 100 not empty; "; }
  if [[ $ok == 1 ]]; then pass "inpod-iptables: idempotent install ($once rules), clean remove"
  else fail "inpod-iptables: idempotent install, clean remove" "$msg$(cat "$T/ipt.log")"; fi
}

# ---- 2. topology -----------------------------------------------------------------------------
nsx_pod a 10.99.0.1
nsx_pod b 10.99.0.2
nsx_pod c 10.99.0.3

CA="$T/cacerts"
if ! "$ZT_ROOT/scripts/make-cacerts.sh" "$CA" "$ZT_TRUST_DOMAIN" >"$T/cacerts.log" 2>&1; then
  fail "make-cacerts.sh created a CA" "$(cat "$T/cacerts.log")"
  summary; exit 1
fi
cp "$HERE/config-allow.yaml" "$HERE/config-deny.yaml" "$T/"

for p in a b; do
  if ! nsx_exec "$p" "$ZT_ROOT/scripts/inpod-iptables.sh" install --no-dns >"$T/rules-$p.log" 2>&1; then
    fail "in-pod rules installed in pod $p" "$(cat "$T/rules-$p.log")"
  fi
done

nsx_bg b "$T/app-b.log" "$ZT_PY" -u -m http.server 8080 --bind 0.0.0.0 --directory "$T"
nsx_bg c "$T/app-c.log" "$ZT_PY" -u -m http.server 8080 --bind 0.0.0.0 --directory "$T"
# A DNS server in pod C for on-demand DNS (section 4c); pod A's ztunnel reads it from its resolv.conf.
nsx_bg c "$T/dns-c.log" "$ZT_PY" -u "$HERE/tiny_dns.py" 10.99.0.3 53 ext-app.e2e.test=10.99.0.3
nsx_resolv_conf a "nameserver 10.99.0.3"

zt_start a default/pod-a/sa-a "$T/config-allow.yaml" "$CA" "$T/zt-a.log"
zt_start b default/pod-b/sa-b "$T/config-allow.yaml" "$CA" "$T/zt-b.log"

for p in a b; do
  if out=$(zt_wait_ready "$p" 20); then
    pass "ztunnel in pod $p ready"
  else
    fail "ztunnel in pod $p ready" "$out
$(tail -n 20 "$T/zt-$p.log")"
  fi
done
# Apps answer locally (127.0.0.1 is never captured).
wait_for_http b http://127.0.0.1:8080/ 10 || fail "app in pod b listening"
wait_for_http c http://127.0.0.1:8080/ 10 || fail "app in pod c listening"

# ---- 3. A -> B over HBONE, wire check ----------------------------------------------------------
nsx_capture_start node v-a "$T/mesh.pcap" || fail "tcpdump started on v-a"
out=$(nsx_exec a "${CURL[@]}" -o "$T/curl-ab.out" -w '%{http_code}' \
      -H 'X-E2E-Marker: ZTE2E-HDR-7f3a' 'http://10.99.0.2:8080/?q=ZTE2E-MARK-91c2' 2>&1)
rc=$?
nsx_capture_stop
if [[ $rc == 0 && $out == 200 ]]; then pass "curl A -> http://10.99.0.2:8080/ through the mesh (200)"
else fail "curl A -> http://10.99.0.2:8080/ through the mesh" "curl rc=$rc http=$out
--- zt-a.log:
$(tail -n 15 "$T/zt-a.log")
--- zt-b.log:
$(tail -n 15 "$T/zt-b.log")"; fi

cap_flows "$T/mesh.pcap" >"$T/mesh.flows"
npk=$(wc -l <"$T/mesh.flows")
bad=$(awk '$2 != 15008 && $4 != 15008' "$T/mesh.flows")
hbone=$(awk '($1 == "10.99.0.1" && $3 == "10.99.0.2" && $4 == 15008) || ($1 == "10.99.0.2" && $2 == 15008 && $3 == "10.99.0.1")' "$T/mesh.flows" | wc -l)
if [[ $npk -gt 0 && -z $bad && $hbone == "$npk" ]]; then
  pass "wire: all $npk TCP packets between A and B use port 15008"
else
  fail "wire: only TCP port 15008 between A and B" "packets=$npk hbone=$hbone; non-15008:
$(head -n 10 <<<"$bad")"
fi
if [[ $npk -gt 0 ]] && ! cap_ascii "$T/mesh.pcap" | contains -aE 'ZTE2E-MARK|ZTE2E-HDR|GET /|HTTP/1\.[01]'; then
  pass "wire: no plaintext (request line, header and marker absent from the capture)"
else
  fail "wire: no plaintext on the wire" "$(cap_ascii "$T/mesh.pcap" | grep -aE 'ZTE2E|GET /|HTTP/1' | head -n 5)"
fi
if command -v tshark >/dev/null 2>&1 && [[ $npk -gt 0 ]]; then
  vers=$(tshark -r "$T/mesh.pcap" -d tcp.port==15008,tls -Y 'tls.handshake.type == 2' \
         -T fields -e tls.handshake.extensions.supported_version 2>/dev/null | sort -u | tr '\n' ' ')
  if grep -q '0x0304' <<<"$vers"; then pass "wire: TLS 1.3 handshake on 15008 (ServerHello)"
  else fail "wire: TLS 1.3 handshake on 15008" "ServerHello supported_version='$vers'"; fi
fi

if grep -aq 'ZTE2E-MARK-91c2' "$T/app-b.log"; then
  pass "app in B served the request ($(grep -a 'ZTE2E-MARK-91c2' "$T/app-b.log" | awk '{print "peer " $1}' | head -n 1))"
else fail "app in B served the request" "$(tail -n 5 "$T/app-b.log")"; fi

# ---- 4. telemetry ------------------------------------------------------------------------------
check "metrics A: opened_total reporter=source, principals A->B" \
  zt_expect_metric a istio_tcp_connections_opened_total reporter=source \
    source_principal="$ID_A" destination_principal="$ID_B"
check "metrics B: opened_total reporter=destination, principals A->B" \
  zt_expect_metric b istio_tcp_connections_opened_total reporter=destination \
    source_principal="$ID_A" destination_principal="$ID_B"
check "metrics A: sent/received bytes counters for A->B" \
  zt_expect_metric a istio_tcp_received_bytes_total reporter=source source_principal="$ID_A"
check "access log A: outbound line with src.identity/dst.identity" \
  zt_expect_access "$T/zt-a.log" "src\.identity=$(id_re "$ID_A")" "dst\.identity=$(id_re "$ID_B")" 'direction="?outbound'
check "access log B: inbound line with src.identity/dst.identity" \
  zt_expect_access "$T/zt-b.log" "src\.identity=$(id_re "$ID_A")" "dst\.identity=$(id_re "$ID_B")" 'direction="?inbound'

# ---- 4b. a service CIDR VIP (cidrVips): an address inside 10.99.50.0/24 is the service -------
# A link route only lets the connect() leave pod A; the in-pod rules capture it before any ARP.
nsx_exec a ip route add 10.99.50.0/24 dev eth0
out=$(nsx_exec a "${CURL[@]}" -o /dev/null -w '%{http_code}' 'http://10.99.50.7:80/?q=ZTE2E-CIDR-4e21' 2>&1)
rc=$?
if [[ $rc == 0 && $out == 200 ]] && grep -aq 'ZTE2E-CIDR-4e21' "$T/app-b.log"; then
  pass "CIDR VIP: curl A -> 10.99.50.7:80 (inside cidrVips /10.99.50.0/24) served by B's 8080"
else fail "CIDR VIP: curl A -> 10.99.50.7:80 served by B" "curl rc=$rc http=$out
$(tail -n 10 "$T/zt-a.log")"; fi
check "CIDR VIP: metrics A carry destination_service of the CIDR service" \
  zt_expect_metric a istio_tcp_connections_opened_total reporter=source \
    destination_service=cidr.default.svc.cluster.local destination_principal="$ID_B"
dump_a=$(nsx_exec a curl -s --max-time 3 http://127.0.0.1:15000/config_dump)
printf '%s' "$dump_a" >"$T/dump-a.json"
if out=$("$ZT_PY" - "$T/dump-a.json" 2>&1 <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
s = [s for s in d["services"] if s["hostname"] == "cidr.default.svc.cluster.local"]
assert len(s) == 1 and s[0]["vips"] == [] and s[0]["cidrVips"] == ["/10.99.50.0/24"], s
print("ok")
PY
); then pass "CIDR VIP: A's /config_dump lists cidrVips [\"/10.99.50.0/24\"] and no vips"
else fail "CIDR VIP: /config_dump shows cidrVips" "$out"; fi
check "CIDR VIP: A's /config_dump decodes as istioctl's structs; the checker rejects wrong variants" \
  "$ZT_PY" "$ZT_ROOT/tests/lib/istioctl_dump_check.py" --self-test <"$T/dump-a.json"

# ---- 4c. on-demand DNS: a service whose endpoint is known only by hostname -------------------
# VIP 10.99.60.1:80 -> workload "ext" (hostname ext-app.e2e.test, no IPs): A's ztunnel asks the
# DNS server in pod C (its resolv.conf), gets 10.99.0.3 and connects to pod C's app on 8080.
nsx_exec a ip route add 10.99.60.0/24 dev eth0
out=$(nsx_exec a "${CURL[@]}" -o /dev/null -w '%{http_code}' 'http://10.99.60.1:80/?q=ZTE2E-DNS-8b31' 2>&1)
rc=$?
if [[ $rc == 0 && $out == 200 ]] && grep -aq 'ZTE2E-DNS-8b31' "$T/app-c.log"; then
  pass "on-demand DNS: curl A -> 10.99.60.1:80 reached ext-app.e2e.test = 10.99.0.3:8080 (pod C's app)"
else fail "on-demand DNS: curl A -> 10.99.60.1:80 reaches pod C's app" "curl rc=$rc http=$out
$(tail -n 10 "$T/zt-a.log")
--- dns-c.log:
$(tail -n 5 "$T/dns-c.log")"; fi
grep -aq 'query ext-app.e2e.test 1 from 10.99.0.1' "$T/dns-c.log" \
  && pass "on-demand DNS: the DNS server in pod C got A's A query for ext-app.e2e.test" \
  || fail "on-demand DNS: A's query reached the DNS server" "$(cat "$T/dns-c.log")"
check "on-demand DNS: istio_on_demand_dns_total{hostname=ext-app.e2e.test, source_workload=pod-a} > 0" \
  zt_expect_metric a istio_on_demand_dns_total hostname=ext-app.e2e.test source_workload=pod-a \
    source_principal="$ID_A"
check "on-demand DNS: the connection is recorded to the ext service over plain TCP" \
  zt_expect_access "$T/zt-a.log" 'dst\.addr="?10\.99\.0\.3:8080' 'dst\.service="?ext-app\.e2e\.test' \
    'direction="?outbound'
if out=$(nsx_exec a curl -s --max-time 3 http://127.0.0.1:15000/config_dump | "$ZT_PY" -c '
import json, sys
d = json.load(sys.stdin)
w = [w for w in d["workloads"] if w.get("hostname") == "ext-app.e2e.test"]
assert len(w) == 1 and not w[0].get("workloadIps"), w
print("ok")' 2>&1); then pass "on-demand DNS: A's /config_dump shows the workload's hostname and no IPs"
else fail "on-demand DNS: /config_dump shows the hostname workload" "$out"; fi

# ---- 5. passthrough to a non-mesh destination -----------------------------------------------
nsx_capture_start node v-a "$T/pass.pcap" || fail "tcpdump started on v-a"
out=$(nsx_exec a "${CURL[@]}" -o /dev/null -w '%{http_code}' 'http://10.99.0.3:8080/?q=ZTE2E-PASS-5d1e' 2>&1)
rc=$?
nsx_capture_stop
if [[ $rc == 0 && $out == 200 ]]; then pass "passthrough: curl A -> non-mesh 10.99.0.3:8080 (200)"
else fail "passthrough: curl A -> non-mesh 10.99.0.3:8080" "curl rc=$rc http=$out
$(tail -n 10 "$T/zt-a.log")"; fi
cap_flows "$T/pass.pcap" >"$T/pass.flows"
plain=$(awk '$1 == "10.99.0.1" && $3 == "10.99.0.3" && $4 == 8080' "$T/pass.flows" | wc -l)
tunnel=$(awk '$2 == 15008 || $4 == 15008' "$T/pass.flows" | wc -l)
if [[ $plain -gt 0 && $tunnel == 0 ]] && cap_ascii "$T/pass.pcap" | contains -a 'ZTE2E-PASS-5d1e'; then
  pass "passthrough: plain TCP to 10.99.0.3:8080 on the wire, no 15008"
else
  fail "passthrough: plain TCP on the wire" "to-8080=$plain on-15008=$tunnel
$(head -n 5 "$T/pass.flows")"
fi
grep -aq 'ZTE2E-PASS-5d1e' "$T/app-c.log" && pass "passthrough: app in C served the request" \
  || fail "passthrough: app in C served the request" "$(tail -n 5 "$T/app-c.log")"

# ---- 6. plaintext into a mesh pod: captured by 15006, no identity -> ALLOW policy refuses ----
out=$(nsx_exec c "${CURL[@]}" -o /dev/null -w '%{http_code}' 'http://10.99.0.2:8080/?q=ZTE2E-PLAIN-0b7d' 2>&1)
rc=$?
if [[ $rc != 0 ]] && ! grep -aq 'ZTE2E-PLAIN-0b7d' "$T/app-b.log"; then
  if wait_for_file_match "$T/zt-b.log" '10\.99\.0\.3' 5; then
    pass "plaintext C -> B captured on 15006 and refused by the principal ALLOW policy"
  else
    fail "plaintext C -> B captured on 15006" "curl failed (rc=$rc) but ztunnel B logged nothing about 10.99.0.3:
$(tail -n 10 "$T/zt-b.log")"
  fi
else
  fail "plaintext C -> B refused (no identity, ALLOW requires sa-a)" "curl rc=$rc http=$out; app-b:
$(grep -a 'ZTE2E-PLAIN' "$T/app-b.log")"
fi

# ---- 7. DENY policy: restart B with config-deny.yaml ---------------------------------------------
t0=$(date +%s)
if nsx_stop "${ZT_PID_b:?}" 15; then
  pass "ztunnel B exits 0 on SIGTERM (drain took $(( $(date +%s) - t0 ))s)"
else
  rc=$?
  fail "ztunnel B exits 0 on SIGTERM" "exit status $rc after $(( $(date +%s) - t0 ))s
$(tail -n 10 "$T/zt-b.log")"
fi
mv "$T/zt-b.log" "$T/zt-b-allow.log"
zt_start b default/pod-b/sa-b "$T/config-deny.yaml" "$CA" "$T/zt-b.log"
if out=$(zt_wait_ready b 20); then pass "ztunnel B restarted with the DENY policy"
else fail "ztunnel B restarted with the DENY policy" "$out
$(tail -n 20 "$T/zt-b.log")"; fi

out=$(nsx_exec a "${CURL[@]}" -o /dev/null -w '%{http_code}' 'http://10.99.0.2:8080/?q=ZTE2E-DENY-44e0' 2>&1)
rc=$?
if [[ $rc != 0 || $out != 200 ]]; then pass "DENY: curl A -> B fails (curl rc=$rc http=$out)"
else fail "DENY: curl A -> B fails" "got http $out"; fi
if ! grep -aq 'ZTE2E-DENY-44e0' "$T/app-b.log"; then pass "DENY: app in B never saw the request"
else fail "DENY: app in B never saw the request" "$(grep -a ZTE2E-DENY "$T/app-b.log")"; fi
if out=$(zt_expect_access "$T/zt-b.log" 'direction="?inbound' "src\.identity=$(id_re "$ID_A")" \
           'error=.*(denied|DENY|401).*deny-a'); then
  pass "DENY: B's access log records the rejection by default/deny-a"
else
  fail "DENY: B's access log records the rejection by default/deny-a" "$out"
fi
if out=$(zt_expect_access "$T/zt-a.log" 'direction="?outbound' "dst\.identity=$(id_re "$ID_B")" \
           'error=.*401'); then
  pass "DENY: A's access log shows the CONNECT answered with 401"
else
  fail "DENY: A's access log shows the CONNECT answered with 401" "$out"
fi
check "DENY: metrics B carry response_flags=DENY" \
  zt_expect_metric b 'istio_tcp_[a-z_]+_total' reporter=destination response_flags=DENY

# ---- 7b. live reload: B watches LOCAL_XDS_PATH; writing the allow config back re-admits A -----
cat "$T/config-allow.yaml" >"$T/config-deny.yaml"
ok=0
for i in $(seq 1 20); do
  code=$(nsx_exec a "${CURL[@]}" --max-time 3 -o /dev/null -w '%{http_code}' \
         "http://10.99.0.2:8080/?q=ZTE2E-RELOAD-$i" 2>/dev/null) && [[ $code == 200 ]] && { ok=1; break; }
  sleep 0.5
done
if [[ $ok == 1 ]]; then pass "live reload of B's LOCAL_XDS_PATH (DENY removed) re-admits A"
else fail "live reload of B's LOCAL_XDS_PATH (DENY removed) re-admits A" "$(tail -n 10 "$T/zt-b.log")"; fi

# ---- 7c. upstream's local-run recipe (its Development guide): FAKE_CA, no xDS, a local file ---
# In pod C (no in-pod rules, so nothing is captured); PROXY_WORKLOAD_INFO is the one addition:
# our dedicated mode serves exactly one workload.
nsx_bg_env c "$T/zt-fake.log" FAKE_CA=true XDS_ADDRESS= LOCAL_XDS_PATH="$ZT_ROOT/examples/localhost.yaml" \
  PROXY_MODE=dedicated PROXY_WORKLOAD_INFO=default/local/default -- prlimit --nofile=1024: "$ZT_BIN"
fake_pid=$NSX_LAST_PID
if out=$(zt_wait_ready c 20); then pass "local-run recipe: FAKE_CA=true XDS_ADDRESS=\"\" LOCAL_XDS_PATH=examples/localhost.yaml becomes ready"
else fail "local-run recipe: FAKE_CA ztunnel ready" "$out
$(tail -n 10 "$T/zt-fake.log")"; fi
fake_dump=$(nsx_exec c curl -s --max-time 3 http://127.0.0.1:15000/config_dump)
printf '%s' "$fake_dump" >"$T/fake-dump.json"
if out=$("$ZT_PY" - "spiffe://cluster.local/ns/default/sa/default" "$T/fake-dump.json" 2>&1 <<'PY'
import base64, json, subprocess, sys, tempfile
d = json.load(open(sys.argv[2]))
c = next((c for c in d["certificates"] if c["identity"] == sys.argv[1]), None)
assert c and c["state"] == "Available", "certificate entry: %r" % (c,)
pem = lambda x: base64.b64decode(x["pem"]).decode()
with tempfile.NamedTemporaryFile("w", suffix=".pem") as root, tempfile.NamedTemporaryFile("w", suffix=".pem") as inter:
    root.write("".join(pem(x) for x in c["rootCerts"])); root.flush()
    inter.write("".join(pem(x) for x in c["certChain"][1:])); inter.flush()
    r = subprocess.run(["openssl", "verify", "-CAfile", root.name, "-untrusted", inter.name],
                       input=pem(c["certChain"][0]), capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
print("ok")
PY
); then pass "local-run recipe: the fake CA issued default/sa/default a leaf that verifies against its rootCerts"
else fail "local-run recipe: fake CA certificate" "$out"; fi
check "local-run recipe: /config_dump decodes as istioctl's structs" \
  "$ZT_PY" "$ZT_ROOT/tests/lib/istioctl_dump_check.py" <<<"$fake_dump"
soft=$(awk '/Max open files/ {print $4}' "/proc/$fake_pid/limits" 2>/dev/null)
hard=$(awk '/Max open files/ {print $5}' "/proc/$fake_pid/limits" 2>/dev/null)
# Started with a soft limit of 1024 (prlimit execs ztunnel, same pid).
[[ -n $soft && $soft == "$hard" ]] && pass "open-files soft limit raised from 1024 to the hard limit ($soft)" \
  || fail "open-files soft limit raised to the hard limit" "soft '$soft' hard '$hard' (pid $fake_pid)"
nsx_stop "$fake_pid" 15 || fail "local-run ztunnel exits 0 on SIGTERM" "$(tail -n 5 "$T/zt-fake.log")"

# The recipe exactly as upstream's Development guide gives it: the default PROXY_MODE (shared),
# no PROXY_WORKLOAD_INFO, no node agent. Upstream then serves admin/stats/config_dump from the
# local file, keeps retrying the ZDS socket, and stays not ready on "workload proxy manager"
# (that task is released only by the node agent's snapshot). A private mount namespace with an
# empty /var/run/ztunnel guarantees no node agent of another run answers the default socket.
mkdir -p /var/run/ztunnel
nsx_bg_env c "$T/zt-recipe.log" FAKE_CA=true XDS_ADDRESS= LOCAL_XDS_PATH="$ZT_ROOT/examples/localhost.yaml" \
  -- unshare -m --propagation private sh -c 'mount -t tmpfs recipe /var/run/ztunnel && exec "$0"' "$ZT_BIN"
recipe_pid=$NSX_LAST_PID
recipe_dump=""
for _ in $(seq 1 100); do
  recipe_dump=$(nsx_exec c curl -s --max-time 1 http://127.0.0.1:15000/config_dump 2>/dev/null) && [[ -n $recipe_dump ]] && break
  sleep 0.2
done
printf '%s' "$recipe_dump" >"$T/recipe-dump.json"
if out=$("$ZT_PY" - "$T/recipe-dump.json" 2>&1 <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
uids = sorted(w["uid"] for w in d["workloads"])
assert uids == ["cluster1//v1/Pod/default/local", "cluster1//v1/Pod/default/local-tcp"], uids
svcs = [(s["namespace"], s["hostname"], s["vips"]) for s in d["services"]]
assert svcs == [("default", "echo.local", ["/127.10.0.1"])], svcs
assert [p["name"] for p in d["policies"]] == ["deny-9999"], d["policies"]
assert d["config"]["proxyMode"] == "Shared", d["config"]["proxyMode"]
assert sorted(w["uid"] for w in d["staticConfig"]["workloads"]) == uids, d["staticConfig"]
assert d.get("workloadState", {}) == {}, d.get("workloadState")
print("ok")
PY
); then pass "local-run recipe, default shared mode: /config_dump shows examples/localhost.yaml's workloads, service, policy"
else fail "local-run recipe (shared mode): /config_dump shows the YAML" "$out
$(tail -n 10 "$T/zt-recipe.log")"; fi
check "local-run recipe, shared mode: /config_dump decodes as istioctl's structs" \
  "$ZT_PY" "$ZT_ROOT/tests/lib/istioctl_dump_check.py" <"$T/recipe-dump.json"
code=$(nsx_exec c curl -s --max-time 2 -o "$T/recipe-ready.txt" -w '%{http_code}' http://127.0.0.1:15021/healthz/ready)
body=$(cat "$T/recipe-ready.txt" 2>/dev/null)
[[ $code == 500 && $body == "not ready, pending: workload proxy manager"* ]] \
  && pass "local-run recipe, shared mode: readiness 500 pending only the workload proxy manager, as upstream without a node agent" \
  || fail "local-run recipe, shared mode: readiness as upstream" "http $code body '$body'"
code=$(nsx_exec c curl -s --max-time 2 -o "$T/recipe-metrics.txt" -w '%{http_code}' http://127.0.0.1:15020/metrics)
[[ $code == 200 ]] && grep -q '^istio_build{' "$T/recipe-metrics.txt" \
  && pass "local-run recipe, shared mode: stats on 15020 serve istio_build" \
  || fail "local-run recipe, shared mode: stats served" "http $code"
kill -0 "$recipe_pid" 2>/dev/null && grep -aq 'zds: connect to /var/run/ztunnel/ztunnel.sock failed' "$T/zt-recipe.log" \
  && pass "local-run recipe, shared mode: keeps running and retries the node agent socket" \
  || fail "local-run recipe, shared mode: keeps running, retrying ZDS" "$(tail -n 10 "$T/zt-recipe.log")"
nsx_stop "$recipe_pid" 15 || fail "local-run recipe (shared mode) exits 0 on SIGTERM" "$(tail -n 5 "$T/zt-recipe.log")"

# ---- 7d. ProxyConfig as upstream's chart delivers it: the mesh file's defaultConfig ---------------
# (./etc/istio/config/mesh under the working directory) with PROXY_CONFIG over it, proxy
# metadata DNS_PROXY_ADDR moving the DNS proxy, PREFERED_SERVICE_NAMESPACE choosing between two
# services that share a hostname. Run twice with the preference flipped, so a pass cannot come
# from snapshot order.
mkdir -p "$T/meshroot/etc/istio/config"
cat >"$T/meshroot/etc/istio/config/mesh" <<'YAML'
defaultConfig:
  proxyAdminPort: 15100
  statsPort: 15120
  concurrency: 1
  drainDuration: 45s
  proxyMetadata:
    DNS_PROXY_ADDR: "127.0.0.1:15054"
    DNS_CAPTURE: "false"
YAML
{ sed -n '/^workloads:/,/^services:/p' "$ZT_ROOT/examples/localhost.yaml" | sed '$d'
  cat <<'YAML'
services:
- name: shared
  namespace: alpha
  hostname: shared.example.com
  vips: ["/10.99.77.1"]
  ports: {80: 8080}
- name: shared
  namespace: beta
  hostname: shared.example.com
  vips: ["/10.99.77.2"]
  ports: {80: 8080}
YAML
} >"$T/dns-pref.yaml"
for pref in beta alpha; do
  want=$([[ $pref == alpha ]] && echo 10.99.77.1 || echo 10.99.77.2)
  nsx_bg_env c "$T/zt-pc-$pref.log" FAKE_CA=true XDS_ADDRESS= LOCAL_XDS_PATH="$T/dns-pref.yaml" \
    PROXY_MODE=dedicated PROXY_WORKLOAD_INFO=default/local/default PREFERED_SERVICE_NAMESPACE=$pref \
    PROXY_CONFIG='{"proxyMetadata": {"DNS_CAPTURE": "true"}}' -- env -C "$T/meshroot" "$ZT_BIN"
  pc_pid=$NSX_LAST_PID
  if out=$(zt_wait_ready c 20); then
    cfg=$(nsx_exec c curl -s --max-time 3 http://127.0.0.1:15100/config_dump)
    "$ZT_PY" -c 'import json,sys; c=json.load(sys.stdin)["config"]; assert c["numWorkerThreads"]==1 and c["statsAddr"].endswith(":15120") and c["dnsProxyAddr"]=="127.0.0.1:15054", c' <<<"$cfg" 2>"$T/pc-check.err" \
      && nsx_exec c curl -sf --max-time 3 -o /dev/null http://127.0.0.1:15120/metrics \
      && pass "ProxyConfig (mesh file + PROXY_CONFIG): admin on 15100, stats on 15120, 1 worker, DNS on 127.0.0.1:15054" \
      || fail "ProxyConfig from the mesh file moves admin/stats/DNS and sets concurrency" "$(cat "$T/pc-check.err") $(head -c 300 <<<"$cfg")"
    out=$(nsx_exec c "$ZT_PY" "$ZT_ROOT/tests/50-node-e2e/nodetool.py" dns 127.0.0.1 15054 shared.example.com 2>&1)
    [[ $out == *"answers=$want"* ]] \
      && pass "PREFERED_SERVICE_NAMESPACE=$pref: shared.example.com -> $want (DNS proxy at the ProxyConfig address)" \
      || fail "PREFERED_SERVICE_NAMESPACE=$pref resolves shared.example.com to $want" "$out"
    if [[ $pref == beta ]]; then
      # /debug/pprof/profile as operators use it on upstream: a CPU profile a pprof tool reads.
      # Work to sample while it runs (an idle ztunnel gives an empty profile): /config_dump renders.
      nsx_exec c curl -s --max-time 10 -o "$T/cpu.prof" -w '%{http_code}' 'http://127.0.0.1:15100/debug/pprof/profile?seconds=2' >"$T/cpu.code" &
      prof_pid=$!
      nsx_exec c curl -s --max-time 3 -o /dev/null 'http://127.0.0.1:15100/config_dump?i=[1-3000]'
      wait "$prof_pid"
      code=$(cat "$T/cpu.code")
      if grep -qa __asan_init "$ZT_BIN"; then  # a sanitizer build (clang links the runtime statically)
        [[ $code == 501 ]] && pass "pprof: sanitizer build answers 501 for a CPU profile" || fail "pprof: 501 in a sanitizer build" "http $code"
      else
        out=$(google-pprof --text "$ZT_BIN" "$T/cpu.prof" 2>&1 | grep -m1 '^Total:')
        [[ $code == 200 && $out == Total:* ]] && pass "pprof: /debug/pprof/profile?seconds=2 read by google-pprof ($out)" \
          || fail "pprof: a CPU profile google-pprof reads" "http $code: $out"
      fi
    fi
  else
    fail "ztunnel with a mesh config file and PROXY_CONFIG ready" "$out
$(tail -n 10 "$T/zt-pc-$pref.log")"
  fi
  nsx_stop "$pc_pid" 15 || fail "ProxyConfig ztunnel exits 0 on SIGTERM" "$(tail -n 5 "$T/zt-pc-$pref.log")"
done

# ---- 7e. CRL_PATH: B refuses A once a CRL from A's issuer revokes A's leaf; an update lifts it --
crl_tool() {  # crl_tool OUT [LEAF_PEM]: a CRL signed by the mesh CA, revoking LEAF_PEM's serial if given
  "$ZT_PY" - "$CA" "$@" <<'PY'
import datetime, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
ca_dir, out = sys.argv[1], sys.argv[2]
ca = x509.load_pem_x509_certificate(open(ca_dir + "/ca-cert.pem", "rb").read())
key = serialization.load_pem_private_key(open(ca_dir + "/ca-key.pem", "rb").read(), None)
now = datetime.datetime.now(datetime.timezone.utc)
b = x509.CertificateRevocationListBuilder().issuer_name(ca.subject).last_update(now).next_update(now + datetime.timedelta(days=1))
if len(sys.argv) > 3:
    leaf = x509.load_pem_x509_certificate(open(sys.argv[3], "rb").read())
    b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(leaf.serial_number).revocation_date(now).build())
open(out, "wb").write(b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
PY
}
nsx_exec a curl -s --max-time 3 http://127.0.0.1:15000/config_dump | "$ZT_PY" -c '
import base64, json, sys
d = json.load(sys.stdin)
c = next(c for c in d["certificates"] if c["identity"].endswith("/sa/sa-a"))
sys.stdout.write(base64.b64decode(c["certChain"][0]["pem"]).decode())' >"$T/leaf-a.pem" 2>"$T/leaf-a.err"
if [[ -s $T/leaf-a.pem ]] && crl_tool "$T/crl.pem" "$T/leaf-a.pem" 2>"$T/crl.err"; then
  nsx_stop "${ZT_PID_b:?}" 15 || true
  mv "$T/zt-b.log" "$T/zt-b-deny.log"
  zt_start b default/pod-b/sa-b "$T/config-allow.yaml" "$CA" "$T/zt-b.log" CRL_PATH="$T/crl.pem"
  if out=$(zt_wait_ready b 20); then pass "ztunnel B restarted with CRL_PATH (1 CRL revoking A's leaf)"
  else fail "ztunnel B restarted with CRL_PATH" "$out
$(tail -n 20 "$T/zt-b.log")"; fi
  code=$(nsx_exec a "${CURL[@]}" -o /dev/null -w '%{http_code}' 'http://10.99.0.2:8080/?q=ZTE2E-CRL-1' 2>/dev/null)
  [[ $code != 200 ]] && ! grep -aq 'ZTE2E-CRL-1' "$T/app-b.log" \
    && pass "CRL: A (revoked) cannot reach B (http '$code'); the app never saw the request" \
    || fail "CRL: A (revoked) is refused by B" "http $code"
  check "CRL: B counts istio_crl_policy_rejections_total{reporter=destination}" \
    zt_expect_metric b istio_crl_policy_rejections_total reporter=destination
  grep -aq 'revoked (CRL_PATH)' "$T/zt-b.log" && pass "CRL: B's log names the revocation" \
    || fail "CRL: B's log names the revocation" "$(tail -n 10 "$T/zt-b.log")"
  # The ConfigMap is updated with a CRL that no longer lists A: B re-reads it and admits A.
  crl_tool "$T/crl-next.pem" && mv "$T/crl-next.pem" "$T/crl.pem"
  ok=0
  for i in $(seq 1 20); do
    code=$(nsx_exec a "${CURL[@]}" --max-time 3 -o /dev/null -w '%{http_code}' "http://10.99.0.2:8080/?q=ZTE2E-CRL-OK-$i" 2>/dev/null) \
      && [[ $code == 200 ]] && { ok=1; break; }
    sleep 0.5
  done
  [[ $ok == 1 ]] && pass "CRL reload: an updated CRL without A's serial re-admits A" \
    || fail "CRL reload re-admits A" "$(grep -a CRL "$T/zt-b.log" | tail -n 5)"
  # A connection that is up when the CRL starts revoking A again is torn down (as upstream):
  # A holds a half-sent request to B's app; once B's end is established, the CRL revoking A's
  # leaf comes back and B must close the tunnel, count it and attribute it CERT_REVOKED.
  crl_count() { zt_metrics b | awk '/^istio_crl_policy_rejections_total\{reporter="destination"\}/ {n += $2} END {print n + 0}'; }
  before=$(crl_count)
  nsx_exec a "$ZT_PY" - >"$T/crl-held.out" 2>&1 <<'PY' &
import socket, time
s = socket.create_connection(("10.99.0.2", 8080), timeout=5)
s.sendall(b"GET /?q=ZTE2E-CRL-HELD HTTP/1.1\r\nHost: b\r\n")  # no blank line: the app keeps waiting
s.settimeout(30)
t0 = time.monotonic()
try:
    data = s.recv(1024)
    print("closed after %.1fs (%d bytes)" % (time.monotonic() - t0, len(data)))
except ConnectionResetError:
    print("closed after %.1fs (reset)" % (time.monotonic() - t0))
except socket.timeout:
    print("still open after 30s")
PY
  held_pid=$!
  up=0
  for _ in $(seq 1 50); do
    nsx_exec b ss -Htn state established '( sport = :8080 )' | grep -q '10.99.0.1:' && { up=1; break; }
    sleep 0.1
  done
  if [[ $up == 1 ]]; then
    pass "CRL: A's held connection reaches B's app (established from 10.99.0.1)"
    crl_tool "$T/crl-next.pem" "$T/leaf-a.pem" && mv "$T/crl-next.pem" "$T/crl.pem"
    wait "$held_pid"
    out=$(cat "$T/crl-held.out")
    [[ $out == closed* ]] && pass "CRL update revoking A tears down A's live connection through B ($out)" \
      || fail "CRL update tears down A's live connection" "$out $(grep -a CRL "$T/zt-b.log" | tail -n 5)"
    after=$(crl_count)
    [[ $after -gt $before ]] && pass "CRL teardown counted: istio_crl_policy_rejections_total{reporter=destination} $before -> $after" \
      || fail "CRL teardown counted in istio_crl_policy_rejections_total" "$before -> $after"
    check "CRL teardown attributed: istio_tcp_connections_closed_total{reporter=destination,response_flags=CERT_REVOKED}" \
      zt_expect_metric b istio_tcp_connections_closed_total reporter=destination response_flags=CERT_REVOKED
    grep -aq "closing inbound HBONE connection from $ID_A: its certificate is now revoked" "$T/zt-b.log" \
      && pass "CRL teardown: B's log names the revoked peer" \
      || fail "CRL teardown: B's log names the revoked peer" "$(tail -n 10 "$T/zt-b.log")"
  else
    fail "CRL: A's held connection reaches B's app" "$(cat "$T/crl-held.out") $(nsx_exec b ss -tn)"
    kill "$held_pid" 2>/dev/null
  fi
  # The outbound side, as upstream: A (restarted with a CRL_PATH that revokes nothing yet) holds
  # a connection to B; the CRL starts revoking B's leaf; A closes its pooled connection to B and
  # records the tunnel CERT_REVOKED (reporter=source). B's CRL first stops revoking A.
  crl_tool "$T/crl-next.pem" && mv "$T/crl-next.pem" "$T/crl.pem"
  nsx_exec b curl -s --max-time 3 http://127.0.0.1:15000/config_dump | "$ZT_PY" -c '
import base64, json, sys
d = json.load(sys.stdin)
c = next(c for c in d["certificates"] if c["identity"].endswith("/sa/sa-b"))
sys.stdout.write(base64.b64decode(c["certChain"][0]["pem"]).decode())' >"$T/leaf-b.pem" 2>"$T/leaf-b.err"
  crl_tool "$T/crl-a.pem" 2>"$T/crl-a.err"
  nsx_stop "${ZT_PID_a:?}" 15 || true
  mv "$T/zt-a.log" "$T/zt-a-before-crl.log"
  zt_start a default/pod-a/sa-a "$T/config-allow.yaml" "$CA" "$T/zt-a.log" CRL_PATH="$T/crl-a.pem"
  ok=0
  if [[ -s $T/leaf-b.pem ]] && zt_wait_ready a 20 >/dev/null; then
    for i in $(seq 1 20); do
      code=$(nsx_exec a "${CURL[@]}" --max-time 3 -o /dev/null -w '%{http_code}' "http://10.99.0.2:8080/?q=ZTE2E-CRL-OUT-$i" 2>/dev/null) \
        && [[ $code == 200 ]] && { ok=1; break; }
      sleep 0.5
    done
  fi
  if [[ $ok == 1 ]]; then
    pass "CRL outbound: A restarted with CRL_PATH reaches B again (B's CRL no longer lists A)"
    nsx_exec a "$ZT_PY" - >"$T/crl-out-held.out" 2>&1 <<'PY' &
import socket, time
s = socket.create_connection(("10.99.0.2", 8080), timeout=5)
s.sendall(b"GET /?q=ZTE2E-CRL-OUT-HELD HTTP/1.1\r\nHost: b\r\n")  # no blank line: the app keeps waiting
s.settimeout(30)
try:
    data = s.recv(1024)
    print("closed (%d bytes)" % len(data))
except ConnectionResetError:
    print("closed (reset)")
except socket.timeout:
    print("still open after 30s")
PY
    held_pid=$!
    up=0
    for _ in $(seq 1 50); do
      nsx_exec b ss -Htn state established '( sport = :8080 )' | grep -q '10.99.0.1:' && { up=1; break; }
      sleep 0.1
    done
    crl_tool "$T/crl-a-next.pem" "$T/leaf-b.pem" && mv "$T/crl-a-next.pem" "$T/crl-a.pem"
    wait "$held_pid"
    out=$(cat "$T/crl-out-held.out")
    [[ $up == 1 && $out == closed* ]] && pass "CRL outbound: revoking B's leaf in A's CRL tears down A's held connection ($out)" \
      || fail "CRL outbound: A's held connection torn down" "up=$up $out $(grep -a CRL "$T/zt-a.log" | tail -n 5)"
    check "CRL outbound: A counts istio_crl_policy_rejections_total{reporter=source}" \
      zt_expect_metric a istio_crl_policy_rejections_total reporter=source
    check "CRL outbound attributed: istio_tcp_connections_closed_total{reporter=source,response_flags=CERT_REVOKED}" \
      zt_expect_metric a istio_tcp_connections_closed_total reporter=source response_flags=CERT_REVOKED
    check "CRL outbound: A's access log records the tunnel's end as the revocation" \
      zt_expect_access "$T/zt-a.log" 'direction="?outbound' 'error="?server certificate revoked \(CRL_PATH\)'
  else
    fail "CRL outbound: A restarted with CRL_PATH reaches B" "$(cat "$T/leaf-b.err" "$T/crl-a.err" 2>/dev/null)
$(tail -n 10 "$T/zt-a.log")"
  fi
else
  fail "CRL: A's leaf from /config_dump and a CRL signed by the mesh CA" "$(cat "$T/leaf-a.err" "$T/crl.err" 2>/dev/null)"
fi

# Command line as upstream's.
v=$(ISTIO_META_ISTIO_VERSION=1.99.0 "$ZT_BIN" version)
[[ $v =~ ^version\.BuildInfo\{Version:\"[^\"]+\",\ GitRevision:\"[0-9a-f]{40}\".*IstioVersion:\"1\.99\.0\"\}$ ]] \
  && pass "ztunnel version: $v" || fail "ztunnel version prints upstream's BuildInfo line" "$v"
h=$("$ZT_BIN" help) && [[ $h == *usage:* ]] && pass "ztunnel help prints the usage" || fail "ztunnel help" "$h"
"$ZT_BIN" bogus >/dev/null 2>&1; rc=$?
[[ $rc == 2 ]] && pass "ztunnel with an unknown command exits 2" || fail "ztunnel bogus exits 2" "exit $rc"

# ---- 8. shutdown ---------------------------------------------------------------------------------
for p in a b; do
  pidvar="ZT_PID_$p"
  t0=$(date +%s)
  if nsx_stop "${!pidvar}" 15; then pass "ztunnel $p exits 0 on SIGTERM"
  else rc=$?; fail "ztunnel $p exits 0 on SIGTERM" "exit status $rc after $(( $(date +%s) - t0 ))s
$(tail -n 10 "$T/zt-$p.log")"; fi
done
for p in a b; do
  nsx_exec "$p" "$ZT_ROOT/scripts/inpod-iptables.sh" remove >/dev/null 2>&1 \
    && ! nsx_exec "$p" iptables-save | contains ISTIO \
    || fail "in-pod rules removed from pod $p"
done

# shellcheck disable=SC2034  # read by nsx_cleanup
[[ $NSX_FAILED -gt 0 ]] && NSX_KEEP_TMP=1 && echo "logs and captures kept in $T" >&2
summary
