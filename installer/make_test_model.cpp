// fkv_make_test_model: writes a tiny seeded GGUF model (the engine's synthetic llama: 2 layers, embd 64, Q8_0) so
// that scripts/install_test.sh can run the installed `freekv info` on a real model file without downloading one.
// A build tool of the `package` preset; never installed.
//
//   fkv_make_test_model VOCAB.gguf OUT.gguf
//
// VOCAB is a GGUF holding tokenizer.ggml.* arrays (../shared/vocab/llama-spm.gguf); the model takes its vocabulary.
#include <cstdio>
#include <string>

#include "model/synthetic.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: fkv_make_test_model VOCAB.gguf OUT.gguf (expected 2 arguments, found %d)\n", argc - 1);
    return 2;
  }
  fkv::SyntheticModelSpec spec;  // the spec's defaults: llama, 2 layers, embd 64, 4 heads, 2 KV heads, FFN 128
  spec.weight_type = fkv::DType::Q8_0;
  spec.vocab_path = argv[1];
  spec.name = "install test model";
  const fkv::Status s = fkv::write_synthetic_model(spec, argv[2]);
  if (!s.ok()) {
    std::fprintf(stderr, "fkv_make_test_model: %s\n", s.message().c_str());
    return 1;
  }
  std::printf("%s\n", argv[2]);
  return 0;
}
