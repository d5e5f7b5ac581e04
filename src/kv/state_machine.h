// StateMachine: the replicated key-value store of one shard.
//
// Every replica feeds the same committed Raft entries, in log order, to its StateMachine and
// so holds the same state and produces the same replies: Apply is a deterministic function of
// (state, index, command) and of Options, never of time, randomness or the host. Errors (a
// non-integer INCR, an oversized value, a stale retry) are replies with a ReplyCode, never
// exceptions or crashes, because they too must be identical on every replica.
//
// At-most-once (Raft thesis §6.3): a command with client_id != 0 belongs to a client session.
// The session remembers the highest seq applied and its reply; a retry of that seq returns the
// remembered reply without applying the command again. Sessions are bounded by
// Options::sessions_max and evicted least-recently-used by log index, identically everywhere.
//
// Data is a std::map (sorted by key bytes), not a hash map: Snapshot and Digest walk it in a
// canonical order without sorting, and range-based operations (slot moves, SCAN, jobs over a
// key range) come next. Lookups are O(log n).
//
// Thread-safety: none. A StateMachine is owned by the node's core thread (or the simulator's
// single thread), which also applies entries; callers serialize all access.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <ranges>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/ids.h"
#include "common/status.h"
#include "kv/command.h"
#include "kv/keyspace.h"
#include "kv/redis.h"

namespace synod::kv {

// Every replica of a shard must use identical Options: they change which replies and which
// session evictions a command produces, and so are part of the replicated state machine.
struct Options {
  // Longest key, in bytes; longer keys get kKeyTooLarge. Redis allows 512 MiB keys, but a
  // key is copied into every index and message that names it, so Synod keeps them small.
  uint64_t key_bytes_max = 64 * 1024;
  // Longest value, in bytes (Redis's proto-max-bulk-len); PUT, CAS or an APPEND whose result
  // would be longer gets kValueTooLarge. REQUIRES: <= INT64_MAX (APPEND replies the length).
  uint64_t value_bytes_max = 512ull * 1024 * 1024;
  // Most client sessions remembered at once. Each costs one cached reply (which for GET or a
  // failed CAS includes a value). A session evicted while its client still has a command in
  // flight turns that command's retry into kSessionExpired. REQUIRES: >= 1.
  uint64_t sessions_max = 100'000;
  // A planted bug for the simulator to catch: a retried command is applied again instead of
  // answered from its session. Never set outside tests.
  bool testing_bug_no_dedup = false;
  // A planted bug: commands are applied whatever their slots (no kWrongShard), so a write
  // routed by a map from before a split lands in the shard that gave its slot away.
  bool testing_bug_stale_route = false;
  // A planted bug: a split's new shard starts without the keys of its slots written in the few
  // entries before the split (as if its state were taken from a copy a little old): writes
  // acknowledged while the split was under way are lost.
  bool testing_bug_split_loses_writes = false;
  // Tombstones of deleted keys kept for WATCH (see keyspace.h). REQUIRES: >= 1.
  size_t tombstones_max = Keyspace::kTombstonesMax;
};

// A shard this one absorbed (kMergeCommand), recorded in its replicated state: whoever leads it
// makes sure the meta shard holds the absorbed shard's tombstone, so the tombstone is written
// even when every node that applied the merge crashed before writing it.
struct Absorbed {
  uint64_t group = 0;  // the absorbed shard's group id
  SlotRange range;     // its slots
  uint64_t epoch = 0;  // the merge's (the merged descriptor's) epoch
  bool operator==(const Absorbed&) const = default;
};

namespace internal {

// One client's at-most-once session.
struct Session {
  uint64_t seq = 0;     // the highest seq applied; >= 1
  LogIndex last_index;  // the index of the client's latest command: the eviction order
  Reply reply;          // the reply to `seq`, returned again to a retry of it

