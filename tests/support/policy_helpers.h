// Small helpers of the KV cache and policy suites: budgets, page lists for messages, reading a stored KV element.
#pragma once

#include <QString>
#include <QStringList>

#include <cstdint>
#include <cstring>
#include <vector>

#include "backend/cpu/quant.h"
#include "core/dtype.h"
#include "kv/budget.h"

namespace fkvtest {

inline fkv::Budget make_budget(int sink, int recent, int retrieved, int page_size) {
  fkv::Budget b;
  b.sink_tokens = sink;
  b.recent_tokens = recent;
  b.retrieved_tokens = retrieved;
  b.page_size = page_size;
  return b;
}

// A budget in whole pages of page_size tokens.
inline fkv::Budget budget_in_pages(int page_size, int sink_pages, int recent_pages, int retrieved_pages) {
  return make_budget(sink_pages * page_size, recent_pages * page_size, retrieved_pages * page_size, page_size);
}

// One element of a KV block as stored (F32, F16 or BF16), widened to float.
inline float read_elem(fkv::DType t, const uint8_t* p) {
  if (t == fkv::DType::F32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  return t == fkv::DType::F16 ? fkv::cpu::f16_to_f32(h) : fkv::cpu::bf16_to_f32(h);
}

// "[3,5,8]": page ids for failure messages.
inline QString list(const std::vector<int32_t>& v) {
  QStringList s;
  for (int32_t x : v) s << QString::number(x);
  return "[" + s.join(",") + "]";
}

}  // namespace fkvtest
