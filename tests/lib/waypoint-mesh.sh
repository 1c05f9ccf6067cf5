# shellcheck shell=bash
# tests/lib/waypoint-mesh.sh — the common start of the suites that run on the 66-waypoint-e2e
# mesh (tests/66-waypoint-e2e/lib.sh: controlplane serve, ambient-cni + ztunnel on two nodes,
# the waypoint, the Calculate app, a curl client), so each suite holds only its own stories.
#
# Use, at the top level of a suite.sh (after `set -uo pipefail`):
#   source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../lib" && pwd)/waypoint-mesh.sh" "${1:-}"
#   wpm_init SUITE-NAME [TOOL...]   root, tools and binaries present (a missing one is a FAIL,
#                                   never a skip); the sandbox; sets T, WP_MESH and VIP
#   wpm_extra_rules RULES           VirtualService rules (YAML list items, indented by 2) put
#                                   in front of wp_vs's own on every edit
#   wpm_bringup || abort ...        the whole mesh up (not in a subshell: it sets the PIDs the
#                                   cleanup uses); its output goes to $T/bringup.out
# and the helpers abort MSG [DETAIL], logs NAME..., access_has REGEX, tally.
# Sets: ZT_ROOT, BIN_DIR (the argument, default build/bin) and ZT_BIN, CNI_BIN, CP_BIN, WP_BIN.
# Invariants: every wait is bounded; on abort the sandbox is kept and its path printed.
# shellcheck disable=SC1091,SC2034

ZT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN_DIR=$(cd "${1:-$ZT_ROOT/build/bin}" 2>/dev/null && pwd || echo "${1:-$ZT_ROOT/build/bin}")
ZT_BIN="$BIN_DIR/ztunnel"
CNI_BIN="$BIN_DIR/ambient-cni"
CP_BIN="$BIN_DIR/controlplane"
WP_BIN="$BIN_DIR/waypoint"

source "$ZT_ROOT/tests/lib/netns.sh"
source "$ZT_ROOT/tests/50-node-e2e/lib.sh"
source "$ZT_ROOT/tests/66-waypoint-e2e/lib.sh"

# wpm_init SUITE-NAME [TOOL...] — curl, ss and python are always needed.
wpm_init() {
  local name="$1" t b
  shift
  require_root
  for t in curl ss "$ZT_PY" "$@"; do
    command -v "$t" >/dev/null 2>&1 || { fail "required tool $t present"; summary; exit 1; }
  done
  for b in "$ZT_BIN" "$CNI_BIN" "$CP_BIN" "$WP_BIN"; do
    [[ -x $b ]] || { fail "binary present at $b"; summary; exit 1; }
  done
  nsx_init "$name"
  T="$NSX_TMP"
  WP_MESH="$T/mesh"
  VIP="http://$WP_VIP"
}

abort() { fail "$1" "${2:-}"; NSX_KEEP_TMP=1; echo "logs kept in $T" >&2; summary; exit 1; }
logs() { local f; for f in "$@"; do echo "--- $f:"; tail -n "${LOG_LINES:-12}" "$T/$f.log" 2>/dev/null; done; }

# wpm_extra_rules RULES — wraps 66's wp_vs so its third argument is always RULES.
wpm_extra_rules() {
  WPM_RULES="$1"
  eval "wp_vs_base() $(declare -f wp_vs | tail -n +2)"
  # shellcheck disable=SC2317  # called by the suite through wp_vs
  wp_vs() { wp_vs_base "$1" "$2" "$WPM_RULES"; }
}

# wpm_bringup — the mesh up; on failure returns 1 with the bring-up output and the logs of the
# controlplane, both ztunnels and the waypoint in WPM_BRINGUP_LOG for the caller's abort.
wpm_bringup() {
  wp_bringup >"$T/bringup.out" 2>&1 && return 0
  WPM_BRINGUP_LOG="$(cat "$T/bringup.out")
$(logs cp zt-n1 zt-n2 waypoint)"
  return 1
}

# access_has LINE-REGEX — the waypoint's access-log lines matching (polled: records are written
# when the response completes).
access_has() {
  local re="$1"
  for _ in $(seq 1 25); do
    grep -E 'request complete' "$T/waypoint.log" | grep -Eq -- "$re" && return 0
    sleep 0.2
  done
  echo "no waypoint access line matching: $re"
  grep 'request complete' "$T/waypoint.log" | tail -n 3
  return 1
}

# tally — "CODE VERSION" lines in, "CODE VERSION xN, ..." out.
tally() { sort | uniq -c | awk '{ printf "%s%s x%s", sep, $2 " " $3, $1; sep = ", " } END { print "" }'; }
