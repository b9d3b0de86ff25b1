#include "tokenizer/utf8.h"

namespace fkv {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// The number of bytes a sequence with this lead byte has (RFC 3629 table), or 0 for a byte that cannot lead.
size_t lead_length(uint8_t b) {
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return 2;
  if (b >= 0xE0 && b <= 0xEF) return 3;
  if (b >= 0xF0 && b <= 0xF4) return 4;
  return 0;
}

// The second byte's range depends on the lead: it is what rules out overlong forms, surrogates and > U+10FFFF.
bool second_byte_ok(uint8_t lead, uint8_t b) {
  switch (lead) {
    case 0xE0:
      return b >= 0xA0 && b <= 0xBF;
    case 0xED:
      return b >= 0x80 && b <= 0x9F;
    case 0xF0:
      return b >= 0x90 && b <= 0xBF;
    case 0xF4:
      return b >= 0x80 && b <= 0x8F;
    default:
      return b >= 0x80 && b <= 0xBF;
  }
}

}  // namespace

size_t utf8_valid_length(std::string_view s, size_t pos, bool* truncated) {
  if (truncated) *truncated = false;
  if (pos >= s.size()) return 0;
  const auto lead = static_cast<uint8_t>(s[pos]);
  const size_t n = lead_length(lead);
  if (n <= 1) return n;
  for (size_t k = 1; k < n; ++k) {
    if (pos + k >= s.size()) {
      if (truncated) *truncated = true;
      return 0;
    }
    const auto b = static_cast<uint8_t>(s[pos + k]);
    const bool ok = k == 1 ? second_byte_ok(lead, b) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return 0;
  }
  return n;
}

std::optional<size_t> utf8_first_invalid(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t n = utf8_valid_length(s, pos);
    if (n == 0) return pos;
    pos += n;
  }
  return std::nullopt;
}

std::string Utf8Streamer::push(std::string_view bytes) {
  pending_.append(bytes);
  std::string out;
  size_t pos = 0;
  while (pos < pending_.size()) {
    bool truncated = false;
    const size_t n = utf8_valid_length(pending_, pos, &truncated);
    if (n > 0) {
      out.append(pending_, pos, n);
      pos += n;
    } else if (truncated) {
      break;  // a valid beginning: wait for the rest
    } else {
      out.append(kReplacement);
      ++pos;
    }
  }
  pending_.erase(0, pos);
  return out;
}

std::string Utf8Streamer::flush() {
  std::string out = pending_.empty() ? std::string() : std::string(kReplacement);
  pending_.clear();
  return out;
}

}  // namespace fkv
