// A minimal JSON writer for the tool's --json output (RFC 8259 strings; numbers in C locale), and the escaping of
// text output: both keep a file's control characters away from the terminal.
#include <cmath>
#include <cstdio>
#include <utility>

#include "cli.h"
#include "tokenizer/utf8.h"

namespace freekv {

namespace {

std::string hex_escape(const char* format, unsigned value) {
  char buf[12];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

// The characters JSON escapes with a short form; other control characters become \u00XX.
constexpr std::pair<char, std::string_view> kShortEscapes[] = {
    {'"', "\\\""}, {'\\', "\\\\"}, {'\n', "\\n"}, {'\r', "\\r"}, {'\t', "\\t"}, {'\b', "\\b"}, {'\f', "\\f"},
};

void append_json_escaped(std::string& out, char c) {
  for (const auto& [raw, escaped] : kShortEscapes) {
    if (c == raw) {
      out += escaped;
      return;
    }
  }
  const auto b = static_cast<unsigned char>(c);
  out += b < 0x20 ? hex_escape("\\u%04x", b) : std::string(1, c);
}

// A terminal acts on C0 controls (ESC starts a sequence that can retitle the window or rewrite the screen) and DEL;
// they are shown as escapes. Backslashes stay as they are: this is for reading, not for parsing back.
void append_visible(std::string& out, char c) {
  const auto b = static_cast<unsigned char>(c);
  if (b >= 0x20 && b != 0x7f) {
    out += c;
  } else if (b == 0x1b) {
    out += "\\e";
  } else if (c == '\t' || c == '\n' || c == '\r') {
    out += c == '\t' ? "\\t" : c == '\n' ? "\\n" : "\\r";
  } else {
    out += hex_escape("\\x%02x", b);
  }
}

// U+0080..U+009F, encoded C2 80..C2 9F: C1 controls, which terminals may act on (U+009B is CSI).
bool is_c1(std::string_view s, size_t pos, size_t n) {
  return n == 2 && static_cast<unsigned char>(s[pos]) == 0xC2 && static_cast<unsigned char>(s[pos + 1]) < 0xA0;
}

// Walks s in UTF-8 characters: `invalid` gets a byte that starts no valid sequence, `ascii` a single-byte character;
// C1 controls become \u00XX (the same in JSON and on a terminal) and other characters are copied.
template <typename Invalid, typename Ascii>
std::string escape_utf8(std::string_view s, Invalid invalid, Ascii ascii) {
  std::string out;
  out.reserve(s.size() + 2);
  for (size_t pos = 0; pos < s.size();) {
    const size_t n = fkv::utf8_valid_length(s, pos);
    if (n == 0) {
      invalid(out, static_cast<unsigned char>(s[pos]));
      ++pos;
      continue;
    }
    if (n == 1) {
      ascii(out, s[pos]);
    } else if (is_c1(s, pos, n)) {
      out += hex_escape("\\u%04x", static_cast<unsigned char>(s[pos + 1]));
    } else {
      out.append(s, pos, n);
    }
    pos += n;
  }
  return out;
}

}  // namespace

std::string json_escape(std::string_view s) {
  return escape_utf8(
      s, [](std::string& out, unsigned char) { out += "\\ufffd"; },  // JSON text may not hold invalid UTF-8
      append_json_escaped);
}

std::string display_text(std::string_view s) {
  return escape_utf8(
      s, [](std::string& out, unsigned char b) { out += hex_escape("\\x%02x", b); }, append_visible);
}

void JsonWriter::separate() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (first_.empty()) return;
  if (!first_.back()) out_ += ',';
  first_.back() = false;
}

JsonWriter& JsonWriter::begin_object() {
  separate();
  out_ += '{';
  first_.push_back(true);
  return *this;
}

JsonWriter& JsonWriter::end_object() {
  out_ += '}';
  first_.pop_back();
  return *this;
}

JsonWriter& JsonWriter::begin_array() {
  separate();
  out_ += '[';
  first_.push_back(true);
  return *this;
}

JsonWriter& JsonWriter::end_array() {
  out_ += ']';
  first_.pop_back();
  return *this;
}

JsonWriter& JsonWriter::key(std::string_view k) {
  separate();
  out_ += '"';
  out_ += json_escape(k);
  out_ += "\":";
  after_key_ = true;
  return *this;
}

JsonWriter& JsonWriter::value(std::string_view s) {
  separate();
  out_ += '"';
  out_ += json_escape(s);
  out_ += '"';
  return *this;
}

JsonWriter& JsonWriter::value(double d) {
  separate();
  if (!std::isfinite(d)) {
    out_ += "null";
    return *this;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", d);
  out_ += buf;
  return *this;
}

JsonWriter& JsonWriter::value(int64_t i) {
  separate();
  out_ += std::to_string(i);
  return *this;
}

JsonWriter& JsonWriter::value(uint64_t u) {
  separate();
  out_ += std::to_string(u);
  return *this;
}

JsonWriter& JsonWriter::value(bool b) {
  separate();
  out_ += b ? "true" : "false";
  return *this;
}

}  // namespace freekv
