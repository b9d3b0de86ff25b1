#!/usr/bin/env bash
# Side by side with a peer engine: llama.cpp (through llama-cpp-python, built from source) and `freekv bench` on the
# same GGUF and thread count, in one run: prefill speed, decode speed at several context lengths, and the perplexity of
# a text by llama.cpp's method. Benchmark-only: never run by CI.
#
# usage: scripts/bench_peer.sh [options]
#   -m, --model GGUF       default: the installed Qwen2.5-Coder-0.5B-Instruct Q4_K_M
#   --synthetic SHAPE      instead: a model freekv generates (`freekv bench --synthetic SHAPE --save-model`), written
#                          to a temporary file both engines load, e.g. tinyllama-q8_0 (1.1 GB)
#   -t, --threads N        compute threads for both engines (default 2)
#   --prefill LIST         prompt lengths for prefill, comma-separated (default 512,8192)
#   --contexts LIST        context lengths before decoding, comma-separated (default 0,4096,16384)
#   --decode-tokens N      tokens decoded one at a time per decode test (default 32)
#   --rounds N             run the speed tests N times, each round a pair per test with the engines' order
#                          alternating; the table shows medians and the median and range of the per-round ratios
#                          (default 1). A shared machine's memory bandwidth moves by a tenth from run to run, which
#                          one pair cannot tell from a difference between the engines.
#   --ppl-file FILE        text for the perplexity test (default /usr/share/common-licenses/GPL-3; "" skips it)
#   --ppl-ctx N            perplexity chunk length (default 512)
#   --peer-opts "OPTS"     extra options for scripts/peer_llamacpp.py (e.g. "--flash-attn off" or "--no-extra-bufts")
#   --out FILE             also write every measurement as JSON lines to FILE
#   --setup-only           only create or check the llama-cpp-python environment
#
# The environment lives in $FKV_PEER_VENV (default ~/.cache/freekv-peer-venv) and is reused when it imports.
# llama.cpp is built CPU-only for this machine (GGML_NATIVE) by pip; on 2 cores that takes about 10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_CPP_PYTHON_VERSION=0.3.36
venv=${FKV_PEER_VENV:-$HOME/.cache/freekv-peer-venv}
freekv=${FREEKV:-build/release/app/freekv}
model=${HOME}/.local/share/freekv-desk/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
peer_opts="" threads=2 prefill=512,8192 contexts=0,4096,16384 decode_tokens=32 rounds=1
ppl_file=/usr/share/common-licenses/GPL-3 ppl_ctx=512 out="" setup_only=0 synthetic=""

while [ $# -gt 0 ]; do
  case $1 in
    -m|--model) model=$2; shift 2 ;;
    --synthetic) synthetic=$2; shift 2 ;;
    -t|--threads) threads=$2; shift 2 ;;
    --prefill) prefill=$2; shift 2 ;;
    --contexts) contexts=$2; shift 2 ;;
    --decode-tokens) decode_tokens=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --ppl-file) ppl_file=$2; shift 2 ;;
    --ppl-ctx) ppl_ctx=$2; shift 2 ;;
    --peer-opts) peer_opts=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --setup-only) setup_only=1; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_peer.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

setup_venv() {
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import llama_cpp" 2>/dev/null; then
    return
  fi
  echo "creating $venv with llama-cpp-python $LLAMA_CPP_PYTHON_VERSION (builds llama.cpp, CPU only)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  # No GPU backend, no network client, no tools, no multimodal library: only the library the binding loads.
  # No AMX: on the project's KVM machines the CPU flags list AMX, and ggml's AMX matrix multiply crashes (SIGSEGV in
  # ggml_backend_amx_mul_mat on the first llama_decode); -march=native with -mno-amx-* keeps every other extension.
  local no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" launcher=""
  # --no-cache-dir: pip would otherwise reuse a wheel it built earlier with other CMAKE_ARGS.
  command -v ccache >/dev/null && launcher="-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache"
  CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_HIP=OFF -DGGML_OPENMP=ON \
-DLLAVA_BUILD=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF \
-DCMAKE_C_FLAGS='$no_amx' -DCMAKE_CXX_FLAGS='$no_amx' $launcher" \
  CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    "$venv/bin/pip" install --no-cache-dir --no-binary llama-cpp-python "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
}

setup_venv
[ "$setup_only" = 1 ] && exit 0

[ -x "$freekv" ] || { echo "bench_peer.sh: no $freekv; build it first: cmake --build --preset release --target freekv" >&2; exit 1; }
results=$(mktemp)
synth_dir=""
trap 'rm -f "$results"; [ -z "$synth_dir" ] || rm -rf "$synth_dir"' EXIT
if [ -n "$synthetic" ]; then
  synth_dir=$(mktemp -d)
  model=$synth_dir/$synthetic.gguf
  echo "writing the synthetic model $synthetic to $model" >&2
  "$freekv" bench --synthetic "$synthetic" --save-model "$model" --prompt-tokens 0 --decode-tokens 1 -t "$threads" \
    > /dev/null
