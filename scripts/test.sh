#!/usr/bin/env bash
# Runs every test: the release build's suites (unit + slow), the unit suites under ASan+UBSan, the install test of
# the packages, and a bounded fuzz run.
# GPU suites (label gpu) skip with a message where no CUDA device exists.
set -euo pipefail
cd "$(dirname "$0")/.."

ctest --preset release
ctest --preset debug-asan
bash scripts/install_test.sh  # builds the .deb and .tar.gz, installs, runs and removes them in throwaway places

for target in build/fuzz/tests/fuzz/fuzz_*; do
  [ -x "$target" ] || continue
  name=$(basename "$target"); kind=${name#fuzz_}
  # New inputs go to the scratch folder (first); the checked-in seeds are read only.
  args=("build/fuzz/corpus-$kind")
  mkdir -p "build/fuzz/corpus-$kind"
  [ -d "tests/fuzz/corpus/$kind" ] && args+=("tests/fuzz/corpus/$kind")
  [ -f "tests/fuzz/corpus/$kind.dict" ] && args=("-dict=tests/fuzz/corpus/$kind.dict" "${args[@]}")
  echo "fuzzing $name for 30 s"
  "$target" -max_total_time=30 -rss_limit_mb=2048 "${args[@]}" >/dev/null 2>build/fuzz/last.log \
    || { tail -50 build/fuzz/last.log; exit 1; }
done
echo "fuzz: no crash"
