// Decoding plain-text bytes to UTF-8: BOMs, declared charsets, UTF-8 validation with replacement, the windows-1252
// fallback, BOM-less UTF-16 and binary detection. The UTF-8 helpers live here too: the fuzz build has no tokenizer.
#include <algorithm>
#include <array>
#include <optional>
#include <utility>

#include "ingest/extract.h"

namespace fkv::ingest {
namespace {

constexpr size_t kSniffBytes = 8192;  // how much of the input the binary checks look at
constexpr uint32_t kReplacement = 0xFFFD;

// windows-1252 bytes 0x80..0x9F (the WHATWG index); 0 marks the five undefined bytes, which decode to C1 controls
// there and are therefore dropped by normalization, like any C1 control.
constexpr std::array<uint16_t, 32> kCp1252High = {0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                                  0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0,      0x017D, 0,
                                                  0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                                  0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178};

uint8_t byte_at(std::string_view s, size_t i) { return static_cast<uint8_t>(s[i]); }

bool is_binary_control(uint8_t b) {
  // Text may hold tab, LF, CR, form feed, vertical tab and ESC (ANSI colour codes in logs); other C0 bytes are rare.
  return b < 0x20 && b != '\t' && b != '\n' && b != '\r' && b != '\f' && b != '\v' && b != 0x1B;
}

// A binary file shows control bytes; more than 1 in 16 of the first 8 KiB is far beyond any text.
Status check_control_share(std::string_view s, const char* what) {
  const size_t n = std::min(s.size(), kSniffBytes);
  size_t n_control = 0;
  for (size_t i = 0; i < n; ++i) n_control += is_binary_control(byte_at(s, i)) ? 1 : 0;
  if (n > 0 && n_control * 16 > n) {
    return err("binary file: ", n_control, " of the first ", n, " ", what, " are control characters, expected text");
  }
  return Status();
}

// UTF-16 without a BOM: ASCII-range text puts a zero in every other byte and almost never in the others.
std::optional<bool> utf16_without_bom_little_endian(std::string_view s) {
  const size_t n = std::min(s.size(), kSniffBytes) & ~size_t{1};
  if (n < 4) return std::nullopt;
  size_t zero_even = 0, zero_odd = 0;
  for (size_t i = 0; i < n; i += 2) {
    zero_even += byte_at(s, i) == 0 ? 1 : 0;
    zero_odd += byte_at(s, i + 1) == 0 ? 1 : 0;
  }
  const size_t n_units = n / 2;
  if (zero_odd * 10 >= n_units * 7 && zero_even * 20 < n_units) return true;
  if (zero_even * 10 >= n_units * 7 && zero_odd * 20 < n_units) return false;
  return std::nullopt;
}

DecodedText decode_utf16(std::string_view s, bool little_endian, std::string encoding) {
  DecodedText d{{}, std::move(encoding), 0};
  d.text.reserve(s.size());
  auto unit = [&](size_t i) -> uint32_t {
    const uint32_t a = byte_at(s, i), b = byte_at(s, i + 1);
    return little_endian ? a | (b << 8) : (a << 8) | b;
  };
  size_t i = 0;
  for (; i + 1 < s.size(); i += 2) {
    const uint32_t u = unit(i);
    const bool high = u >= 0xD800 && u <= 0xDBFF;
    if (high && i + 3 < s.size()) {
      const uint32_t lo = unit(i + 2);
      if (lo >= 0xDC00 && lo <= 0xDFFF) {
        append_utf8(d.text, 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00));
        i += 2;
        continue;
      }
    }
    if (u >= 0xD800 && u <= 0xDFFF) {  // an unpaired surrogate
      append_utf8(d.text, kReplacement);
      d.replaced_bytes += 2;
      continue;
    }
    append_utf8(d.text, u);
  }
  if (i < s.size()) {  // an odd trailing byte
    append_utf8(d.text, kReplacement);
    d.replaced_bytes += 1;
  }
  return d;
}

uint32_t single_byte_code_point(uint8_t b, Charset charset) {
  if (charset == Charset::Latin9) {
    switch (b) {  // ISO-8859-15 differs from Latin-1 in eight places
      case 0xA4:
        return 0x20AC;
      case 0xA6:
        return 0x0160;
      case 0xA8:
        return 0x0161;
      case 0xB4:
        return 0x017D;
      case 0xB8:
        return 0x017E;
      case 0xBC:
        return 0x0152;
      case 0xBD:
        return 0x0153;
      case 0xBE:
        return 0x0178;
      default:
        return b;
    }
  }
  return windows1252_code_point(b);
}

DecodedText decode_single_byte(std::string_view s, Charset charset) {
  DecodedText d{{}, charset == Charset::Latin9 ? "ISO-8859-15" : "windows-1252", 0};
  d.text.reserve(s.size() + s.size() / 8);
  for (size_t i = 0; i < s.size(); ++i) append_utf8(d.text, single_byte_code_point(byte_at(s, i), charset));
  return d;
}

struct Utf8Census {
  int64_t n_invalid = 0;    // bytes that start no valid sequence
  int64_t n_multibyte = 0;  // bytes inside valid sequences of 2..4 bytes
};

Utf8Census utf8_census(std::string_view s) {
  Utf8Census c;
  for (size_t i = 0; i < s.size();) {
    const size_t len = utf8_sequence_length(s, i);
    if (len == 0) {
      ++c.n_invalid;
      ++i;
      continue;
    }
    if (len > 1) c.n_multibyte += static_cast<int64_t>(len);
    i += len;
  }
  return c;
}

DecodedText decode_utf8_replacing(std::string_view s, std::string encoding) {
  DecodedText d{{}, std::move(encoding), 0};
  d.text.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t len = utf8_sequence_length(s, i);
    if (len == 0) {
      append_utf8(d.text, kReplacement);
      ++d.replaced_bytes;
      ++i;
      continue;
    }
    d.text.append(s.substr(i, len));
    i += len;
  }
  return d;
}

