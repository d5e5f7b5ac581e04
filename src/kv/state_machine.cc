#include "kv/state_machine.h"

#include <charconv>
#include <limits>
#include <utility>

#include "common/assert.h"

namespace synod::kv {

namespace {

// Parses a value the way Redis's string2ll does, so INCR accepts exactly what Redis accepts:
// an optional '-', then decimal digits with no leading zero (except "0" itself), nothing else
// (no '+', no spaces, no "-0"), within int64 range.
bool ParseInt64(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 20) return false;  // "-9223372036854775808" is 20 bytes
  std::string_view digits = s[0] == '-' ? s.substr(1) : s;
  if (digits.empty() || digits[0] < '0' || digits[0] > '9') return false;
  if (digits[0] == '0' && s != "0") return false;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return false;
  *out = v;
  return true;
}

std::string FormatInt64(int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  SYNOD_ASSERT(ec == std::errc());
  return std::string(buf, end);
}

}  // namespace

StateMachine::StateMachine(Options options) : options_(options) {
  SYNOD_ASSERT(options_.sessions_max >= 1);
  SYNOD_ASSERT(options_.value_bytes_max <=
               static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
}

Reply StateMachine::Apply(LogIndex index, const Command& cmd) {
  SYNOD_ASSERT_MSG(index > state_.applied_index, "kv entries must be applied in log order");
  state_.applied_index = index;
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
  auto it = state_.data.find(key);
  if (it == state_.data.end()) return std::nullopt;
  return std::string_view(it->second);
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
    EvictIfFull();
    TrackSession(cmd.client_id);
    internal::Session session{.seq = 1, .last_index = index, .reply = Execute(cmd)};
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
  size_t erased = state_.session_order.erase(session.last_index);
  SYNOD_ASSERT(erased == 1);
  session.last_index = index;
  bool inserted = state_.session_order.emplace(index, client_id).second;
  SYNOD_ASSERT(inserted);
}

// Evicts the session whose latest command has the lowest log index. Every replica holds the
// same sessions with the same indexes, so every replica evicts the same one.
void StateMachine::EvictIfFull() {
  if (state_.sessions.size() < options_.sessions_max) return;
  SYNOD_ASSERT(!state_.session_order.empty());
  auto oldest = state_.session_order.begin();
  TrackSession(oldest->second);
  size_t erased = state_.sessions.erase(oldest->second);
  SYNOD_ASSERT(erased == 1);
  state_.session_order.erase(oldest);
}

Reply StateMachine::Execute(const Command& cmd) {
  if (cmd.op == Op::kBatch) {
    Reply reply;
    reply.replies.reserve(cmd.batch.size());
    for (const Command& sub : cmd.batch) {
      // DecodeCommand refuses nested batches; a directly applied one is refused here too.
      reply.replies.push_back(sub.op == Op::kBatch ? Reply::Error(ReplyCode::kBadCommand)
                                                   : Execute(sub));
    }
    return reply;
  }
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
      break;  // handled above
  }
  return Reply::Error(ReplyCode::kBadCommand);  // an Op value outside the enum
}

Reply StateMachine::Put(const Command& cmd) {
  if (cmd.value.size() > options_.value_bytes_max) {
    return Reply::Error(ReplyCode::kValueTooLarge);
  }
  TrackKey(cmd.key);
  state_.data.insert_or_assign(cmd.key, cmd.value);
  return Reply();
}

Reply StateMachine::Del(const Command& cmd) {
  Reply reply;
  auto it = state_.data.find(cmd.key);
  if (it != state_.data.end()) {
    TrackKey(cmd.key);
    state_.data.erase(it);
    reply.success = true;
  }
  return reply;
}

Reply StateMachine::Cas(const Command& cmd) {
  if (cmd.value.size() > options_.value_bytes_max) {
    return Reply::Error(ReplyCode::kValueTooLarge);
  }
  Reply reply;
  auto it = state_.data.find(cmd.key);
  const bool matches = cmd.expected.has_value()
                           ? (it != state_.data.end() && it->second == *cmd.expected)
                           : it == state_.data.end();
  if (matches) {
    TrackKey(cmd.key);
    state_.data.insert_or_assign(cmd.key, cmd.value);
    reply.success = true;
    reply.value = cmd.value;
  } else if (it != state_.data.end()) {
    reply.value = it->second;
  }
  return reply;
}

Reply StateMachine::Incr(const Command& cmd) {
  int64_t current = 0;
  auto it = state_.data.find(cmd.key);
  if (it != state_.data.end() && !ParseInt64(it->second, &current)) {
    return Reply::Error(ReplyCode::kNotInteger);
  }
  int64_t result = 0;
  if (__builtin_add_overflow(current, cmd.delta, &result)) {
    return Reply::Error(ReplyCode::kNotInteger);
  }
  std::string text = FormatInt64(result);
  if (text.size() > options_.value_bytes_max) return Reply::Error(ReplyCode::kValueTooLarge);
  TrackKey(cmd.key);
  if (it != state_.data.end()) {
    it->second = std::move(text);
  } else {
    state_.data.emplace(cmd.key, std::move(text));
  }
  Reply reply;
  reply.number = result;
  return reply;
}

Reply StateMachine::Append(const Command& cmd) {
  auto it = state_.data.find(cmd.key);
  const uint64_t old_bytes = it == state_.data.end() ? 0 : it->second.size();
  // Both sizes are far below 2^63, so the sum cannot wrap.
  if (old_bytes + cmd.value.size() > options_.value_bytes_max) {
    return Reply::Error(ReplyCode::kValueTooLarge);
  }
  TrackKey(cmd.key);
  if (it == state_.data.end()) {
    it = state_.data.emplace(cmd.key, cmd.value).first;
  } else {
    it->second.append(cmd.value);
  }
  Reply reply;
  reply.number = static_cast<int64_t>(it->second.size());
  return reply;
}

void StateMachine::set_track_changes(bool on) {
  track_changes_ = on;
  changes_reset_ = false;
  touched_keys_.clear();
  touched_sessions_.clear();
}

StateChanges StateMachine::TakeChanges() {
  StateChanges out;
  out.applied = state_.applied_index;
  out.reset = changes_reset_;
  if (changes_reset_) {
    out.data.reserve(state_.data.size());
    for (const auto& [key, value] : state_.data) out.data.emplace_back(key, value);
    out.sessions.reserve(state_.sessions.size());
    for (const auto& [id, session] : state_.sessions) {
      out.sessions.emplace_back(id, EncodeSession(session));
    }
  } else {
    out.data.reserve(touched_keys_.size());
    for (const std::string& key : touched_keys_) {
      auto it = state_.data.find(key);
      out.data.emplace_back(
          key, it == state_.data.end() ? std::nullopt : std::optional<std::string>(it->second));
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
  return out;
}

void StateMachine::CheckInvariants() const {
  SYNOD_ASSERT(state_.sessions.size() == state_.session_order.size());
  SYNOD_ASSERT(state_.sessions.size() <= options_.sessions_max);
  SYNOD_ASSERT(state_.session_order.empty() ||
               state_.session_order.rbegin()->first <= state_.applied_index);
}

}  // namespace synod::kv
