// The node-to-node request channel's messages: a client command that one node sends to the node
// that can serve its shard (the leader, or any replica for a stale read), and the answer. The
// receiving node runs it as if its own client had sent it and answers with the outcome; the
// sender relays that to its client unchanged, so the client never sees the hop.
//
// A write carries the sending connection's at-most-once session for the shard (client id and
// seq inside the kv::Command): when a hop's answer is lost and the sender tries again, possibly
// at another node after a failover, the shard applies the write at most once.
//
// Thread-safety: values and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/logic/replica.h"
#include "common/ids.h"
#include "common/status.h"
#include "kv/command.h"

namespace synod::cluster {

struct ShardRequest {
  enum class Type : uint8_t {
    kWrite = 1,            // propose `command` (answer: the applied reply and its index)
    kRead = 2,             // run the Redis read `args` at a linearizable point
    kVersions = 3,         // the versions of the keys `args` (WATCH), with the read index
    kReplicasHolding = 4,  // how many replicas besides the leader hold `index` (WAIT)
    kConfChange = 5,       // propose the membership change `conf_change` (answer at proposal)
    // The live keys of the slot `index`, at most `random` of them (CLUSTER GETKEYSINSLOT), or
    // their count when `args` is {"count"} (COUNTKEYSINSLOT), read like kRead.
    kSlotKeys = 6,
    // The replicated setting `args[0]` (the meta shard's): a bulk reply, or nil when unset;
    // with several names, an array of those.
    kConfig = 7,
    // The shard's key count and how many of them have an expiry (INFO keyspace), read like
    // kRead: an array of two integers.
    kKeyspace = 8,
    // A merge's read of the shard it absorbs (cluster/logic/merge.h), read like kRead: with
    // args {"0"} the bytes of its keys and values (an integer); with {token} its whole state
    // (kv::StateMachine::Snapshot, a bulk reply) when frozen for that token.
    kFrozenState = 9,
    // A script (compute/script_runner.h), run on the shard's leader: args = {body, keys...,
    // args...} with `keys` of them keys; flags kScriptReadOnly, kScriptResp3. Answer: the
    // script's reply (and the index of its effects' entry when it wrote).
    kScript = 10,
    // SCRIPT KILL / FUNCTION KILL (flags kScriptFunctions) on the shard's leader: the number of
    // runs stopped, as an integer reply.
    kScriptKill = 11,
  };
  static constexpr uint8_t kTypeMax = 11;
  static constexpr uint32_t kScriptReadOnly = 1;
  static constexpr uint32_t kScriptResp3 = 2;
  static constexpr uint32_t kScriptFunctions = 4;  // kScriptKill: FUNCTION KILL
  // kScript: a function (FCALL): args = {library code, function name, keys..., args...}.
  static constexpr uint32_t kScriptFunction = 8;

  Type type = Type::kRead;
  GroupId group;
  // The epoch of the descriptor the sender routed by (RequestRouter stamps it); 0 for any. A
  // node whose descriptor is newer refuses the request as a stale route.
  uint64_t epoch = 0;
  // The slots of the request's keys (first..last) when it is routed by them (a key's command);
  // nullopt for a request aimed at the shard itself (DBSIZE, SCAN, a membership change). The
  // router sends it to whichever shard owns them when it tries (a split may have moved them),
  // and the shard refuses slots it does not own (a write with kv::ReplyCode::kWrongShard).
  std::optional<SlotRange> slots;
  kv::Command command;
  std::vector<std::string> args;
  ReadMode mode = ReadMode::kLinearizable;  // not sent: a forwarded request is linearizable
  int64_t now_ms = 0;
  uint64_t random = 0;
  LogIndex index;
  std::string conf_change;
  uint32_t keys = 0;   // kScript: how many of args[1..] are keys
  uint32_t flags = 0;  // kScript, kScriptKill
};

struct ShardResponse {
  Status status;
  NodeId leader;  // the answering node's leader hint for the group, and its term
  uint64_t term = 0;
  kv::Reply reply;
  LogIndex index;
  int64_t number = 0;
  // A refusal for a stale route (the request's epoch is older than the answering node's
  // descriptor of the shard, or its slots are no longer the shard's): the answering node's
  // descriptors of the shard and of the owners of the slots (EncodeDescriptor), to learn.
  std::vector<std::string> descriptors;
  // Local to the node, never sent: set by the router on a write's answer when every earlier
  // attempt of it was refused whole (a stale route, no leader, a dropped proposal) — no attempt
  // of it was applied anywhere. A kStaleRequest answer to such a retry (the same session wrote
  // a later command meanwhile: pipelined writes across a split) is then safe to renumber.
  bool never_applied_before = false;
};

// A Redis-shaped write to `group` as the first command of the fresh at-most-once session
// `session` (the cluster's own proposals: a split, a merge's steps).
ShardRequest FreshRedisWrite(GroupId group, uint64_t session, std::vector<std::string> args = {});
// A write's outcome as a status: the response's error, else its Redis error reply (or a failed
// reply code) as kFailedPrecondition.
Status WriteOutcome(const ShardResponse& r);

std::string EncodeShardRequest(const ShardRequest& r);
// kInvalidArgument for bytes that are not a request, an unknown type, group 0, or a write whose
// command does not decode; never crashes on bad bytes.
Result<ShardRequest> DecodeShardRequest(std::string_view bytes);
std::string EncodeShardResponse(const ShardResponse& r);
Result<ShardResponse> DecodeShardResponse(std::string_view bytes);

}  // namespace synod::cluster
