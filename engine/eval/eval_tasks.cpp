// Long-context task generation. A task is a blueprint (intro, needles at relative depths, question with an answer
// cue) plus filler sentences; the filler grows until the tokenized prompt is as long as asked.
#include "eval/eval_tasks.h"

#include <algorithm>
#include <cctype>
#include <cmath>
// GCC 12 at -O1 with the sanitizers (the debug-asan preset) warns that std::regex's own std::function members "may be
// used uninitialized" inside <regex>; the warning is about the library's code, not this file's, and -Werror would
// stop the build, so it is silenced for this file's instantiations of it.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <regex>
#include <set>

#include "core/gguf.h"
#include "eval/docqa.h"
#include "eval/eval_prompt.h"
#include "tokenizer/tokenizer.h"

namespace fkv {

namespace {

// Filler vocabulary: everyday scenes, no digits, nothing that looks like a needle.
constexpr std::string_view kSubjects[] = {
    "the old gardener", "a quiet librarian",  "the ferry captain",     "a young painter",
    "the night baker",  "the village doctor", "a travelling musician", "the head cook",
    "a retired sailor", "the museum guard",   "a curious student",     "the weaver",
    "a tired shepherd", "the school teacher", "a patient fisherman",   "the blacksmith",
    "a street vendor",  "the postman",        "a cheerful nurse",      "the carpenter"};
constexpr std::string_view kVerbsPast[] = {"repaired", "painted",  "carried",  "studied",  "described", "cleaned",
                                           "arranged", "measured", "sketched", "polished", "collected", "examined",
                                           "wrapped",  "admired",  "moved",    "mended"};
constexpr std::string_view kObjects[] = {
    "the wooden bench",   "a basket of apples", "the narrow bridge", "an old map",       "the copper kettle",
    "a stack of letters", "the garden gate",    "a faded blanket",   "the clock tower",  "a box of buttons",
    "the village well",   "a pair of boots",    "the stone wall",    "a jar of honey",   "the fishing nets",
    "a bundle of reeds",  "the iron lantern",   "a set of brushes",  "the painted door", "a bag of flour"};
constexpr std::string_view kPlaces[] = {
    "near the harbor",   "behind the bakery",         "along the river",    "under the oak trees",
    "beside the market", "at the edge of the forest", "inside the library", "on the hill above the town",
    "by the old mill",   "across the square",         "in the back garden", "next to the chapel"};
constexpr std::string_view kTimes[] = {
    "early in the morning", "after the rain stopped", "before supper", "on a windy afternoon",
    "late at night",        "during the festival",    "at dawn",       "in the spring",
    "when the bells rang",  "on a grey day"};
constexpr std::string_view kManners[] = {"slowly",          "carefully",       "with great patience", "without a word",
                                         "cheerfully",      "in silence",      "with some effort",    "as usual",
                                         "absent-mindedly", "with quiet pride"};
constexpr std::string_view kNouns[] = {"sky",    "road",   "kitchen", "lake",    "meadow", "workshop",
                                       "street", "garden", "harbor",  "orchard", "valley", "courtyard"};
constexpr std::string_view kAdjectives[] = {"calm",  "bright", "cold",  "dusty", "crowded", "empty",
                                            "green", "warm",   "noisy", "still", "misty",   "golden"};
constexpr std::string_view kGroups[] = {"the children", "the neighbours", "a few travellers", "the merchants",
                                        "the farmers",  "the pigeons",    "the old friends",  "the dancers"};
constexpr std::string_view kVerbsPresent[] = {"gather", "wait", "talk", "sing", "rest", "work", "argue", "laugh"};

// Needle vocabulary.
constexpr std::string_view kKeyAdjectives[] = {"amber",  "brisk",  "coral", "dusky", "elder", "frosty", "gilded",
                                               "hollow", "ivory",  "jolly", "keen",  "lunar", "mossy",  "noble",
                                               "plush",  "rustic", "tawny", "umber", "vivid", "zesty"};
constexpr std::string_view kKeyNouns[] = {"falcon", "lantern", "anchor", "thistle", "compass", "cobble", "ember",
                                          "willow", "garnet",  "quill",  "beacon",  "saddle",  "pebble", "orchid",
                                          "marble", "ripple",  "summit", "badger",  "walnut",  "heron"};
constexpr std::string_view kFirstNames[] = {"Alma", "Bruno", "Celia",  "Dario",  "Elena",  "Farid", "Greta", "Hugo",
                                            "Ines", "Jonas", "Kira",   "Lionel", "Mira",   "Nils",  "Olga",  "Pavel",
                                            "Rosa", "Soren", "Tamsin", "Ulla",   "Viktor", "Wanda", "Yara",  "Zeno"};
constexpr std::string_view kNameHeads[] = {"Ar",  "Bel", "Cor", "Dun", "El", "Fen", "Gar",  "Hal", "Ism", "Jar",
                                           "Kel", "Lor", "Mar", "Nor", "Or", "Pel", "Quin", "Ros", "Sel", "Tor"};
constexpr std::string_view kNameTails[] = {"bright", "dale",  "ford",  "gate", "holm", "kirk", "ley",  "mere",
                                           "mont",   "ridge", "stead", "ton",  "vale", "wick", "wood", "brook"};
constexpr std::string_view kPlaceHeads[] = {"Quil", "Vel", "Mor", "Tal", "Bra", "Zen",  "Ost", "Kar",
                                            "Lun",  "Dra", "Sil", "Fer", "Gav", "Hesk", "Nim", "Pra"};
constexpr std::string_view kPlaceTails[] = {"ona",    "amar", "ith", "oria", "avel", "ennor",
                                            "opolis", "ura",  "esk", "anth", "iva",  "umbra"};
constexpr std::string_view kOrgTypes[] = {"Institute", "Foundation", "Observatory", "Trading Company", "Orchestra",
                                          "Museum",    "Library",    "Seed Bank",   "Shipyard",        "Academy"};

std::string capitalized(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

std::string cat(std::initializer_list<std::string_view> parts) {
  std::string s;
  for (std::string_view p : parts) s += p;
  return s;
}

}  // namespace

std::string filler_sentence(Rng& r) {
  switch (r.below(6)) {
    case 0:
      return capitalized(cat({r.pick(kTimes), ", ", r.pick(kSubjects), " ", r.pick(kVerbsPast), " ", r.pick(kObjects),
                              " ", r.pick(kPlaces), "."}));
    case 1:
      return capitalized(
          cat({r.pick(kSubjects), " ", r.pick(kVerbsPast), " ", r.pick(kObjects), " ", r.pick(kManners), "."}));
    case 2:
      return cat({"The ", r.pick(kNouns), " ", r.pick(kPlaces), " was ", r.pick(kAdjectives), " and ",
                  r.pick(kAdjectives), "."});
    case 3:
      return cat(
          {"Nobody remembered why ", r.pick(kSubjects), " had ", r.pick(kVerbsPast), " ", r.pick(kObjects), "."});
    case 4:
      return capitalized(cat({r.pick(kPlaces), ", ", r.pick(kGroups), " ", r.pick(kVerbsPresent), " ", r.pick(kManners),
                              " while ", r.pick(kSubjects), " watches."}));
    default:
      return cat({"It was ", r.pick(kAdjectives), " ", r.pick(kTimes), ", so ", r.pick(kSubjects), " stayed ",
                  r.pick(kPlaces), "."});
  }
}

namespace {

// "a", "a and b", "a, b and c".
std::string join_and(std::span<const std::string> items) {
  std::string s;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) s += (i + 1 == items.size()) ? " and " : ", ";
    s += items[i];
  }
  return s;
}

// Draws from `make` until the result is new; the word lists are large enough for every option validate() allows.
template <class Make>
std::string fresh(std::set<std::string>& used, Make make) {
  for (;;) {
    std::string s = make();
    if (used.insert(s).second) return s;
  }
}

struct Needle {
  double depth = 0;  // 0..1, position among the filler sentences
  std::string text;
};

struct Blueprint {
  TaskText text;
  std::vector<Needle> needles;  // ascending depth
  std::vector<std::string> answers;
};

// The two ways a question is put: "\n\nWhat is X? X is" (question_cue) and "\n\nQuestion: ...\nAnswer: cue"
// (labelled); chat style asks the question alone.
void question_cue(Blueprint& b, const std::string& question, const std::string& cue) {
  b.text.question = question;
  b.text.completion_tail = "\n\n" + question + " " + cue;
}
void labelled(Blueprint& b, const std::string& question, const std::string& cue) {
  b.text.question = question;
  b.text.completion_tail = "\n\nQuestion: " + question + "\nAnswer: " + cue;
}

// `n` depths in ascending order, one in each of n equal slots, jittered inside the middle of the slot.
std::vector<double> spread_depths(Rng& r, int n) {
  std::vector<double> d(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) d[static_cast<size_t>(i)] = (i + 0.2 + 0.6 * r.unit()) / n;
  return d;
}

Blueprint passkey_task(Rng& r, double depth) {
  Blueprint b;
  const std::string key = r.number(5 + r.below(3));
  // The intro never says "passkey": a small model would copy whatever follows the word there instead of the key.
  b.text.intro =
      "A secret number is hidden somewhere in the following text. Find it and memorize it; I will ask you "
      "about it at the end.\n\n";
  b.needles.push_back({depth, "The passkey is " + key + ". Remember it."});
  question_cue(b, "What is the passkey?", "The passkey is");
  b.answers = {key};
  return b;
}

Blueprint multikey_task(Rng& r, const TaskOptions& o) {
  Blueprint b;
  b.text.intro =
      "Some special magic numbers are hidden inside the following text. Make sure to memorize them. "
      "I will quiz you about the numbers afterwards.\n\n";
  std::set<std::string> used;
  std::vector<std::string> keys, values;
  const std::vector<double> depths = spread_depths(r, o.multikey_pairs);
  for (int i = 0; i < o.multikey_pairs; ++i) {
    keys.push_back(fresh(used, [&] { return cat({r.pick(kKeyAdjectives), "-", r.pick(kKeyNouns)}); }));
    values.push_back(fresh(used, [&] { return r.number(7); }));
    b.needles.push_back(
        {depths[static_cast<size_t>(i)], "The special magic number for " + keys.back() + " is " + values.back() + "."});
  }
  std::vector<int> order(static_cast<size_t>(o.multikey_pairs));
  for (int i = 0; i < o.multikey_pairs; ++i) order[static_cast<size_t>(i)] = i;
  for (int i = o.multikey_pairs - 1; i > 0; --i) std::swap(order[static_cast<size_t>(i)], order[r.below(i + 1)]);
  std::vector<std::string> asked;
  for (int i = 0; i < o.multikey_queries; ++i) {
    asked.push_back(keys[static_cast<size_t>(order[static_cast<size_t>(i)])]);
    b.answers.push_back(values[static_cast<size_t>(order[static_cast<size_t>(i)])]);
  }
  const std::string names = join_and(asked);
  if (o.multikey_queries == 1) {
    question_cue(b, "What is the special magic number for " + names + "?",
                 "The special magic number for " + names + " is");
  } else {
    question_cue(b, "What are the special magic numbers for " + names + "?",
                 "The special magic numbers for " + names + " are");
  }
  return b;
}

Blueprint vartrack_task(Rng& r, const TaskOptions& o) {
  Blueprint b;
  b.text.intro = "Memorize and track the chains of variable assignments hidden in the following text.\n\n";
  const int n_chains = 1 + o.vartrack_distractors;
  std::set<std::string> used;
  std::vector<std::vector<std::string>> names(static_cast<size_t>(n_chains));  // (n_chains, hops)
  std::vector<std::string> values;
  for (auto& chain : names) {
    values.push_back(fresh(used, [&] { return r.number(5); }));
    for (int h = 0; h < o.vartrack_hops; ++h) {
      chain.push_back(fresh(used, [&] {
        std::string s;
        for (int i = 0; i < 5; ++i) s += static_cast<char>('A' + r.below(26));
        return s;
      }));
    }
  }
  // Hop by hop, the chains in a random order: each chain's statements stay in assignment order.
  std::vector<std::string> statements;
  for (int h = 0; h < o.vartrack_hops; ++h) {
    const int first = r.below(n_chains);
    for (int c = 0; c < n_chains; ++c) {
      const auto& chain = names[static_cast<size_t>((first + c) % n_chains)];
      const std::string& rhs =
          h == 0 ? values[static_cast<size_t>((first + c) % n_chains)] : "VAR " + chain[static_cast<size_t>(h - 1)];
      statements.push_back("VAR " + chain[static_cast<size_t>(h)] + " = " + rhs + ".");
    }
  }
  const std::vector<double> depths = spread_depths(r, static_cast<int>(statements.size()));
  for (size_t i = 0; i < statements.size(); ++i) b.needles.push_back({depths[i], statements[i]});
  b.answers = names[0];
  labelled(b, "Find all variables that are assigned the value " + values[0] + " in the text above.",
           "According to the chains of variable assignments in the text above, " + std::to_string(o.vartrack_hops) +
               " variables are assigned the value " + values[0] + ", they are:");
  return b;
}

struct Fact {
  std::string org, person, city, year;
};

std::string fact_sentence(Rng& r, const Fact& f) {
  switch (r.below(3)) {
    case 0:
      return capitalized(f.org) + " was founded by " + f.person + " in the city of " + f.city + " in the year " +
             f.year + ".";
    case 1:
      return "In the year " + f.year + ", " + f.person + " founded " + f.org + " in the city of " + f.city + ".";
    default:
      return f.person + " started " + f.org + " in the city of " + f.city + "; that was in the year " + f.year + ".";
  }
}

Blueprint qa_task(Rng& r, const TaskOptions& o) {
  Blueprint b;
  std::set<std::string> used;
  auto place = [&] { return cat({r.pick(kPlaceHeads), r.pick(kPlaceTails)}); };
  b.text.intro =
      "The following is the annual report of the " + fresh(used, place) +
      " Historical Society. It mentions many people, organizations and places. Read it carefully; a question "
      "about it follows.\n\n";
  std::vector<Fact> facts;
  const std::vector<double> depths = spread_depths(r, o.qa_facts);
  for (int i = 0; i < o.qa_facts; ++i) {
    Fact f;
    f.org = "the " + fresh(used, place) + " " + std::string(r.pick(kOrgTypes));
    f.person = fresh(used, [&] { return cat({r.pick(kFirstNames), " ", r.pick(kNameHeads), r.pick(kNameTails)}); });
    f.city = fresh(used, place);
    f.year = std::to_string(1800 + r.below(220));
    b.needles.push_back({depths[static_cast<size_t>(i)], fact_sentence(r, f)});
    facts.push_back(std::move(f));
  }
  const Fact& f = facts[static_cast<size_t>(r.below(o.qa_facts))];
  const std::string org = capitalized(f.org);
  switch (r.below(3)) {
    case 0:
      labelled(b, "In which city was " + f.org + " founded?", org + " was founded in the city of");
      b.answers = {f.city};
      break;
    case 1:
      labelled(b, "In which year was " + f.org + " founded?", org + " was founded in the year");
      b.answers = {f.year};
      break;
    default:
      labelled(b, "Who founded " + f.org + "?", org + " was founded by");
      b.answers = {f.person};
      break;
  }
  return b;
}

// The body with the first `filler.size()` sentences of the filler, each needle before the sentence at its depth.
std::string assemble(const Blueprint& b, std::span<const std::string> filler) {
  std::string s;
  size_t next = 0;
  const auto n = static_cast<double>(filler.size());
  for (size_t i = 0; i <= filler.size(); ++i) {
    while (next < b.needles.size() && std::lround(b.needles[next].depth * n) <= static_cast<long>(i)) {
      s += b.needles[next++].text;
      s += ' ';
    }
    if (i < filler.size()) {
      s += filler[i];
      s += ' ';
    }
  }
  if (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// Grows the filler to the most sentences whose prompt still fits `target` tokens.
Result<EvalTask> fit_to_length(const Tokenizer& tok, const PromptLayout& layout, const Blueprint& b, int target,
                               Rng& filler_rng) {
  std::vector<std::string> pool;  // (sentences drawn so far) prefixes of one stream, so n sentences are always the same
  const BodyOf body = [&](int n) {
    while (static_cast<int>(pool.size()) < n) pool.push_back(filler_sentence(filler_rng));
    return assemble(b, std::span(pool).first(static_cast<size_t>(n)));
  };
  FKV_ASSIGN_OR_RETURN(EvalTask t, fit_prompt(tok, layout, b.text, body, target, /*max_units=*/-1, /*slack=*/0));
  t.answers = b.answers;
  t.depth = b.needles.empty() ? 0 : b.needles.front().depth;
  return t;
}

// Task `i` of `count` of a generated kind.
Result<EvalTask> generated_task(const Tokenizer& tok, const PromptLayout& layout, std::string_view kind, int target,
                                int i, int count, uint64_t seed, const TaskOptions& options) {
  Rng r(mix_seed(seed, kind, target, i));
  Rng filler_rng(r.next());
  double depth = options.depth;
  // Mid-slot depths: the ends of the filler would sit in the sink and the recent window, which every policy keeps.
  if (depth < 0) depth = (i + 0.5) / count;
  const Blueprint b = kind == "passkey"    ? passkey_task(r, depth)
                      : kind == "multikey" ? multikey_task(r, options)
                      : kind == "vartrack" ? vartrack_task(r, options)
                                           : qa_task(r, options);
  return fit_to_length(tok, layout, b, target, filler_rng);
}

constexpr std::string_view kKinds[] = {"passkey", "multikey", "vartrack", "qa", "docqa", "docqa-filler"};

// Whitespace runs made one space, so a pattern written for one line matches text wrapped over several.
std::string collapse_whitespace(std::string_view text) {
  std::string s;
  s.reserve(text.size());
  for (char c : text) {
    const bool space = std::isspace(static_cast<unsigned char>(c)) != 0;
    if (!space) {
      s += c;
    } else if (!s.empty() && s.back() != ' ') {
      s += ' ';
    }
  }
  return s;
}

}  // namespace

Status TaskOptions::validate() const {
  if (multikey_pairs < 1 || multikey_pairs > 64) return err("multikey pairs must be 1..64, found ", multikey_pairs);
  if (multikey_queries < 1 || multikey_queries > multikey_pairs)
    return err("multikey queries must be 1..", multikey_pairs, " (the pairs), found ", multikey_queries);
  if (vartrack_hops < 1 || vartrack_hops > 32) return err("vartrack hops must be 1..32, found ", vartrack_hops);
  if (vartrack_distractors < 0 || vartrack_distractors > 16)
    return err("vartrack distractor chains must be 0..16, found ", vartrack_distractors);
  if (qa_facts < 1 || qa_facts > 64) return err("qa facts must be 1..64, found ", qa_facts);
  if (depth > 1) return err("needle depth must be 0..1 (or negative to spread), found ", depth);
  if (docqa_dir.empty()) return err("the docqa documents folder must be named, found an empty path");
  return {};
}

const char* prompt_style_name(PromptStyle s) { return s == PromptStyle::Chat ? "chat" : "completion"; }

const char* prompt_mode_name(PromptMode m) {
  switch (m) {
    case PromptMode::Chat:
      return "chat";
    case PromptMode::Completion:
      return "completion";
    case PromptMode::Auto:
      break;
  }
  return "auto";
}

Result<PromptMode> parse_prompt_mode(std::string_view name) {
  for (PromptMode m : {PromptMode::Auto, PromptMode::Chat, PromptMode::Completion}) {
    if (name == prompt_mode_name(m)) return m;
  }
  return err("prompt style: expected auto, chat or completion, found '", name, "'");
}

Result<TaskPrompt> choose_task_prompt(const GgufFile& model, PromptMode mode) {
  TaskPrompt p;
  if (mode == PromptMode::Completion) return p;
  // A base model's GGUF has no template of its own (the detector would still guess one from its vocabulary): auto
  // keeps completion prompts for it, which is what a base model continues sensibly.
  if (mode == PromptMode::Auto && model.find("tokenizer.chat_template") == nullptr) return p;
  Result<ChatTemplate> t = detect_chat_template(model);
  if (!t.ok()) {
    if (mode == PromptMode::Auto) return p;
    return err("chat prompts: ", t.message());
  }
  p.style = PromptStyle::Chat;
  p.chat_template = *t;
  return p;
}

std::span<const std::string_view> task_kinds() { return kKinds; }

bool is_docqa_kind(std::string_view kind) { return kind == "docqa" || kind == "docqa-filler"; }

Result<std::vector<EvalTask>> make_tasks(const Tokenizer& tok, std::string_view kind, int target_tokens, int count,
                                         uint64_t seed) {
  const TaskOptions defaults;
  return make_tasks(tok, kind, target_tokens, count, seed, defaults);
}

Result<std::vector<EvalTask>> make_tasks(const Tokenizer& tok, std::string_view kind, int target_tokens, int count,
                                         uint64_t seed, const TaskOptions& options) {
  if (std::find(std::begin(kKinds), std::end(kKinds), kind) == std::end(kKinds))
    return err("unknown task kind '", kind, "' (expected passkey, multikey, vartrack, qa, docqa or docqa-filler)");
  if (count < 1) return err("task count must be at least 1, found ", count);
  if (target_tokens < 1) return err("target length must be at least 1 token, found ", target_tokens);
  FKV_TRY(options.validate());
  FKV_ASSIGN_OR_RETURN(const PromptLayout layout, PromptLayout::make(options.prompt));
  std::vector<EvalTask> tasks;
  if (is_docqa_kind(kind)) {
    const DocqaPadding padding = kind == "docqa" ? DocqaPadding::OtherDocuments : DocqaPadding::Filler;
    FKV_ASSIGN_OR_RETURN(tasks, make_docqa_tasks(tok, layout, target_tokens, count, seed, options, padding));
  } else {
    for (int i = 0; i < count; ++i) {
      FKV_ASSIGN_OR_RETURN(EvalTask t, generated_task(tok, layout, kind, target_tokens, i, count, seed, options));
      tasks.push_back(std::move(t));
    }
  }
  for (EvalTask& t : tasks) {
    t.kind = std::string(kind);
    for (const std::string& a : t.answers) t.answer += (t.answer.empty() ? "" : ", ") + a;
  }
  return tasks;
}

int count_answers_found(std::string_view output, std::span<const std::string> answers) {
  return static_cast<int>(std::count_if(answers.begin(), answers.end(), [&](const std::string& a) {
    return !a.empty() && output.find(a) != std::string_view::npos;
  }));
}

bool answers_match(std::string_view output, std::span<const std::string> answers) {
  return !answers.empty() && count_answers_found(output, answers) == static_cast<int>(answers.size());
}

Result<bool> pattern_occurs(std::string_view pattern, std::string_view text) {
  // std::regex reports a bad pattern only by throwing; the exception stops here.
  try {
    const std::regex re(pattern.begin(), pattern.end(), std::regex::ECMAScript | std::regex::icase);
    const std::string flat = collapse_whitespace(text);
    return std::regex_search(flat, re);
  } catch (const std::regex_error& e) {
    return err("answer pattern '", pattern, "': expected an ECMAScript regular expression, found an error: ", e.what());
  }
}

int count_answers_found(const EvalTask& task, std::string_view output) {
  if (!task.answers_are_patterns) return count_answers_found(output, task.answers);
  return static_cast<int>(std::count_if(task.answers.begin(), task.answers.end(), [&](const std::string& p) {
    const Result<bool> found = pattern_occurs(p, output);
    return found.ok() && *found;
  }));
}

bool answers_match(const EvalTask& task, std::string_view output) {
  return !task.answers.empty() && count_answers_found(task, output) == static_cast<int>(task.answers.size());
}

}  // namespace fkv
