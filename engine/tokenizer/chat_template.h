// Chat templates: turning a conversation into the prompt text each model family was fine-tuned on. The families are
// built in (no Jinja interpreter): the GGUF's tokenizer.chat_template is only read to recognise which family it is.
// The text never starts with BOS (the caller asks the tokenizer for it) and is meant to be encoded with
// parse_special = true, so the turn markers become their control tokens.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "fkv/status.h"

namespace fkv {

class GgufFile;

enum class ChatTemplate { Llama2, Llama3, Mistral, ChatML, Gemma, DeepSeekR1 };

struct ChatMessage {
  std::string role;  // "system" | "user" | "assistant"
  std::string content;
};

// "llama2", "llama3", "mistral", "chatml", "gemma", "deepseek-r1" (any case); anything else is an error listing
// these names.
Result<ChatTemplate> chat_template_from_name(std::string_view name);
const char* chat_template_name(ChatTemplate t);

// Recognises a Jinja chat template by its marker tokens; nullopt when none fits.
std::optional<ChatTemplate> chat_template_from_jinja(std::string_view jinja);

// From tokenizer.chat_template; without one (or an unrecognised one), from marker tokens in the vocabulary and then
// general.architecture. Nothing fits: an error that tells the user to pass --template NAME.
Result<ChatTemplate> detect_chat_template(const GgufFile& f);

// The prompt text for `messages`. Llama 2, Mistral and Gemma have no system turn: a system message may only come
// first and is folded into the first user turn, and after it the roles must alternate user/assistant. Llama 3 and
// ChatML accept any order and render a system message where it stands, as a turn of its own (Llama 3.0's form:
// 3.1's "Cutting Knowledge Date" preamble is not emitted; ChatML adds no default system prompt, as Qwen 2.5's
// template would, because ChatML serves several model families and that text names one model).
// DeepSeek-R1 (the R1-Distill models) puts the text of the last system message, bare, before every turn, renders
// user and assistant turns in order and drops the reasoning of earlier answers (everything up to the last </think>),
// as its published template does; its tool-call and tool-output turns are not supported.
// `add_generation_prompt` appends the opening of the assistant's turn where the family has one (Llama 2 and Mistral
// end every user turn with [/INST], which already is that opening).
Result<std::string> apply_chat_template(ChatTemplate t, std::span<const ChatMessage> messages,
                                        bool add_generation_prompt);

}  // namespace fkv
