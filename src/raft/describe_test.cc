#include "raft/describe.h"

#include <gtest/gtest.h>

#include "raft/confchange.h"

namespace synod::raft {
namespace {

Entry MakeEntry(uint64_t term, uint64_t index, std::string data) {
  Entry e;
  e.term = Term(term);
  e.index = LogIndex(index);
  e.data = std::move(data);
  return e;
}

TEST(Describe, EntryQuotesDataAndDecodesConfChanges) {
  EXPECT_EQ(DescribeEntry(MakeEntry(1, 3, "a\"b\\\n")), "1/3 EntryNormal \"a\\\"b\\\\\\x0a\"");
  Entry cc = MakeEntry(2, 4, "");
  cc.type = EntryType::kConfChange;
  ConfChange change = ConfChange::Parse("v2 l3 r4").value();
  change.transition = ConfChangeTransition::kJointExplicit;
  cc.data = change.Encode();
  EXPECT_EQ(DescribeEntry(cc), "2/4 EntryConfChange v2 l3 r4 transition=explicit");
  cc.data = ConfChange{}.Encode();
  EXPECT_EQ(DescribeEntry(cc), "2/4 EntryConfChange leave-joint");
}

TEST(Describe, HardStateOmitsAnEmptyVote) {
  EXPECT_EQ(DescribeHardState({Term(2), NodeId(1), LogIndex(5)}), "Term:2 Vote:1 Commit:5");
  EXPECT_EQ(DescribeHardState({Term(2), kNoNode, LogIndex(5)}), "Term:2 Commit:5");
}

TEST(Describe, Messages) {
  Message m;
  m.type = MessageType::kApp;
  m.from = NodeId(1);
  m.to = NodeId(2);
  m.term = Term(3);
  m.log_term = Term(2);
  m.index = LogIndex(7);
  m.commit = LogIndex(6);
  m.entries = {MakeEntry(3, 8, "x"), MakeEntry(3, 9, "")};
  EXPECT_EQ(DescribeMessage(m),
            "1->2 MsgApp Term:3 Log:2/7 Commit:6 Entries:[3/8 EntryNormal \"x\", 3/9 EntryNormal "
            "\"\"]");
  Message r;
  r.type = MessageType::kAppResp;
  r.from = NodeId(2);
  r.to = NodeId(1);
  r.term = Term(3);
  r.index = LogIndex(7);
  r.reject = true;
  r.reject_hint = LogIndex(4);
  EXPECT_EQ(DescribeMessage(r), "2->1 MsgAppResp Term:3 Log:0/7 Rejected (Hint: 4)");
  r.type = MessageType::kVoteResp;
  r.index = LogIndex(0);
  EXPECT_EQ(DescribeMessage(r), "2->1 MsgVoteResp Term:3 Log:0/0 Rejected");
}

TEST(Describe, Ready) {
  Ready rd;
  EXPECT_EQ(DescribeReady(rd), "<empty Ready>\n");
  rd.must_sync = true;
  rd.soft_state = SoftState{NodeId(1), Role::kLeader};
  rd.hard_state = HardState{Term(1), NodeId(1), LogIndex(2)};
  rd.entries = {MakeEntry(1, 3, "")};
  rd.read_states = {ReadState{LogIndex(2), "r"}};
  rd.aborted_reads = {"q"};
  EXPECT_EQ(DescribeReady(rd),
            "Ready MustSync=true:\n"
            "Lead:1 State:StateLeader\n"
            "HardState Term:1 Vote:1 Commit:2\n"
            "Entries:\n"
            "1/3 EntryNormal \"\"\n"
            "ReadStates:\n"
            "Index:2 Context:\"r\"\n"
            "AbortedReads:\n"
            "\"q\"\n");
}

TEST(Describe, Snapshot) {
  Snapshot s;
  s.meta.index = LogIndex(4);
  s.meta.term = Term(1);
  s.meta.conf_state.voters = {NodeId(1), NodeId(2)};
  s.meta.conf_state.voters_outgoing = {NodeId(1)};
  s.meta.conf_state.auto_leave = true;
  s.data = "abc";
  EXPECT_EQ(DescribeSnapshot(s),
            "Index:4 Term:1 ConfState:Voters:[1 2] VotersOutgoing:[1] Learners:[] LearnersNext:[] "
            "AutoLeave:true Data:3B");
}

}  // namespace
}  // namespace synod::raft
