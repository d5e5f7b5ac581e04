#include "kv/state_machine.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <utility>

#include "common/assert.h"

namespace synod::kv {

using redis::FormatInt64;
using redis::ParseInt64;

StateMachine::StateMachine(Options options) : options_(options) {
  SYNOD_ASSERT(options_.sessions_max >= 1);
  SYNOD_ASSERT(options_.tombstones_max >= 1);
  state_.keys = Keyspace(options_.tombstones_max);
  SYNOD_ASSERT(options_.value_bytes_max <=
               static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
}

Reply StateMachine::Apply(LogIndex index, const Command& cmd) {
  SYNOD_ASSERT_MSG(index > state_.applied_index, "kv entries must be applied in log order");
  state_.applied_index = index;
  state_.keys.set_index(index);
  // Frozen for a merge: refused whole (no session, no clock), so that the state stays the one
  // the merge carries away; the client retries where the slots are next.
  if (state_.frozen && !MergeControl(cmd)) return Reply::Error(ReplyCode::kWrongShard);
  if (cmd.now_ms > state_.clock_ms) state_.clock_ms = cmd.now_ms;
  Reply reply;
  if (cmd.client_id == 0) {
    reply = cmd.seq == 0 ? Execute(cmd) : Reply::Error(ReplyCode::kBadCommand);
  } else {
    reply = ApplyInSession(index, cmd);
  }
  CheckInvariants();
  return reply;
}

Reply StateMachine::ApplyEntry(LogIndex index, std::string_view data) {
  SYNOD_ASSERT_MSG(index > state_.applied_index, "kv entries must be applied in log order");
  if (data.empty()) {
    state_.applied_index = index;
    return Reply();
  }
  Result<Command> cmd = DecodeCommand(data);
  if (!cmd.ok()) {
    state_.applied_index = index;
    return Reply::Error(ReplyCode::kBadCommand);
  }
  return Apply(index, *cmd);
}

std::optional<std::string_view> StateMachine::Get(std::string_view key) const {
  const Value* v = state_.keys.Find(key, state_.clock_ms);
  if (v == nullptr) return std::nullopt;
  return std::string_view(v->bytes);
}

std::optional<std::string_view> StateMachine::config(std::string_view name) const {
  auto it = state_.config.find(name);
  if (it == state_.config.end()) return std::nullopt;
  return std::string_view(it->second);
}

ExecContext StateMachine::WriteContext() const {
  ExecContext ctx;
  ctx.now_ms = state_.clock_ms;
  ctx.value_bytes_max = options_.value_bytes_max;
  ctx.key_bytes_max = options_.key_bytes_max;
  return ctx;
}

ExecContext StateMachine::ReadContext(int64_t now_ms) const {
  ExecContext ctx = WriteContext();
  ctx.now_ms = std::max(now_ms, state_.clock_ms);
  return ctx;
}

// Raft thesis §6.3: "Each server's state machine maintains a session for each client. The
// session tracks the latest serial number processed for the client, along with the associated
// response. If a server receives a command whose serial number has already been executed, it
// responds immediately without re-executing the request."
Reply StateMachine::ApplyInSession(LogIndex index, const Command& cmd) {
  if (cmd.seq == 0) return Reply::Error(ReplyCode::kBadCommand);
  auto it = state_.sessions.find(cmd.client_id);
  if (it == state_.sessions.end()) {
    // Without a session we cannot know whether seq-1 and earlier were applied; only a
    // client's very first command may open one (thesis: "session expired").
    if (cmd.seq != 1) return Reply::Error(ReplyCode::kSessionExpired);
    // Executed before the eviction that makes room for its session: a merge adds sessions.
    Reply reply = Execute(cmd);
    EvictIfFull();
    TrackSession(cmd.client_id);
    internal::Session session{.seq = 1, .last_index = index, .reply = std::move(reply)};
    state_.session_order.emplace(index, cmd.client_id);
    return state_.sessions.emplace(cmd.client_id, std::move(session)).first->second.reply;
  }
  internal::Session& session = it->second;
  // Every command of a session changes it: at least its last_index moves.
  TrackSession(cmd.client_id);
  TouchSession(cmd.client_id, session, index);
  if (cmd.seq < session.seq) return Reply::Error(ReplyCode::kStaleRequest);
  if (cmd.seq == session.seq) {
    // The planted bug (simulator only) applies a retried command a second time.
    if (options_.testing_bug_no_dedup) session.reply = Execute(cmd);
    return session.reply;
  }
  session.seq = cmd.seq;
  session.reply = Execute(cmd);
  return session.reply;
}

void StateMachine::TouchSession(uint64_t client_id, internal::Session& session, LogIndex index) {
  SYNOD_ASSERT(session.last_index < index);
  size_t erased = state_.session_order.erase({session.last_index, client_id});
  SYNOD_ASSERT(erased == 1);
  session.last_index = index;
  bool inserted = state_.session_order.emplace(index, client_id).second;
  SYNOD_ASSERT(inserted);
}

// Evicts the session whose latest command has the lowest log index. Every replica holds the
// same sessions with the same indexes, so every replica evicts the same one.
void StateMachine::EvictIfFull() {
  if (state_.sessions.size() >= options_.sessions_max) EvictOldest();
}

void StateMachine::EvictOldest() {
  SYNOD_ASSERT(!state_.session_order.empty());
  auto oldest = state_.session_order.begin();
  TrackSession(oldest->second);
  size_t erased = state_.sessions.erase(oldest->second);
  SYNOD_ASSERT(erased == 1);
  state_.session_order.erase(oldest);
}

Reply StateMachine::ExecuteBatch(const Command& cmd) {
  // EXEC after WATCH: nothing is applied when a watched key changed since the watch was read.
  // A watch older than the flush or the tombstone floor cannot be judged: it counts as changed.
  if (!cmd.watches.empty()) {
    const Keyspace& ks = state_.keys;
    bool changed = cmd.watch_index < ks.flush_index() || cmd.watch_index < ks.tombstone_floor();
    for (size_t i = 0; !changed && i < cmd.watches.size(); ++i) {
      const auto& [key, version] = cmd.watches[i];
      changed = ks.VersionOf(key, state_.clock_ms) != version;
    }
    if (changed) return Reply::NullArray();
  }
  Reply reply;
  reply.replies.reserve(cmd.batch.size());
  bool redis = false;
  for (const Command& sub : cmd.batch) {
    // DecodeCommand refuses nested batches; a directly applied one is refused here too.
    reply.replies.push_back(sub.op == Op::kBatch ? Reply::Error(ReplyCode::kBadCommand)
                                                 : Execute(sub));
    redis = redis || sub.op == Op::kRedis;
  }
  if (redis) reply.type = ReplyType::kArray;  // EXEC's reply
  return reply;
}

// Replicated settings: {kConfigSetCommand, name, value, name, value...}. The host validates
// names and values before proposing; here only the shape is checked, the same everywhere. An
// empty value removes the setting (requirepass "" means no password, as in Redis).
Reply StateMachine::ConfigSet(const std::vector<std::string>& args) {
  if (args.size() < 3 || args.size() % 2 != 1) return redis::WrongArity("config|set");
  for (size_t i = 1; i + 1 < args.size(); i += 2) {
    if (args[i + 1].empty()) {
      state_.config.erase(args[i]);
    } else {
      state_.config.insert_or_assign(args[i], args[i + 1]);
    }
  }
  return Reply::Ok();
}

std::optional<std::pair<uint64_t, std::string_view>> ParseVersioned(std::string_view stored) {
  const size_t sp = stored.find(' ');
  if (sp == std::string_view::npos || sp == 0) return std::nullopt;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(stored.data(), stored.data() + sp, v);
  if (ec != std::errc() || p != stored.data() + sp) return std::nullopt;
  return std::make_pair(v, stored.substr(sp + 1));
}

Reply StateMachine::VersionedSet(const std::vector<std::string>& args) {
  if (args.size() != 4) return redis::WrongArity("config|setversioned");
  uint64_t version = 0;
  const std::string& v = args[2];
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), version);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size()) {
    return Reply::Err("ERR version is not an unsigned integer");
  }
  auto it = state_.config.find(args[1]);
  if (it != state_.config.end()) {
    const auto stored = ParseVersioned(it->second);
    if (stored && stored->first >= version) return Reply::Int(0);
  }
  state_.config.insert_or_assign(args[1], v + " " + args[3]);
  return Reply::Int(1);
}

