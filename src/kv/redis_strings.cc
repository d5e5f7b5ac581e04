// Redis's string commands (redis.h): GET/SET and their variants, counters, ranges and LCS.
//
// Each function follows the order of checks of Redis 7's t_string.c, because that order decides
// which error a client sees when several things are wrong at once (a syntax error beats a bad
// expire time, a bad expire time beats a missing key for SET, not for GETEX, ...).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kv/redis.h"

namespace synod::kv::redis {

namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

Reply KeyTooLong() { return Reply::Err("ERR key exceeds the maximum key size"); }

Reply InvalidExpire(std::string_view command) {
  return Reply::Err("ERR invalid expire time in '" + std::string(command) + "' command");
}

// Whether `key` may hold a value of `value_size` bytes; *error says why not.
bool FitsLimits(const ExecContext& ctx, std::string_view key, uint64_t value_size, Reply* error) {
  if (key.size() > ctx.key_bytes_max) {
    *error = KeyTooLong();
    return false;
  }
  if (value_size > ctx.value_bytes_max) {
    *error = TooLarge();
    return false;
  }
  return true;
}

// ---- SET / GETEX options (Redis's parseExtendedStringArgumentsOrReply) ----

enum Flag : uint32_t {
  kNx = 1u << 0,
  kXx = 1u << 1,
  kGet = 1u << 2,
  kKeepTtl = 1u << 3,
  kPersist = 1u << 4,
  kEx = 1u << 5,
  kPx = 1u << 6,
  kExAt = 1u << 7,
  kPxAt = 1u << 8,
};
constexpr uint32_t kAnyExpire = kEx | kPx | kExAt | kPxAt;

struct ExtendedArgs {
  uint32_t flags = 0;
  const std::string* expire = nullptr;  // the argument of EX/PX/EXAT/PXAT
};

// The flag of an expire option name, or 0.
uint32_t ExpireOption(std::string_view opt) {
  if (EqualsIgnoreCase(opt, "ex")) return kEx;
  if (EqualsIgnoreCase(opt, "px")) return kPx;
  if (EqualsIgnoreCase(opt, "exat")) return kExAt;
  if (EqualsIgnoreCase(opt, "pxat")) return kPxAt;
  return 0;
}

// Parses argv[first..]; false means "ERR syntax error". As in Redis, repeating an option is
// allowed (the last expire value wins) but two different expire options conflict, and NX/XX,
// KEEPTTL/expire and PERSIST/expire exclude each other. NX, XX, GET and KEEPTTL are SET's;
// PERSIST is GETEX's.
bool ParseExtended(const Args& argv, size_t first, bool for_set, ExtendedArgs* out) {
  uint32_t& f = out->flags;
  for (size_t j = first; j < argv.size(); ++j) {
    const std::string& opt = argv[j];
    const uint32_t expire_flag = ExpireOption(opt);
    if (for_set && EqualsIgnoreCase(opt, "nx") && !(f & kXx)) {
      f |= kNx;
    } else if (for_set && EqualsIgnoreCase(opt, "xx") && !(f & kNx)) {
      f |= kXx;
    } else if (for_set && EqualsIgnoreCase(opt, "get")) {
      f |= kGet;
    } else if (for_set && EqualsIgnoreCase(opt, "keepttl") && !(f & (kPersist | kAnyExpire))) {
      f |= kKeepTtl;
    } else if (!for_set && EqualsIgnoreCase(opt, "persist") && !(f & (kKeepTtl | kAnyExpire))) {
      f |= kPersist;
    } else if (expire_flag != 0 && j + 1 < argv.size() &&
               !(f & (kKeepTtl | kPersist | (kAnyExpire & ~expire_flag)))) {
      f |= expire_flag;
      out->expire = &argv[++j];
    } else {
      return false;
    }
  }
  return true;
}

// Redis's getExpireMillisecondsOrReply: the absolute expiry (Unix ms) that `arg` asks for.
// Refuses values <= 0 and results that overflow int64 or are not positive.
bool ExpireMs(const std::string& arg, uint32_t flags, const ExecContext& ctx,
              std::string_view command, int64_t* ms, Reply* error) {
  int64_t v = 0;
  if (!ParseInt64(arg, &v)) {
    *error = NotInteger();
    return false;
  }
  const bool seconds = (flags & (kEx | kExAt)) != 0;
  if (v <= 0 || (seconds && v > kInt64Max / 1000)) {
    *error = InvalidExpire(command);
    return false;
  }
  if (seconds) v *= 1000;
  if ((flags & (kEx | kPx)) != 0) {
    if (ctx.now_ms > 0 && v > kInt64Max - ctx.now_ms) {
      *error = InvalidExpire(command);
      return false;
    }
    v += ctx.now_ms;
  }
  if (v <= 0) {
    *error = InvalidExpire(command);
    return false;
  }
  *ms = v;
  return true;
}

// What SET, SETNX, SETEX and PSETEX share (Redis's setGenericCommand).
struct SetSpec {
  uint32_t flags = 0;
  const std::string* expire = nullptr;
  std::string_view command;          // names the command in "invalid expire time" errors
  Reply ok = Reply::Ok();            // the reply when the value was set
  Reply not_applied = Reply::Nil();  // the reply when NX or XX prevented it
};

Reply SetGeneric(Keyspace& ks, const std::string& key, const std::string& value,
                 const SetSpec& spec, const ExecContext& ctx) {
  Reply error;
  if (!FitsLimits(ctx, key, value.size(), &error)) return error;
  int64_t expire_ms = 0;
  if (spec.expire != nullptr &&
      !ExpireMs(*spec.expire, spec.flags, ctx, spec.command, &expire_ms, &error)) {
    return error;
  }
  Value* old = ks.FindForWrite(key, ctx.now_ms);
  const bool get = (spec.flags & kGet) != 0;
  Reply old_reply = get && old != nullptr ? Reply::Bulk(old->bytes) : Reply::Nil();
  if (((spec.flags & kNx) && old != nullptr) || ((spec.flags & kXx) && old == nullptr)) {
    return get ? old_reply : spec.not_applied;
  }
  if (spec.expire == nullptr) {
    expire_ms = (spec.flags & kKeepTtl) && old != nullptr ? old->expire_ms : 0;
  }
  if (old != nullptr) {
    ks.Replace(key, *old, value, expire_ms);
  } else {
    ks.Put(key, value, expire_ms);
  }
  // An EXAT/PXAT in the past: Redis stores the key already expired; deleting it at once is
  // the same to every reader and leaves the tombstone a WATCH must see.
  if (expire_ms != 0 && expire_ms <= ctx.now_ms) ks.Erase(key);
  return get ? old_reply : spec.ok;
}

// ---- GET family ----

Reply Get(const Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() != 2) return WrongArity("get");
  const Value* v = ks.Find(argv[1], ctx.now_ms);
  return v == nullptr ? Reply::Nil() : Reply::Bulk(v->bytes);
}

