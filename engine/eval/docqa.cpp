// docqa task building: the asked document whole, padded with other documents to the target length.
#include "eval/docqa.h"

#include <sys/stat.h>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>

#include "eval/eval_prompt.h"

namespace fkv {

namespace {

constexpr int64_t kMaxDocumentBytes = 1 << 20;  // the largest license text is 36 KB

constexpr std::string_view kIntro =
    "Below are license texts that Debian ships with every system, one after another. Read them carefully; a question "
    "about one of them follows.\n\n";
constexpr std::string_view kFillerIntro =
    "Below is a license text that Debian ships with every system, set among unrelated sentences. Read it carefully; a "
    "question about it follows.\n\n";
constexpr int kFillerSentences = 5;  // per paragraph of filler padding

std::string header(const DocqaDocument& d) { return "Document: " + std::string(d.title) + "\n\n"; }

// Paragraphs (separated by blank lines) with their line breaks kept; the first one carries the document's header.
std::vector<std::string> paragraphs(const DocqaDocument& d, const std::string& text) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find("\n\n", at);
    if (end == std::string::npos) end = text.size();
    std::string p = text.substr(at, end - at);
    if (p.find_first_not_of(" \t\n") != std::string::npos) out.push_back(std::move(p));
    at = text.find_first_not_of('\n', end);
    if (at == std::string::npos) break;
  }
  if (!out.empty()) out[0] = header(d) + out[0];
  return out;
}

struct Library {
  std::vector<std::string> texts;  // (n_documents) as docqa_documents() orders them
};

Result<Library> read_library(const std::string& dir) {
  Library lib;
  for (const DocqaDocument& d : docqa_documents()) {
    FKV_ASSIGN_OR_RETURN(std::string text, read_docqa_document(dir, d.file));
    lib.texts.push_back(std::move(text));
  }
  return lib;
}

size_t document_index(std::string_view file) {
  const auto docs = docqa_documents();
  return static_cast<size_t>(std::find_if(docs.begin(), docs.end(), [&](auto& d) { return d.file == file; }) -
                             docs.begin());
}

// One task's padding: the other documents' paragraphs in a seeded document order.
struct Padding {
  std::vector<std::string> units;  // paragraphs
  std::vector<int> starts;         // unit indices where a document begins, ascending
};

Padding make_padding(const Library& lib, size_t asked, Rng& r) {
  std::vector<size_t> order;
  for (size_t i = 0; i < lib.texts.size(); ++i) {
    if (i != asked) order.push_back(i);
  }
  r.shuffle(order);
  Padding p;
  for (size_t i : order) {
    p.starts.push_back(static_cast<int>(p.units.size()));
    for (std::string& u : paragraphs(docqa_documents()[i], lib.texts[i])) p.units.push_back(std::move(u));
  }
  return p;
}

// Paragraphs of generated filler, enough for `target_tokens` (a sentence is at least 6 tokens); the asked document
// may sit between any two.
Padding make_filler_padding(int target_tokens, Rng& r) {
  Padding p;
  const int n = target_tokens / (6 * kFillerSentences) + 1;
  for (int i = 0; i < n; ++i) {
    std::string u;
    for (int k = 0; k < kFillerSentences; ++k) {
      if (k > 0) u += ' ';
      u += filler_sentence(r);
    }
    p.starts.push_back(i);
    p.units.push_back(std::move(u));
  }
  return p;
}

// Units before the asked document when `n` units pad: the document boundary (or n) nearest to depth * n.
int split_at(const Padding& p, int n, double depth) {
  int best = n;
  for (int s : p.starts) {
    if (s <= n && std::abs(s - depth * n) < std::abs(best - depth * n)) best = s;
  }
  return best;
}

std::string body(const Padding& p, const std::string& asked, int n, double depth) {
  const int before = split_at(p, n, depth);
  std::string s;
  auto add = [&](const std::string& part) {
    if (!s.empty()) s += "\n\n";
    s += part;
  };
  for (int i = 0; i < before; ++i) add(p.units[static_cast<size_t>(i)]);
  add(asked);
  for (int i = before; i < n; ++i) add(p.units[static_cast<size_t>(i)]);
  return s;
}

