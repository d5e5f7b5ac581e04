// The command handlers and the command table (see command_table.h).
//
// Reads go through GroupHost::SubmitRead: linearizable by default (batched ReadIndex or lease),
// from the local replica after READONLY. Writes become kv::Commands with the connection's
// at-most-once session and are answered once their Raft entry applied.
#include <unistd.h>
#include <algorithm>
#include <chrono>

#include "common/assert.h"
#include "server/command_table.h"
#include "server/resp_server.h"

namespace synod::server {

namespace {

using resp::ReplyWriter;

cluster::ReadMode ModeOf(const Connection& c) {
  return c.readonly ? cluster::ReadMode::kStale : cluster::ReadMode::kLinearizable;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The Redis error text of a kv error reply.
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

// Proposes a write in the connection's session; `done` turns the applied reply into RESP.
//
// A session exists in the state machine only once its first write (seq 1) applied. If that
// write never made it (dropped with a dead leader), the session's later writes come back
// kSessionExpired, having applied nothing; the same happens after the session was evicted. The
// connection then starts a new session and proposes the command again (once): safe, because
// nothing was applied, and invisible to the client.
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
      a->done(r.reply, a->sink);
    }
  };
  call.ctx.host->Submit(a->cmd, cluster::ReadMode::kLinearizable,
                        [on_reply](cluster::ClientReply r) { (*on_reply)(std::move(r)); });
}

// Runs `fn` on the state machine at a linearizable point (or locally after READONLY).
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

// ---- connection and server commands ----

void Ping(CommandCall& call, ReplySink sink) {
  if (call.argv.size() > 2) {
    sink.Error("ERR wrong number of arguments for 'ping' command");
  } else if (call.argv.size() == 2) {
    sink.Bulk(call.argv[1]);
  } else {
    sink.Send("+PONG\r\n");
  }
}

void Echo(CommandCall& call, ReplySink sink) { sink.Bulk(call.argv[1]); }

void Quit(CommandCall& call, ReplySink sink) {
  sink.Ok();
  call.conn.CloseAfterFlush();
}

void Select(CommandCall& call, ReplySink sink) {
  if (call.argv[1] == "0") {
    sink.Ok();
  } else {
    sink.Error("ERR DB index is out of range (Synod has one database, 0)");
  }
}

void ReadOnly(CommandCall& call, ReplySink sink) {
  call.conn.readonly = true;
  sink.Ok();
}

void ReadWrite(CommandCall& call, ReplySink sink) {
  call.conn.readonly = false;
  sink.Ok();
}

void Time(CommandCall&, ReplySink sink) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(now).count();
  std::string out;
  ReplyWriter w(&out, sink.protocol());
  w.ArrayHeader(2);
  w.Bulk(std::to_string(us / 1'000'000));
  w.Bulk(std::to_string(us % 1'000'000));
  sink.Send(std::move(out));
}

void Hello(CommandCall& call, ReplySink sink) {
  int proto = call.conn.protocol;
  size_t i = 1;
  if (call.argv.size() > 1) {
    const std::string& v = call.argv[1];
    if (v != "2" && v != "3") {
      sink.Error("NOPROTO unsupported protocol version");
      return;
    }
    proto = v[0] - '0';
    i = 2;
  }
  for (; i < call.argv.size(); ++i) {
    const std::string opt = Lower(call.argv[i]);
    if (opt == "auth" && i + 2 < call.argv.size()) {
      i += 2;  // no password is configured: every client is authenticated (as Redis's nopass)
    } else if (opt == "setname" && i + 1 < call.argv.size()) {
      call.conn.name = call.argv[++i];
    } else {
      sink.Error("ERR Syntax error in HELLO option '" + call.argv[i] + "'");
      return;
    }
  }
  call.conn.protocol = proto;
  std::string out;
  ReplyWriter w(&out, proto);
  w.MapHeader(7);
  w.Bulk("server");
  w.Bulk("redis");
  w.Bulk("version");
  w.Bulk("7.0.0");
  w.Bulk("proto");
  w.Integer(proto);
  w.Bulk("id");
  w.Integer(static_cast<int64_t>(call.conn.id()));
  w.Bulk("mode");
  w.Bulk("standalone");
  w.Bulk("role");
  w.Bulk(call.ctx.host->is_leader() ? "master" : "replica");
  w.Bulk("modules");
  w.ArrayHeader(0);
  sink.Send(std::move(out));
}

