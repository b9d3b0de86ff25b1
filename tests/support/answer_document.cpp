#include "support/answer_document.h"

#include <cctype>
#include <iterator>
#include <random>

namespace fkvtest {

namespace {

std::string filler(std::mt19937& rng, int n_words) {
  static const char* const k_words[] = {"the",     "harbour", "board", "met",    "on",     "tuesday", "to",
                                        "review",  "cargo",   "pier",  "clerks", "filed",  "reports", "tonnage",
                                        "weather", "staff",   "crane", "tide",   "ledger", "north"};
  std::string out;
  for (int i = 0; i < n_words; ++i) {
    out += k_words[rng() % std::size(k_words)];
    out += i + 1 == n_words ? ". " : " ";
  }
  out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
  return out;
}

}  // namespace

std::string harbour_report() {
  std::mt19937 rng(7);
  std::string s = "# Harbour Board Annual Report\n\n## 1. Overview\n\n" + filler(rng, 60);
  s += "\n\n## 2. Staff\n\n" + filler(rng, 50) + "The chief engineer of the harbour is Marta Velasquez. " +
       filler(rng, 40);
  s += "\n\n## 3. Cargo\n\n" + filler(rng, 40) +
       "\n\n| Month | Containers |\n|---|---|\n| January | 1,204 |\n| February | 987 |\n| March | 1,530 |\n"
       "| April | 1,112 |\n\n" +
       filler(rng, 40);
  s += "\n\n## 4. Security\n\n" + filler(rng, 60) + "The access code for the archive room is 4817. " + filler(rng, 60);
  s += "\n\n## 5. Outlook\n\n" + filler(rng, 80) + "\n";
  return s;
}

const std::vector<AnswerCase>& harbour_questions() {
  static const std::vector<AnswerCase> cases = {
      {"needle", "What is the access code for the archive room?", {"4817"}},
      {"table", "How many containers were handled in March?", {"1,530", "1530"}},
      {"section", "Who is the chief engineer of the harbour?", {"Marta Velasquez"}},
  };
  return cases;
}

bool answer_is_right(const std::string& answer, const AnswerCase& c) {
  for (const std::string& want : c.accepted) {
    if (answer.find(want) != std::string::npos) return true;
  }
  return false;
}

}  // namespace fkvtest
