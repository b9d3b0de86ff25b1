#!/usr/bin/env bash
# Runs a `freekv eval` grid one prompt at a time, one JSON file per prompt, and skips prompts whose file exists: a
# grid that takes hours on two cores survives being stopped and goes on where it left off. Benchmark-only (not in CI).
#
# Usage: scripts/eval_grid.sh -o DIR -m MODEL --tasks LIST --lengths LIST [--count N] [-- EXTRA EVAL OPTIONS]
# Then:  scripts/eval_table.py DIR/*.json
# The defaults are those of the accuracy tables in docs/benchmarks.md: 5 prompts, eval's decode steps per task (64 for
# multikey's two numbers, vartrack and both docqa kinds, 32 for the others), policies streaming, quest, arkvale,
# freekv@0.8 and freekv@0.9 beside full, 2 threads.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
freekv="${FREEKV:-$here/../build/release/app/freekv}"
out="" model="" tasks="" lengths="" count=5
while [[ $# -gt 0 ]]; do
  case "$1" in
    -o) out="$2"; shift 2 ;;
    -m) model="$2"; shift 2 ;;
    --tasks) tasks="$2"; shift 2 ;;
    --lengths) lengths="$2"; shift 2 ;;
    --count) count="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "eval_grid.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
[[ -n "$out" && -n "$model" && -n "$tasks" && -n "$lengths" ]] || {
  sed -n '2,9p' "$0" >&2
  exit 2
}
[[ -x "$freekv" ]] || { echo "eval_grid.sh: no freekv at $freekv (build first, or set FREEKV)" >&2; exit 1; }
mkdir -p "$out"
name="$(basename "$model" .gguf)"

IFS=, read -r -a task_list <<<"$tasks"
IFS=, read -r -a length_list <<<"$lengths"
for length in "${length_list[@]}"; do
  for task in "${task_list[@]}"; do
    for ((i = 1; i <= count; ++i)); do
      file="$out/${name}_${task}_${length}_${i}of${count}.json"
      [[ -s "$file" ]] && continue
      echo "$(date -u +%H:%M:%S) $name $task $length prompt $i of $count" >&2
      "$freekv" eval -m "$model" --tasks "$task" --lengths "$length" --count "$count" --items "$i" \
        --policies streaming,quest,arkvale,freekv@0.8,freekv@0.9 -t 2 --json "$@" >"$file.part"
      mv "$file.part" "$file"
    done
  done
done
