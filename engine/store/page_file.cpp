// The page-file format (header encoding, layout arithmetic) and the reader. The writer is page_file_writer.cpp.
#include "store/page_file.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <limits>

namespace fkv {

namespace {

constexpr char kMagic[8] = {'F', 'K', 'V', 'P', 'A', 'G', 'E', 'S'};

// Limits that keep every size computation far from overflow and reject nonsense early; real models are well inside.
constexpr int kMaxLayers = 1024;
constexpr int kMaxKvHeads = 1024;
constexpr int kMaxHeadDim = 4096;
constexpr int kMaxPageSize = 4096;
constexpr int64_t kMaxTokens = std::numeric_limits<int32_t>::max();  // KvCache counts tokens in int

// Byte offsets of the version-1 header fields (docs/kv-format.md has the table).
enum HeaderField : size_t {
  kOffMagic = 0,
  kOffVersion = 8,
  kOffHeaderSize = 12,
  kOffHeaderChecksum = 16,
  kOffTokenizerHash = 24,
  kOffBaseFingerprint = 32,
  kOffNLayers = 40,
  kOffNKvHeads = 44,
  kOffHeadDim = 48,
  kOffPageSize = 52,
  kOffDtype = 56,
  kOffLayout = 60,
  kOffNTokens = 64,
  kOffFirstPage = 72,
  kOffNPages = 80,
  kOffRecordBytes = 88,
  kOffRecordStride = 96,
  kOffTableOffset = 104,
  kOffTableChecksum = 112,
  kOffRecordsOffset = 120,
  kOffSummariesOffset = 128,
  kOffSectionBytes = 136,
  kOffSummariesChecksum = 144,
  kOffFileSize = 152,
  kOffModelFingerprint = 160,  // u32 length, then 64 bytes zero-padded
  kOffPromptFormat = 228,      // u32 length, then 64 bytes zero-padded
  kOffReserved = 296,          // zeros up to the header size
};

void put_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t get_u32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}
uint64_t get_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

std::string hex64(uint64_t v) {
  char buf[19];
  std::snprintf(buf, sizeof(buf), "0x%016" PRIx64, v);
  return buf;
}

// The header with its checksum field zeroed is what the header checksum covers.
uint64_t header_checksum(const uint8_t* header) {
  uint8_t copy[kPageFileHeaderBytes];
  std::memcpy(copy, header, sizeof(copy));
  put_u64(copy + kOffHeaderChecksum, 0);
  return checksum64(copy, sizeof(copy));
}

bool is_kv_dtype(uint32_t raw) {
  return raw == static_cast<uint32_t>(DType::F32) || raw == static_cast<uint32_t>(DType::F16) ||
         raw == static_cast<uint32_t>(DType::BF16);
}

uint64_t round_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

bool mul_ok(uint64_t a, uint64_t b, uint64_t& out) { return !__builtin_mul_overflow(a, b, &out); }
bool add_ok(uint64_t a, uint64_t b, uint64_t& out) { return !__builtin_add_overflow(a, b, &out); }

Status check_range(const char* what, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) return err(what, " must be ", lo, "..", hi, ", found ", v);
  return {};
}

// Printable form of bytes that were expected to be a magic string.
std::string printable(const uint8_t* p, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += (p[i] >= 0x20 && p[i] < 0x7f) ? static_cast<char>(p[i]) : '.';
  return s;
}

}  // namespace

int64_t PageFileInfo::n_pages() const {
  if (page_size <= 0) return 0;
  return (n_tokens + page_size - 1) / page_size - first_page;
}

Status PageFileInfo::validate() const {
  if (model_fingerprint.size() > kPageFileMaxString)
    return err("model fingerprint must be at most 64 bytes, found ", model_fingerprint.size());
  if (prompt_format.size() > kPageFileMaxString)
    return err("prompt-format tag must be at most 64 bytes, found ", prompt_format.size());
  FKV_TRY(check_range("layer count", n_layers, 1, kMaxLayers));
  FKV_TRY(check_range("KV head count", n_kv_heads, 1, kMaxKvHeads));
  FKV_TRY(check_range("head dim", head_dim, 1, kMaxHeadDim));
  FKV_TRY(check_range("page size", page_size, 1, kMaxPageSize));
  if (!is_kv_dtype(static_cast<uint32_t>(dtype)))
    return err("KV type must be F16, BF16 or F32, found ", dtype_name_raw(static_cast<uint32_t>(dtype)));
  if (layout != kPageFileLayoutHnd) return err("KV layout must be 1 (HND), found ", layout);
  FKV_TRY(check_range("token count", n_tokens, 0, kMaxTokens));
  const int64_t n_total = (n_tokens + page_size - 1) / page_size;
  FKV_TRY(check_range("first page", first_page, 0, n_total));
  if ((first_page > 0) != (base_fingerprint != 0)) {
    return first_page > 0 ? err("first page is ", first_page, " but no base snapshot is named (base fingerprint 0)")
                          : err("a base snapshot is named (", hex64(base_fingerprint), ") but first page is 0");
  }
  return {};
}

