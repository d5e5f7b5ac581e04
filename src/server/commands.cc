// The command table (see command_table.h) and the connection and server commands (AUTH,
// HELLO, CLIENT, COMMAND, ...). The keyspace commands and transactions are in commands_kv.cc,
// CONFIG in commands_config.cc, INFO and WAIT in commands_info.cc.
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>

#include "common/assert.h"
#include "env/asio/steady_clock.h"
#include "kv/redis.h"
#include "kv/state_machine.h"
#include "server/command_impl.h"
#include "server/command_table.h"
#include "server/resp_server.h"

namespace synod::server {

// Redis's texts for a container command's (CLIENT, CONFIG, COMMAND) bad subcommands.
void UnknownSubcommand(ReplySink& sink, std::string_view container, const std::string& sub) {
  std::string upper(container);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  sink.Error("ERR unknown subcommand '" + sub.substr(0, 128) + "'. Try " + upper + " HELP.");
}

void SubcommandArity(ReplySink& sink, std::string_view container, const std::string& sub) {
  sink.Error("ERR wrong number of arguments for '" + std::string(container) + "|" + sub +
             "' command");
}

namespace {

using resp::ReplyWriter;

// ---- connection and server commands ----

// Comparison in time independent of where the strings differ (a password check).
bool SecureEquals(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

// Redis's one user, "default", with the replicated requirepass (none: any password, as
// Redis's nopass). Marks the connection authenticated on success.
bool Authenticate(CommandCall& call, std::string_view user, std::string_view pass) {
  const std::string_view password = call.ctx.password();
  if (user != "default") return false;
  if (!password.empty() && !SecureEquals(pass, password)) return false;
  call.conn.authenticated = true;
  return true;
}

constexpr std::string_view kWrongPass =
    "WRONGPASS invalid username-password pair or user is disabled.";

void Auth(CommandCall& call, ReplySink sink) {
  if (call.argv.size() > 3) {
    sink.Error("ERR syntax error");
    return;
  }
  if (call.argv.size() == 2 && call.ctx.password().empty()) {
    sink.Error(
        "ERR AUTH <password> called without any password configured for the default user. "
        "Are you sure your configuration is correct?");
    return;
  }
  const std::string user = call.argv.size() == 3 ? call.argv[1] : "default";
  if (!Authenticate(call, user, call.argv.back())) {
    sink.Error(kWrongPass);
    return;
  }
  sink.Ok();
}

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

void LastSave(CommandCall& call, ReplySink sink) { sink.Integer(call.ctx.last_save_ms / 1000); }

// Redis's validateClientName: printable ASCII without spaces.
bool ValidClientName(std::string_view name) {
  return std::all_of(name.begin(), name.end(), [](char c) { return c >= '!' && c <= '~'; });
}

constexpr std::string_view kBadClientName =
    "ERR Client names cannot contain spaces, newlines or special characters.";

void WriteHelloReply(CommandCall& call, std::string& out) {
  ReplyWriter w(&out, call.conn.protocol);
  w.MapHeader(7);
  w.Bulk("server");
  w.Bulk("redis");
  w.Bulk("version");
  w.Bulk("7.0.0");
  w.Bulk("proto");
  w.Integer(call.conn.protocol);
  w.Bulk("id");
  w.Integer(static_cast<int64_t>(call.conn.id()));
  w.Bulk("mode");
  w.Bulk("standalone");
  w.Bulk("role");
  w.Bulk(call.ctx.host->groups_led() > 0 ? "master" : "replica");
  w.Bulk("modules");
  w.ArrayHeader(0);
}

// HELLO [protover [AUTH user pass] [SETNAME name]], in Redis's order: version, options, AUTH,
// then the authentication requirement, then SETNAME and the protocol switch.
void Hello(CommandCall& call, ReplySink sink) {
  int64_t proto = 0;
  size_t i = 1;
  if (call.argv.size() > 1) {
    if (!kv::redis::ParseInt64(call.argv[1], &proto)) {
      sink.Error("ERR Protocol version is not an integer or out of range");
      return;
    }
    if (proto < 2 || proto > 3) {
      sink.Error("NOPROTO unsupported protocol version");
      return;
    }
    i = 2;
  }
  const std::string *user = nullptr, *pass = nullptr, *setname = nullptr;
  for (; i < call.argv.size(); ++i) {
    const size_t more = call.argv.size() - 1 - i;
    const std::string opt = Lower(call.argv[i]);
    if (opt == "auth" && more >= 2) {
      user = &call.argv[i + 1];
      pass = &call.argv[i + 2];
      i += 2;
    } else if (opt == "setname" && more >= 1) {
      setname = &call.argv[++i];
      if (!ValidClientName(*setname)) {
        sink.Error(kBadClientName);
        return;
      }
    } else {
      sink.Error("ERR Syntax error in HELLO option '" + call.argv[i] + "'");
      return;
    }
  }
  if (user != nullptr && !Authenticate(call, *user, *pass)) {
    sink.Error(kWrongPass);
    return;
  }
  if (!call.conn.authenticated && !call.ctx.password().empty()) {
    sink.Error(
        "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
        "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
        "select the RESP protocol version at the same time");
    return;
  }
  if (setname != nullptr) call.conn.name = *setname;
  if (proto != 0) call.conn.protocol = static_cast<int>(proto);
  std::string out;
  WriteHelloReply(call, out);
  sink.Send(std::move(out));
}

// ---- CLIENT ----

// The filters of CLIENT KILL's new form (and of the old form: addr only, skipme no).
struct KillFilter {
  uint64_t id = 0;
  std::string addr, laddr;
  bool skipme = true;
  bool type_none = false;  // TYPE replica/master/pubsub: Synod has no such clients
  int64_t maxage = 0;      // seconds; 0: no filter

  bool Matches(const Connection& c, const Connection& self, int64_t now_ms) const {
    if (id != 0 && c.id() != id) return false;
    if (!addr.empty() && c.remote != addr) return false;
    if (!laddr.empty() && c.local != laddr) return false;
    if (skipme && &c == &self) return false;
    if (type_none) return false;
    if (maxage > 0 && (now_ms - c.created_ms) / 1000 < maxage) return false;
    return true;
  }
};

// Parses `CLIENT KILL <filter> <value> ...`. Returns "" or the error to reply.
std::string ParseKillFilter(const std::vector<std::string>& argv, KillFilter* f) {
  for (size_t i = 2; i + 1 < argv.size(); i += 2) {
    const std::string opt = Lower(argv[i]);
    const std::string& v = argv[i + 1];
    int64_t n = 0;
    if (opt == "id") {
      if (!kv::redis::ParseInt64(v, &n) || n < 1) return "ERR client-id should be greater than 0";
      f->id = static_cast<uint64_t>(n);
    } else if (opt == "type") {
      const std::string t = Lower(v);
      if (t != "normal" && t != "slave" && t != "replica" && t != "master" && t != "pubsub") {
        return "ERR Unknown client type '" + v + "'";
      }
      f->type_none = f->type_none || t != "normal";
    } else if (opt == "addr") {
      f->addr = v;
    } else if (opt == "laddr") {
      f->laddr = v;
    } else if (opt == "user") {
      if (v != "default") return "ERR No such user '" + v + "'";
    } else if (opt == "skipme") {
      const std::string yn = Lower(v);
      if (yn != "yes" && yn != "no") return "ERR syntax error";
      f->skipme = yn == "yes";
    } else if (opt == "maxage") {
      if (!kv::redis::ParseInt64(v, &n)) return "ERR value is not an integer or out of range";
      f->maxage = n;
    } else {
      return "ERR syntax error";
    }
  }
  return "";
}

void ClientKill(CommandCall& call, ReplySink sink) {
  const bool old_form = call.argv.size() == 3;
  KillFilter f;
  if (old_form) {
    f.addr = call.argv[2];
    f.skipme = false;                      // as Redis: the old form may kill the caller
  } else if (call.argv.size() % 2 != 0) {  // an option without its value
    sink.Error("ERR syntax error");
    return;
  } else if (std::string err = ParseKillFilter(call.argv, &f); !err.empty()) {
    sink.Error(err);
    return;
  }
  const int64_t now = env::WallNowMs();
  int64_t killed = 0;
  bool kill_self = false;
  for (const auto& c : call.ctx.server->Connections()) {
    if (!f.Matches(*c, call.conn, now)) continue;
    ++killed;
    if (c.get() == &call.conn) {
      kill_self = true;  // after the reply is queued
    } else {
      c->Kill();
    }
  }
  if (old_form && killed == 0) {
    sink.Error("ERR No such client");
  } else if (old_form) {
    sink.Ok();
  } else {
    sink.Integer(killed);
  }
  if (kill_self) call.conn.Kill();
}

// CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id ...], and CLIENT INFO.
void ClientList(CommandCall& call, ReplySink sink, bool info) {
  std::set<uint64_t> ids;
  bool none = false;
  for (size_t i = 2; i < call.argv.size(); ++i) {
    const std::string opt = Lower(call.argv[i]);
    if (!info && opt == "type" && i + 1 < call.argv.size()) {
      const std::string t = Lower(call.argv[++i]);
      if (t != "normal" && t != "slave" && t != "replica" && t != "master" && t != "pubsub") {
        sink.Error("ERR Unknown client type '" + call.argv[i] + "'");
        return;
      }
      none = none || t != "normal";
    } else if (!info && opt == "id" && i + 1 < call.argv.size()) {
      for (++i; i < call.argv.size(); ++i) {
        int64_t id = 0;
        if (!kv::redis::ParseInt64(call.argv[i], &id) || id < 1) {
          sink.Error("ERR Invalid client ID");
          return;
        }
        ids.insert(static_cast<uint64_t>(id));
      }
    } else {
      sink.Error("ERR syntax error");
      return;
    }
  }
  const int64_t now = env::WallNowMs();
  std::string text;
  if (info) {
    text = call.conn.InfoLine(now) + "\n";
  } else if (!none) {
    for (const auto& c : call.ctx.server->Connections()) {
      if (ids.empty() || ids.count(c->id()) > 0) text += c->InfoLine(now) + "\n";
    }
  }
  std::string out;
  ReplyWriter(&out, sink.protocol()).Verbatim(text);
  sink.Send(std::move(out));
}

void ClientSetInfo(CommandCall& call, ReplySink sink) {
  const std::string attr = Lower(call.argv[2]);
  const std::string& v = call.argv[3];
  if (attr != "lib-name" && attr != "lib-ver") {
    sink.Error("ERR Unrecognized option '" + call.argv[2] + "'");
    return;
  }
  if (!ValidClientName(v)) {
    sink.Error("ERR " + attr + " cannot contain spaces, newlines or special characters.");
    return;
  }
  (attr == "lib-name" ? call.conn.lib_name : call.conn.lib_ver) = v;
  sink.Ok();
}

void Client(CommandCall& call, ReplySink sink) {
  const std::string sub = Lower(call.argv[1]);
  const size_t n = call.argv.size();
  if (sub == "id" && n == 2) {
    sink.Integer(static_cast<int64_t>(call.conn.id()));
  } else if (sub == "setname" && n == 3) {
    if (!ValidClientName(call.argv[2])) {
      sink.Error(kBadClientName);
      return;
    }
    call.conn.name = call.argv[2];
    sink.Ok();
  } else if (sub == "getname" && n == 2) {
    if (call.conn.name.empty()) {
      sink.Null();
    } else {
      sink.Bulk(call.conn.name);
    }
  } else if (sub == "setinfo" && n == 4) {
    ClientSetInfo(call, std::move(sink));
  } else if (sub == "list" || (sub == "info" && n == 2)) {
    ClientList(call, std::move(sink), sub == "info");
  } else if (sub == "kill" && n >= 3) {
    ClientKill(call, std::move(sink));
  } else if ((sub == "no-evict" || sub == "no-touch") && n == 3) {
    // Synod never evicts clients nor tracks key access: both modes are what it does anyway.
    const std::string v = Lower(call.argv[2]);
    if (v == "on" || v == "off") {
      sink.Ok();
    } else {
      sink.Error("ERR syntax error");
    }
  } else if (sub == "reply" || sub == "pause" || sub == "unpause" || sub == "tracking" ||
             sub == "caching" || sub == "getredir" || sub == "trackinginfo" || sub == "unblock") {
    sink.Error("ERR CLIENT " + sub + " is not supported by Synod");
  } else if (sub == "id" || sub == "setname" || sub == "getname" || sub == "setinfo" ||
             sub == "info" || sub == "kill" || sub == "no-evict" || sub == "no-touch") {
    SubcommandArity(sink, "client", sub);
  } else {
    UnknownSubcommand(sink, "client", call.argv[1]);
  }
}

// ---- COMMAND ----

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

// COMMAND GETKEYS / GETKEYSANDFLAGS <command> <args...>. The flags are derived from the
// command's: a write's keys are "RW update", a read's "RO access" (Redis's key specs are
// finer, e.g. DEL's "RM delete").
void CommandGetKeys(CommandCall& call, ReplySink sink, bool with_flags) {
  const CommandSpec* spec = FindCommand(call.argv[2]);
  if (spec == nullptr) {
    sink.Error("ERR Invalid command specified");
    return;
  }
  const std::vector<std::string> args(call.argv.begin() + 2, call.argv.end());
  if (!ArityOk(*spec, args.size())) {
    sink.Error("ERR Invalid number of arguments specified for command");
    return;
  }
  const std::vector<size_t> keys = KeyPositions(*spec, args.size());
  if (keys.empty()) {
    sink.Error("ERR The command has no key arguments");
    return;
  }
  std::vector<std::string_view> flags;
  if (spec->flags & kWrite) {
    flags = {"RW", "update"};
  } else if (spec->flags & kReadOnly) {
    flags = {"RO", "access"};
  } else {
    flags = {"RO"};
  }
  std::string out;
  ReplyWriter w(&out, sink.protocol());
  w.ArrayHeader(keys.size());
  for (size_t k : keys) {
    if (!with_flags) {
      w.Bulk(args[k]);
      continue;
    }
    w.ArrayHeader(2);
    w.Bulk(args[k]);
    w.SetHeader(flags.size());
    for (std::string_view f : flags) w.SimpleString(f);
  }
  sink.Send(std::move(out));
}

// COMMAND LIST [FILTERBY PATTERN p | ACLCAT c | MODULE m] (Synod has no ACL categories nor
// modules: those filters match nothing).
void CommandList(CommandCall& call, ReplySink sink) {
  std::string pattern = "*";
  bool none = false;
  if (call.argv.size() == 5 && Lower(call.argv[2]) == "filterby") {
    const std::string by = Lower(call.argv[3]);
    if (by == "pattern") {
      pattern = Lower(call.argv[4]);
    } else if (by == "aclcat" || by == "module") {
      none = true;
    } else {
      sink.Error("ERR syntax error");
      return;
    }
  } else if (call.argv.size() != 2) {
    sink.Error("ERR syntax error");
    return;
  }
  std::vector<const char*> names;
  for (const CommandSpec& c : CommandTable()) {
    if (!none && kv::redis::GlobMatch(pattern, c.name)) names.push_back(c.name);
  }
  std::string out;
  ReplyWriter w(&out, sink.protocol());
  w.ArrayHeader(names.size());
  for (const char* n : names) w.Bulk(n);
  sink.Send(std::move(out));
}

void CommandDocs(CommandCall& call, ReplySink sink) {
  // Names and summaries; redis-cli uses them for hints.
  std::vector<const CommandSpec*> docs;
  for (size_t i = 2; i < call.argv.size(); ++i) {
    if (const CommandSpec* c = FindCommand(call.argv[i])) docs.push_back(c);
  }
  if (call.argv.size() == 2) {
    for (const CommandSpec& c : CommandTable()) docs.push_back(&c);
  }
  std::string out;
  ReplyWriter w(&out, sink.protocol());
  w.MapHeader(docs.size());
  for (const CommandSpec* c : docs) {
    w.Bulk(c->name);
    w.MapHeader(1);
    w.Bulk("summary");
    w.Bulk(c->summary);
  }
  sink.Send(std::move(out));
}

void Command(CommandCall& call, ReplySink sink) {
  const auto& table = CommandTable();
  std::string out;
  ReplyWriter w(&out, sink.protocol());
  const std::string sub = call.argv.size() > 1 ? Lower(call.argv[1]) : "";
  const size_t n = call.argv.size();
  if (n == 1) {
    w.ArrayHeader(table.size());
    for (const CommandSpec& c : table) WriteCommandInfo(c, w);
  } else if (sub == "count" && n == 2) {
    w.Integer(static_cast<int64_t>(table.size()));
  } else if (sub == "info") {
    const size_t count = n == 2 ? table.size() : n - 2;
    w.ArrayHeader(count);
    for (size_t i = 0; i < count; ++i) {
      const CommandSpec* c = n == 2 ? &table[i] : FindCommand(call.argv[i + 2]);
      if (c == nullptr) {
        w.NullArray();
      } else {
        WriteCommandInfo(*c, w);
      }
    }
  } else if (sub == "docs") {
    CommandDocs(call, std::move(sink));
    return;
  } else if ((sub == "getkeys" || sub == "getkeysandflags") && n >= 3) {
    CommandGetKeys(call, std::move(sink), sub == "getkeysandflags");
    return;
  } else if (sub == "list") {
    CommandList(call, std::move(sink));
    return;
  } else if (sub == "count" || sub == "getkeys" || sub == "getkeysandflags") {
    SubcommandArity(sink, "command", sub);
    return;
  } else {
    UnknownSubcommand(sink, "command", call.argv[1]);
    return;
  }
  sink.Send(std::move(out));
}

// The table. Keyspace commands point at KvRead/KvWrite (kv/redis.h executes them); their
// arity must equal kv's (command_table_test checks). Sorted at start-up by name.
std::vector<CommandSpec> BuildTable() {
  constexpr uint32_t kR = kReadOnly;
  constexpr uint32_t kW = kWrite;
  constexpr uint32_t kF = kFast;
  std::vector<CommandSpec> t = {
      // strings
      {"append", 3, kW | kF, 1, 1, 1, KvWrite, "Appends a string to the value of a key."},
      {"decr", 2, kW | kF, 1, 1, 1, KvWrite, "Decrements the integer value of a key by one."},
      {"decrby", 3, kW | kF, 1, 1, 1, KvWrite, "Decrements the integer value of a key."},
      {"get", 2, kR | kF, 1, 1, 1, KvRead, "Returns the string value of a key."},
      {"getdel", 2, kW | kF, 1, 1, 1, KvWrite, "Returns the value of a key and deletes it."},
      {"getex", -2, kW | kF, 1, 1, 1, KvWrite, "Returns the value of a key and sets its TTL."},
      {"getrange", 4, kR, 1, 1, 1, KvRead, "Returns a substring of a key's value."},
      {"getset", 3, kW | kF, 1, 1, 1, KvWrite, "Sets a key and returns its old value."},
      {"incr", 2, kW | kF, 1, 1, 1, KvWrite, "Increments the integer value of a key by one."},
      {"incrby", 3, kW | kF, 1, 1, 1, KvWrite, "Increments the integer value of a key."},
      {"incrbyfloat", 3, kW | kF, 1, 1, 1, KvWrite, "Increments the float value of a key."},
      {"lcs", -3, kR, 1, 2, 1, KvRead, "Finds the longest common substring of two keys."},
      {"mget", -2, kR | kF, 1, -1, 1, KvRead, "Returns the values of keys."},
      {"mset", -3, kW, 1, -1, 2, KvWrite, "Atomically sets the values of keys."},
      {"msetnx", -3, kW, 1, -1, 2, KvWrite, "Sets keys only when none exists."},
      {"psetex", 4, kW, 1, 1, 1, KvWrite, "Sets a key with a TTL in milliseconds."},
      {"set", -3, kW, 1, 1, 1, KvWrite, "Sets the string value of a key."},
      {"setex", 4, kW, 1, 1, 1, KvWrite, "Sets a key with a TTL in seconds."},
      {"setnx", 3, kW | kF, 1, 1, 1, KvWrite, "Sets a key only when it does not exist."},
      {"setrange", 4, kW, 1, 1, 1, KvWrite, "Overwrites part of a key's value."},
      {"strlen", 2, kR | kF, 1, 1, 1, KvRead, "Returns the length of a key's value."},
      // keys
      {"copy", -3, kW, 1, 2, 1, KvWrite, "Copies a key's value to another key."},
      {"dbsize", 1, kR | kF, 0, 0, 0, KvRead, "Returns the number of keys."},
      {"del", -2, kW, 1, -1, 1, KvWrite, "Deletes one or more keys."},
      {"exists", -2, kR | kF, 1, -1, 1, KvRead, "Counts the keys that exist."},
      {"expire", -3, kW | kF, 1, 1, 1, KvWrite, "Sets a key's TTL in seconds."},
      {"expireat", -3, kW | kF, 1, 1, 1, KvWrite, "Sets a key's expiry as a Unix time."},
      {"expiretime", 2, kR | kF, 1, 1, 1, KvRead, "Returns a key's expiry as a Unix time."},
      {"flushall", -1, kW, 0, 0, 0, KvWrite, "Deletes every key."},
      {"flushdb", -1, kW, 0, 0, 0, KvWrite, "Deletes every key of the database."},
      {"keys", 2, kR, 0, 0, 0, KvRead, "Returns the keys that match a pattern."},
      {"persist", 2, kW | kF, 1, 1, 1, KvWrite, "Removes a key's expiry."},
      {"pexpire", -3, kW | kF, 1, 1, 1, KvWrite, "Sets a key's TTL in milliseconds."},
      {"pexpireat", -3, kW | kF, 1, 1, 1, KvWrite, "Sets a key's expiry as Unix ms."},
      {"pexpiretime", 2, kR | kF, 1, 1, 1, KvRead, "Returns a key's expiry as Unix ms."},
      {"pttl", 2, kR | kF, 1, 1, 1, KvRead, "Returns a key's TTL in milliseconds."},
      {"randomkey", 1, kR, 0, 0, 0, KvRead, "Returns a random key."},
      {"rename", 3, kW, 1, 2, 1, KvWrite, "Renames a key."},
      {"renamenx", 3, kW | kF, 1, 2, 1, KvWrite, "Renames a key if the new name is free."},
      {"scan", -2, kR, 0, 0, 0, KvRead, "Iterates over the keys."},
      {"touch", -2, kR | kF, 1, -1, 1, KvRead, "Counts the keys that exist (last access)."},
      {"ttl", 2, kR | kF, 1, 1, 1, KvRead, "Returns a key's TTL in seconds."},
      {"type", 2, kR | kF, 1, 1, 1, KvRead, "Returns the type of a key's value."},
      {"unlink", -2, kW | kF, 1, -1, 1, KvWrite, "Deletes keys."},
      // scripts (commands_scripting.cc); not queued by MULTI (no kWrite/kReadOnly flag)
      {"eval", -3, 0, 0, 0, 0, Eval, "Executes a Lua script on the shard of its keys."},
      {"eval_ro", -3, 0, 0, 0, 0, EvalRo, "Executes a read-only Lua script."},
      {"evalsha", -3, 0, 0, 0, 0, EvalShaCmd, "Executes a cached Lua script by its SHA1."},
      {"evalsha_ro", -3, 0, 0, 0, 0, EvalShaRo, "Executes a cached read-only Lua script."},
      {"script", -2, 0, 0, 0, 0, Script, "The script cache: LOAD, EXISTS, FLUSH, KILL."},
      {"fcall", -3, 0, 0, 0, 0, FCall, "Calls a function of a library FUNCTION LOAD stored."},
      {"fcall_ro", -3, 0, 0, 0, 0, FCallRo, "Calls a no-writes function."},
      {"function", -2, 0, 0, 0, 0, Function,
       "Function libraries, kept in the meta shard: LOAD, DELETE, LIST, DUMP, RESTORE, FLUSH, "
       "STATS, KILL."},
      // transactions
      {"discard", 1, kF | kTransaction, 0, 0, 0, Discard, "Discards a transaction."},
      {"exec", 1, kTransaction, 0, 0, 0, Exec, "Executes a transaction atomically."},
      {"multi", 1, kF | kTransaction, 0, 0, 0, Multi, "Starts a transaction."},
      {"unwatch", 1, kF | kTransaction, 0, 0, 0, Unwatch, "Forgets the watched keys."},
      {"watch", -2, kF | kTransaction, 1, -1, 1, Watch, "Watches keys for a transaction."},
      // server and connection
      {"auth", -2, kF | kNoAuth | kStale | kLoading | kConnection, 0, 0, 0, Auth,
       "Authenticates the connection."},
      {"client", -2, kAdmin | kConnection | kStale, 0, 0, 0, Client, "Client connection commands."},
      {"cluster", -2, kStale, 0, 0, 0, Cluster,
       "The Redis Cluster protocol: slots, shards, nodes, key slots."},
      {"command", -1, kStale | kConnection, 0, 0, 0, Command, "Details about Redis commands."},
      {"config", -2, kAdmin | kStale, 0, 0, 0, Config,
       "Reads and sets parameters (requirepass: replicated; others: this node only)."},
      {"echo", 2, kF | kStale, 0, 0, 0, Echo, "Returns the given string."},
      {"hello", -1, kF | kNoAuth | kStale | kConnection, 0, 0, 0, Hello, "Handshakes."},
      {"info", -1, kStale, 0, 0, 0, Info, "Returns information and statistics about the server."},
      {"lastsave", 1, kF | kStale | kLoading, 0, 0, 0, LastSave,
       "Returns the Unix time of the node's last log compaction (or its start)."},
      {"ping", -1, kF | kStale, 0, 0, 0, Ping, "Returns the server's liveliness response."},
      {"quit", -1, kF | kNoAuth | kConnection | kTransaction, 0, 0, 0, Quit,
       "Closes the connection."},
      {"readonly", 1, kF | kConnection, 0, 0, 0, ReadOnly,
       "Reads of this connection may be stale (served by the local replica)."},
      {"readwrite", 1, kF | kConnection, 0, 0, 0, ReadWrite,
       "Reads of this connection are linearizable again."},
      {"select", 2, kF | kConnection, 0, 0, 0, Select, "Selects database 0."},
      {"time", 1, kF | kStale, 0, 0, 0, Time, "Returns the server time."},
      {"wait", 3, 0, 0, 0, 0, Wait,
       "Waits until replicas hold the connection's last write (followers: a lower bound)."},
  };
  std::sort(t.begin(), t.end(), [](const CommandSpec& a, const CommandSpec& b) {
    return std::string_view(a.name) < std::string_view(b.name);
  });
  return t;
}

const std::vector<CommandSpec>& Table() {
  static const std::vector<CommandSpec> table = BuildTable();
  return table;
}

}  // namespace

const std::vector<CommandSpec>& CommandTable() { return Table(); }

const CommandSpec* FindCommand(std::string_view name) {
  if (name.size() > 32) return nullptr;
  const std::string lower = Lower(name);
  const auto& t = Table();
  auto it = std::lower_bound(
      t.begin(), t.end(), lower,
      [](const CommandSpec& c, const std::string& n) { return std::string_view(c.name) < n; });
  if (it == t.end() || lower != it->name) return nullptr;
  return &*it;
}

std::vector<size_t> KeyPositions(const CommandSpec& spec, size_t argc) {
  std::vector<size_t> out;
  if (spec.first_key <= 0 || spec.key_step <= 0) return out;
  const int64_t n = static_cast<int64_t>(argc);
  const int64_t last = spec.last_key < 0 ? n + spec.last_key : spec.last_key;
  for (int64_t i = spec.first_key; i <= last && i < n; i += spec.key_step) {
    out.push_back(static_cast<size_t>(i));
  }
  return out;
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
