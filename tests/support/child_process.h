// Waiting on a forked child that announces a point it reached by creating a marker file: the crash tests kill it
// there (or soon after) and check what it left behind.
#pragma once

#include <sys/types.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <thread>

namespace fkvtest {

// Polls every `poll` until `marker` exists, the child `pid` exits (its wait status in *status) or `deadline` passes.
// Returns whether the child exited (and was reaped).
inline bool waitForMarkerOrExit(pid_t pid, const std::filesystem::path& marker, int* status,
                                std::chrono::steady_clock::time_point deadline, std::chrono::milliseconds poll) {
  bool exited = false;
  while (!std::filesystem::exists(marker) && !exited && std::chrono::steady_clock::now() < deadline) {
    exited = ::waitpid(pid, status, WNOHANG) == pid;
    std::this_thread::sleep_for(poll);
  }
  return exited;
}

}  // namespace fkvtest
