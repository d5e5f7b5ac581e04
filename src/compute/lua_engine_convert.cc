// Conversions between kv::Reply (a command's reply, a script's result) and Lua values, by
// Redis 7's rules (script_lua.c: redisProtocolToLuaType and luaReplyToRedisReply), checked
// against Debian's redis-server 7.0 byte for byte (tests/e2e/scripting_test.cc).
#include <lua.hpp>

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include "compute/lua_engine.h"

namespace synod::compute {

namespace {

// Nesting beyond this is cut (Redis: LUA_CMD_OBJCACHE... it has none and overflows the C
// stack; a script's reply of a table nested 1000 deep is an error here).
constexpr int kDepthMax = 128;

void PushErrorTable(lua_State* L, const std::string& text) {
  lua_createtable(L, 0, 1);
  lua_pushlstring(L, text.data(), text.size());
  lua_setfield(L, -2, "err");
}

void PushReplyDepth(lua_State* L, const kv::Reply& r, int protocol, int depth) {
  lua_checkstack(L, 4);
  if (r.type == kv::ReplyType::kNone && !r.ok()) {  // a legacy code: its message as an error
    PushErrorTable(L, "ERR " + std::string(r.message()));
    return;
  }
  const std::string empty;
  const std::string& value = r.value ? *r.value : empty;
  switch (r.type) {
    case kv::ReplyType::kNone:
      lua_createtable(L, 0, 1);
      lua_pushliteral(L, "OK");
      lua_setfield(L, -2, "ok");
      return;
    case kv::ReplyType::kStatus:
      lua_createtable(L, 0, 1);
      lua_pushlstring(L, value.data(), value.size());
      lua_setfield(L, -2, "ok");
      return;
    case kv::ReplyType::kError:
      PushErrorTable(L, value);
      return;
    case kv::ReplyType::kInteger:
      lua_pushnumber(L, static_cast<lua_Number>(r.number));
      return;
    case kv::ReplyType::kBulk:
      lua_pushlstring(L, value.data(), value.size());
      return;
    case kv::ReplyType::kNull:
    case kv::ReplyType::kNullArray:
      if (protocol == 3) {
        lua_pushnil(L);
      } else {
        lua_pushboolean(L, 0);
      }
      return;
    case kv::ReplyType::kBool:
      if (protocol == 3) {
        lua_pushboolean(L, r.number != 0);
      } else {
        lua_pushnumber(L, r.number != 0 ? 1 : 0);
      }
      return;
    case kv::ReplyType::kDouble:
      if (protocol == 3) {
        lua_createtable(L, 0, 1);
        lua_pushnumber(L, std::strtod(value.c_str(), nullptr));
        lua_setfield(L, -2, "double");
      } else {
        lua_pushlstring(L, value.data(), value.size());
      }
      return;
    case kv::ReplyType::kBigNumber:
      if (protocol == 3) {
        lua_createtable(L, 0, 1);
        lua_pushlstring(L, value.data(), value.size());
        lua_setfield(L, -2, "big_number");
      } else {
        lua_pushlstring(L, value.data(), value.size());
      }
      return;
    case kv::ReplyType::kVerbatim: {
      const std::string text = value.size() >= 4 && value[3] == ':' ? value.substr(4) : value;
      if (protocol == 3) {
        lua_createtable(L, 0, 1);
        lua_createtable(L, 0, 2);
        lua_pushstring(L, text.c_str());
        lua_setfield(L, -2, "string");
        lua_pushlstring(L, value.data(), value.size() >= 3 ? 3 : value.size());
        lua_setfield(L, -2, "format");
        lua_setfield(L, -2, "verbatim_string");
      } else {
        lua_pushlstring(L, text.data(), text.size());
      }
      return;
    }
    case kv::ReplyType::kArray:
    case kv::ReplyType::kMap:
    case kv::ReplyType::kSet: {
      if (depth >= kDepthMax) {
        PushErrorTable(L, "ERR reply nested too deeply for a script");
        return;
      }
      const bool map = r.type == kv::ReplyType::kMap && protocol == 3;
      const bool set = r.type == kv::ReplyType::kSet && protocol == 3;
      if (map || set) {
        lua_createtable(L, 0, 1);
        lua_createtable(L, 0, static_cast<int>(r.replies.size()));
        if (map) {
          for (size_t i = 0; i + 1 < r.replies.size(); i += 2) {
            PushReplyDepth(L, r.replies[i], protocol, depth + 1);
            PushReplyDepth(L, r.replies[i + 1], protocol, depth + 1);
            lua_settable(L, -3);
          }
        } else {
          for (const kv::Reply& e : r.replies) {
            PushReplyDepth(L, e, protocol, depth + 1);
            lua_pushboolean(L, 1);
            lua_settable(L, -3);
          }
        }
        lua_setfield(L, -2, map ? "map" : "set");
        return;
      }
      lua_createtable(L, static_cast<int>(r.replies.size()), 0);
      int i = 1;
      for (const kv::Reply& e : r.replies) {
        PushReplyDepth(L, e, protocol, depth + 1);
        lua_rawseti(L, -2, i++);
      }
      return;
    }
  }
  lua_pushnil(L);
}

// Redis's (long long) cast of a Lua number: out of range (and NaN) gives INT64_MIN on x86-64.
int64_t ToInteger(lua_Number n) {
  if (!(n >= -9223372036854775808.0 && n < 9223372036854775808.0)) {
    return std::numeric_limits<int64_t>::min();
  }
  return static_cast<int64_t>(n);
}

std::string FormatDouble(double d) {
  char buf[64];
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  const int n = std::snprintf(buf, sizeof(buf), "%.17g", d);
  return std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
}

// Status and error texts go on one line: Redis replaces \r and \n by spaces.
std::string OneLine(std::string s) {
  for (char& c : s) {
    if (c == '\r' || c == '\n') c = ' ';
  }
  return s;
}

bool AllDigits(std::string_view s) {
  size_t i = s.starts_with('-') ? 1 : 0;
  if (i >= s.size()) return false;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}

// The string field `name` of the table at the top, if there is one.
bool StringField(lua_State* L, const char* name, std::string* out) {
  lua_pushstring(L, name);
  lua_rawget(L, -2);
  const bool is = lua_type(L, -1) == LUA_TSTRING;
  if (is) {
    size_t len = 0;
    const char* s = lua_tolstring(L, -1, &len);
    out->assign(s, len);
  }
  lua_pop(L, 1);
  return is;
}

// Whether the table at the top has a table under `name` (pushed when it does).
bool TableField(lua_State* L, const char* name) {
  lua_pushstring(L, name);
  lua_rawget(L, -2);
  if (lua_type(L, -1) == LUA_TTABLE) return true;
  lua_pop(L, 1);
  return false;
}

kv::Reply ToReplyDepth(lua_State* L, int caller_protocol, int lua_protocol, int depth) {
  lua_checkstack(L, 6);
  switch (lua_type(L, -1)) {
    case LUA_TSTRING: {
      size_t len = 0;
      const char* s = lua_tolstring(L, -1, &len);
      return kv::Reply::Bulk(std::string(s, len));
    }
    case LUA_TBOOLEAN: {
      const bool v = lua_toboolean(L, -1) != 0;
      if (lua_protocol == 3) {
        kv::Reply b;
        b.type = kv::ReplyType::kBool;
        b.number = v ? 1 : 0;
        return b;
      }
      return v ? kv::Reply::Int(1) : kv::Reply::Nil();
    }
    case LUA_TNUMBER:
      return kv::Reply::Int(ToInteger(lua_tonumber(L, -1)));
    case LUA_TTABLE: {
      if (depth >= kDepthMax) return kv::Reply::Err("ERR reached lua stack limit");
      std::string text;
      if (StringField(L, "err", &text)) return kv::Reply::Err(OneLine(std::move(text)));
      if (StringField(L, "ok", &text)) return kv::Reply::Status(OneLine(std::move(text)));
      lua_pushstring(L, "double");
      lua_rawget(L, -2);
      if (lua_type(L, -1) == LUA_TNUMBER) {
        const double d = lua_tonumber(L, -1);
        lua_pop(L, 1);
        kv::Reply r = kv::Reply::Bulk(FormatDouble(d));
        r.type = kv::ReplyType::kDouble;
        return r;
      }
      lua_pop(L, 1);
      if (StringField(L, "big_number", &text)) {
        text = OneLine(std::move(text));
        if (!AllDigits(text)) return kv::Reply::Bulk(std::move(text));  // not a number: a string
        kv::Reply r = kv::Reply::Bulk(std::move(text));
        r.type = kv::ReplyType::kBigNumber;
        return r;
      }
      if (TableField(L, "verbatim_string")) {
        std::string format;
        std::string str;
        const bool ok = StringField(L, "format", &format) && StringField(L, "string", &str) &&
                        format.size() == 3;
        lua_pop(L, 1);
        if (ok) {
          kv::Reply r = kv::Reply::Bulk(format + ":" + str);
          r.type = kv::ReplyType::kVerbatim;
          return r;
        }
        return kv::Reply::Array({});
      }
      const bool map = TableField(L, "map");
      const bool set = !map && TableField(L, "set");
      if (map || set) {
        kv::Reply r = kv::Reply::Array({});
        r.type = map ? kv::ReplyType::kMap : kv::ReplyType::kSet;
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
          // key at -2, value at -1
          lua_pushvalue(L, -2);
          r.replies.push_back(ToReplyDepth(L, caller_protocol, lua_protocol, depth + 1));
          lua_pop(L, 1);
          if (map) r.replies.push_back(ToReplyDepth(L, caller_protocol, lua_protocol, depth + 1));
          lua_pop(L, 1);
        }
        lua_pop(L, 1);
        return r;
      }
      // An array: elements 1, 2, ... up to the first nil.
      kv::Reply r = kv::Reply::Array({});
      for (int i = 1;; ++i) {
        lua_rawgeti(L, -1, i);
        if (lua_isnil(L, -1)) {
          lua_pop(L, 1);
          break;
        }
        r.replies.push_back(ToReplyDepth(L, caller_protocol, lua_protocol, depth + 1));
        lua_pop(L, 1);
      }
      return r;
    }
    default:
      return kv::Reply::Nil();
  }
}

}  // namespace

void PushReply(lua_State* L, const kv::Reply& r, int protocol) {
  PushReplyDepth(L, r, protocol, 0);
}

kv::Reply ToReply(lua_State* L, int caller_protocol) {
  return ToReplyDepth(L, caller_protocol, 2, 0);
}

// Used by LuaRun with the run's redis.setresp protocol.
kv::Reply ToReplyWithLuaProtocol(lua_State* L, int caller_protocol, int lua_protocol) {
  return ToReplyDepth(L, caller_protocol, lua_protocol, 0);
}

}  // namespace synod::compute
