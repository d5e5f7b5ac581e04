#include "raft/describe.h"

#include <set>

#include <fmt/format.h>

#include "raft/confchange.h"

namespace synod::raft {

namespace {

std::string IdList(const std::set<NodeId>& ids) {
  std::string out = "[";
  for (NodeId id : ids) {
    if (out.size() > 1) out.push_back(' ');
    out += std::to_string(id.value());
  }
  out.push_back(']');
  return out;
}

const char* TransitionName(ConfChangeTransition t) {
  switch (t) {
    case ConfChangeTransition::kAuto:
      return "auto";
    case ConfChangeTransition::kJointImplicit:
      return "implicit";
    case ConfChangeTransition::kJointExplicit:
      return "explicit";
  }
  return "unknown";
}

std::string DescribeConfChangeData(std::string_view data) {
  Result<ConfChange> cc = ConfChange::Decode(data);
  if (!cc.ok()) return fmt::format("<undecodable {}B>", data.size());
  if (cc->IsLeaveJoint()) return "leave-joint";
  std::string out = cc->ToString();
  if (cc->transition != ConfChangeTransition::kAuto) {
    out += fmt::format(" transition={}", TransitionName(cc->transition));
  }
  return out;
}

void AppendMessages(std::string& out, const char* title, const std::vector<Message>& msgs) {
  if (msgs.empty()) return;
  out += title;
  out += ":\n";
  for (const Message& m : msgs) out += DescribeMessage(m) + "\n";
}

void AppendEntries(std::string& out, const char* title, const std::vector<Entry>& ents) {
  if (ents.empty()) return;
  out += title;
  out += ":\n";
  for (const Entry& e : ents) out += DescribeEntry(e) + "\n";
}

}  // namespace

std::string QuoteData(std::string_view data) {
  std::string out = "\"";
  for (char ch : data) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c >= 0x20 && c < 0x7f) {
      out.push_back(ch);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  out.push_back('"');
  return out;
}

std::string DescribeEntry(const Entry& e) {
  std::string out = fmt::format("{}/{} ", e.term.value(), e.index.value());
  if (e.type == EntryType::kConfChange) {
    return out + "EntryConfChange " + DescribeConfChangeData(e.data);
  }
  return out + "EntryNormal " + QuoteData(e.data);
}

std::string DescribeEntries(const std::vector<Entry>& ents, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < ents.size(); ++i) {
    if (i > 0) out += sep;
    out += DescribeEntry(ents[i]);
  }
  return out;
}

std::string DescribeHardState(const HardState& hs) {
  std::string out = fmt::format("Term:{}", hs.term.value());
  if (hs.vote != kNoNode) out += fmt::format(" Vote:{}", hs.vote.value());
  out += fmt::format(" Commit:{}", hs.commit.value());
  return out;
}

std::string DescribeSoftState(const SoftState& ss) {
  return fmt::format("Lead:{} State:{}", ss.lead.value(), RoleName(ss.role));
}

std::string DescribeConfState(const ConfState& cs) {
  return fmt::format("Voters:{} VotersOutgoing:{} Learners:{} LearnersNext:{} AutoLeave:{}",
                     IdList(cs.voters), IdList(cs.voters_outgoing), IdList(cs.learners),
                     IdList(cs.learners_next), cs.auto_leave);
}

std::string DescribeSnapshot(const Snapshot& snap) {
  std::string out = fmt::format("Index:{} Term:{} ConfState:{}", snap.meta.index.value(),
                                snap.meta.term.value(), DescribeConfState(snap.meta.conf_state));
  if (!snap.data.empty()) out += fmt::format(" Data:{}B", snap.data.size());
  return out;
}

std::string DescribeMessage(const Message& m) {
  std::string out =
      fmt::format("{}->{} {} Term:{} Log:{}/{}", m.from.value(), m.to.value(),
                  MessageTypeName(m.type), m.term.value(), m.log_term.value(), m.index.value());
  if (m.reject && m.type == MessageType::kAppResp) {
    out += fmt::format(" Rejected (Hint: {})", m.reject_hint.value());
  } else if (m.reject) {
    out += " Rejected";
  }
  if (m.commit != LogIndex(0)) out += fmt::format(" Commit:{}", m.commit.value());
  if (!m.entries.empty()) out += " Entries:[" + DescribeEntries(m.entries, ", ") + "]";
  if (!m.context.empty()) out += " Context:" + QuoteData(m.context);
  if (m.snapshot.has_value()) out += " Snapshot: " + DescribeSnapshot(*m.snapshot);
  return out;
}

std::string DescribeReady(const Ready& rd) {
  if (rd.Empty()) return "<empty Ready>\n";
  std::string out = fmt::format("Ready MustSync={}:\n", rd.must_sync);
  if (rd.soft_state) out += DescribeSoftState(*rd.soft_state) + "\n";
  if (rd.hard_state) out += "HardState " + DescribeHardState(*rd.hard_state) + "\n";
  if (rd.snapshot) out += "Snapshot " + DescribeSnapshot(*rd.snapshot) + "\n";
  AppendEntries(out, "Entries", rd.entries);
  AppendEntries(out, "CommittedEntries", rd.committed_entries);
  AppendMessages(out, "Messages", rd.messages);
  AppendMessages(out, "MessagesAfterPersist", rd.messages_after_persist);
  if (!rd.read_states.empty()) {
    out += "ReadStates:\n";
    for (const ReadState& rs : rd.read_states) {
      out += fmt::format("Index:{} Context:{}\n", rs.index.value(), QuoteData(rs.context));
    }
  }
  if (!rd.aborted_reads.empty()) {
    out += "AbortedReads:\n";
    for (const std::string& ctx : rd.aborted_reads) out += QuoteData(ctx) + "\n";
  }
  return out;
}

}  // namespace synod::raft
