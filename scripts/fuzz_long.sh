#!/usr/bin/env bash
# The long fuzz job (issue 13): runs each libFuzzer target of the fuzz preset until it has executed RUNS inputs
# (default 1,000,000) or MAX_S seconds have passed (default 0: no time limit), one target at a time because each
# takes a core, and prints each target's executions, speed and result. CI keeps its 30 s runs (scripts/test.sh).
#
#   scripts/fuzz_long.sh                    # every target, 1M executions each
#   RUNS=200000 MAX_S=900 scripts/fuzz_long.sh fuzz_pdf
#
# New inputs go to build/fuzz/corpus-<kind> (as in scripts/test.sh); the checked-in seeds are read only. A crash
# leaves its input as build/fuzz/crash-* and fails the job.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-1000000}
max_s=${MAX_S:-0}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for t in build/fuzz/tests/fuzz/fuzz_*; do [ -x "$t" ] && targets+=("$(basename "$t")"); done
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz_long: no targets in build/fuzz/tests/fuzz (cmake --build --preset fuzz)" >&2; exit 1; }

status=0
printf '%-16s %12s %10s %8s  %s\n' target executions exec/s seconds result
for name in "${targets[@]}"; do
  target=build/fuzz/tests/fuzz/$name; kind=${name#fuzz_}
  [ -x "$target" ] || { echo "fuzz_long: $target is not built" >&2; exit 1; }
  mkdir -p "build/fuzz/corpus-$kind"
  args=("build/fuzz/corpus-$kind")
  [ -d "tests/fuzz/corpus/$kind" ] && args+=("tests/fuzz/corpus/$kind")
  [ -f "tests/fuzz/corpus/$kind.dict" ] && args=("-dict=tests/fuzz/corpus/$kind.dict" "${args[@]}")
  log=build/fuzz/long-$kind.log
  start=$(date +%s)
  result=ok
  "$target" -runs="$runs" -max_total_time="$max_s" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix=build/fuzz/ "${args[@]}" >"$log" 2>&1 || { result="FAILED (see $log)"; status=1; }
  seconds=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  [ "$result" = ok ] && [ "${execs:-0}" -lt "$runs" ] && result="stopped by MAX_S before $runs executions"
  printf '%-16s %12s %10s %8s  %s\n' "$name" "${execs:-?}" "${speed:-?}" "$seconds" "$result"
done
exit $status