Result<PageFileLayout> PageFileLayout::of(const PageFileInfo& info) {
  PageFileLayout o;
  const uint64_t elem = info.dtype == DType::F32 ? 4 : 2;
  const uint64_t n_records = static_cast<uint64_t>(info.n_layers) * static_cast<uint64_t>(info.n_pages());
  // Within the validated ranges these four cannot overflow (2^37 and 2^44 at most).
  o.record_bytes = 2 * static_cast<uint64_t>(info.n_kv_heads) * info.page_size * info.head_dim * elem;
  o.record_stride = round_up(o.record_bytes, kPageFileAlign);
  o.table_offset = kPageFileHeaderBytes;
  o.table_bytes = n_records * 8;
  o.records_offset = round_up(o.table_offset + o.table_bytes, kPageFileAlign);
  uint64_t records_total = 0;
  uint64_t per_record_summary = 2 * static_cast<uint64_t>(info.n_kv_heads) * info.head_dim * 4;
  if (!mul_ok(n_records, o.record_stride, records_total) ||
      !add_ok(o.records_offset, records_total, o.summaries_offset) ||
      !mul_ok(n_records, per_record_summary, o.summary_bytes) ||
      !add_ok(o.summary_bytes, 4 * static_cast<uint64_t>(info.n_layers), o.section_bytes) ||
      !add_ok(o.summaries_offset, o.section_bytes, o.file_size)) {
    return err("a page file of ", n_records, " records of ", o.record_bytes, " bytes does not fit in 64 bits");
  }
  return o;
}

namespace page_file_detail {

std::array<uint8_t, kPageFileHeaderBytes> encode_header(const PageFileInfo& info, const PageFileLayout& layout,
                                                        uint64_t table_checksum, uint64_t summaries_checksum) {
  std::array<uint8_t, kPageFileHeaderBytes> h{};
  uint8_t* p = h.data();
  std::memcpy(p + kOffMagic, kMagic, sizeof(kMagic));
  put_u32(p + kOffVersion, kPageFileVersion);
  put_u32(p + kOffHeaderSize, static_cast<uint32_t>(kPageFileHeaderBytes));
  put_u64(p + kOffTokenizerHash, info.tokenizer_hash);
  put_u64(p + kOffBaseFingerprint, info.base_fingerprint);
  put_u32(p + kOffNLayers, static_cast<uint32_t>(info.n_layers));
  put_u32(p + kOffNKvHeads, static_cast<uint32_t>(info.n_kv_heads));
  put_u32(p + kOffHeadDim, static_cast<uint32_t>(info.head_dim));
  put_u32(p + kOffPageSize, static_cast<uint32_t>(info.page_size));
  put_u32(p + kOffDtype, static_cast<uint32_t>(info.dtype));
  put_u32(p + kOffLayout, info.layout);
  put_u64(p + kOffNTokens, static_cast<uint64_t>(info.n_tokens));
  put_u64(p + kOffFirstPage, static_cast<uint64_t>(info.first_page));
  put_u64(p + kOffNPages, static_cast<uint64_t>(info.n_pages()));
  put_u64(p + kOffRecordBytes, layout.record_bytes);
  put_u64(p + kOffRecordStride, layout.record_stride);
  put_u64(p + kOffTableOffset, layout.table_offset);
  put_u64(p + kOffTableChecksum, table_checksum);
  put_u64(p + kOffRecordsOffset, layout.records_offset);
  put_u64(p + kOffSummariesOffset, layout.summaries_offset);
  put_u64(p + kOffSectionBytes, layout.section_bytes);
  put_u64(p + kOffSummariesChecksum, summaries_checksum);
  put_u64(p + kOffFileSize, layout.file_size);
  put_u32(p + kOffModelFingerprint, static_cast<uint32_t>(info.model_fingerprint.size()));
  std::copy(info.model_fingerprint.begin(), info.model_fingerprint.end(), p + kOffModelFingerprint + 4);
  put_u32(p + kOffPromptFormat, static_cast<uint32_t>(info.prompt_format.size()));
  std::copy(info.prompt_format.begin(), info.prompt_format.end(), p + kOffPromptFormat + 4);  // zero-padded, no NUL
  put_u64(p + kOffHeaderChecksum, header_checksum(p));
  return h;
}

}  // namespace page_file_detail

