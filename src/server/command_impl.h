// Shared by the command files (commands.cc: the table and the server/connection commands;
// commands_kv.cc: the keyspace commands and transactions). Not part of the server's API.
//
// Thread-safety: everything here runs on the core thread.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/group_host.h"
#include "cluster/logic/replica.h"
#include "kv/command.h"
#include "server/command_table.h"
#include "server/resp/resp.h"

namespace synod::server {

struct Transaction;

// Lower-case ASCII copy.
std::string Lower(std::string_view s);

// Writes a Redis-shaped kv reply (kv::ReplyType) in the writer's protocol.
void WriteKvReply(const kv::Reply& r, resp::ReplyWriter& w);

// Proposes a write to `shard` in the connection's at-most-once session for that shard, wherever
// the shard is led; `done` gets the outcome. Retries once, transparently, after
// kSessionExpired (nothing was applied).
using WriteDone = std::function<void(const Status&, const kv::Reply&)>;
// `slots`: those of the command's keys (SlotsOf), by which the router sends it on when a split
// moved them; nullopt for a command aimed at the shard itself (FLUSHALL).
void ShardWrite(CommandCall& call, GroupId shard, kv::Command cmd, WriteDone done,
                std::optional<SlotRange> slots = std::nullopt);
// The slots (first..last) of the keys of argv at `positions`; nullopt when there are none.
std::optional<SlotRange> SlotsOf(const std::vector<std::string>& argv,
                                 const std::vector<size_t>& positions);
// The data shards a keyless read covers (DBSIZE, KEYS, SCAN, RANDOMKEY, INFO keyspace): every
// shard, as one Redis server's would; with --cluster-redirects, only those this node leads, as a
// Redis Cluster master's (cluster clients send these to every master and combine the answers).
std::vector<GroupId> KeylessShards(const ServerContext& ctx);
// ShardWrite, with failures answered as Redis errors and `done` turning the applied reply into
// RESP.
void SubmitWrite(CommandCall& call, GroupId shard, kv::Command cmd, ReplySink sink,
                 std::function<void(const kv::Reply&, ReplySink&)> done,
                 std::optional<SlotRange> slots = std::nullopt);
// Runs the Redis read `argv` on `shard` at a linearizable point (or on a local replica after
// READONLY); failures are answered as Redis errors.
void SubmitRead(CommandCall& call, GroupId shard, std::vector<std::string> argv, ReplySink sink,
                std::function<void(const kv::Reply&, ReplySink&)> done,
                std::optional<SlotRange> slots = std::nullopt);
// Inside MULTI: the error a command gets when its keys are not all in the transaction's shard
// (CROSSSLOT), or nullopt (the transaction's shard is then set). A command without keys fits
// only a cluster of one data shard.
std::optional<std::string> TransactionShardError(const ServerContext& ctx, const CommandSpec& spec,
                                                 const std::vector<std::string>& argv,
                                                 Transaction& tx);

// The handlers of every keyspace command: the command table points at them.
void KvRead(CommandCall& call, ReplySink sink);   // a kv::RedisCommand with `read`
void KvWrite(CommandCall& call, ReplySink sink);  // a kv::RedisCommand with `write`
// Redis's texts for a container command's (CLIENT, CONFIG, COMMAND) bad subcommands.
void UnknownSubcommand(ReplySink& sink, std::string_view container, const std::string& sub);
void SubcommandArity(ReplySink& sink, std::string_view container, const std::string& sub);

// commands_cluster.cc: CLUSTER, and the MOVED error (without the leading '-') a command gets
// under --cluster-redirects when another node leads its first key's shard; nullopt to serve it.
void Cluster(CommandCall& call, ReplySink sink);
std::optional<std::string> ClusterRedirect(const ServerContext& ctx, const CommandSpec& spec,
                                           const std::vector<std::string>& argv, bool readonly);

// commands_config.cc, commands_info.cc.
void Config(CommandCall& call, ReplySink sink);
void Info(CommandCall& call, ReplySink sink);
void Wait(CommandCall& call, ReplySink sink);
// Scripts (commands_scripting.cc).
void Eval(CommandCall& call, ReplySink sink);
void EvalRo(CommandCall& call, ReplySink sink);
void EvalShaCmd(CommandCall& call, ReplySink sink);
void EvalShaRo(CommandCall& call, ReplySink sink);
void Script(CommandCall& call, ReplySink sink);
void FCall(CommandCall& call, ReplySink sink);
void FCallRo(CommandCall& call, ReplySink sink);
void Function(CommandCall& call, ReplySink sink);
// Transactions (MULTI/EXEC/DISCARD/WATCH/UNWATCH).
void Multi(CommandCall& call, ReplySink sink);
void Exec(CommandCall& call, ReplySink sink);
void Discard(CommandCall& call, ReplySink sink);
void Watch(CommandCall& call, ReplySink sink);
void Unwatch(CommandCall& call, ReplySink sink);

}  // namespace synod::server
