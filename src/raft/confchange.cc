#include "raft/confchange.h"

#include <cstddef>

#include "common/assert.h"

namespace synod::raft {

namespace {

// ---- Encoding ----
//
// version:u8 transition:u8 count:varint { type:u8 node:varint }*count
//
// Varints are LEB128 (7 bits a byte, low bits first) and must be minimal, so every
// ConfChange has exactly one encoding. Bump the version for any change of layout.
constexpr uint8_t kEncodingVersion = 1;
// A uint64 takes at most 10 LEB128 bytes; the 10th may only hold the top bit.
constexpr size_t kVarintBytesMax = 10;
// The smallest encoding of one change: a type byte and a one-byte node id.
constexpr size_t kChangeBytesMin = 2;

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// Reads bytes without ever reading past the end; every failure is a Status.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}

  size_t remaining() const { return bytes_.size() - pos_; }

  Status ReadByte(const char* what, uint8_t* out) {
    if (remaining() == 0) return Truncated(what);
    *out = static_cast<uint8_t>(bytes_[pos_++]);
    return Status();
  }

  Status ReadVarint(const char* what, uint64_t* out) {
    uint64_t v = 0;
    for (size_t i = 0; i < kVarintBytesMax; ++i) {
      if (remaining() == 0) return Truncated(what);
      const uint8_t b = static_cast<uint8_t>(bytes_[pos_++]);
      if (i == kVarintBytesMax - 1 && b > 1) {
        return Status::InvalidArgument(std::string("conf change: ") + what + " overflows 64 bits");
      }
      v |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
      if ((b & 0x80) == 0) {
        if (b == 0 && i > 0) {
          return Status::InvalidArgument(std::string("conf change: ") + what +
                                         " is not minimally encoded");
        }
        *out = v;
        return Status();
      }
    }
    return Status::InvalidArgument(std::string("conf change: ") + what + " is too long");
  }

  // REQUIRES: n <= remaining().
  std::string_view Take(size_t n) {
    SYNOD_ASSERT(n <= remaining());
    std::string_view v = bytes_.substr(pos_, n);
    pos_ += n;
    return v;
  }

 private:
  static Status Truncated(const char* what) {
    return Status::InvalidArgument(std::string("conf change: truncated at ") + what);
  }

