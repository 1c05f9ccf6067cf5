#!/usr/bin/env bash
# scripts/fuzz-long.sh BIN_DIR [SECONDS] [CORPUS_ROOT] [TARGET...] — the release-depth fuzz run
# (`make fuzz-long`): each libFuzzer target for SECONDS (default 300 = 5 CPU-minutes; one
# process per target, so wall time = CPU time), one target after the other.
#
# Corpus: CORPUS_ROOT/<target>/ (default .fuzz-corpus/ in the repo, git-ignored) persists
# across runs and grows; fuzz/corpus/<target>/ (the checked-in seeds) is read but never
# written. Crashes, leaks and timeouts go to CORPUS_ROOT/artifacts/<target>/ — copy each
# minimised reproducer into fuzz/corpus/<target>/ with its fix. A results line per target is
# printed and appended to CORPUS_ROOT/results.tsv (date, target, seconds, runs, coverage,
# corpus size, verdict) for docs/testing.md.
# Exit 1 if any target found a problem (or did not start).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-build-asan/bin}
SECS=${2:-300}
CORPUS_ROOT=${3:-$ROOT/.fuzz-corpus}
shift $(( $# < 3 ? $# : 3 ))
if ! [[ $SECS =~ ^[0-9]+$ && $SECS -gt 0 ]]; then echo "fuzz-long: SECONDS must be a positive integer, got '$SECS'"; exit 2; fi
targets=()
if [[ $# -gt 0 ]]; then
  for n in "$@"; do targets+=("$BIN/$n"); done
else
  shopt -s nullglob
  targets=("$BIN"/*_fuzz)
fi
if [[ ${#targets[@]} -eq 0 ]]; then echo "fuzz-long: no fuzz targets in $BIN (make build-asan)"; exit 1; fi
mkdir -p "$CORPUS_ROOT"
results="$CORPUS_ROOT/results.tsv"
[[ -f $results ]] || printf 'date\ttarget\tseconds\truns\tcov\tcorpus_files\tverdict\n' >"$results"
pass=0; fail=0
for t in "${targets[@]}"; do
  name=$(basename "$t")
  if [[ ! -x $t ]]; then echo "FAIL fuzz-long $name: not built"; fail=$((fail + 1)); continue; fi
  corpus="$CORPUS_ROOT/$name"
  artifacts="$CORPUS_ROOT/artifacts/$name"
  mkdir -p "$corpus" "$artifacts"
  args=("$corpus")
  [[ -d $ROOT/fuzz/corpus/$name ]] && args+=("$ROOT/fuzz/corpus/$name")
  log="$CORPUS_ROOT/$name.log"
  "$t" -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "${args[@]}" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | awk '{print $2}')
  files=$(find "$corpus" -type f | wc -l)
  if [[ $rc == 0 ]]; then verdict=ok; pass=$((pass + 1)); else verdict="FAILED(rc=$rc)"; fail=$((fail + 1)); fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$name" "$SECS" "${runs:-?}" "${cov:-?}" \
    "$files" "$verdict" | tee -a "$results"
  if [[ $rc != 0 ]]; then
    echo "--- $name: see $log and $artifacts/"
    grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -n 10
  fi
done
echo "$pass passed, $fail failed (corpus and results in $CORPUS_ROOT)"
[[ $fail == 0 ]]
