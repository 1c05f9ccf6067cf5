#!/usr/bin/env bash
# tests/45-cni-plugin/suite.sh BIN_DIR — ambient-cni as a chained CNI plugin under a real,
# unmodified CNI runtime: podman 4 with its CNI backend and runc (Debian packages), the stock
# bridge + host-local plugins first in the chain, our plugin last. Root needed; fails, never
# skips. Run it under the shared lock: flock /tmp/ambient-netns.lock ctest -R 45-cni-plugin.
#
# Everything is private to the test: podman runs inside a network namespace of its own
# (nsenter), with its own containers.conf, image store, run root and CNI config/bin dirs under
# the temp dir; the image is a busybox rootfs imported from a tarball (no registry).
#
#   1. the agent installs the plugin (binary + conflist entry) at start;
#   2. ADD of a pod in an ambient namespace: rules in the pod's netns (iptables and the
#      netlink-programmed ip rule/route), the pod held by the agent and handed to ztunnel,
#      ztunnel's listeners in the pod, and the pod's traffic captured (ztunnel's metrics);
#   3. a non-ambient namespace and an opted-out pod are left alone;
#   4. CHECK through Debian's libcni (podman never sends CHECK): ok, then drift after the rules
#      are tampered with; DEL twice (idempotent);
#   5. DEL by podman (container removed) makes the agent drop the pod;
#   6. a failure fails the ADD: no ztunnel connected, then no agent;
#   7. STATUS / VERSION by exec per spec; the agent's exit uninstalls the plugin.
# Last line "N passed, N failed"; exit 1 on any failure.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ZT_ROOT=$(cd "$HERE/../.." && pwd)
BIN_DIR=$(cd "${1:-$ZT_ROOT/build/bin}" 2>/dev/null && pwd || echo "${1:-$ZT_ROOT/build/bin}")
CNI="$BIN_DIR/ambient-cni"
ZT_BIN="$BIN_DIR/ztunnel"
PY="${ZT_PY:-python3}"

# shellcheck source=../lib/netns.sh
source "$ZT_ROOT/tests/lib/netns.sh"

require_root
missing=""
for t in podman runc nsenter go "$CNI" "$ZT_BIN" /usr/lib/cni/bridge /usr/lib/cni/host-local /bin/busybox; do
  command -v "$t" >/dev/null 2>&1 || [[ -x $t ]] || missing+=" $t"
done
if [[ -n $missing ]]; then
  fail "tools present (scripts/install-deps.sh installs them)" "missing:$missing"
  summary
  exit 1
fi

nsx_init cni-plugin
T="$NSX_TMP"
HOST=$(nsx_ns host)
nsx_add_netns "$HOST"
HOSTNS=/run/netns/$HOST
NET=zt-cniplug-net
SUBNET=10.89.0

# ---- environment: CA, mesh, metadata, CNI dirs, podman config, image ------------------------
"$ZT_ROOT/scripts/make-cacerts.sh" "$T/ca" cluster.local >"$T/cacerts.log" 2>&1
cat >"$T/mesh.yaml" <<YAML
workloads:
- uid: uid-amb-1
  name: amb-1
  namespace: demo
  serviceAccount: sleep
  workloadIps: ["$SUBNET.10"]
  protocol: HBONE
  node: node-1
- uid: uid-drv-1
  name: drv-1
  namespace: demo
  serviceAccount: default
  workloadIps: ["$SUBNET.12"]
  protocol: HBONE
  node: node-1
services: []
YAML
cat >"$T/metadata.json" <<'JSON'
{"namespaces": {"demo": {"istio.io/dataplane-mode": "ambient"}, "plain": {}},
 "pods": {"demo/amb-1": {"serviceAccountName": "sleep"},
          "demo/opt-out": {"labels": {"istio.io/dataplane-mode": "none"}}}}
JSON
mkdir -p "$T/cni/bin" "$T/cni/net.d" "$T/ipam" "$T/pm" "$T/cache" "$T/rootfs/bin"
for p in bridge host-local loopback; do ln -s "/usr/lib/cni/$p" "$T/cni/bin/$p"; done
cat >"$T/cni/net.d/10-$NET.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "$NET",
 "plugins": [{"type": "bridge", "bridge": "cni-amb0", "isGateway": true, "ipMasq": false,
              "capabilities": {"ips": true},
              "ipam": {"type": "host-local", "dataDir": "$T/ipam",
                       "ranges": [[{"subnet": "$SUBNET.0/24", "rangeStart": "$SUBNET.10", "rangeEnd": "$SUBNET.50",
                                    "gateway": "$SUBNET.1"}]]}}]}
