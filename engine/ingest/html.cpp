// HTML to text with a tolerant, single-pass scanner (no DOM): tags are read only for their names, entities decoded,
// script/style/noscript/template/iframe/svg/math content and comments dropped, <head> dropped except its <title>,
// block elements become line breaks (paragraph-level ones a blank line), whitespace collapses outside <pre>, and h1-h6
// are recorded as headings. Every search moves the position forward and never rescans, so time is linear; a tag or
// comment that never closes swallows the rest of the input, as it does in a browser.
#include <initializer_list>
#include <string>
#include <vector>

#include "ingest/extract.h"

namespace fkv::ingest {
namespace {

constexpr size_t kMaxTagName = 16;  // longer names are no element this scanner knows

enum class Block { None, Line, Paragraph };

bool one_of(std::string_view name, std::initializer_list<std::string_view> names) {
  for (const std::string_view n : names) {
    if (n == name) return true;
  }
  return false;
}

Block block_kind(std::string_view name) {
  if (one_of(name,
             {"p",    "pre", "blockquote", "table",  "dl",   "section",  "article", "header",  "footer", "hr",
              "main", "nav", "aside",      "figure", "form", "fieldset", "address", "details", "hgroup", "center"})) {
    return Block::Paragraph;
  }
  if (one_of(name, {"div", "li", "tr", "dt", "dd", "caption", "figcaption", "summary", "legend", "option"})) {
    return Block::Line;
  }
  return Block::None;
}

// Elements whose content is never document text. Their content is skipped up to the matching end tag.
bool skips_content(std::string_view name) {
  return one_of(name, {"script", "style", "noscript", "iframe", "svg", "math", "object"});
}

// What may appear inside <head>; anything else means the body has begun.
bool is_head_content(std::string_view name) {
  return one_of(name, {"title", "meta", "link", "base", "script", "style", "noscript", "template", "head", "html"});
}

int heading_level(std::string_view name) {
  return name.size() == 2 && name[0] == 'h' && name[1] >= '1' && name[1] <= '6' ? name[1] - '0' : 0;
}

bool is_tag_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == ':';
}

bool is_ascii_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool is_html_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

class HtmlScanner {
 public:
  explicit HtmlScanner(std::string_view in) : in_(in) { out_.reserve(in.size() / 2); }

  Extracted run() {
    while (pos_ < in_.size()) {
      const char c = in_[pos_];
      if (c == '<') {
        scan_markup();
      } else if (c == '&') {
        scan_entity();
      } else {
        size_t end = in_.find_first_of("<&", pos_);
        if (end == std::string_view::npos) end = in_.size();
        text(in_.substr(pos_, end - pos_));
        pos_ = end;
      }
    }
    finish_heading();
    return finish();
  }

 private:
  // ---- markup ----

  void scan_markup() {
    if (starts_with_ci(in_, pos_, "<!--")) {
      skip_past(in_.find("-->", pos_ + 2), 3);  // from +2 so "<!-->" closes itself, as in browsers
    } else if (starts_with_ci(in_, pos_, "<![cdata[")) {
      const size_t end = in_.find("]]>", pos_ + 9);
      text(in_.substr(pos_ + 9, end == std::string_view::npos ? end : end - pos_ - 9));
      skip_past(end, 3);
    } else if (pos_ + 1 < in_.size() && (in_[pos_ + 1] == '!' || in_[pos_ + 1] == '?')) {
      skip_past(in_.find('>', pos_ + 2), 1);  // doctype, processing instruction, bogus comment
    } else {
      scan_tag();
    }
  }

  void scan_tag() {
    const bool closing = pos_ + 1 < in_.size() && in_[pos_ + 1] == '/';
    const size_t name_start = pos_ + (closing ? 2 : 1);
    if (name_start >= in_.size() || !is_ascii_alpha(in_[name_start])) {
      if (closing) return skip_past(in_.find('>', name_start), 1);  // "</>" or "</ x>": a bogus comment
      text("<");                                                    // "a < b": a literal less-than sign
      ++pos_;
      return;
    }
    size_t name_end = name_start;
    while (name_end < in_.size() && is_tag_name_char(in_[name_end])) ++name_end;
    std::string name;
    if (name_end - name_start <= kMaxTagName) {
      for (size_t i = name_start; i < name_end; ++i) name.push_back(static_cast<char>(in_[i] | 0x20));  // ASCII lower
    }
    const size_t tag_end = find_tag_end(name_end);
    if (tag_end == std::string_view::npos) {
      pos_ = in_.size();  // the input ends inside the tag: it and the rest are dropped
      return;
    }
    const bool self_closing = tag_end >= name_end + 2 && in_[tag_end - 2] == '/';
    pos_ = tag_end;
    if (closing) {
      close_tag(name);
    } else {
      open_tag(name, self_closing);
    }
  }

