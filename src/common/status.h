// Status and Result<T>: how expected failures travel in Synod.
//
// A Status is either OK or an error code with a human-readable message. Like LevelDB's
// Status, OK costs one null pointer, so returning Status on hot paths is cheap. Result<T>
// holds either a value or a non-OK Status. Both are [[nodiscard]]: ignoring an error is a
// compile error under -Werror. Exceptions never cross module boundaries; errors do, as these.
//
// Thread-safety: values; safe to move between threads, not to share mutably.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "common/assert.h"

namespace synod {

// The error codes of every module. Each module documents which it returns and when.
enum class Code : int {
  kOk = 0,
  kInvalidArgument,     // bad input from a caller or a client; retrying will not help
  kNotFound,            // the thing asked for does not exist
  kCorruption,          // stored data failed a checksum or a format check
  kIoError,             // the OS refused a read, write or fsync (disk full, EIO, ...)
  kNotLeader,           // this node cannot serve the request; another node may
  kProposalDropped,     // a proposal was refused (no leader, transfer in progress, ...)
  kTimeout,             // a bound was reached before the operation finished
  kUnavailable,         // no quorum or the peer is unreachable; retry later
  kResourceExhausted,   // a configured bound (bytes, entries, queue) was reached
  kFailedPrecondition,  // the system is not in a state that allows the operation
  kCompacted,           // the requested log entries were discarded by compaction
  kUnavailableEntries,  // the requested log entries are not yet available
  kSnapshotOutOfDate,   // the snapshot is older than what storage already has
};

std::string_view CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string_view message);

  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&& other) noexcept = default;
  Status& operator=(Status&& other) noexcept = default;

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string_view m) { return {Code::kInvalidArgument, m}; }
  static Status NotFound(std::string_view m) { return {Code::kNotFound, m}; }
  static Status Corruption(std::string_view m) { return {Code::kCorruption, m}; }
  static Status IoError(std::string_view m) { return {Code::kIoError, m}; }
  static Status NotLeader(std::string_view m) { return {Code::kNotLeader, m}; }
  static Status ProposalDropped(std::string_view m) { return {Code::kProposalDropped, m}; }
  static Status Timeout(std::string_view m) { return {Code::kTimeout, m}; }
  static Status Unavailable(std::string_view m) { return {Code::kUnavailable, m}; }
  static Status ResourceExhausted(std::string_view m) { return {Code::kResourceExhausted, m}; }
  static Status FailedPrecondition(std::string_view m) { return {Code::kFailedPrecondition, m}; }

  bool ok() const { return state_ == nullptr; }
  Code code() const { return state_ == nullptr ? Code::kOk : state_->code; }
  // The message without the code name; empty when OK.
  std::string_view message() const;
  // "OK" or "<CodeName>: <message>".
  std::string ToString() const;

  bool operator==(Code code) const { return this->code() == code; }

 private:
  struct State {
    Code code;
    std::string message;
  };
  std::unique_ptr<State> state_;  // null means OK
};

// Result<T> is a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT: implicit by design
    SYNOD_ASSERT_MSG(!std::get<Status>(v_).ok(), "Result built from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  // REQUIRES: !ok() for status() to be an error; returns OK when a value is held.
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

  // REQUIRES: ok()
  T& value() & {
    SYNOD_ASSERT(ok());
    return std::get<T>(v_);
  }
  const T& value() const& {
    SYNOD_ASSERT(ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    SYNOD_ASSERT(ok());
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace synod

// Returns from the enclosing function when `expr` (a Status) is not OK.
#define SYNOD_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::synod::Status _synod_status = (expr);        \
    if (!_synod_status.ok()) return _synod_status; \
  } while (0)
