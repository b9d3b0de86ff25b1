// Shared by the library suites (test_library, test_library_faults): Result checks, and documents and snapshots made
// by hand (a snapshot's "page file" is n_bytes of filler: the library never reads page files).
#pragma once

#include <QTest>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "store/library.h"

// Declares `lhs` from a Result, failing the test with its message otherwise.
#define ASSIGN_OK(lhs, expr)                                   \
  auto lhs##_result = (expr);                                  \
  QVERIFY2(lhs##_result.ok(), lhs##_result.message().c_str()); \
  auto lhs = std::move(lhs##_result).value()
#define VERIFY_OK(expr)                                                                        \
  do {                                                                                         \
    const auto verify_ok_ = (expr); /* a copy: expr may return a reference into a temporary */ \
    QVERIFY2(verify_ok_.ok(), verify_ok_.message().c_str());                                   \
  } while (0)
#define VERIFY_ERROR(expr, needle)                                                                     \
  do {                                                                                                 \
    const auto& verify_err_ = (expr);                                                                  \
    const std::string needle_ = (needle);                                                              \
    QVERIFY2(!verify_err_.ok(), ("expected an error containing: " + needle_).c_str());                 \
    QVERIFY2(verify_err_.message().find(needle_) != std::string::npos, verify_err_.message().c_str()); \
  } while (0)

namespace fkvtest {

inline void write_bytes(const std::string& path, int64_t n_bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << std::string(static_cast<size_t>(n_bytes), 'k');
}

inline void make_old(const std::string& path) {
  namespace fs = std::filesystem;
  fs::last_write_time(path, fs::file_time_type::clock::now() - std::chrono::hours(2));
}

inline fkv::Document make_doc(const std::string& hash, const std::string& path) {
  using fkv::Section;
  using fkv::SectionKind;
  fkv::Document d;
  d.text = "Chapter 1\nHello world.\nChapter 2\nGoodbye.";
  d.info.path = path;
  d.info.content_hash = hash;
  d.info.title = "Title " + hash;
  d.info.format = "md";
  d.info.size_bytes = static_cast<int64_t>(d.text.size());
  d.info.n_chars = static_cast<int64_t>(d.text.size());
  d.sections = {Section{SectionKind::heading, 1, "Chapter 1", 0}, Section{SectionKind::heading, 1, "Chapter 2", 23},
                Section{SectionKind::page, 0, "2", 30}};
  return d;
}

inline fkv::SnapshotKey key(int64_t doc, int64_t model, std::optional<int64_t> chat = {},
                            const std::string& dtype = "f16") {
  fkv::SnapshotKey k;
  k.document_id = doc;
  k.model_id = model;
  k.prompt_format = "gemma";
  k.page_size = 32;
  k.dtype = dtype;
  k.chat_id = chat;
  return k;
}

// Records a snapshot whose page file holds n_bytes.
inline fkv::Result<int64_t> save_fake(fkv::Library& lib, const fkv::SnapshotKey& k, int64_t n_bytes,
                                      std::optional<int64_t> base = {}) {
  fkv::SnapshotRecord r = lib.begin_snapshot(k);
  write_bytes(lib.page_file_path(r), n_bytes);
  r.n_tokens = 100;
  r.bytes = n_bytes;
  r.token_spans = {1, 2, 3, 4};
  r.base_snapshot_id = base;
  return lib.put_snapshot(r);
}

}  // namespace fkvtest