JSON
cat >"$T/containers.conf" <<TOML
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$T/pm/events.log"
[network]
network_backend = "cni"
network_config_dir = "$T/cni/net.d"
cni_plugin_dirs = ["$T/cni/bin"]
TOML
pm() {
  CONTAINERS_CONF="$T/containers.conf" nsenter --net="$HOSTNS" podman --root "$T/pm/root" \
    --runroot "$T/pm/run" --tmpdir "$T/pm/tmp" --storage-driver vfs "$@"
}
# podman's containers are removed even when an assertion aborts midway.
# podman's libcni keeps a result cache in /var/lib/cni/results named after the network.
pm_cleanup() {
  pm rm -f -a -t 0 >/dev/null 2>&1
  rm -f /var/lib/cni/results/"$NET"-*
}
trap 'rc=$?; pm_cleanup; (exit $rc); nsx_cleanup' EXIT

cp /bin/busybox "$T/rootfs/bin/busybox"
tar -C "$T/rootfs" -cf "$T/bb.tar" .
if ! out=$(pm import "$T/bb.tar" localhost/bb:test 2>&1); then
  fail "podman imported the busybox image" "$out"
  summary
  exit 1
fi

# ---- agent and ztunnel ----------------------------------------------------------------------
SOCK="$T/zds.sock"
agent_start() {
  nsx_bg host "$T/agent.log" "$CNI" serve --socket "$SOCK" --state-dir "$T/state" \
    --metadata "$T/metadata.json" --cni-bin-dir "$T/cni/bin" --cni-conf-dir "$T/cni/net.d" \
    --cni-exclude-namespaces kube-system
  AGENT_PID=$NSX_LAST_PID
  for _ in $(seq 1 50); do [[ -S $SOCK.ctl ]] && return 0; sleep 0.1; done
  return 1
}
zt_start() {
  nsx_bg_env host "$T/zt.log" PROXY_MODE=shared INPOD_UDS="$SOCK" LOCAL_XDS_PATH="$T/mesh.yaml" \
    LOCAL_CA_DIR="$T/ca" XDS_ADDRESS= TRUST_DOMAIN=cluster.local NODE_NAME=node-1 \
    ZTUNNEL_WORKER_THREADS=1 CONNECTION_TERMINATION_DEADLINE=2s ADMIN_ADDR=127.0.0.1:15000 \
    STATS_ADDR=127.0.0.1:15020 READINESS_ADDR=127.0.0.1:15021 -- "$ZT_BIN"
  ZT_PID=$NSX_LAST_PID
}
agent_list() { "$CNI" list --json --socket "$SOCK"; }
ztunnels_connected() {  # ztunnels_connected N
  for _ in $(seq 1 50); do
    [[ $(agent_list 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["ztunnels"])' 2>/dev/null) == "$1" ]] && return 0
    sleep 0.2
  done
  agent_list
  return 1
}
held() { agent_list | "$PY" -c 'import json,sys; sys.exit(0 if any(p["uid"]==sys.argv[1] for p in json.load(sys.stdin)["pods"]) else 1)' "$1"; }
zt_metrics() { nsx_exec host curl -s --max-time 3 http://127.0.0.1:15020/metrics; }
sandbox() { pm inspect -f '{{.NetworkSettings.SandboxKey}}' "$1"; }
rules_in() { nsenter --net="$1" iptables-save 2>/dev/null; }

if agent_start; then pass "agent started (ZDS + control socket)"; else
  fail "agent started" "$(cat "$T/agent.log")"; summary; exit 1; fi
zt_start
check "ztunnel connected to the agent over ZDS" ztunnels_connected 1

# 1. install
check "install: plugin binary copied to the CNI bin dir" test -x "$T/cni/bin/ambient-cni"
check "install: the copy is ambient-cni-plugin (the self-contained plugin build)" \
  bash -c "'$T/cni/bin/ambient-cni' --version | grep -c '^ambient-cni-plugin '"
check "install: ambient-cni chained last into the conflist, bridge kept first" "$PY" -c '
import json, sys
c = json.load(open(sys.argv[1]))
t = [p["type"] for p in c["plugins"]]
assert t == ["bridge", "ambient-cni"], t
assert c["plugins"][1]["agentSocket"] == sys.argv[2], c["plugins"][1]
assert c["plugins"][1]["excludeNamespaces"] == ["kube-system"]' "$T/cni/net.d/10-$NET.conflist" "$SOCK.ctl"

# An HTTP server on the bridge's gateway address (in the test's host netns) as the destination.
nsx_bg host "$T/http.log" "$PY" -m http.server --bind "$SUBNET.1" 18080 --directory "$T/rootfs"
HTTP_PID=$NSX_LAST_PID

# 2. ADD of an ambient pod
if out=$(CNI_ARGS="K8S_POD_NAMESPACE=demo;K8S_POD_UID=uid-amb-1" pm run -d --name amb-1 --network "$NET" \
    --ip "$SUBNET.10" localhost/bb:test /bin/busybox sleep 600 2>&1); then
  pass "ADD: podman started a pod in the ambient namespace demo"
else
  fail "ADD: podman started a pod in the ambient namespace demo" "$out
$(tail -n 20 "$T/agent.log")"
fi
SB1=$(sandbox amb-1 2>/dev/null)
check "ADD: in-pod iptables rules installed (ISTIO_PRERT/ISTIO_OUTPUT, REDIRECT 15001)" \
  bash -c "iptables-save -V >/dev/null; nsenter --net='$SB1' iptables-save | grep -c 'ISTIO_OUTPUT.*--to-ports 15001'"
check "ADD: ip rule fwmark 0x111/0xfff lookup 100 (netlink)" \
  bash -c "nsenter --net='$SB1' ip rule show | grep -c 'fwmark 0x111/0xfff lookup 100'"
check "ADD: local default route in table 100 (netlink)" \
  bash -c "nsenter --net='$SB1' ip route show table 100 | grep -c '^local default dev lo'"
check "ADD: the agent holds the pod (uid from K8S_POD_UID)" held uid-amb-1
wait_listen() { for _ in $(seq 1 50); do nsenter --net="$SB1" ss -Hltn 2>/dev/null | contains ':15001 ' && return 0; sleep 0.2; done; return 1; }
check "ADD: ztunnel listens on 15001 inside the pod (AddWorkload over ZDS)" wait_listen
out=$(pm exec amb-1 /bin/busybox wget -q -O - "http://$SUBNET.1:18080/bin/" 2>&1)
if [[ $out == *busybox* ]]; then pass "ambient pod reaches the server"; else fail "ambient pod reaches the server" "$out"; fi
check "capture: ztunnel's metrics count the pod's outbound connection" \
  expect_metric zt_metrics host istio_tcp_connections_opened_total reporter=source \
  source_principal=spiffe://cluster.local/ns/demo/sa/sleep

# 3. left alone: other namespace, opted-out pod
if out=$(CNI_ARGS="K8S_POD_NAMESPACE=plain;K8S_POD_UID=uid-plain-1" pm run -d --name plain-1 --network "$NET" \
    --ip "$SUBNET.11" localhost/bb:test /bin/busybox sleep 600 2>&1); then
  pass "non-ambient namespace: pod started"
else
  fail "non-ambient namespace: pod started" "$out"
fi
SB2=$(sandbox plain-1 2>/dev/null)
check_not "non-ambient namespace: no ISTIO rules in the pod" bash -c "nsenter --net='$SB2' iptables-save | grep -c ISTIO"
check_not "non-ambient namespace: no ip rule for table 100" bash -c "nsenter --net='$SB2' ip rule show | grep -c 'lookup 100'"
check_not "non-ambient namespace: not held by the agent" held uid-plain-1
if out=$(CNI_ARGS="K8S_POD_NAMESPACE=demo;K8S_POD_UID=uid-opt" pm run -d --name opt-out --network "$NET" --ip "$SUBNET.13" \
    localhost/bb:test /bin/busybox sleep 600 2>&1); then
  SB3=$(sandbox opt-out 2>/dev/null)
  check_not "opted-out pod (istio.io/dataplane-mode=none) in an ambient namespace: no rules" \
    bash -c "nsenter --net='$SB3' iptables-save | grep -c ISTIO"
else
  fail "opted-out pod started" "$out"
fi

# 4. CHECK (and ADD/DEL) through libcni
DRV="$T/cnidriver"
if out=$(cd "$HERE" && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$T/gocache" go build -o "$DRV" cnidriver.go 2>&1); then
  pass "libcni driver built (Debian golang-github-appc-cni-dev)"
else
  fail "libcni driver built" "$out"
fi
DNS=$(nsx_ns drv)
nsx_add_netns "$DNS"
drv() {  # drv add|check|del
  nsenter --net="$HOSTNS" "$DRV" "$1" "$T/cni/net.d/10-$NET.conflist" "/run/netns/$DNS" drv-1 eth0 \
    "IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=drv-1;K8S_POD_UID=uid-drv-1;IP=$SUBNET.12" "$T/cni/bin" "$T/cache"
}
check "libcni ADD over bridge + host-local + ambient-cni" drv add
check "libcni ADD: rules in the netns" bash -c "ip netns exec '$DNS' iptables-save | grep -c 'ISTIO_PRERT.*--to-ports 15006'"
check "libcni CHECK: ok while the rules are intact" drv check
ip netns exec "$DNS" iptables -t nat -F ISTIO_OUTPUT
out=$(drv check 2>&1)
if [[ $? != 0 && $out == *"drifted"*"nat ISTIO_OUTPUT"* ]]; then pass "libcni CHECK: reports drift after ISTIO_OUTPUT was flushed"
else fail "libcni CHECK: reports drift after ISTIO_OUTPUT was flushed" "$out"; fi
ip netns exec "$DNS" ip rule del pref 32764 2>/dev/null
out=$(drv check 2>&1)
if [[ $? != 0 && $out == *"fwmark 0x111 rule"* ]]; then pass "libcni CHECK: reports the missing ip rule"
else fail "libcni CHECK: reports the missing ip rule" "$out"; fi
check "libcni DEL" drv del
check_not "libcni DEL: the agent dropped the pod" held uid-drv-1
check_not "libcni DEL: rules gone from the netns" bash -c "ip netns exec '$DNS' iptables-save | grep -c ISTIO"
check "libcni DEL again: idempotent" drv del

# 5. DEL by podman
check "podman rm: container removed" pm rm -f -t 0 amb-1
check_not "DEL: the agent dropped the ambient pod" held uid-amb-1

# 6. failures fail the ADD
nsx_stop "$ZT_PID" 5 >/dev/null 2>&1
check "ztunnel stopped: the agent sees no ztunnel" ztunnels_connected 0
out=$(CNI_ARGS="K8S_POD_NAMESPACE=demo;K8S_POD_UID=uid-amb-2" pm run -d --name amb-2 --network "$NET" \
  localhost/bb:test /bin/busybox sleep 600 2>&1)
rc=$?
if [[ $rc != 0 && $out == *"no ztunnel connection"* ]]; then pass "ADD fails (pod not started) without a ztunnel: 'no ztunnel connection'"
else fail "ADD fails without a ztunnel" "rc=$rc $out"; fi
check_not "failed ADD: nothing held" held uid-amb-2
pm rm -f -t 0 amb-2 >/dev/null 2>&1

# 7. STATUS / VERSION by exec, then the agent's exit uninstalls
plugin_conf='{"cniVersion":"1.0.0","name":"'"$NET"'","type":"ambient-cni","agentSocket":"'"$SOCK.ctl"'"}'
check "STATUS: ok while the agent runs" bash -c "CNI_COMMAND=STATUS '$T/cni/bin/ambient-cni' <<<'$plugin_conf'"
check "VERSION: 1.0.0 supported" bash -c "CNI_COMMAND=VERSION '$T/cni/bin/ambient-cni' <<<'{}' | grep -c '\"1.0.0\"'"
cp "$T/cni/bin/ambient-cni" "$T/plugin-copy"
nsx_stop "$AGENT_PID" 5 >/dev/null 2>&1
out=$(CNI_COMMAND=STATUS "$T/plugin-copy" <<<"$plugin_conf" 2>/dev/null)
if [[ $out == *'"code":50'* ]]; then pass "STATUS: code 50 without the agent"; else fail "STATUS: code 50 without the agent" "$out"; fi
out=$(CNI_COMMAND=ADD CNI_CONTAINERID=x CNI_IFNAME=eth0 CNI_NETNS="/run/netns/$DNS" \
  CNI_ARGS="K8S_POD_NAMESPACE=demo;K8S_POD_NAME=y" "$T/plugin-copy" <<<"$plugin_conf" 2>/dev/null)
if [[ $out == *'"code":11'* ]]; then pass "ADD fails closed without the agent (code 11)"; else fail "ADD fails closed without the agent" "$out"; fi
check "uninstall: the conflist no longer names ambient-cni" bash -c "! grep -q ambient-cni '$T/cni/net.d/10-$NET.conflist'"
check_not "uninstall: the plugin binary is gone" test -e "$T/cni/bin/ambient-cni"

nsx_stop "$HTTP_PID" 2 >/dev/null 2>&1
[[ $NSX_FAILED == 0 ]] || { echo "--- agent log"; tail -n 30 "$T/agent.log"; echo "--- ztunnel log"; tail -n 30 "$T/zt.log"; }
summary
