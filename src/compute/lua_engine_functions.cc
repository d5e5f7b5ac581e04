// Libraries of functions (FUNCTION LOAD): metadata, loading with the restricted redis table,
// redis.register_function; and EVAL's shebang line. Redis 7.0's rules and texts.
#include <lua.hpp>

#include <algorithm>
#include <array>
#include <cstring>

#include "common/assert.h"
#include "compute/lua_engine.h"

namespace synod::compute {

namespace {

char kLibraryEnvKey;

constexpr std::array<std::string_view, 5> kFlags = {"no-writes", "allow-oom", "allow-stale",
                                                    "no-cluster", "allow-cross-slot-keys"};

bool ValidName(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

std::vector<std::string_view> SplitSpaces(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string_view FirstLine(std::string_view code) {
  const size_t nl = code.find('\n');
  return nl == std::string_view::npos ? code : code.substr(0, nl);
}

// The code with its first line (the shebang) emptied: line numbers stay as written.
std::string WithoutShebang(std::string_view code) {
  const size_t nl = code.find('\n');
  return nl == std::string_view::npos ? std::string() : std::string(code.substr(nl));
}

int RaiseText(lua_State* L, const char* text) {
  lua_pushstring(L, text);
  return lua_error(L);
}

// __index of the globals libraries see: while a library loads, `redis` is the restricted table.
int LibraryGlobalsIndex(lua_State* L) {
  LuaEngine* e = EngineOf(L);
  if (e != nullptr && e->loading() && lua_type(L, 2) == LUA_TSTRING &&
      std::strcmp(lua_tostring(L, 2), "redis") == 0) {
    lua_pushvalue(L, lua_upvalueindex(2));
    return 1;
  }
  return GlobalsIndex(L);  // upvalue 1 is the real globals, as GlobalsIndex's
}

// A read-only proxy of the table at the top whose __index is `index` (with the real table and
// `extra` as upvalues); replaces the table.
void MakeProxy(lua_State* L, lua_CFunction index, int extra_ref) {
  lua_newtable(L);
  lua_createtable(L, 0, 3);
  lua_pushvalue(L, -3);
  int ups = 1;
  if (extra_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, extra_ref);
    ups = 2;
  }
  lua_pushcclosure(L, index, ups);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, ReadonlyNewIndex);
  lua_setfield(L, -2, "__newindex");
  lua_newtable(L);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_remove(L, -2);
}

}  // namespace

int RegisterFunction(lua_State* L) {
  LuaEngine* e = EngineOf(L);
  LibraryInfo* lib = e == nullptr ? nullptr : e->loading_;
  if (lib == nullptr) return RaiseText(L, "redis.register_function is only for FUNCTION LOAD");
  FunctionInfo f;
  const int argc = lua_gettop(L);
  if (argc == 2) {
    if (lua_type(L, 1) != LUA_TSTRING || lua_type(L, 2) != LUA_TFUNCTION) {
      return RaiseText(L, "wrong number of arguments to redis.register_function");
    }
    f.name = lua_tostring(L, 1);
    lua_pushvalue(L, 2);
  } else if (argc == 1 && lua_istable(L, 1)) {
    bool have_callback = false;
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
      if (lua_type(L, -2) != LUA_TSTRING) {
        return RaiseText(L, "named argument key given to redis.register_function is not a string");
      }
      const std::string key = lua_tostring(L, -2);
      if (key == "function_name" && lua_type(L, -1) == LUA_TSTRING) {
        f.name = lua_tostring(L, -1);
      } else if (key == "callback" && lua_type(L, -1) == LUA_TFUNCTION) {
        have_callback = true;
      } else if (key == "description" && lua_type(L, -1) == LUA_TSTRING) {
        f.description = lua_tostring(L, -1);
      } else if (key == "flags" && lua_istable(L, -1)) {
        for (int i = 1;; ++i) {
          lua_rawgeti(L, -1, i);
          if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            break;
          }
          if (lua_type(L, -1) != LUA_TSTRING ||
              std::find(kFlags.begin(), kFlags.end(), lua_tostring(L, -1)) == kFlags.end()) {
            return RaiseText(L, "unknown flag given");
          }
          f.flags.emplace_back(lua_tostring(L, -1));
          lua_pop(L, 1);
        }
      } else {
        return RaiseText(L, "unknown argument given to redis.register_function");
      }
      lua_pop(L, 1);
    }
    if (!have_callback || f.name.empty()) {
      return RaiseText(L, "redis.register_function must get a callback argument");
    }
    lua_getfield(L, 1, "callback");
  } else {
    return RaiseText(L, "wrong number of arguments to redis.register_function");
  }
  if (!ValidName(f.name)) {
    return RaiseText(L,
                     "Library names can only contain letters, numbers, or underscores(_) and "
                     "must be at least one character long");
  }
  if (lib->Find(f.name) != nullptr) return RaiseText(L, "Function already exists in the library");
  f.no_writes = std::find(f.flags.begin(), f.flags.end(), "no-writes") != f.flags.end();
  f.ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lib->functions.push_back(std::move(f));
  return 0;
}

