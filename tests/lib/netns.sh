# shellcheck shell=bash
# tests/lib/netns.sh — network-namespace test framework, sourced by tests/<NN-name>/suite.sh.
#
# Role: build throw-away "pods" (network namespaces) wired to one L2 segment, start processes
# inside them, wait for them, record pass/fail lines, and tear EVERYTHING down on exit (also on
# failure or Ctrl-C). Nothing here touches the host's own netns besides creating/deleting
# namespaces whose names start with zt-<suite>-.
#
# Topology made by nsx_pod: a "node" netns (zt-<suite>-node) holding bridge br0; every pod
# netns gets eth0 (veth) whose peer sits on br0. Addresses are 10.99.0.x/24, only inside these
# namespaces. Capture on the wire with: nsx_exec node tcpdump -i br0 ...
#
# Usage:
#   source tests/lib/netns.sh
#   require_root                       # exit 1 (FAIL, not skip) when not root
#   nsx_init e2e                       # prefix zt-e2e-, temp dir $NSX_TMP, EXIT trap
#   nsx_pod a 10.99.0.1                # netns zt-e2e-a with eth0 10.99.0.1/24, lo up
#   nsx_bg a "$NSX_TMP/app.log" python3 -m http.server 8080   # sets NSX_LAST_PID
#   wait_for_http a http://127.0.0.1:8080/ 10
#   check "curl works" nsx_exec a curl -sf --max-time 5 http://10.99.0.2:8080/
#   summary                            # prints "N passed, N failed"; returns 1 on failures
#
# Invariants: every process started via nsx_bg is in its own process group and is killed (TERM,
# then KILL after a grace period) by the trap; every namespace created is deleted by the trap;
# all waits are bounded.

NSX_SUITE=""
NSX_PREFIX=""
NSX_TMP=""
NSX_PIDS=()
NSX_NAMESPACES=()
NSX_ETC_NETNS=()  # /etc/netns/<ns> directories nsx_resolv_conf created
NSX_PASSED=0
NSX_FAILED=0
NSX_LAST_PID=""
NSX_KEEP_TMP="${NSX_KEEP_TMP:-0}"   # set to 1 to keep logs/captures after the run

# contains [GREP-OPTS] PATTERN: true when stdin holds a match. Reads all of stdin (grep -c
# counts to the end): `cmd | grep -q` under pipefail fails at random when grep exits on the
# first match and cmd then dies of SIGPIPE while still writing. (grep with its output on
# /dev/null stops early too, so that is no way out.)
contains() { local n; n=$(grep -c "$@"); [[ ${n:-0} -gt 0 ]]; }

nsx_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

require_root() {
  if [[ $(id -u) != 0 ]]; then
    echo "FAIL: this suite needs root (network namespaces, veth, iptables); run it with sudo"
    echo "0 passed, 1 failed"
    exit 1
  fi
  local t
  for t in ip iptables curl; do
    if ! command -v "$t" >/dev/null 2>&1; then
      echo "FAIL: required tool '$t' not found"
      echo "0 passed, 1 failed"
      exit 1
    fi
  done
}

# nsx_init SUITE — set the namespace prefix, make a temp dir, install the cleanup trap, and
# remove leftovers of an earlier aborted run of the same suite.
nsx_init() {
  NSX_SUITE="$1"
  NSX_PREFIX="zt-${NSX_SUITE}-"
  # Two runs of the same suite would fight over the same namespace names (and the sweep below
  # would destroy the other run's pods): serialise them on a lock file (bounded wait).
  exec {NSX_LOCK_FD}>"/tmp/zt-${NSX_SUITE}.lock"
  if ! flock -w "${NSX_LOCK_WAIT:-600}" "$NSX_LOCK_FD"; then
    echo "FAIL: another zt-${NSX_SUITE} run holds /tmp/zt-${NSX_SUITE}.lock" >&2
    echo "0 passed, 1 failed"
    exit 1
  fi
  NSX_TMP=$(mktemp -d "/tmp/zt-${NSX_SUITE}.XXXXXX")
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${NSX_PREFIX}" || true); do
    nsx_log "removing stale namespace $ns"
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  trap nsx_cleanup EXIT
  trap 'exit 130' INT TERM
}

nsx_ns() { echo "${NSX_PREFIX}$1"; }   # short pod name -> netns name

# nsx_exec POD cmd... — run a command inside a pod netns (POD may be a short or full name).
nsx_exec() {
  local ns="$1"; shift
  [[ $ns == "$NSX_PREFIX"* ]] || ns="${NSX_PREFIX}${ns}"
  ip netns exec "$ns" "$@"
}

