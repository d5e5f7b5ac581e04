// The keyspace commands (executed by kv/redis.h) and transactions.
//
// Reads go through GroupHost::SubmitRead: linearizable by default (batched ReadIndex or lease),
// from the local replica after READONLY, against the reader's clock (never earlier than the
// state machine's logical clock). Writes become kv::Commands (op kRedis, the argv and this
// node's clock) with the connection's at-most-once session and are answered once applied.
//
// MULTI queues keyspace commands on the connection; EXEC proposes them as one batch entry,
// applied atomically on every replica; WATCH reads each key's version at a linearizable point
// and EXEC carries them, so the state machine aborts the batch if any changed.
#include <random>

#include "common/assert.h"
#include "env/asio/steady_clock.h"
#include "kv/redis.h"
#include "kv/state_machine.h"
#include "server/command_impl.h"
#include "server/resp_server.h"

namespace synod::server {

namespace {

cluster::ReadMode ModeOf(const Connection& c) {
  return c.readonly ? cluster::ReadMode::kStale : cluster::ReadMode::kLinearizable;
}

// The Redis error text of a legacy kv error reply.
std::string KvError(const kv::Reply& r) {
  switch (r.code) {
    case kv::ReplyCode::kNotInteger:
      return "ERR value is not an integer or out of range";
    case kv::ReplyCode::kValueTooLarge:
      return "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
    case kv::ReplyCode::kKeyTooLarge:
      return "ERR key exceeds the maximum key size";
    default:
      return "ERR " + std::string(r.message());
  }
}

uint64_t RandomU64() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

void SendKvReply(const kv::Reply& r, ReplySink& s) {
  std::string out;
  resp::ReplyWriter w(&out, s.protocol());
  WriteKvReply(r, w);
  s.Send(std::move(out));
}

}  // namespace

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Iterative over an explicit stack: kv replies nest (EXEC of LCS IDX), bounded by kv's depth
// limit, and the writer must not recurse on data it did not build.
void WriteKvReply(const kv::Reply& r, resp::ReplyWriter& w) {
  std::vector<const kv::Reply*> stack{&r};
  while (!stack.empty()) {
    const kv::Reply* cur = stack.back();
    stack.pop_back();
    const std::string_view value = cur->value ? std::string_view(*cur->value) : "";
    switch (cur->type) {
      case kv::ReplyType::kNone:
      case kv::ReplyType::kStatus:
        w.SimpleString(cur->type == kv::ReplyType::kNone ? "OK" : value);
        break;
      case kv::ReplyType::kError:
        w.Error(value);
        break;
      case kv::ReplyType::kInteger:
        w.Integer(cur->number);
        break;
      case kv::ReplyType::kBulk:
        w.Bulk(value);
        break;
      case kv::ReplyType::kNull:
        w.Null();
        break;
      case kv::ReplyType::kNullArray:
        w.NullArray();
        break;
      case kv::ReplyType::kDouble:
        w.DoubleText(value);
        break;
      case kv::ReplyType::kBool:
        w.Boolean(cur->number != 0);
        break;
      case kv::ReplyType::kBigNumber:
        w.BigNumber(value);
        break;
      case kv::ReplyType::kVerbatim:
        if (value.size() >= 4 && value[3] == ':') {
          w.Verbatim(value.substr(4), value.substr(0, 3));
        } else {
          w.Verbatim(value);
        }
        break;
      case kv::ReplyType::kArray:
      case kv::ReplyType::kMap:
      case kv::ReplyType::kSet:
        if (cur->type == kv::ReplyType::kMap) {
          w.MapHeader(cur->replies.size() / 2);
        } else if (cur->type == kv::ReplyType::kSet) {
          w.SetHeader(cur->replies.size());
        } else {
          w.ArrayHeader(cur->replies.size());
        }
        for (auto it = cur->replies.rbegin(); it != cur->replies.rend(); ++it) {
          stack.push_back(&*it);
        }
        break;
    }
  }
}

namespace {

// The error a command gets when its keys are in more than one shard and it must be atomic.
constexpr char kCrossSlot[] = "CROSSSLOT Keys in request don't hash to the same slot";

cluster::ShardRequest ReadRequest(const Connection& c, GroupId group, std::vector<std::string> argv,
                                  std::optional<SlotRange> slots = std::nullopt) {
  cluster::ShardRequest req;
  req.type = cluster::ShardRequest::Type::kRead;
  req.group = group;
  req.slots = slots;
  req.args = std::move(argv);
  req.mode = ModeOf(c);
  req.now_ms = env::WallNowMs();
  req.random = RandomU64();
  return req;
}

// Runs the Redis read `argv` on `group`; `done` gets the outcome (OK and the reply, or the
// Redis error text).
void ShardRead(CommandCall& call, GroupId group, std::vector<std::string> argv,
               std::function<void(const Status&, const kv::Reply&)> done,
               std::optional<SlotRange> slots = std::nullopt) {
  call.ctx.router->Call(
      ReadRequest(call.conn, group, std::move(argv), slots),
      [done = std::move(done)](cluster::ShardResponse r) { done(r.status, r.reply); });
}

// The shards a command's keys belong to, each with the positions of its keys, in slot order
// of the shards' first keys' appearance.
std::map<GroupId, std::vector<size_t>> KeysByShard(const ServerContext& ctx,
                                                   const std::vector<std::string>& argv,
                                                   const std::vector<size_t>& positions) {
  std::map<GroupId, std::vector<size_t>> out;
  for (size_t p : positions) out[ctx.router->ShardOfSlot(KeySlot(argv[p]))].push_back(p);
  return out;
}

// Collects the answers of one request per shard, then calls `done` once with all of them (in
// the order the requests were made).
struct Gather {
  std::vector<std::pair<Status, kv::Reply>> results;
  size_t left = 0;
  std::function<void(std::vector<std::pair<Status, kv::Reply>>&)> done;
  std::function<void(const Status&, const kv::Reply&)> Slot(const std::shared_ptr<Gather>& self,
                                                            size_t i) {
    return [self, i](const Status& s, const kv::Reply& r) {
      self->results[i] = {s, r};
      if (--self->left == 0) self->done(self->results);
    };
  }
};

std::shared_ptr<Gather> MakeGather(
    size_t n, std::function<void(std::vector<std::pair<Status, kv::Reply>>&)> done) {
  auto g = std::make_shared<Gather>();
  g->results.resize(n);
  g->left = n;
  g->done = std::move(done);
  return g;
}

// The first failure among gathered results as the client's error text, or nullopt.
std::optional<std::string> FirstError(const std::vector<std::pair<Status, kv::Reply>>& results,
                                      bool write) {
  for (const auto& [s, r] : results) {
    if (!s.ok()) return RedisErrorFor(s, write);
    if (!r.ok()) return KvError(r);
    if (r.is_error()) return std::string(r.value ? *r.value : "ERR");
  }
  return std::nullopt;
}

bool NameIs(const std::vector<std::string>& argv, std::string_view name) {
  return Lower(argv[0]) == name;
}

}  // namespace

std::optional<SlotRange> SlotsOf(const std::vector<std::string>& argv,
                                 const std::vector<size_t>& positions) {
  std::optional<SlotRange> out;
  for (size_t p : positions) {
    const uint16_t s = KeySlot(argv[p]);
    out = out ? SlotRange{std::min(out->first, s), std::max(out->last, s)} : SlotRange{s, s};
  }
  return out;
}

void ShardWrite(CommandCall& call, GroupId group, kv::Command cmd, WriteDone done,
                std::optional<SlotRange> slots) {
  struct Attempt {
    cluster::Router* router;
    GroupId group;
    std::weak_ptr<Connection> conn;
    kv::Command cmd;
    WriteDone done;
    std::optional<SlotRange> slots;
    bool retried = false;
    cluster::ShardRequest Request() const {
      cluster::ShardRequest req;
      req.type = cluster::ShardRequest::Type::kWrite;
      req.group = group;
      req.slots = slots;
      req.command = cmd;
      return req;
    }
  };
  auto a = std::make_shared<Attempt>(Attempt{call.ctx.router, group, call.conn.weak_from_this(),
                                             std::move(cmd), std::move(done), slots});
  a->cmd.client_id = call.conn.SessionFor(group);
  a->cmd.seq = call.conn.NextSeq(group);
  auto on_reply = std::make_shared<cluster::ResponseFn>();
  *on_reply = [a,
               weak_self = std::weak_ptr<cluster::ResponseFn>(on_reply)](cluster::ShardResponse r) {
    if (r.status.ok() && r.reply.code == kv::ReplyCode::kStaleRequest && r.never_applied_before &&
        !a->retried) {
      // Refused as older than a later write of the same session, yet no attempt of it was ever
      // applied (the router knows every earlier one was refused whole): pipelined writes that a
      // split sent on to the new shard out of order. A new seq, one more attempt.
      auto conn = a->conn.lock();
      auto self = weak_self.lock();
      if (!conn || !self) return;
      a->retried = true;
      a->cmd.seq = conn->NextSeq(a->group);
      a->router->Call(a->Request(), *self);
      return;
    }
    if (r.status.ok() && r.reply.code == kv::ReplyCode::kSessionExpired && !a->retried) {
      // The session's first write never applied (or it was evicted); nothing was applied, so
      // a new session and one more attempt are safe and invisible to the client.
      auto conn = a->conn.lock();
      auto self = weak_self.lock();
      if (!conn || !self) return;  // the client left; its sink drops the reply
      a->retried = true;
      conn->ResetSession(a->group);
      a->cmd.client_id = conn->SessionFor(a->group);
      a->cmd.seq = conn->NextSeq(a->group);
      a->router->Call(a->Request(), *self);
      return;
    }
    if (r.status.ok() && r.reply.ok()) {
      if (auto conn = a->conn.lock()) {
        conn->last_write_group = a->group;
        conn->last_write_index = r.index;
      }
    }
    a->done(r.status, r.reply);
  };
  call.ctx.router->Call(a->Request(),
                        [on_reply](cluster::ShardResponse r) { (*on_reply)(std::move(r)); });
}

void SubmitWrite(CommandCall& call, GroupId group, kv::Command cmd, ReplySink sink,
                 std::function<void(const kv::Reply&, ReplySink&)> done,
                 std::optional<SlotRange> slots) {
  auto shared = std::make_shared<ReplySink>(std::move(sink));
  ShardWrite(
      call, group, std::move(cmd),
      [shared, done = std::move(done)](const Status& s, const kv::Reply& r) {
        if (!s.ok()) return shared->Error(RedisErrorFor(s, /*write=*/true));
        if (!r.ok()) return shared->Error(KvError(r));
        done(r, *shared);
      },
      slots);
}

void SubmitRead(CommandCall& call, GroupId group, std::vector<std::string> argv, ReplySink sink,
                std::function<void(const kv::Reply&, ReplySink&)> done,
                std::optional<SlotRange> slots) {
  auto shared = std::make_shared<ReplySink>(std::move(sink));
  ShardRead(
      call, group, std::move(argv),
      [shared, done = std::move(done)](const Status& s, const kv::Reply& r) {
        if (!s.ok()) {
          shared->Error(RedisErrorFor(s, /*write=*/false));
        } else {
          done(r, *shared);
        }
      },
      slots);
}

std::optional<std::string> TransactionShardError(const ServerContext& ctx, const CommandSpec& spec,
                                                 const std::vector<std::string>& argv,
                                                 Transaction& tx) {
  const std::vector<size_t> positions = KeyPositions(spec, argv.size());
  if (positions.empty()) {
    if (ctx.router->DataShards().size() == 1) return std::nullopt;
    return std::string("CROSSSLOT '") + spec.name +
           "' takes no key, so it cannot be part of a transaction, which runs in one shard";
  }
  const auto shards = KeysByShard(ctx, argv, positions);
  const GroupId g = shards.begin()->first;
  if (shards.size() > 1 || (tx.group != kNoGroup && tx.group != g)) return std::string(kCrossSlot);
  tx.group = g;
  for (size_t p : positions) tx.AddSlot(KeySlot(argv[p]));
  return std::nullopt;
}

std::vector<GroupId> KeylessShards(const ServerContext& ctx) {
  return ctx.cluster_redirects ? ctx.router->ShardsLedHere() : ctx.router->DataShards();
}

namespace {

// ---- keyless commands: every shard ----

void ScatterRead(CommandCall& call, ReplySink sink) {
  const std::vector<GroupId> shards = KeylessShards(call.ctx);
  if (shards.empty()) {  // a Redis Cluster node that masters nothing (see KeylessShards)
    if (NameIs(call.argv, "dbsize")) return sink.Integer(0);
    return SendKvReply(kv::Reply::Array({}), sink);
  }
  const bool dbsize = NameIs(call.argv, "dbsize");
  auto shared = std::make_shared<ReplySink>(std::move(sink));
  auto g = MakeGather(shards.size(), [shared, dbsize](auto& results) {
    if (auto e = FirstError(results, false)) return shared->Error(*e);
    if (dbsize) {
      int64_t n = 0;
      for (const auto& [s, r] : results) n += r.number;
      return shared->Integer(n);
    }
    std::vector<kv::Reply> keys;  // KEYS: every shard's, in slot order
    for (auto& [s, r] : results) {
      for (kv::Reply& k : r.replies) keys.push_back(std::move(k));
    }
    SendKvReply(kv::Reply::Array(std::move(keys)), *shared);
  });
  for (size_t i = 0; i < shards.size(); ++i) {
    ShardRead(call, shards[i], call.argv, g->Slot(g, i));
  }
}

bool ParseCursor(std::string_view s, uint64_t* v) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t out = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (out > (UINT64_MAX - d) / 10) return false;
    out = out * 10 + d;
  }
  *v = out;
  return true;
}

