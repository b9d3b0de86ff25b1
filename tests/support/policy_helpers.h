// Small helpers of the policy suites (test_policies.cpp, test_policy_direct.cpp).
#pragma once

#include <QString>
#include <QStringList>

#include <cstdint>
#include <vector>

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

// "[3,5,8]": page ids for failure messages.
inline QString list(const std::vector<int32_t>& v) {
  QStringList s;
  for (int32_t x : v) s << QString::number(x);
  return "[" + s.join(",") + "]";
}

}  // namespace fkvtest