namespace {

// A decimal u64 argument, or nullopt.
std::optional<uint64_t> ParseU64(std::string_view v) {
  uint64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size()) return std::nullopt;
  return out;
}

}  // namespace

Reply StateMachine::AllocateId(const std::vector<std::string>& args) {
  if (args.size() != 3) return redis::WrongArity("config|allocid");
  const std::optional<uint64_t> floor = ParseU64(args[2]);
  if (!floor || *floor == UINT64_MAX) return Reply::Err("ERR floor is not an unsigned integer");
  uint64_t current = 0;
  if (auto it = state_.config.find(args[1]); it != state_.config.end()) {
    current = ParseU64(it->second).value_or(0);
  }
  const uint64_t next = std::max(current, *floor) + 1;
  if (next > static_cast<uint64_t>(INT64_MAX)) return Reply::Err("ERR ids exhausted");
  state_.config.insert_or_assign(args[1], std::to_string(next));
  return Reply::Int(static_cast<int64_t>(next));
}

void StateMachine::SetRange(SlotRange range) {
  SYNOD_ASSERT(state_.keys.size() == 0 && state_.keys.tombstone_count() == 0);
  state_.range = range;
}

Reply StateMachine::Split(const std::vector<std::string>& args) {
  if (args.size() != 6 && !(args.size() == 7 && args[6] == "auto")) {
    return redis::WrongArity("shard|split");
  }
  const std::optional<uint64_t> first = ParseU64(args[1]);
  const std::optional<uint64_t> last = ParseU64(args[2]);
  const std::optional<uint64_t> at = ParseU64(args[3]);
  const std::optional<uint64_t> child = ParseU64(args[4]);
  const std::optional<uint64_t> epoch = ParseU64(args[5]);
  if (!first || !last || !at || !child || *child == 0 || !epoch) {
    return Reply::Err("ERR split: malformed arguments");
  }
  if (!state_.range || state_.range->first != *first || state_.range->last != *last) {
    return Reply::Err("ERR split: the shard does not own exactly slots " + args[1] + "-" + args[2] +
                      " (a stale or repeated split)");
  }
  if (*at <= *first || *at > *last) {
    return Reply::Err("ERR split: slot " + args[3] + " is not inside " + args[1] + "-" + args[2] +
                      " (it would leave a side empty)");
  }
  if (!split_allowed_) {
    return Reply::Err("ERR split: the shard's membership is changing; try again");
  }
  if (state_.frozen) return Reply::Err("ERR split: the shard is merging");
  const auto at_slot = static_cast<uint16_t>(*at);
  SplitOff out;
  out.child = *child;
  out.epoch = *epoch;
  out.range = SlotRange{at_slot, state_.range->last};
  out.index = state_.applied_index;
  out.state.keys = state_.keys.SplitOff(at_slot);
  if (options_.testing_bug_split_loses_writes) {
    std::vector<std::string> recent;
    for (const auto& [key, value] : out.state.keys.map()) {
      if (value.version.value() + 16 > state_.applied_index.value()) recent.push_back(key.bytes);
    }
    for (const std::string& key : recent) out.state.keys.Erase(key);
  }
  out.state.sessions = state_.sessions;
  out.state.session_order = state_.session_order;
  out.state.applied_index = state_.applied_index;
  out.state.clock_ms = state_.clock_ms;
  out.state.config = state_.config;
  out.state.range = out.range;
  out.state.mergeable = args.size() == 7;
  state_.range->last = static_cast<uint16_t>(at_slot - 1);
  split_ = std::move(out);
  return Reply::Ok();
}