// ---- reader ----

namespace {

// A length-prefixed, zero-padded header string.
Status read_string(const uint8_t* header, size_t off, const char* what, std::string& out) {
  const uint32_t n = get_u32(header + off);
  if (n > kPageFileMaxString) return err(what, " is ", n, " bytes long, expected at most ", kPageFileMaxString);
  const uint8_t* s = header + off + 4;
  for (size_t i = n; i < kPageFileMaxString; ++i)
    if (s[i] != 0) return err(what, " has non-zero padding at byte ", off + 4 + i);
  out.assign(reinterpret_cast<const char*>(s), n);
  return {};
}

// A u32 count field, range-checked before it becomes an int.
Status read_count(const uint8_t* header, size_t off, const char* what, int max, int& out) {
  const uint32_t v = get_u32(header + off);
  FKV_TRY(check_range(what, v, 1, max));
  out = static_cast<int>(v);
  return {};
}

Status decode_info(const uint8_t* h, PageFileInfo& info) {
  info.tokenizer_hash = get_u64(h + kOffTokenizerHash);
  info.base_fingerprint = get_u64(h + kOffBaseFingerprint);
  FKV_TRY(read_count(h, kOffNLayers, "layer count", kMaxLayers, info.n_layers));
  FKV_TRY(read_count(h, kOffNKvHeads, "KV head count", kMaxKvHeads, info.n_kv_heads));
  FKV_TRY(read_count(h, kOffHeadDim, "head dim", kMaxHeadDim, info.head_dim));
  FKV_TRY(read_count(h, kOffPageSize, "page size", kMaxPageSize, info.page_size));
  const uint32_t dtype = get_u32(h + kOffDtype);
  if (!is_kv_dtype(dtype)) return err("KV type must be F16, BF16 or F32, found ", dtype_name_raw(dtype));
  info.dtype = static_cast<DType>(dtype);
  info.layout = get_u32(h + kOffLayout);
  const uint64_t n_tokens = get_u64(h + kOffNTokens);
  const uint64_t first_page = get_u64(h + kOffFirstPage);
  if (n_tokens > static_cast<uint64_t>(kMaxTokens))
    return err("token count must be at most ", kMaxTokens, ", found ", n_tokens);
  if (first_page > n_tokens)
    return err("first page must be at most the token count ", n_tokens, ", found ", first_page);
  info.n_tokens = static_cast<int64_t>(n_tokens);
  info.first_page = static_cast<int64_t>(first_page);
  FKV_TRY(read_string(h, kOffModelFingerprint, "model fingerprint", info.model_fingerprint));
  FKV_TRY(read_string(h, kOffPromptFormat, "prompt-format tag", info.prompt_format));
  for (size_t i = kOffReserved; i < kPageFileHeaderBytes; ++i)
    if (h[i] != 0) return err("reserved header byte ", i, " is ", static_cast<int>(h[i]), ", expected 0");
  return info.validate();
}

// Each offset and size the header states must be the one the geometry implies.
Status check_layout_fields(const uint8_t* h, const PageFileInfo& info, const PageFileLayout& o) {
  const struct {
    const char* name;
    size_t off;
    uint64_t expected;
  } fields[] = {
      {"page count", kOffNPages, static_cast<uint64_t>(info.n_pages())},
      {"record size", kOffRecordBytes, o.record_bytes},
      {"record stride", kOffRecordStride, o.record_stride},
      {"checksum table offset", kOffTableOffset, o.table_offset},
      {"records offset", kOffRecordsOffset, o.records_offset},
      {"summaries offset", kOffSummariesOffset, o.summaries_offset},
      {"summaries size", kOffSectionBytes, o.section_bytes},
      {"file size", kOffFileSize, o.file_size},
  };
  for (const auto& f : fields) {
    const uint64_t found = get_u64(h + f.off);
    if (found != f.expected)
      return err("header states ", f.name, " ", found, ", expected ", f.expected, " for this geometry");
  }
  return {};
}

// Index of the first element of `n` (of type U, little-endian, any alignment) whose exponent bits are all ones (an
// infinity or a NaN in F16, BF16 and F32 alike), or -1. Blocks are tested branch-free so the inner loop vectorizes;
// only a block that holds one is searched again for its position.
template <typename U>
int64_t first_all_ones_exponent(const uint8_t* p, size_t n, U exponent) {
  constexpr size_t kBlock = 512;
  for (size_t b = 0; b < n; b += kBlock) {
    const size_t m = std::min(kBlock, n - b);
    const uint8_t* block = p + b * sizeof(U);
    U any = 0;
    for (size_t i = 0; i < m; ++i) {
      U x;
      std::memcpy(&x, block + i * sizeof(U), sizeof(U));
      any |= static_cast<U>((x & exponent) == exponent);
    }
    if (any == 0) continue;
    for (size_t i = 0; i < m; ++i) {
      U x;
      std::memcpy(&x, block + i * sizeof(U), sizeof(U));
      if ((x & exponent) == exponent) return static_cast<int64_t>(b + i);
    }
  }
  return -1;
}

// A record's values pass their checksum whether or not they are numbers; a NaN or infinity in a key or value would
// poison every attention output that reads the page, so the reader treats one as damage.
int64_t first_non_finite(const uint8_t* record, uint64_t record_bytes, DType dtype) {
  switch (dtype) {
    case DType::F32:
      return first_all_ones_exponent<uint32_t>(record, record_bytes / 4, 0x7f800000u);
    case DType::BF16:
      return first_all_ones_exponent<uint16_t>(record, record_bytes / 2, 0x7f80u);
    default:
      return first_all_ones_exponent<uint16_t>(record, record_bytes / 2, 0x7c00u);
  }
}

}  // namespace

