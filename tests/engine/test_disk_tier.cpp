// The disk tier: a saved KV read in place from its page file, with host memory for it capped far below its size,
// gives logits bit-identical to the same KV copied into memory, for a dense question over every page and for FreeKV
// decode steps; the resident part stays under the cap; a damaged record fails the step that reads it, naming it, and
// leaves the context as it was.
#include <QtTest>

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "kv/kv_cache.h"
#include "model/model.h"
#include "runtime/context.h"
#include "store/kv_snapshot.h"
#include "store/page_file.h"
#include "support/test_models.h"
#include "support/test_paths.h"

namespace {

using fkv::ContextParams;
using fkv::LogitsMode;

constexpr uint64_t kCap = 256 << 10;  // bytes of file pages that may stay resident

std::vector<int32_t> randomTokens(int n, int n_vocab, uint32_t seed) {
  std::vector<int32_t> out;
  uint32_t x = seed;
  for (int i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    out.push_back(static_cast<int32_t>(10 + (x >> 8) % static_cast<uint32_t>(n_vocab - 10)));
  }
  return out;
}

fkv::SnapshotMeta meta() {
  fkv::SnapshotMeta m;
  m.model_fingerprint = "disk-tier-test";
  m.tokenizer_hash = 7;
  m.prompt_format = "raw";
  return m;
}

// Bytes of `path`'s mappings in this process that are mapped in now (/proc/self/pagemap's present bit).
uint64_t mappedBytesOf(const std::string& path) {
  std::ifstream maps("/proc/self/maps");
  const int pagemap = ::open("/proc/self/pagemap", O_RDONLY);
  if (pagemap < 0) qFatal("cannot open /proc/self/pagemap");
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  uint64_t present = 0;
  std::string line;
  while (std::getline(maps, line)) {
    if (line.size() < path.size() || line.compare(line.size() - path.size(), path.size(), path) != 0) continue;
    const size_t dash = line.find('-');
    const uint64_t from = std::stoull(line.substr(0, dash), nullptr, 16);
    const uint64_t to = std::stoull(line.substr(dash + 1, line.find(' ') - dash - 1), nullptr, 16);
    std::vector<uint64_t> entries((to - from) / page);
    const auto want = static_cast<ssize_t>(entries.size() * 8);
    if (::pread(pagemap, entries.data(), static_cast<size_t>(want), static_cast<off_t>(from / page * 8)) != want)
      qFatal("cannot read /proc/self/pagemap");
    for (uint64_t e : entries) present += (e >> 63) * page;
  }
  ::close(pagemap);
  return present;
}

int32_t argmax(const float* row, int n) { return static_cast<int32_t>(std::max_element(row, row + n) - row); }

}  // namespace

class TestDiskTier : public QObject {
  Q_OBJECT
  std::unique_ptr<fkv::Model> m_model;
  std::string m_file;
  int m_tokens = 0;

  ContextParams params(uint64_t cap) const {
    ContextParams p;
    p.n_ctx = 4096;
    p.page_size = 16;
    p.n_batch = 64;
    p.n_threads = 2;
    p.policy = fkv::Policy::freekv;
    p.budget.sink_tokens = 64;
    p.budget.recent_tokens = 64;
    p.budget.retrieved_tokens = 128;
    p.budget.page_size = 16;
    p.host_kv_cap_bytes = cap;
    return p;
  }
  std::unique_ptr<fkv::Context> context(uint64_t cap) const {
    auto c = fkv::Context::create(*m_model, params(cap));
    if (!c.ok()) qFatal("Context::create: %s", c.message().c_str());
    return std::move(c).value();
  }
  static std::shared_ptr<const fkv::PageFileReader> open(const std::string& path) {
    auto f = fkv::PageFileReader::open(path);
    if (!f.ok()) qFatal("open: %s", f.message().c_str());
    return std::make_shared<const fkv::PageFileReader>(std::move(f).value());
  }

