// Longest-match lookup of special pieces (control, user-defined, unknown) in text, for encode(parse_special=true).
// A byte trie: the root has a dense 256-entry table because most text bytes start no special piece, so the common
// case costs one array read per byte; deeper edges live in one hash map keyed by (node, byte).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace fkv {

class SpecialMatcher {
 public:
  struct Match {
    size_t length = 0;  // 0: no special piece starts here
    int32_t id = -1;
  };

  SpecialMatcher();
  // Adds a piece; an empty piece is ignored, and a piece added twice keeps its first id.
  void add(std::string_view piece, int32_t id);
  // The longest piece that starts at text[pos].
  Match longest_at(std::string_view text, size_t pos) const;
  size_t n_pieces() const { return n_pieces_; }

 private:
  static uint64_t edge_key(int32_t node, uint8_t byte) { return (static_cast<uint64_t>(node) << 8) | byte; }
  int32_t child(int32_t node, uint8_t byte) const;
  int32_t add_child(int32_t node, uint8_t byte);

  std::array<int32_t, 256> root_{};              // (256) child of the root per first byte, -1 when none
  std::unordered_map<uint64_t, int32_t> edges_;  // (node << 8 | byte) -> child node, below the root
  std::vector<int32_t> node_id_;                 // (n_nodes) token id ending at this node, -1 when none
  size_t n_pieces_ = 0;
};

}  // namespace fkv
