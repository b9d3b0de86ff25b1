// Offline long-context tasks for comparing attention policies: seeded, no downloads.
// Generated kinds (RULER-style): passkey (one number hidden in filler), multikey (several "special magic number"
// pairs, some asked for), vartrack (chains of variable assignments; which variables hold a value) and qa (a generated
// report of facts about made-up people, organizations, cities and years; one question). Filler is made of varied
// generated sentences without digits, so only the needles hold numbers.
// docqa: a question about a real document Debian ships on every machine (base-files' license texts), answered by a
// pattern, with the other license texts around it; docqa-filler: the same questions with the generated filler around
// the document instead, as when a reader opens that one document; see docqa.h.
// Prompt styles: completion prompts end with an answer cue ("The passkey is") that base models continue; chat
// prompts put the text and the question in the user turn of the model's chat template, for instruct models.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fkv/status.h"
#include "tokenizer/chat_template.h"

namespace fkv {

class GgufFile;
class Tokenizer;

enum class PromptStyle { Completion, Chat };
const char* prompt_style_name(PromptStyle s);  // "completion", "chat"

struct TaskPrompt {
  PromptStyle style = PromptStyle::Completion;
  ChatTemplate chat_template = ChatTemplate::ChatML;  // when style is Chat
  std::string system;  // when style is Chat: a system turn before the user's, none when empty
};

// What the user asks for: auto follows the model (chat when its GGUF carries a chat template of a known family, as an
// instruct model's does; completion otherwise), the others force a style.
enum class PromptMode { Auto, Chat, Completion };
const char* prompt_mode_name(PromptMode m);  // "auto", "chat", "completion"
Result<PromptMode> parse_prompt_mode(std::string_view name);
// Errors: chat asked for a model whose template family is unknown (the detector's message).
Result<TaskPrompt> choose_task_prompt(const GgufFile& model, PromptMode mode);

struct TaskOptions {
  int multikey_pairs = 4;        // key-value pairs hidden in a multikey prompt
  int multikey_queries = 2;      // of those, asked for (answers: their numbers)
  int vartrack_hops = 4;         // variables in the chain that carries the asked value (answers: their names)
  int vartrack_distractors = 1;  // further chains with other values
  int qa_facts = 8;              // facts in a qa report; one is asked about
  double depth = -1;             // passkey and docqa: where the needle or the asked document sits, 0..1;
                                 // negative: task i of n at (i + 0.5) / n (other kinds spread their needles over
                                 // the whole filler)
  TaskPrompt prompt;             // completion or chat
  std::string docqa_dir = "/usr/share/common-licenses";  // where docqa reads its documents
  Status validate() const;
};

struct EvalTask {
  std::string kind;  // passkey, multikey, vartrack, qa, docqa or docqa-filler
  PromptStyle style = PromptStyle::Completion;
  std::string prompt;                 // the text: completion style ends with the answer cue, chat style with the
                                      // opening of the assistant's turn
  std::vector<std::string> answers;   // every one must appear in the model's answer for an exact match
  bool answers_are_patterns = false;  // docqa: answers are patterns (see count_answers_found)
  std::string answer;                 // answers joined with ", " (for display)
  std::string document;               // docqa: the file asked about
  std::vector<int32_t> tokens;        // (n_tokens) the prompt tokenized, BOS as the vocabulary asks
  int n_tokens = 0;
  double depth = 0;  // relative position of the first needle in the filler (docqa: of the asked document), 0..1
};

// The kinds make_tasks accepts, in a stable order.
std::span<const std::string_view> task_kinds();
// docqa and docqa-filler: questions about Debian's license texts, which must be installed.
bool is_docqa_kind(std::string_view kind);

// `count` tasks of `kind`, each tokenizing to at most `target_tokens` and short of it by less than one filler
// sentence (docqa: one paragraph of a padding document). The same arguments give the same tasks. Errors: unknown kind,
// count < 1, bad options, or a target too short for the task's fixed text (the message names both lengths).
Result<std::vector<EvalTask>> make_tasks(const Tokenizer& tok, std::string_view kind, int target_tokens, int count,
                                         uint64_t seed, const TaskOptions& options);
// With the default options. (An overload rather than a defaulted argument: GCC 12 at -O3 warns that the temporary's
// strings may be used uninitialized.)
Result<std::vector<EvalTask>> make_tasks(const Tokenizer& tok, std::string_view kind, int target_tokens, int count,
                                         uint64_t seed);

// Exact-match scoring: how many of `answers` occur in `output`, and whether all of them do.
int count_answers_found(std::string_view output, std::span<const std::string> answers);
bool answers_match(std::string_view output, std::span<const std::string> answers);
// The same for a task: literal answers as above; patterns are ECMAScript regular expressions searched, ignoring case,
// in `output` with every run of whitespace made one space (a pattern that does not compile matches nothing).
int count_answers_found(const EvalTask& task, std::string_view output);
bool answers_match(const EvalTask& task, std::string_view output);
// Whether `pattern` (as above) occurs in `text`; errors if it does not compile.
Result<bool> pattern_occurs(std::string_view pattern, std::string_view text);

}  // namespace fkv
