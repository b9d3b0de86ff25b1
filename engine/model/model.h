// A loaded model: the GGUF mapping, its blueprint (ModelConfig), weight views into the mapping, and the tokenizer.
// Quantized weights stay quantized in the mapping; nothing is dequantized up front.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/cpu/quant.h"
#include "core/gguf.h"
#include "fkv/options.h"
#include "fkv/status.h"
#include "model/config.h"
#include "model/tensors.h"

namespace fkv {

class Tokenizer;

using LayerWeights = LayerTensors<cpu::MatrixView>;
using ModelWeights = ModelTensors<cpu::MatrixView>;

// How the weights are held for a backend. The CPU's are copied into huge pages where the kernel offers them (decode
// streams every weight once per token, and the huge pages' TLB reach makes that stream faster), else mapped;
// FKV_WEIGHTS=map keeps the plain mapping (less load time, and the page cache's copy shared between processes).
// CUDA's are mapped: they are uploaded to the GPU, and a host copy would only cost time.
FileBacking weight_backing(Backend backend = Backend::cpu);

class Model {
 public:
  ~Model();
  // Maps, validates (every tensor present with the shape the config implies; F32 for norms and biases) and builds the
  // tokenizer. `rope` replaces the file's RoPE scaling (ModelConfig::apply_rope_override). `backing`: how the file is
  // held (weight_backing()).
  static Result<std::unique_ptr<Model>> load(const std::string& path, const RopeOverride& rope = {},
                                             FileBacking backing = weight_backing());

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const GgufFile& gguf() const { return *gguf_; }
  const std::string& path() const { return path_; }
  // Whether the weights are an anonymous copy in huge pages rather than a mapping of the file.
  bool weights_copied() const { return gguf_->copied(); }
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
