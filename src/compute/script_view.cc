#include "compute/script_view.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "common/slot.h"
#include "kv/redis.h"

namespace synod::compute {

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Server commands Redis refuses inside scripts (flag noscript), and those Synod does too
// (CONFIG, INFO, SELECT, CLUSTER ... are node commands; a script runs on a shard).
bool NotAllowed(std::string_view name) {
  static constexpr std::array<std::string_view, 40> kNames = {
      "multi",        "exec",      "discard",    "watch",       "unwatch",      "eval",
      "evalsha",      "eval_ro",   "evalsha_ro", "script",      "function",     "fcall",
      "fcall_ro",     "subscribe", "psubscribe", "unsubscribe", "punsubscribe", "ssubscribe",
      "sunsubscribe", "publish",   "spublish",   "wait",        "client",       "auth",
      "hello",        "quit",      "config",     "select",      "info",         "cluster",
      "debug",        "shutdown",  "monitor",    "readonly",    "readwrite",    "reset",
      "save",         "bgsave",    "lastsave",   "command"};
  return std::find(kNames.begin(), kNames.end(), name) != kNames.end();
}

kv::Reply Err(std::string_view text) { return kv::Reply::Err(std::string(text)); }

}  // namespace

std::optional<std::string> ScriptView::Touch(const std::string& key) {
  if (seen_index_.contains(key)) return std::nullopt;
  const uint16_t slot = KeySlot(key);
  if (!sm_->Owns(slot)) {
    return "ERR Script attempted to access a non local key in a cluster node";
  }
  const int64_t now = opts_.now_ms;
  const kv::Keyspace& ks = sm_->keyspace();
  if (seen_.empty()) watch_index_ = sm_->applied_index();
  seen_index_.emplace(key, seen_.size());
  seen_.emplace_back(key, ks.VersionOf(key, now));
  if (const kv::Value* v = ks.Find(key, now)) keys_.LoadValue(key, *v);
  slot_min_ = std::min(slot_min_, slot);
  slot_max_ = std::max(slot_max_, slot);
  return std::nullopt;
}

kv::Reply ScriptView::Call(std::vector<std::string>& argv) {
  const std::string name = Lower(argv[0]);
  if (name == "ping") {
    if (argv.size() > 2) return Err("ERR Wrong number of args calling Redis command from script");
    return argv.size() == 2 ? kv::Reply::Bulk(argv[1]) : kv::Reply::Status("PONG");
  }
  if (name == "echo") {
    if (argv.size() != 2) return Err("ERR Wrong number of args calling Redis command from script");
    return kv::Reply::Bulk(argv[1]);
  }
  if (name == "time") {
    if (argv.size() != 1) return Err("ERR Wrong number of args calling Redis command from script");
    const int64_t ms = opts_.now_ms;
    return kv::Reply::Array({kv::Reply::Bulk(std::to_string(ms / 1000)),
                             kv::Reply::Bulk(std::to_string((ms % 1000) * 1000))});
  }
  const kv::RedisCommand* cmd = kv::FindRedisCommand(name);
  if (cmd == nullptr) {
    return Err(NotAllowed(name) ? "ERR This Redis command is not allowed from script"
                                : "ERR Unknown Redis command called from script");
  }
  const size_t argc = argv.size();
  if ((cmd->arity > 0 && argc != static_cast<size_t>(cmd->arity)) ||
      (cmd->arity < 0 && argc < static_cast<size_t>(-cmd->arity))) {
    return Err("ERR Wrong number of args calling Redis command from script");
  }
  const bool write = cmd->write != nullptr;
  if (write && opts_.read_only) {
    return Err("ERR Write commands are not allowed from read-only scripts.");
  }
  if (sm_ == nullptr) return Err("TRYAGAIN the shard's leader changed while the script ran");
  const std::vector<size_t> positions = kv::KeyPositions(*cmd, argc);
  if (positions.empty()) {
    return Err(
        "ERR This Redis command is not allowed from script in Synod: it covers the whole "
        "keyspace, and a script runs on the shard of its keys");
  }
  for (size_t p : positions) {
    if (auto e = Touch(argv[p])) return Err(*e);
  }
  kv::ExecContext ctx = sm_->ReadContext(opts_.now_ms);
  ctx.now_ms = opts_.now_ms;
  ctx.random = opts_.random;
  kv::Reply r = kv::ExecuteRedis(keys_, argv, ctx);
  if (write && r.type != kv::ReplyType::kError) {
    uint64_t bytes = 0;
    for (const std::string& a : argv) bytes += a.size() + 8;
    if (effects_bytes_ + bytes > opts_.effects_bytes_max) {
      return Err("ERR the script's writes exceed " + std::to_string(opts_.effects_bytes_max) +
                 " bytes, the most one script may write");
    }
    effects_bytes_ += bytes;
    effects_.push_back(argv);
  }
  return r;
}

std::vector<std::pair<std::string, LogIndex>> ScriptView::Watches() const { return seen_; }

std::optional<SlotRange> ScriptView::slots() const {
  if (seen_.empty()) return std::nullopt;
  return SlotRange{slot_min_, slot_max_};
}

}  // namespace synod::compute
