#include "tokenizer/chat_template.h"

#include <array>
#include <cctype>

#include "core/gguf.h"

namespace fkv {
namespace {

constexpr std::array<std::pair<ChatTemplate, const char*>, 6> kNames = {{{ChatTemplate::Llama2, "llama2"},
                                                                         {ChatTemplate::Llama3, "llama3"},
                                                                         {ChatTemplate::Mistral, "mistral"},
                                                                         {ChatTemplate::ChatML, "chatml"},
                                                                         {ChatTemplate::Gemma, "gemma"},
                                                                         {ChatTemplate::DeepSeekR1, "deepseek-r1"}}};
constexpr const char* kNameList = "llama2, llama3, mistral, chatml, gemma, deepseek-r1";

// DeepSeek's markers are spelled with full-width vertical bars (U+FF5C) and, for spaces, U+2581; this file is UTF-8.
constexpr std::string_view kDeepSeekUser = "<｜User｜>";
constexpr std::string_view kDeepSeekAssistant = "<｜Assistant｜>";
constexpr std::string_view kDeepSeekEnd = "<｜end▁of▁sentence｜>";

bool contains(std::string_view hay, std::string_view needle) { return hay.find(needle) != std::string_view::npos; }

// Jinja's `trim` (the published Llama 2, Llama 3 and Gemma templates trim each message).
std::string_view trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(kSpace) - b + 1);
}

Status check_roles(std::span<const ChatMessage> messages) {
  if (messages.empty()) return err("chat template: no messages, expected at least one");
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& r = messages[i].role;
    if (r != "system" && r != "user" && r != "assistant") {
      return err("chat message ", i, " has role '", r, "', expected system, user or assistant");
    }
  }
  return Status();
}

// Llama 2, Mistral and Gemma: [system], user, assistant, user, ... Returns the index of the first user message.
Result<size_t> check_alternation(ChatTemplate t, std::span<const ChatMessage> messages) {
  const size_t first = messages[0].role == "system" ? 1 : 0;
  if (first == messages.size()) {
    return err("chat template ", chat_template_name(t), ": the system message must be followed by a user message");
  }
  for (size_t i = first; i < messages.size(); ++i) {
    const char* expected = (i - first) % 2 == 0 ? "user" : "assistant";
    if (messages[i].role != expected) {
      return err("chat template ", chat_template_name(t), ": message ", i, " has role '", messages[i].role,
                 "', expected '", expected, "' (the roles must alternate user/assistant after an optional first ",
                 "system message)");
    }
  }
  return first;
}

std::string apply_llama2(std::span<const ChatMessage> m, size_t first) {
  std::string out;
  for (size_t i = first; i < m.size(); ++i) {
    if (m[i].role == "user") {
      if (i > first) out += "<s>";
      out += "[INST] ";
      if (i == first && first == 1) out.append("<<SYS>>\n").append(trim(m[0].content)).append("\n<</SYS>>\n\n");
      out.append(trim(m[i].content)).append(" [/INST]");
    } else {
      out.append(" ").append(trim(m[i].content)).append(" </s>");
    }
  }
  return out;
}

std::string apply_mistral(std::span<const ChatMessage> m, size_t first) {
  std::string out;
  for (size_t i = first; i < m.size(); ++i) {
    if (m[i].role == "user") {
      out += "[INST] ";
      if (i == first && first == 1) out.append(m[0].content).append("\n\n");
      out.append(m[i].content).append(" [/INST]");
    } else {
      out.append(" ").append(m[i].content).append("</s>");
    }
  }
  return out;
}

std::string apply_gemma(std::span<const ChatMessage> m, size_t first, bool add_generation_prompt) {
  std::string out;
  for (size_t i = first; i < m.size(); ++i) {
    out.append("<start_of_turn>").append(m[i].role == "user" ? "user" : "model").append("\n");
    // Gemma has no system turn: its template puts the system text (untrimmed) before the first user message.
    if (i == first && first == 1) out.append(m[0].content).append("\n\n");
    out.append(trim(m[i].content)).append("<end_of_turn>\n");
  }
  if (add_generation_prompt) out += "<start_of_turn>model\n";
  return out;
}