void Client(CommandCall& call, ReplySink sink) {
  const std::string sub = Lower(call.argv[1]);
  if (sub == "id" && call.argv.size() == 2) {
    sink.Integer(static_cast<int64_t>(call.conn.id()));
  } else if (sub == "setname" && call.argv.size() == 3) {
    if (call.argv[2].find_first_of(" \n\r") != std::string::npos) {
      sink.Error("ERR Client names cannot contain spaces, newlines or special characters.");
      return;
    }
    call.conn.name = call.argv[2];
    sink.Ok();
  } else if (sub == "getname" && call.argv.size() == 2) {
    if (call.conn.name.empty()) {
      sink.Null();
    } else {
      sink.Bulk(call.conn.name);
    }
  } else if (sub == "setinfo" && call.argv.size() == 4) {
    sink.Ok();  // library name/version: accepted and not kept yet
  } else if (sub == "list" || sub == "info") {
    std::string text;
    for (const std::string& line : call.ctx.server->ClientList()) {
      if (sub == "info" && line.rfind("id=" + std::to_string(call.conn.id()) + " ", 0) != 0) {
        continue;
      }
      text += line + "\n";
    }
    sink.Bulk(text);
  } else {
    sink.Error("ERR unknown subcommand or wrong number of arguments for 'client|" + sub +
               "' command");
  }
}

// CONFIG GET answers the parameters clients commonly probe (redis-benchmark asks for "save"
// and "appendonly"); CONFIG SET is not supported yet.
void Config(CommandCall& call, ReplySink sink) {
  const std::string sub = Lower(call.argv[1]);
  if (sub == "get" && call.argv.size() >= 3) {
    const std::vector<std::pair<std::string, std::string>> params = {
        {"save", ""},
        {"appendonly", "yes"},
        {"appendfsync", "always"},
        {"databases", "1"},
        {"maxclients", "10000"},
        {"proto-max-bulk-len", "536870912"},
        {"cluster-enabled", "no"},
        {"dir", call.ctx.data_dir},
    };
    std::vector<std::pair<std::string, std::string>> hits;
    for (size_t i = 2; i < call.argv.size(); ++i) {
      const std::string pattern = Lower(call.argv[i]);
      for (const auto& p : params) {
        const bool match = pattern == "*" || pattern == p.first;
        if (match && std::find(hits.begin(), hits.end(), p) == hits.end()) hits.push_back(p);
      }
    }
    std::string out;
    ReplyWriter w(&out, sink.protocol());
    w.MapHeader(hits.size());
    for (const auto& [k, v] : hits) {
      w.Bulk(k);
      w.Bulk(v);
    }
    sink.Send(std::move(out));
  } else if (sub == "resetstat" && call.argv.size() == 2) {
    sink.Ok();
  } else if (sub == "set") {
    sink.Error("ERR CONFIG SET is not supported by Synod yet; use the node's flags or config file");
  } else {
    sink.Error("ERR unknown subcommand or wrong number of arguments for 'config|" + sub +
               "' command");
  }
}

void WriteCommandInfo(const CommandSpec& c, ReplyWriter& w) {
  w.ArrayHeader(10);
  w.Bulk(c.name);
  w.Integer(c.arity);
  std::vector<std::string_view> flags = FlagNames(c.flags);
  w.SetHeader(flags.size());
  for (std::string_view f : flags) w.SimpleString(f);
  w.Integer(c.first_key);
  w.Integer(c.last_key);
  w.Integer(c.key_step);
  w.ArrayHeader(0);  // ACL categories
  w.ArrayHeader(0);  // tips
  w.ArrayHeader(0);  // key specs
  w.ArrayHeader(0);  // subcommands
}

