// Shared by the recall suites (test_recall_chunks on the CPU reference, test_cuda_kv on the device): what a recall
// into an NHD pool must leave behind.
#pragma once

#include <QString>
#include <QTest>

#include <cstdint>
#include <cstring>
#include <vector>

#include "kv/kv_cache.h"
#include "kv/working_set.h"

namespace fkvtest {

// Every resident (head, slot) of layer l of the working set has the same F16 rows in the NHD pools
// (n_slots, page_size, n_kv_heads, head_dim); slots that hold no page keep the pools' fill bytes (0xAB in K, 0xCD in
// V). A failure is a test failure: callers check QTest::currentTestFailed() after it.
inline void verify_pool(const fkv::KvGeometry& g, const fkv::WorkingSet& ws, int l, int n_slots,
                        const std::vector<uint8_t>& k_pool, const std::vector<uint8_t>& v_pool) {
  const size_t row = static_cast<size_t>(g.head_dim) * 2;
  for (int h = 0; h < g.n_kv_heads; ++h)
    for (int s = 0; s < n_slots; ++s)
      for (int t = 0; t < g.page_size; ++t) {
        const size_t off = ((static_cast<size_t>(s) * g.page_size + t) * g.n_kv_heads + h) * row;
        if (ws.page_in_slot(l, h, s) < 0) {
          QCOMPARE(k_pool[off], uint8_t{0xAB});
          QCOMPARE(v_pool[off], uint8_t{0xCD});
          continue;
        }
        QVERIFY2(std::memcmp(&k_pool[off], ws.k_slot(l, h, s) + t * row, row) == 0,
                 qPrintable(QString("K head %1 slot %2 row %3").arg(h).arg(s).arg(t)));
        QVERIFY2(std::memcmp(&v_pool[off], ws.v_slot(l, h, s) + t * row, row) == 0,
                 qPrintable(QString("V head %1 slot %2 row %3").arg(h).arg(s).arg(t)));
      }
}

}  // namespace fkvtest
