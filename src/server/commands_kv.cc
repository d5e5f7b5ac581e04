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
      case kv::ReplyType::kArray:
      case kv::ReplyType::kMap:
        if (cur->type == kv::ReplyType::kMap) {
          w.MapHeader(cur->replies.size() / 2);
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

void SubmitWrite(CommandCall& call, kv::Command cmd, ReplySink sink,
                 std::function<void(const kv::Reply&, ReplySink&)> done) {
  struct Attempt {
    cluster::GroupHost* host;
    std::weak_ptr<Connection> conn;
    kv::Command cmd;
    ReplySink sink;
    std::function<void(const kv::Reply&, ReplySink&)> done;
    bool retried = false;
  };
  auto a = std::make_shared<Attempt>(Attempt{call.ctx.host, call.conn.weak_from_this(),
                                             std::move(cmd), std::move(sink), std::move(done)});
  a->cmd.client_id = call.conn.client_session();
  a->cmd.seq = call.conn.NextSeq();
  auto on_reply = std::make_shared<cluster::ReplyFn>();
  *on_reply = [a, weak_self = std::weak_ptr<cluster::ReplyFn>(on_reply)](cluster::ClientReply r) {
    if (!r.status.ok()) {
      a->sink.Error(RedisErrorFor(r.status, /*write=*/true));
    } else if (r.reply.code == kv::ReplyCode::kSessionExpired && !a->retried) {
      // The session's first write never applied (or it was evicted); nothing was applied, so
      // a new session and one more attempt are safe and invisible to the client.
      auto conn = a->conn.lock();
      auto self = weak_self.lock();
      if (!conn || !self) return;  // the client left; the sink drops the reply
      a->retried = true;
      conn->ResetSession();
      a->cmd.client_id = conn->client_session();
      a->cmd.seq = conn->NextSeq();
      a->host->Submit(a->cmd, cluster::ReadMode::kLinearizable, *self);
    } else if (!r.reply.ok()) {
      a->sink.Error(KvError(r.reply));
    } else {
      if (auto conn = a->conn.lock()) conn->last_write_index = r.index;
      a->done(r.reply, a->sink);
    }
  };
  call.ctx.host->Submit(a->cmd, cluster::ReadMode::kLinearizable,
                        [on_reply](cluster::ClientReply r) { (*on_reply)(std::move(r)); });
}

void SubmitRead(CommandCall& call, ReplySink sink, cluster::ReadFn fn,
                std::function<void(const kv::Reply&, ReplySink&)> done) {
  auto shared = std::make_shared<ReplySink>(std::move(sink));
  call.ctx.host->SubmitRead(std::move(fn), ModeOf(call.conn),
                            [shared, done = std::move(done)](cluster::ClientReply r) {
                              if (!r.status.ok()) {
                                shared->Error(RedisErrorFor(r.status, /*write=*/false));
                              } else {
                                done(r.reply, *shared);
                              }
                            });
}

void KvRead(CommandCall& call, ReplySink sink) {
  SubmitRead(
      call, std::move(sink),
      [argv = std::move(call.argv)](const kv::StateMachine& sm) {
        kv::ExecContext ctx = sm.ReadContext(env::WallNowMs());
        ctx.random = RandomU64();
        return kv::ExecuteRedisRead(sm.keyspace(), argv, ctx);
      },
      SendKvReply);
}

void KvWrite(CommandCall& call, ReplySink sink) {
  kv::Command cmd;
  cmd.op = kv::Op::kRedis;
  cmd.args = std::move(call.argv);
  cmd.now_ms = env::WallNowMs();
  SubmitWrite(call, std::move(cmd), std::move(sink), SendKvReply);
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
  SubmitWrite(call, std::move(cmd), std::move(sink), [](const kv::Reply& r, ReplySink& s) {
    if (r.type == kv::ReplyType::kNone) {  // an empty batch that passed its watches
      s.Send("*0\r\n");
    } else {
      SendKvReply(r, s);
    }
  });
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
  auto shared = std::make_shared<ReplySink>(std::move(sink));
  call.ctx.host->SubmitRead(
      [keys](const kv::StateMachine& sm) {
        const int64_t now = sm.ReadContext(env::WallNowMs()).now_ms;
        kv::Reply r;
        r.number = static_cast<int64_t>(sm.applied_index().value());
        for (const std::string& k : keys) {
          kv::Reply v;
          v.number = static_cast<int64_t>(sm.keyspace().VersionOf(k, now).value());
          r.replies.push_back(std::move(v));
        }
        return r;
      },
      ModeOf(call.conn),
      [weak = call.conn.weak_from_this(), keys, shared](cluster::ClientReply r) {
        auto conn = weak.lock();
        if (!conn) return;
        Transaction& t = conn->tx;
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
  sink.Ok();
}

}  // namespace synod::server
