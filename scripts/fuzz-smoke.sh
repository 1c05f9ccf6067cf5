#!/usr/bin/env bash
# Runs every libFuzzer target for a short, bounded time (CI smoke). Longer by hand:
#   bash scripts/fuzz-smoke.sh build-asan/bin 600   (targets are built by `make build-asan`)
set -euo pipefail
BIN=${1:-build-asan/bin}
SECS=${2:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
shopt -s nullglob
targets=("$BIN"/*_fuzz)
if [ ${#targets[@]} -eq 0 ]; then echo "fuzz-smoke: no fuzz targets in $BIN"; exit 1; fi
pass=0; fail=0
for t in "${targets[@]}"; do
  name=$(basename "$t")
  corpus="$ROOT/fuzz/corpus/$name"
  work=$(mktemp -d)
  args=("$work")
  [ -d "$corpus" ] && args+=("$corpus")
  if "$t" -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=5 -print_final_stats=0 "${args[@]}" >"$work.log" 2>&1; then
    echo "PASS fuzz $name (${SECS}s)"; pass=$((pass+1))
  else
    echo "FAIL fuzz $name"; tail -40 "$work.log"; fail=$((fail+1))
  fi
  rm -rf "$work" "$work.log"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