Reply MGet(const Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() < 2) return WrongArity("mget");
  std::vector<Reply> out;
  out.reserve(argv.size() - 1);
  for (size_t i = 1; i < argv.size(); ++i) {
    const Value* v = ks.Find(argv[i], ctx.now_ms);
    out.push_back(v == nullptr ? Reply::Nil() : Reply::Bulk(v->bytes));
  }
  return Reply::Array(std::move(out));
}

Reply StrLen(const Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() != 2) return WrongArity("strlen");
  const Value* v = ks.Find(argv[1], ctx.now_ms);
  return Reply::Int(v == nullptr ? 0 : static_cast<int64_t>(v->bytes.size()));
}

Reply GetSet(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() != 3) return WrongArity("getset");
  Reply error;
  if (!FitsLimits(ctx, argv[1], argv[2].size(), &error)) return error;
  const Value* old = ks.FindForWrite(argv[1], ctx.now_ms);
  Reply out = old == nullptr ? Reply::Nil() : Reply::Bulk(old->bytes);
  ks.Put(argv[1], argv[2], 0);  // GETSET drops any TTL, like SET
  return out;
}

Reply GetDel(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() != 2) return WrongArity("getdel");
  Value* v = ks.FindForWrite(argv[1], ctx.now_ms);
  if (v == nullptr) return Reply::Nil();
  Reply out = Reply::Bulk(std::move(v->bytes));
  ks.Erase(argv[1]);
  return out;
}

