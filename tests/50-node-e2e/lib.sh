# shellcheck shell=bash
# tests/50-node-e2e/lib.sh — node-mode (PROXY_MODE=shared) helpers on top of tests/lib/netns.sh,
# shared by tests/50-node-e2e/suite.sh and scripts/demo-node.sh.
#
# Role: build "nodes" (a netns with a bridge, routing for its pods) linked to each other, pods
# behind veth links on a node's bridge, run ambient-cni and a node ztunnel inside a node netns,
# and query them (readiness, config_dump, metrics, the agent's pod list).
#
# Topology (addresses only inside namespaces the caller created):
#   node N (netns <prefix>nN): br0 = 10.99.N.254/24 (the pods' gateway), "uplink" = 10.99.100.N/24
#   towards the other node, ip_forward on, a route to every other node's pod subnet via its
#   link address. Pod P on node N: netns <prefix>P, eth0 = IP/24, default route via 10.99.N.254.
#
# Needs: netns.sh sourced, NSX_TMP set (nsx_init), ZT_BIN and CNI_BIN set.
# Invariants: every wait is bounded; everything is created through nsx_* so the EXIT trap of
# netns.sh removes it; nothing outside the suite's namespaces and $NSX_TMP is touched.

ZT_TRUST_DOMAIN="${ZT_TRUST_DOMAIN:-cluster.local}"
ZT_PY="${ZT_PY:-/usr/bin/python3}"
[[ -x $ZT_PY ]] || ZT_PY=python3
# shellcheck disable=SC2034  # used by the scripts sourcing this file
NODETOOL="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/nodetool.py"

zn_spiffe() { echo "spiffe://${ZT_TRUST_DOMAIN}/ns/$1/sa/$2"; }   # zn_spiffe NS SA

# zn_node N — node netns "n<N>" with br0 10.99.N.254/24 and forwarding on.
zn_node() {
  local n="$1" ns; ns=$(nsx_ns "n$n")
  nsx_add_netns "$ns"
  ip -n "$ns" link add br0 type bridge
  ip -n "$ns" addr add "10.99.$n.254/24" dev br0
  ip -n "$ns" link set br0 up
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
}

# zn_link N M — veth "uplink" between nodes N and M (10.99.100.N / .M) and routes to each
# other's pod subnets. (Not named "link": that is a keyword of `ip link add`.)
zn_link() {
  local n="$1" m="$2" a b
  a=$(nsx_ns "n$n"); b=$(nsx_ns "n$m")
  ip link add uplink netns "$a" type veth peer name uplink netns "$b"
  ip -n "$a" addr add "10.99.100.$n/24" dev uplink
  ip -n "$b" addr add "10.99.100.$m/24" dev uplink
  ip -n "$a" link set uplink up
  ip -n "$b" link set uplink up
  ip -n "$a" route add "10.99.$m.0/24" via "10.99.100.$m"
  ip -n "$b" route add "10.99.$n.0/24" via "10.99.100.$n"
}

# zn_pod N NAME IP — pod netns NAME on node N: eth0 IP/24, default route via the node's bridge.
# The node side of the veth is "v-NAME" (truncated to 15 chars) — capture there to see exactly
# what the pod puts on the wire.
zn_pod() {
  local n="$1" name="$2" ip4="$3" ns node peer
  ns=$(nsx_ns "$name"); node=$(nsx_ns "n$n")
  nsx_add_netns "$ns"
  peer="v-${name}"; peer="${peer:0:15}"
  ip link add "$peer" netns "$node" type veth peer name eth0 netns "$ns"
  ip -n "$node" link set "$peer" master br0
  ip -n "$node" link set "$peer" up
  ip -n "$ns" addr add "${ip4}/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via "10.99.$n.254"
  for _ in $(seq 1 50); do
    ip -n "$ns" -br link show eth0 | contains 'UP' && break
    sleep 0.1
  done
}

# zn_netns_path NAME — the bind-mounted netns file ambient-cni opens.
zn_netns_path() { echo "/var/run/netns/$(nsx_ns "$1")"; }

# ---- node agent ------------------------------------------------------------------------------