bool StateMachine::MergeControl(const Command& cmd) {
  if (cmd.op != Op::kRedis || cmd.args.empty()) return false;
  const std::string& a = cmd.args[0];
  return redis::EqualsIgnoreCase(a, kFreezeCommand) ||
         redis::EqualsIgnoreCase(a, kUnfreezeCommand) ||
         redis::EqualsIgnoreCase(a, kMergeCommand) ||
         redis::EqualsIgnoreCase(a, kCancelMergeCommand);
}

namespace {

bool HasToken(const std::vector<uint64_t>& tokens, uint64_t token) {
  return std::find(tokens.begin(), tokens.end(), token) != tokens.end();
}

// Records `token` as the latest of a bounded list (the oldest goes first when full).
void RememberToken(std::vector<uint64_t>& tokens, uint64_t token) {
  if (HasToken(tokens, token)) return;
  tokens.push_back(token);
  KeepLatestMergeRecords(tokens);
}

}  // namespace

Reply StateMachine::Freeze(const std::vector<std::string>& args) {
  if (args.size() != 3) return redis::WrongArity("shard|freeze");
  const std::optional<uint64_t> into = ParseU64(args[1]);
  const std::optional<uint64_t> token = ParseU64(args[2]);
  if (!into || *into == 0 || !token || *token == 0) {
    return Reply::Err("ERR merge: malformed arguments");
  }
  if (!state_.range) return Reply::Err("ERR merge: the meta shard does not merge");
  if (state_.frozen) {
    if (state_.frozen->token == *token) {
      return Reply::Int(static_cast<int64_t>(state_.frozen->index.value()));
    }
    return Reply::Err("ERR merge: the shard is already merging into shard " +
                      std::to_string(state_.frozen->into));
  }
  state_.frozen = internal::Frozen{*into, *token, state_.applied_index};
  return Reply::Int(static_cast<int64_t>(state_.applied_index.value()));
}

