#include "check/operation.h"

#include <fmt/format.h>

namespace synod::check {

std::string_view OpTypeName(OpType type) {
  switch (type) {
    case OpType::kGet:
      return "get";
    case OpType::kPut:
      return "put";
    case OpType::kDel:
      return "del";
    case OpType::kCas:
      return "cas";
  }
  SYNOD_UNREACHABLE();
}

Status ValidateOperation(const Operation& op) {
  if (op.type == OpType::kPut && !op.value.has_value()) {
    return Status::InvalidArgument("put needs a string \"value\" (use del to delete)");
  }
  if (op.type == OpType::kDel && op.value.has_value()) {
    return Status::InvalidArgument("del takes no \"value\" (it must be null or absent)");
  }
  if (op.type != OpType::kCas && op.expected.has_value()) {
    return Status::InvalidArgument("\"expected\" is only meaningful for cas (use null)");
  }
  if (!op.unknown && op.return_ns < op.call_ns) {
    return Status::InvalidArgument(
        fmt::format("\"return\" ({}) is before \"call\" ({})", op.return_ns, op.call_ns));
  }
  return Status::Ok();
}

std::string QuoteValue(const std::optional<std::string>& s) {
  if (!s.has_value()) return "nil";
  constexpr size_t kShownBytesMax = 64;
  std::string out = "\"";
  for (size_t i = 0; i < s->size() && i < kShownBytesMax; ++i) {
    const auto c = static_cast<unsigned char>((*s)[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  if (s->size() > kShownBytesMax) out += fmt::format("...({} bytes)", s->size());
  return out;
}

namespace {

// The part after the key: arguments and outcome.
std::string FormatEffect(const Operation& op) {
  std::string args;
  switch (op.type) {
    case OpType::kGet:
      args = " -> " + QuoteValue(op.value);
      break;
    case OpType::kPut:
      args = " " + QuoteValue(op.value);
      break;
    case OpType::kDel:
      break;
    case OpType::kCas:
      args = " " + QuoteValue(op.expected) + " -> " + QuoteValue(op.value);
      break;
  }
  if (op.unknown) return args + ": outcome unknown";
  if (op.type == OpType::kCas) return args + (op.ok ? ": ok" : ": comparison failed");
  return op.ok ? args : args + ": failed";
}

}  // namespace

std::string FormatOperation(const Operation& op) {
  const std::string ret = op.unknown ? "?" : fmt::format("{}", op.return_ns);
  return fmt::format("client {} {} {}{}  [call {}, return {}]", op.client, OpTypeName(op.type),
                     QuoteValue(op.key), FormatEffect(op), op.call_ns, ret);
}

}  // namespace synod::check
