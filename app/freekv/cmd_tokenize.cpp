// freekv tokenize: the token ids (and pieces) of a text under a model's vocabulary. Reads only the vocabulary, so it
// also works on vocabulary-only GGUF files.
#include <cstdio>

#include "cli.h"
#include "core/gguf.h"
#include "tokenizer/tokenizer.h"

namespace freekv {

namespace {

const OptionSpec kTokenizeOptions[] = {
    {"--model", "-m", "MODEL", "GGUF model or vocabulary file (required)"},
    {"--no-bos", "", "", "do not add the BOS token the vocabulary asks for"},
    {"--special", "", "", "parse special-token text such as <start_of_turn> into its token"},
    {"--pieces", "", "", "print one token per line: id and vocabulary string"},
};

// The vocabulary string with control characters made visible, so one token stays on one line.
std::string printable(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

const CommandHelp kTokenizeHelp = {"tokenize", "-m MODEL [--no-bos] [--special] [--pieces] TEXT",
                                   "Prints the token ids of TEXT under the model's vocabulary.", kTokenizeOptions};

int run_tokenize(std::span<char* const> args) {
  fkv::Result<ParsedArgs> parsed = parse_args(kTokenizeOptions, args);
  if (!parsed.ok()) return usage_fail("tokenize: " + parsed.message());
  const std::optional<std::string> model = parsed->value("--model");
  if (!model) return usage_fail("tokenize: option --model (-m) is required");
  const std::vector<std::string>& pos = parsed->positionals();
  if (pos.size() != 1) {
    return usage_fail("tokenize: expected one TEXT argument (quote it), found " + std::to_string(pos.size()));
  }
  fkv::Result<std::unique_ptr<fkv::GgufFile>> f = fkv::GgufFile::open(*model);
  if (!f.ok()) return fail(f.message());
  fkv::Result<std::unique_ptr<fkv::Tokenizer>> tok = fkv::Tokenizer::from_gguf(**f);
  if (!tok.ok()) return fail(tok.message());
  const bool add_bos = (*tok)->add_bos_default() && !parsed->has("--no-bos");
  fkv::Result<std::vector<int32_t>> ids = (*tok)->encode(pos[0], add_bos, parsed->has("--special"));
  if (!ids.ok()) return fail("tokenize: " + ids.message());
  if (parsed->has("--pieces")) {
    for (const int32_t id : *ids) std::printf("%6d  '%s'\n", id, printable((*tok)->token_text(id)).c_str());
    return kExitOk;
  }
  std::string line;
  for (const int32_t id : *ids) {
    if (!line.empty()) line += ' ';
    line += std::to_string(id);
  }
  std::printf("%s\n", line.c_str());
  return kExitOk;
}

}  // namespace freekv