Reply StateMachine::Unfreeze(const std::vector<std::string>& args) {
  if (args.size() != 2) return redis::WrongArity("shard|unfreeze");
  const std::optional<uint64_t> token = ParseU64(args[1]);
  if (!token) return Reply::Err("ERR merge: malformed arguments");
  if (!state_.frozen) return Reply::Ok();  // a repeated unfreeze
  if (state_.frozen->token != *token) {
    return Reply::Err("ERR merge: the shard is frozen by another merge");
  }
  state_.frozen.reset();
  return Reply::Ok();
}

Reply StateMachine::CancelMerge(const std::vector<std::string>& args) {
  if (args.size() != 2) return redis::WrongArity("shard|cancelmerge");
  const std::optional<uint64_t> token = ParseU64(args[1]);
  if (!token || *token == 0) return Reply::Err("ERR merge: malformed arguments");
  if (HasToken(state_.merged_tokens, *token)) return Reply::Int(1);
  RememberToken(state_.cancelled_tokens, *token);
  return Reply::Int(0);
}

Reply StateMachine::Merge(const std::vector<std::string>& args) {
  if (args.size() != 7) return redis::WrongArity("shard|merge");
  const std::optional<uint64_t> first = ParseU64(args[1]);
  const std::optional<uint64_t> last = ParseU64(args[2]);
  const std::optional<uint64_t> from = ParseU64(args[3]);
  const std::optional<uint64_t> token = ParseU64(args[4]);
  const std::optional<uint64_t> epoch = ParseU64(args[5]);
  if (!first || !last || !from || *from == 0 || !token || *token == 0 || !epoch) {
    return Reply::Err("ERR merge: malformed arguments");
  }
  if (!state_.range || state_.range->first != *first || state_.range->last != *last) {
    return Reply::Err("ERR merge: the shard does not own exactly slots " + args[1] + "-" + args[2] +
                      " (it changed since the merge began)");
  }
  if (HasToken(state_.cancelled_tokens, *token)) {
    return Reply::Err("ERR merge: this merge was given up");
  }
  if (state_.frozen) return Reply::Err("ERR merge: the shard is itself merging");
  StateMachine other(options_);
  if (Status s = other.Restore(args[6]); !s.ok()) {
    return Reply::Err("ERR merge: the absorbed state does not load: " + s.ToString());
  }
  internal::State& in = other.state_;
  if (!in.frozen || in.frozen->token != *token || !in.range) {
    return Reply::Err("ERR merge: the absorbed state is not frozen for this merge");
  }
  const SlotRange theirs = *in.range;
  if (uint32_t{theirs.first} != uint32_t{state_.range->last} + 1 &&
      uint32_t{theirs.last} + 1 != uint32_t{state_.range->first}) {
    return Reply::Err("ERR merge: the absorbed slots are not next to the shard's");
  }
  for (const auto& [key, value] : in.keys.map()) {
    if (!theirs.Contains(KeySlot(key.bytes))) {
      return Reply::Err("ERR merge: the absorbed state holds a key outside its slots");
    }
  }
  const LogIndex index = state_.applied_index;
  state_.keys.Absorb(std::move(in.keys));
  // Sessions: a client both shards know keeps the higher seq (its later command); the absorbed
  // ones count as used at this index. The least recently used go if there are too many.
  for (auto& [client_id, session] : in.sessions) {
    auto mine = state_.sessions.find(client_id);
    if (mine != state_.sessions.end() && mine->second.seq >= session.seq) continue;
    if (mine != state_.sessions.end()) {
      state_.session_order.erase({mine->second.last_index, client_id});
      state_.sessions.erase(mine);
    }
    session.last_index = index;
    state_.session_order.emplace(index, client_id);
    state_.sessions.emplace(client_id, std::move(session));
    TrackSession(client_id);
  }
  while (state_.sessions.size() > options_.sessions_max) EvictOldest();
  state_.clock_ms = std::max(state_.clock_ms, in.clock_ms);
  state_.range = SlotRange{std::min(state_.range->first, theirs.first),
                           std::max(state_.range->last, theirs.last)};
  // The absorbed shard's own decisions carry over: a merge into it that is given up later asks
  // this shard (its tombstone names this one).
  for (uint64_t t : in.merged_tokens) RememberToken(state_.merged_tokens, t);
  for (uint64_t t : in.cancelled_tokens) RememberToken(state_.cancelled_tokens, t);
  RememberToken(state_.merged_tokens, *token);
  state_.absorbed.insert(state_.absorbed.end(), in.absorbed.begin(), in.absorbed.end());
  state_.absorbed.push_back(Absorbed{*from, theirs, *epoch});
  KeepLatestMergeRecords(state_.absorbed);
  merge_ = MergeIn{*from, *epoch, theirs, index};
  return Reply::Ok();
}

