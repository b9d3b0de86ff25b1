// docqa: questions about real documents, read where Debian installs them on every machine. The documents are the
// license texts of base-files (/usr/share/common-licenses): base-files is Essential, and unlike /usr/share/doc (which
// slim images and many CI containers strip) this folder is never excluded, so the task runs the same everywhere.
//
// A task puts the asked document whole in the prompt, under a "Document: TITLE" header, between padding made of the
// other documents (whole paragraphs, in a seeded order; the last padding document may be cut at a paragraph end).
// The asked document starts at a document boundary near the task's depth. A question is only asked at a length its
// document fits: a document longer than the target is never truncated, so the answer is always in the context (the
// GPL-3 needs about 7.6k tokens, so it is asked from 8k on). Past about 50k tokens the padding runs out, which is
// an error that names the length reached.
// The other documents are hard neighbours: older versions of the same licenses (GPL-2, GFDL-1.2, MPL-1.1) say much
// the same with other numbers and dates. The filler padding (task kind docqa-filler) asks the same questions at the
// same seed with paragraphs of the generated tasks' filler around the document instead, as when a reader opens that
// one document, so the two kinds side by side show what the neighbours cost.
//
// Each question (docqa_questions.cpp) names its document and has an accepted-answer pattern: an ECMAScript regular
// expression matched ignoring case against the answer with whitespace collapsed (count_answers_found). The tests
// check that every pattern occurs in its document, so a changed document cannot silently leave a question without
// an answer.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "eval/eval_tasks.h"
#include "fkv/status.h"

namespace fkv {

class PromptLayout;
class Tokenizer;

struct DocqaDocument {
  std::string_view file;   // name inside TaskOptions::docqa_dir
  std::string_view title;  // as the header and the questions name it
};

struct DocqaQuestion {
  std::string_view file;      // the document that holds the answer
  std::string_view question;  // names the document by its title
  std::string_view pattern;   // accepted answers
};

// Every document read (the asked ones and the padding), and the questions, in a stable order.
std::span<const DocqaDocument> docqa_documents();
std::span<const DocqaQuestion> docqa_questions();

// The text of `file` in `dir`, trailing whitespace removed. Errors name the path and what was expected: a readable
// regular file of at most 1 MiB.
Result<std::string> read_docqa_document(const std::string& dir, std::string_view file);

// Reads every document once, so a long run can fail before it starts rather than when it reaches docqa.
Status check_docqa_documents(const std::string& dir);

enum class DocqaPadding { OtherDocuments, Filler };

// make_tasks for "docqa" and "docqa-filler" (its checks of kind, count and options already done). Task i asks the
// i-th question of a seeded order among those whose document fits `target_tokens`, the same order for both paddings;
// more tasks than such questions ask them again with other padding. Errors: a document missing, no question fits the
// target, or the padding runs out.
Result<std::vector<EvalTask>> make_docqa_tasks(const Tokenizer& tok, const PromptLayout& layout, int target_tokens,
                                               int count, uint64_t seed, const TaskOptions& options,
                                               DocqaPadding padding);

}  // namespace fkv