  // The position after the '>' that ends the tag whose attributes begin at `from`; quoted values may hold '>'.
  size_t find_tag_end(size_t from) const {
    for (size_t i = from; i < in_.size(); ++i) {
      if (in_[i] == '>') return i + 1;
      if (in_[i] != '=') continue;
      size_t j = i + 1;
      while (j < in_.size() && is_html_space(in_[j])) ++j;
      if (j < in_.size() && (in_[j] == '"' || in_[j] == '\'')) {
        const size_t quote_end = in_.find(in_[j], j + 1);
        if (quote_end == std::string_view::npos) return quote_end;
        i = quote_end;
      } else {
        i = j - 1;
      }
    }
    return std::string_view::npos;
  }

  void open_tag(std::string_view name, bool self_closing) {
    if (in_head_ && !is_head_content(name)) in_head_ = false;
    if (name == "head") {
      in_head_ = out_.empty();  // a stray <head> later in the page must not hide the rest
    } else if (name == "body") {
      in_head_ = false;
    } else if (name == "title") {
      take_title();
    } else if (name == "template") {
      skip_template();
    } else if (skips_content(name)) {
      if (!self_closing) skip_to_end_tag(name);
    } else if (name == "br") {
      hard_line_break();
    } else if (const int level = heading_level(name); level > 0) {
      finish_heading();
      block_break(2);
      heading_level_ = level;
      heading_start_ = out_.size();
    } else {
      open_structure(name);
    }
  }

  void open_structure(std::string_view name) {
    if (name == "pre") {
      block_break(2);
      ++pre_depth_;
      if (starts_with_ci(in_, pos_, "\r\n")) ++pos_;  // a newline right after <pre> is not content
      if (pos_ < in_.size() && in_[pos_] == '\n') ++pos_;
    } else if (name == "ul" || name == "ol") {
      block_break(lists_.empty() ? 2 : 1);
      lists_.push_back(name == "ol" ? 1 : 0);
    } else if (name == "li") {
      block_break(1);
      start_list_item();
    } else if (name == "td" || name == "th") {
      if (!out_.empty() && out_.back() != '\n' && out_.back() != '\t') out_.push_back('\t');
      pending_space_ = false;
    } else {
      paragraph_or_line_break(block_kind(name));
    }
  }

  void close_tag(std::string_view name) {
    if (name == "head") {
      in_head_ = false;
    } else if (name == "br") {
      hard_line_break();  // browsers read </br> as <br>
    } else if (heading_level(name) > 0) {
      finish_heading();
      block_break(2);
    } else if (name == "pre") {
      if (pre_depth_ > 0) --pre_depth_;
      block_break(2);
    } else if (name == "ul" || name == "ol") {
      if (!lists_.empty()) lists_.pop_back();
      block_break(lists_.empty() ? 2 : 1);
    } else {
      paragraph_or_line_break(block_kind(name));
    }
  }

  void paragraph_or_line_break(Block kind) {
    if (kind == Block::Paragraph) {
      // Sloppy pages leave headings open; a new paragraph ends one that already has its text.
      if (heading_has_text_) finish_heading();
      block_break(2);
    } else if (kind == Block::Line) {
      block_break(1);
    }
  }

  void start_list_item() {
    if (!lists_.empty() && lists_.back() > 0) {
      text(std::to_string(lists_.back()++) + ". ");
    } else {
      text("- ");
    }
  }

  // ---- content skipping ----

  // Moves past the `skip` bytes at `found`, or to the end when it is npos.
  void skip_past(size_t found, size_t skip) { pos_ = found == std::string_view::npos ? in_.size() : found + skip; }

  // The position of the next "</name" followed by a character that cannot continue the name, from `from`.
  size_t find_end_tag(std::string_view name, size_t from) const {
    std::string needle = "</";
    needle += name;
    for (size_t p = find_ci(in_, needle, from); p != std::string_view::npos; p = find_ci(in_, needle, p + 1)) {
      const size_t after = p + needle.size();
      if (after >= in_.size() || !is_tag_name_char(in_[after])) return p;
    }
    return std::string_view::npos;
  }

  void skip_to_end_tag(std::string_view name) {
    const size_t end = find_end_tag(name, pos_);
    skip_past(end == std::string_view::npos ? end : in_.find('>', end), 1);
  }

