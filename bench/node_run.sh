#!/usr/bin/env bash
# bench/node_run.sh [BIN_DIR] — node-mode (PROXY_MODE=shared, in-pod capture) benchmarks.
#
# Role: measures, in ONE run on the same topology, what two node ztunnels add to pod->pod
# traffic and what they cost, next to the same traffic without a mesh and through an
# off-the-shelf mTLS tunnel (stunnel pair):
#   1. latency at a fixed ~1000 requests/s (HTTP/1.1, 1 KiB responses, keep-alive; wrk -t1
#      -c10 with a 10 ms Lua delay) for direct / two ztunnels / stunnel pair: P50/P90/P99,
#      the latency the ztunnels add, and CPU-µs per request of EACH ztunnel process;
#   2. 10,000 concurrent idle tunnelled connections (bench/node_tool.c hold): every one
#      carries a request end to end, is held idle, then carries a second request and stays
#      open 5 s more; RSS of each ztunnel before, while holding (after 1 request each), after
#      the 2nd request, after release, RSS per connection, CPU per connection set-up; the
#      whole cycle runs twice (is memory reused or does it climb?);
#   3. bulk pod->pod throughput (iperf3, 1 stream): direct / two ztunnels / stunnel pair, Gbps
#      and CPU-s per GB per proxy process.
#
# Topology (tests/50-node-e2e/lib.sh, namespaces zt-node-bench-*):
#   node 1 (n1): cli-m 10.99.1.1  mesh client (added with `ambient-cni add`)
#                cli-p 10.99.1.11 plain client (not in the mesh; runs the stunnel client)
#   node 2 (n2): srv-m 10.99.2.2  mesh server (added with `ambient-cni add`)
#                srv-p 10.99.2.12 plain server (not in the mesh; runs the stunnel server)
#   each node runs `ambient-cni serve` and one shared-mode ztunnel in the node netns; mesh
#   traffic goes cli-m -> (in-pod REDIRECT) ztunnel n1 :15001 -> HBONE -> ztunnel n2 :15008
#   (inside srv-m's netns) -> app. Direct and stunnel traffic use the plain pods, so all three
#   paths exist at once and the runs are interleaved round by round (noise hits all alike).
#
# Knobs (env): NODE_BENCH_ROUNDS (3) x NODE_BENCH_LAT_SECS (10) latency runs per path,
# NODE_BENCH_CONNS (10000; 0 skips) NODE_BENCH_HOLD_SECS (10) NODE_BENCH_HOLD_REPEAT (2),
# NODE_BENCH_TP_RUNS (3; 0 skips) x
# NODE_BENCH_TP_SECS (5), NODE_BENCH_WORKERS (2: ztunnel worker threads, upstream's default),
# NODE_BENCH_LOG (info: ztunnel RUST_LOG), NODE_BENCH_ZT_ENV (extra env), NODE_BENCH_MTU (65000, like bench/lib.sh;
# 1500 for a pod-like wire), NODE_BENCH_WAIT_LOAD (unset: do not wait; e.g. 1.5 = wait up to
# NODE_BENCH_WAIT_MAX s (600) for the 1-minute load average to drop below it first),
# NODE_BENCH_OUT (directory that keeps results.txt + logs; default: a temp dir kept only on
# failure). Needs root, ~4-5 minutes; a watchdog ends the run at NODE_BENCH_MAX_SECS (360).
# Invariants: every wait is bounded; every process is started through nsx_bg and every
# namespace through nsx_*, so the EXIT trap of tests/lib/netns.sh removes them.
# shellcheck disable=SC2034,SC2154   # ZT_PID_<tag> etc. are set indirectly (printf -v)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ZT_ROOT=$(cd "$HERE/.." && pwd)
BIN_DIR=$(cd "${1:-$ZT_ROOT/build/bin}" 2>/dev/null && pwd || echo "${1:-$ZT_ROOT/build/bin}")
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3
# NODE_BENCH_REPEAT (BENCH_REPEAT, 3): rounds of every phase (the hold cycle at least 2, as
# round 2 is the churn figure). BENCH_QUICK=1: 1 round of 2 s, 1,000 held connections for 2 s,
# only to check the script works (bench/run.sh passes both).
REPEAT=${NODE_BENCH_REPEAT:-${BENCH_REPEAT:-3}}
if [[ ${BENCH_QUICK:-0} == 1 ]]; then
  REPEAT=${NODE_BENCH_REPEAT:-1}
  : "${NODE_BENCH_LAT_SECS:=2}" "${NODE_BENCH_CONNS:=1000}" "${NODE_BENCH_HOLD_SECS:=2}" "${NODE_BENCH_TP_SECS:=2}"
fi
ROUNDS=${NODE_BENCH_ROUNDS:-$REPEAT}
LAT_SECS=${NODE_BENCH_LAT_SECS:-10}
CONNS=${NODE_BENCH_CONNS:-10000}
HOLD_SECS=${NODE_BENCH_HOLD_SECS:-10}
TP_RUNS=${NODE_BENCH_TP_RUNS:-$REPEAT}
TP_SECS=${NODE_BENCH_TP_SECS:-5}
WORKERS=${NODE_BENCH_WORKERS:-2}
MTU=${NODE_BENCH_MTU:-65000}
MAX_SECS=${NODE_BENCH_MAX_SECS:-$((240 + 110 * REPEAT))}
CLK_TCK=$(getconf CLK_TCK)

# shellcheck source=../tests/lib/netns.sh
source "$ZT_ROOT/tests/lib/netns.sh"
# shellcheck source=../tests/50-node-e2e/lib.sh
source "$ZT_ROOT/tests/50-node-e2e/lib.sh"

say() { echo "$*" >&2; }
die() { say "node_run: $*"; NSX_KEEP_TMP=1; say "logs kept in ${T:-?}"; exit 1; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
cputicks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# mark_hwm PHASE — record both ztunnels' peak RSS so far (tells which phase set the peak).
mark_hwm() { result "hwm.$1.n1_kb=$(hwm_kb "$ZT1")"; result "hwm.$1.n2_kb=$(hwm_kb "$ZT2")"; say "   peak RSS (VmHWM) so far after $1: n1 $(hwm_kb "$ZT1") kB, n2 $(hwm_kb "$ZT2") kB"; }
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
range() { sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {if (NR) printf "%s-%s", lo, hi; else print "nan"}'; }
result() { echo "$*" >>"$T/results.txt"; }
val() { local v; v=$(grep -h "^$1=" "$T/results.txt" 2>/dev/null | tail -n1 | cut -d= -f2-); echo "${v:-nan}"; }
sgn() { case $1 in -* | nan) echo "$1" ;; *) echo "+$1" ;; esac; }   # +N for an added latency
calc() { awk "BEGIN {printf \"$1\", $2}"; }   # calc FORMAT EXPR

[[ $(id -u) == 0 ]] || { echo "bench/node_run.sh needs root (network namespaces)" >&2; exit 1; }
for t in wrk iperf3 stunnel4 haproxy gcc curl ip iptables; do
  command -v "$t" >/dev/null 2>&1 || { echo "node_run: missing tool $t (apt-get install wrk iperf3 stunnel4 haproxy gcc curl iproute2 iptables)" >&2; exit 1; }
