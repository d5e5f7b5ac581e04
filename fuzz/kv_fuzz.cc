// libFuzzer target for the Redis command executor of the key-value state machine
// (src/kv/redis*.cc over a Keyspace). Run it with scripts/fuzz.sh.
//
// Input layout (every byte string decodes to something; a short input just ends early):
//   byte 0, the limits: bits 0-1 value_bytes_max (4096, 64, 1 MiB, 12: below an int64's
//     20 digits), bit 2 key_bytes_max (64, 4), bit 3 tombstones_max (the default, 2), bits 4-5
//     the starting clock (2023, 0, near INT64_MAX, 1 ms).
//   then up to 64 commands, each:
//     selector byte: RedisCommands()[s % size] (upper case when (s / size) is odd), so every
//       command is reached; 0xff instead takes the name from the first argument (unknown
//       names, empty argv);
//     time byte: the clock moves before the command by (t & 63) ms, seconds or hours
//       (t >> 6 = 0, 1, 2), or to within -32..+31 ms of the earliest expiry held (3);
//     count byte: (c % 17) arguments follow, each ending at '\n' (or the input's end).
//       An argument "\xff" N U... stands for U repeated N times (a 32 KiB budget per input),
//       so values reach 4 KiB limits from small inputs.
// Each command runs through ExecuteRedis at a fresh log index; a read (or an unknown name)
// also through ExecuteRedisRead. Checked after every command:
//   - the reply is well formed (a known ReplyType, fields matching it, maps even, depth <= 8,
//     no bulk longer than the limits allow) and the read path gives the same reply;
//   - the keyspace could be snapshotted and loaded again: keys and values within the limits,
//     expire_ms >= 0, versions in 1..index, no tombstone for a stored key, tombstones within
//     their bound; KeyPosition of every key is its stored position;
//   - the expiry index matches the entries: expires_count(), Expired(now) and NextExpiry();
//     Find(key, now) is nullptr iff expire_ms != 0 && expire_ms <= now;
//   - every change is stamped and tracked: a key whose bytes or expiry changed carries the
//     current index, a deleted key leaves a tombstone at the index (or the index is the flush
//     or tombstone floor), and every changed key or tombstone is in the touched map, with the
//     live value the keyspace holds for it.
// Finally the whole sequence is replayed on a fresh keyspace: same replies, same keyspace.
//
// KV_FUZZ_TRACE=1 build/fuzz/kv_fuzz <file> prints each command with its time and reply.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/assert.h"
#include "kv/keyspace.h"
#include "kv/redis.h"
#include "kv/redis_test_util.h"

namespace synod::kv {
namespace {

constexpr size_t kCommandsMax = 64;
constexpr size_t kArgsMax = 16;
constexpr size_t kExpandBudget = 32 * 1024;
constexpr int kDepthMax = 8;
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

struct Config {
  uint64_t value_bytes_max = 4096;
  uint64_t key_bytes_max = 64;
  size_t tombstones_max = Keyspace::kTombstonesMax;
  int64_t start_ms = 0;
};

Config DecodeConfig(uint8_t b) {
  static constexpr uint64_t kValueMax[] = {4096, 64, 1 << 20, 12};
  static constexpr int64_t kStart[] = {1'700'000'000'000, 0, kInt64Max - 10'000'000, 1};
  Config c;
  c.value_bytes_max = kValueMax[b & 3];
  c.key_bytes_max = (b & 4) != 0 ? 4 : 64;
  c.tombstones_max = (b & 8) != 0 ? 2 : Keyspace::kTombstonesMax;
  c.start_ms = kStart[(b >> 4) & 3];
  return c;
}

struct Step {
  uint8_t time = 0;  // how the clock moves before the command (see the file comment)
  Args argv;
};

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  uint8_t Byte() { return empty() ? 0 : data_[pos_++]; }
  std::string Arg() {
    std::string out;
    while (!empty()) {
      const char c = static_cast<char>(data_[pos_++]);
      if (c == '\n') break;
      out.push_back(c);
    }
    if (out.size() >= 2 && static_cast<uint8_t>(out[0]) == 0xff) return Expand(out);
    return out;
  }

