// Engine internals shared by the facade's source files (engine.cpp: models and chat; engine_documents.cpp: documents
// and their persisted KV). Not part of the public API.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fkv/engine.h"
#include "ingest/document.h"
#include "model/model.h"
#include "runtime/context.h"
#include "runtime/document_prompt.h"
#include "runtime/document_tokens.h"
#include "store/kv_snapshot.h"
#include "store/library.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace fkv {

struct OpenDocumentState {
  OpenedDocument info;
  DocumentTokens tokens;  // the document's tokens and span map
  DocumentPrompt prompt;  // the prefix in the context
  DocumentContent content;  // for the desktop: text, sections, spans at context positions
  int64_t snapshot_id = 0;  // 0: none saved
  SnapshotKey key;          // of the document's snapshot (chat snapshots add their chat id)
};

// Checkpoints of the prefill under way (DocumentOptions::checkpoint_bytes): its KV so far as a chain of page files,
// each an extension of the one before, so a prefill that stops resumes at the next open.
struct PrefillCheckpoints {
  Library* lib = nullptr;  // null: none are written
  SnapshotKey key;
  SnapshotMeta meta;  // base_fingerprint: the chain's last file (0 while there is none)
  int64_t total = 0;  // tokens of the prompt
  uint64_t every_bytes = 0;
  uint64_t bytes_per_token = 0;
  int page_size = 0;
  int64_t saved_tokens = 0;  // where the chain ends
  int n_saved = 0;           // checkpoints saved by this prefill, and their seconds
  double save_s = 0;
  std::string error;         // the first failed save: no more are tried
};

struct Engine::Impl {
  std::unique_ptr<Model> model;
  std::unique_ptr<Context> ctx;
  // The context as loaded; with auto_ctx (ModelOptions::n_ctx 0) fit_context() grows it for a longer document.
  ContextParams base_params;
  bool auto_ctx = false;
  std::optional<ChatTemplate> chat_template;
  std::string template_error;       // why chat_template is empty
  std::vector<int32_t> ctx_tokens;  // (ctx->n_past()) the tokens in the context, in order
  std::atomic<bool> cancel{false};
  std::string library_path;  // EngineOptions::library_path
  std::unique_ptr<Library> library;  // opened on first use, on the engine's thread
  std::unique_ptr<DocumentLibrary> library_view;  // Engine::library(): the public face of `library`
  std::string model_fingerprint;     // of the loaded model, for snapshots
  uint64_t tokenizer_hash = 0;
  std::optional<OpenDocumentState> doc;  // the open document, if any
  TelemetryObserver* observer = nullptr;
  std::string kv_damage;  // why the last run() failed when a page read in place failed its check; else empty
  bool document_completion = false;  // the model has no chat template of its own: documents use a completion layout

  Status check_loaded() const {
    if (!model) return err("no model is loaded");
    return {};
  }
  Result<std::vector<int32_t>> tokenize_chat(std::span<const ChatMessage> messages) const;
  Result<GenerateResult> run(const std::vector<int32_t>& tokens, const GenerationOptions& o, const TextCallback& cb);
  void record_context(std::span<const int32_t> prompt, std::span<const int32_t> generated);
  // engine_documents.cpp
  Result<Library*> open_library();
  Result<std::optional<SnapshotRecord>> library_snapshot(Library& lib, const IngestedDocument& d, SnapshotKey& key,
                                                         const std::string& refusal, int n_tokens);
  Result<OpenedDocument> open_document(IngestedDocument ingested, const DocumentOptions& o, const ProgressCallback& cb);
  Status fit_context(const std::string& title, int n_tokens);
  uint64_t snapshot_bytes_needed(int64_t n_tokens) const;  // a page file's size for n_tokens of this context's KV
  // Evaluates the prefix from ctx->n_past() (0, or where resumed checkpoints end) to its end.
  Status prefill_prefix(const std::vector<int32_t>& prefix, const ProgressCallback& cb,
                        PrefillCheckpoints* ck = nullptr);
  bool save_checkpoint(PrefillCheckpoints& ck);
  // Loads ck's chain into the empty context; a checkpoint that does not load is dropped with those after it (`note`
  // says why) and the prefill resumes from the ones before.
  void resume_prefill(PrefillCheckpoints& ck, std::string& note, const ProgressCallback& cb);
  SnapshotMeta snapshot_meta(const DocumentPrompt& p) const;
  // engine_chats.cpp: a chat's KV as an extension of the document's snapshot.
  void restore_chat(int64_t chat_id, const std::vector<int32_t>& tokens);
  Status save_chat(int64_t chat_id);
  Status reload_prefix();
};


}  // namespace fkv
