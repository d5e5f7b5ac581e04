// LuaEngine and LuaRun: the state, the sandbox, compiling and running in slices. See
// lua_engine.h; the conversions are in lua_engine_convert.cc.
#include "compute/lua_engine.h"

#include <openssl/evp.h>

#include <cstdlib>
#include <cstring>
#include <lua.hpp>

#include "common/assert.h"

extern "C" int luaopen_cjson(lua_State* L);

namespace synod::compute {

kv::Reply ToReplyWithLuaProtocol(lua_State* L, int caller_protocol, int lua_protocol);

namespace {

// Registry keys (addresses of these are unique).
char kEngineKey;
char kReadonlyKey;
char kProxyKey;  // the globals proxy scripts see as _G

std::string Hex(const unsigned char* d, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[d[i] >> 4];
    out[2 * i + 1] = digits[d[i] & 0xf];
  }
  return out;
}

std::string LuaString(lua_State* L, int idx) {
  size_t len = 0;
  const char* s = lua_tolstring(L, idx, &len);
  return s == nullptr ? std::string() : std::string(s, len);
}

// Whether the table at idx is one of the read-only proxies.
bool IsReadonly(lua_State* L, int idx) {
  if (lua_type(L, idx) != LUA_TTABLE) return false;
  idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
  lua_pushlightuserdata(L, &kReadonlyKey);
  lua_rawget(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, idx);
  lua_rawget(L, -2);
  const bool ro = lua_toboolean(L, -1) != 0;
  lua_pop(L, 2);
  return ro;
}

int SafeRawset(lua_State* L) {
  if (IsReadonly(L, 1)) {
    lua_pushstring(L, "Attempt to modify a readonly table");
    return lua_error(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkany(L, 2);
  luaL_checkany(L, 3);
  lua_settop(L, 3);
  lua_rawset(L, 1);
  return 1;
}

// setmetatable, refusing the read-only tables.
int SafeSetmetatable(lua_State* L) {
  if (IsReadonly(L, 1)) {
    lua_pushstring(L, "Attempt to modify a readonly table");
    return lua_error(L);
  }
  const int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));  // the real setmetatable
  lua_insert(L, 1);
  lua_call(L, n, 1);
  return 1;
}

// loadstring / load: no bytecode, and the chunk sees the proxy as its globals.
int SafeLoad(lua_State* L) {
  if (lua_type(L, 1) == LUA_TSTRING) {
    size_t len = 0;
    const char* s = lua_tolstring(L, 1, &len);
    if (len > 0 && s[0] == LUA_SIGNATURE[0]) {
      lua_pushnil(L);
      lua_pushstring(L, "loading bytecode is not allowed in scripts");
      return 2;
    }
  } else if (!lua_isnoneornil(L, 1)) {
    // load(function): not offered (the reader could hand in bytecode piecewise).
    lua_pushnil(L);
    lua_pushstring(L, "load accepts only a string in scripts");
    return 2;
  }
  const int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));  // the real loadstring
  lua_insert(L, 1);
  lua_call(L, n, 2);
  if (lua_isfunction(L, -2)) {
    lua_pushvalue(L, -2);
    lua_pushlightuserdata(L, &kProxyKey);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setfenv(L, -2);
    lua_pop(L, 1);
  }
  return 2;
}

