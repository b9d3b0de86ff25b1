#include "kv/policy.h"

namespace fkv {

void FullPolicy::select(const SelectionQuery& in, PageSelection& out) {
  out.indptr.resize(static_cast<size_t>(in.n_kv_heads) + 1);
  out.indices.clear();
  out.indptr[0] = 0;
  for (int h = 0; h < in.n_kv_heads; ++h) {
    for (int p = in.first_page; p < in.n_pages; ++p) out.indices.push_back(p);
    out.indptr[static_cast<size_t>(h) + 1] = static_cast<int32_t>(out.indices.size());
  }
}

Result<std::unique_ptr<AttentionPolicy>> make_policy(std::string_view name) {
  if (name == "full") return std::unique_ptr<AttentionPolicy>(new FullPolicy());
  return err("unknown attention policy '", name, "' (available: full)");
}

}  // namespace fkv
