// Text normalization shared by every format, and the one-line cleanup used for headings and titles.
// normalize_text() is a single left-to-right pass: whitespace is held back until a visible character shows that it is
// not trailing, which is also the moment the offsets waiting for that character learn where it landed.
#include <algorithm>
#include <utility>

#include "ingest/extract.h"

namespace fkv::ingest {
namespace {

constexpr int kMaxNewlines = 3;  // a line end plus at most 2 blank lines
constexpr std::string_view kReplacementUtf8 = "\xEF\xBF\xBD";

uint8_t byte_at(std::string_view s, size_t i) { return static_cast<uint8_t>(s[i]); }

bool is_c1_control(std::string_view s, size_t i, size_t len) {
  return len == 2 && byte_at(s, i) == 0xC2 && byte_at(s, i + 1) <= 0x9F;
}

// U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR end a line like LF does.
bool is_unicode_line_break(std::string_view s, size_t i, size_t len) {
  return len == 3 && byte_at(s, i) == 0xE2 && byte_at(s, i + 1) == 0x80 &&
         (byte_at(s, i + 2) == 0xA8 || byte_at(s, i + 2) == 0xA9);
}

class Normalizer {
 public:
  Normalizer(std::string_view in, std::span<int64_t> offsets) : in_(in), offsets_(offsets) { out_.reserve(in.size()); }

  std::string run() {
    for (size_t i = 0; i < in_.size();) {
      while (n_seen_ < offsets_.size() && offsets_[n_seen_] <= static_cast<int64_t>(i)) ++n_seen_;
      i += step(i);
    }
    n_seen_ = offsets_.size();
    resolve_seen();  // offsets after the last visible character go to the end
    return std::move(out_);
  }

 private:
  // Handles the character at in_[i]; returns how many bytes it spans.
  size_t step(size_t i) {
    const uint8_t b = byte_at(in_, i);
    if (b == '\r') {
      line_break();
      return i + 1 < in_.size() && in_[i + 1] == '\n' ? 2 : 1;
    }
    if (b == '\n' || b == '\f' || b == '\v') {
      line_break();
      return 1;
    }
    if (b == ' ' || b == '\t') {
      spaces_.push_back(static_cast<char>(b));
      return 1;
    }
    if (b < 0x20 || b == 0x7F) return 1;  // other C0 controls and DEL carry no text
    const size_t len = utf8_sequence_length(in_, i);
    if (len == 0) {
      visible(kReplacementUtf8);
      return 1;
    }
    if (is_c1_control(in_, i, len)) return len;
    if (is_unicode_line_break(in_, i, len)) {
      line_break();
      return len;
    }
    visible(in_.substr(i, len));
    return len;
  }

  void line_break() {
    spaces_.clear();  // trailing spaces of the line end here
    ++n_newlines_;
  }

  void visible(std::string_view bytes) {
    if (!out_.empty()) out_.append(static_cast<size_t>(std::min(n_newlines_, kMaxNewlines)), '\n');
    n_newlines_ = 0;
    out_ += spaces_;
    spaces_.clear();
    resolve_seen();
    out_.append(bytes);
  }

  void resolve_seen() {
    for (; n_resolved_ < n_seen_; ++n_resolved_) offsets_[n_resolved_] = static_cast<int64_t>(out_.size());
  }

  std::string_view in_;
  std::span<int64_t> offsets_;  // (n_offsets) sorted offsets into in_, rewritten in place
  std::string out_;
  std::string spaces_;     // spaces and tabs since the line's last visible character
  int n_newlines_ = 0;     // line breaks since the last visible character
  size_t n_seen_ = 0;      // offsets_[0, n_seen_) lie at or before the current input position
  size_t n_resolved_ = 0;  // offsets_[0, n_resolved_) are rewritten already
};

}  // namespace

std::string normalize_text(std::string_view in, std::span<int64_t> offsets) { return Normalizer(in, offsets).run(); }

std::string clean_inline(std::string_view s, size_t max_bytes) {
  std::string out;
  bool space = false;
  // A few bytes of slack so the cut below lands on a character boundary of the full text.
  for (size_t i = 0; i < s.size() && out.size() <= max_bytes + 4;) {
    const uint8_t b = byte_at(s, i);
    if (b <= 0x20 || b == 0x7F) {
      space = !out.empty();
      ++i;
      continue;
    }
    const size_t len = utf8_sequence_length(s, i);
    if (len != 0 && (is_c1_control(s, i, len) || is_unicode_line_break(s, i, len))) {
      space = !out.empty();
      i += len;
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.append(len == 0 ? kReplacementUtf8 : s.substr(i, len));
    i += len == 0 ? 1 : len;
  }
  std::string cut(utf8_prefix(out, max_bytes));
  while (!cut.empty() && cut.back() == ' ') cut.pop_back();
  return cut;
}

bool is_blank(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const uint8_t b = byte_at(s, i);
    if (b <= 0x20 || b == 0x7F) {
      ++i;
      continue;
    }
    const size_t len = utf8_sequence_length(s, i);
    const bool nbsp = len == 2 && b == 0xC2 && byte_at(s, i + 1) == 0xA0;
    const bool bom = len == 3 && s.substr(i, 3) == "\xEF\xBB\xBF";
    if (!nbsp && !bom && !(len != 0 && is_c1_control(s, i, len))) return false;
    i += len;
  }
  return true;
}

}  // namespace fkv::ingest
