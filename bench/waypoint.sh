#!/usr/bin/env bash
# bench/waypoint.sh [BIN_DIR] — the waypoint against HAProxy and nginx doing the same L7 routing,
# in the same run, on the same mesh.
#
# Topology: the two-node mesh of tests/66-waypoint-e2e/lib.sh (controlplane serve, ambient-cni +
# ztunnel per node, the waypoint in its own uncaptured pod netns). The back ends are HAProxy
# instances answering 1 KiB (`http-request return`, so the app costs next to nothing) in the
# captured pods cat-1 (node 1) and dog-1 (node 2). Both contenders apply the same routing: a
# header rule `version: dog` -> dog, everything else weighted 90 cat / 10 dog, chosen per
# request; wrk (HTTP/1.1 keep-alive, BENCH_CONNS connections, BENCH_SECS s) runs in the
# captured client pod:
#   ours:    wrk -> ztunnel n1 -HBONE-> waypoint -HBONE-> ztunnel of the pod -> app
#   haproxy: wrk -> ztunnel n1 (plain TCP) -> HAProxy (in the waypoint's netns, port 8081, plain
#            HTTP/1.1 both sides, nbthread 2) -> ztunnel of the pod (plaintext inbound) -> app
#   nginx:   the same with nginx on port 8082 (2 workers, `random` weighted upstream + keepalive)
# so the ztunnels sit on all paths and the difference is the L7 proxy. Reported per contender:
# requests/s, P50/P99 latency (wrk --latency), CPU µs per request of the L7 proxy (utime+stime
# of every process of its session, from /proc, over the run / requests; for ours that covers both
# HBONE legs it terminates and originates, TLS included — HAProxy and nginx do no TLS here, which
# favours them), the ztunnels' CPU µs per request, the whole path's CPU µs per request (proxy +
# both ztunnels: for ours that adds the client-side HBONE originator and the destination's
# terminator), and idle RSS of each proxy after startup (sum over its processes); then ratios
# ours/HAProxy and ours/nginx. Then (BENCH_FILTERS=1, the default) ours and HAProxy again with
# L7 authorization, a local rate limit and outlier detection on (see the filters section), and
# what the filters add to each one's plain routing cost.
# Not part of the test suites. Needs root. Results as "RESULT key=value" lines (bench/lib.sh
# style). ~1 min with the defaults; BENCH_SECS=3 for a smoke run.
# shellcheck disable=SC2034,SC1091
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BIN_DIR=$(cd "${1:-$ROOT/build/bin}" 2>/dev/null && pwd || echo "${1:-$ROOT/build/bin}")
ZT_BIN="$BIN_DIR/ztunnel"
CNI_BIN="$BIN_DIR/ambient-cni"
CP_BIN="$BIN_DIR/controlplane"
WP_BIN="$BIN_DIR/waypoint"
SECS=${BENCH_SECS:-10}
CONNS=${BENCH_CONNS:-16}
RUNS=${BENCH_RUNS:-3}

source "$ROOT/tests/lib/netns.sh"
source "$ROOT/tests/50-node-e2e/lib.sh"
source "$ROOT/tests/66-waypoint-e2e/lib.sh"

require_root
for t in haproxy nginx wrk curl; do
  command -v "$t" >/dev/null || { echo "bench/waypoint.sh: $t missing (apt-get install haproxy nginx wrk curl)" >&2; exit 1; }
done
for b in "$ZT_BIN" "$CNI_BIN" "$CP_BIN" "$WP_BIN"; do
  [[ -x $b ]] || { echo "bench/waypoint.sh: $b not built (make build)" >&2; exit 1; }
done

