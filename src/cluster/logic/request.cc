#include "cluster/logic/request.h"

#include "cluster/logic/request.pb.h"

namespace synod::cluster {

std::string EncodeShardRequest(const ShardRequest& r) {
  pb::ShardRequest m;
  m.set_type(static_cast<uint32_t>(r.type));
  m.set_group(r.group.value());
  m.set_epoch(r.epoch);
  if (r.type == ShardRequest::Type::kWrite) m.set_command(kv::EncodeCommand(r.command));
  for (const std::string& a : r.args) m.add_args(a);
  m.set_now_ms(r.now_ms);
  m.set_random(r.random);
  m.set_index(r.index.value());
  m.set_conf_change(r.conf_change);
  m.set_keys(r.keys);
  m.set_flags(r.flags);
  if (r.slots) {
    m.set_has_slots(true);
    m.set_slot_first(r.slots->first);
    m.set_slot_last(r.slots->last);
  }
  return m.SerializeAsString();
}

Result<ShardRequest> DecodeShardRequest(std::string_view bytes) {
  pb::ShardRequest m;
  if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Status::InvalidArgument("not a shard request");
  }
  if (m.type() < 1 || m.type() > ShardRequest::kTypeMax) {
    return Status::InvalidArgument("shard request of unknown type " + std::to_string(m.type()));
  }
  if (m.group() == 0) return Status::InvalidArgument("shard request for group 0");
  ShardRequest r;
  r.type = static_cast<ShardRequest::Type>(m.type());
  r.group = GroupId(m.group());
  r.epoch = m.epoch();
  if (r.type == ShardRequest::Type::kWrite) {
    Result<kv::Command> c = kv::DecodeCommand(m.command());
    if (!c.ok()) return c.status();
    r.command = std::move(c).value();
  }
  r.args.reserve(static_cast<size_t>(m.args_size()));
  for (std::string& a : *m.mutable_args()) r.args.push_back(std::move(a));
  r.now_ms = m.now_ms();
  r.random = m.random();
  r.index = LogIndex(m.index());
  r.conf_change = std::move(*m.mutable_conf_change());
  r.keys = m.keys();
  r.flags = m.flags();
  const size_t fixed = (r.flags & ShardRequest::kScriptFunction) != 0 ? 2 : 1;
  if (r.type == ShardRequest::Type::kScript && r.args.size() < fixed + r.keys) {
    return Status::InvalidArgument("script request without a body, or with more keys than args");
  }
  if (m.has_slots()) {
    if (m.slot_first() > m.slot_last() || m.slot_last() >= kSlotCount) {
      return Status::InvalidArgument("shard request with slots outside the slot space");
    }
    r.slots =
        SlotRange{static_cast<uint16_t>(m.slot_first()), static_cast<uint16_t>(m.slot_last())};
  }
  return r;
}

std::string EncodeShardResponse(const ShardResponse& r) {
  pb::ShardResponse m;
  m.set_code(static_cast<uint32_t>(r.status.code()));
  m.set_message(std::string(r.status.message()));
  m.set_leader(r.leader.value());
  m.set_term(r.term);
  if (r.status.ok()) m.set_reply(kv::EncodeReply(r.reply));
  m.set_index(r.index.value());
  m.set_number(r.number);
  for (const std::string& d : r.descriptors) m.add_shard_descriptor(d);
  return m.SerializeAsString();
}

Result<ShardResponse> DecodeShardResponse(std::string_view bytes) {
  pb::ShardResponse m;
  if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Status::InvalidArgument("not a shard response");
  }
  if (m.code() > static_cast<uint32_t>(Code::kSnapshotOutOfDate)) {
    return Status::InvalidArgument("shard response of unknown code " + std::to_string(m.code()));
  }
  ShardResponse r;
  const auto code = static_cast<Code>(m.code());
  r.status = code == Code::kOk ? Status::Ok() : Status(code, m.message());
  r.leader = NodeId(m.leader());
  r.term = m.term();
  if (code == Code::kOk) {
    Result<kv::Reply> reply = kv::DecodeReply(m.reply());
    if (!reply.ok()) return reply.status();
    r.reply = std::move(reply).value();
  }
  r.index = LogIndex(m.index());
  r.number = m.number();
  for (std::string& d : *m.mutable_shard_descriptor()) r.descriptors.push_back(std::move(d));
  return r;
}

ShardRequest FreshRedisWrite(GroupId group, uint64_t session, std::vector<std::string> args) {
  ShardRequest req;
  req.type = ShardRequest::Type::kWrite;
  req.group = group;
  req.command.op = kv::Op::kRedis;
  req.command.client_id = session;
  req.command.seq = 1;
  req.command.args = std::move(args);
  return req;
}

Status WriteOutcome(const ShardResponse& r) {
  if (!r.status.ok()) return r.status;
  if (r.reply.is_error()) return Status::FailedPrecondition(r.reply.value.value_or("error"));
  if (!r.reply.ok()) return Status::FailedPrecondition(std::string(r.reply.message()));
  return Status::Ok();
}

}  // namespace synod::cluster
