#!/usr/bin/env bash
# tests/68-waypoint-traffic-policy/suite.sh [BIN_DIR] — DestinationRule traffic policy at the
# waypoint, end to end with the real binaries on the 66-waypoint-e2e mesh (controlplane serve,
# ambient-cni + ztunnel on two nodes, the waypoint, the Calculate app: v1 cat-plus sleeps on
# /slow, v2 dog-multi answers at once; a curl client). The DestinationRule `calculate` is
# rewritten live for each story; routes with header x-tp go to the whole service (both pods),
# as the seeds' circuit-breaker story does:
#   connectionPool  tcp.maxConnections 1 + http.http1MaxPendingRequests 1: 12 concurrent requests
#                   from h2load to slow v1 -> most get 503 with flag UO, the overflow counted;
#   outlierDetection consecutive5xxErrors 1, baseEjectionTime 4s: v1 times out once (504 UT) and is
#                   ejected, then only dog answers; after the ejection time v1 answers again;
#   consistentHash  httpHeaderName x-user: every request of one user lands on one pod; users
#                   spread over both; httpCookie with ttl: the waypoint sets the cookie, and
#                   requests carrying it stick.
#   localityLbSetting pods' topology.istio.io/locality labels: distribute 80/20 between the zones
#                   splits 1000 requests within a binomial bound; with failover the waypoint's zone
#                   (cat) takes every request; with the cat pod deleted, the other zone (dog) answers.
#   warmupDurationSecs 30s: the cat pod comes back as a new host; while it warms it gets far
#                   fewer than its half of the next 200 requests, and /config_dump shows it warming.
# Needs root; about 60 s in the release build.
# shellcheck disable=SC2015,SC2154,SC1091
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../lib/waypoint-mesh.sh" "${1:-}"
wpm_init wp-tp h2load

TP_RULES='  - name: tp-svc-slow
    match: [{uri: {prefix: /slow}, headers: {x-tp: {exact: svc}}}]
    timeout: 1s
    route: [{destination: {host: calculate}}]
  - name: tp-svc
    match: [{headers: {x-tp: {exact: svc}}}]
    route: [{destination: {host: calculate}}]
  - name: tp-uo
    match: [{uri: {prefix: /slow}, headers: {x-tp: {exact: uo}}}]
    timeout: 10s
    route: [{destination: {host: calculate, subset: cat-with-plus}}]'
wpm_extra_rules "$TP_RULES"

# tp_dr TRAFFIC_POLICY_YAML [BASE] — rewrites the calculate DestinationRule (YAML indented by 2,
# under spec) in BASE (default: the mesh's current 20-calculate.yaml) and puts the result.
tp_dr() {
  local f="${2:-$WP_MESH/20-calculate.yaml}"
  "$ZT_PY" - "$f" "$1" >"$T/20-calculate.new" <<'PY' || return 1
import sys
text, tp = open(sys.argv[1]).read(), sys.argv[2]
docs = text.split("\n---\n")
out = [d for d in docs if "kind: DestinationRule" not in d]
out.append("""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: calculate, namespace: e2e}
spec:
  host: calculate
%s
  subsets:
  - {name: cat-with-plus, labels: {version: cat-plus}}
  - {name: dog-with-multi, labels: {version: dog-multi}}
""" % tp)
sys.stdout.write("\n---\n".join(out))
PY
  wp_put 20-calculate.yaml <"$T/20-calculate.new"
}

