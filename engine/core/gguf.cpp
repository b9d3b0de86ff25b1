#include "core/gguf.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <unordered_set>

namespace fkv {

// GGUF is little-endian and values are decoded with memcpy; a big-endian host would need byte swaps everywhere.
static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

namespace {

constexpr uint32_t kMinVersion = 2;
constexpr uint32_t kMaxVersion = 3;
constexpr uint32_t kMaxDims = 4;
constexpr size_t kMaxKeyBytes = 65535;  // the GGUF spec's limit for keys; also applied to tensor names
// Smallest possible encodings, used to bound counts by the bytes left before reserving memory:
// a metadata entry is a 1-byte key (8 + 1), a value type (4) and a 1-byte value;
// a tensor info is a 1-byte name (8 + 1), n_dims (4), one dim (8), a type (4) and an offset (8).
constexpr size_t kMinEntryBytes = 8 + 1 + 4 + 1;
constexpr size_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;

bool is_unsigned(GgufType t) {
  return t == GgufType::U8 || t == GgufType::U16 || t == GgufType::U32 || t == GgufType::U64;
}
bool is_signed(GgufType t) {
  return t == GgufType::I8 || t == GgufType::I16 || t == GgufType::I32 || t == GgufType::I64;
}

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Decodes one fixed-size element into the matching field of `v` (u for unsigned and BOOL, i for signed, f for floats).
void decode_scalar(GgufType t, const uint8_t* p, GgufValue& v) {
  if (t == GgufType::F32) {
    v.f = load<float>(p);
    return;
  }
  if (t == GgufType::F64) {
    v.f = load<double>(p);
    return;
  }
  const size_t n = gguf_scalar_size(t);
  uint64_t bits = 0;
  std::memcpy(&bits, p, n);  // little-endian: the value's bytes land in the low end
  if (!is_signed(t)) {
    v.u = bits;
    return;
  }
  const auto shift = static_cast<int>(64 - 8 * n);  // sign-extend from the value's top bit
  v.i = static_cast<int64_t>(bits << shift) >> shift;
}

// Keys and tensor names are identifiers: non-empty, well-formed UTF-8, no control characters.
bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxKeyBytes) return false;
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c < 0x20 || c == 0x7f) return false;
    const size_t n_extra = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xe ? 2 : (c >> 3) == 0x1e ? 3 : 4;
    if (n_extra == 4 || n_extra > s.size() - i - 1) return false;
    for (size_t k = 1; k <= n_extra; ++k) {
      if ((static_cast<uint8_t>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    i += n_extra + 1;
  }
  return true;
}

// The magic as printable text for "not a GGUF file (magic 'PK..')".
std::string printable(const uint8_t* p, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += (p[i] >= 0x20 && p[i] < 0x7f) ? static_cast<char>(p[i]) : '.';
  return s;
}

}  // namespace

size_t gguf_scalar_size(GgufType t) {
  // Indexed by type id: u8 i8 u16 i16 u32 i32 f32 bool string array u64 i64 f64.
  static constexpr size_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  const auto raw = static_cast<uint32_t>(t);
  return raw < sizeof(sizes) / sizeof(sizes[0]) ? sizes[raw] : 0;
}

const char* gguf_type_name(GgufType t) {
  static const char* const names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                      "bool", "string", "array", "u64", "i64", "f64"};
  const auto raw = static_cast<uint32_t>(t);
  return raw < sizeof(names) / sizeof(names[0]) ? names[raw] : "invalid type";
}

int64_t GgufTensor::n_elements() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;  // the parser checked that the product fits
  return n;
}

// Reads one GGUF buffer front to back. Every read goes through need(), which names the byte offset, what was being
// read (`what` + the current section `ctx_`) and how many bytes were needed and left.
class GgufParser {
 public:
  explicit GgufParser(GgufFile& f) : f_(f) {}
  Status run();

 private:
  GgufFile& f_;
  size_t pos_ = 0;
  std::string ctx_;  // "metadata entry 7 ('general.name')": where the reader is, for messages

  size_t left() const { return f_.size_ - pos_; }
  Status fail(const std::string& msg) const { return err(f_.label_, ": ", msg); }
  Status need(size_t n, const char* what) const;
  Status read_u32(uint32_t& out, const char* what);
  Status read_u64(uint64_t& out, const char* what);
  Status read_string(std::string_view& out, const char* what);
  Status read_header(uint64_t& n_tensors, uint64_t& n_kv);
  Status check_count(uint64_t n, size_t min_bytes, const char* what) const;
  Status read_entry(uint64_t index, std::unordered_set<std::string_view>& seen);
  Status read_value(GgufType type, GgufValue& v);
  Status read_array(GgufValue& v);
  Status read_alignment();
  Status read_tensor_info(uint64_t index, std::unordered_set<std::string_view>& seen);
  Status read_tensor_shape(GgufTensor& t, std::string_view name);
  Status place_tensors();
};

