#include "tokenizer/special_matcher.h"

namespace fkv {

SpecialMatcher::SpecialMatcher() {
  root_.fill(-1);
  node_id_.push_back(-1);  // node 0 is the root
}

int32_t SpecialMatcher::child(int32_t node, uint8_t byte) const {
  if (node == 0) return root_[byte];
  const auto it = edges_.find(edge_key(node, byte));
  return it == edges_.end() ? -1 : it->second;
}

int32_t SpecialMatcher::add_child(int32_t node, uint8_t byte) {
  const int32_t existing = child(node, byte);
  if (existing >= 0) return existing;
  const auto created = static_cast<int32_t>(node_id_.size());
  node_id_.push_back(-1);
  if (node == 0) {
    root_[byte] = created;
  } else {
    edges_.emplace(edge_key(node, byte), created);
  }
  return created;
}

void SpecialMatcher::add(std::string_view piece, int32_t id) {
  if (piece.empty()) return;
  int32_t node = 0;
  for (const char c : piece) node = add_child(node, static_cast<uint8_t>(c));
  if (node_id_[node] < 0) {
    node_id_[node] = id;
    ++n_pieces_;
  }
}

SpecialMatcher::Match SpecialMatcher::longest_at(std::string_view text, size_t pos) const {
  Match best;
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    node = child(node, static_cast<uint8_t>(text[i]));
    if (node < 0) break;
    if (node_id_[node] >= 0) best = Match{i + 1 - pos, node_id_[node]};
  }
  return best;
}

}  // namespace fkv
