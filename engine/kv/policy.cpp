#include "kv/policy.h"

#include "kv/policies_impl.h"

namespace fkv {

const char* policy_names() { return "full, streaming, quest, arkvale, freekv"; }

Result<std::unique_ptr<AttentionPolicy>> make_policy(std::string_view name, const PolicyContext& ctx) {
  if (name == "full") return std::unique_ptr<AttentionPolicy>(new FullPolicy(ctx));
  if (name != "streaming" && name != "quest" && name != "arkvale" && name != "freekv")
    return err("unknown attention policy '", name, "' (available: ", policy_names(), ")");
  FKV_TRY(ctx.budget.validate());
  if (!(ctx.tau >= -1.f && ctx.tau <= 1.f))
    return err("correction threshold tau must be a cosine in [-1, 1], found ", ctx.tau);
  if (name == "streaming") return std::unique_ptr<AttentionPolicy>(new StreamingPolicy(ctx));
  if (name == "quest") return std::unique_ptr<AttentionPolicy>(new QuestPolicy(ctx));
  std::unique_ptr<AttentionPolicy> p;
  if (name == "arkvale") {
    auto a = std::make_unique<ArkvalePolicy>(ctx);
    FKV_TRY(a->init());
    p = std::move(a);
  } else {
    auto f = std::make_unique<FreeKvPolicy>(ctx);
    FKV_TRY(f->init());
    p = std::move(f);
  }
  return p;
}

}  // namespace fkv