std::optional<SplitOff> StateMachine::TakeSplit() { return std::exchange(split_, std::nullopt); }

void StateMachine::Adopt(internal::State state) {
  state_ = std::move(state);
  state_.keys.set_touched(nullptr);
  CheckInvariants();
  changes_reset_ = false;
  touched_keys_.clear();
  touched_sessions_.clear();
  changes_applied_ = state_.applied_index;
  AttachTracking();
}

internal::State StateMachine::ReleaseState() {
  internal::State out = std::move(state_);
  out.keys.set_touched(nullptr);
  internal::State fresh;
  fresh.keys = Keyspace(options_.tombstones_max);
  state_ = std::move(fresh);
  changes_reset_ = false;
  touched_keys_.clear();
  touched_sessions_.clear();
  changes_applied_ = LogIndex(0);
  AttachTracking();
  return out;
}

StateChanges StateMachine::SessionsAndMeta() const {
  StateChanges out;
  out.applied = state_.applied_index;
  out.meta = EncodeMeta();
  out.sessions.reserve(state_.sessions.size());
  for (const auto& [id, session] : state_.sessions) {
    out.sessions.emplace_back(id, EncodeSession(session));
  }
  return out;
}

// Replicated expiry: deletes the listed keys that are due by the entry's clock. Deterministic:
// every replica holds the same expiry times and the same clock at this index.
Reply StateMachine::Expire(const Command& cmd) {
  int64_t deleted = 0;
  for (const std::string& key : cmd.args) {
    if (!Owns(KeySlot(key))) continue;  // proposed before a split gave its slot away
    const Value* v = state_.keys.FindRaw(key);
    if (v != nullptr && v->expire_ms != 0 && v->expire_ms <= state_.clock_ms) {
      state_.keys.Erase(key);
      ++deleted;
    }
  }
  return Reply::Int(deleted);
}

