// KV page files (store/page_file.h) and snapshots of the host KV (store/kv_snapshot.h): the checksum on frozen vectors
// and single-bit flips; save then load into a fresh cache (byte-identical blocks, summaries, counts) for every KV type
// with and without a partial last page; a chat extension on top of its base; every kind of damage and mismatch with
// its own message and an empty cache afterwards (NaN and infinite values with correct checksums included); a save killed mid-write and a cancelled save leaving the old file
// intact; the seed files of the fuzz corpus (written by an independent Python encoder) read back; fingerprints.
#include <QDir>
#include <QTest>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

#include "backend/cpu/ops.h"
#include "core/thread_pool.h"
#include "kv/kv_cache.h"
#include "kv/page_summary.h"
#include "model/gguf_writer.h"
#include "store/checksum.h"
#include "store/fingerprint.h"
#include "store/kv_snapshot.h"
#include "store/page_file.h"
#include "support/test_paths.h"

using fkv::DType;
using fkv::KvCache;
using fkv::KvGeometry;
using fkv::PageFileReader;
using fkv::PageSummaries;
using fkv::SnapshotMeta;

Q_DECLARE_METATYPE(DType)

namespace {

KvGeometry geometry(DType t, int page_size = 8, int n_kv_heads = 2, int head_dim = 16) {
  KvGeometry g;
  g.n_layers = 2;
  g.n_kv_heads = n_kv_heads;
  g.head_dim = head_dim;
  g.page_size = page_size;
  g.dtype = t;
  return g;
}

SnapshotMeta meta() { return {"model-a", 0x1234abcdull, "gemma3", 0}; }

// A cache of n_tokens random keys and values (room for cap_tokens) with its full pages summarised.
struct Rig {
  KvCache cache;
  PageSummaries summaries;
};

Rig make_rig(const KvGeometry& g, int n_tokens, int cap_tokens, uint64_t seed) {
  Rig r{KvCache::create(g, cap_tokens).value(), {}};
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  std::vector<float> k(static_cast<size_t>(n_tokens) * g.n_kv_heads * g.head_dim);  // (n_tokens, n_kv_heads, head_dim)
  std::vector<float> v(k.size());                                                   // (n_tokens, n_kv_heads, head_dim)
  for (int l = 0; l < g.n_layers; ++l) {
    for (float& x : k) x = u(rng);
    for (float& x : v) x = u(rng);
    r.cache.write(l, 0, n_tokens, k.data(), v.data());
  }
  r.cache.set_n_tokens(n_tokens);
  (void)r.summaries.init(g, r.cache.capacity_tokens() / g.page_size);
  const int n_full = n_tokens / g.page_size;
  for (int l = 0; l < g.n_layers; ++l) {
    for (int p = 0; p < n_full; ++p) r.summaries.build(l, p, r.cache);
    r.summaries.set_n_built(l, n_full);
  }
  return r;
}

Rig empty_rig(const KvGeometry& g, int cap_tokens) {
  Rig r{KvCache::create(g, cap_tokens).value(), {}};
  (void)r.summaries.init(g, cap_tokens / g.page_size);
  return r;
}

bool mismatch(QString* why, const QString& what) {
  *why = what;
  return false;
}

// Byte equality of every stored row of pages [from, n_pages), zeros in the unused rows of a loaded partial page, and
// equal summaries of every summarised page.
bool same_kv(const Rig& want, const Rig& got, int from, QString* why) {
  const KvGeometry& g = want.cache.geometry();
  const size_t row = static_cast<size_t>(g.head_dim) * g.elem_bytes();
  if (got.cache.n_tokens() != want.cache.n_tokens()) return mismatch(why, "token counts differ");
  for (int l = 0; l < g.n_layers; ++l) {
    if (got.summaries.n_built(l) != want.summaries.n_built(l))
      return mismatch(why, QString("n_built, layer %1").arg(l));
    for (int p = from; p < want.cache.n_pages(); ++p)
      for (int h = 0; h < g.n_kv_heads; ++h)
        for (int kv = 0; kv < 2; ++kv) {
          const uint8_t* a = kv ? want.cache.v_block(l, p, h) : want.cache.k_block(l, p, h);
          const uint8_t* b = kv ? got.cache.v_block(l, p, h) : got.cache.k_block(l, p, h);
          const size_t used = row * static_cast<size_t>(want.cache.page_len(p));
          const uint8_t* end = b + g.head_block_bytes();
          if (std::memcmp(a, b, used) != 0 || std::any_of(b + used, end, [](uint8_t x) { return x != 0; }))
            return mismatch(why, QString("layer %1 page %2 head %3 %4").arg(l).arg(p).arg(h).arg(kv ? "V" : "K"));
        }
    for (int p = 0; p < want.summaries.n_built(l); ++p)
      if (std::memcmp(want.summaries.kmin(l, p, 0), got.summaries.kmin(l, p, 0),
                      want.summaries.page_stride() * sizeof(uint16_t)) != 0)
        return mismatch(why, QString("summary of layer %1 page %2").arg(l).arg(p));
  }
  return true;
}

bool is_empty(const Rig& r) {
  for (int l = 0; l < r.cache.geometry().n_layers; ++l)
    if (r.summaries.n_built(l) != 0) return false;
  return r.cache.n_tokens() == 0;
}

std::string temp_path(const char* name) { return (fkvtest::tempDir() + "/" + name).toStdString(); }

bool exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

void put_u64(std::vector<uint8_t>& b, size_t off, uint64_t v) {
  for (int i = 0; i < 8; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}

// Recomputes the header checksum (the 512 header bytes with the field at 16 zeroed), as a careful forger would.
void reseal(std::vector<uint8_t>& b) {
  std::vector<uint8_t> h(b.begin(), b.begin() + 512);
  put_u64(h, 16, 0);
  put_u64(b, 16, fkv::checksum64(h.data(), h.size()));
}

QString msg(const fkv::Status& s) { return QString::fromStdString(s.message()); }

}  // namespace

class TestPageFile : public QObject {
  Q_OBJECT

