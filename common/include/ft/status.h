// Expected failures are values: a Status carries a code and a message a person can act on.
// No exceptions cross a module boundary; broken invariants are asserts.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace ft {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,   // bad input from a user, a config file or a peer
  kNotFound,          // a named thing (file, VM, domain) does not exist
  kPermissionDenied,  // exists but may not be used
  kAlreadyExists,
  kFailedPrecondition,  // the world is not in the state the operation needs
  kUnavailable,         // a peer, socket or process cannot be reached (may be retried)
  kTimeout,
  kAborted,   // the other side closed or the operation was cancelled
  kDataLoss,  // corrupt or truncated data
  kProtocol,  // a peer spoke the protocol wrong
  kRemote,    // the peer answered with an error of its own (e.g. a QMP error reply)
  kInternal,
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "not-found: kernel '/x' does not exist"
  std::string ToString() const;

  // Returns a status with `context` prepended to the message: "vm 'web1': <message>".
  Status WithContext(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status PermissionDenied(std::string m) {
  return {StatusCode::kPermissionDenied, std::move(m)};
}
inline Status FailedPrecondition(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status Timeout(std::string m) { return {StatusCode::kTimeout, std::move(m)}; }
inline Status Aborted(std::string m) { return {StatusCode::kAborted, std::move(m)}; }
inline Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status ProtocolError(std::string m) { return {StatusCode::kProtocol, std::move(m)}; }
inline Status RemoteError(std::string m) { return {StatusCode::kRemote, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// Status from errno: "<what>: <strerror(err)>".
Status ErrnoStatus(const std::string& what, int err);

// Result<T>: either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok() && "Result built from an ok Status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }

  T& value() & {
    assert(ok());
    return std::get<T>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace ft

// Propagates a non-ok Status from an expression returning Status.
#define FT_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::ft::Status ft_status_ = (expr);        \
    if (!ft_status_.ok()) return ft_status_; \
  } while (0)

#define FT_CONCAT_INNER_(a, b) a##b
#define FT_CONCAT_(a, b) FT_CONCAT_INNER_(a, b)
// FT_ASSIGN_OR_RETURN(auto x, FunctionReturningResult());
#define FT_ASSIGN_OR_RETURN(lhs, expr) \
  FT_ASSIGN_OR_RETURN_IMPL_(FT_CONCAT_(ft_result_, __LINE__), lhs, expr)
#define FT_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