// The handler every script runs under (xpcall): the error as Redis's table {err, source, line}.
// Level 1 is the function that raised (a C function like error or redis.call: then the Lua
// function that called it, level 2).
int ErrorHandler(lua_State* L) {
  LuaEngine* engine = EngineOf(L);
  // The innermost Lua function: where the error was raised, or what called the C function
  // that raised it (error, redis.call).
  lua_Debug ar;
  bool where = false;
  for (int level = 0; level < 8 && lua_getstack(L, level, &ar) != 0; ++level) {
    lua_getinfo(L, "Sl", &ar);
    if (std::strcmp(ar.what, "C") != 0) {
      where = true;
      break;
    }
  }
  std::string source;
  int line = 0;
  if (where) {
    source = ar.source;
    line = ar.currentline;
  } else {
    // `return redis.call(...)` is a tail call: LuaJIT keeps no frame of the script's function
    // then. Its chunk and first line stand in (docs/scripting.md).
    LuaRun* run = engine == nullptr ? nullptr : engine->current_run();
    source = run != nullptr ? run->chunk() : "@user_script";
    line = 1;
  }
  if (!lua_istable(L, 1)) {
    std::string text =
        lua_isstring(L, 1) ? LuaString(L, 1) : (lua_isnil(L, 1) ? "nil" : luaL_typename(L, 1));
    // redis.call's error is its reply's text as it is; any other is an ERR.
    LuaRun* run = engine == nullptr ? nullptr : engine->current_run();
    if (run == nullptr || !run->TakeCallError(text)) text = "ERR " + text;
    lua_settop(L, 0);
    lua_createtable(L, 0, 3);
    lua_pushlstring(L, text.data(), text.size());
    lua_setfield(L, -2, "err");
  } else {
    lua_settop(L, 1);
  }
  // Raw: the error may be the script's own table, whose metamethods must not run here.
  lua_pushliteral(L, "source");
  lua_pushlstring(L, source.data(), source.size());
  lua_rawset(L, -3);
  lua_pushliteral(L, "line");
  lua_pushinteger(L, line);
  lua_rawset(L, -3);
  return 1;
}

}  // namespace

// __newindex of the read-only tables (their proxies'), shared with lua_engine_functions.cc.
int ReadonlyNewIndex(lua_State* L) {
  lua_pushstring(L, "Attempt to modify a readonly table");
  luaL_where(L, 1);
  lua_insert(L, -2);
  lua_concat(L, 2);
  return lua_error(L);
}

// __index of the globals proxy: the real global, or Redis's error for one that does not exist.
int GlobalsIndex(lua_State* L) {
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  if (!lua_isnil(L, -1)) return 1;
  lua_pop(L, 1);
  const char* name = lua_tostring(L, 2);
  return luaL_error(L, "Script attempted to access nonexistent global variable '%s'",
                    name == nullptr ? "?" : name);
}

LuaEngine* EngineOf(lua_State* L) {
  lua_pushlightuserdata(L, &kEngineKey);
  lua_rawget(L, LUA_REGISTRYINDEX);
  auto* e = static_cast<LuaEngine*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  return e;
}

std::string Sha1Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const int ok = EVP_Digest(data.data(), data.size(), md, &len, EVP_sha1(), nullptr);
  SYNOD_ASSERT(ok == 1);
  return Hex(md, len);
}

// ---- the redis table ----