done
for b in ztunnel ambient-cni; do
  [[ -x $BIN_DIR/$b ]] || { echo "node_run: $BIN_DIR/$b not built (make build)" >&2; exit 1; }
done

# ---- load check --------------------------------------------------------------------------
if [[ -n ${NODE_BENCH_WAIT_LOAD:-} ]]; then
  waited=0
  while awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v m="$NODE_BENCH_WAIT_LOAD" 'BEGIN {exit !(l > m)}'; do
    (( waited >= ${NODE_BENCH_WAIT_MAX:-600} )) && { say "load still $(loadavg) after ${waited}s; measuring anyway"; break; }
    (( waited % 60 == 0 )) && say "load average $(loadavg) > $NODE_BENCH_WAIT_LOAD: waiting (${waited}s so far)"
    sleep 10; waited=$((waited + 10))
  done
fi
LOAD_START=$(loadavg)
RUN_T0=$(date +%s)

nsx_init node-bench
T=$NSX_TMP
: >"$T/results.txt"
# Watchdog: the run is bounded even if something hangs (TERM runs the cleanup trap).
nsx_bg_watchdog() {
  setsid bash -c "sleep $MAX_SECS; echo 'node_run: watchdog: ${MAX_SECS}s elapsed, aborting' >&2; kill -TERM $$" \
    </dev/null >/dev/null 2>&1 &
  NSX_PIDS+=("$!")
}
nsx_bg_watchdog

# File descriptors: 10k held connections need ~10k fds in the client, the server app and
# each ztunnel. Raise the soft limit to the hard one (children inherit it).
ulimit -n "$(ulimit -Hn)" 2>/dev/null
FD_LIMIT=$(ulimit -n)
if [[ $FD_LIMIT != unlimited ]] && (( FD_LIMIT < CONNS + 500 )); then
  say "node_run: fd limit $FD_LIMIT is below $CONNS held connections + 500; lowering NODE_BENCH_CONNS"
  CONNS=$((FD_LIMIT - 500))
fi

# Private copies of the binaries: a rebuild of build/bin during the run cannot swap them.
mkdir -p "$T/bin"
cp "$BIN_DIR/ztunnel" "$BIN_DIR/ambient-cni" "$T/bin/"
ZT_BIN=$T/bin/ztunnel
CNI_BIN=$T/bin/ambient-cni
gcc -O2 -o "$T/bin/node_tool" "$HERE/node_tool.c" || die "node_tool.c did not compile"
TOOL=$T/bin/node_tool

# ---- topology ------------------------------------------------------------------------------
IP_CM=10.99.1.1 IP_CP=10.99.1.11 IP_SM=10.99.2.2 IP_SP=10.99.2.12
zn_node 1
zn_node 2
zn_link 1 2
zn_pod 1 cli-m "$IP_CM"
zn_pod 1 cli-p "$IP_CP"
zn_pod 2 srv-m "$IP_SM"
zn_pod 2 srv-p "$IP_SP"
for n in 1 2; do
  ip -n "$(nsx_ns "n$n")" link set br0 mtu "$MTU"
  ip -n "$(nsx_ns "n$n")" link set uplink mtu "$MTU"