nsx_init bench-wp
T="$NSX_TMP"
WP_MESH="$T/mesh"
CLK_TCK=$(getconf CLK_TCK)
result() { echo "RESULT $*"; echo "$*" >>"$T/results"; }
get_result() { local v; v=$(grep -h "^$1=" "$T/results" 2>/dev/null | tail -n1 | cut -d= -f2-); echo "${v:-nan}"; }
ratio() { result "$1=$(awk -v a="$2" -v b="$3" 'BEGIN {if (a=="nan"||b=="nan"||b+0==0) print "nan"; else printf "%.2f", a/b}')"; }
# The processes of PID's session (nsx_bg starts each under setsid): nginx's workers with their master.
session_pids() { pgrep -s "$1" 2>/dev/null || echo "$1"; }
cputicks() {
  local p t=0
  for p in $(session_pids "$1"); do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$t"
}
# User-mode ticks only (field 14): what the proxy's own code costs, without the kernel's network
# stack work that softirqs charge to whichever process happens to be running.
usrticks() {
  local p t=0
  for p in $(session_pids "$1"); do t=$((t + $(awk '{print $14}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$t"
}
rss_kb() {
  local p t=0
  for p in $(session_pids "$1"); do t=$((t + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done
  echo "$t"
}
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# The back ends: HAProxy answering 1 KiB with the version header the routing checks rely on.
BODY=$(head -c 1024 /dev/zero | tr '\0' 'x')
bench_apps() {
  local name ver
  for name in cat-1:cat-plus dog-1:dog-multi; do
    ver=${name#*:}; name=${name%%:*}
    cat >"$T/app-$name.cfg" <<CFG
global
  nbthread 1
defaults
  mode http
  timeout client 60s
  timeout connect 5s
  timeout server 60s
frontend app
  bind 0.0.0.0:8080
  http-request return status 200 content-type text/plain string "$BODY" hdr x-app-version $ver
CFG
    nsx_bg "$name" "$T/app-$name.log" haproxy -db -f "$T/app-$name.cfg"
  done
  wait_for_port cat-1 8080 10 && wait_for_port dog-1 8080 10 || { tail "$T"/app-*.log; return 1; }
}

WP_APPS=bench_apps WP_RUST_LOG=${BENCH_RUST_LOG:-info,access=off}
if ! wp_bringup >"$T/bringup.out" 2>&1; then
  echo "bench/waypoint.sh: mesh did not come up:" >&2; cat "$T/bringup.out" >&2
  NSX_KEEP_TMP=1; exit 1
fi
# The benchmark's routing (replaces the suite's VirtualService): header rule, then 90/10.
wp_put 30-vs.yaml <<'Y'
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: calculate, namespace: e2e}
spec:
  hosts: [calculate]
  http:
  - match: [{headers: {version: {exact: dog}}}]
    route: [{destination: {host: calculate, subset: dog-with-multi}}]
  - route:
    - {destination: {host: calculate, subset: cat-with-plus}, weight: 90}
    - {destination: {host: calculate, subset: dog-with-multi}, weight: 10}
Y
routes_n() { wp_config_dump | "$ZT_PY" -c 'import json,sys; print(len(json.load(sys.stdin)["routes"][0]["virtualHosts"][0]["routes"]))' 2>/dev/null; }
for _ in $(seq 1 75); do [[ $(routes_n) == 2 ]] && break; sleep 0.2; done
[[ $(routes_n) == 2 ]] || { echo "bench/waypoint.sh: the benchmark VirtualService never reached the waypoint" >&2; exit 1; }

# haproxy_cfg PORT [FRONTEND-LINES] [SERVER-OPTIONS] — HAProxy doing the benchmark's routing
# (header rule, then 90/10) on PORT; the filters phase adds its ACLs and health checks.
haproxy_cfg() {
  local port="$1" frontend="${2:-}" opts="${3:-}"
  cat <<CFG
global
  nbthread 2
  maxconn 4000
defaults
  mode http
  option http-keep-alive
  timeout client 60s
  timeout connect 5s
  timeout server 60s
frontend calculate
  bind $WP_IP:$port
$frontend
  use_backend dog if { req.hdr(version) -m str dog }
  default_backend canary
backend canary
  balance random
  server cat $WP_CAT_IP:8080 weight 90 $opts
  server dog $WP_DOG_IP:8080 weight 10 $opts
backend dog
  server dog $WP_DOG_IP:8080 $opts
CFG
}
haproxy_cfg 8081 >"$T/haproxy.cfg"
nsx_bg waypoint-0 "$T/haproxy.log" haproxy -db -f "$T/haproxy.cfg"
HA_PID=$NSX_LAST_PID
wait_for_port waypoint-0 8081 10 || { echo "haproxy did not start" >&2; tail "$T/haproxy.log" >&2; exit 1; }

# nginx: the same routing. `map` picks the upstream by the `version` header; `random` with
# weights is a per-request weighted choice as HAProxy's `balance random` and the waypoint's;
# upstream keep-alive as the other two (nginx closes upstream connections by default).
mkdir -p "$T/ngx"
cat >"$T/ngx/nginx.conf" <<CFG
worker_processes 2;
daemon off;
pid $T/ngx/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $T/ngx/body;
  proxy_temp_path $T/ngx/proxy;
  fastcgi_temp_path $T/ngx/fastcgi;
  uwsgi_temp_path $T/ngx/uwsgi;
  scgi_temp_path $T/ngx/scgi;
  keepalive_requests 1000000;
  map \$http_version \$pool { dog dog; default canary; }
  upstream canary {
    random;
    server $WP_CAT_IP:8080 weight=90;
    server $WP_DOG_IP:8080 weight=10;
    keepalive 64;
    keepalive_requests 1000000;
  }
  upstream dog {
    server $WP_DOG_IP:8080;
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen $WP_IP:8082;
    location / {
      proxy_pass http://\$pool;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CFG
nsx_bg waypoint-0 "$T/nginx.log" nginx -p "$T/ngx" -e "$T/ngx/error.log" -c "$T/ngx/nginx.conf"
NGX_PID=$NSX_LAST_PID
wait_for_port waypoint-0 8082 10 || { echo "nginx did not start" >&2; tail "$T/nginx.log" "$T/ngx/error.log" >&2; exit 1; }
sleep 1

echo "== waypoint vs HAProxy vs nginx: wrk HTTP/1.1 keep-alive, $CONNS connections, ${SECS}s x $RUNS, 1 KiB responses, header rule + 90/10 (2 vCPUs shared by everything)"
result "wp.ours.idle_rss_kb=$(rss_kb "$WP_PID")"
result "wp.haproxy.idle_rss_kb=$(rss_kb "$HA_PID")"
result "wp.nginx.idle_rss_kb=$(rss_kb "$NGX_PID")"
echo "  idle RSS: waypoint $(get_result wp.ours.idle_rss_kb) kB, haproxy $(get_result wp.haproxy.idle_rss_kb) kB, nginx $(get_result wp.nginx.idle_rss_kb) kB"

# Sanity (not a figure): every contender routes by the header and answers 1 KiB otherwise.
# Up to 3 tries per check: a contender started a moment ago may miss the first connection.
for url in "http://$WP_VIP/" "http://$WP_IP:8081/" "http://$WP_IP:8082/"; do
  for try in 1 2 3; do
    v=$(nsx_exec client curl -s -o /dev/null --max-time 5 -H 'version: dog' -w '%{http_code} %header{x-app-version}' "$url")
    [[ $v == "200 dog-multi" ]] && break
    echo "  sanity: $url with version: dog -> '$v' (try $try)" >&2; sleep 1
  done
  [[ $v == "200 dog-multi" ]] || { echo "bench/waypoint.sh: $url with version: dog -> '$v'" >&2; NSX_KEEP_TMP=1; exit 1; }
  for try in 1 2 3; do
    v=$(nsx_exec client curl -s -o /dev/null --max-time 5 -w '%{http_code} %{size_download}' "$url")
    [[ $v == "200 1024" ]] && break
    echo "  sanity: $url -> '$v' (try $try)" >&2; sleep 1
  done
  [[ $v == "200 1024" ]] || { echo "bench/waypoint.sh: $url -> '$v', wanted 200 with 1024 bytes" >&2; NSX_KEEP_TMP=1; exit 1; }
done

# to_us VALUE-WITH-UNIT — wrk's "1.23ms" / "850.00us" / "1.2s" in µs.
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1e6; else print "nan" }'; }

# run NAME URL PROXY_PID — RUNS wrk runs; per-run line, then medians as RESULTs.
run() {
  local name="$1" url="$2" pid="$3" i
  : >"$T/$name.rps"; : >"$T/$name.cpu"; : >"$T/$name.ucpu"; : >"$T/$name.zcpu"; : >"$T/$name.pcpu"; : >"$T/$name.p50"; : >"$T/$name.p99"
  for i in $(seq 1 "$RUNS"); do
    local c0 z0 u0 c1 z1 u1 out reqs rps p50 p99 bad
    c0=$(cputicks "$pid"); u0=$(usrticks "$pid"); z0=$(( $(cputicks "$ZT_PID_n1") + $(cputicks "$ZT_PID_n2") ))
    out=$(nsx_exec client wrk -t 2 -c "$CONNS" -d "${SECS}s" --latency "$url" 2>&1)
    c1=$(cputicks "$pid"); u1=$(usrticks "$pid"); z1=$(( $(cputicks "$ZT_PID_n1") + $(cputicks "$ZT_PID_n2") ))
    echo "$out" >"$T/$name.$i.wrk"
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    bad=$(awk '/Non-2xx/ {print $NF} /Socket errors/ {print}' <<<"$out")
    if [[ -z $reqs || $reqs == 0 ]]; then echo "  $name run $i: wrk failed: $(head -c 300 <<<"$out")" >&2; continue; fi
    local cpu ucpu zcpu pcpu
    cpu=$(awk -v t="$((c1 - c0))" -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
    ucpu=$(awk -v t="$((u1 - u0))" -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
    zcpu=$(awk -v t="$((z1 - z0))" -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
    pcpu=$(awk -v a="$cpu" -v b="$zcpu" 'BEGIN {printf "%.1f", a + b}')
    echo "$rps" >>"$T/$name.rps"; echo "$cpu" >>"$T/$name.cpu"; echo "$ucpu" >>"$T/$name.ucpu"; echo "$zcpu" >>"$T/$name.zcpu"; echo "$pcpu" >>"$T/$name.pcpu"
    echo "$p50" >>"$T/$name.p50"; echo "$p99" >>"$T/$name.p99"
    echo "  $name run $i: $rps rps, p50 ${p50} us, p99 ${p99} us, proxy CPU ${cpu} us/req (user ${ucpu}), ztunnels ${zcpu} us/req${bad:+, errors: $bad}"
  done
  result "wp.$name.rps=$(median <"$T/$name.rps")"
  result "wp.$name.cpu_us_per_req=$(median <"$T/$name.cpu")"
  result "wp.$name.user_cpu_us_per_req=$(median <"$T/$name.ucpu")"
  result "wp.$name.ztunnels_cpu_us_per_req=$(median <"$T/$name.zcpu")"
  result "wp.$name.path_cpu_us_per_req=$(median <"$T/$name.pcpu")"
  result "wp.$name.p50_us=$(median <"$T/$name.p50")"
  result "wp.$name.p99_us=$(median <"$T/$name.p99")"
}

run ours "http://$WP_VIP/" "$WP_PID"
run haproxy "http://$WP_IP:8081/" "$HA_PID"
run nginx "http://$WP_IP:8082/" "$NGX_PID"

# ---- The same routing with filters on (issue 10: the filters add <= 10 % to the routing cost) ----
# ours:    an L7 AuthorizationPolicy (DENY paths /admin* and method DELETE on the waypoint; ALLOW
#          only the client's principal on the Service), a local rate limit (a token bucket large
#          enough never to refuse: every request still takes a token), outlier detection on the
#          DestinationRule.
# haproxy: the equivalent ACLs (deny /admin* and DELETE; allow only the client's address, the
#          identity it can see on plain TCP), a stick table tracking every request's source with
#          its request rate (denying 429 above a rate never reached) and passive health checks
#          (`observe layer7`, marked down after 5 consecutive errors) on both servers.
if [[ ${BENCH_FILTERS:-1} == 1 ]]; then
  CLIENT_IP=10.99.1.1
  wp_put 40-bench-authz.yaml <<'Y'
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin-and-delete, namespace: e2e}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
  - to: [{operation: {methods: [DELETE]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-client, namespace: e2e}
spec:
  targetRefs: [{kind: Service, group: "", name: calculate}]
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/e2e/sa/client"]}}]
---
apiVersion: ambient.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: calculate, namespace: e2e}
spec:
  targetRefs: [{kind: Service, group: "", name: calculate}]
  local: {requests: 100000000, unit: second}
Y
  sed 's/^  host: calculate$/  host: calculate\n  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}}/' \
    "$WP_MESH/20-calculate.yaml" | wp_put 20-calculate.yaml
  haproxy_cfg 8083 "  stick-table type ip size 100k expire 60s store http_req_rate(10s)
  http-request track-sc0 src
  http-request deny deny_status 429 if { sc_http_req_rate(0) gt 100000000 }
  http-request deny deny_status 403 if { path_beg /admin } || { method DELETE }
  http-request deny deny_status 403 unless { src $CLIENT_IP }" \
    "check inter 10s observe layer7 error-limit 5 on-error mark-down" >"$T/haproxy-filters.cfg"
  nsx_bg waypoint-0 "$T/haproxy-filters.log" haproxy -db -f "$T/haproxy-filters.cfg"
  HAF_PID=$NSX_LAST_PID
  wait_for_port waypoint-0 8083 10 || { echo "haproxy (filters) did not start" >&2; tail "$T/haproxy-filters.log" >&2; exit 1; }
  # Sanity: both deny /admin and DELETE, answer 1 KiB otherwise; ours carries the limiter's
  # x-ratelimit-limit header (the bucket is in the path) once the policies have arrived.
  filters_ready() {
    local v
    v=$(nsx_exec client curl -s -o /dev/null --max-time 5 -w '%{http_code}' "http://$WP_VIP/admin/x")
    [[ $v == 403 ]] || return 1
    v=$(nsx_exec client curl -s -o /dev/null --max-time 5 -w '%{http_code} %{size_download} %header{x-ratelimit-limit}' "http://$WP_VIP/")
    [[ $v == "200 1024 "?* ]] || return 1
    wp_config_dump | grep -q outlierDetection
  }
  for _ in $(seq 1 150); do filters_ready && break; sleep 0.2; done
  if ! filters_ready; then
    echo "bench/waypoint.sh: the filters never reached the waypoint: /admin/x ->" \
      "$(nsx_exec client curl -s -o /dev/null --max-time 5 -w '%{http_code}' "http://$WP_VIP/admin/x"), / ->" \
      "$(nsx_exec client curl -s -o /dev/null --max-time 5 -w '%{http_code} %{size_download} x-ratelimit-limit: %header{x-ratelimit-limit}' "http://$WP_VIP/")," \
      "outlierDetection in /config_dump: $(wp_config_dump | grep -c outlierDetection)" >&2
    NSX_KEEP_TMP=1; exit 1
  fi
  for req in "-X DELETE http://$WP_IP:8083/" "http://$WP_IP:8083/admin/x"; do
    # shellcheck disable=SC2086
    v=$(nsx_exec client curl -s -o /dev/null --max-time 5 -w '%{http_code}' $req)
    [[ $v == 403 ]] || { echo "bench/waypoint.sh: haproxy (filters) $req -> $v, wanted 403" >&2; NSX_KEEP_TMP=1; exit 1; }
  done
  v=$(nsx_exec client curl -s -o /dev/null --max-time 5 -w '%{http_code} %{size_download}' "http://$WP_IP:8083/")
  [[ $v == "200 1024" ]] || { echo "bench/waypoint.sh: haproxy (filters) -> '$v'" >&2; NSX_KEEP_TMP=1; exit 1; }

  echo "== the same with filters on: authorization, local rate limit, outlier detection"
  run ours_filters "http://$WP_VIP/" "$WP_PID"
  run haproxy_filters "http://$WP_IP:8083/" "$HAF_PID"
  # What the filters add to each one's own plain routing cost (CPU per request, P99).
  for c in ours haproxy; do
    ratio "wp.ratio.cpu_filters_over_plain_$c" "$(get_result "wp.${c}_filters.cpu_us_per_req")" "$(get_result "wp.$c.cpu_us_per_req")"
    ratio "wp.ratio.p99_filters_over_plain_$c" "$(get_result "wp.${c}_filters.p99_us")" "$(get_result "wp.$c.p99_us")"
  done
  ratio "wp.ratio.cpu_per_req_filters_ours_over_haproxy" "$(get_result wp.ours_filters.cpu_us_per_req)" "$(get_result wp.haproxy_filters.cpu_us_per_req)"
  ratio "wp.ratio.p99_filters_ours_over_haproxy" "$(get_result wp.ours_filters.p99_us)" "$(get_result wp.haproxy_filters.p99_us)"
fi

for c in haproxy nginx; do
  ratio "wp.ratio.rps_ours_over_$c" "$(get_result wp.ours.rps)" "$(get_result "wp.$c.rps")"
  ratio "wp.ratio.cpu_per_req_ours_over_$c" "$(get_result wp.ours.cpu_us_per_req)" "$(get_result "wp.$c.cpu_us_per_req")"
  ratio "wp.ratio.user_cpu_per_req_ours_over_$c" "$(get_result wp.ours.user_cpu_us_per_req)" "$(get_result "wp.$c.user_cpu_us_per_req")"
  ratio "wp.ratio.path_cpu_per_req_ours_over_$c" "$(get_result wp.ours.path_cpu_us_per_req)" "$(get_result "wp.$c.path_cpu_us_per_req")"
  ratio "wp.ratio.p50_ours_over_$c" "$(get_result wp.ours.p50_us)" "$(get_result "wp.$c.p50_us")"
  ratio "wp.ratio.p99_ours_over_$c" "$(get_result wp.ours.p99_us)" "$(get_result "wp.$c.p99_us")"
  ratio "wp.ratio.idle_rss_ours_over_$c" "$(get_result wp.ours.idle_rss_kb)" "$(get_result "wp.$c.idle_rss_kb")"
done

row() { printf '%-40s %10s %10s %10s %10s %10s\n' "$@"; }
# line LABEL KEY RATIO-KEY — one metric for the three contenders and ours/haproxy, ours/nginx.
line() {
  row "$1" "$(get_result "wp.haproxy.$2")" "$(get_result "wp.nginx.$2")" "$(get_result "wp.ours.$2")" \
    "$(get_result "wp.ratio.${3}_ours_over_haproxy")" "$(get_result "wp.ratio.${3}_ours_over_nginx")"
}
echo
echo "=== waypoint vs HAProxy vs nginx ($(nproc) vCPU, load at end $(cut -d' ' -f1-3 /proc/loadavg))"
row "metric" "haproxy" "nginx" "ours" "ours/hap" "ours/ngx"
line "requests per second" rps rps
line "L7 proxy CPU us per request" cpu_us_per_req cpu_per_req
line "  of which user mode" user_cpu_us_per_req user_cpu_per_req
row "ztunnels CPU us per request" "$(get_result wp.haproxy.ztunnels_cpu_us_per_req)" "$(get_result wp.nginx.ztunnels_cpu_us_per_req)" "$(get_result wp.ours.ztunnels_cpu_us_per_req)" "-" "-"
line "path CPU us per request (proxy+ztunnels)" path_cpu_us_per_req path_cpu_per_req
line "latency p50 (us)" p50_us p50
line "latency p99 (us)" p99_us p99
line "idle RSS (kB)" idle_rss_kb idle_rss
if [[ ${BENCH_FILTERS:-1} == 1 ]]; then
  echo
  echo "=== with filters (authorization, local rate limit, outlier detection) vs the plain routing above"
  row "metric" "haproxy" "-" "ours" "ours/hap" "-"
  row "requests per second" "$(get_result wp.haproxy_filters.rps)" "-" "$(get_result wp.ours_filters.rps)" "-" "-"
  row "L7 proxy CPU us per request" "$(get_result wp.haproxy_filters.cpu_us_per_req)" "-" "$(get_result wp.ours_filters.cpu_us_per_req)" \
    "$(get_result wp.ratio.cpu_per_req_filters_ours_over_haproxy)" "-"
  row "latency p99 (us)" "$(get_result wp.haproxy_filters.p99_us)" "-" "$(get_result wp.ours_filters.p99_us)" \
    "$(get_result wp.ratio.p99_filters_ours_over_haproxy)" "-"
  row "CPU per request, filters / plain" "$(get_result wp.ratio.cpu_filters_over_plain_haproxy)" "-" "$(get_result wp.ratio.cpu_filters_over_plain_ours)" "-" "-"
  row "p99, filters / plain" "$(get_result wp.ratio.p99_filters_over_plain_haproxy)" "-" "$(get_result wp.ratio.p99_filters_over_plain_ours)" "-" "-"
fi
echo "(goals, issue 9: <= 50 us CPU per request, rps >= HAProxy's, idle RSS <= 30 MB; issue 10: filters add <= 10 % to the"
echo " plain routing's CPU per request (BENCH_FILTERS=0 skips that part); logs in $T while running)"
