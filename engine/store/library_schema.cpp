// The library's schema and its migrations. PRAGMA user_version holds the schema version; each migration takes the
// database from version N-1 to N in one transaction, so a crash or a failure midway leaves version N-1 intact.
// To change the schema, append a migration; never edit a released one (databases in the field already ran it).
// A migration that rebuilds a table must keep foreign keys valid: foreign_keys is ON and cannot be switched off
// inside the transaction, so use PRAGMA defer_foreign_keys there.
#include <cstddef>
#include <iterator>
#include <string>

#include "store/library_sql.h"

namespace fkv::sql {

namespace {

// v1: the initial schema. Times are unix seconds. Snapshot paths are relative to the library's pages_dir.
constexpr const char* k_schema_v1 = R"sql(
CREATE TABLE documents (
  id INTEGER PRIMARY KEY,
  path TEXT NOT NULL,
  content_hash TEXT NOT NULL UNIQUE CHECK (content_hash <> ''),
  title TEXT NOT NULL,
  format TEXT NOT NULL,
  size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
  n_chars INTEGER NOT NULL CHECK (n_chars >= 0),
  text TEXT NOT NULL,
  added_at INTEGER NOT NULL,
  opened_at INTEGER NOT NULL DEFAULT 0
);

-- Headings and PDF page starts, in document order.
CREATE TABLE sections (
  document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('heading', 'page')),
  level INTEGER NOT NULL CHECK (level >= 0),
  title TEXT NOT NULL,
  char_offset INTEGER NOT NULL CHECK (char_offset >= 0),
  PRIMARY KEY (document_id, idx)
) WITHOUT ROWID;

CREATE TABLE models (
  id INTEGER PRIMARY KEY,
  fingerprint TEXT NOT NULL UNIQUE CHECK (fingerprint <> ''),
  name TEXT NOT NULL,
  path TEXT NOT NULL,
  file_size INTEGER NOT NULL CHECK (file_size >= 0),
  added_at INTEGER NOT NULL
);

CREATE TABLE chats (
  id INTEGER PRIMARY KEY,
  document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
  title TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX chats_by_document ON chats(document_id);

CREATE TABLE messages (
  id INTEGER PRIMARY KEY,
  chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL CHECK (seq >= 0),
  role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
  content TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (chat_id, seq)
);

CREATE TABLE kv_snapshots (
  id INTEGER PRIMARY KEY,
  document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
  model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
  prompt_format TEXT NOT NULL CHECK (prompt_format <> ''),
  page_size INTEGER NOT NULL CHECK (page_size > 0),
  dtype TEXT NOT NULL CHECK (dtype <> ''),
  path TEXT NOT NULL UNIQUE CHECK (path <> ''),  -- unique: deleting one row's file must not break another row
  n_tokens INTEGER NOT NULL CHECK (n_tokens >= 0),
  bytes INTEGER NOT NULL CHECK (bytes >= 0),
  state TEXT NOT NULL CHECK (state IN ('ready', 'stale')),
  stale_reason TEXT NOT NULL DEFAULT '',
  token_spans BLOB,
  base_snapshot_id INTEGER REFERENCES kv_snapshots(id) ON DELETE CASCADE,
  chat_id INTEGER REFERENCES chats(id) ON DELETE CASCADE,
  created_at INTEGER NOT NULL,
  last_used_at INTEGER NOT NULL
);
-- One snapshot per key. A plain UNIQUE constraint would treat every NULL chat_id as distinct and allow duplicate
-- document snapshots; chat ids start at 1, so 0 stands for "no chat".
CREATE UNIQUE INDEX kv_snapshots_key
  ON kv_snapshots(document_id, model_id, prompt_format, page_size, dtype, IFNULL(chat_id, 0));
-- The cascades and the dependents walk look rows up by these.
CREATE INDEX kv_snapshots_by_model ON kv_snapshots(model_id);
CREATE INDEX kv_snapshots_by_base ON kv_snapshots(base_snapshot_id);
CREATE INDEX kv_snapshots_by_chat ON kv_snapshots(chat_id);

CREATE TABLE settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
)sql";

// v2: an answer keeps why it ended and the passages it cited, so its marks and its citations survive a reopen; a
// document keeps why its last open was refused (too long for the context) and its token count then.
constexpr const char* k_schema_v2 = R"sql(
ALTER TABLE messages ADD COLUMN stop_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE documents ADD COLUMN refusal TEXT NOT NULL DEFAULT '';
ALTER TABLE documents ADD COLUMN refused_tokens INTEGER NOT NULL DEFAULT -1;

CREATE TABLE citations (
  message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  rank INTEGER NOT NULL CHECK (rank >= 0),
  char_begin INTEGER NOT NULL CHECK (char_begin >= 0),
  char_end INTEGER NOT NULL CHECK (char_end >= char_begin),
  weight REAL NOT NULL,
  place TEXT NOT NULL,
  snippet TEXT NOT NULL,
  PRIMARY KEY (message_id, rank)
) WITHOUT ROWID;
)sql";