done
for p in 1:cli-m 1:cli-p 2:srv-m 2:srv-p; do
  n=${p%%:*} pod=${p#*:}
  ip -n "$(nsx_ns "n$n")" link set "v-$pod" mtu "$MTU"
  ip -n "$(nsx_ns "$pod")" link set eth0 mtu "$MTU"
done

ZN_CA=$T/cacerts
ZN_MESH=$T/mesh.yaml
"$ZT_ROOT/scripts/make-cacerts.sh" "$ZN_CA" "$ZT_TRUST_DOMAIN" >"$T/cacerts.log" 2>&1 || die "make-cacerts.sh failed"
cat >"$ZN_MESH" <<EOF
# node_run.sh: the two mesh pods; the plain pods are absent (unknown destinations pass through).
workloads:
- uid: bench-cli-m
  name: cli-m
  namespace: bench
  serviceAccount: client
  workloadIps: ["$IP_CM"]
  protocol: HBONE
  node: node-1
  canonicalName: cli
  canonicalRevision: v1
- uid: bench-srv-m
  name: srv-m
  namespace: bench
  serviceAccount: server
  workloadIps: ["$IP_SM"]
  protocol: HBONE
  node: node-2
  canonicalName: srv
  canonicalRevision: v1
EOF

# Apps: the 1 KiB HTTP origin (8080) and iperf3 (5201) in both server pods.
for p in srv-m srv-p; do
  nsx_bg "$p" "$T/app-$p.log" "$TOOL" serve 0.0.0.0:8080
  nsx_bg "$p" "$T/iperf-$p.log" iperf3 -s -p 5201
done
for p in srv-m srv-p; do
  wait_for_port "$p" 8080 5 && wait_for_port "$p" 5201 5 || die "apps in $p did not start"
done

# ---- node agents, node ztunnels, pods --------------------------------------------------------
# nb_zt_start N TAG — like zn_zt_start, with the worker count and log level of this bench.
# NODE_BENCH_ZT_ENV: extra VAR=VALUE words for both ztunnels (e.g. GLIBC_TUNABLES=..., LD_PRELOAD=...).
nb_zt_start() {
  local n="$1" tag="$2"
  local -a extra
  read -r -a extra <<<"${NODE_BENCH_ZT_ENV:-}"
  nsx_bg_env "n$n" "$T/zt-$tag.log" "${extra[@]}" \
    PROXY_MODE=shared INPOD_UDS="$(zn_sock "$n")" LOCAL_XDS_PATH="$ZN_MESH" LOCAL_CA_DIR="$ZN_CA" \
    XDS_ADDRESS= TRUST_DOMAIN="$ZT_TRUST_DOMAIN" NODE_NAME="node-$n" PACKET_MARK=1337 \
    RUST_LOG="${NODE_BENCH_LOG:-info}" LOG_FORMAT=plain ZTUNNEL_WORKER_THREADS="$WORKERS" \
    ADMIN_ADDR=127.0.0.1:15000 STATS_ADDR="[::]:15020" READINESS_ADDR="[::]:15021" \
    -- "$ZT_BIN"
  printf -v "ZT_PID_$tag" '%s' "$NSX_LAST_PID"
  printf -v "ZT_OFF_$tag" '%s' 0
  printf -v "ZT_NODE_$tag" '%s' "$n"
}
for n in 1 2; do
  zn_cni_start "$n" >"$T/cni-start-$n.out" 2>&1 || die "ambient-cni serve on node $n: $(cat "$T/cni-start-$n.out")"
done
nb_zt_start 1 n1
nb_zt_start 2 n2
for n in 1 2; do
  zn_zt_wait_ready "n$n" 20 >"$T/ready-$n.out" 2>&1 || die "ztunnel on node $n not ready: $(cat "$T/ready-$n.out")"
  zn_wait_cni_ztunnels "$n" 1 10 >/dev/null || die "ztunnel on node $n did not connect to ambient-cni"
done
ZT1=$ZT_PID_n1 ZT2=$ZT_PID_n2
ZN_UID_PREFIX=bench-
zn_cni_add 1 cli-m bench client >"$T/add.out" 2>&1 || die "ambient-cni add cli-m: $(cat "$T/add.out")"
zn_cni_add 2 srv-m bench server >"$T/add.out" 2>&1 || die "ambient-cni add srv-m: $(cat "$T/add.out")"
for p in cli-m srv-m; do
  for port in 15001 15006 15008; do
    wait_for_port "$p" "$port" 10 || die "ztunnel listener $port missing in $p"
  done
done
zn_wait_pods n1 1 10 >/dev/null && zn_wait_pods n2 1 10 >/dev/null || die "pods not in workloadState"

# Probes: each path answers with the 1 KiB body, and the mesh path really goes through both
# ztunnels (their connection metrics count it).
probe() {  # probe POD URL
  local out
  out=$(nsx_exec "$1" curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 5 "$2" 2>&1)
  [[ $out == "200 1024" ]] || die "probe $2 from $1 answered '$out'"
}
probe cli-p "http://$IP_SP:8080/probe"
probe cli-m "http://$IP_SM:8080/probe"
zn_expect_metric n1 istio_tcp_connections_opened_total reporter=source >/dev/null \
  || die "mesh probe not seen by ztunnel n1 (no source-reported connection metric)"
zn_expect_metric n2 istio_tcp_connections_opened_total reporter=destination >/dev/null \
  || die "mesh probe not seen by ztunnel n2 (no destination-reported connection metric)"

# stunnel pair between the plain pods (same CA as the ztunnels, P-256 leaves, mTLS 1.3):
# cli-p 127.0.0.1:25321 -> srv-p :25322 -> 127.0.0.1:8080, and :25221 -> :25222 -> :5201.
"$ZT_ROOT/scripts/issue-cert.sh" "$ZN_CA" "$(zn_spiffe bench client)" "$T/cert-c" >/dev/null 2>&1 \
  && "$ZT_ROOT/scripts/issue-cert.sh" "$ZN_CA" "$(zn_spiffe bench server)" "$T/cert-s" >/dev/null 2>&1 \
  || die "issue-cert.sh failed"
{
  printf 'foreground = yes\npid =\ndebug = 3\n'
  for s in http:25322:8080 iperf:25222:5201; do
    IFS=: read -r name sport aport <<<"$s"
    printf '[%s]\naccept = %s:%s\nconnect = 127.0.0.1:%s\ncert = %s\nkey = %s\nCAfile = %s\nverifyChain = yes\nrequireCert = yes\nsslVersionMin = TLSv1.3\n' \
      "$name" "$IP_SP" "$sport" "$aport" "$T/cert-s/chain.pem" "$T/cert-s/key.pem" "$T/cert-s/root.pem"
  done
} >"$T/st_srv.conf"
{
  printf 'foreground = yes\npid =\ndebug = 3\n'
  for s in http:25321:25322 iperf:25221:25222; do
    IFS=: read -r name cport sport <<<"$s"
    printf '[%s]\nclient = yes\naccept = 127.0.0.1:%s\nconnect = %s:%s\ncert = %s\nkey = %s\nCAfile = %s\nverifyChain = yes\nsslVersionMin = TLSv1.3\n' \
      "$name" "$cport" "$IP_SP" "$sport" "$T/cert-c/chain.pem" "$T/cert-c/key.pem" "$T/cert-c/root.pem"
  done
} >"$T/st_cli.conf"
nsx_bg srv-p "$T/stunnel-srv.log" stunnel4 "$T/st_srv.conf"; ST_S=$NSX_LAST_PID
nsx_bg cli-p "$T/stunnel-cli.log" stunnel4 "$T/st_cli.conf"; ST_C=$NSX_LAST_PID
for pp in cli-p:25321 cli-p:25221 srv-p:25322 srv-p:25222; do
  wait_for_port "${pp%%:*}" "${pp#*:}" 10 || die "stunnel port $pp not listening: $(tail -n 5 "$T"/stunnel-*.log)"
done
probe cli-p "http://127.0.0.1:25321/probe"

# HAProxy pair (the second anchor), TCP mode, mutual TLS 1.3 with the same chains as stunnel,
# one thread each, HAProxy's default TLS session reuse (as bench/lib.sh bench_start_haproxy):
# cli-p 127.0.0.1:25323 -> srv-p :25324 -> 127.0.0.1:8080, and :25223 -> :25224 -> :5201.
for c in c s; do cat "$T/cert-$c/chain.pem" "$T/cert-$c/key.pem" >"$T/cert-$c/haproxy.pem"; done
{
  printf 'global\n  nbthread 1\n  maxconn 4096\n  ssl-default-bind-options ssl-min-ver TLSv1.3\n'
  printf 'defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n'
  for s in http:25324:8080 iperf:25224:5201; do
    IFS=: read -r name sport aport <<<"$s"
    printf 'listen %s\n  bind %s:%s ssl crt %s ca-file %s verify required\n  server app 127.0.0.1:%s\n' \
      "$name" "$IP_SP" "$sport" "$T/cert-s/haproxy.pem" "$T/cert-s/root.pem" "$aport"
  done
} >"$T/hap_srv.cfg"
{
  printf 'global\n  nbthread 1\n  maxconn 4096\n  ssl-default-server-options ssl-min-ver TLSv1.3\n'
  printf 'defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n'
  for s in http:25323:25324 iperf:25223:25224; do
    IFS=: read -r name cport sport <<<"$s"
    printf 'listen %s\n  bind 127.0.0.1:%s\n  server tunnel %s:%s ssl crt %s ca-file %s verify required\n' \
      "$name" "$cport" "$IP_SP" "$sport" "$T/cert-c/haproxy.pem" "$T/cert-c/root.pem"
  done
} >"$T/hap_cli.cfg"
nsx_bg srv-p "$T/haproxy-srv.log" haproxy -db -f "$T/hap_srv.cfg"; HAP_S=$NSX_LAST_PID
nsx_bg cli-p "$T/haproxy-cli.log" haproxy -db -f "$T/hap_cli.cfg"; HAP_C=$NSX_LAST_PID
for pp in cli-p:25323 cli-p:25223 srv-p:25324 srv-p:25224; do
  wait_for_port "${pp%%:*}" "${pp#*:}" 10 || die "haproxy port $pp not listening: $(tail -n 5 "$T"/haproxy-*.log)"
done
probe cli-p "http://127.0.0.1:25323/probe"
# Idle memory of every contender before any load (the ztunnels hold one pod each).
sleep 1
for k in n1:"$ZT_PID_n1" n2:"$ZT_PID_n2" stc:"$ST_C" sts:"$ST_S" hpc:"$HAP_C" hps:"$HAP_S"; do
  result "idle0.${k%%:*}.rss_kb=$(rss_kb "${k#*:}")"
done

say "node_run: topology ready in $(( $(date +%s) - RUN_T0 ))s; load $(loadavg); ztunnel workers $WORKERS, MTU $MTU, fd limit $FD_LIMIT"

# ---- 2. idle tunnelled connections -----------------------------------------------------------
# Run first, on fresh ztunnels, so memory freed by the other phases cannot be reused by the
# held connections and hide their cost. Repeated NODE_BENCH_HOLD_REPEAT (2) times: the
# figures of round 1 are the result; later rounds show whether memory comes back (RSS after
# release should not climb round after round).
HOLD_REPEAT=${NODE_BENCH_HOLD_REPEAT:-$(( REPEAT > 2 ? REPEAT : 2 ))}
# idle_round R — one open / hold / second request / linger / release cycle; results idle.rR.*
idle_round() {
  local r="$1" v k pid
  local -A before=() held=() fds0=() fdsh=() second=() after=()
  sleep 1
  local -A c0=() copen=() second1=()
  for k in n1 n2; do
    pid=${CPU_PIDS[$k]}; before[$k]=$(rss_kb "$pid"); fds0[$k]=$(fd_count "$pid"); held[$k]=0; fdsh[$k]=0
    c0[$k]=$(cputicks "$pid")
  done
  local tw_c tw_s
  tw_c=$(nsx_exec cli-m ss -Htan state time-wait | wc -l)
  tw_s=$(nsx_exec srv-m ss -Htan state time-wait | wc -l)
  say "   round $r: TIME_WAIT sockets before: cli-m $tw_c, srv-m $tw_s"
  result "idle.r$r.time_wait.cli_m=$tw_c"; result "idle.r$r.time_wait.srv_m=$tw_s"
  local -A perfpid=()
  if [[ ${NODE_BENCH_DIAG:-0} == 1 ]] && command -v perf >/dev/null 2>&1; then
    for k in n1 n2; do
      nsx_bg n1 "$T/perf-open$r-rec-$k.log" perf record -e cpu-clock -F 999 -g -o "$T/perf-open$r-$k.data" -p "${CPU_PIDS[$k]}"
      perfpid[$k]=$NSX_LAST_PID
    done
    sleep 0.5
  fi
  # The client lingers 5 s after the second request before closing everything.
  nsx_bg cli-m "$T/hold-$r.log" "$TOOL" hold "$IP_SM:8080" "$CONNS" "$HOLD_SECS" 200 5
  local hold_pid=$NSX_LAST_PID
  wait_for_file_match "$T/hold-$r.log" '^OPEN ' 100 || die "hold client never finished opening: $(tail -n 3 "$T/hold-$r.log")"
  for k in n1 n2; do copen[$k]=$(( $(cputicks "${CPU_PIDS[$k]}") - ${c0[$k]} )); done
  for k in "${!perfpid[@]}"; do kill -INT "${perfpid[$k]}" 2>/dev/null; done
  for k in "${!perfpid[@]}"; do
    for _ in $(seq 1 50); do nsx_alive "${perfpid[$k]}" || break; sleep 0.1; done
    perf report -i "$T/perf-open$r-$k.data" --stdio --no-children -g none --sort dso,sym 2>/dev/null \
      | grep -E '^ +[0-9]' | head -n 40 >"$T/perf-open$r-$k.txt"
    say "   round $r: perf $k while opening (top 8):"; head -n 8 "$T/perf-open$r-$k.txt" | cut -c1-150 | sed 's/^/      /' >&2
  done
  # Sample a few times while held; keep the largest (RSS settles once every stream is set up).
  local _
  for _ in $(seq 1 $(( HOLD_SECS > 4 ? 4 : 1 ))); do
    sleep $(( HOLD_SECS > 4 ? HOLD_SECS / 5 : 1 ))
    for k in n1 n2; do
      pid=${CPU_PIDS[$k]}
      v=$(rss_kb "$pid"); (( v > ${held[$k]} )) && held[$k]=$v
      v=$(fd_count "$pid"); (( v > ${fdsh[$k]} )) && fdsh[$k]=$v
    done
  done
  # After the second request on every connection, at +1 s and +4 s (still open, idle).
  wait_for_file_match "$T/hold-$r.log" '^CHECK ' 70 || say "   hold client: no CHECK line"
  sleep 1
  for k in n1 n2; do second1[$k]=$(rss_kb "${CPU_PIDS[$k]}"); done
  sleep 3
  for k in n1 n2; do second[$k]=$(rss_kb "${CPU_PIDS[$k]}"); done
  for _ in $(seq 1 300); do nsx_alive "$hold_pid" || break; sleep 0.1; done
  nsx_alive "$hold_pid" && { nsx_stop "$hold_pid" 2; say "   hold client did not finish in time"; }
  wait "$hold_pid" 2>/dev/null
  # "After release" means once each ztunnel has closed the tunnels' sockets (on a loaded
  # machine that takes seconds after the client is gone): wait (<= 30 s) until its fds are
  # back near the level before the round (the pooled HBONE connections may stay), then 2 s
  # more for the trim that follows the end of a burst.
  local t_rel=$SECONDS
  for k in n1 n2; do
    for _ in $(seq 1 300); do (( $(fd_count "${CPU_PIDS[$k]}") <= ${fds0[$k]} + 300 )) && break; sleep 0.1; done
  done
  result "idle.r$r.secs_until_closed=$(( SECONDS - t_rel ))"
  sleep 2
  for k in n1 n2; do after[$k]=$(rss_kb "${CPU_PIDS[$k]}"); done
  if [[ ${NODE_BENCH_MEMDIAG:-0} != 0 ]]; then
    # Where the memory of closed connections sits: mappings now, then what a malloc_trim(0)
    # (forced through gdb) gives back, i.e. free heap glibc had kept vs memory still in use.
    for k in n1 n2; do
      pid=${CPU_PIDS[$k]}
      say "   round $r: $k smaps_rollup after release: $(awk '/^(Rss|Anonymous|Private_Dirty):/ {printf "%s %s kB  ", $1, $2}' "/proc/$pid/smaps_rollup")"
      # Anonymous mappings by size (kB): count and resident total, largest resident first.
      "$PY" - "/proc/$pid/smaps" <<'PYEOF' | sort -rn | head -n 6 |
import re, sys
n, rss, anon, size = {}, {}, False, 0
for line in open(sys.argv[1]):
    m = re.match(r"([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(\S*)", line)
    if m:
        size, anon = (int(m.group(2), 16) - int(m.group(1), 16)) // 1024, m.group(3) == ""
    elif anon and line.startswith("Rss:"):
        n[size] = n.get(size, 0) + 1
        rss[size] = rss.get(size, 0) + int(line.split()[1])
for z in n: print(rss[z], z, n[z])
PYEOF
        while read -r res size count; do say "      $count anonymous mapping(s) of $size kB: $res kB resident"; done
      [[ ${NODE_BENCH_MEMDIAG} == 2 ]] || continue
      gdb -p "$pid" -batch -ex 'handle SIGPIPE nostop noprint pass' -ex 'call (int)malloc_trim(0)' -ex 'call (void)malloc_stats()' >"$T/gdb-$r-$k.log" 2>&1
      say "   round $r: $k RSS after a forced malloc_trim(0): $(rss_kb "$pid") kB (malloc_stats in zt-$k.log)"
    done
  fi
  local open_line check_line
  open_line=$(grep '^OPEN ' "$T/hold-$r.log")
  check_line=$(grep '^CHECK ' "$T/hold-$r.log" || echo "CHECK alive=0 (no result)")
  say "   round $r: $open_line"
  say "   round $r: $check_line"
  say "   round $r: the ztunnels had closed the tunnels' sockets $(val "idle.r$r.secs_until_closed") s after the client exited"
  result "idle.r$r.opened=$(sed -nE 's/.*OPEN ok=([0-9]+).*/\1/p' <<<"$open_line")"
  result "idle.r$r.open_secs=$(sed -nE 's/.* secs=([0-9.]+).*/\1/p' <<<"$open_line")"
  result "idle.r$r.alive_after_hold=$(sed -nE 's/.*alive=([0-9]+).*/\1/p' <<<"$check_line")"
  for k in n1 n2; do
    say "   round $r: ztunnel $k RSS ${before[$k]} -> ${held[$k]} kB holding (fds ${fds0[$k]} -> ${fdsh[$k]}), ${second1[$k]} / ${second[$k]} kB 1 s / 4 s after a 2nd request on each, ${after[$k]} kB after release; CPU to open them $(calc %.1f "${copen[$k]} * 1e6 / $CLK_TCK / $CONNS") us per connection"
    result "idle.r$r.$k.cpu_us_per_open=$(calc %.1f "${copen[$k]} * 1e6 / $CLK_TCK / $CONNS")"
    result "idle.r$r.$k.rss_kb.second_1s=${second1[$k]}"
    result "idle.r$r.$k.rss_kb.before=${before[$k]}"
    result "idle.r$r.$k.rss_kb.holding=${held[$k]}"
    result "idle.r$r.$k.rss_kb.second=${second[$k]}"
    result "idle.r$r.$k.rss_kb.after=${after[$k]}"
    result "idle.r$r.$k.fds.holding=${fdsh[$k]}"
    result "idle.r$r.$k.kib_per_conn=$(calc %.2f "(${held[$k]} - ${before[$k]}) / $CONNS")"
    result "idle.r$r.$k.kib_per_conn_second=$(calc %.2f "(${second[$k]} - ${before[$k]}) / $CONNS")"
  done
}
declare -A CPU_PIDS=([n1]=$ZT1 [n2]=$ZT2 [stc]=$ST_C [sts]=$ST_S [hpc]=$HAP_C [hps]=$HAP_S)
say "== idle connections: $CONNS through the ztunnels, held ${HOLD_SECS}s, $HOLD_REPEAT round(s)"
(( CONNS > 0 )) || HOLD_REPEAT=0   # NODE_BENCH_CONNS=0 skips this phase
for r in $(seq 1 "$HOLD_REPEAT"); do idle_round "$r"; mark_hwm "idle$r"; done

# ---- 1. latency at a fixed ~1000 requests/s ------------------------------------------------
printf 'function delay()\n  return 10\nend\n' >"$T/delay10.lua"
# to_us VALUE — wrk's "71.00us" / "1.23ms" / "1.00s" in µs.
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) f = 1; else if (v ~ /ms$/) f = 1000; else if (v ~ /s$/) f = 1e6; else f = 1; printf "%.0f", n * f }'; }
PATHS="direct mesh stunnel haproxy"
# The client-side and server-side proxy process of each path (keys of CPU_PIDS).
declare -A CLI_K=([mesh]=n1 [stunnel]=stc [haproxy]=hpc) SRV_K=([mesh]=n2 [stunnel]=sts [haproxy]=hps)
LAT_ROUND=0
declare -A LAT_POD=([direct]=cli-p [mesh]=cli-m [stunnel]=cli-p [haproxy]=cli-p)
declare -A LAT_URL=([direct]="http://$IP_SP:8080/1k" [mesh]="http://$IP_SM:8080/1k" [stunnel]="http://127.0.0.1:25321/1k"
                    [haproxy]="http://127.0.0.1:25323/1k")
