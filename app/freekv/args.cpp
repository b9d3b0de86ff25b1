// Option parsing and error reporting for the freekv tool.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "cli.h"

namespace freekv {

using fkv::err;
using fkv::Result;

int fail(std::string_view message, int exit_code) {
  std::string line(message);
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::fprintf(stderr, "freekv: error: %s\n", display_text(line).c_str());
  return exit_code;
}

void print_help(const CommandHelp& help) {
  std::printf("usage: freekv %.*s %.*s\n\n%.*s\n", static_cast<int>(help.name.size()), help.name.data(),
              static_cast<int>(help.synopsis.size()), help.synopsis.data(), static_cast<int>(help.summary.size()),
              help.summary.data());
  if (help.options.empty()) return;
  std::printf("\noptions:\n");
  for (const OptionSpec& o : help.options) {
    std::string left = "  ";
    if (!o.alias.empty()) left.append(o.alias).append(", ");
    left.append(o.name);
    if (!o.value_name.empty()) left.append(" ").append(o.value_name);
    std::printf("%-28s %.*s\n", left.c_str(), static_cast<int>(o.help.size()), o.help.data());
  }
  std::printf("  %-26s %s\n", "-h, --help", "show this help");
}

bool wants_help(std::span<char* const> args) {
  for (const char* a : args) {
    const std::string_view s(a);
    if (s == "--") return false;
    if (s == "-h" || s == "--help") return true;
  }
  return false;
}

std::optional<std::string> ParsedArgs::value(std::string_view name) const {
  auto it = values_.find(std::string(name));
  if (it == values_.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::vector<std::string> ParsedArgs::values(std::string_view name) const {
  auto it = values_.find(std::string(name));
  return it == values_.end() ? std::vector<std::string>() : it->second;
}

namespace {

const OptionSpec* find_spec(std::span<const OptionSpec> specs, std::string_view flag) {
  for (const OptionSpec& o : specs) {
    if (flag == o.name || (!o.alias.empty() && flag == o.alias)) return &o;
  }
  return nullptr;
}

}  // namespace

Result<ParsedArgs> parse_args(std::span<const OptionSpec> specs, std::span<char* const> args) {
  ParsedArgs out;
  bool options_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string_view arg(args[i]);
    // A lone "-" and negative numbers are values, not options.
    const bool looks_like_option = arg.size() > 1 && arg[0] == '-' && !(arg[1] >= '0' && arg[1] <= '9');
    if (options_done || !looks_like_option) {
      out.positionals_.emplace_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    const size_t eq = arg.find('=');
    const std::string_view flag = arg.substr(0, eq);
    const OptionSpec* spec = find_spec(specs, flag);
    if (spec == nullptr) return err("unknown option '", flag, "'");
    std::vector<std::string>& slot = out.values_[std::string(spec->name)];
    if (!spec->repeatable) slot.clear();
    if (spec->value_name.empty()) {
      if (eq != std::string_view::npos) return err("option ", spec->name, " takes no value, found '", arg, "'");
      slot.emplace_back();
    } else if (eq != std::string_view::npos) {
      slot.emplace_back(arg.substr(eq + 1));
    } else {
      if (i + 1 >= args.size()) return err("option ", flag, " needs a value (", spec->value_name, ")");
      slot.emplace_back(args[++i]);
    }
  }
  return out;
}

Result<int> int_option(const ParsedArgs& a, std::string_view name, int fallback, int min, int max) {
  const std::optional<std::string> v = a.value(name);
  if (!v) return fallback;
  errno = 0;
  char* end = nullptr;
  const long long n = std::strtoll(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || errno == ERANGE || n < min || n > max) {
    return err("option ", name, ": expected an integer in ", min, "..", max, ", found '", *v, "'");
  }
  return static_cast<int>(n);
}

Result<float> float_option(const ParsedArgs& a, std::string_view name, float fallback, float min, float max) {
  const std::optional<std::string> v = a.value(name);
  if (!v) return fallback;
  char* end = nullptr;
  const double d = std::strtod(v->c_str(), &end);
  if (v->empty() || *end != '\0' || !std::isfinite(d) || d < min || d > max) {
    return err("option ", name, ": expected a number in ", min, "..", max, ", found '", *v, "'");
  }
  return static_cast<float>(d);
}

Result<uint64_t> u64_option(const ParsedArgs& a, std::string_view name, uint64_t fallback) {
  const std::optional<std::string> v = a.value(name);
  if (!v) return fallback;
  errno = 0;
  char* end = nullptr;
  const unsigned long long n = std::strtoull(v->c_str(), &end, 10);
  if (v->empty() || (*v)[0] == '-' || *end != '\0' || errno == ERANGE) {
    return err("option ", name, ": expected a non-negative integer, found '", *v, "'");
  }
  return static_cast<uint64_t>(n);
}

std::string format_bytes(uint64_t n) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  size_t u = 0;
  while (v >= 1024.0 && u + 1 < std::size(kUnits)) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  } else {
    std::snprintf(buf, sizeof buf, "%.2f %s", v, kUnits[u]);
  }
  return buf;
}

}  // namespace freekv