Reply StateMachine::Execute(const Command& cmd) {
  // Routed by a map from before a split: the slots are another shard's now.
  if (cmd.slots && !Owns(*cmd.slots) && !options_.testing_bug_stale_route) {
    return Reply::Error(ReplyCode::kWrongShard);
  }
  if (cmd.op == Op::kBatch) return ExecuteBatch(cmd);
  if (cmd.op == Op::kRedis) {
    for (const std::string& a : cmd.args) {
      // Keys and values are bounded by the front end; a longer argument in the log is refused
      // the same way everywhere.
      if (a.size() > std::max(options_.value_bytes_max, options_.key_bytes_max)) {
        return redis::TooLarge();
      }
    }
    // An empty argv cannot come from the log (DecodeCommand refuses it); applied directly it
    // is ExecuteRedis's "empty command" error, not an out-of-range read.
    if (!cmd.args.empty() && redis::EqualsIgnoreCase(cmd.args[0], kConfigSetCommand)) {
      return ConfigSet(cmd.args);
    }
    if (!cmd.args.empty() && redis::EqualsIgnoreCase(cmd.args[0], kVersionedSetCommand)) {
      return VersionedSet(cmd.args);
    }
    if (!cmd.args.empty() && redis::EqualsIgnoreCase(cmd.args[0], kAllocateIdCommand)) {
      return AllocateId(cmd.args);
    }
    if (!cmd.args.empty() && redis::EqualsIgnoreCase(cmd.args[0], kSplitCommand)) {
      return Split(cmd.args);
    }
    if (!cmd.args.empty() && redis::EqualsIgnoreCase(cmd.args[0], kFreezeCommand)) {
      return Freeze(cmd.args);
    }
    if (!cmd.args.empty() && redis::EqualsIgnoreCase(cmd.args[0], kUnfreezeCommand)) {
      return Unfreeze(cmd.args);
    }
    if (!cmd.args.empty() && redis::EqualsIgnoreCase(cmd.args[0], kMergeCommand)) {
      return Merge(cmd.args);
    }
    if (!cmd.args.empty() && redis::EqualsIgnoreCase(cmd.args[0], kCancelMergeCommand)) {
      return CancelMerge(cmd.args);
    }
    return ExecuteRedis(state_.keys, cmd.args, WriteContext());
  }
  if (cmd.op == Op::kExpire) return Expire(cmd);
  if (cmd.key.size() > options_.key_bytes_max) return Reply::Error(ReplyCode::kKeyTooLarge);
  switch (cmd.op) {
    case Op::kGet: {
      Reply reply;
      if (auto value = Get(cmd.key)) reply.value = std::string(*value);
      return reply;
    }
    case Op::kPut:
      return Put(cmd);
    case Op::kDel:
      return Del(cmd);
    case Op::kCas:
      return Cas(cmd);
    case Op::kIncr:
      return Incr(cmd);
    case Op::kAppend:
      return Append(cmd);
    case Op::kBatch:
    case Op::kRedis:
    case Op::kExpire:
      break;  // handled above
  }
  return Reply::Error(ReplyCode::kBadCommand);  // an Op value outside the enum
}

Reply StateMachine::Put(const Command& cmd) {
  if (cmd.value.size() > options_.value_bytes_max) {
    return Reply::Error(ReplyCode::kValueTooLarge);
  }
  state_.keys.Put(cmd.key, cmd.value, 0);
  return Reply();
}

Reply StateMachine::Del(const Command& cmd) {
  Reply reply;
  if (state_.keys.FindForWrite(cmd.key, state_.clock_ms) != nullptr) {
    reply.success = state_.keys.Erase(cmd.key);
  }
  return reply;
}

Reply StateMachine::Cas(const Command& cmd) {
  if (cmd.value.size() > options_.value_bytes_max) {
    return Reply::Error(ReplyCode::kValueTooLarge);
  }
  Reply reply;
  const Value* v = state_.keys.FindForWrite(cmd.key, state_.clock_ms);
  const bool matches =
      cmd.expected.has_value() ? (v != nullptr && v->bytes == *cmd.expected) : v == nullptr;
  if (matches) {
    state_.keys.Put(cmd.key, cmd.value, 0);
    reply.success = true;
    reply.value = cmd.value;
  } else if (v != nullptr) {
    reply.value = v->bytes;
  }
  return reply;
}

