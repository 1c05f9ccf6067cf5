# scripts/lib/demo.sh — sourced by the `make demo` scripts (demo.sh, demo-node.sh,
# demo-waypoint.sh): where the binaries are and the checks made before anything is created, so
# a demo that cannot run says why and leaves nothing behind.
# shellcheck shell=bash disable=SC2034  # the variables are the callers'

# demo_setup NAME [BIN_DIR]: sets ZT_ROOT (the checkout), BIN_DIR (default build/bin, made
# absolute when it exists) and ZT_BIN, CNI_BIN, CP_BIN, WP_BIN in it; exits 1 unless root.
demo_setup() {
  local name=$1 dir=${2:-}
  ZT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  BIN_DIR=$(cd "${dir:-$ZT_ROOT/build/bin}" 2>/dev/null && pwd || echo "${dir:-$ZT_ROOT/build/bin}")
  ZT_BIN="$BIN_DIR/ztunnel"
  CNI_BIN="$BIN_DIR/ambient-cni"
  CP_BIN="$BIN_DIR/controlplane"
  WP_BIN="$BIN_DIR/waypoint"
  if [[ $(id -u) != 0 ]]; then
    echo "$name: needs root (it creates network namespaces, veth links and iptables rules)." >&2
    echo "${name//?/ }  run: sudo make demo   or   sudo $0 $dir" >&2
    exit 1
  fi
}

# demo_require NAME BIN... [-- TOOL...]: exits 1 naming the first binary not built or tool
# not installed.
demo_require() {
  local name=$1 tools=0 x
  shift
  for x in "$@"; do
    if [[ $x == -- ]]; then
      tools=1
    elif ((tools)); then
      command -v "$x" >/dev/null 2>&1 || { echo "$name: '$x' is required" >&2; exit 1; }
    else
      [[ -x $x ]] || { echo "$name: $x not found; build first (make build)" >&2; exit 1; }
    fi
  done
}
