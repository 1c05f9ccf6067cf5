#!/usr/bin/env bash
# scripts/demo-waypoint.sh [BIN_DIR] — the seeds' "Calculate" traffic-management story through
# our waypoint, for `make demo`. Two nodes (network namespaces), each with ambient-cni and a
# ztunnel; `controlplane serve` compiles the YAML in a directory; the waypoint runs in its own
# pod netns; calculate v1 (cat-plus, adds) on node 1 and v2 (dog-multi, multiplies) on node 2;
# a client pod calls the calculate service with curl. The demo edits the VirtualService YAML
# live and shows each step's effect: canary 90/10, blue/green 0/100, dark launch by header
# `version: dog`, a 2 s timeout against a v1 that sleeps 20 s, retries, abort 503 at 50%.
#
# The topology and the mesh YAML are tests/66-waypoint-e2e/lib.sh (the end-to-end suite runs
# the same mesh). Each outcome is printed with ✔ (as expected) or ✘; the exit status is
# non-zero when anything was not as expected. Everything created (zt-demo-wp-* namespaces,
# processes, temp files) is removed on exit. Needs root.
# ok()/bad() always return 0, so "cond && ok || bad" is a safe if/else.
# shellcheck disable=SC2015,SC2034,SC1091
set -uo pipefail

# shellcheck source=lib/demo.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/demo.sh"
demo_setup demo-waypoint "${1:-}"
demo_require demo-waypoint "$ZT_BIN" "$CNI_BIN" "$CP_BIN" "$WP_BIN"

source "$ZT_ROOT/tests/lib/netns.sh"
source "$ZT_ROOT/tests/50-node-e2e/lib.sh"
source "$ZT_ROOT/tests/66-waypoint-e2e/lib.sh"

if [[ -t 1 ]]; then B=$'\e[1m'; G=$'\e[32m'; R=$'\e[31m'; N=$'\e[0m'; else B=; G=; R=; N=; fi
UNEXPECTED=0
step() { echo; echo "${B}== $*${N}"; }
say() { echo "   $*"; }
ok() { echo "   ${G}✔${N} $*"; }
bad() { echo "   ${R}✘ $*${N}"; UNEXPECTED=$((UNEXPECTED + 1)); }
indent() { sed 's/^/     /'; }

nsx_init demo-wp
T="$NSX_TMP"
WP_MESH="$T/mesh"
VIP="http://$WP_VIP"
ZN_UID_PREFIX="demo-"
# The seeds' numbers: a 2 s timeout on calculate, abort 503 for half of the requests.
WP_TIMEOUT=2s
WP_ABORT_PCT=50

# calls N [CURL-ARGS...] — N calls of /calc from the client on one keep-alive connection;
# prints "cats dogs other".
calls() {
  local n="$1"; shift
  nsx_exec client curl -s --max-time 60 -o /dev/null -w '%{http_code} %header{x-app-version}\n' "$@" \
    "$VIP/calc?a=6&b=7&i=[1-$n]" |
    awk '$1 == 200 && $2 == "cat-plus" { c++ } $1 == 200 && $2 == "dog-multi" { d++ } $1 != 200 { o++ }
         END { printf "%d %d %d\n", c, d, o }'
}
bar() { printf '%*s' "$(( $1 * 50 / ($2 > 0 ? $2 : 1) ))" '' | tr ' ' '#'; }  # bar N TOTAL
show_split() {  # show_split CATS DOGS OTHER
  local total=$(($1 + $2 + $3))
  say "$(printf '🐱 cat-plus  (v1, 6+7=13) %4d  %s' "$1" "$(bar "$1" "$total")")"
  say "$(printf '🐶 dog-multi (v2, 6x7=42) %4d  %s' "$2" "$(bar "$2" "$total")")"
  [[ $3 == 0 ]] || say "   other answers: $3"
}
edit() {  # edit CAT DOG — rewrite the VirtualService and wait for the waypoint to apply it
  wp_vs "$1" "$2"
  say "edited $WP_MESH/30-vs.yaml: default route cat-with-plus $1 / dog-with-multi $2"
  if out=$(wp_wait_weights "$1" "$2" 15); then ok "the controlplane pushed the change; the waypoint runs it"
  else bad "the waypoint did not apply the edit: $out"; fi
}

