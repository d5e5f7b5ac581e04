// Commands and replies of the key-value state machine, and their wire format.
//
// A Command is what a client asks for (GET, PUT, DEL, CAS, INCR, APPEND on one key); it is
// encoded with EncodeCommand, proposed to Raft, and once committed decoded and applied by every
// replica (see state_machine.h). A Reply is what applying it produced. Both are plain values;
// the Protocol Buffers schema behind the encoding (kv.proto) stays inside src/kv/.
//
// Thread-safety: values; the functions are pure and may be called from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ids.h"
#include "common/slot.h"
#include "common/status.h"

namespace synod::kv {

enum class Op : uint8_t {
  kGet = 1,     // reply.value = the value, or nullopt when the key is absent
  kPut = 2,     // sets key to value; reply carries nothing but the code
  kDel = 3,     // removes key; reply.success = whether it existed
  kCas = 4,     // sets key to value iff its current value equals expected (see Command)
  kIncr = 5,    // adds delta to the integer in key (absent = 0); reply.number = the result
  kAppend = 6,  // appends value to key (absent = ""); reply.number = the new length
  // Applies `batch` in order as one atomic step (MSET, multi-key DEL, MULTI/EXEC): no other
  // command is applied between two sub-commands, and every replica applies all of them or none.
  // A failing sub-command (a non-integer INCR) does not stop the others, as in Redis's EXEC.
  // reply.replies holds one reply per sub-command. Sub-commands are not batches and carry no
  // session (the batch's client_id and seq cover the whole).
  kBatch = 7,
  // A Redis string or keyspace command (redis.h): `args` is its argv (args[0] the name, any
  // case), executed at the entry's logical time `now_ms`. In a batch (MULTI/EXEC), the batch's
  // `watches` are checked first: when any watched key changed since `watch_index`, nothing is
  // applied and the reply is a null array.
  kRedis = 8,
  // Replicated expiry (proposed by the leader): deletes each key of `args` whose expiry is at or
  // before `now_ms`. Keys that are absent, persistent or not yet due are left alone.
  kExpire = 9,
};

std::string_view OpName(Op op);

// The most sub-commands one BATCH may hold (Redis's limit on arguments is 1M; MSET of that
// many pairs is one entry of that many puts).
inline constexpr size_t kBatchMax = 1 << 20;

struct Command {
  Op op = Op::kGet;
  std::string key;
  // PUT and APPEND: the value. CAS: the value to set on success. Ignored by other ops.
  std::string value;
  // CAS only: the value the key must hold for the swap to happen; nullopt means the key must be
  // absent (so "expected empty string" and "expected absent" differ).
  std::optional<std::string> expected;
  // INCR only: the amount to add (may be negative).
  int64_t delta = 0;
  // At-most-once session (Raft thesis §6.3). 0 means "no session": the command is applied every
  // time it is committed. Otherwise seq numbers this client's commands from 1 upwards, and a
  // client has at most one outstanding command per client_id (see StateMachine::Apply).
  uint64_t client_id = 0;
  uint64_t seq = 0;  // >= 1 when client_id != 0; 0 when client_id == 0
  // BATCH only: the sub-commands. At most kBatchMax.
  std::vector<Command> batch;
  // REDIS: argv; EXPIRE: the keys. At most kBatchMax.
  std::vector<std::string> args;
  // REDIS, EXPIRE and a BATCH of REDIS commands: the proposer's clock (Unix ms) when it
  // proposed. Applying never lets the state machine's clock go backwards (see StateMachine).
  int64_t now_ms = 0;
  // BATCH only (EXEC after WATCH): keys with the version they had at watch_index.
  std::vector<std::pair<std::string, LogIndex>> watches;
  LogIndex watch_index;
  // The slots of the command's keys (of a batch's sub-commands too), as the node that routed
  // it computed them; nullopt for a command without keys. A state machine that owns a slot
  // range applies only commands whose slots lie in it (else kWrongShard): a command routed by
  // a map from before a split never lands in the shard that gave those slots away.
  std::optional<SlotRange> slots;