void Command(CommandCall& call, ReplySink sink) {
  const auto& table = CommandTable();
  std::string out;
  ReplyWriter w(&out, sink.protocol());
  const std::string sub = call.argv.size() > 1 ? Lower(call.argv[1]) : "";
  if (call.argv.size() == 1) {
    w.ArrayHeader(table.size());
    for (const CommandSpec& c : table) WriteCommandInfo(c, w);
  } else if (sub == "count" && call.argv.size() == 2) {
    w.Integer(static_cast<int64_t>(table.size()));
  } else if (sub == "info") {
    w.ArrayHeader(call.argv.size() - 2);
    for (size_t i = 2; i < call.argv.size(); ++i) {
      const CommandSpec* c = FindCommand(call.argv[i]);
      if (c == nullptr) {
        w.NullArray();
      } else {
        WriteCommandInfo(*c, w);
      }
    }
  } else if (sub == "docs") {
    // Names and summaries; redis-cli uses them for hints.
    std::vector<const CommandSpec*> docs;
    for (size_t i = 2; i < call.argv.size(); ++i) {
      if (const CommandSpec* c = FindCommand(call.argv[i])) docs.push_back(c);
    }
    if (call.argv.size() == 2) {
      for (const CommandSpec& c : table) docs.push_back(&c);
    }
    w.MapHeader(docs.size());
    for (const CommandSpec* c : docs) {
      w.Bulk(c->name);
      w.MapHeader(1);
      w.Bulk("summary");
      w.Bulk(c->summary);
    }
  } else {
    sink.Error("ERR unknown subcommand or wrong number of arguments for 'command|" + sub +
               "' command");
    return;
  }
  sink.Send(std::move(out));
}

// ---- keyspace commands ----

void Get(CommandCall& call, ReplySink sink) {
  kv::Command cmd;
  cmd.op = kv::Op::kGet;
  cmd.key = call.argv[1];
  auto shared = std::make_shared<ReplySink>(std::move(sink));
  call.ctx.host->Submit(cmd, ModeOf(call.conn), [shared](cluster::ClientReply r) {
    if (!r.status.ok()) {
      shared->Error(RedisErrorFor(r.status, false));
    } else if (r.reply.value) {
      shared->Bulk(*r.reply.value);
    } else {
      shared->Null();
    }
  });
}

void Set(CommandCall& call, ReplySink sink) {
  if (call.argv.size() != 3) {
    // The options (EX, PX, NX, XX, KEEPTTL, GET) come with the full command set.
    sink.Error("ERR syntax error");
    return;
  }
  kv::Command cmd;
  cmd.op = kv::Op::kPut;
  cmd.key = std::move(call.argv[1]);
  cmd.value = std::move(call.argv[2]);
  SubmitWrite(call, std::move(cmd), std::move(sink),
              [](const kv::Reply&, ReplySink& s) { s.Ok(); });
}

void Del(CommandCall& call, ReplySink sink) {
  kv::Command cmd;
  cmd.op = kv::Op::kBatch;
  for (size_t i = 1; i < call.argv.size(); ++i) {
    kv::Command d;
    d.op = kv::Op::kDel;
    d.key = std::move(call.argv[i]);
    cmd.batch.push_back(std::move(d));
  }
  SubmitWrite(call, std::move(cmd), std::move(sink), [](const kv::Reply& r, ReplySink& s) {
    int64_t n = 0;
    for (const kv::Reply& sub : r.replies) n += sub.success ? 1 : 0;
    s.Integer(n);
  });
}

void Incr(CommandCall& call, ReplySink sink) {
  kv::Command cmd;
  cmd.op = kv::Op::kIncr;
  cmd.key = std::move(call.argv[1]);
  cmd.delta = 1;
  SubmitWrite(call, std::move(cmd), std::move(sink),
              [](const kv::Reply& r, ReplySink& s) { s.Integer(r.number); });
}

void MSet(CommandCall& call, ReplySink sink) {
  if (call.argv.size() % 2 != 1) {
    sink.Error("ERR wrong number of arguments for 'mset' command");
    return;
  }
  kv::Command cmd;
  cmd.op = kv::Op::kBatch;
  for (size_t i = 1; i + 1 < call.argv.size(); i += 2) {
    kv::Command p;
    p.op = kv::Op::kPut;
    p.key = std::move(call.argv[i]);
    p.value = std::move(call.argv[i + 1]);
    cmd.batch.push_back(std::move(p));
  }
  SubmitWrite(call, std::move(cmd), std::move(sink),
              [](const kv::Reply&, ReplySink& s) { s.Ok(); });
}

void Exists(CommandCall& call, ReplySink sink) {
  std::vector<std::string> keys(call.argv.begin() + 1, call.argv.end());
  SubmitRead(
      call, std::move(sink),
      [keys = std::move(keys)](const kv::StateMachine& sm) {
        kv::Reply r;
        for (const std::string& k : keys) r.number += sm.Get(k).has_value() ? 1 : 0;
        return r;
      },
      [](const kv::Reply& r, ReplySink& s) { s.Integer(r.number); });
}

