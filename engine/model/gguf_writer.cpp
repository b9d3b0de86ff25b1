#include "model/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <string_view>

namespace fkv {

namespace {

constexpr uint32_t kVersion = 3;
constexpr uint32_t kDefaultAlignment = 32;
constexpr size_t kMaxDims = 4;
constexpr const char* kAlignmentKey = "general.alignment";

template <class T>
void put(std::vector<uint8_t>& b, T v) {
  static_assert(std::endian::native == std::endian::little, "GGUF is little-endian");
  const size_t at = b.size();
  b.resize(at + sizeof(T));
  std::memcpy(b.data() + at, &v, sizeof(T));
}

void put_string(std::vector<uint8_t>& b, std::string_view s) {
  put<uint64_t>(b, s.size());
  b.insert(b.end(), s.begin(), s.end());
}

std::vector<uint8_t> typed(GgufType t) {
  const auto raw = static_cast<uint32_t>(t);
  std::vector<uint8_t> b(sizeof(raw));
  std::memcpy(b.data(), &raw, sizeof(raw));
  return b;
}

std::vector<uint8_t> array_header(GgufType elem, size_t count) {
  std::vector<uint8_t> b = typed(GgufType::ARRAY);
  put<uint32_t>(b, static_cast<uint32_t>(elem));
  put<uint64_t>(b, count);
  return b;
}

// Encodes a decoded scalar back into its `v.type` (u for unsigned and BOOL, i for signed, f for floats).
void put_scalar(std::vector<uint8_t>& b, const GgufValue& v) {
  if (v.type == GgufType::F32) return put(b, static_cast<float>(v.f));
  if (v.type == GgufType::F64) return put(b, v.f);
  const bool is_signed =
      v.type == GgufType::I8 || v.type == GgufType::I16 || v.type == GgufType::I32 || v.type == GgufType::I64;
  const uint64_t bits = is_signed ? static_cast<uint64_t>(v.i) : v.u;
  const size_t at = b.size();
  b.resize(at + gguf_scalar_size(v.type));
  std::memcpy(b.data() + at, &bits, gguf_scalar_size(v.type));  // little-endian: the low bytes are the value
}

size_t padding(size_t n, size_t alignment) { return (alignment - n % alignment) % alignment; }

// Replaces the value of `key` in place (keeping its position), or appends it.
void put_entry(std::vector<std::pair<std::string, std::vector<uint8_t>>>& kv, const std::string& key,
               std::vector<uint8_t> encoded) {
  for (auto& [k, v] : kv) {
    if (k == key) {
      v = std::move(encoded);
      return;
    }
  }
  kv.emplace_back(key, std::move(encoded));
}

Status write_all(int fd, const uint8_t* p, size_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return err("cannot write '", path, "': ", std::strerror(errno));
    p += w;
    n -= static_cast<size_t>(w);
  }
  return {};
}

Status write_zeros(int fd, size_t n, const std::string& path) {
  static const uint8_t zeros[4096] = {};
  for (size_t done = 0; done < n;) {
    const size_t k = std::min(n - done, sizeof(zeros));
    FKV_TRY(write_all(fd, zeros, k, path));
    done += k;
  }
  return {};
}

}  // namespace

void GgufWriter::fail(Status s) {
  if (error_.ok()) error_ = std::move(s);
}

void GgufWriter::set_raw(const std::string& key, std::vector<uint8_t> encoded) {
  if (key.empty()) return fail(err("gguf writer: empty metadata key"));
  if (key == kAlignmentKey) {
    // The alignment decides where the writer puts the data, so it goes through set_alignment and stays consistent.
    if (encoded.size() != 8 || encoded[0] != static_cast<uint8_t>(GgufType::U32)) {
      return fail(err("gguf writer: ", kAlignmentKey, " must be a u32"));
    }
    uint32_t a = 0;
    std::memcpy(&a, encoded.data() + 4, 4);
    return set_alignment(a);
  }
  put_entry(kv_, key, std::move(encoded));
}

void GgufWriter::set_u32(const std::string& key, uint32_t v) {
  std::vector<uint8_t> b = typed(GgufType::U32);
  put(b, v);
  set_raw(key, std::move(b));
}

