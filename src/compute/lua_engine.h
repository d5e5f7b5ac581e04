// LuaEngine: one LuaJIT state that compiles and runs Redis scripts (EVAL) the way Redis 7 does,
// inside a sandbox, in slices that a host can interleave with its other work.
//
// What a script sees is Redis's scripting environment: the base, table, string, math, bit and
// cjson libraries; KEYS and ARGV; the `redis` table (call, pcall, error_reply, status_reply,
// sha1hex, log, setresp, set_repl, replicate_commands, breakpoint, debug, the LOG_* and REPL_*
// constants, REDIS_VERSION); globals protected as in Redis (reading an undefined global or
// creating one from a function is an error). Not there: os, io, require, loadfile, dofile,
// print, string.dump, loading bytecode, and coroutines (a coroutine of the script's own could
// not be paused by the host; docs/scripting.md).
//
// Compiled scripts are cached by their SHA1 (lower-case hex), as Redis's script cache.
//
// Running. Start() makes a LuaRun: a Lua coroutine that calls the script under an error handler
// that records where an error happened (Redis's "script: <sha>, on @user_script:<line>."). Its
// Resume() runs the script until it returns, fails or is paused: every kHookInstructions Lua
// instructions a hook asks the run's `should_pause` (the host's clock against its slice) and,
// when the script is at a point where it can be (not inside a C function such as table.sort's
// comparator), yields. A run that cannot be paused for longer than its `unpausable_ms` is
// stopped with an error. Kill() stops a run at its next hook. The JIT compiler is off: hooks do
// not run inside compiled traces, so an infinite loop could never be stopped; LuaJIT's
// interpreter is still faster than Redis's Lua 5.1.
//
// Memory: every allocation of the state is counted against `memory_max` (Redis has no such
// limit; scripts here share a node with many shards). A script that passes it fails with
// "not enough memory"; the engine itself stays usable.
//
// redis.call and redis.pcall hand the arguments to the run's ScriptCalls (compute/script_run.h:
// the command runs against the script's own view of its keys) and convert its kv::Reply to Lua
// (RESP2, or RESP3 after redis.setresp(3)). The script's return value is converted back to a
// kv::Reply for the caller's protocol, by Redis's rules.
//
// Thread-safety: none. One thread owns an engine and every run it made; runs may be
// interleaved (each Resume sets the run's KEYS, ARGV and protocol).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "kv/command.h"

struct lua_State;
struct lua_Debug;

namespace synod::compute {

// Redis's version as scripts see it (redis.REDIS_VERSION, INFO's redis_version).
inline constexpr char kRedisVersion[] = "7.0.15";
inline constexpr int kRedisVersionNum = 0x0007000f;  // as Redis: major, minor, patch bytes

// What redis.call / redis.pcall / redis.log do for one run.
class ScriptCalls {
 public:
  virtual ~ScriptCalls() = default;
  // Runs one command (argv[0] is its name). An error is a kError reply whose value is Redis's
  // whole text ("ERR ...", "WRONGTYPE ..."); redis.call raises it, redis.pcall returns it.
  virtual kv::Reply Call(std::vector<std::string>& argv) = 0;
  // redis.log(level, message): level 0 debug, 1 verbose, 2 notice, 3 warning.
  virtual void Log(int level, std::string_view message) = 0;
};

struct LuaEngineOptions {
  // Bytes the Lua state may hold (scripts, their data, the cache). Default 64 MiB.
  size_t memory_max = 64ull << 20;
  // Compiled scripts kept; the cache is flushed whole when full (Redis keeps them all until
  // SCRIPT FLUSH; a bound keeps a client that sends unique scripts from filling memory).
  size_t scripts_max = 10'000;
};

class LuaEngine;

// A function of a library (FUNCTION LOAD): its name, description and flags.
struct FunctionInfo {
  std::string name;
  std::optional<std::string> description;
  std::vector<std::string> flags;  // as given: no-writes, allow-oom, allow-stale, no-cluster...
  bool no_writes = false;
  int ref = -2;  // the callback, in the registry
};

// A library: "#!lua name=<name>" and the functions its code registered when run once.
struct LibraryInfo {
  std::string name;
  std::string code;
  std::string sha;  // of the code: the cache's key
  std::vector<FunctionInfo> functions;
  const FunctionInfo* Find(std::string_view fname) const {
    for (const FunctionInfo& f : functions) {
      if (f.name == fname) return &f;
    }
    return nullptr;
  }
};

// EVAL's optional first line, "#!lua [flags=f1,f2]" (Redis 7): whether the script declared
// no-writes, or Redis's error text for a bad one.
struct ScriptShebang {
  bool present = false;
  bool no_writes = false;
};
Result<ScriptShebang> ParseScriptShebang(std::string_view body);
// The script as compiled: its shebang line, if any, emptied (line numbers stay).
std::string CompilableScript(std::string_view body);

class LuaRun {
 public:
  enum class State : uint8_t { kPaused, kDone };
  ~LuaRun();
  LuaRun(const LuaRun&) = delete;
  LuaRun& operator=(const LuaRun&) = delete;

