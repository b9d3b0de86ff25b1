#!/usr/bin/env bash
# Decode over a whole book against decode at 4k, the ratio issue 17 asks about (>= 0.8x), measured as the tables in
# docs/benchmarks.md measure it: `freekv bench` over the document's saved KV (policy freekv), then `freekv bench` at a
# 4k context with no prompt (policy freekv), in rounds, the two's order alternating, with the median and the range of
# the per-round ratios. A shared machine's speed moves by tens of percent within an hour, which one pair cannot tell
# from a real difference. Benchmark-only: never run by CI.
#
# usage: scripts/bench_book.sh [options]
#   -m, --model GGUF       default: the installed Qwen2.5-Coder-0.5B-Instruct Q4_K_M
#   --document FILE        default: the Rust Book the Rust toolchain ships (print.html, about 300k tokens)
#   --library DB           library whose saved KV the book runs reopen (default ~/.cache/freekv-bench-book/library.db).
#                          The first run prefills the document into it once: about an hour and 4 GB on 2 cores.
#   -t, --threads N        compute threads (default 2)
#   --rounds N             rounds (default 4)
#   --decode-tokens N      tokens decoded per run (default 64)
#   --build BIN            a freekv binary to measure; repeat it to compare builds in the same rounds (their book runs
#                          interleave, and the 4k runs use each in turn). Default: build/release/app/freekv
#   --out DIR              keep every run's JSON there (default: a temporary folder, removed at the end)
#
# Before each book run the document's page files are read once, so every run starts with them in the page cache: a
# machine that evicts file pages quickly would otherwise time the disk.
set -euo pipefail
cd "$(dirname "$0")/.."

model="$HOME/.local/share/freekv-desk/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
document=""
library="$HOME/.cache/freekv-bench-book/library.db"
threads=2 rounds=4 decode=64 out=""
builds=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -m | --model) model="$2"; shift 2 ;;
    --document) document="$2"; shift 2 ;;
    --library) library="$2"; shift 2 ;;
    -t | --threads) threads="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --decode-tokens) decode="$2"; shift 2 ;;
    --build) builds+=("$2"); shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "bench_book.sh: unknown option '$1' (--help lists them)" >&2; exit 2 ;;
  esac
done
[[ ${#builds[@]} -gt 0 ]] || builds=(build/release/app/freekv)
for b in "${builds[@]}"; do
  [[ -x "$b" ]] || { echo "bench_book.sh: no freekv binary at $b (build first)" >&2; exit 1; }
done
[[ -f "$model" ]] || { echo "bench_book.sh: no model at $model (./scripts/setup.sh installs it)" >&2; exit 1; }
if [[ -z "$document" ]]; then
  command -v rustc >/dev/null || { echo "bench_book.sh: no rustc to find the Rust Book; name a --document" >&2; exit 1; }
  document="$(rustc --print sysroot)/share/doc/rust/html/book/print.html"
fi
[[ -f "$document" ]] || { echo "bench_book.sh: no document at $document" >&2; exit 1; }
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "bench_book.sh: --rounds must be a positive number, found '$rounds'" >&2; exit 2; }
mkdir -p "$(dirname "$library")"
keep=1
if [[ -z "$out" ]]; then
  out="$(mktemp -d)"
  keep=0
fi
mkdir -p "$out"
cleanup() { [[ $keep == 1 ]] || rm -rf "$out"; }
trap cleanup EXIT

warm_pages() {
  # The library's own rule (store/library.h): "pages" beside the database, or "<database>.pages" when another
  # library's database in that folder owns "pages".
  local dir="$library.pages"
  [[ -d "$dir" ]] || dir="$(dirname "$library")/pages"
  [[ -d "$dir" ]] && find "$dir" -name '*.fkvpages' -exec cat {} + >/dev/null
  return 0
}
book_run() {  # BIN FILE
  warm_pages
  "$1" bench -m "$model" --document "$document" --library "$library" --decode-tokens "$decode" -t "$threads" --json \
    >"$2" 2>>"$out/stderr.txt" || { echo "bench_book.sh: the book run failed; see $out/stderr.txt" >&2; keep=1; exit 1; }
}
short_run() {  # BIN FILE
  "$1" bench -m "$model" --context 4096 --prompt-tokens 0 --decode-tokens "$decode" --policy freekv -t "$threads" \
    --json >"$2" 2>>"$out/stderr.txt" || { echo "bench_book.sh: the 4k run failed; see $out/stderr.txt" >&2; keep=1; exit 1; }
}

if [[ ! -f "$library" ]]; then
  echo "bench_book.sh: no saved KV in $library yet: the first book run prefills the document (about an hour on 2 cores)" >&2
fi
n=${#builds[@]}
for ((r = 1; r <= rounds; ++r)); do
  order=()
  for ((i = 0; i < n; ++i)); do
    if ((r % 2)); then order+=("$i"); else order+=("$((n - 1 - i))"); fi
  done
  if ((r % 2)); then
    for i in "${order[@]}"; do book_run "${builds[$i]}" "$out/book-$i-$r.json"; done
    for i in "${order[@]}"; do short_run "${builds[$i]}" "$out/4k-$i-$r.json"; done
  else
    for i in "${order[@]}"; do short_run "${builds[$i]}" "$out/4k-$i-$r.json"; done
    for i in "${order[@]}"; do book_run "${builds[$i]}" "$out/book-$i-$r.json"; done
  fi
  echo "bench_book.sh: round $r of $rounds done" >&2
done

python3 - "$out" "$rounds" "${builds[@]}" <<'EOF'
import json, statistics, sys

out, rounds, builds = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def load(kind, i, r):
    with open(f"{out}/{kind}-{i}-{r}.json") as f:
        return json.load(f)
def cell(d):
    return f"{d['decode_tokens_per_s']:.2f} ({d['select_ms_per_token']:.2f} / {d['recall_ms_per_token']:.2f})"
for i, b in enumerate(builds):
    books = [load("book", i, r) for r in range(1, rounds + 1)]
    shorts = [load("4k", i, r) for r in range(1, rounds + 1)]
    first = books[0]
    print(f"\n{b}: {first['document_tokens']} document tokens, policy {first['policy']}, {first['threads']} threads")
    print("tok/s with (selection / recall) ms a token\n")
    print("| round | book | 4k | book / 4k | first token (s) |")
    print("|---|---|---|---|---|")
    ratios = []
    for r, (bk, sh) in enumerate(zip(books, shorts), 1):
        ratio = bk["decode_tokens_per_s"] / sh["decode_tokens_per_s"]
        ratios.append(ratio)
        print(f"| {r} | {cell(bk)} | {cell(sh)} | {ratio:.2f} | {bk['first_token_s']:.2f} |")
    med = statistics.median
    print(f"| median | {med([d['decode_tokens_per_s'] for d in books]):.2f} | "
          f"{med([d['decode_tokens_per_s'] for d in shorts]):.2f} | {med(ratios):.2f} "
          f"(range {min(ratios):.2f}-{max(ratios):.2f}) | {med([d['first_token_s'] for d in books]):.2f} |")
EOF
