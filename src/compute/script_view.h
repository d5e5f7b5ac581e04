// ScriptView: what redis.call does during one run of a script on a shard's leader — the
// commands run against the script's own copy of the keys it touches, and are recorded.
//
// The first time the script touches a key, the view copies it (value, expiry) from the shard's
// state machine and notes the version it had (kv::Keyspace::VersionOf). Every command then runs
// on those copies, at the script's one time (Redis freezes time within a script), so the script
// reads its own writes and nothing else sees them. What it leaves behind:
//  - effects(): the write commands it ran, in order, to be proposed as one batch entry and
//    replayed on every replica (effects replication; the script is never run again);
//  - watches(): every key it touched with the version it saw, so the batch applies only if none
//    changed in between (kv::StateMachine's WATCH check), else the script runs again. Reads and
//    writes of the script thus take effect at one point: where its batch applies, or, for a
//    script that wrote nothing, at a ReadIndex point where its versions still hold.
//
// Keys must lie in the shard's slots ("non local key" error otherwise: the script runs where
// its declared keys are). Keyless keyspace commands (KEYS, SCAN, DBSIZE, RANDOMKEY, FLUSHALL)
// are refused inside scripts (docs/scripting.md).
//
// Thread-safety: none; the core thread, during one slice of a run.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/ids.h"
#include "common/slot.h"
#include "compute/lua_engine.h"
#include "kv/keyspace.h"
#include "kv/state_machine.h"

namespace synod::compute {

struct ScriptViewOptions {
  int64_t now_ms = 0;      // the script's time (the leader's clock when it started)
  bool read_only = false;  // EVAL_RO, FCALL_RO, a no-writes function
  uint64_t random = 0;     // seeds the draws of commands that need one
  // Bound on the bytes of the effects (the batch entry's arguments).
  uint64_t effects_bytes_max = 64ull << 20;
  std::function<void(int, std::string_view)> log;
};

class ScriptView : public ScriptCalls {
 public:
  explicit ScriptView(ScriptViewOptions opts) : opts_(std::move(opts)) {}

  // The state machine the next calls read (the shard's leader replica's, refreshed by the host
  // at every slice: it may be replaced between slices). nullptr: every call fails.
  void set_state(const kv::StateMachine* sm) { sm_ = sm; }

  kv::Reply Call(std::vector<std::string>& argv) override;
  void Log(int level, std::string_view message) override {
    if (opts_.log) opts_.log(level, message);
  }

  const std::vector<std::vector<std::string>>& effects() const { return effects_; }
  std::vector<std::vector<std::string>> TakeEffects() { return std::move(effects_); }
  // The keys touched with the versions seen, and the first index the script read at.
  std::vector<std::pair<std::string, LogIndex>> Watches() const;
  LogIndex watch_index() const { return watch_index_; }
  // The slots of the keys touched (first..last), nullopt when none.
  std::optional<SlotRange> slots() const;
  int64_t now_ms() const { return opts_.now_ms; }
  uint64_t effects_bytes() const { return effects_bytes_; }

 private:
  // Copies `key` into the view the first time; an error text when it cannot be touched.
  std::optional<std::string> Touch(const std::string& key);

  ScriptViewOptions opts_;
  const kv::StateMachine* sm_ = nullptr;
  kv::Keyspace keys_;
  std::vector<std::pair<std::string, LogIndex>> seen_;  // in the order touched
  std::unordered_map<std::string, size_t> seen_index_;
  LogIndex watch_index_;
  std::vector<std::vector<std::string>> effects_;
  uint64_t effects_bytes_ = 0;
  uint16_t slot_min_ = UINT16_MAX;
  uint16_t slot_max_ = 0;
};

}  // namespace synod::compute
