// Synthetic model shapes for `freekv bench --synthetic`, and where their vocabulary is found.
#pragma once

#include <string>
#include <string_view>

#include "fkv/status.h"
#include "model/synthetic.h"

namespace freekv {

// "tinyllama-q8_0", "tinyllama-f16" (llama, 22 layers, embd 2048, 32 heads, 4 KV heads, FFN 5632), "tiny-llama",
// "tiny-gemma3" (a few layers, for smoke tests). The spec's vocab_path is left empty.
fkv::Result<fkv::SyntheticModelSpec> synthetic_shape(std::string_view name);
std::string synthetic_shape_names();

// `explicit_path` when given, else $FKV_VOCAB, else shared/vocab/llama-spm.gguf in a folder above the executable
// (or share/freekv/vocab in an install prefix).
fkv::Result<std::string> find_vocab(const std::string& explicit_path);

// A fresh folder under $TMPDIR (or /tmp).
fkv::Result<std::string> make_temp_dir();

// Writes the model from a child process, so the memory the writer needs never counts toward this process's peak RSS.
fkv::Status write_synthetic_in_child(const fkv::SyntheticModelSpec& spec, const std::string& path);

// A folder removed when this goes out of scope, however the command ends.
struct TempDir {
  std::string path;
  TempDir() = default;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();
};

// A fresh folder under $TMPDIR (else /tmp), for a TempDir to own.
fkv::Result<std::string> make_temp_dir();

// The model a command runs: `model_path` when `synthetic` is empty, else the named synthetic shape written into a fresh
// folder held by `tmp` (vocabulary from find_vocab(vocab)), or to `keep_path` where one is given, which outlives it.
fkv::Result<std::string> prepare_model(const std::string& model_path, const std::string& synthetic,
                                       const std::string& vocab, TempDir& tmp, const std::string& keep_path = "");

}  // namespace freekv
