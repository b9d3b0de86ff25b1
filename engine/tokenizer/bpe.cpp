// BpeModel: the byte-level alphabet and the merge loop.
#include "tokenizer/bpe.h"

#include <cstdio>
#include <queue>

#include "ingest/extract.h"
#include "tokenizer/utf8.h"

namespace fkv {
namespace {

// Bytes that are printable in Latin-1 ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) stand for themselves.
bool self_mapped(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

// The byte-level alphabet: the code point each byte is written as, and back (-1: not a byte-level character).
struct Alphabet {
  std::array<uint32_t, 256> code_point{};   // (256)
  std::array<std::string, 256> spelling{};  // (256) UTF-8 of code_point
  std::array<int16_t, 0x144> byte_of{};     // (U+0000..U+0143) byte, or -1
  Alphabet() {
    byte_of.fill(-1);
    uint32_t shifted = 0x100;  // the other 68 bytes take U+0100.. in byte order
    for (int b = 0; b < 256; ++b) {
      code_point[b] = self_mapped(b) ? static_cast<uint32_t>(b) : shifted++;
      ingest::append_utf8(spelling[b], code_point[b]);
      byte_of[code_point[b]] = static_cast<int16_t>(b);
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet a;
  return a;
}

uint32_t decode_code_point(std::string_view s, size_t pos, size_t len) {
  const auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<uint8_t>(s[pos + k])); };
  if (len == 1) return byte(0);
  if (len == 2) return ((byte(0) & 0x1F) << 6) | (byte(1) & 0x3F);
  if (len == 3) return ((byte(0) & 0x0F) << 12) | ((byte(1) & 0x3F) << 6) | (byte(2) & 0x3F);
  return ((byte(0) & 0x07) << 18) | ((byte(1) & 0x3F) << 12) | ((byte(2) & 0x3F) << 6) | (byte(3) & 0x3F);
}

}  // namespace

std::string bytes_to_byte_level(std::string_view bytes) {
  const Alphabet& a = alphabet();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) out += a.spelling[static_cast<uint8_t>(c)];
  return out;
}

std::string byte_level_to_bytes(std::string_view text) {
  const Alphabet& a = alphabet();
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t len = utf8_valid_length(text, pos);
    if (len == 0) {  // not UTF-8 at all: pass the byte through
      out.push_back(text[pos++]);
      continue;
    }
    const uint32_t cp = decode_code_point(text, pos, len);
    const int b = cp < a.byte_of.size() ? a.byte_of[cp] : -1;
    // Only the alphabet's own characters map back to a byte; anything else (a plain space in an added token, for
    // which byte_of is -1) is kept as it is.
    if (b >= 0) {
      out.push_back(static_cast<char>(b));
    } else {
      out.append(text.substr(pos, len));
    }
    pos += len;
  }
  return out;
}

Result<std::unique_ptr<BpeModel>> BpeModel::create(const TokenLookup& by_text,
                                                   std::span<const std::string_view> merges,
                                                   std::unique_ptr<PreTokenizer> pre, const std::string& label) {
  std::unique_ptr<BpeModel> m(new BpeModel());
  m->pre_ = std::move(pre);
  m->by_text_ = &by_text;
  const Alphabet& a = alphabet();
  for (int b = 0; b < 256; ++b) {
    const auto it = by_text.find(a.spelling[b]);
    if (it == by_text.end()) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned>(b));
      return err(label, ": the vocabulary has no token for byte ", hex, " ('", a.spelling[b],
                 "'), which every byte-level BPE vocabulary needs");
    }
    m->byte_ids_[b] = it->second;
  }
  m->merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string_view merge = merges[rank];
    const size_t space = merge.find(' ');
    if (space == std::string_view::npos || space == 0 || space + 1 == merge.size()) {
      return err(label, ": tokenizer.ggml.merges[", rank, "] is '", merge, "', expected two tokens separated by a space");
    }
    const std::string_view left = merge.substr(0, space);
    const std::string_view right = merge.substr(space + 1);
    const std::string joined = std::string(left) + std::string(right);
    const std::string_view parts[] = {left, right, joined};
    int32_t ids[3] = {};
    for (int k = 0; k < 3; ++k) {
      const auto it = by_text.find(parts[k]);
      if (it == by_text.end()) {
        return err(label, ": tokenizer.ggml.merges[", rank, "] '", merge, "' needs the token '", parts[k],
                   "', which is not in the vocabulary");
      }
      ids[k] = it->second;
    }
    m->merges_.emplace(pair_key(ids[0], ids[1]), Merge{static_cast<int32_t>(rank), ids[2]});
  }
  return m;
}

Status BpeModel::encode(std::string_view text, std::vector<int32_t>& out) const {
  FKV_ASSIGN_OR_RETURN(const auto words, pre_->split(text));
  for (const std::string_view word : words) encode_word(word, out);
  return Status();
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (pre_->ignore_merges()) {
    const auto it = by_text_->find(bytes_to_byte_level(word));
    if (it != by_text_->end()) {
      out.push_back(it->second);
      return;
    }
  }
  std::vector<int32_t> ids(word.size());  // (n_symbols) one per byte, then merged in place
  for (size_t i = 0; i < word.size(); ++i) ids[i] = byte_ids_[static_cast<uint8_t>(word[i])];
  merge_symbols(ids);
  out.insert(out.end(), ids.begin(), ids.end());
}

// Symbols form a linked list over their first byte's position; a heap holds every adjacent pair that has a merge,
// lowest rank first and leftmost first among equals. A popped pair is applied only if both symbols are still there
// unchanged, so pairs made stale by an earlier merge are skipped instead of searched for: O(n log n) for n bytes.
void BpeModel::merge_symbols(std::vector<int32_t>& ids) const {
  const int n = static_cast<int>(ids.size());
  if (n < 2) return;
  struct Candidate {
    int32_t rank;
    int pos;
    int32_t left, right, result;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  std::vector<int> prev(n), next(n);  // (n) neighbours in the list; -1 / n at the ends
  std::vector<uint8_t> alive(n, 1);   // (n) 0 once merged into the symbol on its left
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1;
  }
  const auto push = [&](int pos) {
    if (pos < 0 || next[pos] >= n) return;
    const auto it = merges_.find(pair_key(ids[pos], ids[next[pos]]));
    if (it != merges_.end()) heap.push({it->second.rank, pos, ids[pos], ids[next[pos]], it->second.result});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const int right = next[c.pos];
    if (!alive[c.pos] || right >= n || ids[c.pos] != c.left || ids[right] != c.right) continue;
    ids[c.pos] = c.result;
    alive[right] = 0;
    next[c.pos] = next[right];
    if (next[right] < n) prev[next[right]] = c.pos;
    push(prev[c.pos]);
    push(c.pos);
  }
  int kept = 0;
  for (int pos = 0; pos < n; pos = next[pos]) ids[kept++] = ids[pos];  // position 0 is never merged away
  ids.resize(static_cast<size_t>(kept));
}

}  // namespace fkv
