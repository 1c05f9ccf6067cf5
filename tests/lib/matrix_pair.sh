# shellcheck shell=bash disable=SC2034
# tests/lib/matrix_pair.sh — the ztunnel pair the reliability-matrix suites (80-82) stand on:
# two pods with in-pod rules and a dedicated ztunnel each, a connbench echo server on b:9000.
# Sourced after tests/lib/netns.sh and tests/30-e2e/helpers.sh; needs root.
#
#   zt-<row>-a 10.99.0.1  in-pod rules + dedicated ztunnel (<row>/a/a)
#   zt-<row>-b 10.99.0.2  in-pod rules + dedicated ztunnel (<row>/b/b); connbench echo :9000
#
# mp_setup ROW [TOOL...]  checks root, tools and the binary, creates the namespaces (T = their
#                         temp dir), defines abort(), builds connbench and the CA, starts both
#                         ztunnels and waits for them and the echo server. Before the ztunnels
#                         start it calls mp_before_start (if the suite defines it) for
#                         suite-specific sysctls or extra servers in b.
# mp_raise_fd_limit       raises the soft fd limit to the hard one; aborts below 8192.
# mp_pid a|b              the ztunnel process' pid (zt_start may have started a wrapper).
# Each failure aborts the suite through abort(), keeping the logs.
# shellcheck disable=SC2154

mp_setup() {
  local row="$1" t p out
  shift
  require_root
  PY=/usr/bin/python3
  for t in gcc "$PY" "$@"; do
    command -v "$t" >/dev/null 2>&1 || { fail "required tool $t present"; summary; exit 1; }
  done
  [[ -x $ZT_BIN ]] || { fail "binary present at $ZT_BIN"; summary; exit 1; }
  nsx_init "$row"
  T="$NSX_TMP"
  abort() { fail "$1" "${2:-}"; NSX_KEEP_TMP=1; echo "logs kept in $T" >&2; summary; exit 1; }
  gcc -O2 -o "$T/connbench" "$ZT_ROOT/bench/connbench.c" 2>"$T/gcc.log" || abort "build connbench" "$(cat "$T/gcc.log")"
  "$ZT_ROOT/scripts/make-cacerts.sh" "$T/ca" cluster.local >"$T/ca.log" 2>&1 || abort "CA" "$(cat "$T/ca.log")"
  nsx_pod a 10.99.0.1
  nsx_pod b 10.99.0.2
  cat >"$T/mesh.yaml" <<YAML
workloads:
- {uid: $row-a, name: a, namespace: $row, serviceAccount: a, workloadIps: ["10.99.0.1"], protocol: HBONE, node: $row}
- {uid: $row-b, name: b, namespace: $row, serviceAccount: b, workloadIps: ["10.99.0.2"], protocol: HBONE, node: $row}
YAML
  for p in a b; do
    nsx_exec "$p" "$ZT_ROOT/scripts/inpod-iptables.sh" install --no-dns >"$T/rules-$p.log" 2>&1 \
      || abort "in-pod rules in $p" "$(cat "$T/rules-$p.log")"
  done
  nsx_bg b "$T/echo.log" "$T/connbench" server 0.0.0.0:9000
  if declare -F mp_before_start >/dev/null; then mp_before_start; fi
  zt_start a "$row/a/a" "$T/mesh.yaml" "$T/ca" "$T/zt-a.log"
  zt_start b "$row/b/b" "$T/mesh.yaml" "$T/ca" "$T/zt-b.log"
  for p in a b; do out=$(zt_wait_ready "$p" 20) || abort "ztunnel $p ready" "$out"; done
  wait_for_port b 9000 5 || abort "echo server in b"
}

mp_raise_fd_limit() {
  ulimit -n "$(ulimit -Hn)" 2>/dev/null
  [[ $(ulimit -n) == unlimited || $(ulimit -n) -ge 8192 ]] || abort "fd limit >= 8192 (have $(ulimit -n))"
}

mp_pid() {
  local v="ZT_PID_$1" p
  p=${!v}
  [[ $(cat "/proc/$p/comm" 2>/dev/null) == ztunnel ]] || p=$(pgrep -P "$p" -x ztunnel | head -n 1)
  echo "$p"
}