# nsx_resolv_conf POD TEXT — the resolv.conf that processes started in POD from now on see
# (ip netns exec bind-mounts /etc/netns/<ns>/resolv.conf); removed at cleanup.
nsx_resolv_conf() {
  local ns="$1"
  [[ $ns == "$NSX_PREFIX"* ]] || ns="${NSX_PREFIX}${ns}"
  mkdir -p "/etc/netns/$ns"
  NSX_ETC_NETNS+=("$ns")
  printf '%s\n' "$2" >"/etc/netns/$ns/resolv.conf"
}

nsx_add_netns() {
  local ns="$1"
  ip netns add "$ns"
  NSX_NAMESPACES+=("$ns")
  ip -n "$ns" link set lo up
}

nsx_node() {
  local node; node=$(nsx_ns node)
  if ip netns list | awk '{print $1}' | contains -x "$node"; then return 0; fi
  nsx_add_netns "$node"
  ip -n "$node" link add br0 type bridge
  ip -n "$node" link set br0 up
}

# nsx_pod NAME IP — create pod netns NAME with eth0=IP/24 bridged to the node's br0.
nsx_pod() {
  local name="$1" ip4="$2" ns node peer
  ns=$(nsx_ns "$name"); node=$(nsx_ns node)
  nsx_node
  nsx_add_netns "$ns"
  peer="v-${name}"
  peer="${peer:0:15}"
  ip link add "$peer" netns "$node" type veth peer name eth0 netns "$ns"
  ip -n "$node" link set "$peer" master br0
  ip -n "$node" link set "$peer" up
  ip -n "$ns" addr add "${ip4}/24" dev eth0
  ip -n "$ns" link set eth0 up
  # Bridged veths come up asynchronously; wait (bounded) until the link is usable.
  for _ in $(seq 1 50); do
    if ip -n "$ns" -br link show eth0 | contains 'UP'; then break; fi
    sleep 0.1
  done
}

# nsx_bg POD LOGFILE cmd... — start cmd in the background inside POD (own process group),
# stdout+stderr to LOGFILE; PID in NSX_LAST_PID and remembered for cleanup.
nsx_bg() {
  local pod="$1" logf="$2"; shift 2
  local ns="$pod"
  [[ $ns == "$NSX_PREFIX"* ]] || ns="${NSX_PREFIX}${pod}"
  ip netns exec "$ns" setsid "$@" >"$logf" 2>&1 </dev/null &
  NSX_LAST_PID=$!
  NSX_PIDS+=("$NSX_LAST_PID")
}

