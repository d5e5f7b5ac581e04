// CONFIG: the parameters Synod has, replicated (requirepass) or node-local (see
// docs/commands.md).
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

namespace {

using resp::ReplyWriter;

// ---- CONFIG ----

// Redis's memtoull: digits and an optional unit (b, k, kb, m, mb, g, gb; any case).
bool ParseMemory(std::string_view s, uint64_t* out) {
  size_t digits = 0;
  while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
  if (digits == 0 || digits > 19) return false;
  const std::string unit = Lower(s.substr(digits));
  uint64_t mul = 0;
  if (unit.empty() || unit == "b") mul = 1;
  if (unit == "k") mul = 1000;
  if (unit == "kb") mul = 1024;
  if (unit == "m") mul = 1000 * 1000;
  if (unit == "mb") mul = 1024 * 1024;
  if (unit == "g") mul = 1000ull * 1000 * 1000;
  if (unit == "gb") mul = 1024ull * 1024 * 1024;
  if (mul == 0) return false;
  uint64_t n = 0;  // at most 19 digits: no overflow
  for (size_t i = 0; i < digits; ++i) n = n * 10 + static_cast<uint64_t>(s[i] - '0');
  if (n > UINT64_MAX / mul) return false;
  *out = n * mul;
  return true;
}

// Parses `value` for a node-local parameter and, when opts is not null, stores it there.
// Returns "" or the reason CONFIG SET reports ("argument must be ...").
using ConfigSetter = std::string (*)(const std::string& value, RespOptions* opts);
using ConfigGetter = std::string (*)(ServerContext& ctx);

std::string SetMaxClients(const std::string& value, RespOptions* opts) {
  int64_t n = 0;
  if (!kv::redis::ParseInt64(value, &n)) return "argument couldn't be parsed into an integer";
  if (n < 1 || n > UINT32_MAX) return "argument must be between 1 and 4294967295 inclusive";
  if (opts != nullptr) opts->clients_max = static_cast<size_t>(n);
  return "";
}

std::string SetBusyReplyThreshold(const std::string& value, RespOptions* opts) {
  int64_t n = 0;
  if (!kv::redis::ParseInt64(value, &n)) return "argument couldn't be parsed into an integer";
  if (n < 0) return "argument must be between 0 and 9223372036854775807 inclusive";
  if (opts != nullptr) opts->busy_reply_threshold_ms = n;
  return "";
}

std::string SetProtoMaxBulkLen(const std::string& value, RespOptions* opts) {
  uint64_t n = 0;
  if (!ParseMemory(value, &n)) return "argument must be a memory value";
  if (n < (1u << 20) || n > static_cast<uint64_t>(INT64_MAX)) {
    return "argument must be between 1048576 and 9223372036854775807 inclusive";
  }
  if (opts != nullptr) opts->limits.bulk_bytes_max = n;
  return "";
}

std::vector<std::string> SplitSpaces(const std::string& s) {
  std::vector<std::string> words;
  for (size_t pos = 0; pos < s.size();) {
    const size_t end = std::min(s.find(' ', pos), s.size());
    if (end > pos) words.push_back(s.substr(pos, end - pos));
    pos = end + 1;
  }
  return words;
}

// "normal <hard> <soft> <secs> [replica ...] [pubsub ...]": the normal class's hard limit is
// the per-connection output limit (0: none); the rest is kept for CONFIG GET. Classes not
// given keep their values, as in Redis.
std::string SetOutputLimit(const std::string& value, RespOptions* opts) {
  const std::vector<std::string> words = SplitSpaces(value);
  if (words.empty() || words.size() % 4 != 0) {
    return "Wrong number of arguments in buffer limit configuration.";
  }
  std::map<std::string, std::array<uint64_t, 3>> given;
  for (size_t i = 0; i < words.size(); i += 4) {
    std::string cls = Lower(words[i]);
    if (cls == "replica") cls = "slave";
    if (cls != "normal" && cls != "slave" && cls != "pubsub") {
      return "Invalid client class specified in buffer limit configuration.";
    }
    uint64_t hard = 0, soft = 0;
    int64_t secs = 0;
    if (!ParseMemory(words[i + 1], &hard) || !ParseMemory(words[i + 2], &soft) ||
        !kv::redis::ParseInt64(words[i + 3], &secs) || secs < 0) {
      return "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
    }
    given[cls] = {hard, soft, static_cast<uint64_t>(secs)};
  }
  if (opts == nullptr) return "";
  if (auto it = given.find("normal"); it != given.end()) {
    opts->output_bytes_max = it->second[0] == 0 ? SIZE_MAX : it->second[0];
    opts->output_soft_bytes = it->second[1];
    opts->output_soft_seconds = static_cast<int64_t>(it->second[2]);
  }
  const std::vector<std::string> old = SplitSpaces(opts->output_limit_other_classes);
  std::string others;
  for (size_t i = 0; i + 3 < old.size(); i += 4) {
    auto it = given.find(old[i]);
    const std::string line =
        it == given.end()
            ? fmt::format("{} {} {} {}", old[i], old[i + 1], old[i + 2], old[i + 3])
            : fmt::format("{} {} {} {}", old[i], it->second[0], it->second[1], it->second[2]);
    others += (others.empty() ? "" : " ") + line;
  }
  opts->output_limit_other_classes = others;
  return "";
}

std::string GetOutputLimit(ServerContext& ctx) {
  const RespOptions& o = ctx.server->options();
  const uint64_t hard = o.output_bytes_max == SIZE_MAX ? 0 : o.output_bytes_max;
  return fmt::format("normal {} {} {} {}", hard, o.output_soft_bytes, o.output_soft_seconds,
                     o.output_limit_other_classes);
}

enum class ParamKind {
  kImmutable,   // fixed by Synod's design or its flags
  kLocal,       // this node only, until it restarts
  kReplicated,  // proposed through Raft: every node, and kept across restarts
};

struct ConfigParam {
  const char* name;
  ParamKind kind;
  ConfigGetter get;
  ConfigSetter set;  // kLocal only
};

const std::vector<ConfigParam>& ConfigParams() {
  static const std::vector<ConfigParam> params = {
      {"requirepass", ParamKind::kReplicated,
       [](ServerContext& c) { return std::string(c.password()); }, nullptr},
      {"maxclients", ParamKind::kLocal,
       [](ServerContext& c) { return std::to_string(c.server->options().clients_max); },
       SetMaxClients},
      {"proto-max-bulk-len", ParamKind::kLocal,
       [](ServerContext& c) { return std::to_string(c.server->options().limits.bulk_bytes_max); },
       SetProtoMaxBulkLen},
      {"client-output-buffer-limit", ParamKind::kLocal, GetOutputLimit, SetOutputLimit},
      {"busy-reply-threshold", ParamKind::kLocal,
       [](ServerContext& c) { return std::to_string(c.server->options().busy_reply_threshold_ms); },
       SetBusyReplyThreshold},
      {"lua-time-limit", ParamKind::kLocal,
       [](ServerContext& c) { return std::to_string(c.server->options().busy_reply_threshold_ms); },
       SetBusyReplyThreshold},
      {"save", ParamKind::kImmutable, [](ServerContext&) { return std::string(); }, nullptr},
      {"appendonly", ParamKind::kImmutable, [](ServerContext&) { return std::string("yes"); },
       nullptr},
      {"appendfsync", ParamKind::kImmutable, [](ServerContext&) { return std::string("always"); },
       nullptr},
      {"databases", ParamKind::kImmutable, [](ServerContext&) { return std::string("1"); },
       nullptr},
      {"cluster-enabled", ParamKind::kImmutable, [](ServerContext&) { return std::string("no"); },
       nullptr},
      {"dir", ParamKind::kImmutable, [](ServerContext& c) { return c.data_dir; }, nullptr},
      {"port", ParamKind::kImmutable,
       [](ServerContext& c) { return c.client_address.substr(c.client_address.rfind(':') + 1); },
       nullptr},
      {"bind", ParamKind::kImmutable,
       [](ServerContext& c) { return c.client_address.substr(0, c.client_address.rfind(':')); },
       nullptr},
      {"timeout", ParamKind::kImmutable, [](ServerContext&) { return std::string("0"); }, nullptr},
      {"maxmemory", ParamKind::kImmutable, [](ServerContext&) { return std::string("0"); },
       nullptr},
      {"maxmemory-policy", ParamKind::kImmutable,
       [](ServerContext&) { return std::string("noeviction"); }, nullptr},
  };
  return params;
}

const ConfigParam* FindConfigParam(std::string_view name) {
  const std::string lower = Lower(name);
  for (const ConfigParam& p : ConfigParams()) {
    if (lower == p.name) return &p;
  }
  return nullptr;
}

void ConfigGet(CommandCall& call, ReplySink sink) {
  std::vector<const ConfigParam*> hits;
  for (size_t i = 2; i < call.argv.size(); ++i) {
    const std::string pattern = Lower(call.argv[i]);
    const bool glob = pattern.find_first_of("*?[") != std::string::npos;
    for (const ConfigParam& p : ConfigParams()) {
      const bool match = glob ? kv::redis::GlobMatch(pattern, p.name) : pattern == p.name;
      if (match && std::find(hits.begin(), hits.end(), &p) == hits.end()) hits.push_back(&p);
    }
  }
  std::string out;
  ReplyWriter w(&out, sink.protocol());
  w.MapHeader(hits.size());
  for (const ConfigParam* p : hits) {
    w.Bulk(p->name);
    w.Bulk(p->get(call.ctx));
  }
  sink.Send(std::move(out));
}

// Checks CONFIG SET's parameters as Redis 7 does (unknown names first, then immutable or
// repeated ones, then values). Returns "" or the error to reply.
std::string CheckConfigSet(CommandCall& call,
                           std::vector<std::pair<const ConfigParam*, std::string>>* changes) {
  const std::vector<std::string>& argv = call.argv;
  for (size_t i = 2; i + 1 < argv.size(); i += 2) {
    if (FindConfigParam(argv[i]) == nullptr) {
      return "ERR Unknown option or number of arguments for CONFIG SET - '" + argv[i] + "'";
    }
  }
  auto failed = [](const std::string& name, std::string_view why) {
    return "ERR CONFIG SET failed (possibly related to argument '" + name + "') - " +
           std::string(why);
  };
  for (size_t i = 2; i + 1 < argv.size(); i += 2) {
    const ConfigParam* p = FindConfigParam(argv[i]);
    if (p->kind == ParamKind::kImmutable) return failed(argv[i], "can't set immutable config");
    for (const auto& [seen, value] : *changes) {
      if (seen == p) return failed(argv[i], "duplicate parameter");
    }
    changes->emplace_back(p, argv[i + 1]);
  }
  for (const auto& [p, value] : *changes) {
    if (p->kind != ParamKind::kLocal) continue;
    RespOptions scratch = call.ctx.server->options();
    if (std::string why = p->set(value, &scratch); !why.empty()) return failed(p->name, why);
  }
  return "";
}

// Node-local parameters apply once the replicated ones are applied (or at once without any),
// so that a refused write changes nothing.
void ConfigSet(CommandCall& call, ReplySink sink) {
  if (call.argv.size() % 2 != 0) {
    sink.Error("ERR syntax error");
    return;
  }
  std::vector<std::pair<const ConfigParam*, std::string>> changes;
  if (std::string err = CheckConfigSet(call, &changes); !err.empty()) {
    sink.Error(err);
    return;
  }
  kv::Command cmd;
  cmd.op = kv::Op::kRedis;
  cmd.args.emplace_back(kv::kConfigSetCommand);
  for (const auto& [p, value] : changes) {
    if (p->kind != ParamKind::kReplicated) continue;
    cmd.args.emplace_back(p->name);
    cmd.args.push_back(value);
  }
  auto apply_local = [ctx = &call.ctx, changes](const kv::Reply&, ReplySink& s) {
    for (const auto& [p, value] : changes) {
      if (p->kind == ParamKind::kLocal) p->set(value, &ctx->server->options());
    }
    if (ctx->host != nullptr) {
      ctx->host->scripts().set_busy_threshold_ms(ctx->server->options().busy_reply_threshold_ms);
    }
    s.Ok();
  };
  if (cmd.args.size() == 1) {
    apply_local(kv::Reply::Ok(), sink);
    return;
  }
  cmd.now_ms = env::WallNowMs();
  // Replicated settings live in the meta shard, which every node's clients read them from.
  SubmitWrite(call, cluster::kMetaGroup, std::move(cmd), std::move(sink), std::move(apply_local));
}

}  // namespace

void Config(CommandCall& call, ReplySink sink) {
  const std::string sub = Lower(call.argv[1]);
  const size_t n = call.argv.size();
  if (sub == "get" && n >= 3) {
    ConfigGet(call, std::move(sink));
  } else if (sub == "set" && n >= 4) {
    ConfigSet(call, std::move(sink));
  } else if (sub == "resetstat" && n == 2) {
    const ServerCounters& c = *call.ctx.counters;
    call.ctx.stat_baseline =
        StatBaseline{c.connections_total.load(),    c.commands_total.load(), c.errors_total.load(),
                     c.rejected_connections.load(), c.bytes_in.load(),       c.bytes_out.load()};
    sink.Ok();
  } else if (sub == "rewrite" && n == 2) {
    sink.Error(
        "ERR CONFIG REWRITE is not supported: Synod's configuration is its TOML file and "
        "command-line flags (requirepass is replicated and kept by the cluster itself)");
  } else if (sub == "get" || sub == "set" || sub == "resetstat" || sub == "rewrite") {
    SubcommandArity(sink, "config", sub);
  } else {
    UnknownSubcommand(sink, "config", call.argv[1]);
  }
}

}  // namespace synod::server