namespace {

int GenericCall(lua_State* L, bool raise) {
  LuaEngine* engine = EngineOf(L);
  LuaRun* run = engine == nullptr ? nullptr : engine->current_run();
  const int argc = lua_gettop(L);
  std::string error;
  std::vector<std::string> argv;
  if (run == nullptr || run->calls() == nullptr) {
    error = "ERR redis.call is only available while a script runs";
  } else if (argc == 0) {
    error = "ERR Please specify at least one argument for this redis lib call";
  } else {
    argv.reserve(static_cast<size_t>(argc));
    for (int i = 1; i <= argc; ++i) {
      const int t = lua_type(L, i);
      if (t != LUA_TSTRING && t != LUA_TNUMBER) {
        error = "ERR Lua redis lib command arguments must be strings or integers";
        break;
      }
      argv.push_back(LuaString(L, i));
    }
  }
  kv::Reply reply;
  if (error.empty()) reply = run->calls()->Call(argv);
  if (!error.empty()) reply = kv::Reply::Err(error);
  if (reply.type == kv::ReplyType::kError && raise) {
    const std::string text = reply.value.value_or("ERR");
    run->NoteCallError(text);
    lua_pushlstring(L, text.data(), text.size());
    return lua_error(L);
  }
  PushReply(L, reply, run == nullptr ? 2 : run->lua_protocol());
  return 1;
}

// Redis's luaPushErrorBuff: "-CODE msg" or "msg" (code ERR), trailing newlines trimmed.
std::string ErrorReplyText(std::string err) {
  if (err.empty() || err[0] != '-') err = "-" + err;
  std::string code = "ERR";
  std::string msg;
  const size_t sp = err.find(' ');
  if (sp == std::string::npos) {
    msg = err.substr(1);
  } else {
    code = err.substr(1, sp - 1);
    msg = err.substr(sp + 1);
  }
  while (!msg.empty() && (msg.back() == '\r' || msg.back() == '\n')) msg.pop_back();
  return code + " " + msg;
}

int RedisErrorReply(lua_State* L) {
  lua_createtable(L, 0, 1);
  if (lua_gettop(L) != 2 || lua_type(L, 1) != LUA_TSTRING) {
    lua_pushstring(L, "ERR wrong number or type of arguments");
  } else {
    const std::string text = ErrorReplyText(LuaString(L, 1));
    lua_pushlstring(L, text.data(), text.size());
  }
  lua_setfield(L, -2, "err");
  return 1;
}

int RedisStatusReply(lua_State* L) {
  if (lua_gettop(L) != 1 || lua_type(L, 1) != LUA_TSTRING) {
    lua_createtable(L, 0, 1);
    lua_pushstring(L, "ERR wrong number or type of arguments");
    lua_setfield(L, -2, "err");
    return 1;
  }
  lua_createtable(L, 0, 1);
  lua_pushvalue(L, 1);
  lua_setfield(L, -2, "ok");
  return 1;
}

int RedisSha1Hex(lua_State* L) {
  if (lua_gettop(L) != 1) return luaL_error(L, "wrong number of arguments");
  size_t len = 0;
  const char* s = lua_tolstring(L, 1, &len);
  const std::string hex = Sha1Hex(std::string_view(s == nullptr ? "" : s, s ? len : 0));
  lua_pushlstring(L, hex.data(), hex.size());
  return 1;
}

int RedisSetRepl(lua_State* L) {
  if (lua_gettop(L) != 1) return luaL_error(L, "redis.set_repl() requires one argument.");
  const lua_Number flags = lua_tonumber(L, 1);
  if (!(flags >= 0 && flags <= 3)) {
    return luaL_error(L,
                      "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or "
                      "REPL_NONE.");
  }
  return 0;  // effects are always replicated whole (docs/scripting.md)
}

int RedisTrue(lua_State* L) {
  lua_pushboolean(L, 1);
  return 1;
}

int RedisFalse(lua_State* L) {
  lua_pushboolean(L, 0);
  return 1;
}

int RedisNothing(lua_State*) { return 0; }

}  // namespace

int RedisCall(lua_State* L) { return GenericCall(L, true); }
int RedisPCall(lua_State* L) { return GenericCall(L, false); }

int RedisLog(lua_State* L) {
  const int argc = lua_gettop(L);
  if (argc < 2) return luaL_error(L, "redis.log() requires two arguments or more.");
  if (lua_type(L, 1) != LUA_TNUMBER) return luaL_error(L, "First argument must be a number");
  const lua_Number level = lua_tonumber(L, 1);
  if (!(level >= 0 && level <= 3)) return luaL_error(L, "Invalid debug level.");  // NaN too
  std::string msg;
  for (int i = 2; i <= argc; ++i) {
    if (i > 2) msg.push_back(' ');
    msg += LuaString(L, i);
  }
  LuaEngine* engine = EngineOf(L);
  LuaRun* run = engine == nullptr ? nullptr : engine->current_run();
  if (run != nullptr && run->calls() != nullptr) run->calls()->Log(static_cast<int>(level), msg);
  return 0;
}

int RedisSetResp(lua_State* L) {
  if (lua_gettop(L) != 1) return luaL_error(L, "redis.setresp() requires one argument.");
  // Compared as a number: a huge or NaN one must not be cast (regression: the script fuzzer).
  const lua_Number n = lua_tonumber(L, 1);
  if (n != 2 && n != 3) return luaL_error(L, "RESP version must be 2 or 3.");
  const int v = n == 2 ? 2 : 3;
  LuaEngine* engine = EngineOf(L);
  LuaRun* run = engine == nullptr ? nullptr : engine->current_run();
  if (run != nullptr) run->set_lua_protocol(v);
  return 0;
}