  bool operator==(const Session&) const = default;
};

// A shard frozen for a merge into shard `into` (kFreezeCommand): it applies nothing but the
// merge's own commands from `index` on, so its state stays what it was there.
struct Frozen {
  uint64_t into = 0;   // the group that absorbs it
  uint64_t token = 0;  // the merge attempt's
  LogIndex index;      // the freeze's entry
  bool operator==(const Frozen&) const = default;
};

// Everything a StateMachine replicates: what Snapshot saves and Digest hashes.
// Invariants: sessions and session_order index the same sessions (session_order holds each
// session's (last_index, client_id), so begin() is the least recently used; sessions absorbed
// by a merge share its index); every last_index <= applied_index;
// sessions.size() <= Options::sessions_max.
struct State {
  Keyspace keys;
  std::map<uint64_t, Session> sessions;  // by client_id, never 0
  std::set<std::pair<LogIndex, uint64_t>> session_order;
  LogIndex applied_index;
  // The logical clock (Unix ms): the highest now_ms of any applied command. Expiry at apply
  // time is judged against it, so every replica deletes a key at the same log index.
  int64_t clock_ms = 0;
  // Replicated settings (CONFIG SET of a replicated parameter, e.g. requirepass).
  std::map<std::string, std::string, std::less<>> config;
  // A data shard's slots: it applies and serves only keys in them (see StateMachine::Owns).
  // nullopt: any key (the meta shard; a state from before shards split).
  std::optional<SlotRange> range;
  // Merges (docs/sharding.md, "Merges"). Set while this shard is frozen for one.
  std::optional<Frozen> frozen;
  // The merge tokens this shard absorbed (kMergeCommand) and refused for ever
  // (kCancelMergeCommand), in the order they were recorded: the latest kMergeTokensMax of each
  // (the oldest go first; tokens are random, so only their order says which are latest).
  std::vector<uint64_t> merged_tokens;
  std::vector<uint64_t> cancelled_tokens;
  // The shards this one absorbed, with those they had absorbed: the latest kMergeTokensMax.
  std::vector<Absorbed> absorbed;
  // Whether the boundary at this shard's first slot came from an automatic split (by size or
  // load): an automatic merge may take it away. Initial shards and splits by hand: false.
  bool mergeable = false;
};

}  // namespace internal

// What Apply/ApplyEntry/Restore changed since the last TakeChanges(), for a host that keeps
// the state in a database beside the log (the real node's RocksDB). Each key and client id
// appears once, with its final value: nullopt means erased. Keys come in no particular order
// (in keyspace order after a Restore).
struct StateChanges {
  std::vector<std::pair<std::string, std::optional<std::string>>> data;
  // Sessions by client_id, as EncodeSession bytes; nullopt = erased (evicted).
  std::vector<std::pair<uint64_t, std::optional<std::string>>> sessions;
  LogIndex applied;  // applied_index() when taken
  // EncodeMeta() when anything was applied or restored since the last TakeChanges.
  std::optional<std::string> meta;
  // Restore replaced the whole state: every stored key and session must go before `data` and
  // `sessions` (then the whole new state) are written.
  bool reset = false;
};

// The argv[0] of a kRedis command that sets replicated settings (StateMachine::config): the
// name is not a Redis command, so no client can send it; the host builds it for CONFIG SET.
inline constexpr std::string_view kConfigSetCommand = "synod.config.set";
// A versioned setting: {kVersionedSetCommand, name, version, value} stores "VERSION VALUE" under
// the name only when VERSION (a decimal u64) is above the stored one: replies 1 when stored, 0
// when not. Late or repeated proposals of an older version change nothing (the meta shard's
// shard descriptors, versioned by their epochs).
inline constexpr std::string_view kVersionedSetCommand = "synod.config.setversioned";
// A stored versioned setting's version and value; nullopt when it has not that form.
std::optional<std::pair<uint64_t, std::string_view>> ParseVersioned(std::string_view stored);
// A counter in the settings: {kAllocateIdCommand, name, floor} sets the setting `name` to
// max(its value, floor) + 1 and replies that (an integer): ids that are distinct and above the
// floor however many nodes ask at once (the meta shard's allocation of new shards' group ids).
inline constexpr std::string_view kAllocateIdCommand = "synod.config.allocid";
// A split (docs/sharding.md, "Splits"): {kSplitCommand, first, last, at, child, epoch} applies only
// when the shard owns exactly first..last and first < at <= last; the shard then keeps
// first..at-1, and the slots at..last with their keys, tombstones, a copy of every session and
// of the other replicated state go to the new shard `child` (TakeSplit), as of this entry.
// Replies OK, or an error when the shard's range is not first..last (a stale or repeated
// split), `at` is outside it, or the split is not allowed now (set_split_allowed). `epoch` is
// the proposer's: the epoch both halves' descriptors get (SplitOff::epoch), passed through. A
// seventh argument "auto" marks a split by size or load: the new shard is mergeable().
inline constexpr std::string_view kSplitCommand = "synod.shard.split";
// Merges (docs/sharding.md, "Merges"): shard R is absorbed by its neighbour L in four steps,
// whose outcome is decided in L's log alone:
//  - {kFreezeCommand, L, token} on R: from this entry on R applies nothing but these commands
//    (every other command is refused with kWrongShard and changes nothing, not even a session),
//    so its state is final. Replies the freeze's index; the same token again replies it again.
//  - R's state is read (Snapshot) and proposed to L: {kMergeCommand, first, last, R, token,
//    epoch, state} applies only when L owns exactly first..last, the state is R's frozen with
//    `token` over the slots next to L's, and the token was not cancelled: L then owns both
//    ranges, with R's keys (every key's version and the tombstone floor set to this index: a
//    WATCH from before the merge counts as changed), R's sessions (the one of the higher seq
//    for a client both hold), R's merged and cancelled tokens and the later clock; TakeMerge
//    reports it.
//  - {kCancelMergeCommand, token} on L: replies 1 when the token was merged, else refuses it
//    for ever and replies 0. Whoever gives a merge up asks L this first.
//  - {kUnfreezeCommand, token} on R: only after L answered 0; R serves again.
inline constexpr std::string_view kFreezeCommand = "synod.shard.freeze";
inline constexpr std::string_view kMergeCommand = "synod.shard.merge";
inline constexpr std::string_view kCancelMergeCommand = "synod.shard.cancelmerge";
inline constexpr std::string_view kUnfreezeCommand = "synod.shard.unfreeze";
// Tokens remembered of each kind (merged, cancelled), and shards absorbed.
inline constexpr size_t kMergeTokensMax = 1024;
// Keeps the latest kMergeTokensMax of a list recorded oldest first.
template <typename T>
void KeepLatestMergeRecords(std::vector<T>& records) {
  if (records.size() > kMergeTokensMax) {
    records.erase(records.begin(), records.end() - static_cast<std::ptrdiff_t>(kMergeTokensMax));
  }
}

// The slot range a snapshot's state owns (nullopt: any), read from its header without
// restoring it; kCorruption when the header does not parse.
Result<std::optional<SlotRange>> SnapshotRange(std::string_view snapshot);
// The same from a stored meta record (StateMachine::EncodeMeta); "" (a store from before meta
// existed) owns any.
Result<std::optional<SlotRange>> MetaRange(std::string_view meta);

// A merge applied (kMergeCommand), for the host: the shard absorbed and where it was.
struct MergeIn {
  uint64_t from = 0;   // the absorbed shard's group id
  uint64_t epoch = 0;  // the merged descriptor's epoch (the command's)
  SlotRange range;     // the absorbed slots
  LogIndex index;      // the merge's entry
};

// The right half of a split, for the host to start the new shard from.
struct SplitOff {
  uint64_t child = 0;  // the new shard's group id
  uint64_t epoch = 0;  // the epoch of both halves' descriptors (the split command's)
  SlotRange range;     // its slots
  LogIndex index;      // the split's entry in the parent's log: the child's state is as of it
  internal::State state;
};

class StateMachine {
 public:
  // REQUIRES: options.sessions_max >= 1 and options.value_bytes_max <= INT64_MAX.
  explicit StateMachine(Options options = {});