# lat_run PATH SECS OUT — one wrk run; appends "p50 p90 p99 reqs rps errors" + per-process
# tick deltas "name=ticks" to $T/lat.PATH when OUT is "record".
lat_run() {
  local path="$1" secs="$2" mode="$3" k out
  local -A t0
  for k in "${!CPU_PIDS[@]}"; do t0[$k]=$(cputicks "${CPU_PIDS[$k]}"); done
  out=$(nsx_exec "${LAT_POD[$path]}" timeout $((secs + 15)) wrk -t1 -c10 -d"${secs}s" -s "$T/delay10.lua" \
        --latency "${LAT_URL[$path]}" 2>&1)
  local ticks=""
  for k in "${!CPU_PIDS[@]}"; do ticks+=" $k=$(( $(cputicks "${CPU_PIDS[$k]}") - ${t0[$k]} ))"; done
  [[ $mode == record ]] || return 0
  echo "$out" >>"$T/wrk-$path.log"
  local p50 p90 p99 reqs rps errs
  p50=$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")
  p90=$(to_us "$(awk '$1 == "90%" {print $2}' <<<"$out")")
  p99=$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
  errs=$(awk '/Socket errors:/ {gsub(",", ""); s = $4 + $6 + $8 + $10} /Non-2xx/ {s += $NF} END {print s + 0}' <<<"$out")
  if [[ -z $reqs || $reqs == 0 ]]; then
    say "   $path: wrk failed: $(tail -n 3 <<<"$out")"
    return 1
  fi
  echo "$p50 $p90 $p99 $reqs $rps $errs$ticks" >>"$T/lat.$path"
  # Per round, for the issue-11 rows: the two proxy processes of this path, by side.
  local tc=0 ts=0
  [[ -n ${CLI_K[$path]:-} ]] && { tc=$(grep -o " ${CLI_K[$path]}=[0-9-]*" <<<"$ticks" | cut -d= -f2); ts=$(grep -o " ${SRV_K[$path]}=[0-9-]*" <<<"$ticks" | cut -d= -f2); }
  echo "$LAT_ROUND $p50 $p90 $p99 $reqs $tc $ts" >>"$T/latrun.$path"
  say "   $path: ${rps} rps, P50 ${p50} us, P90 ${p90} us, P99 ${p99} us, errors $errs;$ticks (ticks of ${CLK_TCK}/s)"
}
say "== latency at ~1000 rps: wrk -t1 -c10 + 10 ms delay, 1 KiB responses, ${ROUNDS} x ${LAT_SECS}s per path"
for path in $PATHS; do lat_run "$path" 2 warm; done
for r in $(seq 1 "$ROUNDS"); do
  say "  round $r (load $(loadavg))"
  LAT_ROUND=$r
  for path in $PATHS; do lat_run "$path" "$LAT_SECS" record; done