// ---- the engine ----

void* LuaEngine::Alloc(void* ud, void* ptr, size_t old_size, size_t new_size) {
  auto* e = static_cast<LuaEngine*>(ud);
  if (ptr == nullptr) old_size = 0;
  if (new_size == 0) {
    e->used_ -= old_size;
    std::free(ptr);
    return nullptr;
  }
  if (e->limit_ != 0 && new_size > old_size && e->used_ - old_size + new_size > e->limit_) {
    return nullptr;  // Lua raises "not enough memory"
  }
  void* p = std::realloc(ptr, new_size);
  if (p == nullptr) return nullptr;
  e->used_ = e->used_ - old_size + new_size;
  return p;
}

Result<std::unique_ptr<LuaEngine>> LuaEngine::Create(LuaEngineOptions opts) {
  std::unique_ptr<LuaEngine> e(new LuaEngine());
  e->opts_ = opts;
  SYNOD_RETURN_IF_ERROR(e->Init());
  return e;
}

LuaEngine::~LuaEngine() {
  if (L_ != nullptr) lua_close(L_);
}

Status LuaEngine::Init() {
  L_ = lua_newstate(&LuaEngine::Alloc, this);
  if (L_ == nullptr) return Status(Code::kResourceExhausted, "cannot create a Lua state");
  // Interpreter only: hooks do not run in compiled traces (see the header).
  luaJIT_setmode(L_, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
  lua_pushlightuserdata(L_, &kEngineKey);
  lua_pushlightuserdata(L_, this);
  lua_rawset(L_, LUA_REGISTRYINDEX);
  OpenLibraries();
  RegisterRedisApi();
  ProtectGlobals();
  lua_sethook(L_, &LuaEngine::Hook, LUA_MASKCOUNT, kHookInstructions);
  lua_gc(L_, LUA_GCCOLLECT, 0);
  limit_ = opts_.memory_max;
  if (used_ >= limit_) {
    return Status(Code::kInvalidArgument, "the script memory limit is below what Lua needs");
  }
  return Status::Ok();
}

void LuaEngine::OpenLibraries() {
  lua_State* L = L_;
  const std::pair<const char*, lua_CFunction> libs[] = {
      {"", luaopen_base},
      {LUA_TABLIBNAME, luaopen_table},
      {LUA_STRLIBNAME, luaopen_string},
      {LUA_MATHLIBNAME, luaopen_math},
      {LUA_DBLIBNAME, luaopen_debug},
      {LUA_BITLIBNAME, luaopen_bit},
  };
  for (const auto& [name, fn] : libs) {
    lua_pushcfunction(L, fn);
    lua_pushstring(L, name);
    lua_call(L, 1, 0);
  }
  lua_pushcfunction(L, luaopen_cjson);
  lua_call(L, 0, 1);
  lua_setglobal(L, "cjson");
  // The error handler and the runner every run starts from: xpcall(f, handler).
  lua_pushcfunction(L, ErrorHandler);
  error_handler_ref_ = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getglobal(L, "pcall");
  pcall_ref_ = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getglobal(L, "xpcall");
  xpcall_ref_ = luaL_ref(L, LUA_REGISTRYINDEX);
  // The real setmetatable and loadstring, wrapped.
  lua_getglobal(L, "setmetatable");
  lua_pushcclosure(L, SafeSetmetatable, 1);
  lua_setglobal(L, "setmetatable");
  lua_getglobal(L, "loadstring");
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, SafeLoad, 1);
  lua_setglobal(L, "loadstring");
  lua_pushcclosure(L, SafeLoad, 1);
  lua_setglobal(L, "load");
  lua_pushcfunction(L, SafeRawset);
  lua_setglobal(L, "rawset");
  // string.dump makes bytecode: there is nothing to load it with, but no reason to offer it.
  lua_getglobal(L, "string");
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  lua_pop(L, 1);
  // Everything not on Redis's list goes (os, io, package, require, loadfile, dofile, print,
  // setfenv, debug, newproxy, module, coroutine, jit, _VERSION ...).
  static const char* const kKeep[] = {"string",         "cjson",        "bit",      "math",
                                      "table",          "xpcall",       "tostring", "setmetatable",
                                      "next",           "assert",       "tonumber", "rawequal",
                                      "collectgarbage", "getmetatable", "rawset",   "rawget",
                                      "pcall",          "type",         "_G",       "select",
                                      "unpack",         "gcinfo",       "pairs",    "loadstring",
                                      "load",           "ipairs",       "error",    nullptr};
  std::vector<std::string> drop;
  lua_pushnil(L);
  while (lua_next(L, LUA_GLOBALSINDEX) != 0) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) continue;
    const std::string name = LuaString(L, -1);
    bool keep = false;
    for (const char* const* k = kKeep; *k != nullptr; ++k) keep = keep || name == *k;
    if (!keep) drop.push_back(name);
  }
  for (const std::string& name : drop) {
    lua_pushnil(L);
    lua_setglobal(L, name.c_str());
  }
  // The string metatable is not for scripts to change ("x":rep reaches the real library).
  lua_pushliteral(L, "");
  if (lua_getmetatable(L, -1) != 0) {
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

void LuaEngine::RegisterRedisApi() {
  lua_State* L = L_;
  lua_newtable(L);
  const std::pair<const char*, lua_CFunction> fns[] = {
      {"call", RedisCall},
      {"pcall", RedisPCall},
      {"error_reply", RedisErrorReply},
      {"status_reply", RedisStatusReply},
      {"sha1hex", RedisSha1Hex},
      {"log", RedisLog},
      {"setresp", RedisSetResp},
      {"set_repl", RedisSetRepl},
      {"replicate_commands", RedisTrue},
      {"breakpoint", RedisFalse},
      {"debug", RedisNothing},
  };
  for (const auto& [name, fn] : fns) {
    lua_pushcfunction(L, fn);
    lua_setfield(L, -2, name);
  }
  const std::pair<const char*, int> consts[] = {
      {"LOG_DEBUG", 0},  {"LOG_VERBOSE", 1},
      {"LOG_NOTICE", 2}, {"LOG_WARNING", 3},
      {"REPL_NONE", 0},  {"REPL_AOF", 1},
      {"REPL_SLAVE", 2}, {"REPL_REPLICA", 2},
      {"REPL_ALL", 3},   {"REDIS_VERSION_NUM", kRedisVersionNum},
  };
  for (const auto& [name, v] : consts) {
    lua_pushinteger(L, v);
    lua_setfield(L, -2, name);
  }
  lua_pushstring(L, kRedisVersion);
  lua_setfield(L, -2, "REDIS_VERSION");
  lua_setglobal(L, "redis");
}

// Scripts see the globals and the libraries through read-only proxies: an empty table whose
// __index is the real one, whose __newindex refuses, and whose metatable cannot be read or
// changed. So no script changes what the next one sees (Redis 7's read-only tables).
void LuaEngine::ProtectGlobals() {
  lua_State* L = L_;
  lua_pushlightuserdata(L, &kReadonlyKey);
  lua_newtable(L);
  lua_rawset(L, LUA_REGISTRYINDEX);
  auto make_proxy = [L](bool globals) {
    // The real table is at the top; it is replaced by its proxy.
    lua_newtable(L);           // proxy
    lua_createtable(L, 0, 3);  // its metatable
    lua_pushvalue(L, -3);
    if (globals) {
      lua_pushcclosure(L, GlobalsIndex, 1);
    }
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ReadonlyNewIndex);
    lua_setfield(L, -2, "__newindex");
    lua_newtable(L);  // what getmetatable shows (Redis shows an empty table too)
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_remove(L, -2);
    // Remember it as read-only.
    lua_pushlightuserdata(L, &kReadonlyKey);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
  };
  for (const char* lib : {"string", "cjson", "bit", "math", "table", "redis"}) {
    lua_getglobal(L, lib);
    make_proxy(false);
    lua_setglobal(L, lib);
  }
  lua_pushvalue(L, LUA_GLOBALSINDEX);
  make_proxy(true);
  lua_pushlightuserdata(L, &kProxyKey);
  lua_pushvalue(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
  lua_setglobal(L, "_G");  // real _G.~ = the proxy: what scripts get for _G
}

Result<std::string> LuaEngine::Load(std::string_view body) {
  // A body seen before is found without hashing it again (every EVAL, EVALSHA and every run
  // on a leader loads its body).
  if (auto it = sha_by_body_.find(body); it != sha_by_body_.end()) return it->second;
  std::string sha = Sha1Hex(body);
  if (scripts_.contains(sha)) return sha;
  if (scripts_.size() >= opts_.scripts_max) Flush();
  lua_State* L = L_;
  if (!body.empty() && body[0] == LUA_SIGNATURE[0]) {
    return Status(Code::kInvalidArgument,
                  "ERR Error compiling script (new function): user_script:1: loading bytecode "
                  "is not allowed");
  }
  Result<ScriptShebang> shebang = ParseScriptShebang(body);
  if (!shebang.ok()) return shebang.status();
  const std::string compiled = CompilableScript(body);
  const int rc = luaL_loadbuffer(L, compiled.data(), compiled.size(), "@user_script");
  if (rc != 0) {
    std::string msg = LuaString(L, -1);
    lua_pop(L, 1);
    if (rc == LUA_ERRMEM) msg = "not enough memory";
    return Status(Code::kInvalidArgument, "ERR Error compiling script (new function): " + msg);
  }
  lua_pushlightuserdata(L, &kProxyKey);
  lua_rawget(L, LUA_REGISTRYINDEX);
  lua_setfenv(L, -2);
  Script s;
  s.body = std::string(body);
  s.function_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  auto [it, inserted] = scripts_.emplace(sha, std::move(s));
  SYNOD_ASSERT(inserted);
  sha_by_body_.emplace(it->second.body, sha);  // a view of the stored body: stable in its node
  return sha;
}

const std::string* LuaEngine::Body(std::string_view sha) const {
  auto it = scripts_.find(std::string(sha));
  return it == scripts_.end() ? nullptr : &it->second.body;
}

void LuaEngine::Flush() {
  for (auto& [sha, s] : scripts_) luaL_unref(L_, LUA_REGISTRYINDEX, s.function_ref);
  scripts_.clear();
  sha_by_body_.clear();
  lua_gc(L_, LUA_GCCOLLECT, 0);
}

std::unique_ptr<LuaRun> LuaEngine::Start(std::string_view sha, std::vector<std::string> keys,
                                         std::vector<std::string> args, ScriptCalls* calls,
                                         RunOptions opts) {
  auto it = scripts_.find(std::string(sha));
  SYNOD_ASSERT(it != scripts_.end());
  return StartRun(it->second.function_ref, std::string(sha), std::move(keys), std::move(args),
                  calls, std::move(opts), /*as_function=*/false);
}

std::unique_ptr<LuaRun> LuaEngine::StartFunction(const LibraryInfo& lib, const FunctionInfo& f,
                                                 std::vector<std::string> keys,
                                                 std::vector<std::string> args, ScriptCalls* calls,
                                                 RunOptions opts) {
  (void)lib;
  return StartRun(f.ref, f.name, std::move(keys), std::move(args), calls, std::move(opts),
                  /*as_function=*/true);
}

std::unique_ptr<LuaRun> LuaEngine::StartRun(int function_ref, std::string name,
                                            std::vector<std::string> keys,
                                            std::vector<std::string> args, ScriptCalls* calls,
                                            RunOptions opts, bool as_function) {
  lua_State* L = L_;
  std::unique_ptr<LuaRun> run(new LuaRun());
  run->engine_ = this;
  run->sha_ = std::move(name);
  run->chunk_ = as_function ? "@user_function" : "@user_script";
  run->calls_ = calls;
  run->caller_protocol_ = opts.caller_protocol;
  run->should_pause_ = std::move(opts.should_pause);
  run->unpausable_hooks_max_ = opts.unpausable_hooks_max;
  run->thread_ = lua_newthread(L);
  run->thread_ref_ = luaL_ref(L, LUA_REGISTRYINDEX);
  auto make_table = [L](const std::vector<std::string>& v) {
    lua_createtable(L, static_cast<int>(v.size()), 0);
    int i = 1;
    for (const std::string& s : v) {
      lua_pushlstring(L, s.data(), s.size());
      lua_rawseti(L, -2, i++);
    }
    return luaL_ref(L, LUA_REGISTRYINDEX);
  };
  run->keys_ref_ = make_table(keys);
  run->argv_ref_ = make_table(args);
  // The thread's stack: xpcall, the function, the handler (and a function's keys and args:
  // LuaJIT's xpcall passes them on).
  lua_State* T = run->thread_;
  lua_rawgeti(T, LUA_REGISTRYINDEX, xpcall_ref_);
  lua_rawgeti(T, LUA_REGISTRYINDEX, function_ref);
  lua_rawgeti(T, LUA_REGISTRYINDEX, error_handler_ref_);
  run->nargs_ = 2;
  if (as_function) {
    lua_rawgeti(T, LUA_REGISTRYINDEX, run->keys_ref_);
    lua_rawgeti(T, LUA_REGISTRYINDEX, run->argv_ref_);
    run->nargs_ = 4;
  }
  return run;
}

// Whether the running coroutine may yield here: every frame below is Lua, or pcall/xpcall
// (LuaJIT yields across those), not a C function such as table.sort calling a comparator.
bool LuaEngine::CanYield(lua_State* L) {
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar) != 0; ++level) {
    lua_getinfo(L, "Sf", &ar);
    bool ok = true;
    if (ar.what[0] == 'C') {
      lua_rawgeti(L, LUA_REGISTRYINDEX, pcall_ref_);
      lua_rawgeti(L, LUA_REGISTRYINDEX, xpcall_ref_);
      ok = lua_rawequal(L, -1, -3) != 0 || lua_rawequal(L, -2, -3) != 0;
      lua_pop(L, 2);
    }
    lua_pop(L, 1);
    if (!ok) return false;
  }
  return true;
}