  StateMachine(const StateMachine&) = delete;
  StateMachine& operator=(const StateMachine&) = delete;

  // Applies the committed command at log index `index` and returns its reply.
  // REQUIRES: index > applied_index() (a replayed or reordered entry is a programmer error).
  // Sets applied_index() to index whatever the reply.
  //
  // With client_id == 0 the command is simply executed. Otherwise, against the client's session:
  //  - seq == the session's seq: the cached reply is returned, nothing is executed;
  //  - seq <  the session's seq: kStaleRequest, nothing is executed;
  //  - seq >  the session's seq: executed; seq and reply are remembered (gaps are allowed);
  //  - no session and seq == 1: a session is created (evicting the least recently used one if
  //    sessions_max are held) and the command executed;
  //  - no session and seq > 1: kSessionExpired, nothing is executed and no session is created.
  //    The session was evicted (or the client skipped seq 1), so whether an earlier attempt of
  //    this command was applied is unknown; the client must start over with a new client_id.
  // Any command of a session marks it as recently used. Error replies are cached like others.
  // A command that breaks Command's rules (seq == 0 with a client, seq != 0 without, an
  // unknown op) gets kBadCommand.
  Reply Apply(LogIndex index, const Command& cmd);

  // Applies the data of a committed normal entry: empty data (a new leader's no-op) only
  // advances applied_index() and returns an OK reply; data that does not decode advances it
  // and returns kBadCommand, so a corrupt entry fails the same way on every replica.
  // REQUIRES: index > applied_index().
  Reply ApplyEntry(LogIndex index, std::string_view data);