step "1. Two nodes, the calculate app, a waypoint — all from YAML in $WP_MESH"
say "node 1: controlplane serve (xDS + CA), ambient-cni, ztunnel; pods client 10.99.1.1,"
say "        cat-1 10.99.1.2 (calculate v1, version: cat-plus), waypoint-0 10.99.1.9"
say "node 2: ambient-cni, ztunnel; pod dog-1 10.99.2.2 (calculate v2, version: dog-multi)"
say "Service calculate 10.99.200.10:80, labelled istio.io/use-waypoint: waypoint; DestinationRule"
say "subsets cat-with-plus / dog-with-multi. The waypoint pod is labelled istio.io/dataplane-mode: none."
WP_CAT0=90 WP_DOG0=10
if wp_bringup >"$T/bringup.out" 2>&1; then
  ok "controlplane, both ztunnels and the waypoint are up (waypoint identity $(zn_spiffe e2e waypoint))"
else
  bad "bring-up failed:"; indent <"$T/bringup.out"; NSX_KEEP_TMP=1; exit 1
fi
say "the path of every call: client -> ztunnel (node 1) -HBONE-> waypoint -HBONE-> ztunnel of the chosen pod -> app"

step "2. Canary: 90 -> cat-with-plus, 10 -> dog-with-multi (200 calls)"
read -r c d o < <(calls 200)
show_split "$c" "$d" "$o"
[[ $o == 0 && $c -gt $d && $d -gt 0 ]] && ok "mostly cats, sometimes dogs" || bad "expected mostly cats, some dogs"

step "3. Blue/green: weights 0 / 100"
edit 0 100
read -r c d o < <(calls 40)
show_split "$c" "$d" "$o"
[[ $c == 0 && $o == 0 && $d == 40 ]] && ok "only dogs" || bad "expected only dogs"

step "4. Dark launch: header 'version: dog' -> dog-with-multi, everything else -> cat-with-plus"
edit 100 0
read -r c d o < <(calls 20)
say "without the header:"; show_split "$c" "$d" "$o"
read -r c2 d2 o2 < <(calls 20 -H 'version: dog')
say "with 'version: dog':"; show_split "$c2" "$d2" "$o2"
[[ $c == 20 && $d2 == 20 ]] && ok "cats, unless the request carries version: dog" || bad "dark launch did not route by header"

step "5. Timeout: v1 sleeps 20 s per calculation; the VirtualService says timeout: $WP_TIMEOUT"
start=$(date +%s.%N)
r=$(nsx_exec client curl -s --max-time 30 -w ' [HTTP %{http_code}]' "$VIP/slow?s=20")
took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
say "client got: $r after ${took} s"
[[ $r == *"[HTTP 504]" ]] && ok "'Timeout Error' (504 upstream request timeout) after the route timeout, not 20 s" || bad "expected 504"
grep -E 'path="?/slow' "$T/waypoint.log" | tail -n 1 | grep -oE 'response_code=[0-9]+ response_flags=[A-Z-]+' | sed 's/^/   waypoint access log: /'

step "6. Retries: v1 answers 503 on /fail; retries {attempts: 3, perTryTimeout: 2s, retryOn: 5xx}"
before=$(grep -c 'path=/fail' "$T/app-cat.log")
r=$(nsx_exec client curl -s --max-time 30 -w ' [HTTP %{http_code}]' "$VIP/fail" | tr -d '\n')
tries=$(( $(grep -c 'path=/fail' "$T/app-cat.log") - before ))
say "client got: $r; the v1 back end counted $tries tries"
[[ $r == *"[HTTP 503]" && $tries == 4 ]] && ok "1 try + 3 retries, then the error" || bad "expected 4 tries and a 503"
grep -E 'path="?/fail' "$T/waypoint.log" | tail -n 1 | grep -oE 'response_code=[0-9]+ response_flags=[A-Z-]+|attempts=[0-9]+' | tr '\n' ' ' | sed 's/^/   waypoint access log: /; s/$/\n/'

step "7. Fault injection: abort 503 for ${WP_ABORT_PCT}% of the calls carrying x-fault: abort (40 calls)"
read -r c d o < <(calls 40 -H 'x-fault: abort')
show_split "$c" "$d" "$o"
say "($o of 40 got 503 Service Unavailable, 'fault filter abort', response flag FI)"
[[ $o -gt 0 && $c -gt 0 ]] && ok "503 at about that probability; the rest served" || bad "expected a mix of 503s and answers"

step "8. What the waypoint reports (istio_requests_total, reporter=waypoint)"
wp_metrics | grep -E '^istio_requests_total\{' | sed -E 's/.*destination_workload="([^"]*)".*response_code="([^"]*)".*response_flags="([^"]*)".*\} (.*)/\1 code=\2 flags=\3 count=\4/' \
  | sort | head -n 12 | indent

echo
if [[ $UNEXPECTED == 0 ]]; then echo "${G}waypoint demo complete: every outcome as expected${N}"
else echo "${R}waypoint demo complete: $UNEXPECTED outcome(s) not as expected (logs kept in $T)${N}"; NSX_KEEP_TMP=1; fi
[[ $UNEXPECTED == 0 ]]