Reply StateMachine::Incr(const Command& cmd) {
  int64_t current = 0;
  Value* v = state_.keys.FindForWrite(cmd.key, state_.clock_ms);
  if (v != nullptr && !ParseInt64(v->bytes, &current)) {
    return Reply::Error(ReplyCode::kNotInteger);
  }
  int64_t result = 0;
  if (__builtin_add_overflow(current, cmd.delta, &result)) {
    return Reply::Error(ReplyCode::kNotInteger);
  }
  std::string text = FormatInt64(result);
  if (text.size() > options_.value_bytes_max) return Reply::Error(ReplyCode::kValueTooLarge);
  if (v != nullptr) {
    const size_t was = v->bytes.size();
    v->bytes = std::move(text);
    state_.keys.Modified(cmd.key, *v, was);
  } else {
    state_.keys.Put(cmd.key, std::move(text), 0);
  }
  Reply reply;
  reply.number = result;
  return reply;
}

Reply StateMachine::Append(const Command& cmd) {
  Value* v = state_.keys.FindForWrite(cmd.key, state_.clock_ms);
  const uint64_t old_bytes = v == nullptr ? 0 : v->bytes.size();
  // Both sizes are far below 2^63, so the sum cannot wrap.
  if (old_bytes + cmd.value.size() > options_.value_bytes_max) {
    return Reply::Error(ReplyCode::kValueTooLarge);
  }
  if (v == nullptr) {
    v = &state_.keys.Put(cmd.key, cmd.value, 0);
  } else {
    const size_t was = v->bytes.size();
    v->bytes.append(cmd.value);
    state_.keys.Modified(cmd.key, *v, was);
  }
  Reply reply;
  reply.number = static_cast<int64_t>(v->bytes.size());
  return reply;
}

void StateMachine::set_track_changes(bool on) {
  track_changes_ = on;
  changes_reset_ = false;
  touched_keys_.clear();
  touched_sessions_.clear();
  AttachTracking();
}

void StateMachine::AttachTracking() {
  state_.keys.set_touched(track_changes_ && !changes_reset_ ? &touched_keys_ : nullptr);
}

StateChanges StateMachine::TakeChanges() {
  StateChanges out;
  out.applied = state_.applied_index;
  out.reset = changes_reset_;
  if (changes_reset_ || out.applied != changes_applied_) out.meta = EncodeMeta();
  changes_applied_ = out.applied;
  const Keyspace& ks = state_.keys;
  if (changes_reset_) {
    out.data.reserve(ks.size() + ks.tombstone_count());
    for (const auto& [key, value] : ks.map()) {
      out.data.emplace_back(key.bytes, EncodeValueRecord(value));
    }
    for (const auto& [key, index] : ks.tombstones()) {
      out.data.emplace_back(key, EncodeTombstoneRecord(index));
    }
    out.sessions.reserve(state_.sessions.size());
    for (const auto& [id, session] : state_.sessions) {
      out.sessions.emplace_back(id, EncodeSession(session));
    }
  } else {
    out.data.reserve(touched_keys_.size());
    for (const auto& [key, touched] : touched_keys_) {
      std::optional<std::string> record;
      if (const Value* v = touched.known ? touched.value : ks.FindRaw(key)) {
        record = EncodeValueRecord(*v);
      } else if (auto t = ks.tombstones().find(key); t != ks.tombstones().end()) {
        record = EncodeTombstoneRecord(t->second);
      }
      out.data.emplace_back(key, std::move(record));
    }
    out.sessions.reserve(touched_sessions_.size());
    for (uint64_t id : touched_sessions_) {
      auto it = state_.sessions.find(id);
      out.sessions.emplace_back(id, it == state_.sessions.end()
                                        ? std::nullopt
                                        : std::optional<std::string>(EncodeSession(it->second)));
    }
  }
  changes_reset_ = false;
  touched_keys_.clear();
  touched_sessions_.clear();
  AttachTracking();
  return out;
}

void StateMachine::CheckInvariants() const {
  SYNOD_ASSERT(state_.sessions.size() == state_.session_order.size());
  SYNOD_ASSERT(state_.sessions.size() <= options_.sessions_max);
  SYNOD_ASSERT(state_.session_order.empty() ||
               state_.session_order.rbegin()->first <= state_.applied_index);
  SYNOD_ASSERT(state_.merged_tokens.size() <= kMergeTokensMax &&
               state_.cancelled_tokens.size() <= kMergeTokensMax &&
               state_.absorbed.size() <= kMergeTokensMax);
}

}  // namespace synod::kv
