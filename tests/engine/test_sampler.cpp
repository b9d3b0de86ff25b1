// Sampler: greedy is argmax (lowest id on ties, NaN skipped), a seed fixes the draws, top-k/top-p/min-p keep exactly
// what they should (frequency checks with fixed seeds, so they cannot flake), the repetition penalty moves the
// choice, bad parameters are rejected by name, and sample() never allocates.
#include <QtTest>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>
#include <vector>

#include "runtime/sampler.h"

using fkv::Sampler;
using fkv::SamplerParams;

// Counts heap allocations made while `g_counting` is set; replacing the global operator new is the only way to see
// allocations inside the standard library calls sample() makes.
namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Deterministic pseudo-random logits without <random>'s distributions (their output differs between libraries).
std::vector<float> random_logits(int n, uint32_t seed) {
  std::vector<float> v(n);
  for (float& x : v) {
    seed = seed * 1664525u + 1013904223u;
    x = static_cast<float>(seed >> 8) / static_cast<float>(1u << 24) * 10.f - 5.f;
  }
  return v;
}

SamplerParams sampling(float temperature) {
  SamplerParams p;
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1.f;
  p.min_p = 0.f;
  p.seed = 1234;
  return p;
}

// Logits whose softmax (temperature 1) is exactly `probs`.
std::vector<float> logits_for(const std::vector<float>& probs) {
  std::vector<float> l;
  for (const float p : probs) l.push_back(std::log(p));
  return l;
}

std::vector<int> histogram(Sampler& s, const std::vector<float>& logits, int n_draws) {
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < n_draws; ++i) {
    const int32_t id = s.sample(logits);
    if (id < 0) return {};
    ++counts[id];
  }
  return counts;
}

}  // namespace

class TestSampler : public QObject {
  Q_OBJECT

 private slots:
  void greedyIsArgmax() {
    Sampler s(SamplerParams{}, 1000);
    QVERIFY(s.status().ok());
    for (uint32_t seed = 1; seed <= 20; ++seed) {
      const std::vector<float> l = random_logits(1000, seed);
      const auto expected = static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
      QCOMPARE(s.sample(l), expected);
    }
  }

  void greedyTiesAndNaN() {
    Sampler s(SamplerParams{}, 6);
    QCOMPARE(s.sample(std::vector<float>{0.f, 3.f, 1.f, 3.f, 2.f, 3.f}), 1);  // lowest id among equal maxima
    QCOMPARE(s.sample(std::vector<float>{kNaN, 1.f, kNaN, 2.f, kNaN, 0.f}), 3);
    QCOMPARE(s.sample(std::vector<float>{-INFINITY, -INFINITY, -5.f, kNaN, -INFINITY, -6.f}), 2);
    QVERIFY(s.status().ok());
    QCOMPARE(s.sample(std::vector<float>(6, kNaN)), -1);
    QVERIFY(QString::fromStdString(s.status().message()).contains("every logit is NaN"));
  }

  void samplingNeverPicksNaN() {
    Sampler s(sampling(1.f), 4);
    const std::vector<float> l = {kNaN, 0.f, kNaN, 0.1f};
    const std::vector<int> h = histogram(s, l, 2000);
    QCOMPARE(h.size(), size_t(4));
    QCOMPARE(h[0] + h[2], 0);
    QVERIFY(h[1] > 800 && h[3] > 800);
  }

  void seedFixesTheDraws() {
    const std::vector<float> l = random_logits(500, 7);
    Sampler a(sampling(0.9f), 500), b(sampling(0.9f), 500);
    SamplerParams other = sampling(0.9f);
    other.seed = 99;
    Sampler c(other, 500);
    std::vector<int32_t> seq_a, seq_b, seq_c;
    for (int i = 0; i < 200; ++i) {
      seq_a.push_back(a.sample(l));
      seq_b.push_back(b.sample(l));
      seq_c.push_back(c.sample(l));
    }
    QCOMPARE(seq_a, seq_b);
    QVERIFY(seq_a != seq_c);
    a.reset();
    std::vector<int32_t> again;
    for (int i = 0; i < 200; ++i) again.push_back(a.sample(l));
    QCOMPARE(again, seq_a);
  }

