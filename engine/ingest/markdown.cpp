// Markdown: the text stays as written (emphasis, links and lists keep their markup, which a language model reads
// well), except that heading markers are removed, so the heading lines read as plain titles, and YAML front matter is
// dropped (its title is kept). Headings follow CommonMark's block rules closely enough for an outline: ATX headings
// (up to 3 spaces of indent, 1-6 '#', optional closing '#'s), setext underlines after a plain paragraph, and nothing
// inside fenced code. One pass over the lines, so linear time.
#include <optional>

#include "ingest/extract.h"

namespace fkv::ingest {
namespace {

// Columns of leading indentation (a tab advances to the next multiple of 4) and the bytes it spans.
struct Indent {
  size_t columns = 0;
  size_t bytes = 0;
};

Indent indent_of(std::string_view line) {
  Indent in;
  for (; in.bytes < line.size(); ++in.bytes) {
    if (line[in.bytes] == ' ') {
      ++in.columns;
    } else if (line[in.bytes] == '\t') {
      in.columns = (in.columns / 4 + 1) * 4;
    } else {
      break;
    }
  }
  return in;
}

std::string_view trim_spaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

size_t run_length(std::string_view s, size_t from, char c) {
  size_t n = 0;
  while (from + n < s.size() && s[from + n] == c) ++n;
  return n;
}

struct Fence {
  char ch = 0;     // '`' or '~'
  size_t len = 0;  // >= 3
};

std::optional<Fence> fence_open(std::string_view line) {
  const Indent in = indent_of(line);
  if (in.columns > 3 || in.bytes >= line.size()) return std::nullopt;
  const char c = line[in.bytes];
  if (c != '`' && c != '~') return std::nullopt;
  const size_t n = run_length(line, in.bytes, c);
  if (n < 3) return std::nullopt;
  // A backtick fence's info string may not hold a backtick (that would be inline code).
  if (c == '`' && line.find('`', in.bytes + n) != std::string_view::npos) return std::nullopt;
  return Fence{c, n};
}

bool fence_closes(std::string_view line, const Fence& f) {
  const Indent in = indent_of(line);
  if (in.columns > 3) return false;
  const size_t n = run_length(line, in.bytes, f.ch);
  return n >= f.len && trim_spaces(line.substr(in.bytes + n)).empty();
}

struct Atx {
  int level = 0;
  std::string_view content;
};

std::optional<Atx> atx_heading(std::string_view line) {
  const Indent in = indent_of(line);
  if (in.columns > 3) return std::nullopt;
  const size_t n = run_length(line, in.bytes, '#');
  if (n < 1 || n > 6) return std::nullopt;
  const size_t after = in.bytes + n;
  if (after < line.size() && line[after] != ' ' && line[after] != '\t') return std::nullopt;
  std::string_view content = trim_spaces(line.substr(after));
  // An optional closing sequence of '#'s, when a space precedes it (or it is all there is).
  size_t end = content.size();
  while (end > 0 && content[end - 1] == '#') --end;
  if (end == 0 || content[end - 1] == ' ' || content[end - 1] == '\t') content = trim_spaces(content.substr(0, end));
  return Atx{static_cast<int>(n), content};
}

// 1 for a '=' underline, 2 for a '-' underline, 0 when the line is neither.
int setext_level(std::string_view line) {
  const Indent in = indent_of(line);
  if (in.columns > 3 || in.bytes >= line.size()) return 0;
  const char c = line[in.bytes];
  if (c != '=' && c != '-') return 0;
  const size_t n = run_length(line, in.bytes, c);
  if (!trim_spaces(line.substr(in.bytes + n)).empty()) return 0;
  return c == '=' ? 1 : 2;
}

bool is_thematic_break(std::string_view line) {
  const Indent in = indent_of(line);
  if (in.columns > 3 || in.bytes >= line.size()) return false;
  const char c = line[in.bytes];
  if (c != '*' && c != '-' && c != '_') return false;
  size_t n = 0;
  for (size_t i = in.bytes; i < line.size(); ++i) {
    if (line[i] == c) {
      ++n;
    } else if (line[i] != ' ' && line[i] != '\t') {
      return false;
    }
  }
  return n >= 3;
}

// A paragraph whose first line is a quote, a list item or indented code cannot take a setext underline.
bool starts_plain_paragraph(std::string_view line) {
  const Indent in = indent_of(line);
  if (in.columns > 3) return false;
  const std::string_view rest = line.substr(in.bytes);
  if (rest.starts_with('>')) return false;
  if (rest.size() >= 2 && (rest[0] == '-' || rest[0] == '*' || rest[0] == '+') && (rest[1] == ' ' || rest[1] == '\t')) {
    return false;
  }
  size_t digits = 0;
  while (digits < rest.size() && digits < 10 && rest[digits] >= '0' && rest[digits] <= '9') ++digits;
  const bool ordered = digits > 0 && digits + 1 < rest.size() && (rest[digits] == '.' || rest[digits] == ')') &&
                       (rest[digits + 1] == ' ' || rest[digits + 1] == '\t');
  return !ordered;
}

// YAML front matter: a first line "---", closed by "---" or "...". Returns where the text after it begins (0 when
// there is none) and sets `title` from a "title:" key.
size_t skip_front_matter(std::string_view text, std::string& title) {
  if (!text.starts_with("---\n")) return 0;
  for (size_t pos = 4; pos < text.size();) {
    size_t end = text.find('\n', pos);
    const std::string_view line = text.substr(pos, end == std::string_view::npos ? end : end - pos);
    const size_t next = end == std::string_view::npos ? text.size() : end + 1;
    if (line == "---" || line == "...") return next;
    if (title.empty() && (line.starts_with("title:") || line.starts_with("Title:"))) {
      std::string_view v = trim_spaces(line.substr(6));
      if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front())
        v = v.substr(1, v.size() - 2);
      title = clean_inline(v);
    }
    pos = next;
  }
  title.clear();  // never closed: not front matter after all
  return 0;
}

class MarkdownScanner {
 public:
  Extracted run(std::string_view text) {
    const size_t start = skip_front_matter(text, result_.title);
    for (size_t pos = start; pos < text.size();) {
      const size_t end = text.find('\n', pos);
      const bool has_newline = end != std::string_view::npos;
      const std::string_view line = text.substr(pos, has_newline ? end - pos : std::string_view::npos);
      take_line(line, has_newline);
      pos = has_newline ? end + 1 : text.size();
    }
    return finish();
  }

