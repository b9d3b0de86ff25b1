// libFuzzer target for the GGUF reader: any input must either fail with a message or parse into a file whose every
// getter and tensor view stays inside the input (AddressSanitizer checks each byte touched).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "core/gguf.h"

namespace {

// Keeps results observable so the optimizer cannot drop the reads.
volatile uint64_t g_sink = 0;

void touch(std::string_view s) {
  for (char c : s) g_sink = g_sink + static_cast<uint8_t>(c);
}

template <class T>
void consume(const fkv::Result<std::optional<T>>& r) {
  if (!r.ok()) {
    g_sink = g_sink + r.message().size();
    return;
  }
  g_sink = g_sink + (r.value().has_value() ? 1 : 0);
}

// Every typed getter on every key: the right type answers, the others must fail cleanly.
void exercise_metadata(const fkv::GgufFile& f) {
  for (const auto& [key, value] : f.metadata()) {
    touch(key);
    touch(value.str);
    for (std::string_view s : value.strs) touch(s);
    consume(f.get_uint(key));
    consume(f.get_int(key));
    consume(f.get_float(key));
    consume(f.get_bool(key));
    consume(f.get_string(key));
    consume(f.get_string_array(key));
    consume(f.get_f32_array(key));
    consume(f.get_int_array(key));
    if (f.find(key) != &value) __builtin_trap();  // keys are unique, so find() returns this entry
  }
  consume(f.get_uint("absent.key"));
}

void exercise_tensors(const fkv::GgufFile& f) {
  for (const fkv::GgufTensor& t : f.tensors()) {
    if (f.find_tensor(t.name) != &t) __builtin_trap();
    if (t.offset % f.alignment() != 0 || t.offset + t.n_bytes > f.file_size()) __builtin_trap();
    const int64_t n = t.n_elements();
    if (n <= 0 || fkv::row_bytes(t.type, n) != t.n_bytes) __builtin_trap();
    for (uint64_t k = 0; k < t.n_bytes; ++k) g_sink = g_sink + t.data[k];
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = fkv::GgufFile::parse(data, size, "fuzz.gguf");
  if (!f.ok()) {
    if (f.message().rfind("fuzz.gguf: ", 0) != 0) __builtin_trap();  // every error names its input
    return 0;
  }
  exercise_metadata(**f);
  exercise_tensors(**f);
  return 0;
}