Status GgufParser::need(size_t n, const char* what) const {
  if (n <= left()) return {};
  return err(f_.label_, ": truncated at byte ", pos_, " while reading ", what, ctx_.empty() ? "" : " of ", ctx_,
             " (need ", n, " bytes, ", left(), " left)");
}

Status GgufParser::read_u32(uint32_t& out, const char* what) {
  FKV_TRY(need(4, what));
  out = load<uint32_t>(f_.data_ + pos_);
  pos_ += 4;
  return {};
}

Status GgufParser::read_u64(uint64_t& out, const char* what) {
  FKV_TRY(need(8, what));
  out = load<uint64_t>(f_.data_ + pos_);
  pos_ += 8;
  return {};
}

Status GgufParser::read_string(std::string_view& out, const char* what) {
  uint64_t n = 0;
  FKV_TRY(read_u64(n, what));
  if (n > left()) {
    return err(f_.label_, ": string length ", n, " at byte ", pos_ - 8, " (", what, ctx_.empty() ? "" : " of ", ctx_,
               ") exceeds the ", left(), " bytes left in the file");
  }
  out = std::string_view(reinterpret_cast<const char*>(f_.data_ + pos_), static_cast<size_t>(n));
  pos_ += static_cast<size_t>(n);
  return {};
}

Status GgufParser::read_header(uint64_t& n_tensors, uint64_t& n_kv) {
  ctx_ = "the header";
  FKV_TRY(need(4, "the magic"));
  if (std::memcmp(f_.data_, "GGUF", 4) != 0) {
    return fail("not a GGUF file (magic '" + printable(f_.data_, 4) + "', expected 'GGUF')");
  }
  pos_ = 4;
  FKV_TRY(read_u32(f_.version_, "the version"));
  const uint32_t v = f_.version_;
  if (v < kMinVersion || v > kMaxVersion) {
    const uint32_t swapped = __builtin_bswap32(v);
    if (swapped >= kMinVersion && swapped <= kMaxVersion) return fail("big-endian GGUF files are not supported");
    const char* why = v < kMinVersion ? "is too old" : "is newer than this engine supports";
    return err(f_.label_, ": GGUF version ", v, " ", why, " (expected ", kMinVersion, " or ", kMaxVersion, ")");
  }
  FKV_TRY(read_u64(n_tensors, "the tensor count"));
  FKV_TRY(read_u64(n_kv, "the metadata count"));
  FKV_TRY(check_count(n_kv, kMinEntryBytes, "metadata entries"));
  return check_count(n_tensors, kMinTensorInfoBytes, "tensors");
}

// A count read from the file must fit in the bytes left, so a hostile count can neither allocate nor loop for long.
Status GgufParser::check_count(uint64_t n, size_t min_bytes, const char* what) const {
  if (n <= left() / min_bytes) return {};
  return err(f_.label_, ": the header declares ", n, " ", what, ", but the ", left(), " bytes left can hold at most ",
             left() / min_bytes, " (each needs at least ", min_bytes, " bytes)");
}

Status GgufParser::read_entry(uint64_t index, std::unordered_set<std::string_view>& seen) {
  ctx_ = "metadata entry " + std::to_string(index);
  std::string_view key;
  FKV_TRY(read_string(key, "the key"));
  if (!valid_name(key)) {
    return err(f_.label_, ": ", ctx_, " has an invalid key '",
               printable(reinterpret_cast<const uint8_t*>(key.data()), std::min<size_t>(key.size(), 64)),
               "' (expected 1 to ", kMaxKeyBytes, " bytes of UTF-8 without control characters)");
  }
  if (!seen.insert(key).second) return err(f_.label_, ": duplicate metadata key '", key, "' (", ctx_, ")");
  ctx_ += " ('" + std::string(key) + "')";
  uint32_t raw_type = 0;
  FKV_TRY(read_u32(raw_type, "the value type"));
  if (raw_type > static_cast<uint32_t>(GgufType::F64)) {
    return err(f_.label_, ": ", ctx_, " has value type ", raw_type, ", expected 0 to 12");
  }
  GgufValue v;
  FKV_TRY(read_value(static_cast<GgufType>(raw_type), v));
  f_.kv_.emplace_back(std::string(key), std::move(v));
  return {};
}