void MGet(CommandCall& call, ReplySink sink) {
  std::vector<std::string> keys(call.argv.begin() + 1, call.argv.end());
  SubmitRead(
      call, std::move(sink),
      [keys = std::move(keys)](const kv::StateMachine& sm) {
        kv::Reply r;
        r.replies.reserve(keys.size());
        for (const std::string& k : keys) {
          kv::Reply v;
          if (auto got = sm.Get(k)) v.value = std::string(*got);
          r.replies.push_back(std::move(v));
        }
        return r;
      },
      [](const kv::Reply& r, ReplySink& s) {
        std::string out;
        ReplyWriter w(&out, s.protocol());
        w.ArrayHeader(r.replies.size());
        for (const kv::Reply& v : r.replies) {
          if (v.value) {
            w.Bulk(*v.value);
          } else {
            w.Null();
          }
        }
        s.Send(std::move(out));
      });
}

void DbSize(CommandCall& call, ReplySink sink) {
  SubmitRead(
      call, std::move(sink),
      [](const kv::StateMachine& sm) {
        kv::Reply r;
        r.number = static_cast<int64_t>(sm.key_count());
        return r;
      },
      [](const kv::Reply& r, ReplySink& s) { s.Integer(r.number); });
}

std::string InfoText(CommandCall& call, const std::string& section);

void Info(CommandCall& call, ReplySink sink) {
  std::string text;
  if (call.argv.size() == 1) {
    text = InfoText(call, "default");
  } else {
    for (size_t i = 1; i < call.argv.size(); ++i) text += InfoText(call, Lower(call.argv[i]));
  }
  sink.Bulk(text);
}

std::string InfoText(CommandCall& call, const std::string& section) {
  const bool all = section == "default" || section == "all" || section == "everything";
  const cluster::HostStatus st = call.ctx.host->GetStatus();
  const ServerCounters& c = *call.ctx.counters;
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  std::string out;
  if (all || section == "server") {
    out += "# Server\r\nredis_version:7.0.0\r\nsynod_version:0.1.0\r\nredis_mode:standalone\r\n";
    out += "os:Linux\r\nprocess_id:" + std::to_string(getpid()) + "\r\n";
    out += "run_id:" + call.ctx.run_id + "\r\n";
    out += "tcp_port:" + call.ctx.client_address.substr(call.ctx.client_address.rfind(':') + 1) +
           "\r\n";
    out += "uptime_in_seconds:" + std::to_string((now_ms - call.ctx.start_time_ms) / 1000) + "\r\n";
    out += "synod_node_id:" + std::to_string(st.id.value()) + "\r\n";
    out += "config_file:" + call.ctx.config_file + "\r\n\r\n";
  }
  if (all || section == "clients") {
    out += "# Clients\r\nconnected_clients:" + std::to_string(c.connections_current.load()) +
           "\r\n\r\n";
  }
  if (all || section == "persistence") {
    out += "# Persistence\r\nloading:0\r\naof_enabled:1\r\nsynod_engine:rocksdb\r\n";
    out += "synod_disk_bytes:" + std::to_string(st.disk_bytes) + "\r\n";
    out += "synod_snapshot_index:" + std::to_string(st.snapshot_index.value()) + "\r\n";
    out += "synod_storage_failed:" + std::string(st.failure.empty() ? "0" : "1") + "\r\n\r\n";
  }
  if (all || section == "stats") {
    out += "# Stats\r\ntotal_connections_received:" + std::to_string(c.connections_total.load());
    out += "\r\ntotal_commands_processed:" + std::to_string(c.commands_total.load());
    out += "\r\ntotal_error_replies:" + std::to_string(c.errors_total.load());
    out += "\r\nrejected_connections:" + std::to_string(c.rejected_connections.load());
    out += "\r\ntotal_net_input_bytes:" + std::to_string(c.bytes_in.load());
    out += "\r\ntotal_net_output_bytes:" + std::to_string(c.bytes_out.load()) + "\r\n\r\n";
  }
  if (all || section == "replication") {
    out += "# Replication\r\nrole:" + std::string(st.role == "leader" ? "master" : "slave");
    out += "\r\nraft_role:" + st.role + "\r\nraft_term:" + std::to_string(st.term.value());
    out += "\r\nraft_leader:" + std::to_string(st.leader.value());
    out += "\r\nraft_commit_index:" + std::to_string(st.commit.value());
    out += "\r\nraft_applied_index:" + std::to_string(st.applied.value());
    out += "\r\nraft_members:" + std::to_string(st.members.size()) + "\r\n\r\n";
  }
  if (all || section == "keyspace") {
    out += "# Keyspace\r\n";
    if (st.keys > 0) {
      out += "db0:keys=" + std::to_string(st.keys) + ",expires=0,avg_ttl=0\r\n";
    }
    out += "\r\n";
  }
  return out;
}

