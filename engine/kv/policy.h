// Attention policies decide, for each decode step, layer and KV head, which KV pages the query attends to.
// The forward pass asks the policy and attends exactly the pages it returns; prefill is always exact (all pages).
// The retrieval policies (streaming, quest, arkvale, freekv) plug in here; this engine spine ships `full`.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "fkv/status.h"

namespace fkv {

// Pages chosen for one layer, in CSR form over KV heads: the pages of head h are indices[indptr[h] .. indptr[h+1]).
struct PageSelection {
  std::vector<int32_t> indptr;   // (n_kv_heads + 1)
  std::vector<int32_t> indices;  // (total pages selected) logical page ids, ascending within a head
};

struct SelectionQuery {
  int layer = 0;
  int n_kv_heads = 0;
  int pos = 0;          // position of the query token (its own key is already in the cache)
  int n_pages = 0;      // pages holding positions 0..pos
  int first_page = 0;   // lowest page a sliding-window layer can see (0 for global layers)
  const float* q = nullptr;  // (n_heads, head_dim) query after RoPE
};

class AttentionPolicy {
 public:
  virtual ~AttentionPolicy() = default;
  virtual const char* name() const = 0;
  // Fills `out` for one layer. `out` keeps its capacity between calls, so a policy need not allocate per step.
  virtual void select(const SelectionQuery& in, PageSelection& out) = 0;
};

// Every page in [first_page, n_pages) for every head: exact attention.
class FullPolicy final : public AttentionPolicy {
 public:
  const char* name() const override { return "full"; }
  void select(const SelectionQuery& in, PageSelection& out) override;
};

// Builds a policy by name ("full"); an unknown name is an error listing the known ones.
Result<std::unique_ptr<AttentionPolicy>> make_policy(std::string_view name);

}  // namespace fkv