Reply GetEx(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() < 2) return WrongArity("getex");
  ExtendedArgs ex;
  if (!ParseExtended(argv, 2, /*for_set=*/false, &ex)) return SyntaxError();
  Value* v = ks.FindForWrite(argv[1], ctx.now_ms);
  // Redis looks the key up before validating the time: a missing key is nil either way.
  if (v == nullptr) return Reply::Nil();
  int64_t expire_ms = 0;
  Reply error;
  if (ex.expire != nullptr && !ExpireMs(*ex.expire, ex.flags, ctx, "getex", &expire_ms, &error)) {
    return error;
  }
  Reply out = Reply::Bulk(v->bytes);
  if (ex.expire != nullptr && expire_ms <= ctx.now_ms) {
    ks.Erase(argv[1]);  // an EXAT/PXAT in the past deletes the key, as in Redis
  } else if (ex.expire != nullptr) {
    ks.SetExpire(argv[1], *v, expire_ms);
  } else if ((ex.flags & kPersist) && v->expire_ms != 0) {
    ks.SetExpire(argv[1], *v, 0);  // only a real change stamps the key (WATCH)
  }
  return out;
}

// ---- SET family ----

Reply Set(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() < 3) return WrongArity("set");
  ExtendedArgs ex;
  if (!ParseExtended(argv, 3, /*for_set=*/true, &ex)) return SyntaxError();
  SetSpec spec;
  spec.flags = ex.flags;
  spec.expire = ex.expire;
  spec.command = "set";
  return SetGeneric(ks, argv[1], argv[2], spec, ctx);
}

Reply SetNx(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() != 3) return WrongArity("setnx");
  SetSpec spec;
  spec.flags = kNx;
  spec.command = "setnx";
  spec.ok = Reply::Int(1);
  spec.not_applied = Reply::Int(0);
  return SetGeneric(ks, argv[1], argv[2], spec, ctx);
}

// SETEX key seconds value / PSETEX key milliseconds value.
Reply SetExGeneric(Keyspace& ks, const Args& argv, const ExecContext& ctx, uint32_t unit,
                   std::string_view command) {
  if (argv.size() != 4) return WrongArity(command);
  SetSpec spec;
  spec.flags = unit;
  spec.expire = &argv[2];
  spec.command = command;
  return SetGeneric(ks, argv[1], argv[3], spec, ctx);
}

Reply SetEx(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  return SetExGeneric(ks, argv, ctx, kEx, "setex");
}

Reply PSetEx(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  return SetExGeneric(ks, argv, ctx, kPx, "psetex");
}

// MSET and MSETNX: all pairs are checked before any is written, so the command is atomic.
Reply MSetGeneric(Keyspace& ks, const Args& argv, const ExecContext& ctx, bool nx) {
  const std::string_view command = nx ? "msetnx" : "mset";
  if (argv.size() < 3 || argv.size() % 2 == 0) return WrongArity(command);
  Reply error;
  for (size_t i = 1; i < argv.size(); i += 2) {
    if (!FitsLimits(ctx, argv[i], argv[i + 1].size(), &error)) return error;
  }
  if (nx) {
    // Stops at the first live key, as Redis does (expired keys before it are deleted).
    for (size_t i = 1; i < argv.size(); i += 2) {
      if (ks.FindForWrite(argv[i], ctx.now_ms) != nullptr) return Reply::Int(0);
    }
  }
  for (size_t i = 1; i < argv.size(); i += 2) ks.Put(argv[i], argv[i + 1], 0);
  return nx ? Reply::Int(1) : Reply::Ok();
}

Reply MSet(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  return MSetGeneric(ks, argv, ctx, /*nx=*/false);
}

Reply MSetNx(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  return MSetGeneric(ks, argv, ctx, /*nx=*/true);
}

// ---- counters ----

// Adds `incr` to the integer at key (absent = 0), keeping its TTL (Redis's incrDecrCommand).
Reply IncrDecr(Keyspace& ks, const std::string& key, int64_t incr, const ExecContext& ctx) {
  if (key.size() > ctx.key_bytes_max) return KeyTooLong();
  Value* v = ks.FindForWrite(key, ctx.now_ms);
  int64_t old = 0;
  if (v != nullptr && !ParseInt64(v->bytes, &old)) return NotInteger();
  if ((incr < 0 && old < 0 && incr < kInt64Min - old) ||
      (incr > 0 && old > 0 && incr > kInt64Max - old)) {
    return Reply::Err("ERR increment or decrement would overflow");
  }
  const int64_t result = old + incr;
  // Up to 20 bytes, which may exceed a small value_bytes_max: a stored value above it would
  // make the state unloadable (snapshots refuse it), so refuse as the legacy INCR op does.
  std::string text = FormatInt64(result);
  if (text.size() > ctx.value_bytes_max) return TooLarge();
  if (v == nullptr) {
    ks.Put(key, std::move(text), 0);
  } else {
    const size_t was = v->bytes.size();
    v->bytes = std::move(text);
    ks.Modified(key, *v, was);
  }
  return Reply::Int(result);
}

