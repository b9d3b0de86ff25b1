// The engine facade: load a model, generate or chat with streaming output, cancel from another thread.
// One Engine serves one conversation at a time; every call except cancel() must come from one thread (the desktop's
// engine worker). The context keeps the tokens of the last call, so a chat that grows by a turn only evaluates the
// new turn.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "fkv/events.h"
#include "fkv/library.h"
#include "fkv/status.h"
#include "fkv/types.h"

namespace fkv {

class Engine {
 public:
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Errors: an unknown isa name, or "avx2" on a CPU without it.
  static Result<std::unique_ptr<Engine>> create(const EngineOptions& options);

  // Loads (or replaces) the model and creates its context. On error the previous model, if any, stays loaded.
  Status load_model(const std::string& path, const ModelOptions& options);
  ModelInfo model_info() const;

  // Completes `prompt` (see GenerationOptions::raw). Errors: no model, bad options, a prompt that does not fit.
  Result<GenerateResult> generate(const std::string& prompt, const GenerationOptions& options,
                                  const TextCallback& on_text);
  // Answers the last user turn of `history` with the model's chat template (options.raw and system_prompt are not
  // used: put a system message first instead). Errors also: no known template, roles in an order it cannot express.
  Result<GenerateResult> chat(const std::vector<Message>& history, const GenerationOptions& options,
                              const TextCallback& on_text);

  // Documents (needs a loaded model). open_document reads the file (txt, md, html, pdf), records it in the library
  // and makes its KV ready: loaded from the library's snapshot when one is valid for this model, else prefilled (with
  // progress; cancel() or a false from the callback stops it) and saved. A snapshot that cannot be used (damaged,
  // other model, older layout) is recomputed and the reason is returned. The overload by id reopens a library
  // document without reading its file again. Errors: no model, unreadable or unsupported file, a document longer
  // than the context, cancellation.
  Result<OpenedDocument> open_document(const std::string& path, const DocumentOptions& options,
                                       const ProgressCallback& progress);
  Result<OpenedDocument> open_document(int64_t id, const DocumentOptions& options, const ProgressCallback& progress);
  // Answers the last turn of `turns` (user, assistant, ..., user) about the open document, through the model's chat
  // template. Only the turns are evaluated: the document stays in the context between questions.
  Result<GenerateResult> ask(const std::vector<Message>& turns, const GenerationOptions& options,
                             const TextCallback& on_text);
  void close_document();
  // The open document's text, outline and span map; null when none is open. Valid until the next open or close.
  const DocumentContent* document() const;
  // The library of EngineOptions::library_path (import, list, delete, chats), opened on first use; like the rest of
  // the engine it is used from one thread. Errors: no library path was given, or the library cannot be opened.
  Result<DocumentLibrary*> library();

  // Switches the decode-time retrieval policy and budget, keeping what the context holds. Errors (the current
  // setting stays): an unknown policy, a budget that is not whole pages or has no recent window, tau outside 0..1.
  Status set_retrieval(const RetrievalOptions& options);
  // Per decode step and layer retrieval events, called on the thread that runs ask/generate; null stops them.
  void set_observer(TelemetryObserver* observer);
  EngineStats stats() const;

  // Stops the generation in progress after the current token (or prompt batch); it then returns with stop_reason
  // "cancelled"; a document prefill stops after the current chunk with an error. Thread-safe. A request made while nothing runs is dropped when the next generation starts.
  void cancel();
  // Forgets the tokens in the context (the next call evaluates its whole prompt).
  void reset();

 private:
  Engine();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fkv
