#include "kv/policy.h"

#include "kv/policies_impl.h"

namespace fkv {

Status check_correction_tau(float tau) {
  if (!(tau >= kMinCorrectionTau && tau <= kMaxCorrectionTau))
    return err("correction threshold tau must be a cosine in [", kMinCorrectionTau, ", ", kMaxCorrectionTau,
               "], found ", tau);
  return {};
}

Result<std::unique_ptr<AttentionPolicy>> make_policy(Policy policy, const PolicyContext& ctx) {
  if (policy != Policy::full) {
    FKV_TRY(ctx.budget.validate());
    FKV_TRY(check_correction_tau(ctx.tau));
  }
  switch (policy) {
    case Policy::full:
      return std::unique_ptr<AttentionPolicy>(new FullPolicy(ctx));
    case Policy::streaming:
      return std::unique_ptr<AttentionPolicy>(new StreamingPolicy(ctx));
    case Policy::quest:
      return std::unique_ptr<AttentionPolicy>(new QuestPolicy(ctx));
    case Policy::arkvale: {
      auto a = std::make_unique<ArkvalePolicy>(ctx);
      FKV_TRY(a->init());
      return std::unique_ptr<AttentionPolicy>(std::move(a));
    }
    case Policy::freekv: {
      auto f = std::make_unique<FreeKvPolicy>(ctx);
      FKV_TRY(f->init());
      return std::unique_ptr<AttentionPolicy>(std::move(f));
    }
  }
  return err("unknown attention policy ", static_cast<int>(policy));
}

}  // namespace fkv