  void topK1EqualsGreedy() {
    SamplerParams p = sampling(1.5f);
    p.top_k = 1;
    Sampler s(p, 300);
    for (uint32_t seed = 1; seed <= 50; ++seed) {
      const std::vector<float> l = random_logits(300, seed);
      QCOMPARE(s.sample(l), static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin()));
    }
  }

  void topKKeepsTheKBest() {
    SamplerParams p = sampling(1.f);
    p.top_k = 2;
    Sampler s(p, 4);
    const std::vector<int> h = histogram(s, logits_for({0.2f, 0.4f, 0.1f, 0.3f}), 4000);
    QCOMPARE(h[0] + h[2], 0);
    QVERIFY(std::abs(h[1] / 4000.0 - 4.0 / 7.0) < 0.03);
  }

  void softmaxWithTemperatureMatches() {
    const std::vector<float> l = {1.f, 0.f, -1.f, 0.5f};
    const float t = 2.f;
    Sampler s(sampling(t), 4);
    const int n = 20000;
    const std::vector<int> h = histogram(s, l, n);
    double z = 0;
    for (const float x : l) z += std::exp(x / t);
    for (size_t i = 0; i < l.size(); ++i) {
      const double expected = std::exp(l[i] / t) / z;
      QVERIFY2(std::abs(h[i] / double(n) - expected) < 0.015, qPrintable(QString("token %1").arg(i)));
    }
  }

  void topPKeepsTheSmallestSufficientSet() {
    const std::vector<float> l = logits_for({0.5f, 0.3f, 0.15f, 0.05f});
    SamplerParams p = sampling(1.f);
    p.top_p = 0.75f;  // 0.5 < 0.75 <= 0.8: tokens 0 and 1
    Sampler s(p, 4);
    std::vector<int> h = histogram(s, l, 4000);
    QCOMPARE(h[2] + h[3], 0);
    QVERIFY(std::abs(h[0] / 4000.0 - 0.5 / 0.8) < 0.03);
    p.top_p = 0.45f;  // the best token alone reaches it
    Sampler only_best(p, 4);
    h = histogram(only_best, l, 500);
    QCOMPARE(h[0], 500);
  }

  void minPDropsUnlikelyTokens() {
    const std::vector<float> l = logits_for({0.5f, 0.3f, 0.15f, 0.05f});
    SamplerParams p = sampling(1.f);
    p.min_p = 0.25f;  // threshold 0.125: token 3 (0.05) goes
    Sampler s(p, 4);
    std::vector<int> h = histogram(s, l, 4000);
    QCOMPARE(h[3], 0);
    QVERIFY(h[2] > 400);
    p.min_p = 0.7f;  // threshold 0.35: only the best stays
    Sampler strict(p, 4);
    h = histogram(strict, l, 500);
    QCOMPARE(h[0], 500);
  }

  void repetitionPenaltyMovesTheChoice() {
    SamplerParams p;
    p.repeat_penalty = 1.2f;
    p.repeat_last_n = 2;
    Sampler s(p, 8);
    const std::vector<float> positive = {2.0f, 1.9f, -1.f, -1.f, -1.f, -1.f, -1.f, -1.f};
    QCOMPARE(s.sample(positive), 0);
    s.accept(0);
    QCOMPARE(s.sample(positive), 1);  // 2.0 / 1.2 < 1.9
    s.accept(0);                      // a repeat in the window is penalized once: 1.667 still beats 1.6
    QCOMPARE(s.sample(std::vector<float>{2.0f, 1.6f, 0, 0, 0, 0, 0, 0}), 0);
    s.accept(5);
    s.accept(6);  // token 0 has left the 2-token window
    QCOMPARE(s.sample(positive), 0);
    s.reset();
    const std::vector<float> negative = {-1.0f, -1.1f, -9.f, -9.f, -9.f, -9.f, -9.f, -9.f};
    s.accept(0);
    QCOMPARE(s.sample(negative), 1);  // -1.0 * 1.2 < -1.1
    s.reset();
    QCOMPARE(s.sample(negative), 0);
  }

  void invalidParamsAreRejectedByName() {
    struct Bad {
      void (*set)(SamplerParams&);
      const char* expected;
    };
    const Bad cases[] = {
        {[](SamplerParams& p) { p.temperature = -0.5f; }, "temperature is -0.5"},
        {[](SamplerParams& p) { p.temperature = kNaN; }, "temperature is nan"},
        {[](SamplerParams& p) { p.top_k = -1; }, "top_k is -1"},
        {[](SamplerParams& p) { p.top_p = 0.f; }, "top_p is 0, expected a value in (0, 1]"},
        {[](SamplerParams& p) { p.top_p = 1.5f; }, "top_p is 1.5"},
        {[](SamplerParams& p) { p.min_p = -0.1f; }, "min_p is -0.1"},
        {[](SamplerParams& p) { p.min_p = 2.f; }, "min_p is 2"},
        {[](SamplerParams& p) { p.repeat_penalty = 0.f; }, "repeat_penalty is 0"},
        {[](SamplerParams& p) { p.repeat_last_n = -1; }, "repeat_last_n is -1"},
        {[](SamplerParams& p) { p.repeat_last_n = 1 << 30; }, "repeat_last_n is 1073741824"},
    };
    QVERIFY(SamplerParams{}.validate().ok());
    for (const Bad& c : cases) {
      SamplerParams p;
      c.set(p);
      const fkv::Status st = p.validate();
      QVERIFY2(!st.ok() && QString::fromStdString(st.message()).contains(c.expected),
               qPrintable(QString::fromStdString(st.message()) + " / expected " + c.expected));
      Sampler s(p, 10);  // a sampler built from them refuses to sample instead of misbehaving
      QVERIFY(!s.status().ok());
      QCOMPARE(s.sample(std::vector<float>(10, 0.f)), -1);
    }
    Sampler no_vocab(SamplerParams{}, 0);
    QVERIFY(!no_vocab.status().ok());
    Sampler s(SamplerParams{}, 10);
    QCOMPARE(s.sample(std::vector<float>(9, 0.f)), -1);
    QVERIFY(QString::fromStdString(s.status().message()).contains("got 9 logits, expected 10"));
  }

  void sampleNeverAllocates() {
    SamplerParams p;
    p.temperature = 0.8f;
    p.repeat_penalty = 1.1f;
    Sampler s(p, 4096);
    SamplerParams greedy_params;
    greedy_params.repeat_penalty = 1.3f;
    Sampler greedy(greedy_params, 4096);
    const std::vector<float> l = random_logits(4096, 3);
    g_allocations = 0;
    g_counting = true;
    for (int i = 0; i < 50; ++i) {
      s.accept(s.sample(l));
      greedy.accept(greedy.sample(l));
    }
    g_counting = false;
    QCOMPARE(g_allocations.load(), 0L);
    QVERIFY(s.status().ok() && greedy.status().ok());
  }
};

QTEST_APPLESS_MAIN(TestSampler)
#include "test_sampler.moc"