// SCAN: the cursor is a keyspace position, whose top 14 bits are a slot (kv/keyspace.h), so it
// names its shard by itself. A shard's scan ends with cursor 0; the next shard starts at its
// first slot's position, and the last shard's end is the scan's end. With --cluster-redirects
// only the shards this node leads are scanned (KeylessShards): a cursor in another shard moves
// on to the next one led here.
void Scan(CommandCall& call, ReplySink sink) {
  uint64_t cursor = 0;
  if (!ParseCursor(call.argv[1], &cursor)) return sink.Error("ERR invalid cursor");
  const cluster::Router& router = *call.ctx.router;
  const std::vector<GroupId> shards = KeylessShards(call.ctx);
  auto first_slot_of = [&router](GroupId g, uint32_t from) {
    uint32_t s = from;
    while (s < kSlotCount && router.ShardOfSlot(static_cast<uint16_t>(s)) != g) ++s;
    return s;
  };
  uint16_t slot = static_cast<uint16_t>(cursor >> 50);
  GroupId group = router.ShardOfSlot(slot);
  size_t at = std::find(shards.begin(), shards.end(), group) - shards.begin();
  if (at == shards.size()) {
    // Not a shard scanned here: start at the next one that is.
    for (at = 0; at < shards.size(); ++at) {
      const uint32_t s = first_slot_of(shards[at], 0);
      if (s > slot) break;
    }
    if (at == shards.size()) {
      return SendKvReply(kv::Reply::Array({kv::Reply::Bulk("0"), kv::Reply::Array({})}), sink);
    }
    group = shards[at];
    slot = static_cast<uint16_t>(first_slot_of(group, slot));
    call.argv[1] = std::to_string(uint64_t{slot} << 50);
  }
  uint64_t next_start = 0;
  if (at + 1 < shards.size()) next_start = uint64_t{first_slot_of(shards[at + 1], slot)} << 50;
  SubmitRead(call, group, call.argv, std::move(sink),
             [next_start](const kv::Reply& r, ReplySink& s) {
               if (r.type != kv::ReplyType::kArray || r.replies.size() != 2) {
                 return SendKvReply(r, s);  // an error reply
               }
               kv::Reply out = r;
               if (out.replies[0].value == "0") out.replies[0].value = std::to_string(next_start);
               SendKvReply(out, s);
             });
}