  std::string_view bytes_;
  size_t pos_ = 0;
};

// ---- Text form ----

char ChangeLetter(ConfChangeType t) {
  switch (t) {
    case ConfChangeType::kAddNode:
      return 'v';
    case ConfChangeType::kAddLearner:
      return 'l';
    case ConfChangeType::kRemoveNode:
      return 'r';
  }
  return '?';
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Parses one "v2" / "l3" / "r4" token.
Result<ConfChangeSingle> ParseToken(std::string_view token) {
  const std::string bad = "conf change: bad token '" + std::string(token) + "'";
  ConfChangeSingle c;
  switch (token[0]) {
    case 'v':
      c.type = ConfChangeType::kAddNode;
      break;
    case 'l':
      c.type = ConfChangeType::kAddLearner;
      break;
    case 'r':
      c.type = ConfChangeType::kRemoveNode;
      break;
    default:
      return Status::InvalidArgument(bad + " (want v<id>, l<id> or r<id>)");
  }
  if (token.size() < 2) return Status::InvalidArgument(bad + " (missing node id)");
  uint64_t id = 0;
  for (char ch : token.substr(1)) {
    if (ch < '0' || ch > '9') return Status::InvalidArgument(bad + " (node id not a number)");
    const uint64_t digit = static_cast<uint64_t>(ch - '0');
    if (id > (UINT64_MAX - digit) / 10) {
      return Status::InvalidArgument(bad + " (node id overflows 64 bits)");
    }
    id = id * 10 + digit;
  }
  c.node = NodeId(id);
  return c;
}

// ---- Configuration changes (etcd's confchange.Changer) ----

Status Invalid(const std::string& reason) {
  return Status::InvalidArgument("conf change: " + reason);
}

std::string IdString(NodeId id) { return std::to_string(id.value()); }

std::string IdsString(const std::set<NodeId>& ids) { return MajorityConfig(ids).ToString(); }

// The invariants every configuration satisfies; checked before and after each change, so a
// bad config can neither come in nor go out.
Status CheckInvariants(const MembershipConfig& cfg) {
  const std::set<NodeId>& incoming = cfg.voters.incoming.ids();
  const std::set<NodeId>& outgoing = cfg.voters.outgoing.ids();
  for (const std::set<NodeId>* ids : {&incoming, &outgoing, &cfg.learners, &cfg.learners_next}) {
    if (ids->count(kNoNode) != 0) return Invalid("node id 0 is invalid");
  }
  // A staged learner was staged only because it is still a voter of the outgoing half.
  for (NodeId id : cfg.learners_next) {
    if (!cfg.voters.outgoing.Contains(id)) {
      return Invalid(IdString(id) + " is in learners_next but not an outgoing voter");
    }
    if (cfg.voters.incoming.Contains(id)) {
      return Invalid(IdString(id) + " is in learners_next and an incoming voter");
    }
    if (cfg.learners.count(id) != 0) {
      return Invalid(IdString(id) + " is in learners_next and already a learner");
    }
  }
  for (NodeId id : cfg.learners) {
    if (cfg.voters.Contains(id)) return Invalid(IdString(id) + " is both a learner and a voter");
  }
  if (!cfg.IsJoint()) {
    if (!cfg.learners_next.empty()) return Invalid("learners_next set in a non-joint config");
    if (cfg.auto_leave) return Invalid("autoleave set in a non-joint config");
  }
  return Status();
}

void MakeVoter(MembershipConfig* cfg, NodeId id) {
  cfg->learners.erase(id);
  cfg->learners_next.erase(id);
  cfg->voters.incoming.mutable_ids().insert(id);
}

void MakeLearner(MembershipConfig* cfg, NodeId id) {
  if (cfg->learners.count(id) != 0) return;
  cfg->voters.incoming.mutable_ids().erase(id);
  cfg->learners_next.erase(id);
  // A voter of the outgoing half must keep voting there until the joint config is left, so
  // it becomes a learner only then (learners and voters never overlap).
  if (cfg->voters.outgoing.Contains(id)) {
    cfg->learners_next.insert(id);
  } else {
    cfg->learners.insert(id);
  }
}

void Remove(MembershipConfig* cfg, NodeId id) {
  // An outgoing voter stays in the outgoing half: it is removed when the joint config is left.
  cfg->voters.incoming.mutable_ids().erase(id);
  cfg->learners.erase(id);
  cfg->learners_next.erase(id);
}

Status ApplyChanges(MembershipConfig* cfg, const std::vector<ConfChangeSingle>& changes) {
  for (const ConfChangeSingle& c : changes) {
    if (c.node == kNoNode) return Invalid("node id 0 is invalid");
    switch (c.type) {
      case ConfChangeType::kAddNode:
        MakeVoter(cfg, c.node);
        break;
      case ConfChangeType::kAddLearner:
        MakeLearner(cfg, c.node);
        break;
      case ConfChangeType::kRemoveNode:
        Remove(cfg, c.node);
        break;
      default:
        return Invalid("unknown change type " + std::to_string(static_cast<int>(c.type)));
    }
  }
  // A group without voters can never commit again, not even a change that adds one back.
  if (cfg->voters.incoming.empty()) return Invalid("removed all voters");
  return Status();
}

// The number of nodes in exactly one of `a` and `b`.
size_t SymmetricDifference(const std::set<NodeId>& a, const std::set<NodeId>& b) {
  size_t n = 0;
  for (NodeId id : a) n += b.count(id) == 0 ? 1 : 0;
  for (NodeId id : b) n += a.count(id) == 0 ? 1 : 0;
  return n;
}

std::string ConfStateString(const ConfState& cs) {
  std::string out = "voters=" + IdsString(cs.voters);
  out += " voters_outgoing=" + IdsString(cs.voters_outgoing);
  out += " learners=" + IdsString(cs.learners);
  out += " learners_next=" + IdsString(cs.learners_next);
  out += cs.auto_leave ? " autoleave" : "";
  return out;
}

// Applies one simple change of type `type` per node of `ids`, in order.
Status ApplyEachSimply(MembershipConfig* cfg, ConfChangeType type, const std::set<NodeId>& ids) {
  for (NodeId id : ids) {
    Result<MembershipConfig> next = ApplySimpleConfChange(*cfg, {ConfChangeSingle{type, id}});
    if (!next.ok()) return next.status();
    *cfg = std::move(next).value();
  }
  return Status();
}

}  // namespace

// ---- ConfChange ----

bool ConfChange::EntersJoint() const {
  // A single change alters at most one voter, so any majority of the old config overlaps
  // any majority of the new one; more changes need the joint phase (thesis §4.3).
  return transition != ConfChangeTransition::kAuto || changes.size() > 1;
}

bool ConfChange::AutoLeave() const {
  return EntersJoint() && transition != ConfChangeTransition::kJointExplicit;
}

std::string ConfChange::Encode() const {
  std::string out;
  out.reserve(3 + changes.size() * 3);
  out.push_back(static_cast<char>(kEncodingVersion));
  out.push_back(static_cast<char>(transition));
  PutVarint(changes.size(), &out);
  for (const ConfChangeSingle& c : changes) {
    out.push_back(static_cast<char>(c.type));
    PutVarint(c.node.value(), &out);
  }
  PutVarint(context.size(), &out);
  out.append(context);
  return out;
}

Result<ConfChange> ConfChange::Decode(std::string_view bytes) {
  Reader r(bytes);
  uint8_t version = 0;
  SYNOD_RETURN_IF_ERROR(r.ReadByte("version", &version));
  if (version != kEncodingVersion) {
    return Invalid("unknown encoding version " + std::to_string(version));
  }
  uint8_t transition = 0;
  SYNOD_RETURN_IF_ERROR(r.ReadByte("transition", &transition));
  if (transition > static_cast<uint8_t>(ConfChangeTransition::kJointExplicit)) {
    return Invalid("unknown transition " + std::to_string(transition));
  }
  uint64_t count = 0;
  SYNOD_RETURN_IF_ERROR(r.ReadVarint("change count", &count));
  // Checked before reserving, so a corrupt count cannot make us allocate without bound.
  if (count > r.remaining() / kChangeBytesMin) {
    return Invalid("change count " + std::to_string(count) + " exceeds the encoded bytes");
  }
  ConfChange cc;
  cc.transition = static_cast<ConfChangeTransition>(transition);
  cc.changes.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    uint8_t type = 0;
    SYNOD_RETURN_IF_ERROR(r.ReadByte("change type", &type));
    if (type > static_cast<uint8_t>(ConfChangeType::kAddLearner)) {
      return Invalid("unknown change type " + std::to_string(type));
    }
    uint64_t node = 0;
    SYNOD_RETURN_IF_ERROR(r.ReadVarint("node id", &node));
    cc.changes.push_back(ConfChangeSingle{static_cast<ConfChangeType>(type), NodeId(node)});
  }
  uint64_t context_bytes = 0;
  SYNOD_RETURN_IF_ERROR(r.ReadVarint("context length", &context_bytes));
  if (context_bytes > kContextBytesMax || context_bytes > r.remaining()) {
    return Invalid("context length " + std::to_string(context_bytes) +
                   " exceeds the encoded bytes or the limit");
  }
  cc.context = std::string(r.Take(context_bytes));
  if (r.remaining() != 0) {
    return Invalid(std::to_string(r.remaining()) + " trailing bytes after the changes");
  }
  return cc;
}