void GgufWriter::set_i32(const std::string& key, int32_t v) {
  std::vector<uint8_t> b = typed(GgufType::I32);
  put(b, v);
  set_raw(key, std::move(b));
}

void GgufWriter::set_u64(const std::string& key, uint64_t v) {
  std::vector<uint8_t> b = typed(GgufType::U64);
  put(b, v);
  set_raw(key, std::move(b));
}

void GgufWriter::set_f32(const std::string& key, float v) {
  std::vector<uint8_t> b = typed(GgufType::F32);
  put(b, v);
  set_raw(key, std::move(b));
}

void GgufWriter::set_bool(const std::string& key, bool v) {
  std::vector<uint8_t> b = typed(GgufType::BOOL);
  put<uint8_t>(b, v ? 1 : 0);
  set_raw(key, std::move(b));
}

void GgufWriter::set_string(const std::string& key, const std::string& v) {
  std::vector<uint8_t> b = typed(GgufType::STRING);
  put_string(b, v);
  set_raw(key, std::move(b));
}

void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& v) {
  std::vector<uint8_t> b = array_header(GgufType::STRING, v.size());
  for (const std::string& s : v) put_string(b, s);
  set_raw(key, std::move(b));
}

void GgufWriter::set_f32_array(const std::string& key, const std::vector<float>& v) {
  std::vector<uint8_t> b = array_header(GgufType::F32, v.size());
  for (float x : v) put(b, x);
  set_raw(key, std::move(b));
}

void GgufWriter::set_i32_array(const std::string& key, const std::vector<int32_t>& v) {
  std::vector<uint8_t> b = array_header(GgufType::I32, v.size());
  for (int32_t x : v) put(b, x);
  set_raw(key, std::move(b));
}

void GgufWriter::copy_value(const std::string& key, const GgufValue& v) {
  if (key == kAlignmentKey && (v.type == GgufType::U8 || v.type == GgufType::U16 || v.type == GgufType::U64) &&
      v.u <= std::numeric_limits<uint32_t>::max()) {
    return set_alignment(static_cast<uint32_t>(v.u));  // any unsigned width the reader accepts
  }
  if (v.type == GgufType::STRING) {
    std::vector<uint8_t> b = typed(GgufType::STRING);
    put_string(b, v.str);
    return set_raw(key, std::move(b));
  }
  if (v.type != GgufType::ARRAY) {
    if (gguf_scalar_size(v.type) == 0) {
      return fail(err("gguf writer: key '", key, "' has invalid value type ", static_cast<uint32_t>(v.type)));
    }
    std::vector<uint8_t> b = typed(v.type);
    put_scalar(b, v);
    return set_raw(key, std::move(b));
  }
  std::vector<uint8_t> b = array_header(v.elem_type, static_cast<size_t>(v.count));
  if (v.elem_type == GgufType::STRING) {
    if (v.strs.size() != v.count) {
      return fail(err("gguf writer: key '", key, "' declares ", v.count, " strings but holds ", v.strs.size()));
    }
    for (std::string_view s : v.strs) put_string(b, s);
    return set_raw(key, std::move(b));
  }
  const size_t elem = gguf_scalar_size(v.elem_type);
  if (elem == 0) {
    return fail(
        err("gguf writer: key '", key, "' is an array of ", gguf_type_name(v.elem_type), ", which GGUF cannot nest"));
  }
  if (v.count > 0 && v.data == nullptr) {
    return fail(err("gguf writer: key '", key, "' has ", v.count, " elements but no data"));
  }
  if (v.count > 0) b.insert(b.end(), v.data, v.data + static_cast<size_t>(v.count) * elem);
  set_raw(key, std::move(b));
}

void GgufWriter::set_alignment(uint32_t a) {
  if (!std::has_single_bit(a)) return fail(err("gguf writer: alignment ", a, " is not a power of two"));
  alignment_ = a;
  std::erase_if(kv_, [](const auto& e) { return e.first == kAlignmentKey; });
  if (a == kDefaultAlignment) return;  // readers assume 32 when the key is absent
  std::vector<uint8_t> b = typed(GgufType::U32);
  put(b, a);
  kv_.emplace_back(kAlignmentKey, std::move(b));
}

