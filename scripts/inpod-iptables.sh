#!/usr/bin/env bash
# inpod-iptables.sh — install or remove the istio-cni "in-pod" redirection rules in the CURRENT
# network namespace (run it as `ip netns exec <pod> scripts/inpod-iptables.sh install`).
#
# What it installs (same rule set istio-cni puts into an ambient pod's netns; see
# docs/testing.md and ztunnel-facts.md §1.4):
#   * jumps  mangle/nat PREROUTING -> ISTIO_PRERT, mangle/nat OUTPUT -> ISTIO_OUTPUT
#            (+ raw PREROUTING/OUTPUT when DNS capture is on)
#   * mangle ISTIO_PRERT : packets carrying the ztunnel mark (MARK/0xfff) -> connmark 0x111
#   * mangle ISTIO_OUTPUT: connmark 0x111 -> restore mark (replies of ztunnel-owned connections
#                          are then routed by `fwmark 0x111 lookup 100` to the local table)
#   * nat ISTIO_PRERT    : accept kubelet probes from 169.254.7.127, then every other inbound TCP
#                          that is not to 127.0.0.1, not to 15008 and not marked -> REDIRECT 15006
#   * nat ISTIO_OUTPUT   : accept probe replies, (DNS -> 15053), accept 0x111-marked TCP,
#                          accept app-to-own-pod-IP over lo, everything else TCP not to 127.0.0.1
#                          and not marked -> REDIRECT 15001
#   * policy routing     : ip rule fwmark 0x111/0xfff pref 32764 lookup 100,
#                          ip route local 0.0.0.0/0 dev lo table 100 (and ::/0 for v6)
#
# Usage: inpod-iptables.sh install|remove|show [--mark 1337] [--no-dns] [--no-ipv6]
# install is idempotent (our chains are flushed and refilled, jumps added once); remove deletes
# jumps, chains, the ip rule and table 100, leaving nothing of ours behind.
set -euo pipefail

MARK=1337
DNS=1
IPV6=1
CMD=""

usage() {
  echo "usage: $0 install|remove|show [--mark N] [--no-dns] [--no-ipv6]" >&2
  exit 2
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    install|remove|show) CMD="$1" ;;
    --mark) shift; [[ $# -gt 0 ]] || usage; MARK="$1" ;;
    --mark=*) MARK="${1#--mark=}" ;;
    --no-dns) DNS=0 ;;
    --dns) DNS=1 ;;
    --no-ipv6) IPV6=0 ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
  shift
done
[[ -n "$CMD" ]] || usage
[[ "$MARK" =~ ^(0x[0-9a-fA-F]+|[0-9]+)$ ]] || { echo "bad --mark: $MARK" >&2; exit 2; }

MASK=0xfff
INPOD_MARK=$(printf '0x%x' "$((MARK & MASK))")   # 1337 -> 0x539
TPROXY_MARK=0x111
RESTORE_MASK=0xffffffff
PROBE_V4=169.254.7.127
PROBE_V6=fd16:9254:7127:1337:ffff:ffff:ffff:ffff
ROUTE_TABLE=100
RULE_PREF=32764
PORT_OUT=15001
PORT_IN_PLAIN=15006
PORT_HBONE=15008
PORT_DNS=15053

# Which address families to program. v6 only when lo carries ::1 (IPv6 enabled in the netns)
# and ip6tables can talk to the kernel.
families() {
  echo 4
  if [[ $IPV6 == 1 ]] && [[ $(ip -6 addr show dev lo 2>/dev/null) == *"::1/128"* ]] \
     && ip6tables -t nat -S >/dev/null 2>&1; then
    echo 6
  fi
}

ipt() {  # ipt FAMILY args...
  local fam=$1; shift
  if [[ $fam == 6 ]]; then ip6tables -w 5 "$@"; else iptables -w 5 "$@"; fi
}

