// Redis's keyspace commands (redis.h): DEL, EXISTS, TYPE, RENAME, COPY, KEYS, SCAN, RANDOMKEY,
// TOUCH, the EXPIRE family, TTL family, PERSIST, DBSIZE and FLUSHDB/FLUSHALL.
//
// Every key is a string (the only type kv stores), so TYPE and SCAN's TYPE filter know one
// type. Write commands look keys up with FindForWrite so an expired key is deleted at the same
// log index on every replica; read commands use Find, to which an expired key is absent.
#include <limits>
#include <string>
#include <utility>

#include "kv/redis.h"

namespace synod::kv::redis {

namespace {

constexpr std::string_view kStringType = "string";

Reply Del(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() < 2) return WrongArity("del");
  int64_t n = 0;
  for (size_t i = 1; i < argv.size(); ++i) {
    if (ks.FindForWrite(argv[i], ctx.now_ms) != nullptr && ks.Erase(argv[i])) ++n;
  }
  return Reply::Int(n);
}

// EXISTS and TOUCH: the number of arguments naming a live key, repeats counted again.
Reply Exists(const Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() < 2) return WrongArity("exists");
  int64_t n = 0;
  for (size_t i = 1; i < argv.size(); ++i) n += ks.Find(argv[i], ctx.now_ms) != nullptr ? 1 : 0;
  return Reply::Int(n);
}

Reply Type(const Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() != 2) return WrongArity("type");
  return Reply::Status(ks.Find(argv[1], ctx.now_ms) != nullptr ? std::string(kStringType) : "none");
}

// A key longer than the state machine accepts would make its snapshot unloadable; the front
// end refuses such keys, this guards entries that bypassed it.
bool KeyTooLong(std::string_view key, const ExecContext& ctx) {
  return key.size() > ctx.key_bytes_max;
}
Reply KeyTooLongError() { return Reply::Err("ERR key exceeds the maximum key size"); }

Reply RenameGeneric(Keyspace& ks, const Args& argv, const ExecContext& ctx, bool nx) {
  if (argv.size() != 3) return WrongArity(nx ? "renamenx" : "rename");
  const std::string& src = argv[1];
  const std::string& dst = argv[2];
  if (KeyTooLong(dst, ctx)) return KeyTooLongError();
  Value* v = ks.FindForWrite(src, ctx.now_ms);
  if (v == nullptr) return Reply::Err("ERR no such key");
  // Redis: renaming a key to itself changes nothing, but still needs the key to exist.
  if (src == dst) return nx ? Reply::Int(0) : Reply::Ok();
  if (ks.FindForWrite(dst, ctx.now_ms) != nullptr && nx) return Reply::Int(0);
  std::string bytes = std::move(v->bytes);
  const int64_t expire_ms = v->expire_ms;
  ks.Erase(src);
  ks.Put(dst, std::move(bytes), expire_ms);
  return nx ? Reply::Int(1) : Reply::Ok();
}

Reply Rename(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  return RenameGeneric(ks, argv, ctx, false);
}

Reply RenameNx(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  return RenameGeneric(ks, argv, ctx, true);
}

// COPY's options: [DB n] [REPLACE], in any order, repeats allowed (as Redis's parser).
bool ParseCopyOptions(const Args& argv, bool* replace, Reply* error) {
  for (size_t j = 3; j < argv.size(); ++j) {
    const bool has_next = j + 1 < argv.size();
    if (EqualsIgnoreCase(argv[j], "replace")) {
      *replace = true;
    } else if (EqualsIgnoreCase(argv[j], "db") && has_next) {
      int64_t db = 0;
      if (!ParseInt64(argv[j + 1], &db) || db < std::numeric_limits<int32_t>::min() ||
          db > std::numeric_limits<int32_t>::max()) {
        *error = NotInteger();
        return false;
      }
      // One database per shard, as a Redis Cluster node has.
      if (db != 0) {
        *error = Reply::Err("ERR DB index is out of range");
        return false;
      }
      ++j;
    } else {
      *error = SyntaxError();
      return false;
    }
  }
  return true;
}