std::optional<DecodedText> decode_by_bom(std::string_view bytes) {
  if (bytes.starts_with("\xEF\xBB\xBF")) return decode_utf8_replacing(bytes.substr(3), "UTF-8 (BOM)");
  if (bytes.starts_with("\xFF\xFE")) return decode_utf16(bytes.substr(2), true, "UTF-16LE");
  if (bytes.starts_with("\xFE\xFF")) return decode_utf16(bytes.substr(2), false, "UTF-16BE");
  return std::nullopt;
}

Result<DecodedText> decode_without_bom(std::string_view bytes, Charset declared) {
  const std::string_view head = bytes.substr(0, std::min(bytes.size(), kSniffBytes));
  if (const size_t nul = head.find('\0'); nul != std::string_view::npos) {
    if (const auto le = utf16_without_bom_little_endian(bytes)) {
      DecodedText d = decode_utf16(bytes, *le, *le ? "UTF-16LE (no BOM)" : "UTF-16BE (no BOM)");
      FKV_TRY(check_control_share(d.text, "decoded bytes"));
      return d;
    }
    return err("binary file: a NUL byte at offset ", nul, " in the first ", head.size(), " bytes, expected text");
  }
  FKV_TRY(check_control_share(bytes, "bytes"));
  if (declared == Charset::Windows1252 || declared == Charset::Latin9) return decode_single_byte(bytes, declared);
  const Utf8Census census = utf8_census(bytes);
  if (census.n_invalid == 0) return DecodedText{std::string(bytes), "UTF-8", 0};
  // Text in a legacy 8-bit encoding has almost no valid multi-byte sequences by chance, while damaged UTF-8 keeps
  // most of its sequences intact: whichever kind of byte dominates tells the two apart.
  if (census.n_invalid > census.n_multibyte) return decode_single_byte(bytes, Charset::Windows1252);
  return decode_utf8_replacing(bytes, "UTF-8");
}

}  // namespace

size_t utf8_sequence_length(std::string_view s, size_t pos) {
  const uint8_t b0 = byte_at(s, pos);
  if (b0 < 0x80) return 1;
  size_t len = 0;
  uint8_t lo = 0x80, hi = 0xBF;  // the allowed range of the second byte (RFC 3629 table)
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (pos + len > s.size()) return 0;
  const uint8_t b1 = byte_at(s, pos + 1);
  if (b1 < lo || b1 > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    if ((byte_at(s, pos + k) & 0xC0) != 0x80) return 0;
  }
  return len;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = kReplacement;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string_view utf8_prefix(std::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  size_t end = max_bytes;
  while (end > 0 && (byte_at(s, end) & 0xC0) == 0x80) --end;  // s[end] must start a character
  return s.substr(0, end);
}

uint32_t windows1252_code_point(uint8_t b) {
  if (b >= 0x80 && b <= 0x9F && kCp1252High[b - 0x80] != 0) return kCp1252High[b - 0x80];
  return b;
}

Charset charset_from_label(std::string_view label) {
  std::string l;
  for (const char c : label) {
    if (c != '"' && c != '\'' && c != ' ') l.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
  }
  // Per the WHATWG encoding standard, Latin-1 and ASCII labels mean windows-1252.
  static constexpr std::string_view kCp1252[] = {"windows-1252", "cp1252", "x-cp1252", "iso-8859-1", "iso8859-1",
                                                 "iso_8859-1",   "latin1", "latin-1",  "l1",         "us-ascii",
                                                 "ascii",        "cp819",  "ibm819",   "iso-ir-100", "ansi_x3.4-1968"};
  static constexpr std::string_view kLatin9[] = {"iso-8859-15", "iso8859-15", "iso_8859-15", "latin-9", "latin9", "l9"};
  static constexpr std::string_view kUtf8[] = {"utf-8", "utf8", "unicode-1-1-utf-8"};
  auto in = [&](const auto& list) { return std::find(std::begin(list), std::end(list), l) != std::end(list); };
  if (in(kCp1252)) return Charset::Windows1252;
  if (in(kLatin9)) return Charset::Latin9;
  if (in(kUtf8)) return Charset::Utf8;
  return Charset::Auto;
}

Result<DecodedText> decode_text(std::string_view bytes, Charset declared) {
  std::optional<DecodedText> by_bom = decode_by_bom(bytes);
  if (!by_bom) return decode_without_bom(bytes, declared);
  // A BOM wins over any declaration; what it announced must still look like text.
  FKV_TRY(check_control_share(by_bom->text, "decoded bytes"));
  return std::move(*by_bom);
}

}  // namespace fkv::ingest
