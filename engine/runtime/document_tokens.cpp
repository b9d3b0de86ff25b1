// Segmenting and tokenizing a document so that tokens map back to byte ranges. A cut before a space (rather than
// after it) keeps the space with the word that follows, which is how SentencePiece tokenizes it anyway ("▁word"), so
// the segmented tokenization stays close to tokenizing the whole text at once.
#include "runtime/document_tokens.h"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace fkv {
namespace {

bool is_continuation_byte(char c) { return (static_cast<uint8_t>(c) & 0xC0) == 0x80; }

// Where the segment that starts at `start` ends when the rest of the text is longer than max_bytes.
size_t cut_point(std::string_view text, size_t start, size_t max_bytes) {
  const std::string_view window = text.substr(start, max_bytes);
  if (const size_t p = window.rfind("\n\n"); p != std::string_view::npos) return start + p + 2;
  if (const size_t p = window.rfind('\n'); p != std::string_view::npos) return start + p + 1;
  if (const size_t p = window.rfind(' '); p != std::string_view::npos && p > 0) return start + p;
  size_t cut = start + max_bytes;  // text[cut] exists: the rest is longer than max_bytes
  while (cut > start && is_continuation_byte(text[cut])) --cut;
  return cut > start ? cut : start + max_bytes;  // only invalid UTF-8 has no boundary within 4 bytes
}

}  // namespace

std::vector<int64_t> document_segment_ends(std::string_view text, size_t max_bytes) {
  max_bytes = std::max<size_t>(max_bytes, 4);  // room for one whole UTF-8 character
  std::vector<int64_t> ends;                   // (n_segments)
  for (size_t start = 0; start < text.size();) {
    const size_t end = text.size() - start <= max_bytes ? text.size() : cut_point(text, start, max_bytes);
    ends.push_back(static_cast<int64_t>(end));
    start = end;
  }
  return ends;
}

Result<DocumentTokens> tokenize_document(const Tokenizer& tok, std::string_view text) {
  if (const auto bad = utf8_first_invalid(text)) {
    char byte[8];
    std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned>(static_cast<uint8_t>(text[*bad])));
    return err("tokenize_document: invalid UTF-8 at byte offset ", *bad, " (byte ", byte, "), expected UTF-8 text");
  }
  DocumentTokens doc;
  doc.tokens.reserve(text.size() / 3);  // about 3-4 bytes per token for English prose
  int64_t begin = 0;
  for (const int64_t end : document_segment_ends(text)) {
    const size_t n_before = doc.tokens.size();
    const std::string_view segment = text.substr(static_cast<size_t>(begin), static_cast<size_t>(end - begin));
    // Only the first segment starts the text; a prefix on later ones would insert spaces that are not there.
    const Status status = tok.encode_append(segment, begin == 0, false, doc.tokens);
    if (!status.ok()) return err("tokenize_document: segment at byte ", begin, ": ", status.message());
    if (doc.tokens.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
      return err("tokenize_document: ", doc.tokens.size(), " tokens after byte ", end, ", expected at most ",
                 std::numeric_limits<int32_t>::max());
    }
    doc.spans.push_back({static_cast<int32_t>(n_before), static_cast<int32_t>(doc.tokens.size()), begin, end});
    begin = end;
  }
  return doc;
}

int span_at_token(const DocumentTokens& doc, int32_t token) {
  const auto& spans = doc.spans;
  // The first span that ends after `token`; spans are contiguous, so it holds the token unless it starts later.
  const auto it = std::upper_bound(spans.begin(), spans.end(), token,
                                   [](int32_t t, const TokenSpan& s) { return t < s.token_end; });
  if (it == spans.end() || token < it->token_begin) return -1;
  return static_cast<int>(it - spans.begin());
}

}  // namespace fkv
