#include "core/disk_space.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace fkv {

std::string why_unwritable(const std::string& dir, const std::string& what) {
  struct statvfs st {};
  if (::statvfs(dir.c_str(), &st) != 0) return {};
  if ((st.f_flag & ST_RDONLY) != 0) return what + " " + dir + " is read-only (read-only file system)";
  // access() also sees an immutable folder and missing write permission; root passes it on any writable mount.
  if (::access(dir.c_str(), W_OK) != 0) return what + " " + dir + " is read-only (" + std::strerror(errno) + ")";
  const auto free_bytes = static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
  if (free_bytes < k_min_free_bytes) {
    return "no space left on device on " + dir + ": " + std::to_string(free_bytes) + " bytes free; free some space";
  }
  return {};
}

std::string write_error_detail(int e, const std::string& path) {
  std::string detail = std::strerror(e);
  if (e == ENOSPC || e == EDQUOT || e == EROFS || e == EACCES || e == EPERM) {
    const std::string folder = std::filesystem::path(path).parent_path().string();
    const std::string why = why_unwritable(folder.empty() ? "." : folder, "the folder");
    if (!why.empty()) detail += " (" + why + ")";
  }
  return detail;
}

}  // namespace fkv