// v3: a prefill stopped part way (cancelled, the app closed, a crash) keeps what it computed: checkpoints, each a page
// file extending the one before it (seq - 1) up to n_tokens of the total_tokens the prefill is for. The finished
// snapshot replaces them.
constexpr const char* k_schema_v3 = R"sql(
CREATE TABLE prefill_checkpoints (
  id INTEGER PRIMARY KEY,
  document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
  model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
  prompt_format TEXT NOT NULL CHECK (prompt_format <> ''),
  page_size INTEGER NOT NULL CHECK (page_size > 0),
  dtype TEXT NOT NULL CHECK (dtype <> ''),
  seq INTEGER NOT NULL CHECK (seq >= 0),
  path TEXT NOT NULL UNIQUE CHECK (path <> ''),
  n_tokens INTEGER NOT NULL CHECK (n_tokens > 0),
  total_tokens INTEGER NOT NULL CHECK (total_tokens >= n_tokens),
  bytes INTEGER NOT NULL CHECK (bytes >= 0),
  created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX prefill_checkpoints_key
  ON prefill_checkpoints(document_id, model_id, prompt_format, page_size, dtype, seq);
CREATE INDEX prefill_checkpoints_by_model ON prefill_checkpoints(model_id);
)sql";

struct Migration {
  int to_version;
  const char* sql;
};

constexpr Migration k_migrations[] = {
    {1, k_schema_v1},
    {2, k_schema_v2},
    {3, k_schema_v3},
};

constexpr bool versions_are_consecutive() {
  for (size_t i = 0; i < std::size(k_migrations); ++i) {
    if (k_migrations[i].to_version != static_cast<int>(i) + 1) return false;
  }
  return true;
}
static_assert(versions_are_consecutive(), "migration i must lead to schema version i + 1");

Status apply_migration(Db& db, const Migration& m) {
  FKV_ASSIGN_OR_RETURN(Transaction txn, Transaction::begin(db));
  // Another connection may have migrated while this one waited for the write lock.
  FKV_ASSIGN_OR_RETURN(int64_t version, query_int64(db, "PRAGMA user_version"));
  if (version >= m.to_version) return txn.commit();
  if (version != m.to_version - 1) {
    return err(db.path(), ": expected schema version ", m.to_version - 1, " before migrating to v", m.to_version,
               ", found ", version);
  }
  const Status s = db.exec(m.sql);
  if (!s.ok()) return err("migrating the library schema to v", m.to_version, ": ", s.message());
  FKV_TRY(db.exec("PRAGMA user_version = " + std::to_string(m.to_version)));
  return txn.commit();
}

}  // namespace

int library_schema_version() { return k_migrations[std::size(k_migrations) - 1].to_version; }

Status migrate_library(Db& db, int found) {
  for (const Migration& m : k_migrations) {
    if (m.to_version > found) FKV_TRY(apply_migration(db, m));
  }
  return {};
}

}  // namespace fkv::sql
