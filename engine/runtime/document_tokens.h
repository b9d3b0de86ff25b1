// The token side of a document's span map. A document is tokenized in segments (paragraphs of at most ~1500 bytes),
// each one a TokenSpan, so every token maps back to a byte range of the ingested text: retrieval telemetry and
// citations can show which page or heading a KV page came from (ingest/document.h maps bytes to pages and headings).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "fkv/status.h"

namespace fkv {

class Tokenizer;

struct TokenSpan {
  int32_t token_begin = 0;  // [token_begin, token_end) into DocumentTokens::tokens
  int32_t token_end = 0;
  int64_t char_begin = 0;  // [char_begin, char_end) byte offsets into the text
  int64_t char_end = 0;
};

struct DocumentTokens {
  std::vector<int32_t> tokens;   // (n_tokens) no BOS, no special tokens
  std::vector<TokenSpan> spans;  // (n_spans) contiguous in both tokens and bytes, covering all of each
};

// Where a segment may end by default: long enough that segment edges cost few extra tokens, short enough that a span
// points at a paragraph rather than a chapter.
inline constexpr size_t kMaxSegmentBytes = 1500;

// Byte offsets where the segments of `text` end (the last is text.size()); none for empty text. A segment longer than
// max_bytes is cut after its last paragraph break ("\n\n"), else after its last line break, else before its last
// space, else at the last UTF-8 character boundary, so no cut ever falls inside a character. max_bytes >= 4.
std::vector<int64_t> document_segment_ends(std::string_view text, size_t max_bytes = kMaxSegmentBytes);

// Tokenizes `text` segment by segment: the first segment gets the vocabulary's space prefix as encode() would give
// it, later ones none, so tok.decode(tokens) == text. Specials are not parsed (a document's "<s>" is text). Invalid
// UTF-8 is an error naming the byte offset.
Result<DocumentTokens> tokenize_document(const Tokenizer& tok, std::string_view text);

// Index of the span holding token `token`; -1 when no span does.
int span_at_token(const DocumentTokens& doc, int32_t token);

}  // namespace fkv
