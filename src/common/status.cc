#include "common/status.h"

namespace synod {

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "OK";
    case Code::kInvalidArgument:
      return "InvalidArgument";
    case Code::kNotFound:
      return "NotFound";
    case Code::kCorruption:
      return "Corruption";
    case Code::kIoError:
      return "IoError";
    case Code::kNotLeader:
      return "NotLeader";
    case Code::kProposalDropped:
      return "ProposalDropped";
    case Code::kTimeout:
      return "Timeout";
    case Code::kUnavailable:
      return "Unavailable";
    case Code::kResourceExhausted:
      return "ResourceExhausted";
    case Code::kFailedPrecondition:
      return "FailedPrecondition";
    case Code::kCompacted:
      return "Compacted";
    case Code::kUnavailableEntries:
      return "UnavailableEntries";
    case Code::kSnapshotOutOfDate:
      return "SnapshotOutOfDate";
  }
  return "Unknown";
}

Status::Status(Code code, std::string_view message) {
  SYNOD_ASSERT_MSG(code != Code::kOk, "use Status() for OK");
  state_ = std::make_unique<State>(State{code, std::string(message)});
}

Status::Status(const Status& other)
    : state_(other.state_ ? std::make_unique<State>(*other.state_) : nullptr) {}

Status& Status::operator=(const Status& other) {
  if (this != &other) state_ = other.state_ ? std::make_unique<State>(*other.state_) : nullptr;
  return *this;
}

std::string_view Status::message() const {
  return state_ == nullptr ? std::string_view() : std::string_view(state_->message);
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s(CodeName(state_->code));
  if (!state_->message.empty()) {
    s += ": ";
    s += state_->message;
  }
  return s;
}

}  // namespace synod
