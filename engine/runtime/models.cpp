// Installed models and the default choice (fkv/models.h). The memory estimate is the same arithmetic as the desktop's
// model guide: weights as the file, an F16 KV cache with its 32-token page summaries, 0.1 GB of buffers.
#include "fkv/models.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/gguf.h"
#include "model/config.h"

namespace fkv {

namespace fs = std::filesystem;

namespace {

constexpr int k_planned_tokens = 32768;           // the window a document may fill
constexpr double k_kv_bytes_per_element = 4.125;  // F16 K and V (2 x 2 bytes) + F16 min/max per key channel per page
constexpr int64_t k_buffer_bytes = 100'000'000;

}  // namespace

int64_t InstalledModel::memory_bytes(int64_t n_tokens) const {
  return file_bytes + static_cast<int64_t>(kv_bytes_per_token * static_cast<double>(n_tokens)) + k_buffer_bytes;
}

std::optional<InstalledModel> describe_model(const std::string& path) {
  Result<std::unique_ptr<GgufFile>> file = GgufFile::open(path);
  if (!file.ok()) return std::nullopt;
  Result<ModelConfig> cfg = ModelConfig::from_gguf(**file);
  if (!cfg.ok()) return std::nullopt;
  InstalledModel m;
  m.path = path;
  m.name = cfg->name;
  m.file_bytes = static_cast<int64_t>((*file)->file_size());
  m.n_ctx_train = cfg->n_ctx_train;
  const int n_tokens = cfg->n_ctx_train > 0 ? std::min(cfg->n_ctx_train, k_planned_tokens) : k_planned_tokens;
  m.kv_bytes_per_token = static_cast<double>(cfg->n_layers) * cfg->n_kv_heads * cfg->head_dim * k_kv_bytes_per_element;
  m.need_bytes = m.memory_bytes(n_tokens);
  return m;
}

std::string default_models_folder() {
  if (const char* x = std::getenv("XDG_DATA_HOME"); x != nullptr && *x != '\0') {
    return std::string(x) + "/freekv-desk/models";
  }
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : ".") + "/.local/share/freekv-desk/models";
}

std::vector<InstalledModel> list_installed_models(const std::string& folder) {
  std::vector<InstalledModel> out;
  std::error_code ec;
  for (fs::directory_iterator it(folder, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec) || it->path().extension() != ".gguf") continue;
    if (std::optional<InstalledModel> m = describe_model(it->path().string())) out.push_back(std::move(*m));
  }
  std::sort(out.begin(), out.end(), [](const InstalledModel& a, const InstalledModel& b) {
    return a.file_bytes != b.file_bytes ? a.file_bytes > b.file_bytes : a.path < b.path;
  });
  return out;
}

std::optional<InstalledModel> choose_model(const std::vector<InstalledModel>& installed, int64_t available_bytes) {
  for (const InstalledModel& m : installed) {  // largest first
    if (m.need_bytes <= available_bytes) return m;
  }
  return std::nullopt;
}

int64_t available_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    std::istringstream fields(line);
    std::string key;
    int64_t kib = 0;
    if (fields >> key >> kib && key == "MemAvailable:") return kib * 1024;
  }
  return 0;
}

}  // namespace fkv