zn_sock() { echo "$NSX_TMP/n$1/ztunnel.sock"; }   # ZDS socket of node N

# zn_cni_start N — `ambient-cni serve` in node N's netns; PID in CNI_PID_<N>. Must not run in a
# subshell (the PID variable would be lost); on failure prints why and returns 1.
zn_cni_start() {
  local n="$1"
  mkdir -p "$NSX_TMP/n$n/state"
  nsx_bg "n$n" "$NSX_TMP/cni-n$n.log" "$CNI_BIN" serve --socket "$(zn_sock "$n")" \
    --state-dir "$NSX_TMP/n$n/state" --log-level debug
  printf -v "CNI_PID_$n" '%s' "$NSX_LAST_PID"
  local _
  for _ in $(seq 1 50); do
    [[ -S $(zn_sock "$n") ]] && return 0
    sleep 0.1
  done
  echo "ambient-cni on node $n did not create $(zn_sock "$n") within 5s"
  tail -n 20 "$NSX_TMP/cni-n$n.log"
  return 1
}

zn_cni() { local n="$1"; shift; "$CNI_BIN" "$@" --socket "$(zn_sock "$n")"; }   # zn_cni N CMD ARGS...

# zn_cni_add N POD NAMESPACE SERVICE_ACCOUNT — add pod POD (uid e2e-POD) through the agent.
zn_cni_add() {
  local n="$1" pod="$2" ns="$3" sa="$4"
  "$CNI_BIN" add --socket "$(zn_sock "$n")" --netns "$(zn_netns_path "$pod")" \
    --uid "${ZN_UID_PREFIX:-e2e-}$pod" --name "$pod" --namespace "$ns" --service-account "$sa"
}

# zn_cni_ztunnels N — number of ztunnels connected to node N's agent ("" on error).
zn_cni_ztunnels() {
  zn_cni "$1" list --json 2>/dev/null | "$ZT_PY" -c 'import json,sys; print(json.load(sys.stdin).get("ztunnels", 0))' 2>/dev/null
}

# zn_wait_cni_ztunnels N COUNT [TIMEOUT_S] — until node N's agent has COUNT ztunnels connected.
zn_wait_cni_ztunnels() {
  local n="$1" want="$2" timeout="${3:-10}" got=""
  for _ in $(seq 1 $((timeout * 5))); do
    got=$(zn_cni_ztunnels "$n")
    [[ $got == "$want" ]] && return 0
    sleep 0.2
  done
  echo "node $n agent: ${got:-?} ztunnel(s) connected, wanted $want"
  return 1
}

# ---- node ztunnel ----------------------------------------------------------------------------

# zn_zt_start N TAG [PORT_OFFSET] — start a shared-mode ztunnel in node N's netns. Log
# $NSX_TMP/zt-TAG.log, PID in ZT_PID_<TAG>. PORT_OFFSET (default 0) shifts admin/stats/readiness
# (15000/15020/15021 + offset) so a replacement ztunnel can run beside the first.
zn_zt_start() {
  local n="$1" tag="$2" off="${3:-0}"
  nsx_bg_env "n$n" "$NSX_TMP/zt-$tag.log" \
    PROXY_MODE=shared \
    INPOD_UDS="$(zn_sock "$n")" \
    LOCAL_XDS_PATH="$ZN_MESH" \
    LOCAL_CA_DIR="$ZN_CA" \
    XDS_ADDRESS= \
    TRUST_DOMAIN="$ZT_TRUST_DOMAIN" \
    NODE_NAME="node-$n" \
    PACKET_MARK=1337 \
    RUST_LOG="${ZT_RUST_LOG:-info}" \
    LOG_FORMAT=plain \
    ZTUNNEL_WORKER_THREADS=1 \
    CONNECTION_TERMINATION_DEADLINE="${ZN_DEADLINE:-3s}" \
    ADMIN_ADDR="127.0.0.1:$((15000 + off))" \
    STATS_ADDR="[::]:$((15020 + off))" \
    READINESS_ADDR="[::]:$((15021 + off))" \
    -- "$ZT_BIN"
  printf -v "ZT_PID_$tag" '%s' "$NSX_LAST_PID"
  printf -v "ZT_OFF_$tag" '%s' "$off"
  printf -v "ZT_NODE_$tag" '%s' "$n"
}

