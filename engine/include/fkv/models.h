// The models a person has installed, and which one to load when none is named: freekv-desk and freekv both start
// with the largest installed model that fits the machine's free memory, so a fresh install answers without a trip
// to Settings. setup installs its models into default_models_folder() (scripts/install_models.py).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fkv/status.h"

namespace fkv {

struct InstalledModel {
  std::string path;
  std::string name;         // general.name, or the architecture
  int64_t file_bytes = 0;   // the GGUF file (memory-mapped and read whole)
  int n_ctx_train = 0;      // the context it was trained for
  int64_t need_bytes = 0;   // weights + F16 KV cache of min(n_ctx_train, 32768) tokens + working buffers
  double kv_bytes_per_token = 0;  // F16 K and V of every layer plus the key summaries of 32-token pages

  // Weights + F16 KV cache of n_tokens + working buffers: what a context of that size asks of memory.
  int64_t memory_bytes(int64_t n_tokens) const;
};

// The model in one GGUF file; empty when the file is missing or not a model this engine reads.
std::optional<InstalledModel> describe_model(const std::string& path);

// $XDG_DATA_HOME/freekv-desk/models, else $HOME/.local/share/freekv-desk/models.
std::string default_models_folder();

// The readable GGUF models directly in `folder` (files ending in .gguf whose header parses), largest first. Files
// that are not models are skipped, not errors: the folder is the user's. A missing folder holds none.
std::vector<InstalledModel> list_installed_models(const std::string& folder);

// The largest model of `installed` whose need_bytes fits in available_bytes; empty when none does.
std::optional<InstalledModel> choose_model(const std::vector<InstalledModel>& installed, int64_t available_bytes);

// Memory the system can give a new program now (MemAvailable in /proc/meminfo); 0 when unknown.
int64_t available_memory_bytes();

}  // namespace fkv