Reply Incr(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() != 2) return WrongArity("incr");
  return IncrDecr(ks, argv[1], 1, ctx);
}

Reply Decr(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() != 2) return WrongArity("decr");
  return IncrDecr(ks, argv[1], -1, ctx);
}

Reply IncrBy(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() != 3) return WrongArity("incrby");
  int64_t incr = 0;
  if (!ParseInt64(argv[2], &incr)) return NotInteger();
  return IncrDecr(ks, argv[1], incr, ctx);
}

Reply DecrBy(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() != 3) return WrongArity("decrby");
  int64_t decr = 0;
  if (!ParseInt64(argv[2], &decr)) return NotInteger();
  // -INT64_MIN does not exist (Redis 7's check).
  if (decr == kInt64Min) return Reply::Err("ERR decrement would overflow");
  return IncrDecr(ks, argv[1], -decr, ctx);
}

Reply IncrByFloat(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() != 3) return WrongArity("incrbyfloat");
  if (argv[1].size() > ctx.key_bytes_max) return KeyTooLong();
  Value* v = ks.FindForWrite(argv[1], ctx.now_ms);
  long double value = 0;
  long double incr = 0;
  if ((v != nullptr && !ParseLongDouble(v->bytes, &value)) || !ParseLongDouble(argv[2], &incr)) {
    return NotFloat();
  }
  value += incr;
  if (std::isnan(value) || std::isinf(value)) {
    return Reply::Err("ERR increment would produce NaN or Infinity");
  }
  // Redis stores the formatted text (not the long double), so replicas stay byte-identical.
  std::string text = FormatLongDouble(value);
  if (text.size() > ctx.value_bytes_max) return TooLarge();
  if (v == nullptr) {
    ks.Put(argv[1], text, 0);
  } else {
    const size_t was = v->bytes.size();
    v->bytes = text;
    ks.Modified(argv[1], *v, was);  // keeps the TTL, as Redis's dbReplaceValue
  }
  return Reply::Bulk(std::move(text));
}

// ---- byte ranges ----

Reply Append(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() != 3) return WrongArity("append");
  Value* v = ks.FindForWrite(argv[1], ctx.now_ms);
  if (v == nullptr) {
    Reply error;
    if (!FitsLimits(ctx, argv[1], argv[2].size(), &error)) return error;
    ks.Put(argv[1], argv[2], 0);
    return Reply::Int(static_cast<int64_t>(argv[2].size()));
  }
  if (v->bytes.size() + argv[2].size() > ctx.value_bytes_max) return TooLarge();
  const size_t was = v->bytes.size();
  v->bytes += argv[2];
  ks.Modified(argv[1], *v, was);  // Redis signals the key even for an empty suffix
  return Reply::Int(static_cast<int64_t>(v->bytes.size()));
}

// Redis 7's GETRANGE clamping: negative indexes count from the end, then both are clamped into
// the string. Note the quirk Redis keeps for compatibility: an end before the start of the
// string is clamped to 0, so GETRANGE "abc" 0 -100 is "a" (only start > end when both are
// negative short-circuits to "").
Reply GetRange(const Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() != 4) return WrongArity("getrange");
  int64_t start = 0;
  int64_t end = 0;
  if (!ParseInt64(argv[2], &start) || !ParseInt64(argv[3], &end)) return NotInteger();
  const Value* v = ks.Find(argv[1], ctx.now_ms);
  if (v == nullptr) return Reply::Bulk("");
  const int64_t len = static_cast<int64_t>(v->bytes.size());
  if (start < 0 && end < 0 && start > end) return Reply::Bulk("");
  if (start < 0) start += len;
  if (end < 0) end += len;
  if (start < 0) start = 0;
  if (end < 0) end = 0;
  if (end >= len) end = len - 1;
  if (len == 0 || start > end) return Reply::Bulk("");
  return Reply::Bulk(
      v->bytes.substr(static_cast<size_t>(start), static_cast<size_t>(end - start + 1)));
}

