// Synthetic models for `freekv bench --synthetic SHAPE`: seeded random weights in the shape of real models, so
// benchmarks need no downloads. The vocabulary comes from a vocabulary-only GGUF (../shared/vocab/llama-spm.gguf).
#include "synthetic_models.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "model/synthetic.h"

namespace freekv {

namespace fs = std::filesystem;

namespace {

constexpr const char* kVocabName = "llama-spm.gguf";

fkv::SyntheticModelSpec tinyllama(fkv::DType type) {
  fkv::SyntheticModelSpec s;
  s.arch = fkv::Arch::Llama;
  s.n_layers = 22;
  s.n_embd = 2048;
  s.n_heads = 32;
  s.n_kv_heads = 4;
  s.n_ff = 5632;
  s.n_ctx = 2048;
  s.weight_type = type;
  s.name = std::string("synthetic TinyLlama 1.1B shape, ") + fkv::dtype_name(type);
  return s;
}

fkv::SyntheticModelSpec tiny_llama() {
  fkv::SyntheticModelSpec s;  // the spec's defaults: 2 layers, embd 64, 4 heads, 2 KV heads, FFN 128
  s.weight_type = fkv::DType::Q8_0;
  s.name = "synthetic tiny llama, Q8_0";
  return s;
}

fkv::SyntheticModelSpec tiny_gemma3() {
  fkv::SyntheticModelSpec s;
  s.arch = fkv::Arch::Gemma3;
  s.n_layers = 4;
  s.n_embd = 64;
  s.n_heads = 4;
  s.n_kv_heads = 1;
  s.head_dim = 32;
  s.n_ff = 128;
  s.sliding_window = 16;
  s.tied_embeddings = true;
  s.weight_type = fkv::DType::Q8_0;
  s.name = "synthetic tiny gemma3, Q8_0";
  return s;
}

// The shape of the GPU targets (Llama-3.1-8B: 32 layers, dim 4096, 32 heads, 8 KV heads, FFN 14336, BF16,
// llama3 rope). The file is 16 GB: meant for a GPU machine's disk, not for tests.
fkv::SyntheticModelSpec llama31_8b_bf16() {
  fkv::SyntheticModelSpec s;
  s.arch = fkv::Arch::Llama;
  s.n_layers = 32;
  s.n_embd = 4096;
  s.n_heads = 32;
  s.n_kv_heads = 8;
  s.n_ff = 14336;
  s.n_ctx = 131072;
  s.rope_base = 500000.f;
  s.llama3_rope = true;
  s.weight_type = fkv::DType::BF16;
  s.name = "synthetic Llama-3.1-8B shape, BF16";
  return s;
}

// Where the running executable lives; empty when /proc is not there.
fs::path executable_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}

}  // namespace

std::string synthetic_shape_names() {
  return "tinyllama-q8_0, tinyllama-f16, tiny-llama, tiny-gemma3, llama31-8b-bf16";
}

fkv::Result<fkv::SyntheticModelSpec> synthetic_shape(std::string_view name) {
  if (name == "tinyllama-q8_0") return tinyllama(fkv::DType::Q8_0);
  if (name == "tinyllama-f16") return tinyllama(fkv::DType::F16);
  if (name == "tiny-llama") return tiny_llama();
  if (name == "tiny-gemma3") return tiny_gemma3();
  if (name == "llama31-8b-bf16") return llama31_8b_bf16();
  return fkv::err("unknown synthetic shape '", name, "', expected one of: ", synthetic_shape_names());
}

fkv::Result<std::string> find_vocab(const std::string& explicit_path) {
  if (!explicit_path.empty()) return explicit_path;
  if (const char* env = std::getenv("FKV_VOCAB"); env != nullptr && *env != '\0') return std::string(env);
  const fs::path start = executable_dir();
  std::error_code ec;
  // A build tree (repo/build/x/app/freekv finds repo/../shared/vocab) or an install (prefix/share/freekv/vocab).
  for (fs::path d = start; !d.empty(); d = d.parent_path()) {
    for (const fs::path& c : {d / "shared" / "vocab" / kVocabName, d / "share" / "freekv" / "vocab" / kVocabName}) {
      if (fs::is_regular_file(c, ec)) return c.string();
    }
    if (d == d.parent_path()) break;
  }
  return fkv::err("no vocabulary for the synthetic model: pass --vocab PATH or set FKV_VOCAB (looked for shared/vocab/",
                  kVocabName, " in the folders above ", start.empty() ? "the executable" : start.string(), ")");
}


// Writing holds every tensor in memory; a child process does it so the benchmark's peak RSS measures only the run.
fkv::Status write_synthetic_in_child(const fkv::SyntheticModelSpec& spec, const std::string& path) {
  int fds[2];
  if (pipe(fds) != 0) return fkv::err("cannot create a pipe: ", std::strerror(errno));
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return fkv::err("cannot start a process to write the synthetic model: ", std::strerror(errno));
  }
  if (pid == 0) {
    close(fds[0]);
    const fkv::Status s = fkv::write_synthetic_model(spec, path);
    if (!s.ok()) {
      const ssize_t n = write(fds[1], s.message().data(), s.message().size());
      (void)n;  // the parent reports a generic failure if the message is lost
    }
    _exit(s.ok() ? 0 : 1);
  }
  close(fds[1]);
  std::string message;
  char buf[512];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) message.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return fkv::err("waiting for the synthetic model writer: ", std::strerror(errno));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  if (!message.empty()) return fkv::Status::error(message);
  if (WIFSIGNALED(status)) return fkv::err("the synthetic model writer died of signal ", WTERMSIG(status));
  return fkv::err("the synthetic model writer failed (exit code ", WEXITSTATUS(status), ")");
}

fkv::Result<std::string> make_temp_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/freekv-bench-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    return fkv::err("cannot create a temporary folder ", pattern, ": ", std::strerror(errno));
  }
  return pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path.empty()) std::filesystem::remove_all(path, ec);
}

fkv::Result<std::string> prepare_model(const std::string& model_path, const std::string& synthetic,
                                       const std::string& vocab, TempDir& tmp, const std::string& keep_path) {
  if (synthetic.empty()) return model_path;
  FKV_ASSIGN_OR_RETURN(fkv::SyntheticModelSpec spec, synthetic_shape(synthetic));
  FKV_ASSIGN_OR_RETURN(spec.vocab_path, find_vocab(vocab));
  std::string path = keep_path;
  if (path.empty()) {
    FKV_ASSIGN_OR_RETURN(tmp.path, make_temp_dir());
    path = tmp.path + "/" + synthetic + ".gguf";
  }
  FKV_TRY(write_synthetic_in_child(spec, path));
  return path;
}

}  // namespace freekv