void LuaEngine::Hook(lua_State* L, lua_Debug* /*ar*/) {
  LuaEngine* e = EngineOf(L);
  if (e == nullptr || e->current_ == nullptr || e->current_->thread_ != L) return;
  LuaRun* run = e->current_;
  if (run->killed_) {
    // Never resumed again when it yields; inside a C function, raised at every hook until it
    // leaves (a pcall there cannot swallow it for good).
    if (e->CanYield(L)) {
      lua_yield(L, 0);
      return;
    }
    lua_pushstring(L, run->kill_message_.c_str());
    lua_error(L);
    return;
  }
  if (!run->should_pause_ || !run->should_pause_()) return;
  if (e->CanYield(L)) {
    run->unpausable_hooks_ = 0;
    lua_yield(L, 0);
    return;
  }
  if (run->unpausable_hooks_max_ > 0 && ++run->unpausable_hooks_ > run->unpausable_hooks_max_) {
    run->Kill(
        "ERR the script ran too long inside a C function (such as table.sort's comparator), "
        "where it cannot be paused");
    lua_pushstring(L, run->kill_message_.c_str());
    lua_error(L);
  }
}

// ---- LuaRun ----

LuaRun::~LuaRun() {
  if (engine_ == nullptr) return;
  lua_State* L = engine_->L_;
  if (engine_->current_ == this) engine_->current_ = nullptr;
  luaL_unref(L, LUA_REGISTRYINDEX, thread_ref_);
  luaL_unref(L, LUA_REGISTRYINDEX, keys_ref_);
  luaL_unref(L, LUA_REGISTRYINDEX, argv_ref_);
  // A run that used much of the memory leaves its garbage to collect now: LuaJIT has no
  // emergency collection, so the next allocation near the limit would fail instead.
  if (engine_->limit_ != 0 && engine_->used_ > engine_->limit_ / 2) lua_gc(L, LUA_GCCOLLECT, 0);
}

