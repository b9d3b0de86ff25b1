// Status and Result<T>: how every engine function that can fail on user input reports it.
// No exceptions cross the public API; a failure carries one line that says what was expected and what was found.
#pragma once

#include <cassert>
#include <optional>
#include <sstream>
#include <string>
#include <utility>

namespace fkv {

class [[nodiscard]] Status {
 public:
  Status() = default;  // success
  static Status error(std::string message) {
    Status s;
    s.ok_ = false;
    s.message_ = std::move(message);
    return s;
  }
  bool ok() const { return ok_; }
  const std::string& message() const { return message_; }

 private:
  bool ok_ = true;
  std::string message_;
};

// Builds an error Status from any streamable pieces: fkv::err("tensor ", name, ": expected ", a, ", found ", b).
template <class... Args>
Status err(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return Status::error(os.str());
}

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor): returned implicitly
  Result(Status status) : status_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!status_.ok() && "a Result built from a Status must hold an error");
    if (status_.ok()) (void)(status_ = Status::error("internal error: empty Result"));
  }
  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  const std::string& message() const { return status_.message(); }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace fkv

// Propagate a failed Status.
#define FKV_TRY(expr)                       \
  do {                                      \
    ::fkv::Status fkv_try_status_ = (expr); \
    if (!fkv_try_status_.ok()) return fkv_try_status_; \
  } while (0)

#define FKV_CONCAT_INNER_(a, b) a##b
#define FKV_CONCAT_(a, b) FKV_CONCAT_INNER_(a, b)
// Declare `lhs` from a Result, or return its error: FKV_ASSIGN_OR_RETURN(auto file, GgufFile::open(path));
#define FKV_ASSIGN_OR_RETURN(lhs, expr) FKV_ASSIGN_OR_RETURN_IMPL_(FKV_CONCAT_(fkv_result_, __LINE__), lhs, expr)
#define FKV_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
