// The synthetic model most suites start from: Llama on the shared SentencePiece test vocabulary, with the spec's
// small defaults (2 layers, embd 64) unless a suite changes them, written to a file the suite names.
#pragma once

#include <QString>
#include <cstdint>

#include "model/synthetic.h"

namespace fkvtest {

fkv::SyntheticModelSpec llamaSpec(uint64_t seed, int n_ctx = 4096);
// Writes `spec` to `path`. Empty when it worked, else why not (for QVERIFY2).
QString writeModel(const fkv::SyntheticModelSpec& spec, const QString& path);

}  // namespace fkvtest