fi
[ -f "$model" ] || { echo "bench_peer.sh: no model at $model (./scripts/setup.sh installs it)" >&2; exit 1; }
read -ra peer_extra <<< "$peer_opts"

peer() {  # peer SUBCOMMAND ARGS...: the llama.cpp driver with --peer-opts after the subcommand's own arguments
  "$venv/bin/python" scripts/peer_llamacpp.py "$@" "${peer_extra[@]}"
}

# One test, both engines back to back, so both see the same load on the machine.
round=1
record() {  # record TEST ENGINE COMMAND...
  local test=$1 engine=$2; shift 2
  local shown="$*"
  [ "$1" = peer ] && shown="scripts/peer_llamacpp.py ${*:2} $peer_opts"
  echo "$engine, $test, round $round: $shown" >&2
  "$@" | python3 -c 'import json,sys; r=json.load(sys.stdin); r["test"]=sys.argv[1]; r["engine"]=sys.argv[2]; r["command"]=sys.argv[3]; r["round"]=int(sys.argv[4]); print(json.dumps(r))' \
    "$test" "$engine" "$shown" "$round" >> "$results"
}

pair() {  # pair TEST FREEKV-ARGS... -- PEER-ARGS...: both engines, freekv first in odd rounds
  local test=$1; shift
  local fargs=() pargs=()
  while [ "$1" != -- ]; do fargs+=("$1"); shift; done
  shift
  pargs=("$@")
  if (( round % 2 == 1 )); then
    record "$test" freekv "$freekv" "${fargs[@]}"
    record "$test" llama.cpp peer "${pargs[@]}"
  else
    record "$test" llama.cpp peer "${pargs[@]}"
    record "$test" freekv "$freekv" "${fargs[@]}"
  fi
}

"$venv/bin/python" scripts/peer_llamacpp.py info >&2
IFS=, read -ra prefill_list <<< "$prefill"
IFS=, read -ra context_list <<< "$contexts"
for ((round = 1; round <= rounds; ++round)); do
  for p in "${prefill_list[@]}"; do
    args=(-m "$model" -t "$threads" --prompt-tokens "$p" --decode-tokens 0 --json)
    pair "prefill $p" bench "${args[@]}" -- bench "${args[@]}"
  done
  for c in "${context_list[@]}"; do
    args=(-m "$model" -t "$threads" --prompt-tokens 0 --context "$c" --decode-tokens "$decode_tokens" --json)
    pair "decode at $c" bench "${args[@]}" -- bench "${args[@]}"
  done
done
round=1
if [ -n "$ppl_file" ]; then
  record "perplexity" freekv "$freekv" perplexity -m "$model" -f "$ppl_file" -c "$ppl_ctx" -t "$threads" --json
  record "perplexity" llama.cpp peer perplexity -m "$model" -f "$ppl_file" -c "$ppl_ctx" -t "$threads" --json
fi
[ -n "$out" ] && cp "$results" "$out"

# The tables: speed (tok/s, freekv / llama.cpp) and perplexity (difference in % of llama.cpp's figure).
python3 - "$results" <<'PY'
import json, sys
import statistics
rows = [json.loads(line) for line in open(sys.argv[1])]
by = {}  # test -> engine -> round -> row
for r in rows:
    by.setdefault(r["test"], {}).setdefault(r["engine"], {})[r.get("round", 1)] = r
def speed(r):
    return r["prefill_tokens_per_s"] if r["test"].startswith("prefill") else r["decode_tokens_per_s"]
print("| test | rounds | freekv tok/s | llama.cpp tok/s | freekv / llama.cpp | ratio range |")
print("|---|---|---|---|---|---|")
for test, pair in by.items():
    if test == "perplexity" or len(pair) < 2:
        continue
    rounds = sorted(set(pair["freekv"]) & set(pair["llama.cpp"]))
    f = [speed(pair["freekv"][k]) for k in rounds]
    l = [speed(pair["llama.cpp"][k]) for k in rounds]
    ratios = [a / b for a, b in zip(f, l)]
    spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if len(ratios) > 1 else ""
    print(f"| {test} | {len(rounds)} | {statistics.median(f):.1f} | {statistics.median(l):.1f} | "
          f"{statistics.median(ratios):.2f} | {spread} |")
by = {t: {e: rs[min(rs)] for e, rs in pair.items()} for t, pair in by.items()}
if "perplexity" in by and len(by["perplexity"]) == 2:
    f, l = by["perplexity"]["freekv"], by["perplexity"]["llama.cpp"]
    fp, lp = f["perplexity"], l["perplexity"]
    print()
    print("| engine | tokens | chunks | scored | PPL |")
    print("|---|---|---|---|---|")
    for name, r in (("freekv", f), ("llama.cpp", l)):
        print(f"| {name} | {r['n_tokens']} | {r['chunks']} | {r['scored_tokens']} | "
              f"{r['perplexity']:.4f} ± {r['perplexity_error']:.5f} |")
    print(f"\nfreekv - llama.cpp: {100 * (fp - lp) / lp:+.3f} % of llama.cpp's PPL")
PY