void LuaRun::Kill(std::string message) {
  killed_ = true;
  kill_message_ = std::move(message);
}

bool LuaRun::TakeCallError(const std::string& text) {
  if (!call_error_ || *call_error_ != text) return false;
  call_error_.reset();
  return true;
}

LuaRun::State LuaRun::Resume() {
  SYNOD_ASSERT(!done_);
  lua_State* L = engine_->L_;
  if (killed_) {
    result_ = kv::Reply::Err(kill_message_);
    done_ = true;
    return State::kDone;
  }
  // This run's KEYS and ARGV are the globals while it runs.
  lua_rawgeti(L, LUA_REGISTRYINDEX, keys_ref_);
  lua_setfield(L, LUA_GLOBALSINDEX, "KEYS");
  lua_rawgeti(L, LUA_REGISTRYINDEX, argv_ref_);
  lua_setfield(L, LUA_GLOBALSINDEX, "ARGV");
  engine_->current_ = this;
  const int rc = lua_resume(thread_, started_ ? 0 : nargs_);
  started_ = true;
  engine_->current_ = nullptr;
  if (rc == LUA_YIELD) {
    if (killed_) {
      result_ = kv::Reply::Err(kill_message_);
      done_ = true;
      return State::kDone;
    }
    lua_settop(thread_, 0);
    return State::kPaused;
  }
  Finish(rc);
  done_ = true;
  return State::kDone;
}

