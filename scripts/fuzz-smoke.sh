#!/usr/bin/env bash
# Runs every libFuzzer target for a short, bounded time (CI smoke), FUZZ_JOBS targets at a time
# (default: the number of cores; each target is single-threaded, so this keeps every target's
# fuzzing depth while the smoke takes 1/nproc of the wall time). Longer by hand:
#   bash scripts/fuzz-smoke.sh build-asan/bin 600   (targets are built by `make build-asan`)
set -euo pipefail
BIN=${1:-build-asan/bin}
SECS=${2:-20}
JOBS=${FUZZ_JOBS:-$(nproc)}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
shopt -s nullglob
targets=("$BIN"/*_fuzz)
if [ ${#targets[@]} -eq 0 ]; then echo "fuzz-smoke: no fuzz targets in $BIN"; exit 1; fi
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
# run_one TARGET — fuzzes one target; writes its verdict (and the log tail on failure) under
# $results so that parallel runs never interleave their output.
run_one() {
  local t="$1" name corpus work args
  name=$(basename "$t")
  corpus="$ROOT/fuzz/corpus/$name"
  work=$(mktemp -d)
  args=("$work")
  [ -d "$corpus" ] && args+=("$corpus")
  if "$t" -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=5 -print_final_stats=0 "${args[@]}" >"$work.log" 2>&1; then
    echo "PASS fuzz $name (${SECS}s)" >"$results/$name.pass"
  else
    { echo "FAIL fuzz $name"; tail -40 "$work.log"; } >"$results/$name.fail"
  fi
  rm -rf "$work" "$work.log"
}
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then wait -n || true; running=$((running - 1)); fi
done
wait
pass=0; fail=0
for t in "${targets[@]}"; do
  name=$(basename "$t")
  if [ -f "$results/$name.pass" ]; then cat "$results/$name.pass"; pass=$((pass + 1))
  elif [ -f "$results/$name.fail" ]; then cat "$results/$name.fail"; fail=$((fail + 1))
  else echo "FAIL fuzz $name (no verdict)"; fail=$((fail + 1)); fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