  // Runs until the script returns or fails (kDone: result() holds its reply, an error reply
  // when it failed) or pauses (kPaused: call Resume again later).
  State Resume();
  // Stops the run at its next hook: it ends with `message` as its error reply.
  void Kill(std::string message);
  // The script's reply (valid once done), in the caller's protocol.
  const kv::Reply& result() const { return result_; }
  kv::Reply TakeResult() { return std::move(result_); }
  bool done() const { return done_; }

  const std::string& chunk() const { return chunk_; }
  // For the redis.* functions (lua_engine.cc).
  ScriptCalls* calls() const { return calls_; }
  int lua_protocol() const { return lua_protocol_; }
  void set_lua_protocol(int p) { lua_protocol_ = p; }
  // redis.call raised `text`: the error handler takes it as it is (not as "ERR " + text).
  void NoteCallError(std::string text) { call_error_ = std::move(text); }
  bool TakeCallError(const std::string& text);

 private:
  friend class LuaEngine;
  LuaRun() = default;
  void Finish(int status);

  LuaEngine* engine_ = nullptr;
  lua_State* thread_ = nullptr;
  int nargs_ = 2;        // what the first resume hands xpcall besides itself
  int thread_ref_ = -2;  // LUA_NOREF
  int keys_ref_ = -2;
  int argv_ref_ = -2;
  std::string sha_;                     // what errors name: the script's SHA1, or the function
  std::string chunk_ = "@user_script";  // its chunk (where errors without a frame point)
  ScriptCalls* calls_ = nullptr;
  std::function<bool()> should_pause_;
  int64_t unpausable_hooks_max_ = 0;
  int64_t unpausable_hooks_ = 0;
  int caller_protocol_ = 2;
  int lua_protocol_ = 2;  // redis.setresp
  bool started_ = false;
  bool annotate_errors_ = true;  // " script: <name>, on <chunk>:<line>." on errors
  bool done_ = false;
  bool killed_ = false;
  std::string kill_message_;
  std::optional<std::string> call_error_;
  kv::Reply result_;
};

class LuaEngine {
 public:
  static Result<std::unique_ptr<LuaEngine>> Create(LuaEngineOptions opts = {});
  ~LuaEngine();
  LuaEngine(const LuaEngine&) = delete;
  LuaEngine& operator=(const LuaEngine&) = delete;

  // Compiles `body` and caches it under its SHA1, which it returns (a script already cached
  // is not compiled again). A syntax error is kInvalidArgument with Redis's text ("Error
  // compiling script (new function): user_script:1: ...").
  Result<std::string> Load(std::string_view body);
  bool Has(std::string_view sha) const { return scripts_.contains(std::string(sha)); }
  // The body of a cached script, or nullptr.
  const std::string* Body(std::string_view sha) const;
  // SCRIPT FLUSH. REQUIRES: no run in progress.
  void Flush();
  size_t script_count() const { return scripts_.size(); }
  size_t memory_used() const { return used_; }

  struct RunOptions {
    int caller_protocol = 2;  // the client's RESP version: the reply's conversion
    // Asked every kHookInstructions instructions: whether to pause now. Empty: never.
    std::function<bool()> should_pause;
    // Hooks in a row at which should_pause wanted a pause the script could not take (it was
    // inside a C function) before the run is stopped with an error. 0: never stopped.
    int64_t unpausable_hooks_max = 0;
  };
  // A run of the cached script `sha` (REQUIRES: Has(sha)) with these KEYS and ARGV.
  std::unique_ptr<LuaRun> Start(std::string_view sha, std::vector<std::string> keys,
                                std::vector<std::string> args, ScriptCalls* calls, RunOptions opts);

