// Recall chunks (kv/recall_chunks.h): the double-buffered schedule cuts a recall list into contiguous chunks that
// alternate between the two staging buffers (wrapping around), zero items give no chunks, a chunk larger than the list
// gives one; bad arguments and out-of-range blocks are errors that name the value found. The host gather and the
// reference NHD scatter put every planned block exactly where WorkingSet::apply puts it (byte compared), for several
// chunk sizes, and leave every other pool byte alone.
#include <QTest>

#include <cstring>
#include <random>
#include <vector>

#include "kv/kv_cache.h"
#include "kv/recall_chunks.h"
#include "kv/working_set.h"
#include "support/recall_checks.h"

using fkv::KvCache;
using fkv::KvGeometry;
using fkv::RecallBlock;
using fkv::RecallChunk;

namespace {

KvGeometry small_geometry() {
  KvGeometry g;
  g.n_layers = 2;
  g.n_kv_heads = 3;
  g.head_dim = 8;
  g.page_size = 4;
  g.dtype = fkv::DType::F16;
  return g;
}

// A cache of n_tok tokens whose K and V elements are random, so equal bytes mean the right block moved.
KvCache random_cache(const KvGeometry& g, int n_tok, uint64_t seed) {
  auto made = KvCache::create(g, n_tok);
  if (!made.ok()) qFatal("%s", made.message().c_str());
  KvCache cache = std::move(*made);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-4.f, 4.f);
  std::vector<float> k(static_cast<size_t>(n_tok) * g.n_kv_heads * g.head_dim);  // (n_tok, n_kv_heads, head_dim)
  std::vector<float> v(k.size());                                                // (n_tok, n_kv_heads, head_dim)
  for (int l = 0; l < g.n_layers; ++l) {
    for (float& x : k) x = u(rng);
    for (float& x : v) x = u(rng);
    cache.write(l, 0, n_tok, k.data(), v.data());
  }
  cache.set_n_tokens(n_tok);
  return cache;
}

}  // namespace

class TestRecallChunks : public QObject {
  Q_OBJECT

 private slots:
  void chunksCoverTheListAndAlternate_data() {
    QTest::addColumn<int>("n_items");
    QTest::addColumn<int>("chunk");
    QTest::newRow("one per chunk") << 5 << 1;
    QTest::newRow("exact multiple") << 9 << 3;
    QTest::newRow("ragged tail, wraps twice") << 10 << 3;
    QTest::newRow("chunk equals list") << 4 << 4;
    QTest::newRow("chunk larger than list") << 3 << 8;
    QTest::newRow("single item") << 1 << 2;
  }
  void chunksCoverTheListAndAlternate() {
    QFETCH(int, n_items);
    QFETCH(int, chunk);
    std::vector<RecallChunk> out;
    QVERIFY(fkv::plan_recall_chunks(n_items, chunk, out).ok());
    QCOMPARE(static_cast<int>(out.size()), (n_items + chunk - 1) / chunk);
    int next = 0;
    for (size_t j = 0; j < out.size(); ++j) {
      QCOMPARE(out[j].first, next);
      QVERIFY(out[j].n >= 1 && out[j].n <= chunk);
      if (j + 1 < out.size()) QCOMPARE(out[j].n, chunk);  // only the last chunk may be short
      QCOMPARE(out[j].buffer, static_cast<int>(j % 2));
      next += out[j].n;
    }
    QCOMPARE(next, n_items);
  }

  void wrapAroundReusesBufferZero() {
    std::vector<RecallChunk> out;
    QVERIFY(fkv::plan_recall_chunks(7, 2, out).ok());
    QCOMPARE(out.size(), size_t{4});
    const int want_first[] = {0, 2, 4, 6};
    const int want_n[] = {2, 2, 2, 1};
    const int want_buffer[] = {0, 1, 0, 1};
    for (int j = 0; j < 4; ++j) {
      QCOMPARE(out[static_cast<size_t>(j)].first, want_first[j]);
      QCOMPARE(out[static_cast<size_t>(j)].n, want_n[j]);
      QCOMPARE(out[static_cast<size_t>(j)].buffer, want_buffer[j]);
    }
  }

  void zeroItemsGiveNoChunks() {
    std::vector<RecallChunk> out(3);  // stale contents must go
    QVERIFY(fkv::plan_recall_chunks(0, 4, out).ok());
    QVERIFY(out.empty());
  }

  void badArgumentsAreErrors() {
    std::vector<RecallChunk> out(2);
    const fkv::Status neg = fkv::plan_recall_chunks(-1, 4, out);
    QVERIFY(!neg.ok());
    QVERIFY2(neg.message().find("found -1") != std::string::npos, neg.message().c_str());
    QVERIFY(out.empty());
    const fkv::Status zero = fkv::plan_recall_chunks(5, 0, out);
    QVERIFY(!zero.ok());
    QVERIFY2(zero.message().find("found 0") != std::string::npos, zero.message().c_str());
  }