Result<PageFileReader> PageFileReader::open(const std::string& path) {
  FKV_ASSIGN_OR_RETURN(MappedFile map, MappedFile::open(path));
  FKV_ASSIGN_OR_RETURN(PageFileReader r, parse(map.data(), map.size(), path));
  r.map_ = std::move(map);  // the mapping keeps its address, so r's pointers into it stay valid
  return r;
}

Result<PageFileReader> PageFileReader::parse(const uint8_t* data, size_t size, std::string label) {
  PageFileReader r;
  r.data_ = data;
  r.size_ = size;
  r.label_ = std::move(label);
  FKV_TRY(r.parse_header());
  FKV_TRY(r.check_sections());
  const size_t n_records = static_cast<size_t>(r.info_.n_layers) * static_cast<size_t>(r.info_.n_pages());
  r.page_state_ = std::make_unique<std::atomic<uint8_t>[]>(n_records);  // value-initialised: all unchecked
  return r;
}

Status PageFileReader::parse_header() {
  if (size_ < sizeof(kMagic) || std::memcmp(data_, kMagic, sizeof(kMagic)) != 0) {
    return err(label_, ": not a KV page file (magic '", printable(data_, std::min(size_, sizeof(kMagic))),
               "', expected 'FKVPAGES')");
  }
  if (size_ < kOffHeaderChecksum)
    return err(label_, ": truncated: expected at least ", kPageFileHeaderBytes, " bytes, found ", size_);
  const uint32_t version = get_u32(data_ + kOffVersion);
  if (version > kPageFileVersion) {
    return err(label_, ": written by a newer version of FreeKV Desk (page-file format ", version,
               ", this build reads up to ", kPageFileVersion, ")");
  }
  if (version == 0) return err(label_, ": page-file format version 0 does not exist, expected 1");
  const uint32_t header_size = get_u32(data_ + kOffHeaderSize);
  if (header_size != kPageFileHeaderBytes)
    return err(label_, ": header size is ", header_size, ", expected ", kPageFileHeaderBytes, " for format 1");
  if (size_ < kPageFileHeaderBytes)
    return err(label_, ": truncated: expected at least ", kPageFileHeaderBytes, " bytes, found ", size_);
  header_checksum_ = get_u64(data_ + kOffHeaderChecksum);
  const uint64_t actual = header_checksum(data_);
  if (actual != header_checksum_) {
    return err(label_, ": header is damaged (checksum ", hex64(actual), ", expected ", hex64(header_checksum_), ")");
  }
  if (Status s = decode_info(data_, info_); !s.ok()) return err(label_, ": header: ", s.message());
  Result<PageFileLayout> layout = PageFileLayout::of(info_);
  if (!layout.ok()) return err(label_, ": header: ", layout.message());
  layout_ = *layout;
  if (Status s = check_layout_fields(data_, info_, layout_); !s.ok()) return err(label_, ": ", s.message());
  if (size_ != layout_.file_size) {
    return err(label_, size_ < layout_.file_size ? ": truncated" : ": has trailing bytes", ": expected ",
               layout_.file_size, " bytes, found ", size_);
  }
  table_checksum_ = get_u64(data_ + kOffTableChecksum);
  summaries_checksum_ = get_u64(data_ + kOffSummariesChecksum);
  return {};
}

