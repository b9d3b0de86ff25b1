// freekv: the command-line face of the engine. `freekv help` lists the commands.
#include <cstdio>
#include <span>
#include <string_view>

#include "backend/cpu/quant.h"
#include "cli.h"
#include "runtime/backend_info.h"

namespace {

struct Command {
  const freekv::CommandHelp* help;
  int (*run)(std::span<char* const> args);
};

const Command kCommands[] = {
    {&freekv::kInfoHelp, freekv::run_info},         {&freekv::kTokenizeHelp, freekv::run_tokenize},
    {&freekv::kGenerateHelp, freekv::run_generate}, {&freekv::kChatHelp, freekv::run_chat},
    {&freekv::kIngestHelp, freekv::run_ingest},     {&freekv::kLibraryHelp, freekv::run_library},
    {&freekv::kAskHelp, freekv::run_ask},           {&freekv::kBenchHelp, freekv::run_bench},
    {&freekv::kEvalHelp, freekv::run_eval},         {&freekv::kPerplexityHelp, freekv::run_perplexity},
};

const Command* find_command(std::string_view name) {
  for (const Command& c : kCommands) {
    if (c.help->name == name) return &c;
  }
  return nullptr;
}

void print_overview() {
  std::printf("usage: freekv COMMAND [options]\n\nFreeKV inference engine, command-line tool.\n\ncommands:\n");
  for (const Command& c : kCommands) {
    std::printf("  %-10.*s %.*s\n", static_cast<int>(c.help->name.size()), c.help->name.data(),
                static_cast<int>(c.help->summary.size()), c.help->summary.data());
  }
  std::printf("  %-10s %s\n", "help", "show this overview, or `freekv help COMMAND` for one command");
  std::printf("\n`freekv COMMAND --help` shows a command's options; `freekv --version` the version.\n");
}

int run_help(std::span<char* const> args) {
  if (args.empty()) {
    print_overview();
    return freekv::kExitOk;
  }
  const Command* c = find_command(args[0]);
  if (c == nullptr)
    return freekv::usage_fail("help: unknown command '" + std::string(args[0]) + "' (see 'freekv help')");
  freekv::print_help(*c->help);
  return freekv::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  const std::span<char* const> all(argv, static_cast<size_t>(argc));
  if (all.size() < 2) {
    return freekv::usage_fail("no command given (see 'freekv help')");
  }
  const std::string_view name(all[1]);
  const std::span<char* const> rest = all.subspan(2);
  if (name == "--version" || name == "version") {
    std::printf("freekv %s\nbackends: %s\n", FKV_VERSION, fkv::backend_summary().c_str());
    return freekv::kExitOk;
  }
  if (name == "help" || name == "--help" || name == "-h") return run_help(rest);
  const Command* c = find_command(name);
  if (c == nullptr) {
    const bool is_flag = !name.empty() && name[0] == '-';
    return freekv::usage_fail((is_flag ? "unknown option '" : "unknown command '") + std::string(name) +
                              "' (see 'freekv help')");
  }
  if (freekv::wants_help(rest)) {
    freekv::print_help(*c->help);
    return freekv::kExitOk;
  }
  return c->run(rest);
}
