#include "kv/budget.h"

#include "core/option_ranges.h"

namespace fkv {

namespace {
constexpr int kMaxBudgetTokens = 1 << 24;
}  // namespace

Status Budget::validate() const {
  FKV_TRY(check_page_size(page_size));
  const struct {
    const char* name;
    int tokens;
  } parts[] = {{"sink", sink_tokens}, {"recent window", recent_tokens}, {"retrieved", retrieved_tokens}};
  for (const auto& p : parts) {
    if (p.tokens < 0) return err("budget: ", p.name, " tokens must be >= 0, found ", p.tokens);
    // The context holds at most 2^24 tokens; the bound also keeps total_tokens() from overflowing.
    if (p.tokens > kMaxBudgetTokens)
      return err("budget: ", p.name, " tokens must be <= ", kMaxBudgetTokens, ", found ", p.tokens);
    if (p.tokens % page_size != 0)
      return err("budget: ", p.name, " tokens (", p.tokens, ") must be a multiple of the page size (", page_size, ")");
  }
  if (recent_tokens < page_size)
    return err("budget: the recent window must hold at least one page (", page_size, " tokens), found ", recent_tokens);
  return {};
}

}  // namespace fkv
