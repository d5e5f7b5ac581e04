// Helpers shared by the kv/ tests: terse command builders and a StateMachine that numbers its
// log indexes itself. Test-only; nothing outside *_test.cc includes this.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "kv/command.h"
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

// The command in a client session.
inline Command WithSession(Command c, uint64_t client_id, uint64_t seq) {
  c.client_id = client_id;
  c.seq = seq;
  return c;
}

// A StateMachine fed at consecutive log indexes 1, 2, 3, ...
class Machine {
 public:
  explicit Machine(Options options = {}) : sm_(options) {}

  Reply Apply(const Command& c) { return sm_.Apply(Next(), c); }
  Reply ApplyEntry(std::string_view data) { return sm_.ApplyEntry(Next(), data); }
  std::optional<std::string> Value(std::string_view key) const {
    auto v = sm_.Get(key);
    return v ? std::optional<std::string>(std::string(*v)) : std::nullopt;
  }
  StateMachine& sm() { return sm_; }
  const StateMachine& sm() const { return sm_; }

 private:
  LogIndex Next() { return sm_.applied_index() + 1; }
  StateMachine sm_;
};

}  // namespace synod::kv::testing
