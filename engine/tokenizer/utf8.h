// UTF-8 helpers for the tokenizer: strict validation of input text, and Utf8Streamer, which turns a stream of token
// bytes (a byte-fallback token may carry a third of a character) into complete characters for the UI. Strict means what
// RFC 3629 allows: no overlong forms, no surrogates, nothing above U+10FFFF.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fkv {

// Byte offset of the first byte that does not start a valid UTF-8 sequence; nullopt when all of `s` is valid.
std::optional<size_t> utf8_first_invalid(std::string_view s);

// Length of the valid sequence starting at s[pos]: 1..4, or 0 when the bytes there are not valid UTF-8.
// `truncated` (optional) is set when they are a valid beginning that `s` cuts short.
size_t utf8_valid_length(std::string_view s, size_t pos, bool* truncated = nullptr);

// Streams token bytes out as whole characters. push() returns the longest complete prefix and holds back an incomplete
// trailing sequence (at most 3 bytes) until the next push; bytes that can never become valid come out as U+FFFD, so
// what it returns is always valid UTF-8.
class Utf8Streamer {
 public:
  std::string push(std::string_view bytes);
  // Returns what is held back (an incomplete sequence becomes U+FFFD) and empties the streamer.
  std::string flush();
  void reset() { pending_.clear(); }
  size_t n_pending() const { return pending_.size(); }

 private:
  std::string pending_;  // (<= 3 bytes) an incomplete trailing sequence from the last push
};

}  // namespace fkv