# ensure_jump FAMILY TABLE BUILTIN CHAIN: create CHAIN (if missing) and one jump to it.
ensure_chain() {
  local fam=$1 table=$2 chain=$3
  ipt "$fam" -t "$table" -N "$chain" 2>/dev/null || true
  ipt "$fam" -t "$table" -F "$chain"
}
ensure_jump() {
  local fam=$1 table=$2 builtin=$3 chain=$4
  if ! ipt "$fam" -t "$table" -C "$builtin" -j "$chain" 2>/dev/null; then
    ipt "$fam" -t "$table" -A "$builtin" -j "$chain"
  fi
}
drop_jumps_and_chain() {
  local fam=$1 table=$2 builtin=$3 chain=$4
  local n=0
  while ipt "$fam" -t "$table" -C "$builtin" -j "$chain" 2>/dev/null && (( n++ < 16 )); do
    ipt "$fam" -t "$table" -D "$builtin" -j "$chain"
  done
}
delete_chain() {
  local fam=$1 table=$2 chain=$3
  if ipt "$fam" -t "$table" -S "$chain" >/dev/null 2>&1; then
    ipt "$fam" -t "$table" -F "$chain"
    ipt "$fam" -t "$table" -X "$chain"
  fi
}

install_family() {
  local fam=$1 lo_addr probe
  if [[ $fam == 6 ]]; then lo_addr=::1/128; probe=$PROBE_V6; else lo_addr=127.0.0.1/32; probe=$PROBE_V4; fi

  ensure_chain "$fam" mangle ISTIO_PRERT
  ensure_chain "$fam" mangle ISTIO_OUTPUT
  ensure_chain "$fam" nat ISTIO_PRERT
  ensure_chain "$fam" nat ISTIO_OUTPUT
  if [[ $DNS == 1 ]]; then
    ensure_chain "$fam" raw ISTIO_PRERT
    ensure_chain "$fam" raw ISTIO_OUTPUT
  fi

  # mangle: remember that a connection belongs to ztunnel (its packets carry the inpod mark),
  # and stamp the replies so policy routing delivers them locally (transparent sockets).
  ipt "$fam" -t mangle -A ISTIO_PRERT -m mark --mark "$INPOD_MARK/$MASK" \
    -j CONNMARK --set-xmark "$TPROXY_MARK/$MASK"
  ipt "$fam" -t mangle -A ISTIO_OUTPUT -m connmark --mark "$TPROXY_MARK/$MASK" \
    -j CONNMARK --restore-mark --nfmask "$RESTORE_MASK" --ctmask "$RESTORE_MASK"

  # nat PREROUTING: probes pass, everything else inbound (except HBONE 15008) -> 15006.
  ipt "$fam" -t nat -A ISTIO_PRERT -s "$probe" -p tcp -j ACCEPT
  ipt "$fam" -t nat -A ISTIO_PRERT ! -d "$lo_addr" -p tcp ! --dport "$PORT_HBONE" \
    -m mark ! --mark "$INPOD_MARK/$MASK" -j REDIRECT --to-ports "$PORT_IN_PLAIN"

  # nat OUTPUT.
  ipt "$fam" -t nat -A ISTIO_OUTPUT -d "$probe" -p tcp -j ACCEPT
  if [[ $DNS == 1 ]]; then
    ipt "$fam" -t nat -A ISTIO_OUTPUT ! -o lo -p udp --dport 53 \
      -m mark ! --mark "$INPOD_MARK/$MASK" -j REDIRECT --to-port "$PORT_DNS"
    ipt "$fam" -t nat -A ISTIO_OUTPUT ! -d "$lo_addr" -p tcp --dport 53 \
      -m mark ! --mark "$INPOD_MARK/$MASK" -j REDIRECT --to-port "$PORT_DNS"
    # Separate conntrack zone for ztunnel's upstream DNS and the unmarked replies, so the
    # redirected app query and ztunnel's own query never collide on the same tuple.
    ipt "$fam" -t raw -A ISTIO_OUTPUT -p udp --dport 53 -m mark --mark "$INPOD_MARK/$MASK" \
      -j CT --zone 1
    ipt "$fam" -t raw -A ISTIO_PRERT -p udp --sport 53 -m mark ! --mark "$INPOD_MARK/$MASK" \
      -j CT --zone 1
  fi
  ipt "$fam" -t nat -A ISTIO_OUTPUT -p tcp -m mark --mark "$TPROXY_MARK/$MASK" -j ACCEPT
  ipt "$fam" -t nat -A ISTIO_OUTPUT ! -d "$lo_addr" -o lo -j ACCEPT
  ipt "$fam" -t nat -A ISTIO_OUTPUT ! -d "$lo_addr" -p tcp \
    -m mark ! --mark "$INPOD_MARK/$MASK" -j REDIRECT --to-ports "$PORT_OUT"

  # Jumps last, so a half-built chain is never live.
  ensure_jump "$fam" mangle PREROUTING ISTIO_PRERT
  ensure_jump "$fam" mangle OUTPUT ISTIO_OUTPUT
  ensure_jump "$fam" nat OUTPUT ISTIO_OUTPUT
  ensure_jump "$fam" nat PREROUTING ISTIO_PRERT
  if [[ $DNS == 1 ]]; then
    ensure_jump "$fam" raw PREROUTING ISTIO_PRERT
    ensure_jump "$fam" raw OUTPUT ISTIO_OUTPUT
  else
    # Re-install without DNS after an install with DNS: drop the raw leftovers.
    drop_jumps_and_chain "$fam" raw PREROUTING ISTIO_PRERT
    drop_jumps_and_chain "$fam" raw OUTPUT ISTIO_OUTPUT
    delete_chain "$fam" raw ISTIO_PRERT
    delete_chain "$fam" raw ISTIO_OUTPUT
  fi

  # Policy routing: 0x111-marked packets are local deliveries.
  local ipf="-4" dflt=0.0.0.0/0
  [[ $fam == 6 ]] && { ipf="-6"; dflt=::/0; }
  if [[ $(ip "$ipf" rule show pref "$RULE_PREF") != *"lookup $ROUTE_TABLE"* ]]; then
    ip "$ipf" rule add fwmark "$TPROXY_MARK/$MASK" pref "$RULE_PREF" lookup "$ROUTE_TABLE"
  fi
  ip "$ipf" route replace local "$dflt" dev lo table "$ROUTE_TABLE"
}