  // FUNCTION LOAD's work: checks the library's metadata, compiles its code and runs it once,
  // collecting what it registers (redis.register_function; no redis.call then). Cached by the
  // code's SHA1. Errors are kInvalidArgument with Redis's texts ("ERR Missing library
  // metadata", "ERR Error registering functions: ...").
  Result<const LibraryInfo*> LoadLibrary(std::string_view code);
  // A run of function `f` of a library LoadLibrary returned: f(keys, args).
  std::unique_ptr<LuaRun> StartFunction(const LibraryInfo& lib, const FunctionInfo& f,
                                        std::vector<std::string> keys,
                                        std::vector<std::string> args, ScriptCalls* calls,
                                        RunOptions opts);
  size_t library_count() const { return libraries_.size(); }
  // A library LoadLibrary cached, by its code's SHA1; nullptr when not (or no longer) there.
  const LibraryInfo* FindLibrary(std::string_view sha) const {
    auto it = libraries_.find(std::string(sha));
    return it == libraries_.end() ? nullptr : it->second.get();
  }

  // Instructions between two hooks.
  static constexpr int kHookInstructions = 1000;

  // The run being resumed (nullptr between resumes).
  LuaRun* current_run() const { return current_; }
  // A library's code runs now (LoadLibrary).
  bool loading() const { return loading_ != nullptr; }

 private:
  friend class LuaRun;
  LuaEngine() = default;
  Status Init();
  static void* Alloc(void* ud, void* ptr, size_t old_size, size_t new_size);
  static void Hook(lua_State* L, ::lua_Debug* ar);
  // The pieces of the sandbox (lua_engine_lib.cc).
  void OpenLibraries();
  void RegisterRedisApi();
  void ProtectGlobals();
  bool CanYield(lua_State* L);

  LuaEngineOptions opts_;
  lua_State* L_ = nullptr;
  size_t used_ = 0;
  size_t limit_ = 0;  // 0 while setting up: no limit
  int error_handler_ref_ = -2;
  int pcall_ref_ = -2;
  int xpcall_ref_ = -2;
  struct Script {
    std::string body;
    int function_ref = -2;
  };
  std::unordered_map<std::string, Script> scripts_;
  std::unordered_map<std::string_view, std::string> sha_by_body_;  // views of scripts_' bodies
  std::unordered_map<std::string, std::unique_ptr<LibraryInfo>> libraries_;
  std::unordered_map<std::string_view, const LibraryInfo*> library_by_code_;  // views of code
  LibraryInfo* loading_ = nullptr;  // the library whose code runs now (register_function)
  int load_redis_ref_ = -2;         // the redis table a library's code sees while it loads
  std::unique_ptr<LuaRun> StartRun(int function_ref, std::string name,
                                   std::vector<std::string> keys, std::vector<std::string> args,
                                   ScriptCalls* calls, RunOptions opts, bool as_function);
  friend int RegisterFunction(lua_State* L);
  LuaRun* current_ = nullptr;  // the run being resumed
};

// __newindex of the sandbox's read-only tables: "Attempt to modify a readonly table".
int ReadonlyNewIndex(lua_State* L);
// __index of the globals' proxies (upvalue 1: the real globals): the global, or Redis's
// "Script attempted to access nonexistent global variable" error.
int GlobalsIndex(lua_State* L);

// The engine a Lua state belongs to (the redis.* functions find their run through it).
LuaEngine* EngineOf(lua_State* L);

// SHA1 of `data` as 40 lower-case hex digits (OpenSSL).
std::string Sha1Hex(std::string_view data);

// Conversions (lua_engine_convert.cc), exposed for tests: a reply pushed onto L as
// redis.call returns it in `protocol` (2 or 3), and the value at the top of L as the reply a
// caller of `protocol` gets (Redis's rules; nested tables bounded in depth).
void PushReply(lua_State* L, const kv::Reply& r, int protocol);
kv::Reply ToReply(lua_State* L, int caller_protocol);

}  // namespace synod::compute
