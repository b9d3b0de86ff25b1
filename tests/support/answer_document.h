// A generated report with three facts a model can only know from reading it, and the questions that ask for them:
// the end-to-end suites on the default model (tests/slow/test_qwen_answers, tests/ui/test_desk_answers) check that
// the answers hold the facts. Filler around the facts is seeded, so every run reads the same document.
#pragma once

#include <string>
#include <vector>

namespace fkvtest {

struct AnswerCase {
  const char* name;
  const char* question;
  std::vector<std::string> accepted;  // an answer is right when it contains any of these
};

std::string harbour_report();                    // markdown, about 600 tokens
const std::vector<AnswerCase>& harbour_questions();  // needle sentence, table value, name in a section
bool answer_is_right(const std::string& answer, const AnswerCase& c);

}  // namespace fkvtest