Status GgufWriter::check_tensor(const std::string& name, const std::vector<int64_t>& dims, DType type,
                                size_t n_bytes) const {
  if (name.empty()) return err("gguf writer: empty tensor name");
  for (const TensorEntry& t : tensors_) {
    if (t.name == name) return err("gguf writer: duplicate tensor name '", name, "'");
  }
  if (dims.empty() || dims.size() > kMaxDims) {
    return err("gguf writer: tensor '", name, "' has ", dims.size(), " dimensions, expected 1 to 4");
  }
  if (!dtype_supported(static_cast<uint32_t>(type))) {
    return err("gguf writer: tensor '", name, "' has type ", dtype_name_raw(static_cast<uint32_t>(type)),
               ", which GGUF model files do not hold");
  }
  int64_t n_elements = 1;
  for (int64_t d : dims) {
    if (d < 1 || n_elements > std::numeric_limits<int64_t>::max() / d) {
      return err("gguf writer: tensor '", name, "' has dimension ", d,
                 ", expected at least 1 with a product that fits in 64 bits");
    }
    n_elements *= d;
  }
  const DTypeInfo& info = dtype_info(type);
  if (dims[0] % info.block_size != 0) {
    return err("gguf writer: tensor '", name, "' has rows of ", dims[0], " elements, expected a multiple of ",
               info.block_size, " for ", info.name);
  }
  const size_t expected = row_bytes(type, n_elements);
  if (n_bytes != expected) {
    return err("gguf writer: tensor '", name, "' has ", n_bytes, " bytes of data, expected ", expected, " for ",
               n_elements, " elements of ", info.name);
  }
  return {};
}

void GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> dims, DType type, std::vector<uint8_t> data) {
  Status s = check_tensor(name, dims, type, data.size());
  if (!s.ok()) return fail(std::move(s));
  tensors_.push_back(TensorEntry{name, std::move(dims), type, std::move(data)});
}

std::vector<uint8_t> GgufWriter::meta_bytes() const {
  std::vector<uint8_t> b = {'G', 'G', 'U', 'F'};
  put<uint32_t>(b, kVersion);
  put<uint64_t>(b, tensors_.size());
  put<uint64_t>(b, kv_.size());
  for (const auto& [key, encoded] : kv_) {
    put_string(b, key);
    b.insert(b.end(), encoded.begin(), encoded.end());
  }
  uint64_t offset = 0;  // relative to the data section; each tensor starts aligned
  for (const TensorEntry& t : tensors_) {
    put_string(b, t.name);
    put<uint32_t>(b, static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) put<uint64_t>(b, static_cast<uint64_t>(d));
    put<uint32_t>(b, static_cast<uint32_t>(t.type));
    put<uint64_t>(b, offset);
    offset += t.data.size() + padding(t.data.size(), alignment_);
  }
  b.resize(b.size() + padding(b.size(), alignment_), 0);
  return b;
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
  std::vector<uint8_t> b = meta_bytes();
  for (const TensorEntry& t : tensors_) {
    b.insert(b.end(), t.data.begin(), t.data.end());
    b.resize(b.size() + padding(t.data.size(), alignment_), 0);
  }
  return b;
}

Status GgufWriter::write(const std::string& path) const {
  if (!error_.ok()) return err("cannot write '", path, "': ", error_.message());
  // Written beside the target and renamed over it, so readers never see a half-written file.
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return err("cannot create '", tmp, "' to write '", path, "': ", std::strerror(errno));
  const std::vector<uint8_t> meta = meta_bytes();
  Status s = write_all(fd, meta.data(), meta.size(), tmp);
  for (size_t k = 0; k < tensors_.size() && s.ok(); ++k) {
    const TensorEntry& t = tensors_[k];
    s = write_all(fd, t.data.data(), t.data.size(), tmp);
    if (s.ok()) s = write_zeros(fd, padding(t.data.size(), alignment_), tmp);
  }
  if (s.ok() && ::fsync(fd) != 0) s = err("cannot flush '", tmp, "': ", std::strerror(errno));
  if (::close(fd) != 0 && s.ok()) s = err("cannot close '", tmp, "': ", std::strerror(errno));
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = err("cannot rename '", tmp, "' to '", path, "': ", std::strerror(errno));
  }
  if (!s.ok()) ::unlink(tmp.c_str());
  return s;
}

}  // namespace fkv
