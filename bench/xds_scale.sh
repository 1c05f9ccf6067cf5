#!/usr/bin/env bash
# bench/xds_scale.sh — control-plane scale: `controlplane serve` with a generated mesh
# (default 50,000 pods, 10,000 services, 100 namespaces) feeding one node ztunnel over delta
# ADS with TLS, all on loopback.
#
# Measures: the controlplane's first compile and RSS; ztunnel's initial sync (process start ->
# readiness 200, which needs the first response of both xDS types) and its RSS with that state
# (target < 200 MB); delta propagation (file edit -> ztunnel applied, P50/P99 over EDITS edits of
# five kinds: pod changed/added/removed, service changed, policy changed; bench/xds_scale_probe.py). There is no competitor to run beside it on one host (istiod needs
# a Kubernetes API server); upstream ztunnel's published guidance is quoted in docs/benchmarks.md.
#
# Usage: bench/xds_scale.sh [PODS] [SERVICES] [EDITS]   (BIN_DIR=... to pick binaries)
# Results as "RESULT key=value" lines. Every wait is bounded; everything is removed on exit.
set -uo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BIN_DIR=${BIN_DIR:-$ROOT/build/bin}
PODS=${1:-50000}
SERVICES=${2:-10000}
EDITS=${3:-60}
PORT_BASE=${XDS_SCALE_PORT_BASE:-25000}
XDS_PORT=$((PORT_BASE + 12))

T=$(mktemp -d /tmp/xds-scale.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  [[ ${KEEP_TMP:-0} == 1 ]] && echo "kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT
result() { echo "RESULT $*"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
now_ms() { date +%s%3N; }
die() { echo "xds_scale: $*" >&2; exit 1; }

for b in controlplane ztunnel ambient-cni; do [[ -x $BIN_DIR/$b ]] || die "$BIN_DIR/$b not built (make build)"; done

python3 "$BENCH_DIR/gen_mesh.py" "$T/mesh" "$PODS" "$SERVICES" >/dev/null || die "mesh generation failed"
result "mesh_pods=$PODS"
result "mesh_services=$SERVICES"
result "mesh_yaml_mb=$(du -sm "$T/mesh" | cut -f1)"
cat >"$T/tokens.yaml" <<TOK
tokens:
- token: bench-node-token
  serviceAccount: istio-system/ztunnel
  node: node-0
TOK

# --- control plane: first compile -------------------------------------------------------------
t0=$(now_ms)
"$BIN_DIR/controlplane" serve --dir "$T/mesh" --listen "127.0.0.1:$XDS_PORT" --cacerts "$T/cacerts" \
  --tokens "$T/tokens.yaml" --quiet >"$T/cp.log" 2>&1 &
CP_PID=$!
PIDS+=("$CP_PID")
for _ in $(seq 1 1200); do
  grep -q "serving on" "$T/cp.log" && break
  kill -0 "$CP_PID" 2>/dev/null || { tail -n 20 "$T/cp.log" >&2; die "controlplane exited"; }
  sleep 0.1
done
grep -q "serving on" "$T/cp.log" || die "controlplane not serving after 120 s"
result "controlplane_startup_ms=$(( $(now_ms) - t0 ))"
result "controlplane_rss_kb=$(rss_kb "$CP_PID")"

# --- node agent (no pods) and ztunnel ---------------------------------------------------------
"$BIN_DIR/ambient-cni" serve --socket "$T/zds.sock" --state-dir "$T/cni" >"$T/cni.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 50); do [[ -S $T/zds.sock ]] && break; sleep 0.1; done
[[ -S $T/zds.sock ]] || die "ambient-cni did not start"

t0=$(now_ms)
env -i PATH="$PATH" PROXY_MODE=shared INPOD_UDS="$T/zds.sock" \
  XDS_ADDRESS="https://127.0.0.1:$XDS_PORT" CA_ADDRESS="https://127.0.0.1:$XDS_PORT" \
  XDS_ROOT_CA="$T/cacerts/root-cert.pem" CA_ROOT_CA="$T/cacerts/root-cert.pem" \
  AUTH_TOKEN=bench-node-token NODE_NAME=node-0 POD_NAME=ztunnel-bench POD_NAMESPACE=istio-system \
  INSTANCE_IP=127.0.0.1 ZTUNNEL_WORKER_THREADS=1 RUST_LOG=${ZT_LOG:-warn} \
  ADMIN_ADDR="127.0.0.1:$((PORT_BASE + 0))" STATS_ADDR="127.0.0.1:$((PORT_BASE + 20))" \
  READINESS_ADDR="127.0.0.1:$((PORT_BASE + 21))" \
  "$BIN_DIR/ztunnel" >"$T/zt.log" 2>&1 &
ZT_PID=$!
PIDS+=("$ZT_PID")
ready=0
for _ in $(seq 1 6000); do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$((PORT_BASE + 21))/healthz/ready")
  [[ $code == 200 ]] && { ready=1; break; }
  kill -0 "$ZT_PID" 2>/dev/null || { tail -n 20 "$T/zt.log" >&2; die "ztunnel exited"; }
  sleep 0.02
done
[[ $ready == 1 ]] || { tail -n 20 "$T/zt.log" >&2; die "ztunnel not ready after 120 s"; }
result "ztunnel_initial_sync_ms=$(( $(now_ms) - t0 ))"
result "ztunnel_rss_after_sync_kb=$(rss_kb "$ZT_PID")"
result "ztunnel_peak_rss_kb=$(hwm_kb "$ZT_PID")"
workloads=$(curl -s --max-time 30 "http://127.0.0.1:$PORT_BASE/config_dump" |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d.get("workloads",[])), len(d.get("services",[])))')
result "ztunnel_config_dump_workloads_services=${workloads// /,}"

# --- delta propagation ------------------------------------------------------------------------
python3 "$BENCH_DIR/xds_scale_probe.py" "$T/mesh" "$((PORT_BASE + 20))" "$EDITS" | tee "$T/probe.log" ||
  die "delta probe failed"
summary=$(tail -n 1 "$T/probe.log")
result "delta_p50_ms=$(sed -E 's/.*P50 ([0-9]+) ms.*/\1/' <<<"$summary")"
result "delta_p99_ms=$(sed -E 's/.*P99 ([0-9]+) ms.*/\1/' <<<"$summary")"
while read -r _ kind _ _ p50 _ _ p99 _; do
  result "delta_${kind//-/_}_p50_p99_ms=${p50},${p99}"
done < <(sed -nE 's/^kind ([a-z-]+): ([0-9]+) edits, P50 ([0-9]+) ms, P99 ([0-9]+) ms.*/kind \1 x x \3 x x \4 x/p' "$T/probe.log")
# The controlplane's own split of its share (parse / compile / publish per recompile).
grep -E "compiled .* in [0-9]+ ms" "$T/cp.log" | tail -n 5 | sed 's/^/cp: /'
sleep 16   # one malloc_trim period, so RSS shows the steady state rather than the sync's peak
result "ztunnel_rss_steady_kb=$(rss_kb "$ZT_PID")"
result "controlplane_rss_steady_kb=$(rss_kb "$CP_PID")"