// RANDOMKEY: the shards in a random rotation until one has a key.
void RandomKey(CommandCall& call, ReplySink sink) {
  struct State {
    std::vector<GroupId> shards;
    size_t next = 0;
    ReplySink sink;
  };
  auto st = std::make_shared<State>(State{KeylessShards(call.ctx), 0, std::move(sink)});
  if (st->shards.empty()) return st->sink.Null();
  std::rotate(st->shards.begin(),
              st->shards.begin() + static_cast<std::ptrdiff_t>(RandomU64() % st->shards.size()),
              st->shards.end());
  auto step = std::make_shared<std::function<void()>>();
  ServerContext* ctx = &call.ctx;
  std::weak_ptr<Connection> weak = call.conn.weak_from_this();
  *step = [st, ctx, weak, step_weak = std::weak_ptr<std::function<void()>>(step)] {
    auto conn = weak.lock();
    auto step = step_weak.lock();
    if (!conn || !step) return;
    const GroupId g = st->shards[st->next++];
    ctx->router->Call(ReadRequest(*conn, g, {"randomkey"}), [st, step](cluster::ShardResponse r) {
      if (!r.status.ok()) return st->sink.Error(RedisErrorFor(r.status, false));
      if (r.reply.type != kv::ReplyType::kNull || st->next == st->shards.size()) {
        return SendKvReply(r.reply, st->sink);
      }
      (*step)();
    });
  };
  // The closure owns itself through the pending call's callback only; keep it alive here.
  auto keep = step;
  (*keep)();
}

