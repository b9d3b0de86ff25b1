// libFuzzer target for the KV page-file reader: any input must either fail with a message naming it, or open into a
// reader whose every page, summary and count stays inside the input (AddressSanitizer checks each byte touched) and
// whose reported layout agrees with the input's size.
//
// Random mutations almost never keep the header checksum valid, so each input is also parsed a second time after
// "resealing": the table, summaries and header checksums are recomputed where the header says they lie. That lets
// the fuzzer reach the field, layout and page checks behind the checksum.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "store/checksum.h"
#include "store/page_file.h"

namespace {

// Keeps results observable so the optimizer cannot drop the reads.
volatile uint64_t g_sink = 0;

void touch(const uint8_t* p, uint64_t n) {
  uint64_t s = 0;
  for (uint64_t k = 0; k < n; ++k) s += p[k];
  g_sink = g_sink + s;
}

void exercise(const fkv::PageFileReader& r, size_t size) {
  const fkv::PageFileInfo& i = r.info();
  const fkv::PageFileLayout& o = r.layout();
  if (o.file_size != size || o.records_offset % fkv::kPageFileAlign != 0) __builtin_trap();
  for (int l = 0; l < i.n_layers; ++l) {
    for (int64_t p = i.first_page; p < i.first_page + i.n_pages(); ++p) {
      auto page = r.page(l, p);
      if (page.ok()) {
        touch(*page, o.record_bytes);
      } else if (page.message().rfind("fuzz.fkvp: ", 0) != 0) {
        __builtin_trap();
      }
      if (r.page(l, p).ok() != page.ok()) __builtin_trap();  // the verdict is remembered, not recomputed differently
    }
    touch(r.summaries(l), o.summary_bytes / static_cast<uint64_t>(i.n_layers));
    if (r.n_built(l) < 0 || r.n_built(l) > i.first_page + i.n_pages()) __builtin_trap();
  }
  // Outside the file's pages: must fail cleanly.
  if (r.page(-1, 0).ok() || r.page(i.n_layers, i.first_page).ok() || r.page(0, i.first_page + i.n_pages()).ok())
    __builtin_trap();
}

// Header fields are little-endian, as is every host this runs on.
uint64_t get_u64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

void put_u64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }

// Recomputes the checksum stored at byte `at` over the n bytes at `off`, when they lie inside the input.
void reseal_section(std::vector<uint8_t>& b, size_t at, uint64_t off, uint64_t n) {
  if (off <= b.size() && n <= b.size() - off) put_u64(b.data() + at, fkv::checksum64(b.data() + off, n));
}

std::vector<uint8_t> resealed(const uint8_t* data, size_t size) {
  std::vector<uint8_t> b(data, data + size);
  if (size < fkv::kPageFileHeaderBytes) return b;
  uint32_t n_layers;
  std::memcpy(&n_layers, b.data() + 40, 4);
  uint64_t table_bytes = 0;  // n_layers * n_pages * 8: not a header field of its own
  if (!__builtin_mul_overflow(uint64_t{n_layers}, get_u64(b.data() + 80), &table_bytes) &&
      !__builtin_mul_overflow(table_bytes, uint64_t{8}, &table_bytes))
    reseal_section(b, 112, get_u64(b.data() + 104), table_bytes);
  reseal_section(b, 144, get_u64(b.data() + 128), get_u64(b.data() + 136));
  put_u64(b.data() + 16, 0);
  put_u64(b.data() + 16, fkv::checksum64(b.data(), fkv::kPageFileHeaderBytes));
  return b;
}

void run(const uint8_t* data, size_t size) {
  auto r = fkv::PageFileReader::parse(data, size, "fuzz.fkvp");
  if (!r.ok()) {
    if (r.message().rfind("fuzz.fkvp: ", 0) != 0) __builtin_trap();  // every error names its input
    return;
  }
  exercise(*r, size);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  run(data, size);
  const std::vector<uint8_t> b = resealed(data, size);
  run(b.data(), b.size());
  return 0;
}
