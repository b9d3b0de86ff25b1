// A loaded model: the GGUF mapping, its blueprint (ModelConfig), weight views into the mapping, and the tokenizer.
// Quantized weights stay quantized in the mapping; nothing is dequantized up front.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/cpu/quant.h"
#include "core/gguf.h"
#include "fkv/status.h"
#include "model/config.h"
#include "model/tensors.h"

namespace fkv {

class Tokenizer;

using LayerWeights = LayerTensors<cpu::MatrixView>;
using ModelWeights = ModelTensors<cpu::MatrixView>;

class Model {
 public:
  ~Model();
  // Maps, validates (every tensor present with the shape the config implies; F32 for norms and biases) and builds the
  // tokenizer. `rope` replaces the file's RoPE scaling (ModelConfig::apply_rope_override).
  static Result<std::unique_ptr<Model>> load(const std::string& path, const RopeOverride& rope = {});

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const GgufFile& gguf() const { return *gguf_; }
  const std::string& path() const { return path_; }
  // Bytes of weights read per decoded token (every matrix once; the embedding row is negligible).
  size_t weight_bytes() const;

 private:
  Model() = default;
  std::string path_;
  std::unique_ptr<GgufFile> gguf_;
  ModelConfig config_;
  ModelWeights weights_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

}  // namespace fkv