 private slots:
  void checksumKnownVectors() {
    std::vector<uint8_t> buf(1000);
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(i * 31 + 7);
    // Frozen from the first implementation (make_page_file_seeds.py, written from the spec, agrees): the checksum is
    // part of the on-disk format and must never change.
    QCOMPARE(fkv::checksum64(nullptr, 0), uint64_t{0x67BB810985FA9F24});
    QCOMPARE(fkv::checksum64("a", 1), uint64_t{0xD1BF549BA0D68EBA});
    QCOMPARE(fkv::checksum64("abc", 3, 42), uint64_t{0xC8AC2753427F8130});
    QCOMPARE(fkv::checksum64(buf.data(), 31), uint64_t{0x8009E8D481D12228});
    QCOMPARE(fkv::checksum64(buf.data(), 32), uint64_t{0xAD94944FE782F01A});
    QCOMPARE(fkv::checksum64(buf.data(), 1000), uint64_t{0x1DC737178CC8AF7F});
    QCOMPARE(fkv::checksum64(buf.data(), 1000, 7), uint64_t{0x92F6C23E67DF9F05});
  }

  void checksumStreamingMatchesOneShot() {
    std::vector<uint8_t> buf(777);
    std::mt19937_64 rng(5);
    for (uint8_t& x : buf) x = static_cast<uint8_t>(rng());
    for (size_t step : {1, 3, 8, 31, 32, 33, 100, 777}) {
      fkv::Checksum64 c(9);
      for (size_t i = 0; i < buf.size(); i += step) c.update(buf.data() + i, std::min(step, buf.size() - i));
      QCOMPARE(c.digest(), fkv::checksum64(buf.data(), buf.size(), 9));
    }
  }

