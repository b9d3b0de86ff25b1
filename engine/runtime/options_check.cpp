// The option structs' validate(): the one place their ranges are checked, called by the engine before it uses them
// and by the CLI and the desktop before they send them, so all three refuse the same settings with the same words.
#include "core/option_ranges.h"
#include "fkv/types.h"
#include "kv/budget.h"
#include "kv/policy.h"

namespace fkv {

Status RetrievalOptions::validate(int page_size) const {
  FKV_TRY(check_correction_tau(correction_tau));
  Budget b;
  b.sink_tokens = sink_tokens;
  b.recent_tokens = recent_tokens;
  b.retrieved_tokens = retrieved_tokens;
  b.page_size = page_size;
  return b.validate();
}

Status ModelOptions::validate() const {
  if (n_ctx < 0 || n_ctx > (1 << 24))
    return err("context size must be 0 (automatic) or 1..16777216 tokens, found ", n_ctx);
  FKV_TRY(check_threads(n_threads));
  FKV_TRY(check_page_size(page_size));
  FKV_TRY(check_device(device));
  if (host_kv_mib < 0 || host_kv_mib > (1 << 24))
    return err("host KV memory must be 0 (automatic) or 1..16777216 MiB, found ", host_kv_mib);
  return retrieval.validate(page_size);
}

}  // namespace fkv
