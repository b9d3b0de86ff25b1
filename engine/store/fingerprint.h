// Fingerprints that tie a KV snapshot to what computed it. Keys and values depend on the model's weights and on the
// token ids the tokenizer produced, so a snapshot names both and is refused by any other model or vocabulary.
#pragma once

#include <cstdint>
#include <string>

namespace fkv {

class GgufFile;

// 32 lowercase hex digits: the checksum of everything before the tensor data (header, metadata, tensor infos),
// then a checksum of the first 4 KiB of every tensor's data. The metadata alone names architecture, shapes, types
// and offsets; the data sample also tells apart files whose metadata is identical but whose weights are not (a
// re-quantisation with the same tool and settings, a fine-tune that kept the base's name). Reads at most one page
// per tensor, so it is cheap even for a multi-gigabyte mapped file.
std::string model_fingerprint(const GgufFile& f);

// A checksum of every "tokenizer.ggml.*" metadata entry (vocabulary strings, scores, token types, merges, special
// ids, flags), keys sorted so the order they were written in does not matter. Two GGUFs with the same value tokenize
// every text to the same ids. Hashed from the GGUF rather than the Tokenizer, which does not expose its scores.
uint64_t tokenizer_hash(const GgufFile& f);

}  // namespace fkv
