// The token layout of a conversation about a document: [BOS] head | intro | document | turns. Head, intro and
// document form the prefix that is prefilled once and persisted as a KV snapshot; every question appends its turns
// after it, so asking never re-evaluates the document. The head and the turns come from the model's chat template,
// rendered once with a marker in place of the document and cut there; the head holds a system turn asking for short
// answers taken from the document.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fkv/status.h"
#include "runtime/document_tokens.h"
#include "tokenizer/chat_template.h"

namespace fkv {

class Tokenizer;

struct DocumentPrompt {
  // A base (pretrained) model has no chat template of its own: its turns are written as "Question: ...\nAnswer: ..."
  // completions, which it continues sensibly; turn markers of a guessed template mean nothing to it.
  bool completion = false;
  ChatTemplate chat_template = ChatTemplate::ChatML;  // when !completion
  std::vector<int32_t> prefix;  // (n_prefix) [BOS] head, intro, document
  int32_t doc_begin = 0;        // index in prefix of the document's first token
  // Names the layout for snapshots (<= 64 bytes): template, layout version and a checksum of the prefix tokens, so
  // a snapshot is only ever used for exactly these tokens.
  std::string format_tag;
};

// The system turn of a chat about a document: keep to the document, answer briefly in its words.
std::string_view document_system_prompt();

Result<DocumentPrompt> make_document_prompt(const Tokenizer& tok, ChatTemplate tmpl, std::string_view title,
                                            const DocumentTokens& doc, bool completion = false);

// Where an answer ends in a completion layout (the model starting the next question); empty for chat templates.
std::vector<std::string> document_stop_strings(const DocumentPrompt& prompt);

// prefix + the tokens of `turns` (user first, then alternating user/assistant, ending with a user turn) and the
// opening of the assistant's answer.
Result<std::vector<int32_t>> document_turn_tokens(const Tokenizer& tok, const DocumentPrompt& prompt,
                                                  std::span<const ChatMessage> turns);

}  // namespace fkv