Reply Copy(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() < 3) return WrongArity("copy");
  bool replace = false;
  Reply error;
  if (!ParseCopyOptions(argv, &replace, &error)) return error;
  const std::string& src = argv[1];
  const std::string& dst = argv[2];
  if (src == dst) return Reply::Err("ERR source and destination objects are the same");
  if (KeyTooLong(dst, ctx)) return KeyTooLongError();
  const Value* v = ks.FindForWrite(src, ctx.now_ms);
  if (v == nullptr) return Reply::Int(0);
  if (ks.FindForWrite(dst, ctx.now_ms) != nullptr && !replace) return Reply::Int(0);
  ks.Put(dst, v->bytes, v->expire_ms);
  return Reply::Int(1);
}

Reply Keys(const Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() != 2) return WrongArity("keys");
  const std::string& pattern = argv[1];
  const bool all = pattern == "*";
  std::vector<Reply> out;
  for (const auto& [key, value] : ks.map()) {
    if (value.expire_ms != 0 && value.expire_ms <= ctx.now_ms) continue;
    if (all || GlobMatch(pattern, key.bytes)) out.push_back(Reply::Bulk(key.bytes));
  }
  return Reply::Array(std::move(out));
}

// A SCAN cursor: decimal digits (leading zeros and a '+' allowed, as strtoull takes them)
// within uint64.
bool ParseCursor(std::string_view s, uint64_t* out) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const auto digit = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - digit) / 10) return false;
    v = v * 10 + digit;
  }
  *out = v;
  return true;
}

struct ScanOptions {
  int64_t count = 10;
  bool use_pattern = false;  // MATCH given and not "*"
  std::string_view pattern;
  bool has_type = false;
  std::string_view type;
};

bool ParseScanOptions(const Args& argv, ScanOptions* o, Reply* error) {
  for (size_t i = 2; i < argv.size(); i += 2) {
    if (i + 1 >= argv.size()) {
      *error = SyntaxError();
      return false;
    }
    const std::string& value = argv[i + 1];
    if (EqualsIgnoreCase(argv[i], "count")) {
      if (!ParseInt64(value, &o->count)) {
        *error = NotInteger();
        return false;
      }
      if (o->count < 1) {
        *error = SyntaxError();
        return false;
      }
    } else if (EqualsIgnoreCase(argv[i], "match")) {
      o->use_pattern = value != "*";
      o->pattern = value;
    } else if (EqualsIgnoreCase(argv[i], "type")) {
      o->has_type = true;
      o->type = value;
    } else {
      *error = SyntaxError();
      return false;
    }
  }
  return true;
}

// SCAN: the cursor is a position (see keyspace.h). A batch never ends between two keys of one
// position, because the next call restarts at the first key of the cursor's position.
Reply Scan(const Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() < 2) return WrongArity("scan");
  uint64_t cursor = 0;
  if (!ParseCursor(argv[1], &cursor)) return Reply::Err("ERR invalid cursor");
  ScanOptions o;
  Reply error;
  if (!ParseScanOptions(argv, &o, &error)) return error;
  // Unknown type names match nothing (Redis 7 does not reject them yet).
  const bool type_ok = !o.has_type || EqualsIgnoreCase(o.type, kStringType);
  const Keyspace::Map& m = ks.map();
  auto it = m.lower_bound(Keyspace::KeyRef{cursor, ""});
  std::vector<Reply> keys;
  int64_t visited = 0;
  uint64_t last_pos = 0;
  while (it != m.end() && (visited < o.count || it->first.pos == last_pos)) {
    const auto& [key, value] = *it;
    ++visited;
    last_pos = key.pos;
    ++it;
    if (value.expire_ms != 0 && value.expire_ms <= ctx.now_ms) continue;
    if (!type_ok) continue;
    if (o.use_pattern && !GlobMatch(o.pattern, key.bytes)) continue;
    keys.push_back(Reply::Bulk(key.bytes));
  }
  const uint64_t next = it == m.end() ? 0 : it->first.pos;
  return Reply::Array({Reply::Bulk(std::to_string(next)), Reply::Array(std::move(keys))});
}

