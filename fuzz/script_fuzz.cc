// libFuzzer target for the Lua script engine (src/compute/lua_engine*.cc): arbitrary script
// bodies, keys and arguments, run as EVAL scripts and loaded as function libraries, their
// redis.call commands executed on a Keyspace by kv's Redis executor. Run it with scripts/fuzz.sh.
//
// Input layout: byte 0, the flags: bit 0 the caller's RESP version (2 or 3), bit 1 load the body
// as a library ("#!lua name=f" prepended) and call its first function; then the body up to the
// first NUL byte, then the arguments separated by NULs, the first `byte 0 >> 4` of them keys.
// One engine serves every input (as one node's does), with a 16 MiB memory limit; a run is
// paused at every hook and stopped after 200 of them (about 200,000 instructions).
//
// Checked for every input: no crash, no sanitizer report; the reply is well formed (a known
// type, fields matching it); the engine stays under its limit; and the sandbox holds — after
// the input, a fixed canary script still sees the redis table, the string library and no
// global the input may have tried to leave behind.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/assert.h"
#include "compute/lua_engine.h"
#include "kv/keyspace.h"
#include "kv/redis.h"

// kv's command.cc (the protobuf codec) is not linked: the one function of it the engine uses.
namespace synod::kv {
std::string_view ReplyCodeMessage(ReplyCode) { return "command refused"; }
}  // namespace synod::kv

namespace synod::compute {
namespace {

class KeyspaceCalls : public ScriptCalls {
 public:
  kv::Reply Call(std::vector<std::string>& argv) override {
    if (++calls_ > 1000) return kv::Reply::Err("ERR too many calls in one fuzz input");
    const kv::RedisCommand* cmd = kv::FindRedisCommand(argv[0]);
    if (cmd == nullptr) return kv::Reply::Err("ERR Unknown Redis command called from script");
    const size_t argc = argv.size();
    if ((cmd->arity > 0 && argc != static_cast<size_t>(cmd->arity)) ||
        (cmd->arity < 0 && argc < static_cast<size_t>(-cmd->arity))) {
      return kv::Reply::Err("ERR Wrong number of args calling Redis command from script");
    }
    kv::ExecContext ctx;
    ctx.now_ms = 1'700'000'000'000;
    ctx.value_bytes_max = 1 << 16;
    keys_.set_index(LogIndex(++index_));
    return kv::ExecuteRedis(keys_, argv, ctx);
  }
  void Log(int, std::string_view) override {}

 private:
  kv::Keyspace keys_;
  uint64_t index_ = 0;
  int calls_ = 0;
};

void CheckReply(const kv::Reply& r, int depth) {
  SYNOD_ASSERT(depth < 200);
  SYNOD_ASSERT(static_cast<uint8_t>(r.type) <= kv::kReplyTypeMax);
  switch (r.type) {
    case kv::ReplyType::kStatus:
    case kv::ReplyType::kError:
    case kv::ReplyType::kBulk:
    case kv::ReplyType::kDouble:
    case kv::ReplyType::kBigNumber:
    case kv::ReplyType::kVerbatim:
      SYNOD_ASSERT(r.value.has_value());
      break;
    case kv::ReplyType::kMap:
      SYNOD_ASSERT(r.replies.size() % 2 == 0);
      break;
    default:
      break;
  }
  for (const kv::Reply& sub : r.replies) CheckReply(sub, depth + 1);
}

kv::Reply RunToEnd(LuaRun& run) {
  for (int slices = 0; run.Resume() == LuaRun::State::kPaused; ++slices) {
    if (slices == 200) run.Kill("ERR stopped by the fuzzer");
  }
  return run.TakeResult();
}

LuaEngine& Engine() {
  static std::unique_ptr<LuaEngine> engine = [] {
    auto e = LuaEngine::Create({.memory_max = 16u << 20, .scripts_max = 2000});
    SYNOD_ASSERT(e.ok());
    return std::move(e).value();
  }();
  return *engine;
}

void Canary(LuaEngine& e) {
  static const char* kBody =
      "return type(redis) .. type(redis.call) .. type(string.rep) .. "
      "tostring(rawget(_G, 'leak')) .. type(KEYS)";
  auto sha = e.Load(kBody);
  SYNOD_ASSERT(sha.ok());
  KeyspaceCalls calls;
  auto run = e.Start(*sha, {}, {}, &calls, {});
  const kv::Reply r = RunToEnd(*run);
  if (r.value != "tablefunctionfunctionniltable") {
    std::fprintf(stderr, "canary: %s\n", r.value.value_or("(no value)").c_str());
    SYNOD_ASSERT(false);
  }
}

}  // namespace
}  // namespace synod::compute

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace synod::compute;
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t nul = in.find('\0');
  std::string body(in.substr(0, nul));
  std::vector<std::string> args;
  if (nul != std::string_view::npos) {
    std::string_view rest = in.substr(nul + 1);
    while (!rest.empty() && args.size() < 32) {
      const size_t n = rest.find('\0');
      args.emplace_back(rest.substr(0, n));
      if (n == std::string_view::npos) break;
      rest.remove_prefix(n + 1);
    }
  }
  const size_t nkeys = std::min<size_t>(flags >> 4, args.size());
  std::vector<std::string> keys(args.begin(), args.begin() + static_cast<std::ptrdiff_t>(nkeys));
  args.erase(args.begin(), args.begin() + static_cast<std::ptrdiff_t>(nkeys));
  LuaEngine& e = Engine();
  KeyspaceCalls calls;
  LuaEngine::RunOptions opts;
  opts.caller_protocol = (flags & 1) != 0 ? 3 : 2;
  opts.should_pause = [] { return true; };
  opts.unpausable_hooks_max = 200;
  std::unique_ptr<LuaRun> run;
  if ((flags & 2) != 0) {
    auto lib = e.LoadLibrary("#!lua name=f\n" + body);
    if (lib.ok() && !(*lib)->functions.empty()) {
      run = e.StartFunction(**lib, (*lib)->functions.front(), keys, args, &calls, opts);
    }
  } else {
    auto sha = e.Load(body);
    if (sha.ok()) run = e.Start(*sha, keys, args, &calls, opts);
  }
  if (run) {
    const synod::kv::Reply r = RunToEnd(*run);
    CheckReply(r, 0);
    run.reset();
  }
  SYNOD_ASSERT(e.memory_used() <= (16u << 20));
  Canary(e);
  return 0;
}