Status GgufParser::read_value(GgufType type, GgufValue& v) {
  v.type = type;
  if (type == GgufType::STRING) return read_string(v.str, "the string value");
  if (type == GgufType::ARRAY) return read_array(v);
  const size_t n = gguf_scalar_size(type);
  FKV_TRY(need(n, "the value"));
  decode_scalar(type, f_.data_ + pos_, v);
  if (type == GgufType::BOOL && v.u > 1) {
    return err(f_.label_, ": ", ctx_, " is a bool of value ", v.u, ", expected 0 or 1");
  }
  pos_ += n;
  return {};
}

Status GgufParser::read_array(GgufValue& v) {
  uint32_t elem = 0;
  FKV_TRY(read_u32(elem, "the array element type"));
  if (elem == static_cast<uint32_t>(GgufType::ARRAY)) {
    return err(f_.label_, ": ", ctx_, " is an array of arrays; nested arrays are not supported");
  }
  if (elem > static_cast<uint32_t>(GgufType::F64)) {
    return err(f_.label_, ": ", ctx_, " has array element type ", elem, ", expected 0 to 12 (not 9)");
  }
  v.elem_type = static_cast<GgufType>(elem);
  FKV_TRY(read_u64(v.count, "the array length"));
  const size_t elem_bytes =
      v.elem_type == GgufType::STRING ? 8 : gguf_scalar_size(v.elem_type);  // a string is at least its length
  if (v.count > left() / elem_bytes) {
    return err(f_.label_, ": ", ctx_, " declares ", v.count, " elements of type ", gguf_type_name(v.elem_type),
               ", but only ", left(), " bytes are left (", elem_bytes, " or more per element)");
  }
  if (v.elem_type != GgufType::STRING) {
    v.data = f_.data_ + pos_;
    pos_ += static_cast<size_t>(v.count) * elem_bytes;
    return {};
  }
  v.strs.reserve(static_cast<size_t>(v.count));
  for (uint64_t k = 0; k < v.count; ++k) {
    std::string_view s;
    FKV_TRY(read_string(s, "a string array element"));
    v.strs.push_back(s);
  }
  return {};
}

Status GgufParser::read_alignment() {
  FKV_ASSIGN_OR_RETURN(std::optional<uint64_t> a, f_.get_uint("general.alignment"));
  if (!a) return {};
  if (*a == 0 || *a > std::numeric_limits<uint32_t>::max() || !std::has_single_bit(*a)) {
    return err(f_.label_, ": general.alignment is ", *a, ", expected a power of two that fits in 32 bits");
  }
  f_.alignment_ = static_cast<size_t>(*a);
  return {};
}

Status GgufParser::read_tensor_info(uint64_t index, std::unordered_set<std::string_view>& seen) {
  ctx_ = "tensor info " + std::to_string(index);
  std::string_view name;
  FKV_TRY(read_string(name, "the name"));
  if (!valid_name(name)) return err(f_.label_, ": ", ctx_, " has an empty or malformed name");
  if (!seen.insert(name).second) return err(f_.label_, ": duplicate tensor name '", name, "' (", ctx_, ")");
  ctx_ += " ('" + std::string(name) + "')";
  GgufTensor t;
  t.name = std::string(name);
  FKV_TRY(read_tensor_shape(t, name));
  uint32_t raw_type = 0;
  FKV_TRY(read_u32(raw_type, "the type"));
  if (!dtype_supported(raw_type)) {
    const std::string type_name = dtype_name_raw(raw_type);  // "IQ2_XXS", or "type 99" for ids GGUF does not define
    return err(f_.label_, ": tensor '", name, "' has ", type_name.starts_with("type ") ? "" : "type ", type_name,
               ", which this engine does not support (supported: F32, F16, BF16, Q4_0, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K)");
  }
  t.type = static_cast<DType>(raw_type);
  const DTypeInfo& info = dtype_info(t.type);
  if (t.dims[0] % info.block_size != 0) {
    return err(f_.label_, ": tensor '", name, "' has rows of ", t.dims[0], " elements, expected a multiple of ",
               info.block_size, " (the block size of ", info.name, ")");
  }
  const auto n_blocks = static_cast<uint64_t>(t.n_elements() / info.block_size);
  if (n_blocks > std::numeric_limits<uint64_t>::max() / info.type_size) {
    return err(f_.label_, ": tensor '", name, "' is too large (", n_blocks, " blocks of ", info.type_size, " bytes)");
  }
  t.n_bytes = n_blocks * info.type_size;
  FKV_TRY(read_u64(t.offset, "the data offset"));  // relative until place_tensors()
  f_.tensors_.push_back(std::move(t));
  return {};
}