// Sorted by name (FindCommand binary-searches).
const std::vector<CommandSpec> kTable = {
    {"client", -2, kAdmin | kConnection | kStale, 0, 0, 0, Client, "Client connection commands."},
    {"command", -1, kStale | kConnection, 0, 0, 0, Command, "Details about Redis commands."},
    {"config", -2, kAdmin | kStale, 0, 0, 0, Config, "Reads server parameters."},
    {"dbsize", 1, kReadOnly | kFast, 0, 0, 0, DbSize, "Returns the number of keys."},
    {"del", -2, kWrite, 1, -1, 1, Del, "Deletes one or more keys."},
    {"echo", 2, kFast | kStale, 0, 0, 0, Echo, "Returns the given string."},
    {"exists", -2, kReadOnly | kFast, 1, -1, 1, Exists, "Counts the keys that exist."},
    {"get", 2, kReadOnly | kFast, 1, 1, 1, Get, "Returns the string value of a key."},
    {"hello", -1, kFast | kNoAuth | kStale | kConnection, 0, 0, 0, Hello, "Handshakes."},
    {"incr", 2, kWrite | kFast, 1, 1, 1, Incr, "Increments the integer value of a key by one."},
    {"info", -1, kStale, 0, 0, 0, Info, "Returns information and statistics about the server."},
    {"mget", -2, kReadOnly | kFast, 1, -1, 1, MGet, "Returns the values of keys."},
    {"mset", -3, kWrite, 1, -1, 2, MSet, "Atomically sets the values of keys."},
    {"ping", -1, kFast | kStale, 0, 0, 0, Ping, "Returns the server's liveliness response."},
    {"quit", -1, kFast | kNoAuth | kConnection, 0, 0, 0, Quit, "Closes the connection."},
    {"readonly", 1, kFast | kConnection, 0, 0, 0, ReadOnly,
     "Reads of this connection may be stale (served by the local replica)."},
    {"readwrite", 1, kFast | kConnection, 0, 0, 0, ReadWrite,
     "Reads of this connection are linearizable again."},
    {"select", 2, kFast | kConnection, 0, 0, 0, Select, "Selects database 0."},
    {"set", -3, kWrite, 1, 1, 1, Set, "Sets the string value of a key."},
    {"time", 1, kFast | kStale, 0, 0, 0, Time, "Returns the server time."},
};

}  // namespace

const std::vector<CommandSpec>& CommandTable() { return kTable; }

const CommandSpec* FindCommand(std::string_view name) {
  if (name.size() > 32) return nullptr;
  const std::string lower = Lower(name);
  auto it = std::lower_bound(kTable.begin(), kTable.end(), lower,
                             [](const CommandSpec& c, const std::string& n) { return c.name < n; });
  if (it == kTable.end() || lower != it->name) return nullptr;
  return &*it;
}

bool ArityOk(const CommandSpec& spec, size_t argc) {
  if (spec.arity >= 0) return argc == static_cast<size_t>(spec.arity);
  return argc >= static_cast<size_t>(-spec.arity);
}

std::vector<std::string_view> FlagNames(uint32_t flags) {
  std::vector<std::string_view> out;
  if (flags & kWrite) out.push_back("write");
  if (flags & kReadOnly) out.push_back("readonly");
  if (flags & kFast) out.push_back("fast");
  if (flags & kAdmin) out.push_back("admin");
  if (flags & kNoAuth) out.push_back("no_auth");
  if (flags & kLoading) out.push_back("loading");
  if (flags & kStale) out.push_back("stale");
  return out;
}

}  // namespace synod::server