# tp_wait PY_EXPR — until the waypoint's /config_dump satisfies PY_EXPR over `c`, the runtime state
# of cluster inbound-vip|80|http|<calculate> (upstreamClusters: circuitBreakers, hosts, ejections).
tp_wait() {
  local expr="$1" got=""
  for _ in $(seq 1 75); do
    got=$(wp_config_dump | "$ZT_PY" -c "
import json, sys
d = json.load(sys.stdin)
c = next(c for c in d['upstreamClusters'] if c['name'] == 'inbound-vip|80|http|$WP_HOST')
print('ok' if ($expr) else json.dumps(c))" 2>&1)
    [[ $got == ok ]] && return 0
    sleep 0.2
  done
  echo "waypoint cluster never matched ($expr): $got"
  return 1
}

wpm_bringup || abort "mesh up" "$WPM_BRINGUP_LOG"
pass "mesh up: controlplane, ambient-cni + ztunnel on both nodes, waypoint ready"

# svc N URL [CURL-ARGS...] — N requests on one connection through the whole-service route:
# one "CODE VERSION" line per request.
svc() {
  local n="$1" url="$2"; shift 2
  nsx_exec client curl -s --max-time 60 -o /dev/null -w '%{http_code} %header{x-app-version}\n' -H 'x-tp: svc' "$@" \
    "${url}?i=[1-$n]"
}

# ---- circuit breaking: one connection, one pending request -----------------------------------
tp_dr '  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1000}'
check "connectionPool reaches the waypoint (maxConnections 1, maxPendingRequests 1)" \
  tp_wait "c['circuitBreakers']['maxConnections'] == 1 and c['circuitBreakers']['maxPendingRequests'] == 1"
# 12 clients at once against v1, which sleeps 0.5 s per request: one in flight, one waiting,
# the rest overflow at once.
out=$(nsx_exec client h2load --h1 -n 12 -c 12 -H 'x-tp: uo' "$VIP/slow?s=0.5" 2>&1)
ok2xx=$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' <<<"$out")
n5xx=$(sed -n 's/^status codes: .* \([0-9]*\) 5xx.*/\1/p' <<<"$out")
[[ -n $ok2xx && -n $n5xx && $n5xx -ge 6 && $ok2xx -ge 1 && $((ok2xx + n5xx)) == 12 ]] \
  && pass "http1MaxPendingRequests 1 under h2load (12 concurrent): $ok2xx answered, $n5xx overflowed with 5xx" \
  || fail "http1MaxPendingRequests 1 overflows under h2load" "$(grep -E 'status codes|requests:' <<<"$out")"
check "overflow: access log 503 with flag UO" access_has 'path="?/slow\?s=0\.5"? .*response_code=503 response_flags=UO '
check "overflow: envoy_cluster_upstream_rq_pending_overflow counted for the cat subset" \
  expect_metric wp_metrics wp envoy_cluster_upstream_rq_pending_overflow "cluster_name=inbound-vip|80|http/cat-with-plus|$WP_HOST"

# ---- outlier detection: the seeds' circuit-breaker story -------------------------------------
# Through the whole service (both pods): v1 sleeps past the 1 s route timeout (504 UT), which
# ejects it after one error; then only dog answers; after baseEjectionTime v1 is back.
tp_dr '  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 4s, maxEjectionPercent: 100}'
check "outlierDetection reaches the waypoint" tp_wait "c['outlierDetection'] and c['circuitBreakers']['maxConnections'] > 1"
# One request at a time until v1 has been hit (the balancer picks at random between equals:
# 20 tries miss v1 with probability 2^-20); each v1 hit costs the 1 s timeout.
first=""
for _ in $(seq 1 20); do
  first+=$(svc 1 "$VIP/slow" -G -d s=3)$'\n'
  grep -q '^504' <<<"$first" && break
done
first=$(grep . <<<"$first")
if grep -q '^504' <<<"$first"; then
  pass "slow v1 timed out through the whole-service route: $(tally <<<"$first")"
else
  fail "slow v1 times out once it is picked (20 tries over both pods)" "$(tally <<<"$first")"
fi
check "v1 ejected: /config_dump shows its host /failed_outlier_check" \
  tp_wait "any(h['ejected'] and h['healthFlags'] == '/failed_outlier_check' and h['address'].startswith('$WP_CAT_IP:') for h in c['hosts'])"
during=$(svc 20 "$VIP/calc")
[[ $(grep -c '^200 dog-multi$' <<<"$during") == 20 ]] \
  && pass "while v1 is ejected, 20 of 20 requests are answered by dog only" \
  || fail "only dog answers while v1 is ejected" "$(tally <<<"$during")"
check "ejection counted: envoy_cluster_outlier_detection_ejections_enforced_total" \
  expect_metric wp_metrics wp envoy_cluster_outlier_detection_ejections_enforced_total "cluster_name=inbound-vip|80|http|$WP_HOST"
check "after baseEjectionTime (4 s) v1 is back in /config_dump" \
  tp_wait "not any(h['ejected'] for h in c['hosts'])"
after=$(svc 20 "$VIP/calc")
[[ $(grep -c '^200 cat-plus$' <<<"$after") -ge 1 && $(grep -c '^200 dog-multi$' <<<"$after") -ge 1 ]] \
  && pass "after the ejection time both versions answer again: $(tally <<<"$after")" \
  || fail "v1 answers again after baseEjectionTime" "$(tally <<<"$after")"

# ---- consistent hashing: sticky by header, spread across keys; cookie generated and sticky -----
tp_dr '  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user}'
# tp_wait_lb POLICY — until the whole-service cluster runs that lb_policy.
tp_wait_lb() {
  local got=""
  for _ in $(seq 1 75); do
    got=$(wp_config_dump | "$ZT_PY" -c "
import json, sys
d = json.load(sys.stdin)
print(next(c['lbPolicy'] for c in d['clusters'] if c['name'] == 'inbound-vip|80|http|$WP_HOST'))" 2>&1)
    [[ $got == "$1" ]] && return 0
    sleep 0.2
  done
  echo "lbPolicy '$got', wanted $1"
  return 1
}
check "consistentHash by header reaches the waypoint (RING_HASH)" tp_wait_lb RING_HASH
sticky=1; seen=""
for u in alice bob carol dave erin frank grace heidi; do
  got=$(svc 10 "$VIP/calc" -H "x-user: $u" | sort -u)
  [[ $(wc -l <<<"$got") == 1 && $got == "200 "* ]] || { sticky=0; echo "user $u: $got" >>"$T/hash.err"; }
  seen+="${got#200 }"$'\n'
done
versions=$(sort -u <<<"$seen" | grep -c .)
[[ $sticky == 1 ]] && pass "ring hash on x-user: each of 8 users got one version for all 10 requests" \
  || fail "ring hash stickiness by header" "$(cat "$T/hash.err")"
[[ $versions == 2 ]] && pass "ring hash spreads users over both versions" || fail "8 users land on both versions" "$seen"

tp_dr '  trafficPolicy:
    loadBalancer:
      consistentHash: {httpCookie: {name: calc-session, ttl: 3600s, path: /}}'
cookie=""
for _ in $(seq 1 50); do
  hdrs=$(nsx_exec client curl -s --max-time 5 -D - -o /dev/null -H 'x-tp: svc' "$VIP/calc")
  cookie=$(sed -n 's/^[Ss]et-[Cc]ookie: calc-session=\("\?[^";]*"\?\).*/\1/p' <<<"$hdrs" | tr -d '\r')
  [[ -n $cookie ]] && break
  sleep 0.2
done
if [[ -n $cookie ]]; then
  pass "httpCookie with ttl: the waypoint sets calc-session ($(grep -i '^set-cookie' <<<"$hdrs" | tr -d '\r'))"
  same=$(svc 10 "$VIP/calc" -H "Cookie: calc-session=$cookie" | sort -u)
  [[ $(wc -l <<<"$same") == 1 && $same == "200 "* ]] && pass "requests carrying the cookie stick to one version ($same x10)" \
    || fail "cookie stickiness" "$same"
else
  fail "httpCookie with ttl: Set-Cookie calc-session from the waypoint" "$hdrs"
fi

# ---- locality failover: the local pods go, the other zone answers ---------------------------------
# Localities from the pods' topology.istio.io/locality labels (directory mode has no Node objects):
# the waypoint and cat in region1/zone-a, dog in region1/zone-b. With outlierDetection (istiod
# applies locality priorities only then) cat is priority 0 and takes every request; once the cat
# pod is gone, dog (priority 1) answers.
sed 's#gateway.networking.k8s.io/gateway-name: waypoint, istio.io/dataplane-mode: none#&, topology.istio.io/locality: region1.zone-a#' \
  "$WP_MESH/10-waypoint.yaml" >"$T/10-waypoint.new" && wp_put 10-waypoint.yaml <"$T/10-waypoint.new"
sed -e 's#version: cat-plus}#version: cat-plus, topology.istio.io/locality: region1.zone-a}#' \
  -e 's#version: dog-multi}#version: dog-multi, topology.istio.io/locality: region1.zone-b}#' \
  "$WP_MESH/20-calculate.yaml" >"$T/20-locality.new" && wp_put 20-calculate.yaml <"$T/20-locality.new"
# distribute: from the waypoint's zone, 80 % stays in zone-a (cat), 20 % goes to zone-b (dog).
tp_dr '  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting:
        enabled: true
        distribute:
        - from: region1/zone-a/*
          to: {"region1/zone-a/*": 80, "region1/zone-b/*": 20}'
check "distribute reaches the waypoint: locality weights 80 (cat) / 20 (dog), locality-weighted LB" \
  tp_wait "c['localityWeightedLb'] and sorted((h['address'].startswith('$WP_CAT_IP'), h.get('localityWeight')) for h in c['hosts']) == [(False, 20), (True, 80)]"
split=$(svc 1000 "$VIP/calc")
ncat=$(grep -c '^200 cat-plus$' <<<"$split"); ndog=$(grep -c '^200 dog-multi$' <<<"$split")
# Binomial(1000, 0.8): sd 12.6; 759..841 holds with p > 0.999.
[[ $((ncat + ndog)) == 1000 && $ncat -ge 759 && $ncat -le 841 ]] \
  && pass "distribute 80/20: $ncat of 1000 requests in zone-a (cat), $ndog in zone-b (dog)" \
  || fail "distribute 80/20 over 1000 requests (cat 759..841)" "$(tally <<<"$split")"

tp_dr '  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN, localityLbSetting: {enabled: true}}
    outlierDetection: {consecutive5xxErrors: 100, interval: 10s, baseEjectionTime: 30s}'
check "locality priorities reach the waypoint: cat (its zone) priority 0, dog priority 1" \
  tp_wait "sorted((h['address'].startswith('$WP_CAT_IP'), h['priority']) for h in c['hosts']) == [(False, 1), (True, 0)]"
local_only=$(svc 20 "$VIP/calc" | sort | uniq -c | awk '{print $1, $2, $3}')
[[ $local_only == "20 200 cat-plus" ]] && pass "all 20 requests stay in the waypoint's zone (cat)" \
  || fail "requests stay in the local zone" "$local_only"
"$ZT_PY" - "$WP_MESH/20-calculate.yaml" >"$T/20-nocat.new" <<'PY'
import sys
docs = open(sys.argv[1]).read().split("\n---\n")
sys.stdout.write("\n---\n".join(d for d in docs if "name: cat-1" not in d))
PY
wp_put 20-calculate.yaml <"$T/20-nocat.new"
# (priorities stay contiguous from 0, as istiod writes them: dog is now priority 0)
check "the local pod is gone from the waypoint's endpoints" \
  tp_wait "[h['address'] for h in c['hosts']] == ['$WP_DOG_IP:8080']"
failover=$(svc 10 "$VIP/calc" | sort | uniq -c | awk '{print $1, $2, $3}')
[[ $failover == "10 200 dog-multi" ]] && pass "locality failover: with the local pods gone, zone-b (dog) answers all 10" \
  || fail "locality failover to the other zone" "$failover"

# ---- warmup: a pod that joins is in slow start -----------------------------------------------------
# The cat pod comes back (a new host of a cluster that had dog alone) together with a 30 s warmup:
# its weight starts at Envoy's 10 % floor and grows with its age, so of the next 200 requests it
# gets a small share (about 10-15 % while the requests take a few seconds), far from its half.
tp_dr '  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: 30s}' "$T/20-locality.new"
check "warmupDurationSecs reaches the waypoint: cat is back and warming, dog is not" \
  tp_wait "c.get('slowStartWindowMs') == 30000 and sorted((h['address'].startswith('$WP_CAT_IP'), h['warming']) for h in c['hosts']) == [(False, False), (True, True)]"
warm=$(svc 200 "$VIP/calc")
ncat=$(grep -c '^200 cat-plus$' <<<"$warm"); ndog=$(grep -c '^200 dog-multi$' <<<"$warm")
[[ $((ncat + ndog)) == 200 && $ncat -ge 1 && $ncat -le 60 ]] \
  && pass "warmup 30 s: the new cat pod got $ncat of the first 200 requests (dog $ndog)" \
  || fail "warmup: the new pod gets far fewer than its half of 200 requests (1..60)" "$(tally <<<"$warm")"

[[ $NSX_FAILED == 0 ]] || { NSX_KEEP_TMP=1; echo "logs kept in $T" >&2; }
summary