// SplitMix64: spreads the caller's random number over further probe positions.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// RANDOMKEY: the first key at or after a random position (wrapping around). An expired key is
// skipped by probing elsewhere, then by walking on from the last probe; both are bounded so a
// keyspace of expired keys costs a bounded read, and the reply is nil only when no live key
// was met (Redis would hand out an expired key rather than loop forever).
Reply RandomKey(const Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() != 1) return WrongArity("randomkey");
  const Keyspace::Map& m = ks.map();
  if (m.empty()) return Reply::Nil();
  auto live = [&ctx](const Value& v) { return v.expire_ms == 0 || v.expire_ms > ctx.now_ms; };
  constexpr int kProbes = 64;
  constexpr size_t kWalk = 10'000;
  uint64_t pos = ctx.random;
  auto it = m.end();
  for (int i = 0; i < kProbes; ++i) {
    it = m.lower_bound(Keyspace::KeyRef{pos, ""});
    if (it == m.end()) it = m.begin();
    if (live(it->second)) return Reply::Bulk(it->first.bytes);
    pos = Mix(pos);
  }
  for (size_t i = 0; i < kWalk && i < m.size(); ++i) {
    if (live(it->second)) return Reply::Bulk(it->first.bytes);
    if (++it == m.end()) it = m.begin();
  }
  return Reply::Nil();
}

Reply Touch(const Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() < 2) return WrongArity("touch");
  return Exists(ks, argv, ctx);
}

// ---- expiry ----

enum ExpireFlag : unsigned { kNx = 1, kXx = 2, kGt = 4, kLt = 8 };

bool ParseExpireFlags(const Args& argv, unsigned* flags, Reply* error) {
  for (size_t j = 3; j < argv.size(); ++j) {
    const std::string& opt = argv[j];
    if (EqualsIgnoreCase(opt, "nx")) {
      *flags |= kNx;
    } else if (EqualsIgnoreCase(opt, "xx")) {
      *flags |= kXx;
    } else if (EqualsIgnoreCase(opt, "gt")) {
      *flags |= kGt;
    } else if (EqualsIgnoreCase(opt, "lt")) {
      *flags |= kLt;
    } else {
      // An error reply is one line: Redis turns line breaks in the echoed option into spaces.
      std::string text = "ERR Unsupported option " + opt;
      for (char& c : text) {
        if (c == '\r' || c == '\n') c = ' ';
      }
      *error = Reply::Err(std::move(text));
      return false;
    }
  }
  if ((*flags & kNx) != 0 && (*flags & (kXx | kGt | kLt)) != 0) {
    *error = Reply::Err("ERR NX and XX, GT or LT options at the same time are not compatible");
    return false;
  }
  if ((*flags & kGt) != 0 && (*flags & kLt) != 0) {
    *error = Reply::Err("ERR GT and LT options at the same time are not compatible");
    return false;
  }
  return true;
}

// Whether the flags allow replacing `current` (0 = persistent) with `when`. A persistent key
// has an infinite TTL: GT never beats it, LT always does.
bool ExpireAllowed(unsigned flags, int64_t current, int64_t when) {
  if ((flags & kNx) != 0 && current != 0) return false;
  if ((flags & kXx) != 0 && current == 0) return false;
  if ((flags & kGt) != 0 && (current == 0 || when <= current)) return false;
  if ((flags & kLt) != 0 && current != 0 && when >= current) return false;
  return true;
}

// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT: `basetime` is now (relative forms) or 0 (absolute).
Reply ExpireGeneric(Keyspace& ks, const Args& argv, const ExecContext& ctx, const char* name,
                    int64_t basetime, bool seconds) {
  if (argv.size() < 3) return WrongArity(name);
  unsigned flags = 0;
  Reply error;
  if (!ParseExpireFlags(argv, &flags, &error)) return error;
  int64_t when = 0;
  if (!ParseInt64(argv[2], &when)) return NotInteger();
  const Reply bad_time =
      Reply::Err("ERR invalid expire time in '" + std::string(name) + "' command");
  if (seconds && __builtin_mul_overflow(when, int64_t{1000}, &when)) return bad_time;
  if (__builtin_add_overflow(when, basetime, &when)) return bad_time;
  Value* v = ks.FindForWrite(argv[1], ctx.now_ms);
  if (v == nullptr) return Reply::Int(0);
  if (!ExpireAllowed(flags, v->expire_ms, when)) return Reply::Int(0);
  // A time already past deletes the key (expire_ms 0 would mean persistent, so it counts too).
  if (when <= ctx.now_ms || when <= 0) {
    ks.Erase(argv[1]);
    return Reply::Int(1);
  }
  ks.SetExpire(argv[1], *v, when);
  return Reply::Int(1);
}