done
mark_hwm latency
# NODE_BENCH_DIAG=1: one more mesh run under `perf record` (both ztunnels; top symbols in
# perf-n1.txt / perf-n2.txt), context switches per request of every proxy (untraced), and one
# mesh and one stunnel run under `strace -c -f` (syscalls per request, EAGAIN counts, in
# strace-{n1,n2,stc,sts}.txt). Not part of the figures above; the tracers slow the proxies.
if [[ ${NODE_BENCH_DIAG:-0} == 1 ]]; then
  if command -v perf >/dev/null 2>&1; then
    for k in n1 n2; do
      nsx_bg n1 "$T/perf-rec-$k.log" perf record -e cpu-clock -F 1999 -g -o "$T/perf-$k.data" -p "${CPU_PIDS[$k]}"
      printf -v "PERF_$k" '%s' "$NSX_LAST_PID"
    done
    sleep 0.5
    lat_run mesh "$LAT_SECS" diag
    for k in n1 n2; do v="PERF_$k"; kill -INT "${!v}" 2>/dev/null; done
    for k in n1 n2; do v="PERF_$k"; for _ in $(seq 1 100); do nsx_alive "${!v}" || break; sleep 0.1; done; done
    for k in n1 n2; do
      perf report -i "$T/perf-$k.data" --stdio --no-children -g none --sort dso,sym 2>/dev/null | grep -E '^ +[0-9]' | head -n 40 >"$T/perf-$k.txt"
      perf report -i "$T/perf-$k.data" --stdio --no-children -g none --sort dso 2>/dev/null | grep -E '^ +[0-9]' | head -n 12 >"$T/perf-dso-$k.txt"
      say "   perf $k (top by dso):"; sed 's/^/      /' "$T/perf-dso-$k.txt" >&2
    done
  fi
  # Wake-ups: context switches (voluntary + involuntary, all threads) per request of each
  # proxy process, untraced (strace's stops would add their own). Counted between 1.5 s and
  # 4.5 s of a 6 s run: stunnel runs a thread per connection, which exists only while wrk's
  # connections do; requests in the window = wrk's rate x 3 s.
  ctxsw() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s + 0}'; }
  for path in mesh stunnel haproxy; do
    declare -A cs0=()
    nsx_exec "${LAT_POD[$path]}" timeout 20 wrk -t1 -c10 -d6s -s "$T/delay10.lua" "${LAT_URL[$path]}" >"$T/wrk-ctxsw-$path.log" 2>&1 &
    wpid=$!
    sleep 1.5
    for k in "${CLI_K[$path]}" "${SRV_K[$path]}"; do cs0[$k]=$(ctxsw "${CPU_PIDS[$k]}"); done
    sleep 3
    line=""
    for k in "${CLI_K[$path]}" "${SRV_K[$path]}"; do cs0[$k]=$(( $(ctxsw "${CPU_PIDS[$k]}") - ${cs0[$k]} )); done
    wait "$wpid"
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$T/wrk-ctxsw-$path.log")
    for k in "${CLI_K[$path]}" "${SRV_K[$path]}"; do line+=" $k $(calc %.2f "${cs0[$k]} / (${rps:-1} * 3)")"; done
    say "   context switches per request ($path, ${rps:-?} requests/s):$line"
    result "diag.ctxsw_per_req.$path=${line# }"
  done
  if command -v strace >/dev/null 2>&1; then
    # The same count for the stunnel pair (same load, one 5 s run each): the calls per request
    # of ours next to the anchor's, errors (EAGAIN reads) in brackets.
    for path in mesh stunnel; do
      for k in "${CLI_K[$path]}" "${SRV_K[$path]}"; do
        nsx_bg n1 "$T/strace-$k.txt" strace -c -f -p "${CPU_PIDS[$k]}"
        printf -v "STRACE_$k" '%s' "$NSX_LAST_PID"
      done
      sleep 0.5
      out=$(nsx_exec "${LAT_POD[$path]}" timeout 20 wrk -t1 -c10 -d5s -s "$T/delay10.lua" "${LAT_URL[$path]}" 2>&1)
      sreqs=$(awk '/requests in/ {print $1}' <<<"$out")
      for k in "${CLI_K[$path]}" "${SRV_K[$path]}"; do v="STRACE_$k"; kill -INT "${!v}" 2>/dev/null; done
      sleep 1
      for k in "${CLI_K[$path]}" "${SRV_K[$path]}"; do
        say "   strace $k ($path): ${sreqs:-?} requests; calls [errors] per request by syscall:"
        awk -v n="${sreqs:-1}" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {e = (NF == 6) ? $5 : 0; printf "      %-16s %6.2f [%.2f]\n", $NF, $4 / n, e / n}' "$T/strace-$k.txt" | sort -k2 -gr | head -n 12 >&2
        awk -v n="${sreqs:-1}" '$NF == "total" {printf "      %-16s %6.2f\n", "all", $4 / n}' "$T/strace-$k.txt" >&2
      done
    done
  fi