Result<EvalTask> docqa_task(const Tokenizer& tok, const PromptLayout& layout, const Library& lib,
                            const DocqaQuestion& q, int target, double depth, DocqaPadding padding, Rng& r) {
  const size_t asked = document_index(q.file);
  const bool filler = padding == DocqaPadding::Filler;
  const Padding pad = filler ? make_filler_padding(target, r) : make_padding(lib, asked, r);
  const std::string asked_text = header(docqa_documents()[asked]) + lib.texts[asked];
  TaskText text;
  text.intro = std::string(filler ? kFillerIntro : kIntro);
  text.question = std::string(q.question);
  text.completion_tail = "\n\nQuestion: " + text.question + "\nAnswer:";
  double placed = 0;  // where the last body built put the asked document, 0..1 of the padding
  const BodyOf grow = [&](int n) {
    placed = n > 0 ? static_cast<double>(split_at(pad, n, depth)) / n : 0;
    return body(pad, asked_text, n, depth);
  };
  // A paragraph of padding is rarely over 300 tokens; the filler has run out only when all of it fits short of that.
  FKV_ASSIGN_OR_RETURN(EvalTask t, fit_prompt(tok, layout, text, grow, target, static_cast<int>(pad.units.size()),
                                              /*slack=*/300));
  t.answers = {std::string(q.pattern)};
  t.answers_are_patterns = true;
  t.document = std::string(q.file);
  t.depth = placed;  // fit_prompt's last body is the task's
  return t;
}

bool too_short(const Status& s) { return s.message().find("is too short") != std::string::npos; }

}  // namespace

Result<std::string> read_docqa_document(const std::string& dir, std::string_view file) {
  const std::string path = dir + "/" + std::string(file);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return err("docqa: expected the document ", path, " (Debian's base-files ships it), found: ", std::strerror(errno));
  if (!S_ISREG(st.st_mode) || st.st_size > kMaxDocumentBytes)
    return err("docqa: expected ", path, " to be a regular file of at most ", kMaxDocumentBytes, " bytes, found ",
               S_ISREG(st.st_mode) ? std::to_string(st.st_size) + " bytes" : std::string("another kind of file"));
  std::ifstream in(path, std::ios::binary);
  std::string text(static_cast<size_t>(st.st_size), '\0');
  if (!in.read(text.data(), st.st_size)) return err("docqa: could not read ", path, ": ", std::strerror(errno));
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) text.pop_back();
  return text;
}

Status check_docqa_documents(const std::string& dir) { return read_library(dir).status(); }

Result<std::vector<EvalTask>> make_docqa_tasks(const Tokenizer& tok, const PromptLayout& layout, int target_tokens,
                                               int count, uint64_t seed, const TaskOptions& options,
                                               DocqaPadding padding) {
  FKV_ASSIGN_OR_RETURN(const Library lib, read_library(options.docqa_dir));
  const std::span<const DocqaQuestion> questions = docqa_questions();
  std::vector<size_t> order(questions.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  Rng order_rng(mix_seed(seed, "docqa", target_tokens, -1));
  order_rng.shuffle(order);
  std::set<size_t> too_long;  // questions whose document does not fit the target
  std::vector<EvalTask> tasks;
  size_t next = 0;  // position in `order`
  for (int i = 0; i < count; ++i) {
    Rng r(mix_seed(seed, "docqa", target_tokens, i));
    const double depth = options.depth < 0 ? (i + 0.5) / count : options.depth;
    for (;;) {
      if (too_long.size() == order.size())
        return err("docqa: target length ", target_tokens, " tokens is too short for every document asked about");
      const size_t q = order[next++ % order.size()];
      if (too_long.count(q) != 0) continue;
      Result<EvalTask> t = docqa_task(tok, layout, lib, questions[q], target_tokens, depth, padding, r);
      if (!t.ok() && too_short(t.status())) {
        too_long.insert(q);
        continue;
      }
      if (!t.ok()) return err("docqa: ", t.message());
      tasks.push_back(std::move(t).value());
      break;
    }
  }
  return tasks;
}

}  // namespace fkv