  bool operator==(const Command&) const = default;
};

// The outcome class of a reply. Errors are replies, never exceptions or crashes: they are part
// of the replicated state (a session caches them) and every replica produces the same one.
enum class ReplyCode : uint8_t {
  kOk = 0,
  kNotInteger = 1,      // INCR on a value that is not a decimal int64, or the sum overflows
  kKeyTooLarge = 2,     // key longer than Options::key_bytes_max
  kValueTooLarge = 3,   // the value (or APPEND's result) longer than Options::value_bytes_max
  kStaleRequest = 4,    // seq is below the client's latest applied seq
  kSessionExpired = 5,  // the client's session was evicted (or never existed) and seq > 1
  kBadCommand = 6,      // the entry did not decode, or the command violates its own rules
  // The command's slots are not (all) this shard's: it was routed by a stale map (the shard
  // split since). Nothing was applied; the router learns the new layout and sends it on.
  kWrongShard = 7,
};
inline constexpr uint8_t kReplyCodeMax = 7;

// The Redis-style message for a code ("" for kOk). Stable: clients may see and match it.
std::string_view ReplyCodeMessage(ReplyCode code);

// The shape of a Redis reply (kRedis commands). Legacy ops leave it kNone and their callers
// read the fields directly.
enum class ReplyType : uint8_t {
  kNone = 0,
  kStatus = 1,     // +value
  kError = 2,      // -value (the whole text, "ERR ..." or "WRONGTYPE ...")
  kInteger = 3,    // :number
  kBulk = 4,       // $value
  kNull = 5,       // a null bulk ($-1 / _)
  kArray = 6,      // *replies
  kNullArray = 7,  // a null array (*-1 / _)
  kMap = 8,        // replies hold keys and values alternately: %n in RESP3, an array in RESP2
  kDouble = 9,     // value holds the text: ,value in RESP3, a bulk string in RESP2
  // The RESP3 types a script may return (compute/): a boolean (number 0 or 1: #t/#f in RESP3,
  // :1/:0 in RESP2), a set (replies: ~n in RESP3, an array in RESP2), a big number (value
  // holds the digits: ( in RESP3, a bulk string in RESP2) and a verbatim string (value holds
  // the three-letter format, ':' and the text: = in RESP3, a bulk string of the text in RESP2).
  kBool = 10,
  kSet = 11,
  kBigNumber = 12,
  kVerbatim = 13,
};
inline constexpr uint8_t kReplyTypeMax = 13;

struct Reply {
  ReplyCode code = ReplyCode::kOk;
  ReplyType type = ReplyType::kNone;
  // GET: the value or nullopt (absent). CAS: the key's value after the command, or nullopt.
  std::optional<std::string> value;
  // DEL: the key existed and was removed. CAS: the swap happened.
  bool success = false;
  // INCR: the new integer. APPEND: the new length in bytes.
  int64_t number = 0;
  // BATCH: one reply per sub-command, in order.
  std::vector<Reply> replies;

  bool ok() const { return code == ReplyCode::kOk; }
  std::string_view message() const { return ReplyCodeMessage(code); }
  bool operator==(const Reply&) const = default;

  static Reply Error(ReplyCode c) {
    Reply r;
    r.code = c;
    return r;
  }
  // Redis-shaped replies.
  static Reply Status(std::string text) { return Typed(ReplyType::kStatus, std::move(text)); }
  static Reply Ok() { return Status("OK"); }
  static Reply Err(std::string text) { return Typed(ReplyType::kError, std::move(text)); }
  static Reply Int(int64_t n) {
    Reply r;
    r.type = ReplyType::kInteger;
    r.number = n;
    return r;
  }
  static Reply Bulk(std::string bytes) { return Typed(ReplyType::kBulk, std::move(bytes)); }
  static Reply Nil() {
    Reply r;
    r.type = ReplyType::kNull;
    return r;
  }
  static Reply Array(std::vector<Reply> items) {
    Reply r;
    r.type = ReplyType::kArray;
    r.replies = std::move(items);
    return r;
  }
  static Reply NullArray() {
    Reply r;
    r.type = ReplyType::kNullArray;
    return r;
  }
  bool is_error() const { return type == ReplyType::kError; }

 private:
  static Reply Typed(ReplyType t, std::string v) {
    Reply r;
    r.type = t;
    r.value = std::move(v);
    return r;
  }
};

// The bytes to put in a Raft entry. Never empty (an empty entry is Raft's no-op).
std::string EncodeCommand(const Command& cmd);

// Parses bytes produced by EncodeCommand. Returns kInvalidArgument (never crashes) when the
// bytes are not a Command, the op is unknown, or the session fields break the rule on `seq`.
Result<Command> DecodeCommand(std::string_view data);

// A Reply in bytes, for a node that answers a request forwarded by another node.
std::string EncodeReply(const Reply& reply);
// Parses bytes produced by EncodeReply. kInvalidArgument (never crashes) when they are not a
// Reply, a code or type is unknown, or replies nest deeper than the state machine makes them.
Result<Reply> DecodeReply(std::string_view data);

}  // namespace synod::kv