std::string ConfChange::ToString() const {
  std::string out;
  for (const ConfChangeSingle& c : changes) {
    if (!out.empty()) out.push_back(' ');
    out.push_back(ChangeLetter(c.type));
    out.append(std::to_string(c.node.value()));
  }
  return out;
}

Result<ConfChange> ConfChange::Parse(std::string_view text) {
  ConfChange cc;
  size_t pos = 0;
  while (pos < text.size()) {
    if (IsSpace(text[pos])) {
      ++pos;
      continue;
    }
    size_t end = pos;
    while (end < text.size() && !IsSpace(text[end])) ++end;
    Result<ConfChangeSingle> c = ParseToken(text.substr(pos, end - pos));
    if (!c.ok()) return c.status();
    cc.changes.push_back(*c);
    pos = end;
  }
  return cc;
}

// ---- MembershipConfig ----

std::set<NodeId> MembershipConfig::AllIds() const {
  std::set<NodeId> ids = voters.Ids();
  ids.insert(learners.begin(), learners.end());
  // learners_next are outgoing voters, already included.
  return ids;
}

ConfState MembershipConfig::ToConfState() const {
  ConfState cs;
  cs.voters = voters.incoming.ids();
  cs.voters_outgoing = voters.outgoing.ids();
  cs.learners = learners;
  cs.learners_next = learners_next;
  cs.auto_leave = auto_leave;
  return cs;
}

