// The command table of redis.h and the helpers the command files share.
#include "kv/redis.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "common/assert.h"

namespace synod::kv {

namespace {

std::vector<RedisCommand> BuildTable() {
  std::vector<RedisCommand> t;
  redis::AddStringCommands(&t);
  redis::AddKeyCommands(&t);
  std::sort(t.begin(), t.end(), [](const RedisCommand& a, const RedisCommand& b) {
    return std::string_view(a.name) < std::string_view(b.name);
  });
  for (size_t i = 0; i < t.size(); ++i) {
    SYNOD_ASSERT_MSG((t[i].read == nullptr) != (t[i].write == nullptr),
                     "a Redis command is exactly one of read and write");
    SYNOD_ASSERT_MSG(i == 0 || std::string_view(t[i - 1].name) != t[i].name,
                     "a Redis command is declared twice");
  }
  return t;
}

bool ArityOk(int arity, size_t argc) {
  if (arity >= 0) return argc == static_cast<size_t>(arity);
  return argc >= static_cast<size_t>(-arity);
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The checks every command shares; nullptr with *error set when the call must not run.
const RedisCommand* Resolve(const Args& argv, Reply* error) {
  if (argv.empty()) {
    *error = Reply::Err("ERR empty command");
    return nullptr;
  }
  const RedisCommand* c = FindRedisCommand(argv[0]);
  if (c == nullptr) {
    *error = Reply::Err("ERR unknown command '" + argv[0].substr(0, 128) + "'");
    return nullptr;
  }
  if (!ArityOk(c->arity, argv.size())) {
    *error = redis::WrongArity(c->name);
    return nullptr;
  }
  return c;
}

}  // namespace

const std::vector<RedisCommand>& RedisCommands() {
  static const std::vector<RedisCommand> table = BuildTable();
  return table;
}

const RedisCommand* FindRedisCommand(std::string_view name) {
  if (name.size() > 32) return nullptr;
  const std::string lower = Lower(name);
  const auto& t = RedisCommands();
  auto it = std::lower_bound(
      t.begin(), t.end(), lower,
      [](const RedisCommand& c, const std::string& n) { return std::string_view(c.name) < n; });
  if (it == t.end() || lower != it->name) return nullptr;
  return &*it;
}

std::vector<size_t> KeyPositions(const RedisCommand& cmd, size_t argc) {
  std::vector<size_t> out;
  if (cmd.first_key <= 0 || argc <= static_cast<size_t>(cmd.first_key) || cmd.key_step <= 0) {
    return out;
  }
  const int64_t last = cmd.last_key < 0 ? static_cast<int64_t>(argc) + cmd.last_key
                                        : std::min<int64_t>(cmd.last_key, argc - 1);
  for (int64_t p = cmd.first_key; p <= last; p += cmd.key_step)
    out.push_back(static_cast<size_t>(p));
  return out;
}

Reply ExecuteRedis(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  Reply error;
  const RedisCommand* c = Resolve(argv, &error);
  if (c == nullptr) return error;
  if (c->write != nullptr) return c->write(ks, argv, ctx);
  return c->read(ks, argv, ctx);
}

Reply ExecuteRedisRead(const Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  Reply error;
  const RedisCommand* c = Resolve(argv, &error);
  if (c == nullptr) return error;
  SYNOD_ASSERT_MSG(c->read != nullptr, "a write command submitted as a read");
  return c->read(ks, argv, ctx);
}

namespace redis {

bool ParseInt64(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 20) return false;  // "-9223372036854775808" is 20 bytes
  std::string_view digits = s[0] == '-' ? s.substr(1) : s;
  if (digits.empty() || digits[0] < '0' || digits[0] > '9') return false;
  if (digits[0] == '0' && s != "0") return false;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return false;
  *out = v;
  return true;
}

std::string FormatInt64(int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  SYNOD_ASSERT(ec == std::errc());
  return std::string(buf, end);
}

bool ParseLongDouble(std::string_view s, long double* out) {
  // Redis's string2ld: no empty input, no leading space, the whole buffer consumed, not NaN.
  if (s.empty() || s.size() >= 5000 || std::isspace(static_cast<unsigned char>(s[0]))) {
    return false;
  }
  std::string buf(s);
  char* end = nullptr;
  errno = 0;
  const long double v = std::strtold(buf.c_str(), &end);
  if (end != buf.c_str() + buf.size() || std::isnan(v) || errno == ERANGE) return false;
  *out = v;
  return true;
}

std::string FormatLongDouble(long double v) {
  // Redis's ld2string in LD_STR_HUMAN mode: "%.17Lf", then trailing zeros (and a trailing dot)
  // removed; "-0" becomes "0".
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[5200];
  int n = std::snprintf(buf, sizeof(buf), "%.17Lf", v);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof(buf)) return "0";
  std::string out(buf, static_cast<size_t>(n));
  if (out.find('.') != std::string::npos) {
    while (!out.empty() && out.back() == '0') out.pop_back();
    if (!out.empty() && out.back() == '.') out.pop_back();
  }
  if (out == "-0") out = "0";
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

Reply WrongArity(std::string_view name) {
  return Reply::Err("ERR wrong number of arguments for '" + std::string(name) + "' command");
}
Reply SyntaxError() { return Reply::Err("ERR syntax error"); }
Reply NotInteger() { return Reply::Err("ERR value is not an integer or out of range"); }
Reply NotFloat() { return Reply::Err("ERR value is not a valid float"); }
Reply TooLarge() {
  return Reply::Err("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
}

}  // namespace redis

}  // namespace synod::kv