// FLUSHALL / FLUSHDB: every shard (not atomic across shards).
void ScatterWrite(CommandCall& call, ReplySink sink) {
  const std::vector<GroupId> shards = call.ctx.router->DataShards();
  auto shared = std::make_shared<ReplySink>(std::move(sink));
  auto g = MakeGather(shards.size(), [shared](auto& results) {
    if (auto e = FirstError(results, true)) return shared->Error(*e);
    shared->Ok();
  });
  for (size_t i = 0; i < shards.size(); ++i) {
    kv::Command cmd;
    cmd.op = kv::Op::kRedis;
    cmd.args = call.argv;
    cmd.now_ms = env::WallNowMs();
    ShardWrite(call, shards[i], std::move(cmd), g->Slot(g, i));
  }
}

// ---- multi-key commands across shards: MGET, EXISTS, TOUCH, DEL, UNLINK ----

// Splits the keys by shard, runs the command on each shard with its keys, and combines: MGET's
// values back in the order asked, the others' counts summed. Not atomic across shards.
void FanOut(CommandCall& call, ReplySink sink,
            const std::map<GroupId, std::vector<size_t>>& by_shard, bool write) {
  const bool mget = NameIs(call.argv, "mget");
  std::vector<std::vector<size_t>> positions;
  auto shared = std::make_shared<ReplySink>(std::move(sink));
  for (const auto& [g, p] : by_shard) positions.push_back(p);
  const size_t argc = call.argv.size();
  auto g = MakeGather(by_shard.size(), [shared, mget, positions, argc](auto& results) {
    if (auto e = FirstError(results, false)) return shared->Error(*e);
    if (!mget) {
      int64_t n = 0;
      for (const auto& [s, r] : results) n += r.number;
      return shared->Integer(n);
    }
    std::vector<kv::Reply> values(argc - 1);
    for (size_t i = 0; i < results.size(); ++i) {
      auto& replies = results[i].second.replies;
      for (size_t k = 0; k < positions[i].size() && k < replies.size(); ++k) {
        values[positions[i][k] - 1] = std::move(replies[k]);
      }
    }
    SendKvReply(kv::Reply::Array(std::move(values)), *shared);
  });
  size_t i = 0;
  for (const auto& [group, p] : by_shard) {
    std::vector<std::string> argv{call.argv[0]};
    for (size_t pos : p) argv.push_back(call.argv[pos]);
    auto slot = g->Slot(g, i++);
    const std::optional<SlotRange> slots = SlotsOf(call.argv, p);
    if (!write) {
      ShardRead(call, group, std::move(argv), slot, slots);
      continue;
    }
    kv::Command cmd;
    cmd.op = kv::Op::kRedis;
    cmd.args = std::move(argv);
    cmd.now_ms = env::WallNowMs();
    ShardWrite(call, group, std::move(cmd), slot, slots);
  }
}