# nsx_bg_env POD LOGFILE VAR=VAL... -- cmd... : like nsx_bg but with an environment.
nsx_bg_env() {
  local pod="$1" logf="$2"; shift 2
  local envs=()
  while [[ $# -gt 0 && $1 != "--" ]]; do envs+=("$1"); shift; done
  shift
  nsx_bg "$pod" "$logf" env "${envs[@]}" "$@"
}

# nsx_stop PID [GRACE_SECONDS] — SIGTERM the process group, wait, SIGKILL if still alive.
# Returns the process' exit status when it exited by itself within the grace period.
nsx_stop() {
  local pid="$1" grace="${2:-5}"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 $((grace * 10))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  local rc=0
  wait "$pid" 2>/dev/null || rc=$?
  return "$rc"
}

nsx_alive() { kill -0 "$1" 2>/dev/null; }

nsx_cleanup() {
  local rc=$? pid ns
  trap - EXIT
  for pid in "${NSX_PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    fi
  done

  for _ in $(seq 1 30); do
    local any=0
    for pid in "${NSX_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && any=1; done
    [[ $any == 0 ]] && break
    sleep 0.1
  done
  for pid in "${NSX_PIDS[@]}"; do
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  for ns in "${NSX_ETC_NETNS[@]}"; do rm -rf "/etc/netns/$ns"; done
  for ns in "${NSX_NAMESPACES[@]}"; do
    # Anything still running inside (e.g. started with nsx_exec ... &) goes too.
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  if [[ -n "$NSX_TMP" && -d "$NSX_TMP" ]]; then
    # When kept, the suite announces the path itself (before its summary line, which must
    # stay the last line of output).
    [[ $NSX_KEEP_TMP == 1 ]] || rm -rf "$NSX_TMP"
  fi
  exit "$rc"
}

# wait_for_http POD URL [TIMEOUT_S] — poll until URL answers 2xx from inside POD.
wait_for_http() {
  local pod="$1" url="$2" timeout="${3:-10}"
  for _ in $(seq 1 $((timeout * 5))); do
    if nsx_exec "$pod" curl -sf -o /dev/null --max-time 1 "$url" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  nsx_log "timeout waiting for $url in $pod"
  return 1
}

# wait_for_port POD PORT [TIMEOUT_S] — poll until a TCP listener on PORT exists inside POD.
wait_for_port() {
  local pod="$1" port="$2" timeout="${3:-10}"
  for _ in $(seq 1 $((timeout * 5))); do
    if nsx_exec "$pod" ss -Hltn "sport = :$port" 2>/dev/null | contains .; then return 0; fi
    sleep 0.2
  done
  nsx_log "timeout waiting for port $port in $pod"
  return 1
}

# wait_for_file_match FILE REGEX [TIMEOUT_S] — poll until FILE contains a line matching REGEX.
wait_for_file_match() {
  local f="$1" re="$2" timeout="${3:-10}"
  for _ in $(seq 1 $((timeout * 5))); do
    if grep -Eq -- "$re" "$f" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  return 1
}

# ---- packet capture ------------------------------------------------------------------------

# nsx_capture_start POD IFACE FILE [tcpdump filter...] — start tcpdump on IFACE inside POD,
# writing FILE; waits (bounded) until tcpdump is listening. PID in NSX_CAPTURE_PID.
# --immediate-mode matters: without it packets still in the kernel ring are lost at SIGINT.
NSX_CAPTURE_PID=""
nsx_capture_start() {
  local pod="$1" ifc="$2" file="$3"; shift 3
  command -v tcpdump >/dev/null 2>&1 || { nsx_log "tcpdump not installed"; return 1; }
  nsx_bg "$pod" "${file}.log" tcpdump -i "$ifc" -nn -U --immediate-mode -Z root -s 0 \
    -w "$file" "$@"
  NSX_CAPTURE_PID="$NSX_LAST_PID"
  wait_for_file_match "${file}.log" 'listening on' 5
}

# nsx_capture_stop [PID] — SIGINT tcpdump so it flushes, wait bounded.
nsx_capture_stop() {
  local pid="${1:-$NSX_CAPTURE_PID}"
  [[ -n "$pid" ]] || return 0
  sleep 0.3   # let the last segments (FIN/ACK) reach the capture
  kill -INT "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# ---- results -------------------------------------------------------------------------------

# metric_lines FETCH WHO METRIC LABEL=VALUE... — the METRIC samples (METRIC may be a regex) in
# the Prometheus page that `FETCH WHO` prints, keeping those that carry every given label.
metric_lines() {
  local fetch="$1" who="$2" metric="$3"; shift 3
  local out kv
  out=$("$fetch" "$who" | grep -E "^${metric}\{") || return 1
  for kv in "$@"; do
    out=$(grep -F -- "${kv%%=*}=\"${kv#*=}\"" <<<"$out") || return 1
  done
  printf '%s\n' "$out"
}

# expect_metric FETCH WHO METRIC LABEL=VALUE... — poll (5 s) until such a sample has a value
# >= 1 and print (up to 3 of) them; counters are written when a connection closes, hence the
# poll. On failure, prints what samples of METRIC there were.
expect_metric() {
  local fetch="$1" who="$2" metric="$3"; shift 3
  local lines
  for _ in $(seq 1 25); do
    if lines=$(metric_lines "$fetch" "$who" "$metric" "$@") \
       && awk '{ if ($NF + 0 >= 1) found = 1 } END { exit !found }' <<<"$lines"; then
      printf '%s\n' "$lines" | head -n 3
      return 0
    fi
    sleep 0.2
  done
  echo "no ${metric} sample with: $*"
  echo "--- ${metric} samples from $who:"
  "$fetch" "$who" | grep -E "^${metric}" | head -n 10
  return 1
}

pass() { NSX_PASSED=$((NSX_PASSED + 1)); echo "PASS: $1"; }
fail() {
  NSX_FAILED=$((NSX_FAILED + 1))
  echo "FAIL: $1"
  if [[ -n "${2:-}" ]]; then printf '%s\n' "$2" | sed 's/^/      /' | head -n 40; fi
}

# check NAME cmd... — run cmd; PASS when it exits 0, FAIL (with its output) otherwise.
check() {
  local name="$1"; shift
  local out
  if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$out"; fi
}

# check_not NAME cmd... — PASS when cmd fails.
check_not() {
  local name="$1"; shift
  local out
  if out=$("$@" 2>&1); then fail "$name (unexpectedly succeeded)" "$out"; else pass "$name"; fi
}

# summary — last line of every suite; returns non-zero on any failure.
summary() {
  echo "${NSX_PASSED} passed, ${NSX_FAILED} failed"
  [[ $NSX_FAILED == 0 ]]
}
