#!/usr/bin/env bash
# Runs every gpu-labelled test under compute-sanitizer's memcheck, racecheck and synccheck, one tool at a time, and
# says which tool and test failed. The gpu tests compare the CUDA backend with the CPU but cannot see an out-of-bounds
# read that happens to return plausible data, a shared-memory race that happens to resolve, or a divergent
# __syncthreads: these tools can. Needs a built tree (the release preset by default) and a GPU; on a machine without
# compute-sanitizer or without a device it says so and exits 0 without running anything, so CI may call it anywhere.
#
# usage: scripts/gpu_sanitize.sh [build dir] [tool...]
#   build dir   default build/release
#   tool        memcheck, racecheck, synccheck (default: all three)
# Every test's own output and the sanitizer's report go to <build dir>/sanitize/<tool>/<test>.log.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${1:-build/release}
shift || true
tools=("$@")
[ ${#tools[@]} -eq 0 ] && tools=(memcheck racecheck synccheck)

sanitizer=$(command -v compute-sanitizer || true)
if [ -z "$sanitizer" ] && [ -x /usr/local/cuda/bin/compute-sanitizer ]; then
  sanitizer=/usr/local/cuda/bin/compute-sanitizer
fi
if [ -z "$sanitizer" ]; then
  echo "gpu_sanitize: compute-sanitizer is not installed (it ships with the CUDA toolkit); nothing run"
  exit 0
fi
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  echo "gpu_sanitize: no NVIDIA GPU visible (nvidia-smi -L lists none); nothing run"
  exit 0
fi
if [ ! -f "$build/CTestTestfile.cmake" ]; then
  echo "gpu_sanitize: $build is not a configured build tree (run cmake --preset release and build first)" >&2
  exit 2
fi

# The gpu label's executables, from CTest's own listing, so a new suite is picked up without editing this script.
mapfile -t tests < <(ctest --test-dir "$build" -L gpu -N | sed -n 's/^ *Test *#[0-9]*: *//p')
if [ ${#tests[@]} -eq 0 ]; then
  echo "gpu_sanitize: ctest lists no test with the label gpu in $build" >&2
  exit 2
fi

failed=()
for tool in "${tools[@]}"; do
  case "$tool" in
    memcheck) extra=(--leak-check full) ;;
    racecheck | synccheck) extra=() ;;
    *)
      echo "gpu_sanitize: unknown tool '$tool' (expected memcheck, racecheck or synccheck)" >&2
      exit 2
      ;;
  esac
  mkdir -p "$build/sanitize/$tool"
  for t in "${tests[@]}"; do
    exe=$(find "$build/tests" -maxdepth 1 -type f -name "$t" -perm -u+x | head -n 1)
    if [ -z "$exe" ]; then
      echo "gpu_sanitize: $t is listed by ctest but not built in $build/tests" >&2
      failed+=("$tool:$t (not built)")
      continue
    fi
    log="$build/sanitize/$tool/$t.log"
    # --error-exitcode makes a reported hazard fail the run even when the test's own checks pass.
    if QT_QPA_PLATFORM=offscreen "$sanitizer" --tool "$tool" "${extra[@]}" --error-exitcode 99 "$exe" >"$log" 2>&1; then
      echo "ok    $tool $t"
    else
      echo "FAIL  $tool $t (exit $?; see $log)"
      failed+=("$tool:$t")
    fi
  done
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "gpu_sanitize: ${#failed[@]} failed: ${failed[*]}"
  exit 1
fi
echo "gpu_sanitize: every gpu test is clean under ${tools[*]}"