  // Templates nest, so count them; any other tag inside is ignored.
  void skip_template() {
    int depth = 1;
    size_t p = pos_;
    while (depth > 0) {
      p = in_.find('<', p);
      if (p == std::string_view::npos) break;
      const bool closes = starts_with_ci(in_, p, "</template");
      const bool opens = !closes && starts_with_ci(in_, p, "<template");
      const size_t after = p + (closes ? 10 : 9);
      if ((closes || opens) && (after >= in_.size() || !is_tag_name_char(in_[after]))) depth += closes ? -1 : 1;
      ++p;
    }
    skip_past(p == std::string_view::npos ? p : in_.find('>', p), 1);
  }

  void take_title() {
    const size_t end = find_end_tag("title", pos_);
    const std::string_view raw = in_.substr(pos_, end == std::string_view::npos ? end : end - pos_);
    if (title_.empty()) {
      std::string decoded;
      for (size_t i = 0; i < raw.size();) {
        const size_t n = raw[i] == '&' ? decode_entity(raw, i, decoded) : 0;
        if (n == 0) decoded.push_back(raw[i]);
        i += n == 0 ? 1 : n;
      }
      title_ = clean_inline(decoded);
    }
    skip_past(end == std::string_view::npos ? end : in_.find('>', end), 1);
  }

  // ---- text ----

  void scan_entity() {
    scratch_.clear();
    const size_t n = decode_entity(in_, pos_, scratch_);
    if (n == 0) {
      text("&");
      ++pos_;
      return;
    }
    text(scratch_);
    pos_ += n;
  }

  void text(std::string_view s) {
    if (in_head_) {
      if (is_blank(s)) return;
      in_head_ = false;  // text in <head> starts the body, as in browsers
    }
    if (pre_depth_ > 0) {
      out_.append(s);
      pending_space_ = false;
      if (heading_level_ > 0 && !is_blank(s)) heading_has_text_ = true;
      return;
    }
    for (const char c : s) {
      if (is_html_space(c)) {
        pending_space_ = true;
        continue;
      }
      if (pending_space_ && !out_.empty() && !is_html_space(out_.back())) out_.push_back(' ');
      pending_space_ = false;
      out_.push_back(c);
      if (heading_level_ > 0) heading_has_text_ = true;
    }
  }

  // Ends the line at most `n_newlines` times over: consecutive blocks share their breaks.
  void block_break(int n_newlines) {
    pending_space_ = false;
    if (out_.empty()) return;
    int have = 0;
    for (size_t i = out_.size(); i > 0 && have < n_newlines && out_[i - 1] == '\n'; --i) ++have;
    out_.append(static_cast<size_t>(n_newlines - have), '\n');
  }

  void hard_line_break() {
    pending_space_ = false;
    if (!in_head_) out_.push_back('\n');
  }

  void finish_heading() {
    if (heading_level_ == 0) return;
    std::string heading_text = clean_inline(std::string_view(out_).substr(heading_start_));
    if (!heading_text.empty()) {
      headings_.push_back({heading_level_, std::move(heading_text), static_cast<int64_t>(heading_start_)});
    }
    heading_level_ = 0;
    heading_has_text_ = false;
  }

  Extracted finish() {
    Extracted result;
    std::vector<int64_t> offsets;  // (n_headings)
    offsets.reserve(headings_.size());
    for (const Heading& h : headings_) offsets.push_back(h.char_offset);
    result.text = normalize_text(out_, offsets);
    for (size_t i = 0; i < offsets.size(); ++i) headings_[i].char_offset = offsets[i];
    result.headings = std::move(headings_);
    result.title = std::move(title_);
    return result;
  }

  std::string_view in_;
  size_t pos_ = 0;
  std::string out_;      // text before normalization
  std::string scratch_;  // one decoded entity
  std::string title_;
  std::vector<Heading> headings_;  // (n_headings) offsets into out_ until finish()
  std::vector<int> lists_;         // (list depth) next item number of each open <ol>, 0 for <ul>
  bool pending_space_ = false;     // source whitespace seen since the last character written
  bool in_head_ = false;
  int pre_depth_ = 0;
  int heading_level_ = 0;     // the open heading, 0 when none
  size_t heading_start_ = 0;  // offset in out_ where the open heading's text begins
  bool heading_has_text_ = false;
};

}  // namespace

Extracted extract_html(std::string_view text) { return HtmlScanner(text).run(); }

}  // namespace fkv::ingest
