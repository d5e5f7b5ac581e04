#include "kv/command.h"

#include <limits>

#include "common/assert.h"
#include "kv/kv.pb.h"

namespace synod::kv {

std::string_view OpName(Op op) {
  switch (op) {
    case Op::kGet:
      return "GET";
    case Op::kPut:
      return "PUT";
    case Op::kDel:
      return "DEL";
    case Op::kCas:
      return "CAS";
    case Op::kIncr:
      return "INCR";
    case Op::kAppend:
      return "APPEND";
  }
  return "UNKNOWN";
}

std::string_view ReplyCodeMessage(ReplyCode code) {
  switch (code) {
    case ReplyCode::kOk:
      return "";
    case ReplyCode::kNotInteger:
      return "value is not an integer or out of range";
    case ReplyCode::kKeyTooLarge:
      return "key is too large";
    case ReplyCode::kValueTooLarge:
      return "string exceeds maximum allowed size";
    case ReplyCode::kStaleRequest:
      return "stale request: a newer command of this client was already applied";
    case ReplyCode::kSessionExpired:
      return "session expired: start a new client session";
    case ReplyCode::kBadCommand:
      return "malformed command";
  }
  return "unknown reply code";
}

namespace {

// The op enums share their numbers by construction; these pin it at compile time.
static_assert(static_cast<int>(Op::kGet) == pb::OP_GET);
static_assert(static_cast<int>(Op::kPut) == pb::OP_PUT);
static_assert(static_cast<int>(Op::kDel) == pb::OP_DEL);
static_assert(static_cast<int>(Op::kCas) == pb::OP_CAS);
static_assert(static_cast<int>(Op::kIncr) == pb::OP_INCR);
static_assert(static_cast<int>(Op::kAppend) == pb::OP_APPEND);

bool IsKnownOp(int op) { return op >= pb::OP_GET && op <= pb::OP_APPEND; }

}  // namespace

std::string EncodeCommand(const Command& cmd) {
  SYNOD_ASSERT(IsKnownOp(static_cast<int>(cmd.op)));
  pb::Command m;
  m.set_op(static_cast<pb::Op>(cmd.op));
  m.set_key(cmd.key);
  m.set_value(cmd.value);
  if (cmd.expected.has_value()) m.set_expected(*cmd.expected);
  m.set_delta(cmd.delta);
  m.set_client_id(cmd.client_id);
  m.set_seq(cmd.seq);
  std::string out;
  // Serialization only fails above protobuf's 2 GiB message limit; keys and values are far
  // below it once bounded by the front end, so this is a programmer error.
  const bool serialized = m.SerializeToString(&out);
  SYNOD_ASSERT_MSG(serialized, "command too large to encode");
  SYNOD_ASSERT(!out.empty());  // op is never 0, so at least its tag and value are written
  return out;
}

Result<Command> DecodeCommand(std::string_view data) {
  if (data.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return Status::InvalidArgument("kv command: too large");
  }
  pb::Command m;
  if (!m.ParseFromArray(data.data(), static_cast<int>(data.size()))) {
    return Status::InvalidArgument("kv command: not a protobuf Command");
  }
  if (!IsKnownOp(m.op())) return Status::InvalidArgument("kv command: unknown op");
  if (m.client_id() != 0 && m.seq() == 0) {
    return Status::InvalidArgument("kv command: seq must be >= 1 with a client id");
  }
  if (m.client_id() == 0 && m.seq() != 0) {
    return Status::InvalidArgument("kv command: seq without a client id");
  }
  Command cmd;
  cmd.op = static_cast<Op>(m.op());
  cmd.key = std::move(*m.mutable_key());
  cmd.value = std::move(*m.mutable_value());
  if (m.has_expected()) cmd.expected = std::move(*m.mutable_expected());
  cmd.delta = m.delta();
  cmd.client_id = m.client_id();
  cmd.seq = m.seq();
  return cmd;
}

}  // namespace synod::kv
