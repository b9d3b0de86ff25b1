// Offline long-context tasks for comparing attention policies: seeded, generated text, no downloads.
// Kinds (RULER-style): passkey (one number hidden in filler), multikey (several "special magic number" pairs, some
// asked for), vartrack (chains of variable assignments; which variables hold a value) and qa (a generated report of
// facts about made-up people, organizations, cities and years; one question). Filler is made of varied generated
// sentences without digits, so only the needles hold numbers. Every prompt ends with an answer cue ("The passkey is"),
// so base models answer by completion.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fkv/status.h"

namespace fkv {

class Tokenizer;

struct TaskOptions {
  int multikey_pairs = 4;        // key-value pairs hidden in a multikey prompt
  int multikey_queries = 2;      // of those, asked for (answers: their numbers)
  int vartrack_hops = 4;         // variables in the chain that carries the asked value (answers: their names)
  int vartrack_distractors = 1;  // further chains with other values
  int qa_facts = 8;              // facts in a qa report; one is asked about
  double depth = -1;             // passkey: where it sits, 0..1; negative: task i of n at (i + 0.5) / n (other
                                 // kinds spread their needles over the whole filler)
  Status validate() const;
};

struct EvalTask {
  std::string kind;                  // passkey, multikey, vartrack or qa
  std::string prompt;                // the text, ending with the answer cue
  std::vector<std::string> answers;  // every one must appear in the model's answer for an exact match
  std::string answer;                // answers joined with ", " (for display)
  std::vector<int32_t> tokens;       // (n_tokens) the prompt tokenized, BOS as the vocabulary asks
  int n_tokens = 0;
  double depth = 0;  // relative position of the first needle in the filler, 0..1
};

// The kinds make_tasks accepts, in a stable order.
std::span<const std::string_view> task_kinds();

// `count` tasks of `kind`, each tokenizing to at most `target_tokens` and short of it by less than one filler
// sentence. The same arguments give the same tasks. Errors: unknown kind, count < 1, bad options, or a target too
// short for the task's fixed text (the message names both lengths).
Result<std::vector<EvalTask>> make_tasks(const Tokenizer& tok, std::string_view kind, int target_tokens, int count,
                                         uint64_t seed, const TaskOptions& options = {});

// Exact-match scoring: how many of `answers` occur in `output`, and whether all of them do.
int count_answers_found(std::string_view output, std::span<const std::string> answers);
bool answers_match(std::string_view output, std::span<const std::string> answers);

}  // namespace fkv