 private:
  void take_line(std::string_view line, bool has_newline) {
    if (fence_) {
      if (fence_closes(line, *fence_)) fence_.reset();
      emit(line, has_newline);
    } else if (const auto atx = atx_heading(line); atx && !atx->content.empty()) {
      in_paragraph_ = false;
      add_heading(atx->level, clean_inline(atx->content), out_.size());
      emit(atx->content, has_newline);
    } else if (const int level = setext_level(line); level > 0 && in_paragraph_ && paragraph_plain_) {
      // The underline itself is dropped; the paragraph above becomes the heading.
      in_paragraph_ = false;
      add_heading(level, clean_inline(std::string_view(out_).substr(paragraph_start_)), paragraph_start_);
    } else if ((fence_ = fence_open(line)) || trim_spaces(line).empty() || is_thematic_break(line)) {
      in_paragraph_ = false;  // an opening fence, a blank line or a thematic break ends the paragraph
      emit(line, has_newline);
    } else {
      if (!in_paragraph_) {
        in_paragraph_ = true;
        paragraph_plain_ = starts_plain_paragraph(line);
        paragraph_start_ = out_.size();
      }
      emit(line, has_newline);
    }
  }

  void emit(std::string_view line, bool has_newline) {
    out_.append(line);
    if (has_newline) out_.push_back('\n');
  }

  void add_heading(int level, std::string text, size_t offset) {
    if (text.empty()) return;
    result_.headings.push_back({level, std::move(text), static_cast<int64_t>(offset)});
  }

  Extracted finish() {
    // Dropped lines (front matter, underlines) may leave blank lines to fold; the offsets follow along.
    std::vector<int64_t> offsets;
    offsets.reserve(result_.headings.size());
    for (const Heading& h : result_.headings) offsets.push_back(h.char_offset);
    result_.text = normalize_text(out_, offsets);
    for (size_t i = 0; i < offsets.size(); ++i) result_.headings[i].char_offset = offsets[i];
    if (result_.title.empty() && !result_.headings.empty()) result_.title = result_.headings.front().text;
    return std::move(result_);
  }

  Extracted result_;
  std::string out_;             // the text with heading markers removed, before the final normalization
  std::optional<Fence> fence_;  // the open code fence, if any
  bool in_paragraph_ = false;
  bool paragraph_plain_ = false;  // the open paragraph may take a setext underline
  size_t paragraph_start_ = 0;    // offset in out_ of the open paragraph's first line
};

}  // namespace

Extracted extract_markdown(std::string_view text) { return MarkdownScanner().run(text); }

}  // namespace fkv::ingest