Reply SetRange(Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() != 4) return WrongArity("setrange");
  int64_t offset = 0;
  if (!ParseInt64(argv[2], &offset)) return NotInteger();
  if (offset < 0) return Reply::Err("ERR offset is out of range");
  const std::string& patch = argv[3];
  Value* v = ks.FindForWrite(argv[1], ctx.now_ms);
  // Writing nothing changes nothing: a missing key stays missing, an existing one keeps its
  // length, whatever the offset.
  if (patch.empty()) return Reply::Int(v == nullptr ? 0 : static_cast<int64_t>(v->bytes.size()));
  const uint64_t off = static_cast<uint64_t>(offset);
  if (off > ctx.value_bytes_max || patch.size() > ctx.value_bytes_max - off) return TooLarge();
  if (v == nullptr) {
    if (argv[1].size() > ctx.key_bytes_max) return KeyTooLong();
    std::string bytes(off, '\0');
    bytes += patch;
    ks.Put(argv[1], std::move(bytes), 0);
    return Reply::Int(static_cast<int64_t>(off + patch.size()));
  }
  const size_t was = v->bytes.size();
  if (v->bytes.size() < off + patch.size()) v->bytes.resize(off + patch.size(), '\0');
  v->bytes.replace(off, patch.size(), patch);
  ks.Modified(argv[1], *v, was);
  return Reply::Int(static_cast<int64_t>(v->bytes.size()));
}

// ---- LCS ----

struct LcsOptions {
  bool len = false;
  bool idx = false;
  bool with_match_len = false;
  int64_t min_match_len = 0;
};

bool ParseLcsOptions(const Args& argv, LcsOptions* o, Reply* error) {
  for (size_t j = 3; j < argv.size(); ++j) {
    const std::string& opt = argv[j];
    if (EqualsIgnoreCase(opt, "idx")) {
      o->idx = true;
    } else if (EqualsIgnoreCase(opt, "len")) {
      o->len = true;
    } else if (EqualsIgnoreCase(opt, "withmatchlen")) {
      o->with_match_len = true;
    } else if (EqualsIgnoreCase(opt, "minmatchlen") && j + 1 < argv.size()) {
      if (!ParseInt64(argv[++j], &o->min_match_len)) {
        *error = NotInteger();
        return false;
      }
      if (o->min_match_len < 0) o->min_match_len = 0;
    } else {
      *error = SyntaxError();
      return false;
    }
  }
  if (o->idx && o->len) {
    *error = Reply::Err("ERR If you want both the length and indexes, please just use IDX.");
    return false;
  }
  return true;
}

// The dynamic-programming table: at (i, j) the LCS length of a[0..i) and b[0..j).
class LcsTable {
 public:
  LcsTable(std::string_view a, std::string_view b)
      : cols_(b.size() + 1), cells_((a.size() + 1) * (b.size() + 1), 0) {
    for (size_t i = 1; i <= a.size(); ++i) {
      for (size_t j = 1; j <= b.size(); ++j) {
        cell(i, j) =
            a[i - 1] == b[j - 1] ? at(i - 1, j - 1) + 1 : std::max(at(i - 1, j), at(i, j - 1));
      }
    }
  }
  uint32_t at(size_t i, size_t j) const { return cells_[i * cols_ + j]; }

 private:
  uint32_t& cell(size_t i, size_t j) { return cells_[i * cols_ + j]; }
  size_t cols_;
  std::vector<uint32_t> cells_;
};

Reply LcsMatch(uint32_t a_start, uint32_t a_end, uint32_t b_start, uint32_t b_end, bool with_len) {
  std::vector<Reply> m;
  m.push_back(Reply::Array({Reply::Int(a_start), Reply::Int(a_end)}));
  m.push_back(Reply::Array({Reply::Int(b_start), Reply::Int(b_end)}));
  if (with_len) m.push_back(Reply::Int(a_end - a_start + 1));
  return Reply::Array(std::move(m));
}