remove_family() {
  local fam=$1 t
  drop_jumps_and_chain "$fam" mangle PREROUTING ISTIO_PRERT
  drop_jumps_and_chain "$fam" mangle OUTPUT ISTIO_OUTPUT
  drop_jumps_and_chain "$fam" nat PREROUTING ISTIO_PRERT
  drop_jumps_and_chain "$fam" nat OUTPUT ISTIO_OUTPUT
  drop_jumps_and_chain "$fam" raw PREROUTING ISTIO_PRERT
  drop_jumps_and_chain "$fam" raw OUTPUT ISTIO_OUTPUT
  for t in mangle nat raw; do
    delete_chain "$fam" "$t" ISTIO_PRERT
    delete_chain "$fam" "$t" ISTIO_OUTPUT
  done
  local ipf="-4"
  [[ $fam == 6 ]] && ipf="-6"
  local n=0
  while [[ $(ip "$ipf" rule show pref "$RULE_PREF" 2>/dev/null) == *"lookup $ROUTE_TABLE"* ]] \
        && (( n++ < 16 )); do
    ip "$ipf" rule del pref "$RULE_PREF" lookup "$ROUTE_TABLE"
  done
  ip "$ipf" route flush table "$ROUTE_TABLE" 2>/dev/null || true
}

if [[ $(id -u) != 0 ]]; then
  echo "inpod-iptables.sh: must run as root (CAP_NET_ADMIN) inside the pod netns" >&2
  exit 1
fi

case "$CMD" in
  install)
    for f in $(families); do install_family "$f"; done
    ;;
  remove)
    # Always try both families: v6 may have been programmed with a different flag set.
    remove_family 4
    if ip6tables -t nat -S >/dev/null 2>&1; then remove_family 6; fi
    ;;
  show)
    iptables-save 2>/dev/null | grep -E '^\*|ISTIO' || true
    ip rule show; ip route show table "$ROUTE_TABLE" 2>/dev/null || true
    ;;
esac
