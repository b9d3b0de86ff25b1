// freekv info: what a GGUF model is and what running it costs, without loading its weights.
#include <algorithm>
#include <cstdio>
#include <map>

#include "cli.h"
#include "core/gguf.h"
#include "model/config.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace freekv {

namespace {

const OptionSpec kInfoOptions[] = {
    {"--json", "", "", "print one JSON object instead of text"},
};

constexpr int kKvBytesPerElement = 2;  // the default F16 KV cache
constexpr int kCtx4k = 4096;

struct ModelSummary {
  std::string path;
  fkv::ModelConfig config;
  uint64_t file_bytes = 0;
  size_t n_tensors = 0;
  std::vector<std::pair<std::string, int>> tensor_types;  // (type name, count), most frequent first
  std::string tokenizer_model;
  std::string pre_tokenizer;  // byte-level BPE only: the split it runs ("llama-bpe", "qwen2")
  int n_vocab = 0;
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  std::string bos_text, eos_text;
  std::string chat_template;  // family name or "unknown"

  uint64_t kv_bytes_per_token() const {
    return 2ull * static_cast<uint64_t>(config.n_layers) * static_cast<uint64_t>(config.n_embd_kv()) *
           kKvBytesPerElement;
  }
};

std::vector<std::pair<std::string, int>> type_histogram(const fkv::GgufFile& f) {
  std::map<std::string, int> counts;
  for (const fkv::GgufTensor& t : f.tensors()) ++counts[fkv::dtype_name(t.type)];
  std::vector<std::pair<std::string, int>> out(counts.begin(), counts.end());
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return out;
}

fkv::Result<ModelSummary> summarize(const std::string& path) {
  ModelSummary s;
  s.path = path;
  FKV_ASSIGN_OR_RETURN(std::unique_ptr<fkv::GgufFile> f, fkv::GgufFile::open(path));
  FKV_ASSIGN_OR_RETURN(s.config, fkv::ModelConfig::from_gguf(*f));
  FKV_ASSIGN_OR_RETURN(std::unique_ptr<fkv::Tokenizer> tok, fkv::Tokenizer::from_gguf(*f));
  FKV_ASSIGN_OR_RETURN(std::optional<std::string_view> tok_model, f->get_string("tokenizer.ggml.model"));
  s.file_bytes = f->file_size();
  s.n_tensors = f->tensors().size();
  s.tensor_types = type_histogram(*f);
  s.tokenizer_model = tok_model ? std::string(*tok_model) : "unknown";
  s.pre_tokenizer = tok->pre_tokenizer_name();
  s.n_vocab = tok->n_vocab();
  s.bos_id = tok->bos_id();
  s.eos_id = tok->eos_id();
  s.bos_text = tok->token_text(s.bos_id);
  s.eos_text = tok->token_text(s.eos_id);
  const fkv::Result<fkv::ChatTemplate> tmpl = fkv::detect_chat_template(*f);
  s.chat_template = tmpl.ok() ? fkv::chat_template_name(*tmpl) : "unknown";
  return s;
}

std::string histogram_text(const ModelSummary& s) {
  std::string out;
  for (const auto& [name, count] : s.tensor_types) {
    if (!out.empty()) out += ", ";
    out += name + " x" + std::to_string(count);
  }
  return out;
}

std::string token_label(int32_t id, const std::string& text) {
  if (id < 0) return "none";
  return std::to_string(id) + " '" + display_text(text) + "'";
}

void print_text(const ModelSummary& s) {
  const fkv::ModelConfig& c = s.config;
  const uint64_t kv = s.kv_bytes_per_token();
  std::printf("model          %s\n", display_text(c.name).c_str());
  std::printf("architecture   %s\n", fkv::arch_name(c.arch));
  std::printf("file           %s\n", display_text(s.path).c_str());
  std::printf("dimensions     layers %d, embd %d, heads %d, kv heads %d, head dim %d, ffn %d, vocab %d\n", c.n_layers,
              c.n_embd, c.n_heads, c.n_kv_heads, c.head_dim, c.n_ff, c.n_vocab);
  std::printf("train context  %d tokens\n", c.n_ctx_train);
  if (c.sliding_window > 0) std::printf("sliding window %d tokens\n", c.sliding_window);
  std::printf("tensors        %zu: %s\n", s.n_tensors, histogram_text(s).c_str());
  const std::string kind = s.pre_tokenizer.empty() ? s.tokenizer_model + " (SentencePiece)"
                                                   : s.tokenizer_model + " (byte-level BPE, pre-tokenizer " +
                                                         s.pre_tokenizer + ")";
  std::printf("tokenizer      %s, %d tokens, BOS %s, EOS %s\n", kind.c_str(), s.n_vocab,
              token_label(s.bos_id, s.bos_text).c_str(), token_label(s.eos_id, s.eos_text).c_str());
  std::printf("chat template  %s\n", s.chat_template.c_str());
  std::printf("memory         weights %s (file size); KV cache (f16) %s per token, %s at %d tokens, %s at %d\n",
              format_bytes(s.file_bytes).c_str(), format_bytes(kv).c_str(),
              format_bytes(kv * static_cast<uint64_t>(c.n_ctx_train)).c_str(), c.n_ctx_train,
              format_bytes(kv * kCtx4k).c_str(), kCtx4k);
}

void print_json(const ModelSummary& s) {
  const fkv::ModelConfig& c = s.config;
  const uint64_t kv = s.kv_bytes_per_token();
  JsonWriter j;
  j.begin_object();
  j.key("path").value(s.path).key("name").value(c.name).key("architecture").value(fkv::arch_name(c.arch));
  j.key("n_layers").value(c.n_layers).key("n_embd").value(c.n_embd).key("n_heads").value(c.n_heads);
  j.key("n_kv_heads").value(c.n_kv_heads).key("head_dim").value(c.head_dim).key("n_ff").value(c.n_ff);
  j.key("n_vocab").value(c.n_vocab).key("n_ctx_train").value(c.n_ctx_train);
  j.key("sliding_window").value(c.sliding_window);
  j.key("n_tensors").value(static_cast<uint64_t>(s.n_tensors));
  j.key("tensor_types").begin_object();
  for (const auto& [name, count] : s.tensor_types) j.key(name).value(count);
  j.end_object();
  j.key("tokenizer").begin_object();
  j.key("model").value(s.tokenizer_model).key("n_vocab").value(s.n_vocab);
  if (!s.pre_tokenizer.empty()) j.key("pre").value(s.pre_tokenizer);
  j.key("bos_id").value(s.bos_id).key("bos").value(s.bos_text);
  j.key("eos_id").value(s.eos_id).key("eos").value(s.eos_text);
  j.end_object();
  j.key("chat_template").value(s.chat_template);
  j.key("weights_bytes").value(s.file_bytes);
  j.key("kv_bytes_per_token").value(kv);
  j.key("kv_bytes_train_ctx").value(kv * static_cast<uint64_t>(c.n_ctx_train));
  j.key("kv_bytes_4k").value(kv * kCtx4k);
  j.end_object();
  std::printf("%s\n", j.str().c_str());
}

}  // namespace

const CommandHelp kInfoHelp = {"info", "MODEL [--json]",
                               "Shows a GGUF model's architecture, dimensions, tensor types, tokenizer, chat template "
                               "and memory needs.",
                               kInfoOptions};

int run_info(std::span<char* const> args) {
  fkv::Result<ParsedArgs> parsed = parse_args(kInfoOptions, args);
  if (!parsed.ok()) return usage_fail("info: " + parsed.message());
  const std::vector<std::string>& pos = parsed->positionals();
  if (pos.size() != 1) {
    return usage_fail("info: expected one MODEL path, found " + std::to_string(pos.size()) + " arguments");
  }
  fkv::Result<ModelSummary> s = summarize(pos[0]);
  if (!s.ok()) return fail(s.message());
  if (parsed->has("--json")) {
    print_json(*s);
  } else {
    print_text(*s);
  }
  return kExitOk;
}

}  // namespace freekv