Status GgufParser::read_tensor_shape(GgufTensor& t, std::string_view name) {
  uint32_t n_dims = 0;
  FKV_TRY(read_u32(n_dims, "the dimension count"));
  if (n_dims < 1 || n_dims > kMaxDims) {
    return err(f_.label_, ": tensor '", name, "' has ", n_dims, " dimensions, expected 1 to ", kMaxDims);
  }
  int64_t n_elements = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    uint64_t dim = 0;
    FKV_TRY(read_u64(dim, "a dimension"));
    const auto max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    if (dim == 0 || dim > max) {
      return err(f_.label_, ": tensor '", name, "' has dimension ", d, " = ", dim, ", expected 1 to ", max);
    }
    if (static_cast<uint64_t>(n_elements) > max / dim) {
      return err(f_.label_, ": tensor '", name, "' has more elements than fit in 64 bits (dimension ", d, " = ", dim,
                 ")");
    }
    n_elements *= static_cast<int64_t>(dim);
    t.dims.push_back(static_cast<int64_t>(dim));
  }
  return {};
}

// The data section starts at the first multiple of the alignment after the infos; each tensor must lie in the file.
Status GgufParser::place_tensors() {
  const size_t data_start = (pos_ + f_.alignment_ - 1) / f_.alignment_ * f_.alignment_;  // pos_ <= size, no overflow
  f_.data_offset_ = std::min(data_start, f_.size_);  // a file without tensors may end before the aligned start
  for (GgufTensor& t : f_.tensors_) {
    if (t.offset % f_.alignment_ != 0) {
      return err(f_.label_, ": tensor '", t.name, "' has data offset ", t.offset,
                 ", expected a multiple of the alignment ", f_.alignment_);
    }
    const size_t room = data_start <= f_.size_ ? f_.size_ - data_start : 0;
    if (t.offset > room || t.n_bytes > room - t.offset) {
      return err(f_.label_, ": tensor '", t.name, "' extends past end of file (", t.n_bytes, " bytes at data offset ",
                 t.offset, ", data section starts at byte ", data_start, ", file has ", f_.size_, " bytes)");
    }
    t.offset += data_start;
    t.data = f_.data_ + t.offset;
  }
  return {};
}

Status GgufParser::run() {
  uint64_t n_tensors = 0;
  uint64_t n_kv = 0;
  FKV_TRY(read_header(n_tensors, n_kv));
  // No reserve() from the counts: an entry takes far more memory than its smallest encoding, so the vectors grow
  // only with entries actually read.
  std::unordered_set<std::string_view> seen_keys;
  for (uint64_t k = 0; k < n_kv; ++k) FKV_TRY(read_entry(k, seen_keys));
  FKV_TRY(read_alignment());
  ctx_.clear();
  FKV_TRY(check_count(n_tensors, kMinTensorInfoBytes, "tensors"));
  std::unordered_set<std::string_view> seen_names;
  for (uint64_t k = 0; k < n_tensors; ++k) FKV_TRY(read_tensor_info(k, seen_names));
  return place_tensors();
}

const GgufValue* GgufFile::find(std::string_view key) const {
  for (const auto& [k, v] : kv_) {
    if (k == key) return &v;
  }
  return nullptr;
}