bool FansOut(const std::vector<std::string>& argv) {
  const std::string name = Lower(argv[0]);
  return name == "mget" || name == "exists" || name == "touch" || name == "del" || name == "unlink";
}

}  // namespace

void KvRead(CommandCall& call, ReplySink sink) {
  const CommandSpec* spec = FindCommand(call.argv[0]);
  const std::vector<size_t> positions = KeyPositions(*spec, call.argv.size());
  if (positions.empty()) {
    if (NameIs(call.argv, "scan")) return Scan(call, std::move(sink));
    if (NameIs(call.argv, "randomkey")) return RandomKey(call, std::move(sink));
    return ScatterRead(call, std::move(sink));  // DBSIZE, KEYS
  }
  const auto by_shard = KeysByShard(call.ctx, call.argv, positions);
  if (by_shard.size() == 1) {
    const std::optional<SlotRange> slots = SlotsOf(call.argv, positions);
    return SubmitRead(call, by_shard.begin()->first, std::move(call.argv), std::move(sink),
                      SendKvReply, slots);
  }
  if (FansOut(call.argv)) return FanOut(call, std::move(sink), by_shard, /*write=*/false);
  sink.Error(kCrossSlot);
}

void KvWrite(CommandCall& call, ReplySink sink) {
  const CommandSpec* spec = FindCommand(call.argv[0]);
  const std::vector<size_t> positions = KeyPositions(*spec, call.argv.size());
  if (positions.empty()) return ScatterWrite(call, std::move(sink));  // FLUSHALL, FLUSHDB
  const auto by_shard = KeysByShard(call.ctx, call.argv, positions);
  if (by_shard.size() > 1) {
    if (FansOut(call.argv)) return FanOut(call, std::move(sink), by_shard, /*write=*/true);
    return sink.Error(kCrossSlot);
  }
  const std::optional<SlotRange> slots = SlotsOf(call.argv, positions);
  kv::Command cmd;
  cmd.op = kv::Op::kRedis;
  cmd.args = std::move(call.argv);
  cmd.now_ms = env::WallNowMs();
  SubmitWrite(call, by_shard.begin()->first, std::move(cmd), std::move(sink), SendKvReply, slots);
}

