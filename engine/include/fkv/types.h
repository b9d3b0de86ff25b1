// Plain value types of the public engine API (fkv/engine.h). No engine internals: the desktop app and the CLI see
// only these.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "fkv/events.h"
#include "fkv/options.h"
#include "fkv/status.h"

namespace fkv {

struct EngineOptions {
  // Which CPU kernels to run: "auto" (the best this CPU supports), "avx2" (an error on a CPU without AVX2/FMA/F16C)
  // or "scalar" (the plain reference kernels). It is a process-wide setting: the last Engine created decides.
  std::string isa = "auto";
  // The document library (SQLite; page files go to a "pages" folder beside it). Empty: documents can still be
  // opened and asked about, but nothing is remembered and every open prefills.
  std::string library_path;
};

// Long work reports what it is doing; returning false from the callback cancels it.
struct Progress {
  Stage stage = Stage::ingest;
  int64_t done = 0;
  int64_t total = 0;
};
using ProgressCallback = std::function<bool(const Progress&)>;

struct DocumentContent;

struct DocumentOptions {
  int64_t max_file_bytes = int64_t{256} << 20;  // larger files are refused before they are read
  bool use_snapshot = true;                     // load the persisted KV when it is valid
  bool save_snapshot = true;                    // persist the KV after a prefill
  int64_t storage_cap_bytes = 0;                // > 0: evict least recently used snapshots beyond this
  // A long prefill saves its KV so far after about this many bytes of it (and when cancelled), so a prefill stopped
  // by a cancel, the app closing or a crash resumes at the next open. 0: no checkpoints.
  int64_t checkpoint_bytes = int64_t{32} << 20;
  // Called once the document is read and tokenized, before its KV is loaded or prefilled, on the thread that opens
  // it: a reader can show the text while a long prefill runs. The reference is valid during the call only.
  std::function<void(const DocumentContent&)> on_content;
};

// A document made ready to answer questions about: its KV is in the context, from a snapshot or a prefill.
struct OpenedDocument {
  int64_t id = 0;  // library id; 0 without a library
  std::string path, title, format;
  int64_t n_chars = 0;        // bytes of its normalized text
  int n_tokens = 0;           // tokens of the prefix (template head, intro, document) held in the context
  KvSource kv_source = KvSource::prefill;
  // Why a snapshot that existed was not used, or a stopped prefill's checkpoints only in part; empty otherwise.
  std::string recompute_reason;
  int64_t resumed_tokens = 0;  // tokens a stopped prefill had done: taken from its checkpoints, not evaluated again
  int checkpoints = 0;         // checkpoints this prefill saved, and the seconds they took (within prefill_s)
  double checkpoint_s = 0;
  std::string save_error;        // a prefill whose snapshot could not be saved (the document is still open)
  uint64_t snapshot_bytes = 0;   // size of the page file loaded or saved
  double ingest_s = 0, tokenize_s = 0, load_s = 0, prefill_s = 0, save_s = 0;
};

// Decode-time KV retrieval (the prompt's evaluation is ModelOptions::prefill).
struct RetrievalOptions {
  Policy policy = Policy::freekv;
  int sink_tokens = 512;          // budget: tokens at the start, always attended
  int recent_tokens = 512;        // budget: most recent tokens, always attended
  int retrieved_tokens = 1024;    // budget: tokens in the pages retrieved each step
  float correction_tau = 0.9f;    // freekv: heads whose query cosine falls below this are re-selected (0..1)
  // Budget parts that are whole pages of page_size tokens, a recent window of at least one page, tau in 0..1.
  Status validate(int page_size) const;
};

inline constexpr int kAutoContextMax = 32768;
// The longest document prompt an automatic context grows to (context memory past the model's trained window).
inline constexpr int kMaxDocumentTokens = 1 << 20;

struct ModelOptions {
  // Tokens the context holds; more than the model's training context is allowed. 0: the training context, at most
  // kAutoContextMax (the KV cache reserves address space for all of it but only touches what is used), grown for a
  // longer document up to kMaxDocumentTokens: past the trained window with context memory (retrieval prefill, and
  // attention over sinks + retrieved pages + local window at distances the model was trained on).
  int n_ctx = 4096;
  int n_threads = 0;            // compute threads; 0: the machine's hardware threads
  int page_size = 32;           // tokens per KV page
  KvType kv_type = KvType::f16;
  // "" detects the chat template from the file; else "llama2", "llama3", "mistral", "chatml", "gemma", "deepseek-r1".
  std::string chat_template;
  RetrievalOptions retrieval;
  // How prompts (a document's prefix, a question) are evaluated; retrieval keeps the cost linear in their length.
  Prefill prefill = Prefill::dense;
  // The disk tier: a document's saved KV is read in place from its page file, and at most this many MiB of it stay
  // in host memory (the least recently used pages go back to the file). 0: half of the machine's memory.
  int host_kv_mib = 0;
  RopeOverride rope;  // RoPE scaling instead of the file's (YaRN for a longer trained window)
  // CUDA runs the dense forward pass with the KV cache on the GPU (policy full; documents, whose KV is saved from
  // host memory, need the CPU). automatic takes CUDA where it can and says in ModelInfo::backend_note why it did not.
  Backend backend = Backend::cpu;
  int device = 0;  // CUDA device index
  // Every range above (n_ctx 0..2^24, threads 0..1024, page size 1..4096, device >= 0) and the retrieval's.
  Status validate() const;
};

struct ModelInfo {
  bool loaded = false;
  std::string path;
  std::string name;          // general.name
  std::string architecture;  // "llama", "qwen2", "gemma3"
  int n_layers = 0;
  int n_embd = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int n_ff = 0;
  int n_vocab = 0;
  int n_ctx_train = 0;
  int n_ctx = 0;                    // the context this load uses (an automatic one grows for a long document)
  bool context_memory = false;      // the context reaches past n_ctx_train: attention reads it as context memory
  std::string chat_template;        // the family in use, or "unknown"
  uint64_t file_bytes = 0;          // size of the GGUF
  uint64_t weight_bytes = 0;        // weights read per decoded token
  uint64_t kv_bytes_per_token = 0;  // K and V of every layer, in the KV type of this load
  Backend backend = Backend::cpu;   // where this load runs: cpu or cuda
  std::string backend_note;         // why "auto" ended on the CPU; empty otherwise
  std::string isa;                  // the CPU kernels in use: "avx2" or "scalar"
};

struct Message {
  std::string role;  // "system" | "user" | "assistant"
  std::string content;
};

struct GenerationOptions {
  // Engine::ask with a library: the library chat (Library::create_chat) this conversation is. Its KV after each answer
  // is saved as an extension of the document's snapshot, so the chat reopened later continues without evaluating its
  // earlier turns again. 0: nothing is saved.
  int64_t chat_id = 0;
  int max_tokens = 256;
  // Benchmarks: decode max_tokens steps even past the end of the turn (its end-of-turn tokens are not in the text).
  bool ignore_eos = false;
  float temperature = 0.8f;     // 0: greedy
  int top_k = 40;               // 0: off
  float top_p = 0.95f;          // 1: off
  float min_p = 0.05f;          // 0: off
  float repeat_penalty = 1.0f;  // 1: off
  int repeat_last_n = 64;
  uint64_t seed = 0;
  std::vector<std::string> stop;  // stop strings (not included in the text)
  // generate(): true feeds the prompt as is (special-token text such as "<start_of_turn>" is parsed), false wraps it
  // as one user turn of the model's chat template.
  bool raw = false;
  std::string system_prompt;  // generate() without raw: an optional system turn before the user turn
  int max_citations = 3;      // ask(): passages of the document to cite under the answer (0: none)
  // Stage "prompt": before each batch of the prompt's evaluation and once at its end, in tokens not already in the
  // context (a long question can take minutes on a CPU). Returning false stops the evaluation within a batch; the
  // call then returns stop_reason "cancelled" with no text, as Engine::cancel() does. May be empty.
  ProgressCallback progress;
};

// A passage of the open document an answer drew on (Engine::ask): KV pages the decode steps' retrieval selected most
// often, over the answer's tokens, layers and KV heads, mapped to the text through the span map.
struct Citation {
  int64_t char_begin = 0, char_end = 0;  // byte offsets into DocumentContent::text
  float weight = 0;      // share of the answer's (token, layer, KV head) selections that chose it, in (0, 1]
  std::string where;     // "Page 12 · Termination": the PDF page and the heading it falls under; empty when neither
  std::string snippet;   // its text, whitespace collapsed, cut at a word near 240 bytes ("…" marks a cut)
};

struct GenerateResult {
  std::string text;
  // ask() under a retrieval policy, most selected first. Empty when retrieval chose nothing: policy full or
  // streaming, or a document short enough that every page fits the budget.
  std::vector<Citation> citations;
  int n_prompt_tokens = 0;  // the whole prompt, in tokens
  int n_cached_tokens = 0;  // of those, already in the context from the previous call (not evaluated again)
  int n_generated = 0;      // sampled tokens, the end-of-generation token included
  double prefill_s = 0;
  double decode_s = 0;
  double prefill_tokens_per_s = 0;  // evaluated prompt tokens / prefill_s
  double decode_tokens_per_s = 0;   // n_generated / decode_s
  StopReason stop_reason = StopReason::eos;
  // ask(): the document's saved KV, read in place, failed a check while answering, so it was recomputed (a prefill,
  // saved anew) and the question answered on that: why. Empty otherwise.
  std::string kv_recomputed;
};

// The open document as the desktop shows it: text, outline, and which characters each token range came from.
struct DocumentSection {
  bool is_page = false;     // a PDF page start; otherwise a heading
  int level = 0;            // heading depth (1 = top)
  std::string title;
  int64_t char_offset = 0;  // byte offset into text
};
struct DocumentSpan {
  int32_t token_begin = 0, token_end = 0;  // positions in the context
  int64_t char_begin = 0, char_end = 0;    // byte offsets into text
};
struct DocumentContent {
  std::string text;
  std::vector<DocumentSection> sections;  // in text order
  std::vector<DocumentSpan> spans;        // in order, contiguous
  int page_size = 32;                     // KV page p holds context positions [p * page_size, (p + 1) * page_size)
};

// The byte ranges of content.text whose tokens KV page `page` holds, in order ([begin, end) pairs; a span of many
// tokens shares its bytes out evenly). Empty for a page outside the document (the prompt's template, the question).
struct TextRange {
  int64_t begin = 0, end = 0;
};
std::vector<TextRange> page_text_ranges(const DocumentContent& content, int page);

// What the context holds now.
struct EngineStats {
  int n_ctx = 0;               // tokens the context can hold
  int n_tokens = 0;            // tokens in it
  int n_ctx_train = 0;         // the model's trained window
  bool context_memory = false;  // the context reaches past it (ModelInfo::context_memory)
  uint64_t kv_host_bytes = 0;  // KV of those tokens in host memory (of a saved KV read in place: what is resident)
  uint64_t kv_device_bytes = 0;
  // The disk tier: of a saved KV read in place from its page file, the bytes resident now (at most
  // ModelOptions::host_kv_mib), and those read in so far (a page read again after it went back counts again).
  uint64_t kv_file_bytes = 0;  // of the tokens' KV, what lives in the page file
  uint64_t kv_file_resident_bytes = 0;
  uint64_t kv_file_read_bytes = 0;
  double kv_file_wait_s = 0;  // time decode threads waited for those reads (question and answer, summed over threads)
  Policy policy = Policy::full;
  RetrievalStats retrieval;  // totals since the last reset
};

// Receives the answer as it is generated, in pieces of whole UTF-8 characters; returning false cancels.
using TextCallback = std::function<bool(std::string_view piece)>;

}  // namespace fkv
