// GGUF v3 writer, used by the synthetic-model writer, the tests and the tools. Keeps everything in memory, then
// writes the file to a temporary name and renames it, so a failed write leaves no half file behind.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/gguf.h"
#include "fkv/status.h"

namespace fkv {

class GgufWriter {
 public:
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_u64(const std::string& key, uint64_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, const std::string& v);
  void set_string_array(const std::string& key, const std::vector<std::string>& v);
  void set_f32_array(const std::string& key, const std::vector<float>& v);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& v);
  // Copies one key (any type, arrays included) from a parsed file, e.g. the tokenizer.ggml.* vocabulary.
  void copy_value(const std::string& key, const GgufValue& v);

  // `dims` in GGUF order (dims[0] = row length); `data` holds the tensor already encoded in `type`.
  void add_tensor(const std::string& name, std::vector<int64_t> dims, DType type, std::vector<uint8_t> data);

  void set_alignment(uint32_t a);  // default 32; also written as general.alignment when not 32
  // Invalid input (a tensor whose data does not match its dims and type, a duplicate tensor name, a bad alignment)
  // is kept as the first error, reported here and by write(); to_bytes() leaves the rejected item out.
  const Status& status() const { return error_; }
  Status write(const std::string& path) const;
  std::vector<uint8_t> to_bytes() const;  // the exact bytes write() would put in the file

 private:
  struct TensorEntry {
    std::string name;
    std::vector<int64_t> dims;  // (n_dims), GGUF order
    DType type;
    std::vector<uint8_t> data;  // (n_bytes) encoded in `type`
  };
  std::vector<std::pair<std::string, std::vector<uint8_t>>> kv_;  // key -> encoded (type, value) bytes
  std::vector<TensorEntry> tensors_;
  uint32_t alignment_ = 32;
  Status error_;  // first invalid input; sticky
  void fail(Status s);
  void set_raw(const std::string& key, std::vector<uint8_t> encoded);
  Status check_tensor(const std::string& name, const std::vector<int64_t>& dims, DType type, size_t n_bytes) const;
  std::vector<uint8_t> meta_bytes() const;  // header, metadata, tensor infos and the padding up to the data section
};

}  // namespace fkv