Status PageFileReader::check_sections() {
  const uint64_t table = checksum64(data_ + layout_.table_offset, layout_.table_bytes);
  if (table != table_checksum_) return err(label_, ": the page checksum table is damaged");
  const uint64_t summaries = checksum64(data_ + layout_.summaries_offset, layout_.section_bytes);
  if (summaries != summaries_checksum_) return err(label_, ": the page summaries are damaged");
  const uint8_t* counts = data_ + layout_.summaries_offset + layout_.summary_bytes;  // (n_layers) u32
  const int64_t n_total = info_.first_page + info_.n_pages();
  n_built_.resize(static_cast<size_t>(info_.n_layers));
  for (int l = 0; l < info_.n_layers; ++l) {
    const uint32_t n = get_u32(counts + 4 * static_cast<size_t>(l));
    if (n > n_total) return err(label_, ": layer ", l, " claims ", n, " summarised pages, expected at most ", n_total);
    n_built_[static_cast<size_t>(l)] = static_cast<int>(n);
  }
  return {};
}

Result<const uint8_t*> PageFileReader::page(int l, int64_t p) const {
  const int64_t n_pages = info_.n_pages();
  if (l < 0 || l >= info_.n_layers || p < info_.first_page || p >= info_.first_page + n_pages) {
    return err(label_, ": no page ", p, " of layer ", l, " here (the file holds pages ", info_.first_page, "..",
               info_.first_page + n_pages - 1, " of layers 0..", info_.n_layers - 1, ")");
  }
  const int64_t index = static_cast<int64_t>(l) * n_pages + (p - info_.first_page);
  const uint8_t* record = data_ + layout_.record_offset(index);
  std::atomic<uint8_t>& state = page_state_[static_cast<size_t>(index)];
  // Relaxed is enough: the bytes are immutable and the state only caches a pure function of them.
  uint8_t s = state.load(std::memory_order_relaxed);
  if (s == kPageUnchecked) {
    const uint64_t expected = get_u64(data_ + layout_.table_offset + 8 * static_cast<size_t>(index));
    s = checksum64(record, layout_.record_bytes) != expected                    ? kPageBadChecksum
        : first_non_finite(record, layout_.record_bytes, info_.dtype) >= 0 ? kPageNonFinite
                                                                              : kPageVerified;
    state.store(s, std::memory_order_relaxed);
  }
  if (s == kPageBadChecksum) return err(label_, ": page ", p, " of layer ", l, " is damaged (checksum mismatch)");
  if (s == kPageNonFinite) return non_finite_error(l, p, record);
  return record;
}

// Rare (a damaged file), so the position is searched for again rather than kept.
Status PageFileReader::non_finite_error(int l, int64_t p, const uint8_t* record) const {
  const int64_t e = first_non_finite(record, layout_.record_bytes, info_.dtype);
  const int64_t per_half = static_cast<int64_t>(info_.n_kv_heads) * info_.page_size * info_.head_dim;  // K or V
  const int64_t in_half = e % per_half;
  const int64_t per_head = static_cast<int64_t>(info_.page_size) * info_.head_dim;
  return err(label_, ": page ", p, " of layer ", l, " is damaged (", e < per_half ? "key" : "value",
             " of KV head ", in_half / per_head, ", row ", in_half % per_head / info_.head_dim, ", channel ",
             in_half % info_.head_dim, " is NaN or infinite, expected a finite number)");
}

const uint8_t* PageFileReader::summaries(int l) const {
  const uint64_t per_layer = layout_.summary_bytes / static_cast<uint64_t>(info_.n_layers);
  return data_ + layout_.summaries_offset + static_cast<uint64_t>(l) * per_layer;
}

}  // namespace fkv