 private slots:
  void initTestCase() {
    fkv::SyntheticModelSpec spec = fkvtest::llamaSpec(41, 4096);
    spec.n_layers = 4;
    spec.n_kv_heads = 4;
    spec.head_dim = 64;
    const QString path = fkvtest::tempDir() + QStringLiteral("/disk-tier.gguf");
    QCOMPARE(fkvtest::writeModel(spec, path), QString());
    auto m = fkv::Model::load(path.toStdString());
    QVERIFY2(m.ok(), m.message().c_str());
    m_model = std::move(m).value();

    // 3,000 tokens: 188 pages of 16, the last one partial, 12 MiB of KV for a cap of 256 KiB.
    const std::unique_ptr<fkv::Context> ctx = context(0);
    const auto doc = randomTokens(3000, m_model->config().n_vocab, 1);
    std::vector<float> logits(static_cast<size_t>(m_model->config().n_vocab));
    QVERIFY(ctx->eval(doc, LogitsMode::Last, logits).ok());
    m_file = (fkvtest::tempDir() + QStringLiteral("/doc.fkvpages")).toStdString();
    QVERIFY(ctx->save_kv(m_file, meta(), 0).ok());
    m_tokens = ctx->n_past();
    QVERIFY(std::filesystem::file_size(m_file) > 40 * kCap);
  }

