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
    case Op::kBatch:
      return "BATCH";
    case Op::kRedis:
      return "REDIS";
    case Op::kExpire:
      return "EXPIRE";
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
    case ReplyCode::kWrongShard:
      return "the keys' slots moved to another shard; try again";
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
static_assert(static_cast<int>(Op::kBatch) == pb::OP_BATCH);
static_assert(static_cast<int>(Op::kRedis) == pb::OP_REDIS);
static_assert(static_cast<int>(Op::kExpire) == pb::OP_EXPIRE);

bool IsKnownOp(int op) { return op >= pb::OP_GET && op <= pb::OP_EXPIRE; }

void FillProto(const Command& cmd, pb::Command* m) {
  m->set_op(static_cast<pb::Op>(cmd.op));
  m->set_key(cmd.key);
  m->set_value(cmd.value);
  if (cmd.expected.has_value()) m->set_expected(*cmd.expected);
  m->set_delta(cmd.delta);
  m->set_client_id(cmd.client_id);
  m->set_seq(cmd.seq);
  for (const std::string& a : cmd.args) m->add_args(a);
  m->set_now_ms(cmd.now_ms);
  for (const auto& [key, version] : cmd.watches) {
    pb::Watch* w = m->add_watches();
    w->set_key(key);
    w->set_version(version.value());
  }
  m->set_watch_index(cmd.watch_index.value());
  if (cmd.slots) {
    m->set_has_slots(true);
    m->set_slot_first(cmd.slots->first);
    m->set_slot_last(cmd.slots->last);
  }
}

void FillCommand(pb::Command* m, Command* cmd) {
  cmd->op = static_cast<Op>(m->op());
  cmd->key = std::move(*m->mutable_key());
  cmd->value = std::move(*m->mutable_value());
  if (m->has_expected()) cmd->expected = std::move(*m->mutable_expected());
  cmd->delta = m->delta();
  cmd->client_id = m->client_id();
  cmd->seq = m->seq();
  cmd->args.reserve(static_cast<size_t>(m->args_size()));
  for (std::string& a : *m->mutable_args()) cmd->args.push_back(std::move(a));
  cmd->now_ms = m->now_ms();
  for (pb::Watch& w : *m->mutable_watches()) {
    cmd->watches.emplace_back(std::move(*w.mutable_key()), LogIndex(w.version()));
  }
  cmd->watch_index = LogIndex(m->watch_index());
  if (m->has_slots()) {
    // Checked by DecodeCommand: within the slot space, first <= last.
    cmd->slots =
        SlotRange{static_cast<uint16_t>(m->slot_first()), static_cast<uint16_t>(m->slot_last())};
  }
}

}  // namespace

std::string EncodeCommand(const Command& cmd) {
  SYNOD_ASSERT(IsKnownOp(static_cast<int>(cmd.op)));
  SYNOD_ASSERT(cmd.batch.size() <= kBatchMax);
  SYNOD_ASSERT(cmd.op == Op::kBatch || cmd.batch.empty());
  SYNOD_ASSERT(cmd.args.size() <= kBatchMax);
  pb::Command m;
  FillProto(cmd, &m);
  for (const Command& sub : cmd.batch) {
    SYNOD_ASSERT(sub.op != Op::kBatch && IsKnownOp(static_cast<int>(sub.op)));
    FillProto(sub, m.add_batch());
  }
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
  if (m.op() != pb::OP_BATCH && m.batch_size() != 0) {
    return Status::InvalidArgument("kv command: sub-commands outside a batch");
  }
  if (static_cast<size_t>(m.batch_size()) > kBatchMax ||
      static_cast<size_t>(m.args_size()) > kBatchMax) {
    return Status::InvalidArgument("kv command: batch too large");
  }
  if (m.op() != pb::OP_BATCH && m.watches_size() != 0) {
    return Status::InvalidArgument("kv command: watches outside a batch");
  }
  if (m.op() == pb::OP_REDIS && m.args_size() == 0) {
    return Status::InvalidArgument("kv command: a Redis command without a name");
  }
  if (m.has_slots() && (m.slot_first() > m.slot_last() || m.slot_last() >= kSlotCount)) {
    return Status::InvalidArgument("kv command: a slot range outside the slot space");
  }
  Command cmd;
  FillCommand(&m, &cmd);
  cmd.batch.resize(static_cast<size_t>(m.batch_size()));
  for (int i = 0; i < m.batch_size(); ++i) {
    pb::Command* sub = m.mutable_batch(i);
    if (!IsKnownOp(sub->op()) || sub->op() == pb::OP_BATCH || sub->batch_size() != 0) {
      return Status::InvalidArgument("kv command: a sub-command is not a plain command");
    }
    if (sub->client_id() != 0 || sub->seq() != 0 || sub->watches_size() != 0) {
      return Status::InvalidArgument("kv command: a sub-command carries a session");
    }
    if (static_cast<size_t>(sub->args_size()) > kBatchMax ||
        (sub->op() == pb::OP_REDIS && sub->args_size() == 0)) {
      return Status::InvalidArgument("kv command: a sub-command's arguments are malformed");
    }
    FillCommand(sub, &cmd.batch[static_cast<size_t>(i)]);
  }
  return cmd;
}

}  // namespace synod::kv
