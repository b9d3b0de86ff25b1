#include "support/test_models.h"

#include "support/test_paths.h"

namespace fkvtest {

fkv::SyntheticModelSpec llamaSpec(uint64_t seed, int n_ctx) {
  fkv::SyntheticModelSpec s;
  s.vocab_path = llamaVocabPath().toStdString();
  s.seed = seed;
  s.n_ctx = n_ctx;
  return s;
}

QString writeModel(const fkv::SyntheticModelSpec& spec, const QString& path) {
  const fkv::Status s = fkv::write_synthetic_model(spec, path.toStdString());
  return s.ok() ? QString() : QString::fromStdString(s.message());
}

}  // namespace fkvtest
