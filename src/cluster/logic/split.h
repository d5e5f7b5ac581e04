// A split by hand (`synod shard split ID [--at SLOT]`, docs/sharding.md "Splits"): the pure
// sequence any node runs through its RequestRouter, the real node and the simulator alike.
//
//  1. The new shard's group id comes from the meta shard (kv::kAllocateIdCommand over the
//     setting "group_seq", floored at the highest group id the node knows), so that ids are
//     distinct cluster-wide whoever splits what.
//  2. The split is proposed to the shard (kv::kSplitCommand) with the slots the node's map says
//     it owns: a shard that changed meanwhile refuses it (a stale or repeated split), and the
//     caller sees the error and may try again.
//  3. Every replica of the shard applies it at the same index and starts the new shard there
//     (Store); the node that led the shard campaigns for the new one at once.
//
// Thread-safety: none; the core thread (or the simulator's) runs it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "cluster/logic/router.h"
#include "cluster/logic/shard_map.h"
#include "common/ids.h"
#include "common/status.h"
#include "kv/state_machine.h"

namespace synod::cluster {

// The meta shard's setting that counts the group ids handed out.
inline constexpr std::string_view kGroupSeqSetting = "group_seq";

struct SplitResult {
  GroupId child;
  SlotRange kept;   // the shard's slots after the split
  SlotRange moved;  // the new shard's
};

// The slot a split of `d` at `at` (or, without one, in the middle of its slots) happens at, or
// kInvalidArgument: the meta shard, a shard of one slot (it cannot split further), or a slot
// that would leave a side empty.
Result<uint16_t> SplitSlot(const ShardDescriptor& d, std::optional<uint16_t> at);

// Splits by size (`--shard-max-bytes`): whether a shard whose state is `sm` should split, and
// where, so that each side holds about half of its bytes (kv::Keyspace::bytes). kOneSlot: it
// holds more than max_bytes but all of it in one slot, which no split can divide (a hot slot:
// `synod shards` says so). Walks the keys once (O(keys)); the host asks only of shards over
// the bound. max_bytes 0: never.
struct SizeSplit {
  enum class Kind : uint8_t { kNone, kSplit, kOneSlot };
  Kind kind = Kind::kNone;
  uint16_t at = 0;  // kSplit: the new shard's first slot
};
SizeSplit DecideSizeSplit(const kv::StateMachine& sm, uint64_t max_bytes);

// Where to split `range` so that each side carries about half of `weight` (slot -> weight, only
// slots of the range with some): the slot boundary closest to the halves. kOneSlot when all of
// it is in one slot; kNone when there is none.
SizeSplit HalvingSlot(const std::map<uint16_t, uint64_t>& weight, SlotRange range);

// Splits by load (`--shard-max-writes-per-second`): each second the host adds the writes each
// shard it leads took in that second, per slot (RequestRouter::TakeWrites); a shard whose writes
// averaged more than the bound over a whole window (the last `window_seconds` seconds, all of
// them led here) splits at the slot that halves its writes, or is reported as one hot slot.
class LoadTracker {
 public:
  explicit LoadTracker(int window_seconds = 10) : window_(window_seconds) {}
  // One second: the writes of each shard led now (`led`; a led shard absent from `writes` took
  // none). A shard not led any more is forgotten: its window starts over when led again.
  void AddSecond(const std::map<GroupId, std::map<uint16_t, uint64_t>>& writes,
                 const std::set<GroupId>& led);
  // Writes per second over the window so far (0 before the first second).
  double Rate(GroupId group) const;
  // Whether `group` (owning `range`) should split by load: only with a whole window over
  // `max_per_second` (0: never).
  SizeSplit Decide(GroupId group, SlotRange range, double max_per_second) const;
  // After a split: both shards start a new window.
  void Forget(GroupId group) { seconds_.erase(group); }

 private:
  int window_;
  std::map<GroupId, std::deque<std::map<uint16_t, uint64_t>>> seconds_;
};

// Runs a split of `group` (see the file comment). `new_session` gives fresh at-most-once
// session ids (one per proposal); `done` gets the result, or the first error (from the meta
// shard, the shard, or SplitSlot) once, within two request timeouts. An `automatic` split (by
// size or load) makes a new shard that an automatic merge may absorb again
// (kv::StateMachine::mergeable).
void RunSplit(RequestRouter& router, const ShardMap& map, GroupId group, std::optional<uint16_t> at,
              const std::function<uint64_t()>& new_session,
              std::function<void(Result<SplitResult>)> done, bool automatic = false);

}  // namespace synod::cluster
