// Chats about a document keep their KV: after each answer the pages past the document's last full page are saved as an
// extension of the document's snapshot (copy-on-write at page granularity: the document's pages are never copied), and
// a chat reopened later loads them instead of evaluating its earlier turns again. The token ids the extension holds
// are kept in the snapshot row, so it is only used for a conversation that really continues them.
#include <cstring>
#include <filesystem>

#include "runtime/engine_impl.h"

namespace fkv {

namespace {

std::vector<uint8_t> encode_tokens(std::span<const int32_t> t) {
  std::vector<uint8_t> out(t.size() * sizeof(int32_t));
  if (!t.empty()) std::memcpy(out.data(), t.data(), out.size());  // little-endian int32, as on every target
  return out;
}

std::vector<int32_t> decode_tokens(const std::vector<uint8_t>& b) {
  std::vector<int32_t> out(b.size() / sizeof(int32_t));
  if (!out.empty()) std::memcpy(out.data(), b.data(), out.size() * sizeof(int32_t));
  return out;
}

}  // namespace

// The document's prefix back in the context after a failed chat load emptied it: from its snapshot, else a prefill.
Status Engine::Impl::reload_prefix() {
  ctx->reset();
  ctx_tokens.clear();
  if (doc->snapshot_id > 0 && library) {
    Status s = [&]() -> Status {
      FKV_ASSIGN_OR_RETURN(const SnapshotRecord rec, library->get_snapshot(doc->snapshot_id));
      FKV_ASSIGN_OR_RETURN(PageFileReader file, PageFileReader::open(library->page_file_path(rec)));
      return ctx->map_kv(std::make_shared<const PageFileReader>(std::move(file)), snapshot_meta(doc->prompt));
    }();
    if (s.ok()) {
      ctx_tokens = doc->prompt.prefix;
      return {};
    }
    ctx->reset();
  }
  return prefill_prefix(doc->prompt.prefix, nullptr);
}

void Engine::Impl::restore_chat(int64_t chat_id, const std::vector<int32_t>& tokens) {
  const std::vector<int32_t>& prefix = doc->prompt.prefix;
  if (!library || doc->snapshot_id <= 0 || ctx_tokens.size() > prefix.size()) return;  // nothing to gain
  SnapshotKey key = doc->key;
  key.chat_id = chat_id;
  Result<std::optional<SnapshotRecord>> found = library->find_snapshot(key);
  if (!found.ok() || !*found || (*found)->state != SnapshotState::ready) return;
  const SnapshotRecord& rec = **found;
  const std::vector<int32_t> chat = decode_tokens(rec.token_spans);
  // Usable only for a conversation that continues exactly these tokens (and has something new to evaluate).
  if (chat.empty() || prefix.size() + chat.size() >= tokens.size() ||
      !std::equal(chat.begin(), chat.end(), tokens.begin() + static_cast<std::ptrdiff_t>(prefix.size())))
    return;
  Status s = [&]() -> Status {
    if (ctx_tokens.size() != prefix.size()) FKV_TRY(reload_prefix());
    FKV_ASSIGN_OR_RETURN(const SnapshotRecord base, library->get_snapshot(doc->snapshot_id));
    FKV_ASSIGN_OR_RETURN(const PageFileReader base_file, PageFileReader::open(library->page_file_path(base)));
    FKV_ASSIGN_OR_RETURN(const PageFileReader file, PageFileReader::open(library->page_file_path(rec)));
    SnapshotMeta meta = snapshot_meta(doc->prompt);
    meta.base_fingerprint = base_file.fingerprint();
    FKV_TRY(ctx->load_kv(file, meta));
    if (static_cast<size_t>(ctx->n_past()) != prefix.size() + chat.size())
      return err("chat snapshot holds ", ctx->n_past(), " tokens, its row names ", prefix.size() + chat.size());
    return {};
  }();
  if (s.ok()) {
    ctx_tokens = prefix;
    ctx_tokens.insert(ctx_tokens.end(), chat.begin(), chat.end());
    (void)library->touch_snapshot(rec.id);
    return;
  }
  (void)library->mark_stale(rec.id, s.message());
  (void)reload_prefix();  // the failed load left the context empty; run() evaluates whatever is still missing
}

Status Engine::Impl::save_chat(int64_t chat_id) {
  if (!library || doc->snapshot_id <= 0) return {};
  const std::vector<int32_t>& prefix = doc->prompt.prefix;
  const int page_size = ctx->params().page_size;
  const int first_page = static_cast<int>(prefix.size()) / page_size;  // the document's last full page ends here
  if (ctx_tokens.size() <= prefix.size() || static_cast<size_t>(ctx->n_past()) != ctx_tokens.size()) return {};
  FKV_ASSIGN_OR_RETURN(const SnapshotRecord base, library->get_snapshot(doc->snapshot_id));
  FKV_ASSIGN_OR_RETURN(const PageFileReader base_file, PageFileReader::open(library->page_file_path(base)));
  SnapshotKey key = doc->key;
  key.chat_id = chat_id;
  SnapshotRecord rec = library->begin_snapshot(key);
  rec.base_snapshot_id = doc->snapshot_id;
  SnapshotMeta meta = snapshot_meta(doc->prompt);
  meta.base_fingerprint = base_file.fingerprint();
  const std::string path = library->page_file_path(rec);
  FKV_TRY(ctx->save_kv(path, meta, first_page));
  std::error_code ec;
  rec.n_tokens = ctx->n_past();
  rec.bytes = static_cast<int64_t>(std::filesystem::file_size(path, ec));
  rec.token_spans = encode_tokens(std::span(ctx_tokens).subspan(prefix.size()));
  return library->put_snapshot(rec).status();
}

}  // namespace fkv
