// The facade's documents: ingest a file into the library, make its KV ready (load the persisted snapshot, or prefill
// and save one), and answer questions with the document's prefix left in the context.
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <filesystem>

#include "core/clock.h"
#include "core/format.h"
#include "ingest/ingest.h"
#include "runtime/citations.h"
#include "runtime/engine_impl.h"
#include "store/library_documents.h"

namespace fkv {

namespace {


// Token spans for the library row: (n_spans, 4) little-endian int64 (token_begin, token_end, char_begin, char_end).
std::vector<uint8_t> encode_spans(const DocumentTokens& t, int32_t token_offset) {
  std::vector<uint8_t> out(t.spans.size() * 4 * sizeof(int64_t));
  uint8_t* p = out.data();
  for (const TokenSpan& s : t.spans) {
    const int64_t v[4] = {s.token_begin + token_offset, s.token_end + token_offset, s.char_begin, s.char_end};
    std::memcpy(p, v, sizeof v);  // x86-64 and every platform this builds for are little-endian
    p += sizeof v;
  }
  return out;
}

DocumentContent document_content(const IngestedDocument& d, const DocumentTokens& t, int32_t doc_begin,
                                 int page_size) {
  DocumentContent c;
  c.text = d.text;
  c.page_size = page_size;
  for (const Heading& h : d.headings) c.sections.push_back({false, h.level, h.text, h.char_offset});
  for (size_t i = 0; i < d.page_offsets.size(); ++i)
    c.sections.push_back({true, 0, "Page " + std::to_string(i + 1), d.page_offsets[i]});
  std::stable_sort(c.sections.begin(), c.sections.end(),
                   [](const DocumentSection& a, const DocumentSection& b) { return a.char_offset < b.char_offset; });
  c.spans.reserve(t.spans.size());
  for (const TokenSpan& s : t.spans)
    c.spans.push_back({s.token_begin + doc_begin, s.token_end + doc_begin, s.char_begin, s.char_end});
  return c;
}

bool report(const ProgressCallback& cb, Stage stage, int64_t done, int64_t total) {
  return !cb || cb(Progress{stage, done, total});
}


}  // namespace

Result<Library*> Engine::Impl::open_library() {
  if (library_path.empty()) return static_cast<Library*>(nullptr);
  if (!library) {
    FKV_ASSIGN_OR_RETURN(library, Library::open(library_path));
  }
  return library.get();
}

Result<DocumentLibrary*> Engine::library() {
  if (impl_->library_path.empty())
    return err("no document library is configured (the engine was created without a library path)");
  FKV_ASSIGN_OR_RETURN(Library * lib, impl_->open_library());
  if (!impl_->library_view) impl_->library_view = std::make_unique<DocumentLibrary>(*lib);
  return impl_->library_view.get();
}

// Fills key's document and model ids and finds its snapshot. A writable library records the document and model
// (the open is remembered, with its refusal if it is refused); a read-only one is only searched, and a document or
// model it lacks has no snapshot.
Result<std::optional<SnapshotRecord>> Engine::Impl::library_snapshot(Library& lib, const IngestedDocument& d,
                                                                     SnapshotKey& key, const std::string& refusal,
                                                                     int n_tokens) {
  const int64_t model_bytes = static_cast<int64_t>(model->gguf().file_size());
  if (lib.read_only()) {
    FKV_ASSIGN_OR_RETURN(const std::optional<DocumentInfo> found, lib.find_document_by_hash(content_hash(d)));
    FKV_ASSIGN_OR_RETURN(const std::optional<int64_t> model_id, lib.find_model(model_fingerprint));
    if (!found || !model_id) return std::optional<SnapshotRecord>();
    key.document_id = found->id;
    key.model_id = *model_id;
  } else {
    FKV_ASSIGN_OR_RETURN(key.document_id, import_document(lib, d));
    (void)lib.touch_opened(key.document_id, refusal, n_tokens);  // the list's order and state only
    FKV_ASSIGN_OR_RETURN(key.model_id,
                         lib.upsert_model(model_fingerprint, model->config().name, model->path(), model_bytes));
  }
  return lib.find_snapshot(key);
}

SnapshotMeta Engine::Impl::snapshot_meta(const DocumentPrompt& p) const {
  SnapshotMeta m;
  m.model_fingerprint = model_fingerprint;
  m.tokenizer_hash = tokenizer_hash;
  m.prompt_format = p.format_tag;
  return m;
}

namespace {
// Room an automatic context keeps past a document's prompt for the questions and answers of a chat about it.
constexpr int kChatRoom = 8192;
}  // namespace

uint64_t Engine::Impl::snapshot_bytes_needed(int64_t n_tokens) const {
  const ModelConfig& c = model->config();
  KvGeometry g;
  g.n_layers = c.n_layers;
  g.n_kv_heads = c.n_kv_heads;
  g.head_dim = c.head_dim;
  g.page_size = ctx->params().page_size;
  g.dtype = ctx->params().kv_type;
  return kv_snapshot_bytes(g, n_tokens);
}

// An automatic context (ModelOptions::n_ctx 0) takes the size it was loaded with for a document that fits in it, and
// grows for a longer one: past the model's trained window with context memory. A fixed size is left as it is.
Status Engine::Impl::fit_context(const std::string& title, int n_tokens) {
  if (!auto_ctx || ctx->backend().kind == Backend::cuda) return {};
  if (n_tokens > kMaxDocumentTokens) {
    return err("'", title, "' takes ", grouped(n_tokens), " tokens with its prompt; documents open up to ",
               grouped(kMaxDocumentTokens), " tokens");
  }
  ContextParams cp = base_params;
  if (n_tokens >= base_params.n_ctx) {
    const int ps = cp.page_size;
    cp.n_ctx = std::min(kMaxDocumentTokens + kChatRoom, (n_tokens + kChatRoom + ps - 1) / ps * ps);
    const int train = model->config().n_ctx_train;
    cp.context_memory = train > 0 && cp.n_ctx > train;
  }
  if (cp.n_ctx == ctx->n_ctx() && cp.context_memory == ctx->params().context_memory) return {};
  Result<std::unique_ptr<Context>> grown = Context::create(*model, cp);
  if (!grown.ok()) {
    return err("'", title, "' takes ", grouped(n_tokens), " tokens with its prompt, past the model's trained window of ",
               grouped(model->config().n_ctx_train), ": ", grown.message());
  }
  ctx = std::move(grown).value();
  ctx->set_observer(observer);
  ctx_tokens.clear();
  return {};
}

// Prefill in chunks so that progress is reported and a cancel lands within one chunk. Chunks start at multiples of
// the chunk size from the start of the context, resumed or not, so a resumed prefill computes what one pass would.
Status Engine::Impl::prefill_prefix(const std::vector<int32_t>& prefix, const ProgressCallback& cb,
                                    PrefillCheckpoints* ck) {
  ctx_tokens.clear();
  const int chunk = std::max(ctx->params().n_batch, 256);
  std::vector<float> logits(static_cast<size_t>(model->config().n_vocab));  // (n_vocab) of each chunk's last token
  const int64_t total = static_cast<int64_t>(prefix.size());
  for (int64_t done = ctx->n_past(); done < total;) {
    if (cancel.load() || !report(cb, Stage::prefill, done, total)) {
      std::string kept;
      if (ck != nullptr && ck->lib != nullptr && done > ck->saved_tokens) {
        kept = save_checkpoint(*ck) ? "; the next open resumes there"
                                    : "; the work done could not be kept: " + ck->error;
      } else if (ck != nullptr && ck->saved_tokens == done && done > 0) {
        kept = "; the next open resumes there";
      }
      ctx->reset();
      return err("opening the document was cancelled after ", grouped(done), " of ", grouped(total), " tokens", kept);
    }
    const int64_t n = std::min<int64_t>(chunk, total - done);
    if (Status s = ctx->eval(std::span(prefix).subspan(static_cast<size_t>(done), static_cast<size_t>(n)),
                             LogitsMode::Last, logits);
        !s.ok()) {
      ctx->reset();
      return s;
    }
    done += n;
    if (ck != nullptr && ck->lib != nullptr && done < total &&
        static_cast<uint64_t>(done - ck->saved_tokens) * ck->bytes_per_token >= ck->every_bytes)
      (void)save_checkpoint(*ck);  // a failed one is remembered; the prefill goes on without them
  }
  report(cb, Stage::prefill, total, total);
  ctx_tokens = prefix;
  return {};
}

bool Engine::Impl::save_checkpoint(PrefillCheckpoints& ck) {
  const int64_t n_past = ctx->n_past();
  // An extension starts on a page boundary; a cut inside a page waits for the next one.
  if (!ck.error.empty() || n_past <= ck.saved_tokens || n_past % ck.page_size != 0) return false;
  std::string path;
  const Clock::time_point t0 = Clock::now();
  const Status s = [&]() -> Status {
    FKV_ASSIGN_OR_RETURN(CheckpointRecord rec, ck.lib->begin_checkpoint(ck.key));
    path = ck.lib->page_file_path(rec);
    FKV_TRY(ctx->save_kv(path, ck.meta, static_cast<int>(ck.saved_tokens / ck.page_size)));
    FKV_ASSIGN_OR_RETURN(const PageFileReader file, PageFileReader::open(path));
    rec.n_tokens = n_past;
    rec.total_tokens = ck.total;
    rec.bytes = static_cast<int64_t>(file.layout().file_size);
    FKV_TRY(ck.lib->add_checkpoint(rec).status());
    ck.meta.base_fingerprint = file.fingerprint();
    ck.saved_tokens = n_past;
    return {};
  }();
  ck.save_s += seconds_since(t0);
  if (s.ok()) {
    ++ck.n_saved;
    return true;
  }
  ck.error = s.message();
  std::error_code ec;
  if (!path.empty()) std::filesystem::remove(path, ec);  // unrecorded: nothing names it
  return false;
}

void Engine::Impl::resume_prefill(PrefillCheckpoints& ck, std::string& note, const ProgressCallback& cb) {
  Result<std::vector<CheckpointRecord>> found = ck.lib->checkpoints(ck.key);
  if (!found.ok() || found->empty()) return;
  const std::vector<CheckpointRecord>& chain = *found;
  if (chain.front().total_tokens != ck.total) {
    note = "the stopped prefill's checkpoints were for a prompt of " + grouped(chain.front().total_tokens) +
           " tokens, this one has " + grouped(ck.total);
    (void)ck.lib->drop_checkpoints(ck.key);
    return;
  }
  int64_t bytes_total = 0;
  for (const CheckpointRecord& c : chain) bytes_total += c.bytes;
  // Loads checkpoints [0, n) into the emptied context; the index of the one that failed, with why, else n.
  std::string why;
  const auto load = [&](size_t n) -> size_t {
    ctx->reset();
    SnapshotMeta meta = ck.meta;
    meta.base_fingerprint = 0;
    int64_t bytes_done = 0;
    for (size_t i = 0; i < n; ++i) {
      const CheckpointRecord& c = chain[i];
      report(cb, Stage::load, bytes_done, bytes_total);
      const Status s = [&]() -> Status {
        FKV_ASSIGN_OR_RETURN(const PageFileReader file, PageFileReader::open(ck.lib->page_file_path(c)));
        FKV_TRY(ctx->load_kv(file, meta));
        if (ctx->n_past() != c.n_tokens) return err("it holds ", ctx->n_past(), " tokens, its row names ", c.n_tokens);
        meta.base_fingerprint = file.fingerprint();
        return {};
      }();
      if (!s.ok()) {
        why = s.message();
        ctx->reset();
        return i;
      }
      bytes_done += c.bytes;
    }
    ck.meta.base_fingerprint = meta.base_fingerprint;
    ck.saved_tokens = n > 0 ? chain[n - 1].n_tokens : 0;
    return n;
  };
  const size_t good = load(chain.size());
  if (good == chain.size()) return;
  note = "checkpoint " + std::to_string(good + 1) + " of " + std::to_string(chain.size()) +
         " of the stopped prefill was unusable (" + why + ")";
  (void)ck.lib->drop_checkpoints(ck.key, static_cast<int64_t>(good));
  // The ones before it loaded a moment ago; should they fail now, the prefill starts over.
  if (good == 0 || load(good) != good) {
    ctx->reset();
    ck.saved_tokens = 0;
    ck.meta.base_fingerprint = 0;
    (void)ck.lib->drop_checkpoints(ck.key);
  }
}

Result<OpenedDocument> Engine::Impl::open_document(IngestedDocument ingested, const DocumentOptions& o,
                                                   const ProgressCallback& cb) {
  cancel.store(false);
  doc.reset();
  if (ctx->backend().kind == Backend::cuda) {
    return err("documents need the CPU backend: their KV cache is saved from and loaded into host memory, and this ",
               "model was loaded on the GPU (backend cuda); load it with backend cpu to open documents");
  }
  OpenDocumentState st;
  OpenedDocument& info = st.info;
  info.path = ingested.path;
  info.title = ingested.title;
  info.format = ingested.format;
  info.n_chars = static_cast<int64_t>(ingested.text.size());

  // 1. Tokens: the document's, then the prompt prefix around them.
  Clock::time_point t0 = Clock::now();
  report(cb, Stage::tokenize, 0, info.n_chars);
  FKV_ASSIGN_OR_RETURN(st.tokens, tokenize_document(model->tokenizer(), ingested.text));
  if (!chat_template) return err(template_error);
  FKV_ASSIGN_OR_RETURN(st.prompt, make_document_prompt(model->tokenizer(), *chat_template, info.title, st.tokens,
                                                        document_completion));
  info.n_tokens = static_cast<int>(st.prompt.prefix.size());
  info.tokenize_s = seconds_since(t0);
  st.content = document_content(ingested, st.tokens, st.prompt.doc_begin, ctx->params().page_size);

  // 2. The library row and the snapshot key. A refusal is kept on the row (with the count), so the library can say
  // why the document is not ready.
  const Status fitted = fit_context(info.title, info.n_tokens);
  // Context memory's KV has summaries of another kind (runtime/context.h): its snapshots are apart from dense ones.
  // So is the KV of a prefill that did not attend everything: a later open with dense prefill must not take it.
  if (fitted.ok() && ctx->params().context_memory) {
    st.prompt.format_tag += "-memory";
  } else if (fitted.ok() && info.n_tokens > ctx->exact_prefill_tokens()) {
    st.prompt.format_tag += std::string("-prefill-") + prefill_name(ctx->params().prefill);
  }
  const bool too_long = fitted.ok() && info.n_tokens >= ctx->n_ctx();
  // The row keeps the reason itself: a fixed context too small ("too long for this model", the one a larger context
  // in Settings mends), the cap on a document's length, policy full past the trained window, or no memory for the KV.
  const std::string refusal = !fitted.ok() ? fitted.message()
                              : too_long   ? "too long for this model: " + grouped(info.n_tokens) +
                                               " tokens; the context holds " + grouped(ctx->n_ctx())
                                           : std::string();
  FKV_ASSIGN_OR_RETURN(Library * lib, open_library());
  std::optional<SnapshotRecord> snap;
  SnapshotKey key;
  if (lib != nullptr) {
    key.prompt_format = st.prompt.format_tag;
    key.page_size = ctx->params().page_size;
    key.dtype = kv_type_name(kv_type_of(ctx->params().kv_type));
    FKV_ASSIGN_OR_RETURN(snap, library_snapshot(*lib, ingested, key, refusal, info.n_tokens));
    info.id = key.document_id;
  }
  if (!fitted.ok()) return fitted;
  if (too_long) {
    return err("'", info.title, "' takes ", grouped(info.n_tokens), " tokens with its prompt; the context holds ",
               grouped(ctx->n_ctx()), " (load the model with a larger context, or open a shorter document)");
  }
  if (o.on_content) o.on_content(st.content);
  // 3. Load the snapshot when it is usable.
  const SnapshotMeta meta = snapshot_meta(st.prompt);
  if (snap && snap->state == SnapshotState::stale) info.recompute_reason = snap->stale_reason;
  const bool writable = lib != nullptr && !lib->read_only();
  if (snap && snap->state == SnapshotState::ready && o.use_snapshot) {
    t0 = Clock::now();
    report(cb, Stage::load, 0, snap->bytes);
    Status s = [&]() -> Status {
      FKV_ASSIGN_OR_RETURN(PageFileReader file, PageFileReader::open(lib->page_file_path(*snap)));
      // Read in place: nothing is copied, and pages come in from the file as steps touch them.
      FKV_TRY(ctx->map_kv(std::make_shared<const PageFileReader>(std::move(file)), meta));
      if (ctx->n_past() != info.n_tokens)
        return err("snapshot holds ", ctx->n_past(), " tokens, the document's prompt has ", info.n_tokens);
      return {};
    }();
    if (s.ok()) {
      ctx_tokens = st.prompt.prefix;
      info.kv_source = KvSource::snapshot;
      info.load_s = seconds_since(t0);
      info.snapshot_bytes = static_cast<uint64_t>(snap->bytes);
      st.snapshot_id = snap->id;
      (void)lib->touch_snapshot(snap->id);  // only the eviction order; a read-only library keeps the old time
      // Checkpoints left by a crash between the snapshot's save and their removal.
      if (writable) (void)lib->drop_checkpoints(key);
      report(cb, Stage::load, snap->bytes, snap->bytes);
    } else {
      ctx->reset();
      ctx_tokens.clear();
      info.recompute_reason = s.message();
      // Unmarked (read-only library), the same check fails again at the next open and recomputes again.
      (void)lib->mark_stale(snap->id, s.message());
    }
  }

  // 4. Otherwise prefill, then save the snapshot (a failed save leaves the document open, and says why).
  if (info.kv_source != KvSource::snapshot) {
    // A book's KV is gigabytes: written onto a disk that cannot hold it, it would fill the disk (other programs'
    // too) and fail anyway, after the prefill. Checked before the prefill, against the space there was then.
    const uint64_t need = snapshot_bytes_needed(info.n_tokens);
    const std::string no_room =
        lib != nullptr && o.save_snapshot && !lib->read_only() ? lib->no_room_for(need) : std::string();
    // Checkpoints need room for themselves and, at the end, the snapshot that replaces them.
    PrefillCheckpoints ck;
    ck.key = key;
    ck.meta = meta;
    ck.total = info.n_tokens;
    ck.every_bytes = static_cast<uint64_t>(std::max<int64_t>(o.checkpoint_bytes, 0));
    ck.bytes_per_token = need / static_cast<uint64_t>(std::max(info.n_tokens, 1));
    ck.page_size = ctx->params().page_size;
    ctx->reset();
    if (writable && o.save_snapshot) {
      ck.lib = lib;
      if (o.use_snapshot) resume_prefill(ck, info.recompute_reason, cb);
      if (ck.saved_tokens == 0) (void)lib->drop_checkpoints(key);  // a chain not taken is never extended
      info.resumed_tokens = ck.saved_tokens;
      const bool room = no_room.empty() && lib->no_room_for(2 * need).empty();
      if (o.checkpoint_bytes <= 0 || !room) ck.lib = nullptr;
    }
    t0 = Clock::now();
    FKV_TRY(prefill_prefix(st.prompt.prefix, cb, &ck));
    info.prefill_s = seconds_since(t0);
    info.checkpoints = ck.n_saved;
    info.checkpoint_s = ck.save_s;
    info.kv_source = KvSource::prefill;
    if (lib != nullptr && o.save_snapshot && lib->read_only()) {
      info.save_error = "the library is open read-only: " + lib->read_only_reason();
    } else if (!no_room.empty()) {
      info.save_error = no_room;
    } else if (lib != nullptr && o.save_snapshot) {
      t0 = Clock::now();
      SnapshotRecord rec = lib->begin_snapshot(key);
      const std::string path = lib->page_file_path(rec);
      const ByteProgress bytes_cb = [&](uint64_t done, uint64_t total) {
        return !cancel.load() && report(cb, Stage::save, static_cast<int64_t>(done), static_cast<int64_t>(total));
      };
      Status s = ctx->save_kv(path, meta, 0, bytes_cb);
      if (s.ok()) {
        std::error_code ec;
        rec.n_tokens = info.n_tokens;
        rec.bytes = static_cast<int64_t>(std::filesystem::file_size(path, ec));
        rec.token_spans = encode_spans(st.tokens, st.prompt.doc_begin);
        Result<int64_t> id = lib->put_snapshot(rec);
        if (id.ok()) {
          st.snapshot_id = *id;
          info.snapshot_bytes = static_cast<uint64_t>(rec.bytes);
          (void)lib->drop_checkpoints(key);  // the snapshot holds all they held
        } else {
          s = id.status();
        }
      }
      if (!s.ok()) info.save_error = s.message();
      info.save_s = seconds_since(t0);
      if (s.ok() && o.storage_cap_bytes > 0) {
        // The document is open either way; a failed eviction only means the library stays above its cap for now.
        if (Status e = lib->evict_to_cap(o.storage_cap_bytes, st.snapshot_id).status(); !e.ok())
          info.save_error = "saved, but the storage cap could not be applied: " + e.message();
      }
    }
  }
  st.key = key;
  doc = std::move(st);
  return doc->info;
}

Result<OpenedDocument> Engine::open_document(const std::string& path, const DocumentOptions& options,
                                             const ProgressCallback& progress) {
  FKV_TRY(impl_->check_loaded());
  impl_->doc.reset();  // whatever happens next, the previous document is no longer the open one
  const Clock::time_point t0 = Clock::now();
  if (!report(progress, Stage::ingest, 0, 1)) return err("opening ", path, " was cancelled");
  IngestOptions io;
  io.max_bytes = options.max_file_bytes;
  io.progress = progress;  // a PDF reports its pages
  FKV_ASSIGN_OR_RETURN(IngestedDocument d, ingest_file(path, io));
  const double ingest_s = seconds_since(t0);
  FKV_ASSIGN_OR_RETURN(OpenedDocument r, impl_->open_document(std::move(d), options, progress));
  r.ingest_s = impl_->doc->info.ingest_s = ingest_s;
  return r;
}

Result<OpenedDocument> Engine::open_document(int64_t id, const DocumentOptions& options,
                                             const ProgressCallback& progress) {
  FKV_TRY(impl_->check_loaded());
  FKV_ASSIGN_OR_RETURN(Library * lib, impl_->open_library());
  if (lib == nullptr) return err("document ", id, ": no library is configured (EngineOptions::library_path)");
  FKV_ASSIGN_OR_RETURN(const Document d, lib->get_document(id));
  return impl_->open_document(ingested_from(d), options, progress);
}

Result<GenerateResult> Engine::ask(const std::vector<Message>& turns, const GenerationOptions& options,
                                   const TextCallback& on_text) {
  FKV_TRY(impl_->check_loaded());
  if (!impl_->doc) return err("no document is open: open one before asking about it");
  std::vector<ChatMessage> messages;
  messages.reserve(turns.size());
  for (const Message& m : turns) messages.push_back({m.role, m.content});
  FKV_ASSIGN_OR_RETURN(const std::vector<int32_t> tokens,
                       document_turn_tokens(impl_->model->tokenizer(), impl_->doc->prompt, messages));
  GenerationOptions o = options;
  for (std::string& s : document_stop_strings(impl_->doc->prompt)) o.stop.push_back(std::move(s));
  if (o.chat_id > 0) impl_->restore_chat(o.chat_id, tokens);
  Context& ctx = *impl_->ctx;
  CitationTally tally(impl_->observer, ctx.params().policy, ctx.params().budget);  // set_policy set its page size
  ctx.set_observer(&tally);
  Result<GenerateResult> run = impl_->run(tokens, o, on_text);
  ctx.set_observer(impl_->observer);
  if (const std::string damage = impl_->kv_damage; !run.ok() && !damage.empty()) {
    // A page read in place from the saved KV failed its check. The snapshot is marked stale and the document opened
    // again, which recomputes and saves its KV (held in memory now, so nothing is read from the damaged file), then
    // the question is asked once more.
    Impl& im = *impl_;
    if (im.library && im.doc->snapshot_id > 0) (void)im.library->mark_stale(im.doc->snapshot_id, damage);
    const int64_t id = im.doc->info.id;
    im.ctx_tokens.clear();
    ctx.reset();
    Result<OpenedDocument> again = id > 0 && im.library ? [&]() -> Result<OpenedDocument> {
      FKV_ASSIGN_OR_RETURN(const Document d, im.library->get_document(id));
      return im.open_document(ingested_from(d), DocumentOptions{}, nullptr);
    }()
                                                        : Result<OpenedDocument>(err("the document is not in a library"));
    if (!again.ok() || again->kv_source != KvSource::prefill) {
      im.doc.reset();
      return err(run.message(), "; recomputing it failed: ", again.ok() ? "its KV was not prefilled" : again.message());
    }
    FKV_ASSIGN_OR_RETURN(GenerateResult r, ask(turns, options, on_text));
    r.kv_recomputed = damage;
    return r;
  }
  FKV_ASSIGN_OR_RETURN(GenerateResult r, std::move(run));
  r.citations = tally.citations(impl_->doc->content, o.max_citations);
  if (o.chat_id > 0) {
    // The answer stands whether or not its KV could be kept; a failed save only means the next reopen re-evaluates.
    (void)impl_->save_chat(o.chat_id);
  }
  return r;
}

void Engine::close_document() { impl_->doc.reset(); }

const DocumentContent* Engine::document() const { return impl_->doc ? &impl_->doc->content : nullptr; }

}  // namespace fkv
