# bench/lib.sh — shared setup for the benchmarks (sourced, not run).
#
# Role: builds the two-pod topology every benchmark uses and starts the contenders:
#   zt-bench-a (10.99.9.1, "client" pod)  --veth/bridge--  zt-bench-b (10.99.9.2, "server" pod)
#   * ours:    app in A -> iptables capture -> ztunnel A :15001 -> HBONE (mTLS 1.3 + h2 CONNECT)
#              -> ztunnel B :15008 -> app in B            (fallback: hbone-cli --listen in A)
#   * stunnel: app in A -> stunnel client 127.0.0.1:252x1 -> mTLS 1.3 -> stunnel server in B
#              -> app in B (same P-256 certificates, same CA chain as ztunnel's)
#   * haproxy: app in A -> HAProxy client 127.0.0.1:252x3 (TCP mode) -> mTLS 1.3 -> HAProxy
#              server in B (TCP mode) -> app in B (same certificates; nbthread 1 each)
#   * direct:  app in A -> app in B
# Namespaces, processes and temp files are owned by tests/lib/netns.sh and removed by its
# EXIT trap. Every wait is bounded. CPU is read as utime+stime of a PID (all its threads).
# Results are printed as "RESULT key=value" lines (bench/run.sh collects them).

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BIN_DIR=${BIN_DIR:-$ROOT/build/bin}
# shellcheck source=../tests/lib/netns.sh
source "$ROOT/tests/lib/netns.sh"

IP_A=10.99.9.1
IP_B=10.99.9.2
ID_A=spiffe://cluster.local/ns/bench/sa/client
ID_B=spiffe://cluster.local/ns/bench/sa/server
CLK_TCK=$(getconf CLK_TCK)
ZT_A_PID="" ZT_B_PID="" ST_CLI_PID="" ST_SRV_PID="" HBCLI_PID="" HAP_CLI_PID="" HAP_SRV_PID=""
ZT_CLIENT_MODE=""   # capture | hbone-cli, decided by bench_ours_client

result() { echo "RESULT $*"; [[ -n ${T:-} ]] && echo "$*" >>"$T/results"; return 0; }
# get_result KEY — value recorded by result() in this run, or "nan".
get_result() { local v; v=$(grep -h "^$1=" "$T/results" 2>/dev/null | tail -n1 | cut -d= -f2-); echo "${v:-nan}"; }
# ratio KEY A B — records KEY = A/B (nan when either is missing or B is 0).
ratio() {
  result "$1=$(awk -v a="$2" -v b="$3" 'BEGIN {if (a=="nan"||b=="nan"||b+0==0) print "nan"; else printf "%.2f", a/b}')"
}
cputicks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
minflt() { awk '{print $10}' "/proc/$1/stat" 2>/dev/null || echo 0; }  # minor page faults so far
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

