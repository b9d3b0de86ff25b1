#include "runtime/document_prompt.h"

#include <cstdio>

#include "store/checksum.h"
#include "tokenizer/tokenizer.h"

namespace fkv {

namespace {

// Stands in for the document while the chat template renders; no template touches it.
constexpr std::string_view kMarker = "\x1f" "FKV-DOCUMENT" "\x1f";
constexpr std::string_view kLayoutVersion = "doc2";

// Small instruction-tuned models wander into general advice unless told to keep to the text and keep it short.
constexpr std::string_view kSystemPrompt =
    "You answer questions about the document the user gives you. Answer from the document only, in one to three "
    "sentences, using its own words for names, numbers and dates. If the document does not say, say so.";

// The conversation as the template sees it: the system turn, then the marker and the first question as the first
// user turn, then the rest.
std::vector<ChatMessage> with_marker(std::span<const ChatMessage> turns) {
  std::vector<ChatMessage> m;
  m.reserve(turns.size() + 1);
  m.push_back({"system", std::string(kSystemPrompt)});
  m.insert(m.end(), turns.begin(), turns.end());
  m[1].content = std::string(kMarker) + "\n\n" + m[1].content;
  return m;
}

Status check_turns(std::span<const ChatMessage> turns) {
  if (turns.empty()) return err("a question about the document is needed, found no turns");
  for (size_t i = 0; i < turns.size(); ++i) {
    const char* want = i % 2 == 0 ? "user" : "assistant";
    if (turns[i].role != want)
      return err("turn ", i + 1, " about the document: expected a '", want, "' turn, found '", turns[i].role, "'");
  }
  if (turns.back().role != "user") return err("the last turn about the document must be a question (a user turn)");
  return {};
}

// The rendered conversation, split around the marker.
Result<std::pair<std::string, std::string>> render_around_marker(ChatTemplate tmpl, std::span<const ChatMessage> turns) {
  const std::vector<ChatMessage> m = with_marker(turns);
  FKV_ASSIGN_OR_RETURN(const std::string text, apply_chat_template(tmpl, m, /*add_generation_prompt=*/true));
  const size_t at = text.find(kMarker);
  if (at == std::string::npos) return err("the ", chat_template_name(tmpl), " chat template dropped the document");
  return std::make_pair(text.substr(0, at), text.substr(at + kMarker.size()));
}

// "Question: q1\nAnswer: a1\n\nQuestion: q2\nAnswer:" after the document.
std::string completion_turns(std::span<const ChatMessage> turns) {
  std::string s = "\n\n";
  for (const ChatMessage& m : turns) {
    if (m.role == "user") {
      s += "Question: " + m.content + "\nAnswer:";
    } else {
      s += " " + m.content + "\n\n";
    }
  }
  return s;
}

}  // namespace

std::string_view document_system_prompt() { return kSystemPrompt; }

Result<DocumentPrompt> make_document_prompt(const Tokenizer& tok, ChatTemplate tmpl, std::string_view title,
                                            const DocumentTokens& doc, bool completion) {
  DocumentPrompt p;
  p.completion = completion;
  p.chat_template = tmpl;
  if (tok.add_bos_default() && tok.bos_id() >= 0) p.prefix.push_back(tok.bos_id());
  if (!completion) {
    // Any question renders the same head: the head ends where the first user turn's content begins.
    const ChatMessage probe{"user", "?"};
    FKV_ASSIGN_OR_RETURN(const auto parts, render_around_marker(tmpl, std::span(&probe, 1)));
    FKV_TRY(tok.encode_append(parts.first, /*space_prefix=*/true, /*parse_special=*/true, p.prefix));  // as encode()
  }
  std::string intro = "Read the document below";
  if (!title.empty()) intro += std::string(", \"") + std::string(title) + "\"";
  intro += ", then answer the questions about it.\n\n";
  FKV_TRY(tok.encode_append(intro, /*space_prefix=*/false, /*parse_special=*/false, p.prefix));
  p.doc_begin = static_cast<int32_t>(p.prefix.size());
  p.prefix.insert(p.prefix.end(), doc.tokens.begin(), doc.tokens.end());
  const uint64_t h = checksum64(p.prefix.data(), p.prefix.size() * sizeof(int32_t));
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  p.format_tag = std::string(kLayoutVersion) + "-" + (completion ? "completion" : chat_template_name(tmpl)) + "-" + hex;
  return p;
}

std::vector<std::string> document_stop_strings(const DocumentPrompt& prompt) {
  if (!prompt.completion) return {};
  return {"\nQuestion:"};
}

Result<std::vector<int32_t>> document_turn_tokens(const Tokenizer& tok, const DocumentPrompt& prompt,
                                                  std::span<const ChatMessage> turns) {
  FKV_TRY(check_turns(turns));
  std::vector<int32_t> out = prompt.prefix;
  if (prompt.completion) {
    FKV_TRY(tok.encode_append(completion_turns(turns), /*space_prefix=*/false, /*parse_special=*/false, out));
    return out;
  }
  FKV_ASSIGN_OR_RETURN(const auto parts, render_around_marker(prompt.chat_template, turns));
  FKV_TRY(tok.encode_append(parts.second, /*space_prefix=*/false, /*parse_special=*/true, out));
  return out;
}

}  // namespace fkv