// ---- transactions ----

void Multi(CommandCall& call, ReplySink sink) {
  Transaction& tx = call.conn.tx;
  if (tx.active) {
    sink.Error("ERR MULTI calls can not be nested");
    return;
  }
  tx.active = true;
  tx.dirty = false;
  tx.queued.clear();
  sink.Ok();
}

void Discard(CommandCall& call, ReplySink sink) {
  Transaction& tx = call.conn.tx;
  if (!tx.active) {
    sink.Error("ERR DISCARD without MULTI");
    return;
  }
  tx.Reset();
  sink.Ok();
}

namespace {

void ExecNow(CommandCall& call, ReplySink sink) {
  Transaction& tx = call.conn.tx;
  const bool dirty = tx.dirty;
  const bool watch_failed = tx.watch_failed;
  const GroupId tx_group = tx.group;
  const std::optional<SlotRange> tx_slots = tx.slots;
  kv::Command cmd;
  cmd.op = kv::Op::kBatch;
  cmd.now_ms = env::WallNowMs();
  cmd.watches = std::move(tx.watches);
  cmd.watch_index = tx.watch_index;
  cmd.batch.reserve(tx.queued.size());
  for (std::vector<std::string>& argv : tx.queued) {
    kv::Command sub;
    sub.op = kv::Op::kRedis;
    sub.args = std::move(argv);
    cmd.batch.push_back(std::move(sub));
  }
  tx.Reset();
  if (dirty) {
    sink.Error("EXECABORT Transaction discarded because of previous errors.");
    return;
  }
  if (watch_failed) {  // a WATCH could not be read: its key cannot be vouched for
    sink.Send(call.conn.protocol == 3 ? "_\r\n" : "*-1\r\n");
    return;
  }
  if (cmd.batch.empty() && cmd.watches.empty()) {
    sink.Send("*0\r\n");
    return;
  }
  // Every key of the transaction is in this shard (TransactionShardError, Watch); one with no
  // key at all runs in the only shard there is.
  const GroupId group = tx_group != kNoGroup ? tx_group : call.ctx.router->DataShards().front();
  SubmitWrite(
      call, group, std::move(cmd), std::move(sink),
      [](const kv::Reply& r, ReplySink& s) {
        if (r.type == kv::ReplyType::kNone) {  // an empty batch that passed its watches
          s.Send("*0\r\n");
        } else {
          SendKvReply(r, s);
        }
      },
      tx_slots);
}

}  // namespace