// Walks the table back from the end as Redis 7 does, building the LCS string and, for IDX,
// the matched ranges from the last to the first (Redis's order).
Reply LcsReply(std::string_view a, std::string_view b, const LcsTable& t, const LcsOptions& o) {
  const uint32_t total = t.at(a.size(), b.size());
  std::string result(total, '\0');
  std::vector<Reply> matches;
  uint32_t idx = total;
  size_t i = a.size();
  size_t j = b.size();
  bool in_range = false;
  uint32_t a_start = 0, a_end = 0, b_start = 0, b_end = 0;
  while (i > 0 && j > 0) {
    bool emit = false;
    if (a[i - 1] == b[j - 1]) {
      result[--idx] = a[i - 1];
      if (!in_range) {
        in_range = true;
        a_start = a_end = static_cast<uint32_t>(i - 1);
        b_start = b_end = static_cast<uint32_t>(j - 1);
      } else {
        // Walking back diagonally always extends the current range: a mismatch step closes
        // the range before a gap can appear.
        --a_start;
        --b_start;
      }
      if (a_start == 0 || b_start == 0) emit = true;  // the walk ends here
      --i;
      --j;
    } else {
      if (t.at(i - 1, j) > t.at(i, j - 1)) {
        --i;
      } else {
        --j;
      }
      emit = in_range;
    }
    if (emit) {
      const uint32_t match_len = a_end - a_start + 1;
      if (o.min_match_len == 0 || static_cast<int64_t>(match_len) >= o.min_match_len) {
        matches.push_back(LcsMatch(a_start, a_end, b_start, b_end, o.with_match_len));
      }
      in_range = false;
    }
  }
  if (!o.idx) return Reply::Bulk(std::move(result));
  Reply map;
  map.type = ReplyType::kMap;
  map.replies.push_back(Reply::Bulk("matches"));
  map.replies.push_back(Reply::Array(std::move(matches)));
  map.replies.push_back(Reply::Bulk("len"));
  map.replies.push_back(Reply::Int(total));
  return map;
}

Reply Lcs(const Keyspace& ks, const Args& argv, const ExecContext& ctx) {
  if (argv.size() < 3) return WrongArity("lcs");
  const Value* va = ks.Find(argv[1], ctx.now_ms);
  const Value* vb = ks.Find(argv[2], ctx.now_ms);
  const std::string_view a = va == nullptr ? std::string_view() : std::string_view(va->bytes);
  const std::string_view b = vb == nullptr ? std::string_view() : std::string_view(vb->bytes);
  LcsOptions o;
  Reply error;
  if (!ParseLcsOptions(argv, &o, &error)) return error;
  constexpr uint64_t kLenMax = std::numeric_limits<uint32_t>::max() - 1;
  if (a.size() >= kLenMax || b.size() >= kLenMax) return Reply::Err("ERR String too long for LCS");
  // Redis bounds the table's transient memory by proto-max-bulk-len; being a pure function of
  // the inputs and the replicated limit, the refusal is the same on every replica.
  const uint64_t table_bytes = (a.size() + 1) * (b.size() + 1) * sizeof(uint32_t);
  if (table_bytes > ctx.value_bytes_max) {
    return Reply::Err(
        "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
  }
  const LcsTable table(a, b);
  if (o.len && !o.idx) return Reply::Int(table.at(a.size(), b.size()));
  return LcsReply(a, b, table, o);
}

}  // namespace

void AddStringCommands(std::vector<RedisCommand>* table) {
  // Reads.
  table->push_back({"get", 2, Get, nullptr});
  table->push_back({"mget", -2, MGet, nullptr, 1, -1, 1});
  table->push_back({"strlen", 2, StrLen, nullptr});
  table->push_back({"getrange", 4, GetRange, nullptr});
  table->push_back({"lcs", -3, Lcs, nullptr, 1, 2, 1});
  // Writes.
  table->push_back({"set", -3, nullptr, Set});
  table->push_back({"setnx", 3, nullptr, SetNx});
  table->push_back({"setex", 4, nullptr, SetEx});
  table->push_back({"psetex", 4, nullptr, PSetEx});
  table->push_back({"getset", 3, nullptr, GetSet});
  table->push_back({"getdel", 2, nullptr, GetDel});
  table->push_back({"getex", -2, nullptr, GetEx});
  table->push_back({"mset", -3, nullptr, MSet, 1, -1, 2});
  table->push_back({"msetnx", -3, nullptr, MSetNx, 1, -1, 2});
  table->push_back({"incr", 2, nullptr, Incr});
  table->push_back({"decr", 2, nullptr, Decr});
  table->push_back({"incrby", 3, nullptr, IncrBy});
  table->push_back({"decrby", 3, nullptr, DecrBy});
  table->push_back({"incrbyfloat", 3, nullptr, IncrByFloat});
  table->push_back({"append", 3, nullptr, Append});
  table->push_back({"setrange", 4, nullptr, SetRange});
}

}  // namespace synod::kv::redis