void LuaRun::Finish(int status) {
  lua_State* T = thread_;
  if (killed_) {
    result_ = kv::Reply::Err(kill_message_);
    return;
  }
  if (status != 0) {  // an error outside xpcall's reach (memory while starting, say)
    result_ =
        kv::Reply::Err(status == LUA_ERRMEM ? "ERR script ran out of memory"
                                            : "ERR Error running script: " + LuaString(T, -1));
    return;
  }
  // xpcall's results: true, the script's value(s); or false, the handler's error.
  if (lua_gettop(T) < 1) {
    result_ = kv::Reply::Nil();
    return;
  }
  const bool ok = lua_toboolean(T, 1) != 0;
  if (ok) {
    if (lua_gettop(T) < 2) {
      result_ = kv::Reply::Nil();
    } else {
      lua_settop(T, 2);
      result_ = ToReplyWithLuaProtocol(T, caller_protocol_, lua_protocol_);
    }
    return;
  }
  if (lua_gettop(T) < 2 || !lua_istable(T, 2)) {
    const std::string msg = lua_gettop(T) >= 2 ? LuaString(T, 2) : "";
    result_ = kv::Reply::Err(msg == "not enough memory"
                                 ? "ERR script ran out of memory (the scripts' memory limit)"
                                 : "ERR Error running script: " + msg);
    return;
  }
  lua_settop(T, 2);
  // Raw reads: the script's own error table may carry metamethods, which must not run outside
  // a protected call.
  lua_pushliteral(T, "err");
  lua_rawget(T, 2);
  if (lua_type(T, -1) != LUA_TSTRING) {
    result_ = kv::Reply::Err("ERR the script raised an error without a message");
    return;
  }
  std::string text = LuaString(T, -1);
  lua_pop(T, 1);
  lua_pushliteral(T, "source");
  lua_rawget(T, 2);
  lua_pushliteral(T, "line");
  lua_rawget(T, 2);
  const lua_Number line = lua_tonumber(T, -1);
  if (annotate_errors_ && lua_type(T, -2) == LUA_TSTRING && lua_type(T, -1) == LUA_TNUMBER &&
      line >= 0 && line < 1e9) {
    text += " script: " + sha_ + ", on " + LuaString(T, -2) + ":" +
            std::to_string(static_cast<int64_t>(line)) + ".";
  }
  for (char& c : text) {
    if (c == '\r' || c == '\n') c = ' ';
  }
  result_ = kv::Reply::Err(std::move(text));
}

}  // namespace synod::compute