_zn_port() { local v="ZT_OFF_$1"; echo $(( $2 + ${!v:-0} )); }   # _zn_port TAG BASE
_zn_node() { local v="ZT_NODE_$1"; echo "n${!v}"; }

# zn_zt_wait_ready TAG [TIMEOUT_S] — readiness answers 200 (after the agent's snapshot).
zn_zt_wait_ready() {
  local tag="$1" timeout="${2:-20}" code="" pid="ZT_PID_$1"
  for _ in $(seq 1 $((timeout * 5))); do
    code=$(nsx_exec "$(_zn_node "$tag")" curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
           "http://127.0.0.1:$(_zn_port "$tag" 15021)/healthz/ready" 2>/dev/null)
    [[ $code == 200 ]] && return 0
    nsx_alive "${!pid}" || { echo "ztunnel $tag exited"; tail -n 20 "$NSX_TMP/zt-$tag.log"; return 1; }
    sleep 0.2
  done
  echo "ztunnel $tag not ready after ${timeout}s (last status ${code:-none})"
  tail -n 20 "$NSX_TMP/zt-$tag.log"
  return 1
}

zn_config_dump() {
  nsx_exec "$(_zn_node "$1")" curl -s --max-time 3 "http://127.0.0.1:$(_zn_port "$1" 15000)/config_dump"
}

zn_metrics() {
  nsx_exec "$(_zn_node "$1")" curl -s --max-time 3 "http://127.0.0.1:$(_zn_port "$1" 15020)/metrics"
}

# zn_workload_state TAG — "uid state" lines from /config_dump's workloadState.
zn_workload_state() {
  zn_config_dump "$1" | "$ZT_PY" -c '
import json, sys
ws = json.load(sys.stdin).get("workloadState", {})
for uid, v in sorted(ws.items()):
    if not isinstance(v, dict):
        print(uid, v)
    else:
        print(uid, v.get("state", "?"), "draining" if v.get("draining") else "")' 2>/dev/null
}

# zn_dump_check TAG [CHECKER ARGS...] — TAG's /config_dump decoded as istioctl decodes it
# (tests/lib/istioctl_dump_check.py); prints the mismatches and fails on any.
zn_dump_check() {
  local tag="$1" dump; shift
  dump=$(zn_config_dump "$tag") || { echo "no /config_dump from $tag"; return 1; }
  "$ZT_PY" "$ZT_ROOT/tests/lib/istioctl_dump_check.py" "$@" <<<"$dump"
}

# zn_wait_pods TAG COUNT [TIMEOUT_S] — until TAG's workloadState lists COUNT pods (not draining).
zn_wait_pods() {
  local tag="$1" want="$2" timeout="${3:-10}" got="" st
  for _ in $(seq 1 $((timeout * 5))); do
    # Only a dump that was fetched and parsed counts (an unreachable admin port is not "0 pods").
    if st=$(zn_workload_state "$tag"); then
      got=$(printf '%s' "$st" | grep -vc 'draining')
      [[ $got == "$want" ]] && return 0
    fi
    sleep 0.2
  done
  echo "ztunnel $tag workloadState holds ${got:-?} pods, wanted $want:"
  zn_workload_state "$tag"
  return 1
}

# zn_wait_config TAG REGEX present|absent [TIMEOUT_S] — poll /config_dump until REGEX is
# present (or absent): how the suite knows a rewritten LOCAL_XDS_PATH has been applied.
zn_wait_config() {
  local tag="$1" re="$2" mode="$3" timeout="${4:-8}" dump
  for _ in $(seq 1 $((timeout * 5))); do
    # A dump that could not be fetched (busy machine, curl timeout) proves nothing: it must
    # not pass for "absent".
    if dump=$(zn_config_dump "$tag") && [[ $dump == "{"* ]]; then
      if grep -Eq -- "$re" <<<"$dump"; then
        [[ $mode == present ]] && return 0
      else
        [[ $mode == absent ]] && return 0
      fi
    fi
    sleep 0.2
  done
  echo "ztunnel $tag: /config_dump never had '$re' $mode within ${timeout}s"
  return 1
}