 private:
  std::string Expand(const std::string& token) {
    const size_t count = static_cast<uint8_t>(token[1]);
    const std::string unit = token.size() > 2 ? token.substr(2) : std::string("x");
    std::string out;
    for (size_t i = 0; i < count && out.size() + unit.size() <= budget_; ++i) out += unit;
    budget_ -= out.size();
    return out;
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  size_t budget_ = kExpandBudget;
};

std::vector<Step> DecodeSteps(Reader* in) {
  const std::vector<RedisCommand>& table = RedisCommands();
  std::vector<Step> steps;
  while (!in->empty() && steps.size() < kCommandsMax) {
    Step s;
    const uint8_t selector = in->Byte();
    s.time = in->Byte();
    const size_t argc = in->Byte() % (kArgsMax + 1);
    if (selector != 0xff) {
      std::string name = table[selector % table.size()].name;
      if ((selector / table.size()) % 2 == 1) {
        for (char& c : name) c = static_cast<char>(c - 'a' + 'A');
      }
      s.argv.push_back(std::move(name));
    }
    for (size_t i = 0; i < argc; ++i) s.argv.push_back(in->Arg());
    steps.push_back(std::move(s));
  }
  return steps;
}

int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t out = 0;
  return __builtin_add_overflow(a, b, &out) ? kInt64Max : out;
}

int64_t Advance(int64_t now, uint8_t t, const Keyspace& ks) {
  const int64_t amount = t & 63;
  switch (t >> 6) {
    case 0:
      return SaturatingAdd(now, amount);
    case 1:
      return SaturatingAdd(now, amount * 1000);
    case 2:
      return SaturatingAdd(now, amount * 3'600'000);
    default: {
      // Right around the earliest expiry, its boundary included; never backwards.
      const std::optional<int64_t> next = ks.NextExpiry();
      if (!next.has_value()) return SaturatingAdd(now, amount * 86'400'000);
      return std::max(now, SaturatingAdd(*next, amount - 32));
    }
  }
}

uint64_t Mix(uint64_t x) {  // SplitMix64, for RANDOMKEY's random number
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

void CheckReply(const Reply& r, const Config& config, int depth) {
  SYNOD_ASSERT(depth <= kDepthMax);
  SYNOD_ASSERT(r.code == ReplyCode::kOk);  // Redis replies carry their outcome in the type
  SYNOD_ASSERT(static_cast<uint8_t>(r.type) <= kReplyTypeMax);
  SYNOD_ASSERT(!r.success);
  const uint64_t bulk_max = std::max<uint64_t>({config.value_bytes_max, config.key_bytes_max, 32});
  switch (r.type) {
    case ReplyType::kNone:
      SYNOD_UNREACHABLE();  // every Redis reply has a shape
    case ReplyType::kBool:
    case ReplyType::kSet:
    case ReplyType::kBigNumber:
    case ReplyType::kVerbatim:
      SYNOD_UNREACHABLE();  // only scripts return these (compute/), no kv command
    case ReplyType::kStatus:
    case ReplyType::kError:
      SYNOD_ASSERT(r.value.has_value() && !r.value->empty());
      SYNOD_ASSERT(r.type != ReplyType::kError || ((*r.value)[0] >= 'A' && (*r.value)[0] <= 'Z'));
      SYNOD_ASSERT(r.replies.empty() && r.number == 0);
      return;
    case ReplyType::kBulk:
    case ReplyType::kDouble:
      SYNOD_ASSERT(r.value.has_value() && r.value->size() <= bulk_max);
      SYNOD_ASSERT(r.replies.empty() && r.number == 0);
      return;
    case ReplyType::kInteger:
      SYNOD_ASSERT(!r.value.has_value() && r.replies.empty());
      return;
    case ReplyType::kNull:
    case ReplyType::kNullArray:
      SYNOD_ASSERT(!r.value.has_value() && r.replies.empty() && r.number == 0);
      return;
    case ReplyType::kArray:
    case ReplyType::kMap:
      SYNOD_ASSERT(!r.value.has_value() && r.number == 0);
      SYNOD_ASSERT(r.type != ReplyType::kMap || r.replies.size() % 2 == 0);
      for (const Reply& item : r.replies) CheckReply(item, config, depth + 1);
      return;
  }
  SYNOD_UNREACHABLE();
}

// A reply on one line, as the kv tests show them, bulk strings cut to 64 bytes.
std::string Show(const Reply& r) { return testing::ShowReply(r, {.bulk_max = 64}); }

void Trace(const Args& argv, int64_t now, LogIndex index, const Reply& reply) {
  std::string line;
  for (const std::string& a : argv) {
    line += " ";
    for (char c : a.substr(0, 64)) {
      const auto u = static_cast<unsigned char>(c);
      if (u >= 0x20 && u < 0x7f) {
        line += c;
      } else {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\x%02x", u);
        line += buf;
      }
    }
    if (a.size() > 64) line += "...(" + std::to_string(a.size()) + " bytes)";
  }
  std::fprintf(stderr, "#%llu @%lld%s -> %s\n", static_cast<unsigned long long>(index.value()),
               static_cast<long long>(now), line.c_str(), Show(reply).c_str());
}

// What a key held before a command, to tell which keys the command changed.
struct Fingerprint {
  size_t size;
  size_t hash;
  int64_t expire_ms;
  bool operator==(const Fingerprint&) const = default;
};

struct Before {
  std::map<std::string, Fingerprint, std::less<>> values;
  std::map<std::string, LogIndex, std::less<>> tombstones;
};

Fingerprint FingerprintOf(const Value& v) {
  return {v.bytes.size(), std::hash<std::string_view>()(v.bytes), v.expire_ms};
}

Before Capture(const Keyspace& ks) {
  Before b;
  for (const auto& [key, value] : ks.map()) b.values.emplace(key.bytes, FingerprintOf(value));
  b.tombstones.insert(ks.tombstones().begin(), ks.tombstones().end());
  return b;
}

void CheckKeyspace(const Keyspace& ks, const Config& config, LogIndex index, int64_t now) {
  size_t with_expiry = 0;
  size_t due = 0;
  std::optional<int64_t> earliest;
  for (const auto& [key, value] : ks.map()) {
    SYNOD_ASSERT(key.bytes.size() <= config.key_bytes_max);
    SYNOD_ASSERT(value.bytes.size() <= config.value_bytes_max);
    SYNOD_ASSERT(key.pos == KeyPosition(key.bytes));
    SYNOD_ASSERT(value.expire_ms >= 0);
    SYNOD_ASSERT(value.version > LogIndex(0) && value.version <= index);
    SYNOD_ASSERT(ks.tombstones().count(key.bytes) == 0);
    const bool expired = value.expire_ms != 0 && value.expire_ms <= now;
    const Value* found = ks.Find(key.bytes, now);
    SYNOD_ASSERT(expired ? found == nullptr : found == &value);
    SYNOD_ASSERT(ks.FindRaw(key.bytes) == &value);
    if (value.expire_ms != 0) {
      ++with_expiry;
      earliest = std::min(earliest.value_or(value.expire_ms), value.expire_ms);
    }
    if (expired) ++due;
  }
  SYNOD_ASSERT(ks.expires_count() == with_expiry);
  SYNOD_ASSERT(ks.NextExpiry() == earliest);
  const std::vector<std::string> expired = ks.Expired(now, std::numeric_limits<size_t>::max());
  SYNOD_ASSERT(expired.size() == due);
  for (const std::string& key : expired) {
    const Value* v = ks.FindRaw(key);
    SYNOD_ASSERT(v != nullptr && v->expire_ms != 0 && v->expire_ms <= now);
  }
  SYNOD_ASSERT(ks.tombstone_count() <= config.tombstones_max);
  for (const auto& [key, deleted_at] : ks.tombstones()) {
    SYNOD_ASSERT(key.size() <= config.key_bytes_max);
    SYNOD_ASSERT(deleted_at > LogIndex(0) && deleted_at <= index);
  }
  SYNOD_ASSERT(ks.tombstone_floor() <= index && ks.flush_index() <= index);
}

// Every change is stamped with the current index (WATCH) and reported in `touched`, and every
// touched key carries the value the keyspace holds for it now (nullptr when it holds none).
void CheckChanges(const Before& before, const Keyspace& ks, const Keyspace::TouchedMap& touched,
                  LogIndex index) {
  for (const auto& [key, t] : touched) {
    SYNOD_ASSERT(t.known);
    SYNOD_ASSERT(t.value == ks.FindRaw(key));
  }
  for (const auto& [key, value] : ks.map()) {
    auto it = before.values.find(key.bytes);
    if (it != before.values.end() && it->second == FingerprintOf(value)) continue;
    SYNOD_ASSERT(value.version == index);
    SYNOD_ASSERT(touched.count(key.bytes) == 1);
  }
  for (const auto& [key, fp] : before.values) {
    if (ks.FindRaw(key) != nullptr) continue;
    auto t = ks.tombstones().find(key);
    SYNOD_ASSERT((t != ks.tombstones().end() && t->second == index) || ks.flush_index() == index ||
                 ks.tombstone_floor() == index);
    SYNOD_ASSERT(touched.count(key) == 1);
  }
  for (const auto& [key, deleted_at] : ks.tombstones()) {
    auto it = before.tombstones.find(key);
    if (it == before.tombstones.end() || it->second != deleted_at) {
      SYNOD_ASSERT(touched.count(key) == 1);
    }
  }
  for (const auto& [key, deleted_at] : before.tombstones) {
    if (ks.tombstones().count(key) == 0) SYNOD_ASSERT(touched.count(key) == 1);
  }
}

// Applies the steps to ks; `check` turns the per-command invariants on.
std::vector<Reply> Execute(const std::vector<Step>& steps, const Config& config, Keyspace& ks,
                           bool check) {
  Keyspace::TouchedMap touched;
  if (check) ks.set_touched(&touched);
  std::vector<Reply> replies;
  int64_t now = config.start_ms;
  uint64_t index = 0;
  static const bool trace = std::getenv("KV_FUZZ_TRACE") != nullptr;
  for (const Step& step : steps) {
    now = Advance(now, step.time, ks);
    ExecContext ctx;
    ctx.now_ms = now;
    ctx.value_bytes_max = config.value_bytes_max;
    ctx.key_bytes_max = config.key_bytes_max;
    ctx.random = Mix(index * 256 + step.time);
    ks.set_index(LogIndex(++index));
    Before before;
    if (check) before = Capture(ks);
    touched.clear();
    const Reply reply = ExecuteRedis(ks, step.argv, ctx);
    if (check && trace) Trace(step.argv, now, LogIndex(index), reply);
    if (check) {
      CheckReply(reply, config, 1);
      const RedisCommand* c = step.argv.empty() ? nullptr : FindRedisCommand(step.argv[0]);
      if (c == nullptr || c->read != nullptr) {
        const Keyspace& view = ks;
        SYNOD_ASSERT(ExecuteRedisRead(view, step.argv, ctx) == reply);
      }
      if (c == nullptr || c->read != nullptr) SYNOD_ASSERT(touched.empty());
      CheckKeyspace(ks, config, LogIndex(index), now);
      CheckChanges(before, ks, touched, LogIndex(index));
    }
    replies.push_back(reply);
  }
  ks.set_touched(nullptr);
  return replies;
}

}  // namespace
}  // namespace synod::kv

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace synod::kv;
  if (size < 1) return 0;
  const Config config = DecodeConfig(data[0]);
  Reader in(data + 1, size - 1);
  const std::vector<Step> steps = DecodeSteps(&in);
  Keyspace ks(config.tombstones_max);
  const std::vector<Reply> replies = Execute(steps, config, ks, /*check=*/true);
  // The executor is a pure function of (keyspace, argv, context): replaying gives the same.
  Keyspace again(config.tombstones_max);
  SYNOD_ASSERT(Execute(steps, config, again, /*check=*/false) == replies);
  SYNOD_ASSERT(again == ks);
  return 0;
}