  void checksumSeesEveryBitFlip() {
    for (size_t n : {1, 7, 8, 13, 32, 45, 200}) {  // tail only, blocks only, blocks and every tail kind
      std::vector<uint8_t> buf(n);
      std::mt19937_64 rng(n);
      for (uint8_t& x : buf) x = static_cast<uint8_t>(rng());
      const uint64_t base = fkv::checksum64(buf.data(), n);
      for (size_t bit = 0; bit < 8 * n; ++bit) {
        buf[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
        if (fkv::checksum64(buf.data(), n) == base) QFAIL(qPrintable(QString("n=%1 bit %2 unseen").arg(n).arg(bit)));
        buf[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
      }
    }
  }

  void roundTrip_data() {
    QTest::addColumn<DType>("dtype");
    QTest::addColumn<int>("n_tokens");
    QTest::addRow("f16 full pages") << DType::F16 << 40;
    QTest::addRow("f16 partial last page") << DType::F16 << 43;
    QTest::addRow("bf16 partial last page") << DType::BF16 << 17;
    QTest::addRow("f32 one token") << DType::F32 << 1;
  }
  void roundTrip() {
    QFETCH(DType, dtype);
    QFETCH(int, n_tokens);
    const KvGeometry g = geometry(dtype);
    const Rig src = make_rig(g, n_tokens, 64, 1);
    const std::string path = temp_path("round_trip.fkvp");
    QVERIFY2(save_kv_snapshot(path, meta(), src.cache, src.summaries, 0).ok(), "save");
    QVERIFY(!exists(path + ".tmp"));
    QCOMPARE(static_cast<uint64_t>(std::filesystem::file_size(path)), fkv::kv_snapshot_bytes(g, n_tokens));
    auto file = PageFileReader::open(path);
    QVERIFY2(file.ok(), qPrintable(QString::fromStdString(file.message())));
    QCOMPARE(file->info().n_pages(), static_cast<int64_t>(src.cache.n_pages()));
    QCOMPARE(file->layout().records_offset % 4096, uint64_t{0});
    Rig dst = empty_rig(g, 64);
    const fkv::Status st = load_kv_snapshot(*file, meta(), dst.cache, dst.summaries);
    QVERIFY2(st.ok(), qPrintable(msg(st)));
    QString why;
    QVERIFY2(same_kv(src, dst, 0, &why), qPrintable(why));
    fkv::ThreadPool pool(3);  // layers verified and copied in parallel: the same KV
    Rig par = empty_rig(g, 64);
    const fkv::Status pst = load_kv_snapshot(*file, meta(), par.cache, par.summaries, &pool);
    QVERIFY2(pst.ok(), qPrintable(msg(pst)));
    QVERIFY2(same_kv(src, par, 0, &why), qPrintable(why));

    // With 8-bit codes (a context-memory context keeps them), a load codes every summary it copies, and the
    // parallel load's codes are one thread's.
    Rig one = empty_rig(g, 64);
    Rig two = empty_rig(g, 64);
    QVERIFY(one.summaries.enable_codes().ok() && one.summaries.codes_enabled());
    QVERIFY(two.summaries.enable_codes().ok());
    QVERIFY(load_kv_snapshot(*file, meta(), one.cache, one.summaries).ok());
    QVERIFY(load_kv_snapshot(*file, meta(), two.cache, two.summaries, &pool).ok());
    const size_t block_bytes = 2 * static_cast<size_t>(g.head_dim) * fkv::cpu::kCodeBlockPages;
    for (int l = 0; l < g.n_layers; ++l) {
      const int n = one.summaries.n_built(l);
      QCOMPARE(one.summaries.n_coded(l), n);
      QCOMPARE(two.summaries.n_coded(l), n);
      for (int h = 0; h < g.n_kv_heads; ++h) {
        QVERIFY(std::memcmp(one.summaries.code_lo(l, h), two.summaries.code_lo(l, h), 2 * g.head_dim * sizeof(float)) ==
                0);
        constexpr int kB = fkv::cpu::kCodeBlockPages;
        for (int p = 0; p < n; ++p) {  // the slots of the pages coded (a block's unused slots are never written)
          for (int q = 0; q < g.head_dim / 2; ++q) {
            const size_t at =
                static_cast<size_t>(p / kB) * block_bytes + static_cast<size_t>(q) * kB * 4 + (p % kB) * 4;
            QVERIFY(std::memcmp(one.summaries.code_blocks(l, h) + at, two.summaries.code_blocks(l, h) + at, 4) == 0);
          }
        }
      }
    }
  }

  // A partial last page has no summary; whatever its slot of the summaries buffer holds never reaches the file, so
  // the same KV always makes the same bytes (a resumed prefill's snapshot is compared byte for byte with one pass's).
  void unbuiltSummariesAreNotWritten() {
    const KvGeometry g = geometry(DType::F16);
    Rig src = make_rig(g, 43, 64, 1);
    const int partial = src.cache.n_pages() - 1;
    QCOMPARE(src.summaries.n_built(0), partial);
    std::vector<std::vector<uint8_t>> files;
    for (const uint16_t junk : {0x57b0, 0xc700}) {  // F16 123 and -7
      for (int l = 0; l < g.n_layers; ++l)
        for (int h = 0; h < g.n_kv_heads; ++h)
          std::fill_n(src.summaries.minmax(l, partial, h), 2 * g.head_dim, junk);
      const std::string path = temp_path("unbuilt.fkvp");
      QVERIFY(save_kv_snapshot(path, meta(), src.cache, src.summaries, 0).ok());
      files.push_back(read_bytes(path));
    }
    QVERIFY(files[0] == files[1]);
  }

  void chatExtendsBase() {
    const KvGeometry g = geometry(DType::F16);
    Rig chat = make_rig(g, 43, 64, 2);  // the document is pages 0..2; the chat adds 19 tokens
    chat.cache.set_n_tokens(24);
    for (int l = 0; l < g.n_layers; ++l) chat.summaries.set_n_built(l, 3);
    const std::string base_path = temp_path("base.fkvp");
    const std::string ext_path = temp_path("chat.fkvp");
    QVERIFY(save_kv_snapshot(base_path, meta(), chat.cache, chat.summaries, 0).ok());
    auto base = PageFileReader::open(base_path);
    QVERIFY(base.ok());
    chat.cache.set_n_tokens(43);
    for (int l = 0; l < g.n_layers; ++l) chat.summaries.set_n_built(l, 5);
    SnapshotMeta m = meta();
    QVERIFY(!save_kv_snapshot(ext_path, m, chat.cache, chat.summaries, 3).ok());  // no base named
    QVERIFY(!save_kv_snapshot(ext_path, m, chat.cache, chat.summaries, 6).ok());  // past the full pages
    m.base_fingerprint = base->fingerprint();
    QVERIFY(save_kv_snapshot(ext_path, m, chat.cache, chat.summaries, 3).ok());
    auto ext = PageFileReader::open(ext_path);
    QVERIFY(ext.ok());
    QCOMPARE(ext->info().first_page, int64_t{3});
    QCOMPARE(ext->info().n_pages(), int64_t{3});
    QVERIFY(!ext->page(0, 2).ok());  // a base page is not in the extension

    Rig dst = empty_rig(g, 64);
    fkv::Status st = load_kv_snapshot(*ext, m, dst.cache, dst.summaries);
    QVERIFY2(st.message().find("load the base first") != std::string::npos, st.message().c_str());
    QVERIFY(load_kv_snapshot(*base, meta(), dst.cache, dst.summaries).ok());
    SnapshotMeta wrong = m;
    wrong.base_fingerprint ^= 1;
    st = load_kv_snapshot(*ext, wrong, dst.cache, dst.summaries);
    QVERIFY2(st.message().find("extends base snapshot") != std::string::npos, st.message().c_str());
    QVERIFY(is_empty(dst));
    QVERIFY(load_kv_snapshot(*base, meta(), dst.cache, dst.summaries).ok());
    st = load_kv_snapshot(*ext, m, dst.cache, dst.summaries);
    QVERIFY2(st.ok(), st.message().c_str());
    QString why;
    QVERIFY2(same_kv(chat, dst, 0, &why), qPrintable(why));
  }

  void damagedPageFailsOnlyWhenRead() {
    const KvGeometry g = geometry(DType::F16);
    const Rig src = make_rig(g, 43, 64, 3);
    const std::string path = temp_path("damaged.fkvp");
    QVERIFY(save_kv_snapshot(path, meta(), src.cache, src.summaries, 0).ok());
    std::vector<uint8_t> bytes = read_bytes(path);
    {
      auto clean = PageFileReader::open(path);
      QVERIFY(clean.ok());
      const uint64_t off = clean->layout().record_offset(1 * clean->info().n_pages() + 2);  // layer 1, page 2
      bytes[off + 77] ^= 0x10;
    }
    write_bytes(path, bytes);
    auto file = PageFileReader::open(path);
    QVERIFY2(file.ok(), "a damaged page must not fail the open");
    QVERIFY(file->page(0, 2).ok());
    QVERIFY(file->page(1, 1).ok());
    for (int pass = 0; pass < 2; ++pass) {  // verified once, remembered
      auto p = file->page(1, 2);
      QVERIFY(!p.ok());
      QVERIFY2(p.message().find("page 2 of layer 1 is damaged") != std::string::npos, p.message().c_str());
    }
    Rig dst = make_rig(g, 40, 64, 4);  // a cache that held something: a failed load leaves it empty
    const fkv::Status st = load_kv_snapshot(*file, meta(), dst.cache, dst.summaries);
    QVERIFY(!st.ok());
    QVERIFY(is_empty(dst));
    fkv::ThreadPool pool(2);  // in parallel: the same message, and nothing half-loaded
    Rig par = make_rig(g, 40, 64, 4);
    const fkv::Status pst = load_kv_snapshot(*file, meta(), par.cache, par.summaries, &pool);
    QCOMPARE(pst.message(), st.message());
    QVERIFY(is_empty(par));
  }

  // A forger (or a bug upstream) can store NaN or infinity with a correct checksum; the reader must call it damage,
  // naming where, and must not take the largest finite values for it.
  void nonFiniteValuesAreDamage_data() {
    QTest::addColumn<DType>("dtype");
    QTest::addColumn<bool>("in_value");
    QTest::addColumn<uint32_t>("bits");   // the element's bit pattern
    QTest::addColumn<uint32_t>("finite");  // the largest finite magnitude of the type, which must pass
    QTest::addRow("f16 NaN key") << DType::F16 << false << 0x7e00u << 0x7bffu;
    QTest::addRow("f16 -inf value") << DType::F16 << true << 0xfc00u << 0xfbffu;
    QTest::addRow("bf16 +inf key") << DType::BF16 << false << 0x7f80u << 0x7f7fu;
    QTest::addRow("bf16 NaN value") << DType::BF16 << true << 0xffc1u << 0xff7fu;
    QTest::addRow("f32 NaN key") << DType::F32 << false << 0x7fc00000u << 0x7f7fffffu;
    QTest::addRow("f32 +inf value") << DType::F32 << true << 0x7f800000u << 0xff7fffffu;
  }
  void nonFiniteValuesAreDamage() {
    QFETCH(DType, dtype);
    QFETCH(bool, in_value);
    QFETCH(uint32_t, bits);
    QFETCH(uint32_t, finite);
    const KvGeometry g = geometry(dtype);
    Rig src = make_rig(g, 43, 64, 5);
    const size_t elem = g.elem_bytes();
    const auto put = [&](uint8_t* block, int row, int channel, uint32_t v) {
      std::memcpy(block + (static_cast<size_t>(row) * g.head_dim + channel) * elem, &v, elem);  // little-endian
    };
    put(in_value ? src.cache.v_block(1, 2, 1) : src.cache.k_block(1, 2, 1), 3, 5, bits);
    put(src.cache.k_block(0, 0, 0), 1, 2, finite);
    put(src.cache.v_block(0, 5, 1), 2, 15, finite);  // in the partial last page
    const std::string path = temp_path("non_finite.fkvp");
    QVERIFY2(save_kv_snapshot(path, meta(), src.cache, src.summaries, 0).ok(), "save");
    auto file = PageFileReader::open(path);
    QVERIFY2(file.ok(), file.message().c_str());
    QVERIFY2(file->page(0, 0).ok(), "the largest finite value was taken for damage");
    QVERIFY2(file->page(0, 5).ok(), "the largest finite value was taken for damage");
    QVERIFY(file->page(1, 1).ok());
    const std::string want = std::string("page 2 of layer 1 is damaged (") + (in_value ? "value" : "key") +
                             " of KV head 1, row 3, channel 5 is NaN or infinite, expected a finite number)";
    for (int pass = 0; pass < 2; ++pass) {  // verified once, remembered
      auto p = file->page(1, 2);
      QVERIFY(!p.ok());
      QVERIFY2(p.message() == path + ": " + want, p.message().c_str());
    }
    Rig dst = make_rig(g, 40, 64, 6);
    const fkv::Status st = load_kv_snapshot(*file, meta(), dst.cache, dst.summaries);
    QVERIFY2(!st.ok() && st.message().find(want) != std::string::npos, st.message().c_str());
    QVERIFY(is_empty(dst));
  }

  void refusesWhatDoesNotMatch_data() {
    QTest::addColumn<QString>("what");
    QTest::addColumn<QString>("expect");
    QTest::addRow("model") << "model"
                           << "snapshot was made with model model-a, this is model model-b";
    QTest::addRow("tokenizer") << "tokenizer"
                               << "snapshot was made with tokenizer 0x000000001234abcd";
    QTest::addRow("prompt format") << "prompt"
                                   << "snapshot uses prompt format 'gemma3', expected 'llama3'";
    QTest::addRow("page size") << "page_size"
                               << "page size 8, expected 16";
    QTest::addRow("dtype") << "dtype"
                           << "snapshot stores F16 keys and values, expected F32";
    QTest::addRow("heads") << "heads"
                           << "snapshot has 2 KV heads, expected 4";
    QTest::addRow("capacity") << "capacity"
                              << "snapshot holds 43 tokens, the cache has room for 32";
  }
  void refusesWhatDoesNotMatch() {
    QFETCH(QString, what);
    QFETCH(QString, expect);
    const Rig src = make_rig(geometry(DType::F16), 43, 64, 5);
    const std::string path = temp_path("mismatch.fkvp");
    QVERIFY(save_kv_snapshot(path, meta(), src.cache, src.summaries, 0).ok());
    auto file = PageFileReader::open(path);
    QVERIFY(file.ok());
    SnapshotMeta m = meta();
    KvGeometry g = geometry(DType::F16);
    int cap = 64;
    if (what == "model") m.model_fingerprint = "model-b";
    if (what == "tokenizer") m.tokenizer_hash = 99;
    if (what == "prompt") m.prompt_format = "llama3";
    if (what == "page_size") g.page_size = 16;
    if (what == "dtype") g.dtype = DType::F32;
    if (what == "heads") g.n_kv_heads = 4;
    if (what == "capacity") cap = 32;
    Rig dst = make_rig(g, 16, cap, 6);
    const fkv::Status st = load_kv_snapshot(*file, m, dst.cache, dst.summaries);
    QVERIFY2(msg(st).contains(expect), qPrintable(msg(st)));
    QVERIFY(is_empty(dst));
  }

  void refusesDamagedFiles_data() {
    QTest::addColumn<QString>("damage");
    QTest::addColumn<QString>("expect");
    QTest::addRow("missing") << "missing"
                             << "cannot open";
    QTest::addRow("empty") << "empty"
                           << "not a KV page file";
    QTest::addRow("bad magic") << "magic"
                               << "not a KV page file (magic 'GGUF";
    QTest::addRow("newer version") << "version"
                                   << "written by a newer version";
    QTest::addRow("header checksum") << "header"
                                     << "header is damaged";
    QTest::addRow("truncated") << "truncate"
                               << "truncated: expected";
    QTest::addRow("trailing bytes") << "append"
                                    << "has trailing bytes";
    QTest::addRow("checksum table") << "table"
                                    << "page checksum table is damaged";
    QTest::addRow("summaries") << "summaries"
                               << "page summaries are damaged";
    QTest::addRow("resealed page count") << "n_pages"
                                         << "header states page count 7, expected 6";
    QTest::addRow("resealed string") << "string"
                                     << "prompt-format tag is 65 bytes long";
    QTest::addRow("resealed base") << "base"
                                   << "no base snapshot is named";
  }
  void refusesDamagedFiles() {
    QFETCH(QString, damage);
    QFETCH(QString, expect);
    const Rig src = make_rig(geometry(DType::F16), 43, 64, 7);
    const std::string path = temp_path("broken.fkvp");
    QVERIFY(save_kv_snapshot(path, meta(), src.cache, src.summaries, 0).ok());
    std::vector<uint8_t> b = read_bytes(path);
    const fkv::PageFileLayout layout = PageFileReader::open(path)->layout();
    if (damage == "missing") ::unlink(path.c_str());
    if (damage == "empty") b.clear();
    if (damage == "magic") std::memcpy(b.data(), "GGUF", 4);
    if (damage == "version") b[8] = 2;
    if (damage == "header") b[232] ^= 1;  // inside the prompt-format string
    if (damage == "truncate") b.resize(static_cast<size_t>(layout.file_size) - 100);
    if (damage == "append") b.push_back(0);
    if (damage == "table") b[layout.table_offset + 3] ^= 1;
    if (damage == "summaries") b[layout.summaries_offset + 5] ^= 1;
    if (damage == "n_pages") b[80] = 7;
    if (damage == "string") b[228] = 65;
    if (damage == "base") put_u64(b, 72, 1);  // first page 1 with no base fingerprint
    if (damage == "n_pages" || damage == "string" || damage == "base") reseal(b);
    if (damage != "missing") write_bytes(path, b);
    auto file = PageFileReader::open(path);
    QVERIFY(!file.ok());
    QVERIFY2(QString::fromStdString(file.message()).contains(expect), file.message().c_str());
    QVERIFY2(file.message().find(path) != std::string::npos, "the message names the file");
  }

  void killedSaveKeepsOldFile() {
    const KvGeometry g = geometry(DType::F16, 32, 4, 64);  // 32 KiB records
    const Rig old_rig = make_rig(g, 100, 100, 8);
    const std::string path = temp_path("killed.fkvp");
    QVERIFY(save_kv_snapshot(path, meta(), old_rig.cache, old_rig.summaries, 0).ok());
    const Rig big = make_rig(g, 8192, 8192, 9);  // 16 MiB: several write chunks
    int ready[2];
    QCOMPARE(pipe(ready), 0);
    const pid_t pid = fork();
    QVERIFY(pid >= 0);
    if (pid == 0) {  // the child saves and stops for good once part of the new file is on disk
      ::close(ready[0]);
      auto hold = [&](uint64_t, uint64_t) {
        (void)!::write(ready[1], "x", 1);
        for (;;) pause();
        return true;
      };
      (void)save_kv_snapshot(path, meta(), big.cache, big.summaries, 0, hold);
      _exit(3);
    }
    ::close(ready[1]);
    char c = 0;
    QCOMPARE(::read(ready[0], &c, 1), ssize_t{1});
    ::close(ready[0]);
    struct stat st {};
    QVERIFY2(stat((path + ".tmp").c_str(), &st) == 0 && st.st_size > (1 << 20), "the new file was being written");
    QCOMPARE(kill(pid, SIGKILL), 0);
    int status = 0;
    QCOMPARE(waitpid(pid, &status, 0), pid);
    QVERIFY(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    auto file = PageFileReader::open(path);
    QVERIFY2(file.ok(), file.message().c_str());
    Rig dst = empty_rig(g, 8192);
    QVERIFY(load_kv_snapshot(*file, meta(), dst.cache, dst.summaries).ok());
    QString why;
    QVERIFY2(same_kv(old_rig, dst, 0, &why), qPrintable(why));
    // The next save replaces the stale temporary and succeeds.
    QVERIFY(save_kv_snapshot(path, meta(), big.cache, big.summaries, 0).ok());
    QVERIFY(!exists(path + ".tmp"));
    QCOMPARE(PageFileReader::open(path)->info().n_tokens, int64_t{8192});
  }

  void cancelledSaveLeavesNothing() {
    const Rig src = make_rig(geometry(DType::F16), 43, 64, 10);
    const std::string path = temp_path("cancelled.fkvp");
    QVERIFY(save_kv_snapshot(path, meta(), src.cache, src.summaries, 0).ok());
    const std::vector<uint8_t> before = read_bytes(path);
    Rig other = make_rig(geometry(DType::F16), 60, 64, 11);
    uint64_t seen_total = 0;
    const fkv::Status st = save_kv_snapshot(path, meta(), other.cache, other.summaries, 0, [&](uint64_t, uint64_t t) {
      seen_total = t;
      return false;
    });
    QVERIFY2(st.message().find("cancelled") != std::string::npos, st.message().c_str());
    QVERIFY(seen_total > 0);
    QVERIFY(!exists(path + ".tmp"));
    QVERIFY(read_bytes(path) == before);
    QVERIFY(!save_kv_snapshot(temp_path("fresh.fkvp"), meta(), other.cache, other.summaries, 0, [](uint64_t, uint64_t) {
               return false;
             }).ok());
    QVERIFY(!exists(temp_path("fresh.fkvp")) && !exists(temp_path("fresh.fkvp.tmp")));
  }

  // The corpus seeds come from tests/fuzz/corpus/make_page_file_seeds.py, an encoder written from docs/kv-format.md
  // alone; reading them checks the document against this implementation.
  void fuzzSeedsFromTheSpecRead() {
    const QString dir = QStringLiteral(FKV_SOURCE_DIR) + "/tests/fuzz/corpus/page_file/";
    const QStringList names = QDir(dir).entryList(QDir::Files);
    QVERIFY2(names.size() >= 3, "the seed files are checked in");
    for (const QString& name : names) {
      auto file = PageFileReader::open((dir + name).toStdString());
      QVERIFY2(file.ok(), file.message().c_str());
      const fkv::PageFileInfo& i = file->info();
      for (int l = 0; l < i.n_layers; ++l)
        for (int64_t p = i.first_page; p < i.first_page + i.n_pages(); ++p)
          QVERIFY2(file->page(l, p).ok(), qPrintable(name));
    }
  }

  void fingerprints() {
    auto gguf = [](float score, uint8_t first_weight, bool swap_keys) {
      fkv::GgufWriter w;
      w.set_string("general.architecture", "llama");
      if (swap_keys) w.set_f32_array("tokenizer.ggml.scores", {0.f, score});
      w.set_string_array("tokenizer.ggml.tokens", {"<s>", "a"});
      if (!swap_keys) w.set_f32_array("tokenizer.ggml.scores", {0.f, score});
      std::vector<uint8_t> data(16, 1);
      data[0] = first_weight;
      w.add_tensor("w", {4}, DType::F32, data);
      return w.to_bytes();
    };
    const std::vector<uint8_t> a = gguf(1.f, 1, false), b = gguf(2.f, 1, false), c = gguf(1.f, 2, false),
                               d = gguf(1.f, 1, true);
    auto fa = fkv::GgufFile::parse(a.data(), a.size(), "a"), fb = fkv::GgufFile::parse(b.data(), b.size(), "b"),
         fc = fkv::GgufFile::parse(c.data(), c.size(), "c"), fd = fkv::GgufFile::parse(d.data(), d.size(), "d");
    QVERIFY(fa.ok() && fb.ok() && fc.ok() && fd.ok());
    const std::string ma = model_fingerprint(**fa);
    QCOMPARE(ma.size(), size_t{32});
    QCOMPARE(ma, model_fingerprint(**fa));
    QVERIFY(ma != model_fingerprint(**fb));  // metadata differs
    QVERIFY(ma != model_fingerprint(**fc));  // only the weights differ
    QCOMPARE((*fa)->data_offset() % 32, size_t{0});
    QVERIFY((*fa)->data_offset() <= (*fa)->tensors()[0].offset);
    QCOMPARE(tokenizer_hash(**fa), tokenizer_hash(**fc));   // same vocabulary, other weights
    QCOMPARE(tokenizer_hash(**fa), tokenizer_hash(**fd));   // key order does not matter
    QVERIFY(tokenizer_hash(**fa) != tokenizer_hash(**fb));  // one score differs
  }
};

QTEST_APPLESS_MAIN(TestPageFile)
#include "test_page_file.moc"