Result<MembershipConfig> MembershipConfig::FromConfState(const ConfState& cs) {
  // Rebuild the config through the same changes a live group would have made, so that the
  // result passes every check ApplyConfChange makes (etcd's confchange.Restore). Joint: first
  // build the outgoing voters as a simple config, then enter the joint config that replaces
  // them by the incoming voters and adds the learners.
  MembershipConfig cfg;
  if (cs.voters_outgoing.empty()) {
    SYNOD_RETURN_IF_ERROR(ApplyEachSimply(&cfg, ConfChangeType::kAddNode, cs.voters));
    SYNOD_RETURN_IF_ERROR(ApplyEachSimply(&cfg, ConfChangeType::kAddLearner, cs.learners));
    SYNOD_RETURN_IF_ERROR(ApplyEachSimply(&cfg, ConfChangeType::kAddLearner, cs.learners_next));
  } else {
    SYNOD_RETURN_IF_ERROR(ApplyEachSimply(&cfg, ConfChangeType::kAddNode, cs.voters_outgoing));
    std::vector<ConfChangeSingle> incoming;
    for (NodeId id : cs.voters_outgoing) incoming.push_back({ConfChangeType::kRemoveNode, id});
    for (NodeId id : cs.voters) incoming.push_back({ConfChangeType::kAddNode, id});
    for (NodeId id : cs.learners) incoming.push_back({ConfChangeType::kAddLearner, id});
    for (NodeId id : cs.learners_next) incoming.push_back({ConfChangeType::kAddLearner, id});
    Result<MembershipConfig> joint = EnterJointConfig(cfg, cs.auto_leave, incoming);
    if (!joint.ok()) return joint.status();
    cfg = std::move(joint).value();
  }
  // Changes normalize what they are given (a learner that is also listed as a voter is just a
  // voter), so a conf state that breaks an invariant shows up as one that does not round-trip.
  if (cfg.ToConfState() != cs) {
    return Invalid("conf state " + ConfStateString(cs) + " is not a valid configuration");
  }
  return cfg;
}

std::string MembershipConfig::ToString() const {
  std::string out = "voters=" + voters.ToString();
  if (!learners.empty()) out += " learners=" + IdsString(learners);
  if (!learners_next.empty()) out += " learners_next=" + IdsString(learners_next);
  if (auto_leave) out += " autoleave";
  return out;
}

// ---- Applying changes ----

Result<MembershipConfig> EnterJointConfig(const MembershipConfig& current, bool auto_leave,
                                          const std::vector<ConfChangeSingle>& changes) {
  SYNOD_RETURN_IF_ERROR(CheckInvariants(current));
  if (current.IsJoint()) return Invalid("config is already joint");
  // An empty outgoing half would make the "joint" config indistinguishable from a simple one.
  if (current.voters.incoming.empty()) return Invalid("can't make a zero-voter config joint");
  MembershipConfig cfg = current;
  cfg.voters.outgoing = cfg.voters.incoming;
  SYNOD_RETURN_IF_ERROR(ApplyChanges(&cfg, changes));
  cfg.auto_leave = auto_leave;
  SYNOD_RETURN_IF_ERROR(CheckInvariants(cfg));
  SYNOD_ASSERT(cfg.IsJoint());
  return cfg;
}

Result<MembershipConfig> LeaveJointConfig(const MembershipConfig& current) {
  SYNOD_RETURN_IF_ERROR(CheckInvariants(current));
  if (!current.IsJoint()) return Invalid("can't leave a non-joint config");
  MembershipConfig cfg = current;
  cfg.learners.insert(cfg.learners_next.begin(), cfg.learners_next.end());
  cfg.learners_next.clear();
  cfg.voters.outgoing = MajorityConfig();
  cfg.auto_leave = false;
  SYNOD_RETURN_IF_ERROR(CheckInvariants(cfg));
  SYNOD_ASSERT(!cfg.IsJoint());
  return cfg;
}

Result<MembershipConfig> ApplySimpleConfChange(const MembershipConfig& current,
                                               const std::vector<ConfChangeSingle>& changes) {
  SYNOD_RETURN_IF_ERROR(CheckInvariants(current));
  if (current.IsJoint()) return Invalid("can't apply a simple config change in a joint config");
  MembershipConfig cfg = current;
  SYNOD_RETURN_IF_ERROR(ApplyChanges(&cfg, changes));
  if (SymmetricDifference(current.voters.incoming.ids(), cfg.voters.incoming.ids()) > 1) {
    return Invalid("more than one voter changed without entering a joint config");
  }
  SYNOD_RETURN_IF_ERROR(CheckInvariants(cfg));
  return cfg;
}

Result<MembershipConfig> ApplyConfChange(const MembershipConfig& current, const ConfChange& cc) {
  if (cc.IsLeaveJoint()) return LeaveJointConfig(current);
  if (cc.EntersJoint()) return EnterJointConfig(current, cc.AutoLeave(), cc.changes);
  return ApplySimpleConfChange(current, cc.changes);
}

}  // namespace synod::raft
