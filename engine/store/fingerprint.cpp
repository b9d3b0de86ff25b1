#include "store/fingerprint.h"

#include <algorithm>
#include <bit>
#include <cinttypes>
#include <cstdio>
#include <string_view>
#include <vector>

#include "core/gguf.h"
#include "store/checksum.h"

namespace fkv {

namespace {

constexpr uint64_t kTensorSampleBytes = 4096;
constexpr std::string_view kTokenizerPrefix = "tokenizer.ggml.";

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, v);
  return buf;
}

void put_u64(Checksum64& h, uint64_t v) {
  uint8_t b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
  h.update(b, sizeof(b));
}

// Length first, so ("ab", "c") and ("a", "bc") hash differently.
void put_bytes(Checksum64& h, std::string_view s) {
  put_u64(h, s.size());
  h.update(s.data(), s.size());
}

// One metadata value: its type, then a canonical encoding (decoded scalars, or the array's payload).
void put_value(Checksum64& h, const GgufValue& v) {
  put_u64(h, static_cast<uint64_t>(v.type));
  switch (v.type) {
    case GgufType::STRING:
      put_bytes(h, v.str);
      break;
    case GgufType::ARRAY:
      put_u64(h, static_cast<uint64_t>(v.elem_type));
      put_u64(h, v.count);
      if (v.elem_type == GgufType::STRING) {
        for (std::string_view s : v.strs) put_bytes(h, s);
      } else if (v.data != nullptr) {
        h.update(v.data, static_cast<size_t>(v.count) * gguf_scalar_size(v.elem_type));
      }
      break;
    default:  // the scalar fields that do not apply to a type are zero, so hashing all three is canonical
      put_u64(h, v.u);
      put_u64(h, static_cast<uint64_t>(v.i));
      put_u64(h, std::bit_cast<uint64_t>(v.f));
  }
}

}  // namespace

std::string model_fingerprint(const GgufFile& f) {
  const uint64_t head = checksum64(f.file_data(), f.data_offset());
  Checksum64 sample;
  for (const GgufTensor& t : f.tensors()) {
    if (t.data != nullptr) sample.update(t.data, static_cast<size_t>(std::min(t.n_bytes, kTensorSampleBytes)));
  }
  return hex(head) + hex(sample.digest());
}

uint64_t tokenizer_hash(const GgufFile& f) {
  std::vector<const std::pair<std::string, GgufValue>*> entries;
  for (const auto& kv : f.metadata())
    if (std::string_view(kv.first).starts_with(kTokenizerPrefix)) entries.push_back(&kv);
  std::sort(entries.begin(), entries.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
  Checksum64 h;
  put_u64(h, entries.size());
  for (const auto* kv : entries) {
    put_bytes(h, kv->first);
    put_value(h, kv->second);
  }
  return h.digest();
}

}  // namespace fkv