void Exec(CommandCall& call, ReplySink sink) {
  Transaction& tx = call.conn.tx;
  if (!tx.active) {
    sink.Error("ERR EXEC without MULTI");
    return;
  }
  // A pipelined WATCH has finished reading its versions by now: the connection runs a write
  // (EXEC) only after its earlier reads (WATCH) were answered (Connection::Dispatch).
  ExecNow(call, std::move(sink));
}

void Watch(CommandCall& call, ReplySink sink) {
  Transaction& tx = call.conn.tx;
  if (tx.active) {
    sink.Error("ERR WATCH inside MULTI is not allowed");
    return;
  }
  std::vector<std::string> keys(call.argv.begin() + 1, call.argv.end());
  // The watched keys must be in one shard, the transaction's: EXEC checks them there.
  std::vector<size_t> positions;
  for (size_t p = 1; p < call.argv.size(); ++p) positions.push_back(p);
  const auto by_shard = KeysByShard(call.ctx, call.argv, positions);
  const GroupId group = by_shard.begin()->first;
  if (by_shard.size() > 1 || (tx.group != kNoGroup && tx.group != group)) {
    sink.Error(kCrossSlot);
    return;
  }
  tx.group = group;
  for (size_t p : positions) tx.AddSlot(KeySlot(call.argv[p]));
  cluster::ShardRequest req;
  req.type = cluster::ShardRequest::Type::kVersions;
  req.group = group;
  req.slots = SlotsOf(call.argv, positions);
  req.args = keys;
  req.mode = ModeOf(call.conn);
  req.now_ms = env::WallNowMs();
  auto shared = std::make_shared<ReplySink>(std::move(sink));
  call.ctx.router->Call(
      std::move(req), [weak = call.conn.weak_from_this(), keys, shared](cluster::ShardResponse r) {
        auto conn = weak.lock();
        if (!conn) return;
        Transaction& t = conn->tx;
        if (r.status.ok() && r.reply.replies.size() != keys.size()) {
          r.status = Status::InvalidArgument("the versions read do not match the keys");
        }
        if (!r.status.ok()) {
          t.watch_failed = true;  // EXEC aborts: these keys cannot be vouched for
          shared->Error(RedisErrorFor(r.status, /*write=*/false));
        } else {
          const LogIndex at(static_cast<uint64_t>(r.reply.number));
          if (t.watches.empty() || at < t.watch_index) t.watch_index = at;
          for (size_t i = 0; i < keys.size(); ++i) {
            const LogIndex version(static_cast<uint64_t>(r.reply.replies[i].number));
            t.watches.emplace_back(keys[i], version);
          }
          shared->Ok();
        }
      });
}

void Unwatch(CommandCall& call, ReplySink sink) {
  Transaction& tx = call.conn.tx;
  tx.watches.clear();
  tx.watch_failed = false;
  tx.watch_index = LogIndex();
  if (!tx.active) {  // inside MULTI the queued commands keep their shard
    tx.group = GroupId();
    tx.slots.reset();
  }
  sink.Ok();
}

}  // namespace synod::server
