// Helpers shared by the kv/ tests: terse command builders and a StateMachine that numbers its
// log indexes itself. Test-only; nothing outside *_test.cc includes this.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/ids.h"
#include "common/slot.h"
#include "common/status.h"
#include "kv/command.h"
#include "kv/redis.h"
#include "kv/state_machine.h"

namespace synod::kv::testing {

inline Command Get(std::string key) {
  Command c;
  c.op = Op::kGet;
  c.key = std::move(key);
  return c;
}

inline Command Put(std::string key, std::string value) {
  Command c;
  c.op = Op::kPut;
  c.key = std::move(key);
  c.value = std::move(value);
  return c;
}

inline Command Del(std::string key) {
  Command c;
  c.op = Op::kDel;
  c.key = std::move(key);
  return c;
}

inline Command Cas(std::string key, std::optional<std::string> expected, std::string value) {
  Command c;
  c.op = Op::kCas;
  c.key = std::move(key);
  c.expected = std::move(expected);
  c.value = std::move(value);
  return c;
}

inline Command Incr(std::string key, int64_t delta) {
  Command c;
  c.op = Op::kIncr;
  c.key = std::move(key);
  c.delta = delta;
  return c;
}

inline Command Append(std::string key, std::string value) {
  Command c;
  c.op = Op::kAppend;
  c.key = std::move(key);
  c.value = std::move(value);
  return c;
}

// A batch of sub-commands (MSET, MULTI/EXEC without WATCH).
inline Command Batch(std::vector<Command> subs, int64_t now_ms = 0) {
  Command c;
  c.op = Op::kBatch;
  c.batch = std::move(subs);
  c.now_ms = now_ms;
  return c;
}

// A Redis command (Op::kRedis): argv at the proposer's time now_ms.
inline Command Redis(std::vector<std::string> argv, int64_t now_ms = 0) {
  Command c;
  c.op = Op::kRedis;
  c.args = std::move(argv);
  c.now_ms = now_ms;
  return c;
}

// Replicated expiry (Op::kExpire) of `keys` at now_ms.
inline Command Expire(std::vector<std::string> keys, int64_t now_ms) {
  Command c;
  c.op = Op::kExpire;
  c.args = std::move(keys);
  c.now_ms = now_ms;
  return c;
}

// EXEC after WATCH: the sub-commands, the watched keys with the versions read at watch_index.
inline Command Exec(std::vector<Command> subs,
                    std::vector<std::pair<std::string, LogIndex>> watches, LogIndex watch_index,
                    int64_t now_ms = 0) {
  Command c = Batch(std::move(subs), now_ms);
  c.watches = std::move(watches);
  c.watch_index = watch_index;
  return c;
}

// The command in a client session.
inline Command WithSession(Command c, uint64_t client_id, uint64_t seq) {
  c.client_id = client_id;
  c.seq = seq;
  return c;
}

// Replaces sm's state by LoadState from records held in memory (data: key and record bytes, or
// plain values when meta is ""; sessions: client id and EncodeSession bytes).
inline Status LoadRecords(StateMachine& sm, LogIndex applied, std::string_view meta,
                          const std::vector<std::pair<std::string, std::string>>& data,
                          const std::vector<std::pair<uint64_t, std::string>>& sessions = {}) {
  size_t d = 0;
  size_t s = 0;
  return sm.LoadState(
      applied, meta,
      [&](std::string* k, std::string* v) {
        if (d == data.size()) return false;
        *k = data[d].first;
        *v = data[d].second;
        ++d;
        return true;
      },
      [&](uint64_t* id, std::string* v) {
        if (s == sessions.size()) return false;
        *id = sessions[s].first;
        *v = sessions[s].second;
        ++s;
        return true;
      });
}

// A StateMachine fed at consecutive log indexes 1, 2, 3, ...
// A key whose slot lies in [lo, hi], distinct for each n (and prefix).
inline std::string KeyIn(uint16_t lo, uint16_t hi, int n, const std::string& prefix = "k") {
  for (int i = 0;; ++i) {
    std::string k = prefix + std::to_string(n) + "-" + std::to_string(i);
    const uint16_t s = KeySlot(k);
    if (s >= lo && s <= hi) return k;
  }
}

// A command routed for the slot of its key (its key, or its first argument), as a node routes it.
inline Command Routed(Command c) {
  const uint16_t s = KeySlot(c.key.empty() ? c.args.at(1) : c.key);
  c.slots = SlotRange{s, s};
  return c;
}

class Machine {
 public:
  explicit Machine(Options options = {}) : sm_(options) {}

  Reply Apply(const Command& c) { return sm_.Apply(Next(), c); }
  Reply ApplyEntry(std::string_view data) { return sm_.ApplyEntry(Next(), data); }
  std::optional<std::string> Value(std::string_view key) const {
    auto v = sm_.Get(key);
    return v ? std::optional<std::string>(std::string(*v)) : std::nullopt;
  }
  // A Redis read command against the current state, at the reader's clock now_ms.
  Reply Read(const std::vector<std::string>& argv, int64_t now_ms = 0) const {
    return ExecuteRedisRead(sm_.keyspace(), argv, sm_.ReadContext(now_ms));
  }
  // The index the next Apply gets.
  LogIndex next_index() const { return sm_.applied_index() + 1; }
  StateMachine& sm() { return sm_; }
  const StateMachine& sm() const { return sm_; }

 private:
  LogIndex Next() { return sm_.applied_index() + 1; }
  StateMachine sm_;
};

}  // namespace synod::kv::testing
