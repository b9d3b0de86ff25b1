// The paged KV cache (kv/kv_cache.h) and the attention policies (kv/policy.h): geometry validation, write then read
// back of every (layer, position, head) at its page slot, page lengths, byte accounting, the HND block layout by
// pointer arithmetic, and FullPolicy's CSR selection.
#include <QTest>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/quant.h"
#include "kv/kv_cache.h"
#include "kv/policy.h"
#include "support/policy_helpers.h"

using fkv::DType;
using fkv::KvCache;
using fkv::KvGeometry;
namespace cpu = fkv::cpu;

Q_DECLARE_METATYPE(DType)

using fkvtest::read_elem;

namespace {

KvGeometry geometry(int n_layers, int n_kv_heads, int head_dim, int page_size, DType t) {
  KvGeometry g;
  g.n_layers = n_layers;
  g.n_kv_heads = n_kv_heads;
  g.head_dim = head_dim;
  g.page_size = page_size;
  g.dtype = t;
  return g;
}

// A value unique to (layer, position, head, channel, K or V), with a fractional part that F16 and BF16 must round.
float value_at(int l, int pos, int h, int c, int kv) {
  return (kv ? -1.f : 1.f) * (0.37f * static_cast<float>(l + 1) + 0.011f * static_cast<float>(pos) +
                              0.173f * static_cast<float>(h) + 0.0007f * static_cast<float>(c) + 0.1f);
}

// Keys or values of tokens pos..pos+n-1 of layer l: (n, n_kv_heads, head_dim).
std::vector<float> tokens(const KvGeometry& g, int l, int pos, int n, int kv) {
  std::vector<float> x(static_cast<size_t>(n) * g.n_kv_heads * g.head_dim);
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < g.n_kv_heads; ++h)
      for (int c = 0; c < g.head_dim; ++c)
        x[(static_cast<size_t>(i) * g.n_kv_heads + h) * g.head_dim + c] = value_at(l, pos + i, h, c, kv);
  return x;
}

// Half an ulp of the type at x: F32 must be exact, F16 keeps 11 significant bits, BF16 8.
double rounding(DType t, float x) {
  if (t == DType::F32) return 0.0;
  return std::abs(x) * (t == DType::F16 ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8));
}

}  // namespace

class TestKvCache : public QObject {
  Q_OBJECT

 private slots:
  void geometryValidation_data() {
    QTest::addColumn<int>("n_layers");
    QTest::addColumn<int>("n_kv_heads");
    QTest::addColumn<int>("head_dim");
    QTest::addColumn<int>("page_size");
    QTest::addColumn<DType>("dtype");
    QTest::addColumn<QString>("needle");  // part of the message; empty when valid
    QTest::addRow("valid") << 2 << 2 << 64 << 32 << DType::F16 << "";
    QTest::addRow("valid page 1") << 1 << 1 << 2 << 1 << DType::F32 << "";
    QTest::addRow("valid page 4096") << 1 << 1 << 2 << 4096 << DType::BF16 << "";
    QTest::addRow("no layers") << 0 << 2 << 64 << 32 << DType::F16 << "positive";
    QTest::addRow("no heads") << 2 << 0 << 64 << 32 << DType::F16 << "positive";
    QTest::addRow("negative head dim") << 2 << 2 << -64 << 32 << DType::F16 << "-64";
    QTest::addRow("page 0") << 2 << 2 << 64 << 0 << DType::F16 << "found 0";
    QTest::addRow("page 4097") << 2 << 2 << 64 << 4097 << DType::F16 << "found 4097";
    QTest::addRow("Q8_0 cache") << 2 << 2 << 64 << 32 << DType::Q8_0 << "Q8_0";
  }
  void geometryValidation() {
    QFETCH(int, n_layers);
    QFETCH(int, n_kv_heads);
    QFETCH(int, head_dim);
    QFETCH(int, page_size);
    QFETCH(DType, dtype);
    QFETCH(QString, needle);
    const KvGeometry g = geometry(n_layers, n_kv_heads, head_dim, page_size, dtype);
    const fkv::Status s = g.validate();
    auto c = KvCache::create(g, 100);
    if (needle.isEmpty()) {
      QVERIFY2(s.ok(), qPrintable("a valid geometry was rejected: " + QString::fromStdString(s.message())));
      QVERIFY2(c.ok(), qPrintable("create failed on a valid geometry: " + QString::fromStdString(c.message())));
      return;
    }
    const QString msg = QString::fromStdString(s.message());
    QVERIFY2(!s.ok(), "an invalid geometry was accepted");
    QVERIFY2(msg.contains(needle), qPrintable(QString("message '%1' does not mention '%2'").arg(msg, needle)));
    QVERIFY2(!c.ok() && c.message() == s.message(), "create must fail with validate()'s message");
  }

