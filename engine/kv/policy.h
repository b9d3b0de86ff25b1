// Attention policies decide, for each decode step, layer and KV head, which KV pages the query attends to and where
// attention reads them (host tier, or the working set for policies that recall). A dense prefill attends every page;
// a retrieval prefill selects with quest over its own budget (runtime/context.h).
//   full       every page
//   streaming  sink pages + recent window
//   quest      sink + recent + top-k pages by summary bound with the current query (selection on the critical path)
//   arkvale    like quest, but the retrieved pages are recalled into the working set synchronously before attention
//   freekv     speculative: the pages for step t+1 are selected with q_t and recalled in the background after layer l's
//              attention at step t; per KV head, if the group-mean cosine between q_{t+1} and q_t is below tau the head is
//              corrected (re-selected with q_{t+1} and recalled synchronously).
// Contexts that fit the budget attend every page from the host tier, exactly as `full` does.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "fkv/events.h"
#include "fkv/options.h"
#include "fkv/status.h"
#include "kv/budget.h"

namespace fkv {

class ThreadPool;

class KvCache;
class PageSummaries;

// Pages chosen for one layer, in CSR form over KV heads: the pages of head h are indices[indptr[h] .. indptr[h+1]),
// ascending; attention reads entry i from k_blocks[i] / v_blocks[i], (page_size, head_dim) blocks each.
struct PageSelection {
  std::vector<int32_t> indptr;   // (n_kv_heads + 1)
  std::vector<int32_t> indices;  // (total pages selected)
  std::vector<const uint8_t*> k_blocks;  // (total pages selected)
  std::vector<const uint8_t*> v_blocks;  // (total pages selected)
};

struct SelectionQuery {
  int layer = 0;
  int n_kv_heads = 0;
  int group = 1;        // query heads per KV head
  int head_dim = 0;
  int pos = 0;          // position of the query token (its own key is already in the cache)
  int n_pages = 0;      // pages holding positions 0..pos
  int first_page = 0;   // lowest page a sliding-window layer can see (0 for global layers)
  bool dense = false;   // this layer is never sparsified (sliding-window layers)
  const float* q = nullptr;  // (n_kv_heads * group, head_dim) query after RoPE
};

// What a policy did in one layer step, for telemetry and the running totals.
// What a policy did for one layer's selection (pages_selected is counted by the caller, from the selection), and
// for freekv the heads it checked.
struct SelectCounters : RetrievalCounters {
  const float* cosine = nullptr;       // (n_kv_heads) or null
  const uint8_t* corrected = nullptr;  // (n_kv_heads) 1 where the head was re-selected; null with cosine
};

struct PolicyContext {
  const KvCache* cache = nullptr;
  const PageSummaries* summaries = nullptr;
  Budget budget;
  float tau = 0.9f;
  int n_layers = 0;
  int n_kv_heads = 0;
  int n_heads = 0;
  int head_dim = 0;
  int n_pages_cap = 0;
  // freekv: run the next step's speculative selection and recall on the calling thread right after each layer's
  // attention instead of on a background thread (for machines with no core to spare for one).
  bool speculate_inline = false;
  // The decode thread's compute pool: a selection made on that thread scores a long range on all of its threads.
  // Never used from freekv's background thread.
  ThreadPool* pool = nullptr;
};

class AttentionPolicy {
 public:
  virtual ~AttentionPolicy() = default;
  virtual Policy kind() const = 0;
  // Fills `out` for one layer. `out` keeps its capacity between calls, so a policy does not allocate per step.
  virtual void select(const SelectionQuery& in, PageSelection& out, SelectCounters& c) = 0;
  // Called once layer `in.layer`'s attention has read its pages; freekv starts the next step's recall here.
  virtual void after_attention(const SelectionQuery& in) { (void)in; }
  // Returns once no background work reads layer l's page summaries; the context calls it before it writes them
  // (recoding a layer's 8-bit codes rewrites pages a speculative selection may be scoring).
  virtual void sync(int layer) { (void)layer; }
  // Forget all per-sequence state (the context was reset).
  virtual void reset() {}
};

// Builds a policy; the budget and tau are validated here (full uses neither).
Result<std::unique_ptr<AttentionPolicy>> make_policy(Policy policy, const PolicyContext& ctx);

// tau is a cosine: kMinCorrectionTau (-1, never corrects) .. kMaxCorrectionTau (1).
Status check_correction_tau(float tau);

}  // namespace fkv