# zn_apply_policies FRAGMENT — atomically rewrite the mesh config as base + FRAGMENT.
zn_apply_policies() {
  cat "$ZN_BASE" "$1" >"$ZN_MESH.tmp" && mv -f "$ZN_MESH.tmp" "$ZN_MESH"
}

# zn_metric_lines / zn_expect_metric TAG METRIC LABEL=VALUE... — see metric_lines/expect_metric
# in tests/lib/netns.sh.
zn_metric_lines() { metric_lines zn_metrics "$@"; }
zn_expect_metric() { expect_metric zn_metrics "$@"; }

# ---- traffic ---------------------------------------------------------------------------------

# zn_get POD URL — curl from inside POD; prints "HTTP_CODE BODY" (body on one line).
zn_get() {
  local pod="$1" url="$2" out rc
  out=$(nsx_exec "$pod" curl -s --max-time 6 --connect-timeout 4 -w ' %{http_code}' "$url" 2>&1)
  rc=$?
  out=$(tr -d '\n' <<<"$out")
  echo "${out##* } ${out% *}"
  return "$rc"
}

# zn_expect_get POD URL BODY — a 200 whose body is BODY (used as a `check` command).
zn_expect_get() {
  local r; r=$(zn_get "$1" "$2")
  [[ $r == "200 $3" ]] && return 0
  echo "GET $2 from $1 -> '$r' (wanted 200 '$3')"
  return 1
}

# zn_expect_refused POD URL — the request must NOT get a 200.
zn_expect_refused() {
  local r; r=$(zn_get "$1" "$2")
  [[ ${r%% *} != 200 ]] && return 0
  echo "GET $2 from $1 unexpectedly answered: '$r'"
  return 1
}

# zn_app_peer LOGFILE MARKER — the peer address the app logged for the request with MARKER.
zn_app_peer() {
  grep -a "path=.*$2" "$1" | tail -n 1 | sed -nE 's/.*peer=([^ ]+).*/\1/p'
}

# ---- captures --------------------------------------------------------------------------------

# zn_flows FILE — one line per IPv4 TCP packet: "SRC_IP SRC_PORT DST_IP DST_PORT".
zn_flows() {
  tcpdump -r "$1" -nn -q 'ip and tcp' 2>/dev/null | awk '
    { for (i = 1; i <= NF; i++) if ($i == ">") break
      s = $(i - 1); d = $(i + 1); sub(":$", "", d)
      n = split(s, a, "."); sip = a[1] "." a[2] "." a[3] "." a[4]
      m = split(d, b, "."); dip = b[1] "." b[2] "." b[3] "." b[4]
      print sip, a[n], dip, b[m] }'
}

zn_ascii() { tcpdump -r "$1" -nn -A 2>/dev/null; }   # printable payload of every packet

# zn_only_15008 FILE — every TCP packet in FILE has port 15008 on one side, and there is at
# least one; prints a summary either way.
zn_only_15008() {
  local flows n bad
  flows=$(zn_flows "$1")
  n=$(grep -c . <<<"$flows")
  bad=$(awk '$2 != 15008 && $4 != 15008' <<<"$flows")
  if [[ $n -gt 0 && -z $bad ]]; then echo "$n packets, all on 15008"; return 0; fi
  echo "$n packets; not on 15008:"
  head -n 8 <<<"$bad"
  return 1
}

# zn_tls13 FILE — a TLS 1.3 ServerHello on 15008 is in the capture (needs tshark; passes with a
# note when tshark is missing).
zn_tls13() {
  command -v tshark >/dev/null 2>&1 || { echo "tshark not installed; TLS version not checked"; return 0; }
  local v
  v=$(tshark -r "$1" -d tcp.port==15008,tls -Y 'tls.handshake.type == 2' \
      -T fields -e tls.handshake.extensions.supported_version 2>/dev/null | sort -u | tr '\n' ' ')
  grep -q '0x0304' <<<"$v" && return 0
  echo "no TLS 1.3 ServerHello on 15008 (supported_version='$v')"
  return 1
}