fi

# col FILE N — column N of every run; tick_sum FILE NAME — sum of NAME=ticks over the runs.
col() { awk -v c="$2" '{print $c}' "$1" 2>/dev/null; }
tick_sum() { grep -o " $2=[0-9-]*" "$1" 2>/dev/null | cut -d= -f2 | awk '{s += $1} END {print s + 0}'; }
for path in $PATHS; do
  f=$T/lat.$path
  result "lat.$path.p50_us=$(col "$f" 1 | median)"
  result "lat.$path.p90_us=$(col "$f" 2 | median)"
  result "lat.$path.p99_us=$(col "$f" 3 | median)"
  result "lat.$path.p50_range=$(col "$f" 1 | range)"
  result "lat.$path.p90_range=$(col "$f" 2 | range)"
  result "lat.$path.p99_range=$(col "$f" 3 | range)"
  result "lat.$path.rps=$(col "$f" 5 | median)"
  reqs=$(col "$f" 4 | awk '{s += $1} END {print s + 0}')
  result "lat.$path.requests=$reqs"
  result "lat.$path.errors=$(col "$f" 6 | awk '{s += $1} END {print s + 0}')"
  for k in n1 n2 stc sts hpc hps; do
    if (( reqs > 0 )); then
      result "lat.$path.cpu_us_per_req.$k=$(calc %.1f "$(tick_sum "$f" "$k") * 1e6 / $CLK_TCK / $reqs")"
    else
      result "lat.$path.cpu_us_per_req.$k=nan"
    fi
  done