  // The value of key, or nullopt when absent. The view stays valid until the next Apply,
  // ApplyEntry or Restore. Serves linearizable reads once applied_index() has reached the
  // read index (ReadIndex or lease), and stale reads (READONLY) at any time.
  std::optional<std::string_view> Get(std::string_view key) const;

  // The keyspace, for Redis read commands (ExecuteRedisRead) and WATCH versions.
  const Keyspace& keyspace() const { return state_.keys; }
  // The logical clock: the latest now_ms applied (0 before any).
  int64_t clock_ms() const { return state_.clock_ms; }
  // A replicated setting, or nullopt.
  std::optional<std::string_view> config(std::string_view name) const;
  // The replicated settings from the first named `from` or after it on, in name order.
  std::ranges::subrange<std::map<std::string, std::string, std::less<>>::const_iterator>
  config_from(std::string_view from) const {
    return {state_.config.lower_bound(from), state_.config.end()};
  }
  // The context a read at `now_ms` (the reader's clock) runs with: the later of it and the
  // logical clock, so a key the log already expired never reappears on a lagging replica.
  ExecContext ReadContext(int64_t now_ms) const;

  // The slots this state machine owns (nullopt: any). A command whose declared slots
  // (Command::slots) lie outside them is refused with kWrongShard and changes nothing; a read
  // must check Owns before it serves a key (RedisRead does).
  const std::optional<SlotRange>& range() const { return state_.range; }
  // A shard frozen for a merge owns none: its keys are about to be another shard's.
  bool Owns(uint16_t slot) const {
    return !state_.frozen && (!state_.range || state_.range->Contains(slot));
  }
  bool Owns(const SlotRange& slots) const {
    return !state_.frozen && (!state_.range || state_.range->Contains(slots));
  }
  // The merge this shard is frozen for, if any.
  const std::optional<internal::Frozen>& frozen() const { return state_.frozen; }
  // Whether an automatic merge may absorb this shard into the one before it.
  bool mergeable() const { return state_.mergeable; }
  // The shards this shard absorbed (the latest kMergeTokensMax, oldest first).
  const std::vector<Absorbed>& absorbed() const { return state_.absorbed; }
  // The merge applied last, once (nullopt when none since the last call).
  std::optional<MergeIn> TakeMerge() { return std::exchange(merge_, std::nullopt); }
  // Whether `cmd` is one of a merge's own commands (freeze, merge, cancel, unfreeze): the only
  // ones a frozen shard applies.
  static bool MergeControl(const Command& cmd);
  // Sets the slots of a new shard's empty state (its bootstrap image). REQUIRES: no key held.
  void SetRange(SlotRange range);
  // Whether an applied split may happen: the host clears it while its group's membership is
  // joint (the new shard could not start from a joint configuration). The same on every
  // replica at every index, as the configuration is.
  void set_split_allowed(bool allowed) { split_allowed_ = allowed; }
  // The right half of the split applied last, once (nullopt when none since the last call).
  std::optional<SplitOff> TakeSplit();
  // Replaces the whole state by a split's right half (a new shard's replica), recording no
  // changes: the host stores what the parent did not (see SplitOff).
  void Adopt(internal::State state);
  // Gives the whole state away (a state built aside, by LoadState on another thread, for a
  // replica to Adopt), leaving this machine empty.
  internal::State ReleaseState();
  // Every session and the meta record, as changes at the applied index (no data): what a host
  // that keeps the state beside the log writes for an adopted split half, whose keys it holds
  // already under their slots.
  StateChanges SessionsAndMeta() const;

  // The index of the last entry applied (or restored), 0 initially.
  LogIndex applied_index() const { return state_.applied_index; }
  // The number of keys, and of client sessions, held.
  size_t key_count() const { return state_.keys.size(); }
  size_t session_count() const { return state_.sessions.size(); }
  const Options& options() const { return options_; }

  // The whole state (data, sessions, applied index) in the format of kv.proto, for Raft
  // snapshots. Deterministic: equal states give equal bytes.
  std::string Snapshot() const;