  void readInPlaceUnderACapIsBitIdentical() {
    const std::unique_ptr<fkv::Context> copied = context(0);
    const std::unique_ptr<fkv::Context> mapped = context(kCap);
    QVERIFY(copied->load_kv(*open(m_file), meta()).ok());
    QVERIFY(mapped->map_kv(open(m_file), meta()).ok());
    QCOMPARE(mapped->n_past(), m_tokens);
    QCOMPARE(copied->paged_in_bytes(), uint64_t{0});
    QCOMPARE(mapped->mapped_resident_bytes(), uint64_t{0});  // nothing is read at open

    // A question evaluated densely over every page (it starts in the partial last page, which a write copies out).
    const int n_vocab = m_model->config().n_vocab;
    const auto question = randomTokens(40, n_vocab, 2);
    std::vector<float> a(question.size() * static_cast<size_t>(n_vocab)), b(a.size());
    QVERIFY(copied->eval(question, LogitsMode::All, a).ok());
    const fkv::Status sb = mapped->eval(question, LogitsMode::All, b);
    QVERIFY2(sb.ok(), sb.message().c_str());
    QVERIFY(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    QVERIFY2(mapped->mapped_resident_bytes() <= kCap, std::to_string(mapped->mapped_resident_bytes()).c_str());
    const uint64_t after_question = mapped->paged_in_bytes();
    QVERIFY(after_question > 10 * kCap);  // every page came in, and went back

    // FreeKV decode: speculative selection and recall read the file's pages from a background thread.
    int32_t next = argmax(a.data() + a.size() - static_cast<size_t>(n_vocab), n_vocab);
    std::vector<float> la(static_cast<size_t>(n_vocab)), lb(la.size());
    for (int step = 0; step < 24; ++step) {
      const int32_t t[1] = {next};
      QVERIFY(copied->eval(t, LogitsMode::Last, la).ok());
      QVERIFY(mapped->eval(t, LogitsMode::Last, lb).ok());
      QVERIFY2(std::memcmp(la.data(), lb.data(), la.size() * sizeof(float)) == 0, std::to_string(step).c_str());
      QVERIFY(mapped->mapped_resident_bytes() <= kCap);
      next = argmax(la.data(), n_vocab);
    }
    QVERIFY(mapped->paged_in_bytes() > after_question);
    // What the file's mapping really holds is what the marks count, give or take the header, the summaries' partial
    // first page and the records the last steps brought in since the last sweep (measured: 72 KiB over, where the
    // large folios of this just-written file left 2.5 MiB mapped before the sweep): neither the kernel's
    // fault-around nor those folios leave more of it mapped.
    const uint64_t in_memory = mappedBytesOf(std::filesystem::canonical(m_file).string());
    QVERIFY2(in_memory <= mapped->mapped_resident_bytes() + (128 << 10),
             qPrintable(QStringLiteral("%1 bytes of the page file mapped, %2 marked resident")
                            .arg(in_memory)
                            .arg(mapped->mapped_resident_bytes())));
    // The steps' counters carry the reads from the file apart from the host recalls.
    QVERIFY(mapped->stats().bytes_from_file > 0);
    QCOMPARE(copied->stats().bytes_from_file, uint64_t{0});
    // Only the decode steps' reads: not the question's, which are its prefill's.
    QVERIFY2(mapped->stats().bytes_from_file <= mapped->paged_in_bytes() - after_question,
             std::to_string(mapped->stats().bytes_from_file).c_str());
    // The time decode threads waited for those reads is counted (the question's dense pass faulted every page in).
    QVERIFY(mapped->file_wait_s() > 0);
    QCOMPARE(copied->file_wait_s(), 0.0);
    qInfo("file %.1f MiB, cap %.0f KiB: %.1f MiB paged in over a question and 24 steps",
          double(std::filesystem::file_size(m_file)) / (1 << 20), double(kCap) / 1024,
          double(mapped->paged_in_bytes()) / (1 << 20));
  }

  // Reads inside a BackgroundReads scope (the speculative recall's thread) are not counted as waits of a step, and
  // a prefetch only starts reads: it marks nothing resident and changes no logits.
  void backgroundReadsAndPrefetchAreNotWaits() {
    const std::unique_ptr<fkv::Context> copied = context(0);
    const std::unique_ptr<fkv::Context> mapped = context(kCap);
    QVERIFY(copied->load_kv(*open(m_file), meta()).ok());
    QVERIFY(mapped->map_kv(open(m_file), meta()).ok());
    const fkv::KvCache& cache = mapped->kv_cache();
    std::vector<int32_t> pages(static_cast<size_t>(cache.n_pages()));
    std::iota(pages.begin(), pages.end(), 0);
    cache.prefetch(1, pages.data(), static_cast<int>(pages.size()));
    QCOMPARE(mapped->mapped_resident_bytes(), uint64_t{0});
    QCOMPARE(mapped->paged_in_bytes(), uint64_t{0});
    {
      const fkv::KvCache::BackgroundReads background;
      for (int p = 0; p < 8; ++p) (void)cache.k_block(2, p, 0);
    }
    QVERIFY(cache.file_background_s() > 0);
    QCOMPARE(cache.file_wait_s(), 0.0);
    (void)cache.k_block(2, 9, 0);  // outside the scope: the step would have waited
    QVERIFY(cache.file_wait_s() > 0);
    QCOMPARE(std::memcmp(cache.k_block(1, 3, 1), copied->kv_cache().k_block(1, 3, 1),
                         cache.geometry().head_block_bytes()), 0);
  }

  void aDamagedRecordFailsTheStepThatReadsIt() {
    const std::string damaged = (fkvtest::tempDir() + QStringLiteral("/damaged.fkvpages")).toStdString();
    std::filesystem::copy_file(m_file, damaged, std::filesystem::copy_options::overwrite_existing);
    {
      auto f = fkv::PageFileReader::open(damaged);
      QVERIFY(f.ok());
      const uint64_t at = f->layout().record_offset(f->info().n_pages() + 5);  // layer 1, page 5
      std::fstream io(damaged, std::ios::in | std::ios::out | std::ios::binary);
      io.seekp(static_cast<std::streamoff>(at + 100));
      io.put('\x5a');
    }
    const std::unique_ptr<fkv::Context> ctx = context(kCap);
    QVERIFY(ctx->map_kv(open(damaged), meta()).ok());  // records are checked when read, not at open
    const auto question = randomTokens(40, m_model->config().n_vocab, 2);
    std::vector<float> logits(static_cast<size_t>(m_model->config().n_vocab));
    const fkv::Status s = ctx->eval(question, LogitsMode::Last, logits);
    QVERIFY(!s.ok());
    QVERIFY2(s.message().find("page 5 of layer 1 is damaged") != std::string::npos, s.message().c_str());
    QCOMPARE(ctx->n_past(), m_tokens);  // the question's tokens were dropped
    QVERIFY(!ctx->kv_damage().empty());
    ctx->reset();
    QVERIFY(ctx->kv_damage().empty());
  }
};

QTEST_GUILESS_MAIN(TestDiskTier)
#include "test_disk_tier.moc"