std::string apply_llama3(std::span<const ChatMessage> m, bool add_generation_prompt) {
  std::string out;
  for (const ChatMessage& msg : m) {
    out.append("<|start_header_id|>").append(msg.role).append("<|end_header_id|>\n\n");
    out.append(trim(msg.content)).append("<|eot_id|>");
  }
  if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

std::string apply_chatml(std::span<const ChatMessage> m, bool add_generation_prompt) {
  std::string out;
  for (const ChatMessage& msg : m) {
    out.append("<|im_start|>").append(msg.role).append("\n").append(msg.content).append("<|im_end|>\n");
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

// What R1's template keeps of an earlier answer: the text after its last </think>, the reasoning being dropped.
std::string_view without_reasoning(std::string_view answer) {
  constexpr std::string_view kEndThink = "</think>";
  const size_t at = answer.rfind(kEndThink);
  return at == std::string_view::npos ? answer : answer.substr(at + kEndThink.size());
}

std::string apply_deepseek_r1(std::span<const ChatMessage> m, bool add_generation_prompt) {
  std::string out;
  for (const ChatMessage& msg : m) {  // the published template keeps the last system message only, before any turn
    if (msg.role == "system") out = msg.content;
  }
  for (const ChatMessage& msg : m) {
    if (msg.role == "user") out.append(kDeepSeekUser).append(msg.content);
    if (msg.role == "assistant")
      out.append(kDeepSeekAssistant).append(without_reasoning(msg.content)).append(kDeepSeekEnd);
  }
  if (add_generation_prompt) out += kDeepSeekAssistant;
  return out;
}

std::optional<ChatTemplate> template_from_vocab(const GgufFile& f) {
  const GgufValue* tokens = f.find("tokenizer.ggml.tokens");
  if (tokens == nullptr) return std::nullopt;
  // Most telling marker first: a vocabulary may hold several of them, but only one family made them control tokens.
  // A distilled model's vocabulary may keep its base model's markers as well, so DeepSeek's come first.
  const std::pair<std::string_view, ChatTemplate> markers[] = {{kDeepSeekAssistant, ChatTemplate::DeepSeekR1},
                                                               {"<start_of_turn>", ChatTemplate::Gemma},
                                                               {"<|start_header_id|>", ChatTemplate::Llama3},
                                                               {"<|im_start|>", ChatTemplate::ChatML},
                                                               {"[INST]", ChatTemplate::Mistral}};
  for (const auto& [marker, t] : markers) {
    for (const std::string_view s : tokens->strs) {
      if (s == marker) return t;
    }
  }
  return std::nullopt;
}

Result<std::optional<ChatTemplate>> template_from_architecture(const GgufFile& f) {
  FKV_ASSIGN_OR_RETURN(const auto arch, f.get_string("general.architecture"));
  if (!arch) return std::optional<ChatTemplate>();
  if (arch->starts_with("gemma")) return std::optional(ChatTemplate::Gemma);
  if (arch->starts_with("qwen")) return std::optional(ChatTemplate::ChatML);
  if (*arch == "mistral") return std::optional(ChatTemplate::Mistral);
  // The SentencePiece "llama" architecture with no template and no marker tokens: Llama 2's chat format.
  if (*arch == "llama") return std::optional(ChatTemplate::Llama2);
  return std::optional<ChatTemplate>();
}

}  // namespace

Result<ChatTemplate> chat_template_from_name(std::string_view name) {
  for (const auto& [t, n] : kNames) {
    const std::string_view candidate = n;
    bool same = candidate.size() == name.size();
    for (size_t i = 0; same && i < name.size(); ++i) {
      same = std::tolower(static_cast<unsigned char>(name[i])) == candidate[i];
    }
    if (same) return t;
  }
  return err("unknown chat template '", name, "' (expected one of ", kNameList, ")");
}

const char* chat_template_name(ChatTemplate t) {
  for (const auto& [candidate, n] : kNames) {
    if (candidate == t) return n;
  }
  return "unknown";
}

std::optional<ChatTemplate> chat_template_from_jinja(std::string_view jinja) {
  if (contains(jinja, kDeepSeekUser) && contains(jinja, kDeepSeekAssistant)) return ChatTemplate::DeepSeekR1;
  if (contains(jinja, "<start_of_turn>")) return ChatTemplate::Gemma;
  if (contains(jinja, "<|start_header_id|>")) return ChatTemplate::Llama3;
  if (contains(jinja, "<|im_start|>")) return ChatTemplate::ChatML;
  if (contains(jinja, "[INST]")) return contains(jinja, "<<SYS>>") ? ChatTemplate::Llama2 : ChatTemplate::Mistral;
  return std::nullopt;
}

Result<ChatTemplate> detect_chat_template(const GgufFile& f) {
  FKV_ASSIGN_OR_RETURN(const auto jinja, f.get_string("tokenizer.chat_template"));
  if (jinja) {
    if (const auto t = chat_template_from_jinja(*jinja)) return *t;
  }
  if (const auto t = template_from_vocab(f)) return *t;
  FKV_ASSIGN_OR_RETURN(const auto by_arch, template_from_architecture(f));
  if (by_arch) return *by_arch;
  return err("cannot tell the chat template of this model; pass --template NAME (one of ", kNameList, ")");
}

Result<std::string> apply_chat_template(ChatTemplate t, std::span<const ChatMessage> messages,
                                        bool add_generation_prompt) {
  FKV_TRY(check_roles(messages));
  switch (t) {
    case ChatTemplate::Llama3:
      return apply_llama3(messages, add_generation_prompt);
    case ChatTemplate::ChatML:
      return apply_chatml(messages, add_generation_prompt);
    case ChatTemplate::DeepSeekR1:
      return apply_deepseek_r1(messages, add_generation_prompt);
    case ChatTemplate::Llama2:
    case ChatTemplate::Mistral:
    case ChatTemplate::Gemma:
      break;
  }
  FKV_ASSIGN_OR_RETURN(const size_t first, check_alternation(t, messages));
  if (t == ChatTemplate::Llama2) return apply_llama2(messages, first);
  if (t == ChatTemplate::Mistral) return apply_mistral(messages, first);
  return apply_gemma(messages, first, add_generation_prompt);
}

}  // namespace fkv