const GgufTensor* GgufFile::find_tensor(std::string_view name) const {
  for (const GgufTensor& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

namespace {

// "x.gguf: key 'general.name' has type u32, expected a string".
Status wrong_type(const std::string& label, std::string_view key, const GgufValue& v, const char* expected) {
  if (v.type == GgufType::ARRAY) {
    return err(label, ": key '", key, "' is an array of ", gguf_type_name(v.elem_type), ", expected ", expected);
  }
  return err(label, ": key '", key, "' has type ", gguf_type_name(v.type), ", expected ", expected);
}

// Element k of a numeric array as a signed value; false when it does not fit (u64 above INT64_MAX).
bool array_int_at(const GgufValue& v, uint64_t k, int64_t& out) {
  GgufValue e;
  decode_scalar(v.elem_type, v.data + k * gguf_scalar_size(v.elem_type), e);
  if (is_signed(v.elem_type)) {
    out = e.i;
    return true;
  }
  out = static_cast<int64_t>(e.u);
  return e.u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
}

}  // namespace

Result<std::optional<uint64_t>> GgufFile::get_uint(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::optional<uint64_t>();
  if (is_unsigned(v->type)) return std::optional<uint64_t>(v->u);
  if (!is_signed(v->type)) return wrong_type(label_, key, *v, "an unsigned integer");
  if (v->i < 0) return err(label_, ": key '", key, "' is ", v->i, ", expected a non-negative integer");
  return std::optional<uint64_t>(static_cast<uint64_t>(v->i));
}

Result<std::optional<int64_t>> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::optional<int64_t>();
  if (is_signed(v->type)) return std::optional<int64_t>(v->i);
  if (!is_unsigned(v->type)) return wrong_type(label_, key, *v, "an integer");
  if (v->u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return err(label_, ": key '", key, "' is ", v->u, ", expected at most ", std::numeric_limits<int64_t>::max());
  }
  return std::optional<int64_t>(static_cast<int64_t>(v->u));
}

Result<std::optional<double>> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::optional<double>();
  if (v->type != GgufType::F32 && v->type != GgufType::F64) return wrong_type(label_, key, *v, "f32 or f64");
  return std::optional<double>(v->f);
}

Result<std::optional<bool>> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::optional<bool>();
  if (v->type != GgufType::BOOL) return wrong_type(label_, key, *v, "bool");
  return std::optional<bool>(v->u != 0);
}

Result<std::optional<std::string_view>> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::optional<std::string_view>();
  if (v->type != GgufType::STRING) return wrong_type(label_, key, *v, "a string");
  return std::optional<std::string_view>(v->str);
}

Result<std::optional<std::vector<std::string_view>>> GgufFile::get_string_array(std::string_view key) const {
  using Out = std::optional<std::vector<std::string_view>>;
  const GgufValue* v = find(key);
  if (v == nullptr) return Out();
  if (v->type != GgufType::ARRAY || v->elem_type != GgufType::STRING) {
    return wrong_type(label_, key, *v, "an array of string");
  }
  return Out(v->strs);
}

Result<std::optional<std::vector<float>>> GgufFile::get_f32_array(std::string_view key) const {
  using Out = std::optional<std::vector<float>>;
  const GgufValue* v = find(key);
  if (v == nullptr) return Out();
  const bool is_float = v->elem_type == GgufType::F32 || v->elem_type == GgufType::F64;
  if (v->type != GgufType::ARRAY || !is_float) return wrong_type(label_, key, *v, "an array of f32 or f64");
  std::vector<float> out(static_cast<size_t>(v->count));  // (count)
  for (size_t k = 0; k < out.size(); ++k) {
    out[k] = v->elem_type == GgufType::F32 ? load<float>(v->data + 4 * k)
                                           : static_cast<float>(load<double>(v->data + 8 * k));
  }
  return Out(std::move(out));
}

Result<std::optional<std::vector<int64_t>>> GgufFile::get_int_array(std::string_view key) const {
  using Out = std::optional<std::vector<int64_t>>;
  const GgufValue* v = find(key);
  if (v == nullptr) return Out();
  const bool is_int = is_signed(v->elem_type) || is_unsigned(v->elem_type);
  if (v->type != GgufType::ARRAY || !is_int) return wrong_type(label_, key, *v, "an array of integers");
  std::vector<int64_t> out(static_cast<size_t>(v->count));  // (count)
  for (size_t k = 0; k < out.size(); ++k) {
    if (!array_int_at(*v, k, out[k])) {
      return err(label_, ": key '", key, "' element ", k, " is ", static_cast<uint64_t>(out[k]), ", expected at most ",
                 std::numeric_limits<int64_t>::max());
    }
  }
  return Out(std::move(out));
}

Result<std::unique_ptr<GgufFile>> GgufFile::parse(const uint8_t* data, size_t size, std::string label) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->data_ = data;
  f->size_ = size;
  f->label_ = std::move(label);
  FKV_TRY(GgufParser(*f).run());
  return f;
}

Result<std::unique_ptr<GgufFile>> GgufFile::open(const std::string& path, FileBacking backing) {
  FKV_ASSIGN_OR_RETURN(MappedFile map, MappedFile::open(path, backing));
  FKV_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> f, parse(map.data(), map.size(), path));
  f->map_ = std::move(map);  // the views in kv_ and tensors_ point into this mapping, which moving keeps in place
  return f;
}

}  // namespace fkv