Reply Expire(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  return ExpireGeneric(ks, argv, ctx, "expire", ctx.now_ms, true);
}
Reply PExpire(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  return ExpireGeneric(ks, argv, ctx, "pexpire", ctx.now_ms, false);
}
Reply ExpireAt(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  return ExpireGeneric(ks, argv, ctx, "expireat", 0, true);
}
Reply PExpireAt(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  return ExpireGeneric(ks, argv, ctx, "pexpireat", 0, false);
}

// TTL, PTTL, EXPIRETIME, PEXPIRETIME: -2 missing, -1 persistent, else the remaining time
// (relative) or the expiry (absolute); seconds round to nearest as Redis's (ms+500)/1000.
Reply TtlGeneric(const Keyspace& ks, const Args& argv, const ExecContext& ctx, const char* name,
                 bool ms, bool absolute) {
  if (argv.size() != 2) return WrongArity(name);
  const Value* v = ks.Find(argv[1], ctx.now_ms);
  if (v == nullptr) return Reply::Int(-2);
  if (v->expire_ms == 0) return Reply::Int(-1);
  int64_t t = absolute ? v->expire_ms : v->expire_ms - ctx.now_ms;
  if (t < 0) t = 0;
  if (ms) return Reply::Int(t);
  return Reply::Int(t / 1000 + (t % 1000 >= 500 ? 1 : 0));  // (t+500)/1000 without overflow
}

Reply Ttl(const Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  return TtlGeneric(ks, argv, ctx, "ttl", false, false);
}
Reply PTtl(const Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  return TtlGeneric(ks, argv, ctx, "pttl", true, false);
}
Reply ExpireTime(const Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  return TtlGeneric(ks, argv, ctx, "expiretime", false, true);
}
Reply PExpireTime(const Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  return TtlGeneric(ks, argv, ctx, "pexpiretime", true, true);
}

Reply Persist(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() != 2) return WrongArity("persist");
  Value* v = ks.FindForWrite(argv[1], ctx.now_ms);
  if (v == nullptr || v->expire_ms == 0) return Reply::Int(0);
  ks.SetExpire(argv[1], *v, 0);
  return Reply::Int(1);
}

Reply DbSize(const Keyspace& ks, const Args& argv, const ExecContext&) {
  if (argv.size() != 1) return WrongArity("dbsize");
  return Reply::Int(static_cast<int64_t>(ks.size()));
}

// FLUSHDB and FLUSHALL: one database, so both clear everything; ASYNC and SYNC are accepted
// and mean the same (the clear happens within the entry either way).
Reply Flush(Keyspace& ks, const Args& argv, const ExecContext&) {
  if (argv.size() > 2) return SyntaxError();
  if (argv.size() == 2 && !EqualsIgnoreCase(argv[1], "async") &&
      !EqualsIgnoreCase(argv[1], "sync")) {
    return SyntaxError();
  }
  ks.Clear();
  return Reply::Ok();
}

// ---- glob ----

