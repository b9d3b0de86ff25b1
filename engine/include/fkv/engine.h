// The engine facade: load a model, generate or chat with streaming output, cancel from another thread.
// One Engine serves one conversation at a time; every call except cancel() must come from one thread (the desktop's
// engine worker). The context keeps the tokens of the last call, so a chat that grows by a turn only evaluates the
// new turn.
#pragma once

#include <memory>
#include <string>
#include <vector>

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

  // Stops the generation in progress after the current token (or prompt batch); it then returns with stop_reason
  // "cancelled". Thread-safe. A request made while nothing runs is dropped when the next generation starts.
  void cancel();
  // Forgets the tokens in the context (the next call evaluates its whole prompt).
  void reset();

 private:
  Engine();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fkv