  // Replaces the whole state, applied_index() included, by a snapshot's. Returns kCorruption
  // when the bytes are not a well-formed snapshot and kInvalidArgument when it breaks this
  // machine's Options (a key, value or session count above the bounds). On error the state is
  // unchanged. The snapshot may be older than the current state; the caller decides.
  Status Restore(std::string_view snapshot);

  // A hash of the whole state (data, sessions, applied index), stable across builds, hosts and
  // runs: equal states have equal digests. For the simulator's check that replicas which
  // applied the same prefix are identical. O(total bytes held).
  uint64_t Digest() const;

  // Change tracking, for hosts that persist the state itself (StateChanges). Off by default:
  // the simulator and tests that only need the image pay nothing. Turning it off drops what
  // was recorded.
  void set_track_changes(bool on);
  bool track_changes() const { return track_changes_; }
  // Returns what changed since the previous call (or since tracking was turned on) and forgets
  // it. The keys are collected while applying and their final values read now, so a key set
  // then deleted in between is reported once, as erased. O(changed keys * log n), or
  // O(whole state) after a Restore.
  StateChanges TakeChanges();

  // One session in the bytes StateChanges::sessions and LoadState use (kv.proto's
  // SnapshotSession without the client id, which is the caller's key).
  static std::string EncodeSession(const internal::Session& session);
  // Parses EncodeSession's bytes; kCorruption when they are not a valid session.
  static Result<internal::Session> DecodeSession(std::string_view bytes);

  // The replicated state that is neither a key nor a session (clock, WATCH bookkeeping,
  // replicated config), as kv.proto's StateMeta bytes.
  std::string EncodeMeta() const;

  // Replaces the whole state by one read back from a database: `applied`, `meta` (EncodeMeta's
  // bytes; "" for a store written before meta existed, whose data records are plain values) and
  // the pairs
  // `next_data` and `next_session` yield until they return false (each call fills its
  // arguments and returns true, or returns false at the end). Checks what Restore checks:
  // kCorruption for bad session bytes, a repeated key, client id or session index, or a
  // session index above `applied`; kInvalidArgument for a key, value or session count above
  // this machine's Options. On error the state is unchanged. Records no changes.
  Status LoadState(
      LogIndex applied, std::string_view meta,
      const std::function<bool(std::string* key, std::string* value)>& next_data,
      const std::function<bool(uint64_t* client_id, std::string* session)>& next_session);

 private:
  Reply Execute(const Command& cmd);
  Reply ExecuteBatch(const Command& cmd);
  Reply Expire(const Command& cmd);
  Reply ConfigSet(const std::vector<std::string>& args);
  Reply VersionedSet(const std::vector<std::string>& args);
  Reply AllocateId(const std::vector<std::string>& args);
  Reply Split(const std::vector<std::string>& args);
  Reply Freeze(const std::vector<std::string>& args);
  Reply Unfreeze(const std::vector<std::string>& args);
  Reply Merge(const std::vector<std::string>& args);
  Reply CancelMerge(const std::vector<std::string>& args);
  ExecContext WriteContext() const;
  Reply ApplyInSession(LogIndex index, const Command& cmd);
  void TouchSession(uint64_t client_id, internal::Session& session, LogIndex index);
  void EvictIfFull();
  void EvictOldest();  // the session whose latest command has the lowest index
  Reply Put(const Command& cmd);
  Reply Del(const Command& cmd);
  Reply Cas(const Command& cmd);
  Reply Incr(const Command& cmd);
  Reply Append(const Command& cmd);
  void CheckInvariants() const;
  void TrackKey(std::string_view key) {
    if (track_changes_ && !changes_reset_) touched_keys_.try_emplace(std::string(key));
  }
  // Attaches touched_keys_ to the keyspace while tracking (and not reset).
  void AttachTracking();
  void TrackSession(uint64_t client_id) {
    if (track_changes_ && !changes_reset_) touched_sessions_.insert(client_id);
  }

  const Options options_;
  internal::State state_;
  // Change tracking (see TakeChanges): what was touched since the last TakeChanges. Once a
  // Restore set changes_reset_, the whole state is reported and nothing more is collected.
  bool track_changes_ = false;
  bool changes_reset_ = false;
  Keyspace::TouchedMap touched_keys_;
  std::set<uint64_t> touched_sessions_;
  LogIndex changes_applied_;  // applied_index() at the last TakeChanges
  bool split_allowed_ = true;
  std::optional<SplitOff> split_;  // see TakeSplit
  std::optional<MergeIn> merge_;   // see TakeMerge
};

}  // namespace synod::kv
