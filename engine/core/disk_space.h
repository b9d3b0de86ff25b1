// What stops files from being written in a folder (a read-only file system or folder, a full disk), said the way a
// user can act on it. SQLite and write(2) report only "disk I/O error" or an errno; the library and the page-file
// writer add this to their messages, and the library opens read-only when it names a reason.
#pragma once

#include <cstdint>
#include <string>

namespace fkv {

// Less free space than this counts as a full disk: SQLite needs room for its -shm and -wal files before it can read
// a WAL database in write mode, and a page file is megabytes.
constexpr int64_t k_min_free_bytes = int64_t{1} << 20;

// Why nothing can be written in `dir`, e.g. "the library folder /x is read-only (read-only file system)" or
// "no space left on device on /x: 0 bytes free; free some space"; empty when nothing stands in the way (or `dir`
// cannot be examined). `what` names the folder for the user ("the library folder").
std::string why_unwritable(const std::string& dir, const std::string& what = "the library folder");

// strerror(e), followed by why_unwritable(<folder of path>) when e says the disk is full or read-only.
std::string write_error_detail(int e, const std::string& path);

}  // namespace fkv