done
for q in p50 p90 p99; do
  # Added latency per round (same round, same noise), then the median over rounds.
  i=$(( ${q#p} == 50 ? 1 : ( ${q#p} == 90 ? 2 : 3 ) ))
  result "lat.added.mesh.${q}_us=$(paste -d' ' <(col "$T/lat.mesh" "$i") <(col "$T/lat.direct" "$i") | awk '{print $1 - $2}' | median)"
  result "lat.added.stunnel.${q}_us=$(paste -d' ' <(col "$T/lat.stunnel" "$i") <(col "$T/lat.direct" "$i") | awk '{print $1 - $2}' | median)"
  result "lat.added.haproxy.${q}_us=$(paste -d' ' <(col "$T/lat.haproxy" "$i") <(col "$T/lat.direct" "$i") | awk '{print $1 - $2}' | median)"
done

# ---- 3. bulk throughput ----------------------------------------------------------------------
declare -A TP_POD=([direct]=cli-p [mesh]=cli-m [stunnel]=cli-p [haproxy]=cli-p)
declare -A TP_HOST=([direct]="$IP_SP -p 5201" [mesh]="$IP_SM -p 5201" [stunnel]="127.0.0.1 -p 25221" [haproxy]="127.0.0.1 -p 25223")
say "== throughput: iperf3 1 stream, ${TP_RUNS} x ${TP_SECS}s per path"
for i in $(seq 1 "$TP_RUNS"); do
  for path in $PATHS; do
    declare -A t0=()
    for k in "${!CPU_PIDS[@]}"; do t0[$k]=$(cputicks "${CPU_PIDS[$k]}"); done
    # shellcheck disable=SC2086  # TP_HOST holds "HOST -p PORT"
    nsx_exec "${TP_POD[$path]}" timeout $((TP_SECS + 20)) iperf3 -c ${TP_HOST[$path]} -t "$TP_SECS" -J \
      >"$T/iperf-$path-$i.json" 2>&1
    line=$($PY - "$T/iperf-$path-$i.json" <<'EOF'
import json, sys
try:
    s = json.load(open(sys.argv[1]))["end"]["sum_received"]
    print("%d %.6f" % (s["bytes"], s["seconds"]))
except Exception:
    print("0 0")
EOF
)
    bytes=${line% *} secs=${line#* }
    if [[ $bytes == 0 ]]; then say "   $path run $i: iperf3 failed: $(head -c 300 "$T/iperf-$path-$i.json")"; continue; fi
    gbps=$(calc %.2f "$bytes * 8 / $secs / 1e9")
    desc=""
    for k in n1 n2 stc sts hpc hps; do
      dt=$(( $(cputicks "${CPU_PIDS[$k]}") - ${t0[$k]} ))
      { calc %.3f "($dt / $CLK_TCK) / ($bytes / 1e9)"; echo; } >>"$T/tp.$path.$k"
      desc+=" $k=$(calc %.2f "$dt / $CLK_TCK")s"
    done
    echo "$gbps" >>"$T/tp.$path"
    [[ -n ${CLI_K[$path]:-} ]] && echo "$i $gbps $(tail -n1 "$T/tp.$path.${CLI_K[$path]}") $(tail -n1 "$T/tp.$path.${SRV_K[$path]}")" >>"$T/tprun.$path"
    say "   $path run $i: $gbps Gbps; CPU$desc"
  done
done
mark_hwm throughput
for path in $PATHS; do
  [[ -s $T/tp.$path ]] || continue
  result "tp.$path.gbps=$(median <"$T/tp.$path")"
  result "tp.$path.gbps_range=$(range <"$T/tp.$path")"
  for k in n1 n2 stc sts hpc hps; do result "tp.$path.cpu_s_per_gb.$k=$(median <"$T/tp.$path.$k")"; done
done

# ---- summary ---------------------------------------------------------------------------------
LOAD_END=$(loadavg)
result "load.start=$LOAD_START"; result "load.end=$LOAD_END"
result "end.n1.rss_kb=$(rss_kb "$ZT1")"; result "end.n2.rss_kb=$(rss_kb "$ZT2")"
result "end.n1.hwm_kb=$(hwm_kb "$ZT1")"; result "end.n2.hwm_kb=$(hwm_kb "$ZT2")"
row() { printf '%-34s %9s %9s %9s %9s %10s\n' "$@"; }
echo
echo "=== node-mode benchmark ($(nproc) vCPU; load avg at start $LOAD_START, at end $LOAD_END;"
echo "    ztunnel PROXY_MODE=shared, $WORKERS workers, RUST_LOG=${NODE_BENCH_LOG:-info}; MTU $MTU; took $(( $(date +%s) - RUN_T0 ))s)"
echo
echo "1. fixed rate: wrk -t1 -c10 + 10 ms delay (~1000 rps), 1 KiB responses, keep-alive, cross-node;"
echo "   ${ROUNDS} x ${LAT_SECS}s per path, interleaved; median over rounds (µs) [range]"
row "path" "rps" "P50" "P90" "P99" "errors"
for path in $PATHS; do
  name=$path; [[ $path == mesh ]] && name="two node ztunnels (HBONE)"; [[ $path == stunnel ]] && name="stunnel pair (mTLS)"
  [[ $path == haproxy ]] && name="HAProxy pair (TCP, mTLS)"
  row "$name" "$(val "lat.$path.rps")" "$(val "lat.$path.p50_us")" "$(val "lat.$path.p90_us")" "$(val "lat.$path.p99_us")" "$(val "lat.$path.errors")"
  row "" "" "[$(val "lat.$path.p50_range")]" "[$(val "lat.$path.p90_range")]" "[$(val "lat.$path.p99_range")]" ""
done
row "added by the two ztunnels" "" "$(sgn "$(val lat.added.mesh.p50_us)")" "$(sgn "$(val lat.added.mesh.p90_us)")" "$(sgn "$(val lat.added.mesh.p99_us)")" ""
row "added by the stunnel pair" "" "$(sgn "$(val lat.added.stunnel.p50_us)")" "$(sgn "$(val lat.added.stunnel.p90_us)")" "$(sgn "$(val lat.added.stunnel.p99_us)")" ""
row "added by the HAProxy pair" "" "$(sgn "$(val lat.added.haproxy.p50_us)")" "$(sgn "$(val lat.added.haproxy.p90_us)")" "$(sgn "$(val lat.added.haproxy.p99_us)")" ""
row "upstream Istio 1.22 (two ztunnels)" "" "-" "+170" "+200" ""
echo "   CPU per request (utime+stime over all rounds / requests completed; upstream ~60 µs, target < 30):"
echo "     ztunnel node 1 (client side): $(val lat.mesh.cpu_us_per_req.n1) µs   ztunnel node 2 (server side): $(val lat.mesh.cpu_us_per_req.n2) µs"
echo "     stunnel client: $(val lat.stunnel.cpu_us_per_req.stc) µs   stunnel server: $(val lat.stunnel.cpu_us_per_req.sts) µs"
echo "     HAProxy client: $(val lat.haproxy.cpu_us_per_req.hpc) µs   HAProxy server: $(val lat.haproxy.cpu_us_per_req.hps) µs"
echo "     (ztunnels while only direct traffic ran: n1 $(val lat.direct.cpu_us_per_req.n1), n2 $(val lat.direct.cpu_us_per_req.n2) µs per direct request = idle cost)"
echo
echo "2. idle tunnelled connections, cli-m (node 1) -> srv-m:8080 (node 2), held ${HOLD_SECS}s (round 1 of $HOLD_REPEAT):"
echo "   requested $CONNS, opened $(val idle.r1.opened) (each carried a request), answered a 2nd request after the hold: $(val idle.r1.alive_after_hold)"
echo "   opened in $(val idle.r1.open_secs) s; RSS in kB, KiB per connection = (RSS - before) / $CONNS"
printf '%-24s %8s %9s %9s %10s %9s %9s %9s\n' "ztunnel" "before" "1 req" "KiB/conn" "2 reqs" "KiB/conn" "released" "µs/open"
for k in n1 n2; do
  name="node 1 (client side)"; [[ $k == n2 ]] && name="node 2 (server side)"
  printf '%-24s %8s %9s %9s %10s %9s %9s %9s\n' "$name" "$(val "idle.r1.$k.rss_kb.before")" "$(val "idle.r1.$k.rss_kb.holding")" \
    "$(val "idle.r1.$k.kib_per_conn")" "$(val "idle.r1.$k.rss_kb.second")" "$(val "idle.r1.$k.kib_per_conn_second")" \
    "$(val "idle.r1.$k.rss_kb.after")" "$(val "idle.r1.$k.cpu_us_per_open")"
done
for r in $(seq 2 "$HOLD_REPEAT"); do
  echo "   round $r: opened $(val "idle.r$r.opened") in $(val "idle.r$r.open_secs") s, alive $(val "idle.r$r.alive_after_hold"); RSS n1 $(val "idle.r$r.n1.rss_kb.before") -> $(val "idle.r$r.n1.rss_kb.holding") -> released $(val "idle.r$r.n1.rss_kb.after") kB, n2 $(val "idle.r$r.n2.rss_kb.before") -> $(val "idle.r$r.n2.rss_kb.holding") -> released $(val "idle.r$r.n2.rss_kb.after") kB"
done
echo "   fds held: n1 $(val idle.r1.n1.fds.holding), n2 $(val idle.r1.n2.fds.holding); target: <= 32 KiB per connection"
echo "   RSS at the end of the whole run: n1 $(val end.n1.rss_kb) kB, n2 $(val end.n2.rss_kb) kB (VmHWM $(val end.n1.hwm_kb) / $(val end.n2.hwm_kb) kB)"
echo
echo "3. bulk throughput, iperf3 1 stream, ${TP_RUNS} x ${TP_SECS}s per path: median Gbps [range], CPU-s per GB (median)"
row "path" "Gbps" "range" "client" "server" ""
row "direct" "$(val tp.direct.gbps)" "$(val tp.direct.gbps_range)" "-" "-" ""
row "two node ztunnels (HBONE)" "$(val tp.mesh.gbps)" "$(val tp.mesh.gbps_range)" "$(val tp.mesh.cpu_s_per_gb.n1)" "$(val tp.mesh.cpu_s_per_gb.n2)" ""
row "stunnel pair (mTLS)" "$(val tp.stunnel.gbps)" "$(val tp.stunnel.gbps_range)" "$(val tp.stunnel.cpu_s_per_gb.stc)" "$(val tp.stunnel.cpu_s_per_gb.sts)" ""
row "HAProxy pair (TCP, mTLS)" "$(val tp.haproxy.gbps)" "$(val tp.haproxy.gbps_range)" "$(val tp.haproxy.cpu_s_per_gb.hpc)" "$(val tp.haproxy.cpu_s_per_gb.hps)" ""
echo "   idle RSS before any load (kB): ztunnel n1 $(val idle0.n1.rss_kb), n2 $(val idle0.n2.rss_kb); stunnel client $(val idle0.stc.rss_kb), server $(val idle0.sts.rss_kb); HAProxy client $(val idle0.hpc.rss_kb), server $(val idle0.hps.rss_kb)"

# The issue-11 rows (bench/report.py): per round, ours = the two ztunnels, against the stunnel
# and HAProxy pairs of the same round. Memory rows are ours alone (the anchors hold no tunnels).
issue_rows() {
  local who path
  for path in mesh stunnel haproxy; do
    who=$path; [[ $path == mesh ]] && who=ours
    # round p50 p90 p99 reqs ticks_client ticks_server, minus the direct run of the same round.
    [[ -s $T/latrun.$path ]] && awk -v w="$who" -v hz="$CLK_TCK" 'NR == FNR {d50[$1] = $2; d90[$1] = $3; d99[$1] = $4; next}
      ($1 in d50) {printf "rep%d.node.added_p50.%s=%d\nrep%d.node.added_p90.%s=%d\nrep%d.node.added_p99.%s=%d\n", $1, w, $2 - d50[$1], $1, w, $3 - d90[$1], $1, w, $4 - d99[$1]}
      $5 > 0 {printf "rep%d.node.cpu_req_client.%s=%.2f\nrep%d.node.cpu_req_server.%s=%.2f\n", $1, w, $6 * 1e6 / hz / $5, $1, w, $7 * 1e6 / hz / $5}' \
      "$T/latrun.direct" "$T/latrun.$path"
    [[ -s $T/tprun.$path ]] && awk -v w="$who" '{printf "rep%d.node.tp_gbps.%s=%s\nrep%d.node.cpu_gb_client.%s=%s\nrep%d.node.cpu_gb_server.%s=%s\n", $1, w, $2, $1, w, $3, $1, w, $4}' "$T/tprun.$path"
  done
  # Idle RSS: the larger of the two ztunnels; for scale, the anchors' server side.
  awk -v a="$(val idle0.n1.rss_kb)" -v b="$(val idle0.n2.rss_kb)" 'BEGIN {printf "node.idle_rss_mb.ours=%.2f\n", (a > b ? a : b) / 1000}'
  awk -v a="$(val idle0.sts.rss_kb)" 'BEGIN {printf "node.idle_rss_mb.stunnel=%.2f\n", a / 1000}'
  awk -v a="$(val idle0.hps.rss_kb)" 'BEGIN {printf "node.idle_rss_mb.haproxy=%.2f\n", a / 1000}'
  local r k worst
  for r in $(seq 1 "$HOLD_REPEAT"); do
    # RSS after round r's connections closed over the RSS before round 1 (the larger of n1, n2);
    # KiB per held tunnel (the larger side); churn: round r's open time over round 1's.
    worst=0
    for k in n1 n2; do
      worst=$(awk -v w="$worst" -v a="$(val "idle.r$r.$k.rss_kb.after")" -v b="$(val "idle.r1.$k.rss_kb.before")" 'BEGIN {x = (b > 0 && a != "nan") ? a / b : 0; printf "%.3f", (x > w ? x : w)}')
    done
    (( HOLD_REPEAT > 0 )) && [[ $worst != 0.000 ]] && echo "rep$r.node.rss_closed_over_idle.ours=$worst"
    # KiB per tunnel: round 1 only (fresh ztunnels; later rounds reuse round 1's freed memory).
    (( r == 1 )) && awk -v a="$(val "idle.r$r.n1.kib_per_conn")" -v b="$(val "idle.r$r.n2.kib_per_conn")" 'BEGIN {if (a != "nan" && b != "nan") printf "rep%d.node.kib_per_idle_tunnel.ours=%s\n", '"$r"', (a + 0 > b + 0 ? a : b)}'
    (( r >= 2 )) && awk -v a="$(val "idle.r$r.open_secs")" -v b="$(val idle.r1.open_secs)" 'BEGIN {if (a != "nan" && b + 0 > 0) printf "rep%d.node.churn_ratio.ours=%.2f\n", '"$r"', a / b}'
  done
  return 0
}
issue_rows >"$T/issue_rows.txt"
echo
$PY "$HERE/report.py" "$T/issue_rows.txt"

rc=0
for r in $(seq 1 "$HOLD_REPEAT"); do
  [[ $(val "idle.r$r.opened") == "$CONNS" && $(val "idle.r$r.alive_after_hold") == "$CONNS" ]] \
    || { echo "NOTE: not every idle connection succeeded in round $r"; rc=1; }
done
for path in $PATHS; do
  [[ $(val "lat.$path.requests") != 0 && $(val "lat.$path.errors") == 0 ]] || { echo "NOTE: latency path $path had errors or no requests"; rc=1; }
  (( TP_RUNS == 0 )) || [[ $(val "tp.$path.gbps") != nan ]] || { echo "NOTE: throughput path $path failed"; rc=1; }
done
if [[ -n ${NODE_BENCH_OUT:-} ]]; then
  mkdir -p "$NODE_BENCH_OUT" && cp "$T"/results.txt "$T"/issue_rows.txt "$T"/*.log "$T"/*.txt "$T"/lat.* "$NODE_BENCH_OUT/" 2>/dev/null
  echo "results.txt and logs copied to $NODE_BENCH_OUT"
elif [[ $rc != 0 ]]; then
  NSX_KEEP_TMP=1; echo "logs kept in $T"
fi
exit $rc
