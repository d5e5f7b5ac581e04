// EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT (docs/scripting.md).
//
// The node a client talks to checks the arguments, compiles the script into its own cache (so
// SCRIPT EXISTS and EVALSHA know it here, as Redis's cache after EVAL), finds the one shard of
// its keys (CROSSSLOT otherwise) and sends the script with its body to that shard's leader,
// where compute::ScriptRunner runs it (a kScript request through the router, forwarded like a
// write). The answer is the script's reply in the client's protocol.
#include "common/slot.h"
#include "kv/redis.h"
#include "server/command_impl.h"
#include "server/resp_server.h"

namespace synod::server {

namespace {

constexpr char kCrossSlot[] = "CROSSSLOT Keys in request don't hash to the same slot";

bool IsSha(std::string_view s) {
  if (s.size() != 40) return false;
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// EVAL-shaped: argv = {name, script-or-sha, numkeys, keys..., args...}.
void RunScript(CommandCall& call, ReplySink sink, std::string body, bool read_only) {
  int64_t numkeys = 0;
  if (!kv::redis::ParseInt64(call.argv[2], &numkeys)) {
    return sink.Error("ERR value is not an integer or out of range");
  }
  if (numkeys < 0) return sink.Error("ERR Number of keys can't be negative");
  if (static_cast<uint64_t>(numkeys) > call.argv.size() - 3) {
    return sink.Error("ERR Number of keys can't be greater than number of args");
  }
  compute::LuaEngine& engine = call.ctx.host->scripts().engine();
  Result<std::string> sha = engine.Load(body);
  if (!sha.ok()) return sink.Error(sha.status().message());
  const size_t nk = static_cast<size_t>(numkeys);
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
  req.flags = (read_only ? cluster::ShardRequest::kScriptReadOnly : 0) |
              (call.conn.protocol == 3 ? cluster::ShardRequest::kScriptResp3 : 0);
  req.args.reserve(call.argv.size() - 2);
  req.args.push_back(std::move(body));
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
    std::string out;
    resp::ReplyWriter w(&out, sink.protocol());
    w.ArrayHeader(std::size(kHelp));
    for (const char* line : kHelp) w.SimpleString(line);
    return sink.Send(std::move(out));
  }
  UnknownSubcommand(sink, "script", call.argv[1]);
}

}  // namespace synod::server