  void outOfRangeBlocksAreRejected() {
    const KvGeometry g = small_geometry();
    const KvCache cache = random_cache(g, 5 * g.page_size, 1);
    const RecallBlock good{4, 2, 3};
    QVERIFY(fkv::check_recall_blocks(cache, &good, 1, 4).ok());
    const RecallBlock bad[] = {{5, 0, 0}, {-1, 0, 0}, {0, 3, 0}, {0, 0, 4}, {0, 0, -1}};
    for (const RecallBlock& b : bad) {
      const fkv::Status s = fkv::check_recall_blocks(cache, &b, 1, 4);
      QVERIFY(!s.ok());
      QVERIFY2(s.message().find("found") != std::string::npos, s.message().c_str());
    }
  }

  void stagingLayoutIsAligned() {
    KvGeometry g = small_geometry();
    g.head_dim = 3;  // odd block size: the meta part must still start on a 16-byte boundary
    g.page_size = 1;
    for (int chunk = 1; chunk < 6; ++chunk) {
      QCOMPARE(fkv::recall_meta_offset(g, chunk) % 16, size_t{0});
      QVERIFY(fkv::recall_meta_offset(g, chunk) >= static_cast<size_t>(chunk) * 2 * g.head_block_bytes());
      QCOMPARE(fkv::recall_staging_bytes(g, chunk), fkv::recall_meta_offset(g, chunk) + chunk * 2 * sizeof(int32_t));
    }
  }

  void gatherAndScatterMatchTheWorkingSet_data() {
    QTest::addColumn<int>("chunk");
    QTest::newRow("chunk 1") << 1;
    QTest::newRow("chunk 3") << 3;
    QTest::newRow("chunk larger than the list") << 1000;
  }
  void gatherAndScatterMatchTheWorkingSet() {
    QFETCH(int, chunk);
    const KvGeometry g = small_geometry();
    const int n_pages = 11;
    const int n_slots = 5;
    const KvCache cache = random_cache(g, n_pages * g.page_size - 1, 7);  // the last page is partial
    fkv::WorkingSet ws;
    QVERIFY(ws.init(g, n_slots).ok());
    const size_t pool_bytes = static_cast<size_t>(n_slots) * g.page_size * g.n_kv_heads * g.head_dim * 2;
    std::vector<uint8_t> k_pool(pool_bytes, 0xAB);  // (n_slots, page_size, n_kv_heads, head_dim)
    std::vector<uint8_t> v_pool(pool_bytes, 0xCD);  // (n_slots, page_size, n_kv_heads, head_dim)
    std::mt19937 rng(11);
    const int l = 1;
    // Two rounds: the second reuses resident pages and refills only the freed slots.
    for (int round = 0; round < 2; ++round) {
      std::vector<RecallBlock> blocks;
      for (int h = 0; h < g.n_kv_heads; ++h) {
        std::vector<int32_t> pages;
        for (int p = 0; p < n_pages; ++p)
          if (static_cast<int>(pages.size()) < n_slots && rng() % 2 == 0) pages.push_back(p);
        fkv::RecallPlan plan;
        ws.plan(l, h, pages.data(), static_cast<int>(pages.size()), plan);
        fkv::append_recall_blocks(h, plan, blocks);
        ws.apply(l, h, plan, cache);
      }
      QVERIFY(fkv::check_recall_blocks(cache, blocks.data(), static_cast<int>(blocks.size()), n_slots).ok());
      std::vector<RecallChunk> chunks;
      QVERIFY(fkv::plan_recall_chunks(static_cast<int>(blocks.size()), chunk, chunks).ok());
      std::vector<std::vector<uint8_t>> staging(2, std::vector<uint8_t>(fkv::recall_staging_bytes(g, chunk)));
      uint64_t moved = 0;
      for (const RecallChunk& c : chunks) {
        uint8_t* buf = staging[static_cast<size_t>(c.buffer)].data();
        moved += fkv::gather_recall_chunk(cache, l, blocks.data(), c, chunk, buf);
        fkv::scatter_staged_nhd(g, buf, c.n, chunk, k_pool.data(), v_pool.data());
      }
      QCOMPARE(moved, blocks.size() * 2 * g.head_block_bytes());
      fkvtest::verify_pool(g, ws, l, n_slots, k_pool, v_pool);
      if (QTest::currentTestFailed()) return;
    }
  }
};

QTEST_APPLESS_MAIN(TestRecallChunks)
#include "test_recall_chunks.moc"
