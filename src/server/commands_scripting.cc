// EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT (docs/scripting.md).
//
// The node a client talks to checks the arguments, compiles the script into its own cache (so
// SCRIPT EXISTS and EVALSHA know it here, as Redis's cache after EVAL), finds the one shard of
// its keys (CROSSSLOT otherwise) and sends the script with its body to that shard's leader,
// where compute::ScriptRunner runs it (a kScript request through the router, forwarded like a
// write). The answer is the script's reply in the client's protocol.
#include "common/crc32c.h"
#include "common/slot.h"
#include "kv/redis.h"
#include "server/command_impl.h"
#include "server/resp_server.h"

namespace synod::server {

namespace {

constexpr char kCrossSlot[] = "CROSSSLOT Keys in request don't hash to the same slot";

// A HELP subcommand's reply: its lines as status replies.
template <size_t N>
void SendHelp(ReplySink& sink, const char* const (&lines)[N]) {
  std::string out;
  resp::ReplyWriter w(&out, sink.protocol());
  w.ArrayHeader(N);
  for (const char* line : lines) w.SimpleString(line);
  sink.Send(std::move(out));
}

bool IsSha(std::string_view s) {
  if (s.size() != 40) return false;
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// The numkeys of an EVAL-shaped argv ({name, script, numkeys, keys..., args...}), or the error.
std::optional<size_t> NumKeys(CommandCall& call, ReplySink& sink, const char* not_integer) {
  int64_t numkeys = 0;
  if (!kv::redis::ParseInt64(call.argv[2], &numkeys)) {
    sink.Error(not_integer);
    return std::nullopt;
  }
  if (numkeys < 0) {
    sink.Error("ERR Number of keys can't be negative");
    return std::nullopt;
  }
  if (static_cast<uint64_t>(numkeys) > call.argv.size() - 3) {
    sink.Error("ERR Number of keys can't be greater than number of args");
    return std::nullopt;
  }
  return static_cast<size_t>(numkeys);
}

// Sends a script (or, with `function`, FCALL's function of the library `body`) to the leader
// of its keys' shard and answers with its reply.
void SendScript(CommandCall& call, ReplySink sink, std::string body, size_t nk, bool read_only,
                std::optional<std::string> function);

// EVAL-shaped: argv = {name, script-or-sha, numkeys, keys..., args...}.
void RunScript(CommandCall& call, ReplySink sink, std::string body, bool read_only) {
  const std::optional<size_t> numkeys =
      NumKeys(call, sink, "ERR value is not an integer or out of range");
  if (!numkeys) return;
  compute::LuaEngine& engine = call.ctx.host->scripts().engine();
  Result<std::string> sha = engine.Load(body);
  if (!sha.ok()) return sink.Error(sha.status().message());
  // "#!lua flags=no-writes": the script runs as a read-only one.
  Result<compute::ScriptShebang> shebang = compute::ParseScriptShebang(body);
  if (shebang.ok() && shebang->no_writes) read_only = true;
  SendScript(call, std::move(sink), std::move(body), *numkeys, read_only, std::nullopt);
}

void SendScript(CommandCall& call, ReplySink sink, std::string body, size_t nk, bool read_only,
                std::optional<std::string> function) {
  std::optional<SlotRange> slots;
  GroupId group;
  for (size_t i = 0; i < nk; ++i) {
    const std::string& key = call.argv[3 + i];
    const uint16_t slot = KeySlot(key);
    const GroupId g = call.ctx.router->ShardOfSlot(slot);
    if (group != kNoGroup && g != group) return sink.Error(kCrossSlot);
    group = g;
    slots = slots ? SlotRange{std::min(slots->first, slot), std::max(slots->last, slot)}
                  : SlotRange{slot, slot};
  }
  if (group == kNoGroup) {
    // No key declared: the script runs on a shard this node leads, else on the first one; the
    // keys it touches must be that shard's.
    const std::vector<GroupId> led = call.ctx.router->ShardsLedHere();
    group = led.empty() ? call.ctx.router->DataShards().front() : led.front();
  } else if (call.ctx.cluster_redirects) {
    std::vector<std::string> probe{"get", call.argv[3]};
    if (auto moved = ClusterRedirect(call.ctx, *FindCommand("get"), probe, false)) {
      return sink.Error(*moved);
    }
  }
  cluster::ShardRequest req;
  req.type = cluster::ShardRequest::Type::kScript;
  req.group = group;
  req.slots = slots;
  req.keys = static_cast<uint32_t>(nk);
  // READONLY: a read-only script may run on any replica (stale, as the connection's reads).
  req.mode = read_only && call.conn.readonly ? cluster::ReadMode::kStale
                                             : cluster::ReadMode::kLinearizable;
  req.flags = (read_only ? cluster::ShardRequest::kScriptReadOnly : 0) |
              (call.conn.protocol == 3 ? cluster::ShardRequest::kScriptResp3 : 0) |
              (function ? cluster::ShardRequest::kScriptFunction : 0);
  req.args.reserve(call.argv.size() - 1);
  req.args.push_back(std::move(body));
  if (function) req.args.push_back(std::move(*function));
  for (size_t i = 3; i < call.argv.size(); ++i) req.args.push_back(std::move(call.argv[i]));
  auto shared = std::make_shared<ReplySink>(std::move(sink));
  call.ctx.router->Call(
      std::move(req), [shared, weak = call.conn.weak_from_this(), group](cluster::ShardResponse r) {
        if (!r.status.ok()) return shared->Error(RedisErrorFor(r.status, /*write=*/true));
        if (r.index.value() > 0) {
          if (auto conn = weak.lock()) {
            conn->last_write_group = group;
            conn->last_write_index = r.index;
          }
        }
        std::string out;
        resp::ReplyWriter w(&out, shared->protocol());
        WriteKvReply(r.reply, w);
        shared->Send(std::move(out));
      });
}

void EvalSha(CommandCall& call, ReplySink sink, bool read_only) {
  const std::string sha = Lower(call.argv[1]);
  const std::string* body = IsSha(sha) ? call.ctx.host->scripts().engine().Body(sha) : nullptr;
  if (body == nullptr) return sink.Error("NOSCRIPT No matching script. Please use EVAL.");
  RunScript(call, std::move(sink), *body, read_only);
}

// SCRIPT KILL: every shard's leader stops the scripts it runs that proposed nothing yet.
void ScriptKill(CommandCall& call, ReplySink sink, bool functions) {
  struct State {
    size_t left = 0;
    int64_t killed = 0;
    ReplySink sink;
    bool functions = false;
  };
  const std::vector<GroupId> shards = call.ctx.router->DataShards();
  auto st = std::make_shared<State>(State{shards.size(), 0, std::move(sink), functions});
  for (GroupId g : shards) {
    cluster::ShardRequest req;
    req.type = cluster::ShardRequest::Type::kScriptKill;
    req.group = g;
    req.flags = functions ? cluster::ShardRequest::kScriptFunctions : 0;
    call.ctx.router->Call(std::move(req), [st](cluster::ShardResponse r) {
      if (r.status.ok() && r.reply.type == kv::ReplyType::kInteger) st->killed += r.reply.number;
      if (--st->left > 0) return;
      if (st->killed > 0) return st->sink.Ok();
      st->sink.Error("NOTBUSY No scripts in execution right now.");
    });
  }
}

}  // namespace

void Eval(CommandCall& call, ReplySink sink) {
  RunScript(call, std::move(sink), call.argv[1], /*read_only=*/false);
}

void EvalRo(CommandCall& call, ReplySink sink) {
  RunScript(call, std::move(sink), call.argv[1], /*read_only=*/true);
}

void EvalShaCmd(CommandCall& call, ReplySink sink) { EvalSha(call, std::move(sink), false); }

void EvalShaRo(CommandCall& call, ReplySink sink) { EvalSha(call, std::move(sink), true); }

void Script(CommandCall& call, ReplySink sink) {
  const std::string sub = Lower(call.argv[1]);
  const size_t n = call.argv.size();
  compute::LuaEngine& engine = call.ctx.host->scripts().engine();
  if (sub == "load") {
    if (n != 3) return SubcommandArity(sink, "script", sub);
    Result<std::string> sha = engine.Load(call.argv[2]);
    if (!sha.ok()) return sink.Error(sha.status().message());
    return sink.Bulk(*sha);
  }
  if (sub == "exists") {
    if (n < 3) return SubcommandArity(sink, "script", sub);
    std::string out;
    resp::ReplyWriter w(&out, sink.protocol());
    w.ArrayHeader(n - 2);
    for (size_t i = 2; i < n; ++i) w.Integer(engine.Has(Lower(call.argv[i])) ? 1 : 0);
    return sink.Send(std::move(out));
  }
  if (sub == "flush") {
    if (n > 3) return SubcommandArity(sink, "script", sub);
    if (n == 3) {
      const std::string mode = Lower(call.argv[2]);
      if (mode != "sync" && mode != "async") {
        return sink.Error("ERR SCRIPT FLUSH only support SYNC|ASYNC option");
      }
    }
    engine.Flush();
    return sink.Ok();
  }
  if (sub == "kill") {
    if (n != 2) return SubcommandArity(sink, "script", sub);
    return ScriptKill(call, std::move(sink), /*functions=*/false);
  }
  if (sub == "help" && n == 2) {
    static const char* const kHelp[] = {
        "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "EXISTS <sha1> [<sha1> ...]",
        "    Return information about the existence of the scripts in the script cache.",
        "FLUSH [ASYNC|SYNC]",
        "    Flush the Lua scripts cache. Very dangerous on replicas.",
        "    When called without the optional mode argument, the behavior is determined by the",
        "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
        "    * ASYNC: Asynchronously flush the scripts cache.",
        "    * SYNC: Synchronously flush the scripts cache.",
        "KILL",
        "    Kill the currently executing Lua script.",
        "LOAD <script>",
        "    Load a script into the scripts cache without executing it.",
        "HELP",
        "    Prints this help."};
    return SendHelp(sink, kHelp);
  }
  UnknownSubcommand(sink, "script", call.argv[1]);
}

// ---- functions ----

namespace {

// The library holding function `fname` among this node's view of them.
std::optional<std::pair<std::string, const compute::FunctionInfo*>> FindFunction(
    ServerContext& ctx, const std::string& fname) {
  compute::LuaEngine& engine = ctx.host->scripts().engine();
  for (const auto& [lib, code] : ctx.host->FunctionLibraries()) {
    Result<const compute::LibraryInfo*> info = engine.LoadLibrary(code);
    if (!info.ok()) continue;
    if (const compute::FunctionInfo* f = (*info)->Find(fname)) return std::make_pair(code, f);
  }
  return std::nullopt;
}

void CallFunction(CommandCall& call, ReplySink sink, bool read_only, bool refreshed) {
  const std::optional<size_t> numkeys = NumKeys(call, sink, "ERR Bad number of keys provided");
  if (!numkeys) return;
  const std::string fname = call.argv[1];
  auto found = FindFunction(call.ctx, fname);
  if (!found) {
    if (refreshed) return sink.Error("ERR Function not found");
    // Not known here: it may have been loaded on another node a moment ago.
    auto shared = std::make_shared<ReplySink>(std::move(sink));
    auto argv = std::make_shared<std::vector<std::string>>(std::move(call.argv));
    ServerContext* ctx = &call.ctx;
    call.ctx.host->RefreshFunctions(
        [shared, argv, ctx, weak = call.conn.weak_from_this(), read_only](const Status& s) {
          auto conn = weak.lock();
          if (!conn) return;
          if (!s.ok()) return shared->Error(RedisErrorFor(s, /*write=*/false));
          CommandCall again{*ctx, *conn, *argv};
          CallFunction(again, std::move(*shared), read_only, /*refreshed=*/true);
        });
    return;
  }
  if (read_only && !found->second->no_writes) {
    return sink.Error("ERR Can not execute a script with write flag using *_ro command.");
  }
  SendScript(call, std::move(sink), found->first, *numkeys, read_only || found->second->no_writes,
             fname);
}

constexpr char kLibraryNameError[] =
    "ERR Library names can only contain letters, numbers, or underscores(_) and must be at "
    "least one character long";

// Writes FUNCTION LIST's entry for one library.
void WriteLibrary(resp::ReplyWriter& w, const compute::LibraryInfo& lib, bool with_code) {
  w.MapHeader(with_code ? 4 : 3);
  w.Bulk("library_name");
  w.Bulk(lib.name);
  w.Bulk("engine");
  w.Bulk("LUA");
  w.Bulk("functions");
  w.ArrayHeader(lib.functions.size());
  for (const compute::FunctionInfo& f : lib.functions) {
    w.MapHeader(3);
    w.Bulk("name");
    w.Bulk(f.name);
    w.Bulk("description");
    if (f.description) {
      w.Bulk(*f.description);
    } else {
      w.Null();
    }
    w.Bulk("flags");
    w.SetHeader(f.flags.size());
    for (const std::string& flag : f.flags) w.SimpleString(flag);
  }
  if (with_code) {
    w.Bulk("library_code");
    w.Bulk(lib.code);
  }
}

// FUNCTION DUMP's payload: "SYNODFN1", then per library a 4-byte length and the code, then the
// CRC-32C of all before it. Synod's own format (Redis's is its RDB encoding): what DUMP gives,
// RESTORE takes, between Synod nodes.
constexpr std::string_view kDumpMagic = "SYNODFN1";

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t GetU32(std::string_view s) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(s[i])) << (8 * i);
  return v;
}

std::optional<std::vector<std::string>> ParseDump(std::string_view p) {
  if (p.size() < kDumpMagic.size() + 4 || !p.starts_with(kDumpMagic)) return std::nullopt;
  const std::string_view body = p.substr(0, p.size() - 4);
  if (Crc32c(body) != GetU32(p.substr(p.size() - 4))) return std::nullopt;
  std::string_view rest = body.substr(kDumpMagic.size());
  std::vector<std::string> out;
  while (!rest.empty()) {
    if (rest.size() < 4) return std::nullopt;
    const uint32_t n = GetU32(rest);
    rest.remove_prefix(4);
    if (rest.size() < n) return std::nullopt;
    out.emplace_back(rest.substr(0, n));
    rest.remove_prefix(n);
  }
  return out;
}

// Loads `codes` (checked) into the meta shard: FUNCTION LOAD and RESTORE. `replace`: a library
// of the same name is replaced, else refused; `flush`: every other library goes.
void StoreLibraries(CommandCall& call, ReplySink sink, std::vector<std::string> codes, bool replace,
                    bool flush, std::optional<std::string> reply_name) {
  compute::LuaEngine& engine = call.ctx.host->scripts().engine();
  std::vector<const compute::LibraryInfo*> libs;
  for (const std::string& code : codes) {
    Result<const compute::LibraryInfo*> lib = engine.LoadLibrary(code);
    if (!lib.ok()) return sink.Error(lib.status().message());
    libs.push_back(*lib);
  }
  auto shared = std::make_shared<ReplySink>(std::move(sink));
  cluster::GroupHost* host = call.ctx.host;
  host->RefreshFunctions([host, shared, codes = std::move(codes), replace, flush, reply_name,
                          &engine](const Status& s) {
    if (!s.ok()) return shared->Error(RedisErrorFor(s, /*write=*/false));
    std::vector<const compute::LibraryInfo*> libs;
    for (const std::string& code : codes) {
      Result<const compute::LibraryInfo*> lib = engine.LoadLibrary(code);
      if (!lib.ok()) return shared->Error(lib.status().message());
      libs.push_back(*lib);
    }
    std::map<std::string, std::string> current =
        flush ? std::map<std::string, std::string>{} : host->FunctionLibraries();
    std::vector<std::pair<std::string, std::string>> changes;
    if (flush) {
      for (const auto& [name, code] : host->FunctionLibraries()) changes.emplace_back(name, "");
    }
    for (const compute::LibraryInfo* lib : libs) {
      if (current.contains(lib->name) && !replace) {
        return shared->Error("ERR Library '" + lib->name + "' already exists");
      }
      current.erase(lib->name);
    }
    // Function names are unique across libraries.
    std::set<std::string> taken;
    for (const auto& [name, code] : current) {
      Result<const compute::LibraryInfo*> other = engine.LoadLibrary(code);
      if (!other.ok()) continue;
      for (const compute::FunctionInfo& f : (*other)->functions) taken.insert(f.name);
    }
    for (const compute::LibraryInfo* lib : libs) {
      for (const compute::FunctionInfo& f : lib->functions) {
        if (!taken.insert(f.name).second) {
          return shared->Error("ERR Function " + f.name + " already exists");
        }
      }
    }
    for (const compute::LibraryInfo* lib : libs) {
      std::erase_if(changes, [lib](const auto& c) { return c.first == lib->name; });
      changes.emplace_back(lib->name, lib->code);
    }
    if (changes.empty()) return shared->Ok();
    host->ProposeFunctions(std::move(changes), [shared, reply_name](const Status& s) {
      if (!s.ok()) return shared->Error(RedisErrorFor(s, /*write=*/true));
      if (reply_name) return shared->Bulk(*reply_name);
      shared->Ok();
    });
  });
}

// The libraries as this node knows them after a linearizable read of the meta shard.
void WithLibraries(CommandCall& call, ReplySink sink,
                   std::function<void(const std::map<std::string, std::string>&, ReplySink&)> fn) {
  auto shared = std::make_shared<ReplySink>(std::move(sink));
  cluster::GroupHost* host = call.ctx.host;
  host->RefreshFunctions([host, shared, fn = std::move(fn)](const Status& s) {
    if (!s.ok()) return shared->Error(RedisErrorFor(s, /*write=*/false));
    fn(host->FunctionLibraries(), *shared);
  });
}

}  // namespace