// Matches the one-character pattern element at pattern[*p] ('?', a [class], a \escape or a
// literal) against c, and moves *p past it. Mirrors stringmatchlen's quirks: an unterminated
// class runs to the end of the pattern, "x-y" ranges may be reversed, and in "[a-]" the '-'
// makes ']' the range's end rather than the class's.
bool MatchElement(std::string_view pat, size_t* p, unsigned char c) {
  const size_t n = pat.size();
  size_t i = *p;
  if (pat[i] == '?') {
    *p = i + 1;
    return true;
  }
  if (pat[i] == '\\' && i + 1 < n) {
    *p = i + 2;
    return static_cast<unsigned char>(pat[i + 1]) == c;
  }
  if (pat[i] != '[') {
    *p = i + 1;
    return static_cast<unsigned char>(pat[i]) == c;
  }
  ++i;
  const bool negate = i < n && pat[i] == '^';
  if (negate) ++i;
  bool match = false;
  for (;; ++i) {
    if (i >= n) break;  // unterminated: the class ends with the pattern
    const auto here = static_cast<unsigned char>(pat[i]);
    if (here == '\\' && n - i >= 2) {
      ++i;
      match |= static_cast<unsigned char>(pat[i]) == c;
    } else if (here == ']') {
      ++i;
      break;
    } else if (n - i >= 3 && pat[i + 1] == '-') {
      unsigned char lo = here;
      unsigned char hi = static_cast<unsigned char>(pat[i + 2]);
      if (lo > hi) std::swap(lo, hi);
      match |= c >= lo && c <= hi;
      i += 2;
    } else {
      match |= here == c;
    }
  }
  *p = i;
  return match != negate;
}

}  // namespace

// Iterative glob matching: every element but '*' consumes exactly one character, so on a
// mismatch only the latest '*' needs to absorb one more character (earlier stars could only
// shift the same suffix match later). O(pattern * string) time, constant stack.
bool GlobMatch(std::string_view pattern, std::string_view s) {
  constexpr size_t kNone = std::string_view::npos;
  size_t p = 0;
  size_t i = 0;
  size_t star_p = kNone;  // the pattern index just after the latest '*' run
  size_t star_i = 0;      // where in s that star's match currently ends
  while (i < s.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      while (p < pattern.size() && pattern[p] == '*') ++p;
      if (p == pattern.size()) return true;
      star_p = p;
      star_i = i;
      continue;
    }
    size_t next = p;
    if (p < pattern.size() && MatchElement(pattern, &next, static_cast<unsigned char>(s[i]))) {
      p = next;
      ++i;
      continue;
    }
    if (star_p == kNone) return false;
    p = star_p;
    i = ++star_i;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

void AddKeyCommands(std::vector<RedisCommand>* table) {
  table->push_back({"del", -2, nullptr, Del, 1, -1, 1});
  table->push_back({"unlink", -2, nullptr, Del, 1, -1, 1});
  table->push_back({"exists", -2, Exists, nullptr, 1, -1, 1});
  table->push_back({"type", 2, Type, nullptr});
  table->push_back({"rename", 3, nullptr, Rename, 1, 2, 1});
  table->push_back({"renamenx", 3, nullptr, RenameNx, 1, 2, 1});
  table->push_back({"copy", -3, nullptr, Copy, 1, 2, 1});
  table->push_back({"keys", 2, Keys, nullptr, 0, 0, 0});
  table->push_back({"scan", -2, Scan, nullptr, 0, 0, 0});
  table->push_back({"randomkey", 1, RandomKey, nullptr, 0, 0, 0});
  table->push_back({"touch", -2, Touch, nullptr, 1, -1, 1});
  table->push_back({"expire", -3, nullptr, Expire});
  table->push_back({"pexpire", -3, nullptr, PExpire});
  table->push_back({"expireat", -3, nullptr, ExpireAt});
  table->push_back({"pexpireat", -3, nullptr, PExpireAt});
  table->push_back({"ttl", 2, Ttl, nullptr});
  table->push_back({"pttl", 2, PTtl, nullptr});
  table->push_back({"expiretime", 2, ExpireTime, nullptr});
  table->push_back({"pexpiretime", 2, PExpireTime, nullptr});
  table->push_back({"persist", 2, nullptr, Persist});
  table->push_back({"dbsize", 1, DbSize, nullptr, 0, 0, 0});
  table->push_back({"flushdb", -1, nullptr, Flush, 0, 0, 0});
  table->push_back({"flushall", -1, nullptr, Flush, 0, 0, 0});
}

}  // namespace synod::kv::redis