  void contextSizeValidation() {
    for (int n_ctx : {0, -5}) {
      auto c = KvCache::create(geometry(1, 1, 8, 4, DType::F16), n_ctx);
      QVERIFY2(!c.ok(), qPrintable(QString("n_ctx %1 was accepted").arg(n_ctx)));
      QVERIFY2(QString::fromStdString(c.message()).contains(QString::number(n_ctx)),
               qPrintable("message does not name the size: " + QString::fromStdString(c.message())));
    }
  }

  void writeThenReadBack_data() {
    QTest::addColumn<DType>("dtype");
    QTest::addRow("F32") << DType::F32;
    QTest::addRow("F16") << DType::F16;
    QTest::addRow("BF16") << DType::BF16;
  }
  void writeThenReadBack() {
    QFETCH(DType, dtype);
    const KvGeometry g = geometry(3, 3, 12, 4, dtype);
    const int n_ctx = 23;  // 6 pages, the last one partial
    auto made = KvCache::create(g, n_ctx);
    QVERIFY2(made.ok(), made.message().c_str());
    KvCache cache = std::move(made).value();  // moved out of the Result: storage must follow
    QCOMPARE(cache.capacity_tokens(), 24);
    // Chunks of different sizes that start and end mid-page, as prefill and decode do; layers written in turn.
    const int chunks[] = {1, 3, 6, 2, 1, 9, 1};
    int pos = 0;
    for (int n : chunks) {
      for (int l = 0; l < g.n_layers; ++l) {
        const std::vector<float> k = tokens(g, l, pos, n, 0), v = tokens(g, l, pos, n, 1);
        cache.write(l, pos, n, k.data(), v.data());
      }
      pos += n;
      cache.set_n_tokens(pos);
    }
    QCOMPARE(pos, n_ctx);
    const size_t row = static_cast<size_t>(g.head_dim) * g.elem_bytes();
    for (int l = 0; l < g.n_layers; ++l) {
      for (int p = 0; p < n_ctx; ++p) {
        for (int h = 0; h < g.n_kv_heads; ++h) {
          const int page = p / g.page_size, slot = p % g.page_size;
          for (int kv = 0; kv < 2; ++kv) {
            const uint8_t* base = (kv ? cache.v_block(l, page, h) : cache.k_block(l, page, h)) + slot * row;
            for (int c = 0; c < g.head_dim; ++c) {
              const float want = value_at(l, p, h, c, kv);
              const float got = read_elem(dtype, base + c * g.elem_bytes());
              QVERIFY2(std::abs(got - want) <= rounding(dtype, want),
                       qPrintable(QString("%1 layer %2 pos %3 head %4 ch %5: got %6, want %7")
                                      .arg(kv ? "V" : "K")
                                      .arg(l)
                                      .arg(p)
                                      .arg(h)
                                      .arg(c)
                                      .arg(got)
                                      .arg(want)));
            }
          }
        }
      }
    }
  }

  void pageLengthsAndBytes() {
    const KvGeometry g = geometry(2, 3, 8, 4, DType::F16);
    auto made = KvCache::create(g, 10);
    QVERIFY2(made.ok(), made.message().c_str());
    KvCache& c = made.value();
    QCOMPARE(c.capacity_tokens(), 12);
    QCOMPARE(g.head_block_bytes(), size_t{4 * 8 * 2});
    QCOMPARE(g.page_bytes(), size_t{2 * 3 * 4 * 8 * 2});           // K and V, 3 heads, (4, 8) F16 each
    QCOMPARE(c.reserved_bytes(), size_t{3} * g.page_bytes() * 2);  // 3 pages, 2 layers
    QVERIFY2(c.n_pages() == 0 && c.used_bytes() == 0, "an empty cache holds no pages");

    c.set_n_tokens(10);
    QCOMPARE(c.n_pages(), 3);
    QVERIFY2(c.page_len(0) == 4 && c.page_len(1) == 4 && c.page_len(2) == 2,
             qPrintable(QString("10 tokens in pages of 4: lengths %1 %2 %3, expected 4 4 2")
                            .arg(c.page_len(0))
                            .arg(c.page_len(1))
                            .arg(c.page_len(2))));
    QCOMPARE(c.used_bytes(), size_t{3} * g.page_bytes() * 2);

    c.set_n_tokens(8);
    QVERIFY2(c.n_pages() == 2 && c.page_len(1) == 4, "8 tokens fill exactly 2 pages of 4");
    QCOMPARE(c.used_bytes(), size_t{2} * g.page_bytes() * 2);
    c.set_n_tokens(1);
    QVERIFY2(c.n_pages() == 1 && c.page_len(0) == 1, "1 token: one page of length 1");
  }