bench_require() {
  require_root
  local t missing=()
  for t in iperf3 stunnel4 gcc socat; do command -v "$t" >/dev/null || missing+=("$t"); done
  if ((${#missing[@]})); then
    echo "bench: missing ${missing[*]} (apt-get install iperf3 stunnel4 gcc socat)" >&2
    exit 1
  fi
  # Without our binary the baselines still run; "ours" is reported as nan.
  [[ -x $BIN_DIR/ztunnel ]] || echo "bench: $BIN_DIR/ztunnel not built (make build): measuring baselines only" >&2
}

# bench_setup NAME — namespaces a/b, sysctls for connection churn, certs, config, connbench.
bench_setup() {
  nsx_init "bench"
  T=$NSX_TMP
  nsx_pod a "$IP_A"
  nsx_pod b "$IP_B"
  # Pod links get loopback-like MTU by default so the kernel's per-packet cost does not
  # drown the proxies' own cost (BENCH_MTU=1500 for a pod-realistic wire).
  local mtu=${BENCH_MTU:-65000} p
  ip -n "$(nsx_ns node)" link set br0 mtu "$mtu" 2>/dev/null
  for p in a b; do
    ip -n "$(nsx_ns node)" link set "v-$p" mtu "$mtu"
    ip -n "$(nsx_ns "$p")" link set eth0 mtu "$mtu"
  done
  echo "bench: loadavg $(cut -d' ' -f1-3 /proc/loadavg) before start (other load skews every figure), MTU $mtu" >&2
  for p in a b; do
    # Short-connection benchmarks leave TIME_WAIT sockets; give them room (per-netns sysctls).
    nsx_exec "$p" sysctl -qw net.ipv4.ip_local_port_range="10000 65000" net.ipv4.tcp_tw_reuse=1
  done
  "$ROOT/scripts/make-cacerts.sh" "$T/ca" cluster.local >/dev/null 2>&1 || { echo "make-cacerts failed" >&2; exit 1; }
  "$ROOT/scripts/issue-cert.sh" "$T/ca" "$ID_A" "$T/cert-a" >/dev/null 2>&1 &&
    "$ROOT/scripts/issue-cert.sh" "$T/ca" "$ID_B" "$T/cert-b" >/dev/null 2>&1 ||
    { echo "issue-cert failed" >&2; exit 1; }
  cat >"$T/mesh.yaml" <<EOF
workloads:
- uid: Kubernetes//Pod/bench/client-0
  name: client-0
  namespace: bench
  serviceAccount: client
  workloadIps: ["$IP_A"]
  protocol: HBONE
  node: bench-node
- uid: Kubernetes//Pod/bench/server-0
  name: server-0
  namespace: bench
  serviceAccount: server
  workloadIps: ["$IP_B"]
  protocol: HBONE
  node: bench-node
EOF
  gcc -O2 -o "$T/connbench" "$BENCH_DIR/connbench.c" || { echo "connbench build failed" >&2; exit 1; }
  # Echo app in B used by the connection benchmark and by the capture probe.
  nsx_bg b "$T/connbench-server.log" "$T/connbench" server "$IP_B:7000"
  wait_for_port b 7000 5 || { echo "connbench server did not start" >&2; exit 1; }
}

# bench_start_ztunnels — dedicated-mode ztunnel in each pod, 2 worker threads (upstream's
# benchmark setting), waits for readiness.
bench_start_ztunnels() {
  local log_level=${BENCH_RUST_LOG:-info}
  # BENCH_ZT_ENV: extra VAR=VALUE words for both ztunnels (e.g. "ENABLE_ORIG_SRC=false").
  local -a extra
  read -r -a extra <<<"${BENCH_ZT_ENV:-}"
  [[ -x $BIN_DIR/ztunnel ]] || return 1
  nsx_bg a "$T/ztunnel-a.log" env PROXY_MODE=dedicated PROXY_WORKLOAD_INFO=bench/client-0/client \
    LOCAL_XDS_PATH="$T/mesh.yaml" LOCAL_CA_DIR="$T/ca" RUST_LOG="$log_level" ZTUNNEL_WORKER_THREADS=2 PACKET_MARK=1337 \
    "${extra[@]}" "$BIN_DIR/ztunnel"
  ZT_A_PID=$NSX_LAST_PID
  nsx_bg b "$T/ztunnel-b.log" env PROXY_MODE=dedicated PROXY_WORKLOAD_INFO=bench/server-0/server \
    LOCAL_XDS_PATH="$T/mesh.yaml" LOCAL_CA_DIR="$T/ca" RUST_LOG="$log_level" ZTUNNEL_WORKER_THREADS=2 PACKET_MARK=1337 \
    "${extra[@]}" "$BIN_DIR/ztunnel"
  ZT_B_PID=$NSX_LAST_PID
  local ok=1
  wait_for_http a http://127.0.0.1:15021/healthz/ready 20 || ok=0
  wait_for_http b http://127.0.0.1:15021/healthz/ready 20 || ok=0
  if [[ $ok == 0 ]]; then
    echo "bench: ztunnel not ready" >&2
    tail -n 20 "$T/ztunnel-a.log" "$T/ztunnel-b.log" >&2
    return 1
  fi
}

# bench_start_stunnel SVC... where SVC is NAME:CLIENT_PORT:SERVER_PORT:APP_PORT
bench_start_stunnel() {
  {
    echo "foreground = yes"; echo "pid ="; echo "debug = ${BENCH_STUNNEL_DEBUG:-3}"
    for s in "$@"; do
      IFS=: read -r name cport sport aport <<<"$s"
      printf '[%s]\naccept = %s:%s\nconnect = %s:%s\ncert = %s\nkey = %s\nCAfile = %s\nverifyChain = yes\nrequireCert = yes\nsslVersionMin = TLSv1.3\n' \
        "$name" "$IP_B" "$sport" "$IP_B" "$aport" "$T/cert-b/chain.pem" "$T/cert-b/key.pem" "$T/cert-b/root.pem"
    done
  } >"$T/st_srv.conf"
  {
    echo "foreground = yes"; echo "pid ="; echo "debug = ${BENCH_STUNNEL_DEBUG:-3}"
    for s in "$@"; do
      IFS=: read -r name cport sport aport <<<"$s"
      printf '[%s]\nclient = yes\naccept = 127.0.0.1:%s\nconnect = %s:%s\ncert = %s\nkey = %s\nCAfile = %s\nverifyChain = yes\nsslVersionMin = TLSv1.3\n' \
        "$name" "$cport" "$IP_B" "$sport" "$T/cert-a/chain.pem" "$T/cert-a/key.pem" "$T/cert-a/root.pem"
    done
  } >"$T/st_cli.conf"
  nsx_bg b "$T/stunnel-srv.log" stunnel4 "$T/st_srv.conf"; ST_SRV_PID=$NSX_LAST_PID
  nsx_bg a "$T/stunnel-cli.log" stunnel4 "$T/st_cli.conf"; ST_CLI_PID=$NSX_LAST_PID
  local s
  for s in "$@"; do
    IFS=: read -r name cport sport aport <<<"$s"
    wait_for_port a "$cport" 10 && wait_for_port b "$sport" 10 || { tail "$T"/stunnel-*.log >&2; return 1; }
  done
}

# bench_start_haproxy SVC... where SVC is NAME:CLIENT_PORT:SERVER_PORT:APP_PORT — the second
# off-the-shelf anchor: an HAProxy pair in TCP mode with mutual TLS 1.3 on the tunnel, the
# same P-256 chains and root as stunnel (server: client certificate required; client: server
# chain verified, its own certificate sent). One thread per instance (like stunnel's one
# process), TLS session reuse left at HAProxy's default (stunnel's client caches sessions too).
bench_start_haproxy() {
  command -v haproxy >/dev/null || { echo "bench: haproxy not installed (apt-get install haproxy)" >&2; return 1; }
  local p s name cport sport aport
  for p in a b; do cat "$T/cert-$p/chain.pem" "$T/cert-$p/key.pem" >"$T/cert-$p/haproxy.pem"; done
  {
    printf 'global\n  nbthread 1\n  maxconn 4096\n  ssl-default-bind-options ssl-min-ver TLSv1.3\n  ssl-default-server-options ssl-min-ver TLSv1.3\n'
    printf 'defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n'
    for s in "$@"; do
      IFS=: read -r name cport sport aport <<<"$s"
      printf 'listen %s\n  bind %s:%s ssl crt %s ca-file %s verify required\n  server app %s:%s\n' \
        "$name" "$IP_B" "$sport" "$T/cert-b/haproxy.pem" "$T/cert-b/root.pem" "$IP_B" "$aport"
    done
  } >"$T/hap_srv.cfg"
  {
    printf 'global\n  nbthread 1\n  maxconn 4096\n  ssl-default-server-options ssl-min-ver TLSv1.3\n'
    printf 'defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n'
    for s in "$@"; do
      IFS=: read -r name cport sport aport <<<"$s"
      printf 'listen %s\n  bind 127.0.0.1:%s\n  server tunnel %s:%s ssl crt %s ca-file %s verify required\n' \
        "$name" "$cport" "$IP_B" "$sport" "$T/cert-a/haproxy.pem" "$T/cert-a/root.pem"
    done
  } >"$T/hap_cli.cfg"
  nsx_bg b "$T/haproxy-srv.log" haproxy -db -f "$T/hap_srv.cfg"; HAP_SRV_PID=$NSX_LAST_PID
  nsx_bg a "$T/haproxy-cli.log" haproxy -db -f "$T/hap_cli.cfg"; HAP_CLI_PID=$NSX_LAST_PID
  for s in "$@"; do
    IFS=: read -r name cport sport aport <<<"$s"
    wait_for_port a "$cport" 10 && wait_for_port b "$sport" 10 || { tail "$T"/haproxy-*.log >&2; return 1; }
  done
}

# bench_ours_client APP_PORT LISTEN_PORT — decide how the client app reaches ztunnel A.
# capture: scripts/inpod-iptables.sh in pod A, the app dials IP_B:APP_PORT (the real path).
# hbone-cli: hbone-cli --listen 127.0.0.1:LISTEN_PORT tunnels to ztunnel B (when capture does
# not work yet or BENCH_ZT_CLIENT=hbone-cli). Sets OURS_ADDR (what the app dials) and
# ZT_CLIENT_MODE; the client-side proxy PID is OURS_CLI_PID.
bench_ours_client() {
  local app_port="$1" listen_port="$2" want=${BENCH_ZT_CLIENT:-auto}
  # In-pod rules go into BOTH pods, as istio-cni does: B's route the replies of connections
  # that ztunnel B opened with the client's source IP back to ztunnel B (needed in every
  # mode); A's capture the app's outbound traffic. This is the last phase of every script:
  # B's rules also redirect plain inbound TCP to 15006, which would change the direct and
  # stunnel paths.
  if ! nsx_exec b "$ROOT/scripts/inpod-iptables.sh" install --no-dns >"$T/iptables.log" 2>&1; then
    echo "bench: inpod-iptables.sh install in pod B failed: $(tail -n 3 "$T/iptables.log")" >&2
    return 1
  fi
  if [[ $want != hbone-cli ]]; then
    if nsx_exec a "$ROOT/scripts/inpod-iptables.sh" install --no-dns >>"$T/iptables.log" 2>&1; then
      # Probe: one short echo session through the capture (connbench server on 7000 in B).
      if nsx_exec a timeout 10 "$T/connbench" client "$IP_B:7000" 1 1 16 >"$T/probe.out" 2>&1 &&
         grep -q 'done=[1-9]' "$T/probe.out"; then
        ZT_CLIENT_MODE=capture
        OURS_ADDR="$IP_B:$app_port"
        OURS_CLI_PID=$ZT_A_PID
        return 0
      fi
      echo "bench: capture path failed ($(cat "$T/probe.out")); see $T/ztunnel-a.log" >&2
      nsx_exec a "$ROOT/scripts/inpod-iptables.sh" remove >>"$T/iptables.log" 2>&1
    else
      echo "bench: inpod-iptables.sh install in pod A failed: $(tail -n 3 "$T/iptables.log")" >&2
    fi
    [[ $want == capture ]] && return 1
  fi
  if [[ ! -x $BIN_DIR/hbone-cli ]]; then echo "bench: no hbone-cli either" >&2; return 1; fi
  nsx_bg a "$T/hbone-cli.log" "$BIN_DIR/hbone-cli" --cert-dir "$T/cert-a" --threads "${BENCH_HBCLI_THREADS:-2}" \
    --target "$IP_B:15008" --authority "$IP_B:$app_port" --expect "$ID_B" --listen "127.0.0.1:$listen_port"
  HBCLI_PID=$NSX_LAST_PID
  wait_for_port a "$listen_port" 10 || { tail "$T/hbone-cli.log" >&2; return 1; }
  ZT_CLIENT_MODE=hbone-cli
  OURS_ADDR="127.0.0.1:$listen_port"
  OURS_CLI_PID=$HBCLI_PID
}