Result<ScriptShebang> ParseScriptShebang(std::string_view body) {
  ScriptShebang out;
  if (!body.starts_with("#!")) return out;
  out.present = true;
  const std::vector<std::string_view> parts = SplitSpaces(FirstLine(body).substr(2));
  if (parts.empty() || parts[0] != "lua") {
    return Status::InvalidArgument("ERR Could not find engine '" +
                                   std::string(parts.empty() ? "" : parts[0]) + "'");
  }
  for (size_t i = 1; i < parts.size(); ++i) {
    if (!parts[i].starts_with("flags=")) {
      return Status::InvalidArgument("ERR Unknown lua shebang option: " + std::string(parts[i]));
    }
    std::string_view list = parts[i].substr(6);
    while (!list.empty()) {
      const size_t comma = list.find(',');
      const std::string_view flag = list.substr(0, comma);
      if (std::find(kFlags.begin(), kFlags.end(), flag) == kFlags.end()) {
        return Status::InvalidArgument("ERR Unexpected flag in script shebang: " +
                                       std::string(flag));
      }
      out.no_writes = out.no_writes || flag == "no-writes";
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  return out;
}

std::string CompilableScript(std::string_view body) {
  return body.starts_with("#!") ? WithoutShebang(body) : std::string(body);
}

Result<const LibraryInfo*> LuaEngine::LoadLibrary(std::string_view code) {
  // Known code is found without hashing it again (every FCALL looks its library up).
  if (auto it = library_by_code_.find(code); it != library_by_code_.end()) return it->second;
  const std::string sha = Sha1Hex(code);
  if (auto it = libraries_.find(sha); it != libraries_.end()) return it->second.get();
  if (libraries_.size() >= opts_.scripts_max) {
    for (auto& [k, lib] : libraries_) {
      for (FunctionInfo& f : lib->functions) luaL_unref(L_, LUA_REGISTRYINDEX, f.ref);
    }
    libraries_.clear();
    library_by_code_.clear();
  }
  // Metadata: "#!lua name=<library>".
  if (!code.starts_with("#!")) return Status::InvalidArgument("ERR Missing library metadata");
  const std::vector<std::string_view> parts = SplitSpaces(FirstLine(code).substr(2));
  if (parts.empty()) return Status::InvalidArgument("ERR Invalid library metadata");
  if (parts[0] != "lua") {
    return Status::InvalidArgument("ERR Engine '" + std::string(parts[0]) + "' not found");
  }
  auto lib = std::make_unique<LibraryInfo>();
  bool named = false;
  for (size_t i = 1; i < parts.size(); ++i) {
    if (!parts[i].starts_with("name=")) {
      return Status::InvalidArgument("ERR Invalid metadata value given: " + std::string(parts[i]));
    }
    lib->name = std::string(parts[i].substr(5));
    named = true;
  }
  if (!named) return Status::InvalidArgument("ERR Invalid library metadata");
  if (!ValidName(lib->name)) {
    return Status::InvalidArgument(
        "ERR Library names can only contain letters, numbers, or underscores(_) and must be at "
        "least one character long");
  }
  lib->code = std::string(code);
  lib->sha = sha;
  lua_State* L = L_;
  const std::string body = WithoutShebang(code);
  const int rc = luaL_loadbuffer(L, body.data(), body.size(), "@user_function");
  if (rc != 0) {
    std::string msg = lua_tostring(L, -1) != nullptr ? lua_tostring(L, -1) : "";
    lua_pop(L, 1);
    if (rc == LUA_ERRMEM) msg = "not enough memory";
    return Status::InvalidArgument("ERR Error compiling function: " + msg);
  }
  // The globals every library sees (built once): the real ones, `redis` restricted while
  // loading.
  lua_pushlightuserdata(L, &kLibraryEnvKey);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    // The restricted redis table: register_function, log, the constants.
    lua_newtable(L);
    lua_pushcfunction(L, RegisterFunction);
    lua_setfield(L, -2, "register_function");
    lua_getglobal(L, "redis");  // the proxy; its fields are read through
    for (const char* k : {"log", "setresp", "LOG_DEBUG", "LOG_VERBOSE", "LOG_NOTICE", "LOG_WARNING",
                          "REDIS_VERSION", "REDIS_VERSION_NUM"}) {
      lua_getfield(L, -1, k);
      lua_setfield(L, -3, k);
    }
    lua_pop(L, 1);
    {
      // Proxy of the restricted table: a field it lacks is Redis's "nonexistent global
      // variable" error (redis.call while loading), as in Redis.
      lua_newtable(L);
      lua_createtable(L, 0, 3);
      lua_pushvalue(L, -3);
      lua_pushnil(L);
      lua_pushcclosure(L, LibraryGlobalsIndex, 2);
      lua_setfield(L, -2, "__index");
      lua_pushcfunction(L, ReadonlyNewIndex);
      lua_setfield(L, -2, "__newindex");
      lua_setmetatable(L, -2);
      lua_remove(L, -2);
    }
    load_redis_ref_ = luaL_ref(L, LUA_REGISTRYINDEX);
    // The libraries' globals.
    lua_pushvalue(L, LUA_GLOBALSINDEX);
    MakeProxy(L, LibraryGlobalsIndex, load_redis_ref_);
    lua_pushlightuserdata(L, &kLibraryEnvKey);
    lua_pushvalue(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
  }
  lua_setfenv(L, -2);
  const int chunk_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  // Run it once, bounded: a library's code only registers its functions.
  loading_ = lib.get();
  int64_t hooks = 0;
  RunOptions ro;
  ro.should_pause = [&hooks] { return ++hooks > 200'000; };  // about 2e8 instructions
  std::unique_ptr<LuaRun> run =
      StartRun(chunk_ref, lib->name, {}, {}, nullptr, std::move(ro), /*as_function=*/false);
  run->chunk_ = "@user_function";
  run->annotate_errors_ = false;
  if (run->Resume() == LuaRun::State::kPaused) {
    run->Kill("ERR the library's code ran too long while loading");
    run->Resume();
  }
  loading_ = nullptr;
  luaL_unref(L, LUA_REGISTRYINDEX, chunk_ref);
  const kv::Reply result = run->TakeResult();
  run.reset();
  auto drop = [this, &lib] {
    for (FunctionInfo& f : lib->functions) luaL_unref(L_, LUA_REGISTRYINDEX, f.ref);
  };
  if (result.type == kv::ReplyType::kError) {
    drop();
    return Status::InvalidArgument("ERR Error registering functions: " + result.value.value_or(""));
  }
  if (lib->functions.empty()) return Status::InvalidArgument("ERR No functions registered");
  const LibraryInfo* out = lib.get();
  libraries_.emplace(sha, std::move(lib));
  library_by_code_.emplace(out->code, out);  // a view of the stored code
  return out;
}

}  // namespace synod::compute
