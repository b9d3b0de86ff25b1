// GGUF v3 (also v2) reader: memory-mapped, every metadata value type, alignment, bounds-checked offsets and sizes.
// Treats the file as hostile: every count, length, offset and tensor extent is checked against the mapping before use,
// and a failure names what was expected and what was found. Also parses an in-memory buffer (for fuzzing and tests).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/mmap_file.h"
#include "fkv/status.h"

namespace fkv {

enum class GgufType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};
const char* gguf_type_name(GgufType t);
// Bytes of one value of a fixed-size type; 0 for STRING, ARRAY and ids outside the enum.
size_t gguf_scalar_size(GgufType t);

// One metadata value. Scalars are decoded; arrays keep a pointer to their little-endian payload in the mapping
// (numeric) or a list of views (strings). Views point into the file's mapping and live as long as the GgufFile.
struct GgufValue {
  GgufType type = GgufType::U8;
  // scalars
  uint64_t u = 0;        // unsigned integer types and BOOL (0/1)
  int64_t i = 0;         // signed integer types
  double f = 0.0;        // F32, F64
  std::string_view str;  // STRING
  // arrays
  GgufType elem_type = GgufType::U8;
  uint64_t count = 0;                  // number of elements
  const uint8_t* data = nullptr;       // numeric arrays: `count` packed elements of elem_type
  std::vector<std::string_view> strs;  // string arrays
};

struct GgufTensor {
  std::string name;
  std::vector<int64_t> dims;  // GGUF order: dims[0] is the fastest-varying (row length)
  DType type = DType::F32;
  uint64_t offset = 0;  // absolute offset of the data in the file
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;
  int64_t n_elements() const;
};

class GgufFile {
 public:
  // Maps and parses `path`. Errors: "model.gguf: not a GGUF file (magic 'PK..')", "...: tensor 'x' extends past end of
  // file".
  static Result<std::unique_ptr<GgufFile>> open(const std::string& path, FileBacking backing = FileBacking::Map);
  // Parses a buffer the caller keeps alive (fuzzing, tests). `label` names it in errors.
  static Result<std::unique_ptr<GgufFile>> parse(const uint8_t* data, size_t size, std::string label);

  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }
  size_t file_size() const { return size_; }
  bool copied() const { return map_.copied(); }  // opened as an anonymous copy (FileBacking::HugePages)
  const uint8_t* file_data() const { return data_; }
  // Where the tensor data section starts: bytes before it are the header, metadata and tensor infos.
  size_t data_offset() const { return data_offset_; }
  const std::string& label() const { return label_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;

  // Typed getters: nullopt when absent. Integer getters accept any integer type whose value fits; float accepts
  // F32/F64. A present key of the wrong type is an error (Result), never a silent default.
  Result<std::optional<uint64_t>> get_uint(std::string_view key) const;
  Result<std::optional<int64_t>> get_int(std::string_view key) const;
  Result<std::optional<double>> get_float(std::string_view key) const;
  Result<std::optional<bool>> get_bool(std::string_view key) const;
  Result<std::optional<std::string_view>> get_string(std::string_view key) const;
  // Arrays: empty optional when absent; error when present with another element type.
  Result<std::optional<std::vector<std::string_view>>> get_string_array(std::string_view key) const;
  Result<std::optional<std::vector<float>>> get_f32_array(std::string_view key) const;    // F32 (or F64) elements
  Result<std::optional<std::vector<int64_t>>> get_int_array(std::string_view key) const;  // any integer elements

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find_tensor(std::string_view name) const;

 private:
  GgufFile() = default;
  MappedFile map_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string label_;
  uint32_t version_ = 0;
  size_t alignment_ = 32;
  size_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<GgufTensor> tensors_;
  friend class GgufParser;
};

}  // namespace fkv