void FCall(CommandCall& call, ReplySink sink) {
  CallFunction(call, std::move(sink), /*read_only=*/false, /*refreshed=*/false);
}

void FCallRo(CommandCall& call, ReplySink sink) {
  CallFunction(call, std::move(sink), /*read_only=*/true, /*refreshed=*/false);
}

void Function(CommandCall& call, ReplySink sink) {
  const std::string sub = Lower(call.argv[1]);
  const size_t n = call.argv.size();
  compute::LuaEngine& engine = call.ctx.host->scripts().engine();
  if (sub == "load") {
    if (n < 3 || n > 4) return SubcommandArity(sink, "function", sub);
    bool replace = false;
    if (n == 4) {
      if (Lower(call.argv[2]) != "replace") {
        return sink.Error("ERR Unknown option given: " + call.argv[2]);
      }
      replace = true;
    }
    const std::string& code = call.argv[n - 1];
    Result<const compute::LibraryInfo*> lib = engine.LoadLibrary(code);
    if (!lib.ok()) return sink.Error(lib.status().message());
    const std::string name = (*lib)->name;
    return StoreLibraries(call, std::move(sink), {code}, replace, false, name);
  }
  if (sub == "delete") {
    if (n != 3) return SubcommandArity(sink, "function", sub);
    std::string lib = call.argv[2];
    cluster::GroupHost* host = call.ctx.host;
    return WithLibraries(call, std::move(sink),
                         [host, lib](const std::map<std::string, std::string>& libs, ReplySink& s) {
                           if (!libs.contains(lib)) return s.Error("ERR Library not found");
                           auto shared = std::make_shared<ReplySink>(std::move(s));
                           host->ProposeFunctions({{lib, ""}}, [shared](const Status& st) {
                             if (!st.ok()) return shared->Error(RedisErrorFor(st, true));
                             shared->Ok();
                           });
                         });
  }
  if (sub == "flush") {
    if (n > 3) return SubcommandArity(sink, "function", sub);
    if (n == 3 && Lower(call.argv[2]) != "sync" && Lower(call.argv[2]) != "async") {
      return sink.Error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
    }
    return StoreLibraries(call, std::move(sink), {}, false, /*flush=*/true, std::nullopt);
  }
  if (sub == "list") {
    bool with_code = false;
    std::optional<std::string> pattern;
    for (size_t i = 2; i < n; ++i) {
      const std::string opt = Lower(call.argv[i]);
      if (opt == "withcode" && !with_code) {
        with_code = true;
      } else if (opt == "libraryname" && i + 1 < n && !pattern) {
        pattern = call.argv[++i];
      } else {
        return sink.Error("ERR Unknown argument " + call.argv[i]);
      }
    }
    return WithLibraries(call, std::move(sink),
                         [&engine, with_code, pattern](
                             const std::map<std::string, std::string>& libs, ReplySink& s) {
                           std::vector<const compute::LibraryInfo*> out;
                           for (const auto& [name, code] : libs) {
                             if (pattern && !kv::redis::GlobMatch(*pattern, name)) continue;
                             Result<const compute::LibraryInfo*> lib = engine.LoadLibrary(code);
                             if (lib.ok()) out.push_back(*lib);
                           }
                           std::string bytes;
                           resp::ReplyWriter w(&bytes, s.protocol());
                           w.ArrayHeader(out.size());
                           for (const compute::LibraryInfo* lib : out) {
                             WriteLibrary(w, *lib, with_code);
                           }
                           s.Send(std::move(bytes));
                         });
  }
  if (sub == "dump") {
    if (n != 2) return SubcommandArity(sink, "function", sub);
    return WithLibraries(call, std::move(sink),
                         [](const std::map<std::string, std::string>& libs, ReplySink& s) {
                           std::string p(kDumpMagic);
                           for (const auto& [name, code] : libs) {
                             PutU32(&p, static_cast<uint32_t>(code.size()));
                             p += code;
                           }
                           PutU32(&p, Crc32c(p));
                           s.Bulk(p);
                         });
  }
  if (sub == "restore") {
    if (n < 3 || n > 4) return SubcommandArity(sink, "function", sub);
    bool replace = false;
    bool flush = false;
    if (n == 4) {
      const std::string policy = Lower(call.argv[3]);
      if (policy == "replace") {
        replace = true;
      } else if (policy == "flush") {
        flush = true;
      } else if (policy != "append") {
        return sink.Error(
            "ERR Wrong restore policy given, value should be either FLUSH, APPEND "
            "or REPLACE.");
      }
    }
    std::optional<std::vector<std::string>> codes = ParseDump(call.argv[2]);
    if (!codes) return sink.Error("ERR DUMP payload version or checksum are wrong");
    return StoreLibraries(call, std::move(sink), std::move(*codes), replace, flush, std::nullopt);
  }
  if (sub == "stats") {
    if (n != 2) return SubcommandArity(sink, "function", sub);
    size_t functions = 0;
    const auto& libs = call.ctx.host->FunctionLibraries();
    for (const auto& [name, code] : libs) {
      Result<const compute::LibraryInfo*> lib = engine.LoadLibrary(code);
      if (lib.ok()) functions += (*lib)->functions.size();
    }
    std::string out;
    resp::ReplyWriter w(&out, sink.protocol());
    w.MapHeader(2);
    w.Bulk("running_script");
    w.Null();
    w.Bulk("engines");
    w.MapHeader(1);
    w.Bulk("LUA");
    w.MapHeader(2);
    w.Bulk("libraries_count");
    w.Integer(static_cast<int64_t>(libs.size()));
    w.Bulk("functions_count");
    w.Integer(static_cast<int64_t>(functions));
    return sink.Send(std::move(out));
  }
  if (sub == "kill") {
    if (n != 2) return SubcommandArity(sink, "function", sub);
    return ScriptKill(call, std::move(sink), /*functions=*/true);
  }
  if (sub == "help" && n == 2) {
    static const char* const kHelp[] = {
        "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "LOAD [REPLACE] <FUNCTION CODE>",
        "DELETE <LIBRARY NAME>",
        "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
        "FLUSH [ASYNC|SYNC]",
        "DUMP",
        "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
        "STATS",
        "KILL",
        "HELP"};
    return SendHelp(sink, kHelp);
  }
  UnknownSubcommand(sink, "function", call.argv[1]);
}

}  // namespace synod::server