  // HND: within a layer's page, head h's keys are one (page_size, head_dim) block, the heads' K blocks follow each
  // other, then the V blocks; pages follow each other, then layers.
  void hndLayoutByPointerArithmetic_data() { writeThenReadBack_data(); }
  void hndLayoutByPointerArithmetic() {
    QFETCH(DType, dtype);
    const KvGeometry g = geometry(2, 4, 16, 8, dtype);
    auto made = KvCache::create(g, 40);  // 5 pages
    QVERIFY2(made.ok(), made.message().c_str());
    const KvCache& c = made.value();
    const auto head = static_cast<ptrdiff_t>(g.page_size * g.head_dim * g.elem_bytes());
    QCOMPARE(static_cast<ptrdiff_t>(g.head_block_bytes()), head);
    const auto page = static_cast<ptrdiff_t>(g.page_bytes());
    for (int l = 0; l < 2; ++l) {
      for (int p = 0; p < 5; ++p) {
        const uint8_t* k0 = c.k_block(l, p, 0);
        for (int h = 0; h < g.n_kv_heads; ++h) {
          QVERIFY2(c.k_block(l, p, h) - k0 == h * head,
                   qPrintable(QString("layer %1 page %2: K block of head %3 is %4 bytes from head 0, expected %5")
                                  .arg(l)
                                  .arg(p)
                                  .arg(h)
                                  .arg(c.k_block(l, p, h) - k0)
                                  .arg(h * head)));
          QVERIFY2(c.v_block(l, p, h) - c.k_block(l, p, h) == g.n_kv_heads * head,
                   qPrintable(QString("layer %1 page %2 head %3: V block is %4 bytes after K, expected %5")
                                  .arg(l)
                                  .arg(p)
                                  .arg(h)
                                  .arg(c.v_block(l, p, h) - c.k_block(l, p, h))
                                  .arg(g.n_kv_heads * head)));
        }
        QVERIFY2(
            c.k_block(l, p, 0) - c.k_block(0, 0, 0) == (l * 5 + p) * page,
            qPrintable(QString("page %1 of layer %2 is not at (layer * pages + page) * page_bytes").arg(p).arg(l)));
      }
    }
  }

  void fullPolicySelectsEveryPage() {
    auto cache = fkv::KvCache::create(fkv::KvGeometry{1, 8, 4, 4, fkv::DType::F16}, 20 * 4);
    QVERIFY2(cache.ok(), cache.message().c_str());
    fkv::PolicyContext pc;
    pc.cache = &*cache;
    auto made = fkv::make_policy(fkv::Policy::full, pc);
    QVERIFY2(made.ok(), made.message().c_str());
    fkv::AttentionPolicy& pol = **made;
    QVERIFY(pol.kind() == fkv::Policy::full);
    fkv::PageSelection sel;
    // A large selection first, so later ones must shrink what is already there.
    const int cases[][3] = {{8, 0, 20}, {3, 2, 5}, {1, 0, 1}, {4, 3, 3}, {2, 0, 0}};
    for (const auto& cs : cases) {
      const int n_heads = cs[0], first = cs[1], n_pages = cs[2];
      fkv::SelectionQuery q;
      q.n_kv_heads = n_heads;
      q.first_page = first;
      q.n_pages = n_pages;
      fkv::SelectCounters counters;
      pol.select(q, sel, counters);
      QCOMPARE(sel.k_blocks.size(), sel.indices.size());
      for (size_t i = 0; i < sel.indices.size(); ++i)
        QVERIFY(sel.k_blocks[i] == cache->k_block(0, sel.indices[i], static_cast<int>(i) / std::max(1, n_pages - first)));
      const QString where = QString("heads %1, pages [%2, %3)").arg(n_heads).arg(first).arg(n_pages);
      QVERIFY2(sel.indptr.size() == static_cast<size_t>(n_heads) + 1,
               qPrintable(where + QString(": indptr has %1 entries").arg(sel.indptr.size())));
      const int per = n_pages - first;
      QVERIFY2(sel.indices.size() == static_cast<size_t>(n_heads * per),
               qPrintable(where + QString(": %1 indices, expected %2").arg(sel.indices.size()).arg(n_heads * per)));
      for (int h = 0; h <= n_heads; ++h)
        QVERIFY2(sel.indptr[static_cast<size_t>(h)] == h * per,
                 qPrintable(where + QString(": indptr[%1] wrong").arg(h)));
      for (int h = 0; h < n_heads; ++h)
        for (int i = 0; i < per; ++i)
          QVERIFY2(sel.indices[static_cast<size_t>(h * per + i)] == first + i,
                   qPrintable(where + QString(": head %1 entry %2 is %3, expected %4")
                                          .arg(h)
                                          .arg(i)
                                          .arg(sel.indices[static_cast<size_t>(h * per + i)])
                                          .arg(first + i)));
    }
  }

  void unknownPolicyNamesTheKnownOnes() {
    auto p = fkv::parse_policy("nope");
    QVERIFY2(!p.ok(), "parse_policy(\"nope\") succeeded");
    const QString msg = QString::fromStdString(p.message());
    QVERIFY2(msg.contains("nope") && msg.contains("full"), qPrintable("message should name 'nope' and 'full': " + msg));
  }
};

QTEST_APPLESS_MAIN(TestKvCache)
#include "test_kv_cache.moc"
