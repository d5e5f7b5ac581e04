#include "storage/raft_codec.h"

#include <gtest/gtest.h>

#include <string>

#include "env/random.h"

namespace synod::storage {
namespace {

raft::Entry MakeEntry(uint64_t term, uint64_t index, std::string data,
                      raft::EntryType type = raft::EntryType::kNormal) {
  raft::Entry e;
  e.term = Term(term);
  e.index = LogIndex(index);
  e.type = type;
  e.data = std::move(data);
  return e;
}

raft::ConfState JointConfState() {
  raft::ConfState cs;
  cs.voters = {NodeId(1), NodeId(2), NodeId(4)};
  cs.voters_outgoing = {NodeId(1), NodeId(2), NodeId(3)};
  cs.learners = {NodeId(5)};
  cs.learners_next = {NodeId(3)};
  cs.auto_leave = true;
  return cs;
}

// Every field set to a value different from its default, so that a field the codec forgets
// makes the round trip fail.
raft::Message FullMessage() {
  raft::Message m;
  m.type = raft::MessageType::kSnap;
  m.to = NodeId(2);
  m.from = NodeId(7);
  m.term = Term(9);
  m.log_term = Term(8);
  m.index = LogIndex(100);
  m.entries = {MakeEntry(8, 101, std::string("a\0b", 3)),
               MakeEntry(9, 102, "cc", raft::EntryType::kConfChange)};
  m.commit = LogIndex(99);
  raft::Snapshot snap;
  snap.meta.index = LogIndex(90);
  snap.meta.term = Term(7);
  snap.meta.conf_state = JointConfState();
  snap.data = std::string("\xff\x00image", 7);
  m.snapshot = snap;
  m.reject = true;
  m.reject_hint = LogIndex(55);
  m.context = std::string("ctx\x80", 4);  // not UTF-8: must survive (bytes, not string)
  m.sent_tick = 123456789012345ull;
  return m;
}

void ExpectSameMessage(const raft::Message& a, const raft::Message& b) {
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.to, b.to);
  EXPECT_EQ(a.from, b.from);
  EXPECT_EQ(a.term, b.term);
  EXPECT_EQ(a.log_term, b.log_term);
  EXPECT_EQ(a.index, b.index);
  EXPECT_EQ(a.entries, b.entries);
  EXPECT_EQ(a.commit, b.commit);
  EXPECT_EQ(a.snapshot, b.snapshot);
  EXPECT_EQ(a.reject, b.reject);
  EXPECT_EQ(a.reject_hint, b.reject_hint);
  EXPECT_EQ(a.context, b.context);
  EXPECT_EQ(a.sent_tick, b.sent_tick);
}

TEST(RaftCodecTest, MessageWithEveryFieldRoundTrips) {
  const raft::Message m = FullMessage();
  Result<raft::Message> back = DecodeMessage(EncodeMessage(m));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectSameMessage(m, *back);
}

TEST(RaftCodecTest, MessageWithoutSnapshotHasNone) {
  raft::Message m;
  m.type = raft::MessageType::kHeartbeat;
  m.to = NodeId(1);
  Result<raft::Message> back = DecodeMessage(EncodeMessage(m));
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(back->snapshot.has_value());
  ExpectSameMessage(m, *back);
}

TEST(RaftCodecTest, EveryMessageTypeRoundTrips) {
  const auto last = static_cast<int>(raft::MessageType::kReadIndexResp);
  for (int t = 0; t <= last; ++t) {
    raft::Message m;
    m.type = static_cast<raft::MessageType>(t);
    Result<raft::Message> back = DecodeMessage(EncodeMessage(m));
    ASSERT_TRUE(back.ok()) << t;
    EXPECT_EQ(back->type, m.type) << raft::MessageTypeName(m.type);
  }
}

// Regression: a batch of proposals (entries without indexes yet) was refused as "entry index 0
// does not follow 0", so a follower's forwarded writes of one round were dropped by the leader.
TEST(RaftCodecTest, ProposalBatchRoundTripsAndOnlyProposalsMayLackIndexes) {
  raft::Message m;
  m.type = raft::MessageType::kProp;
  m.from = NodeId(2);
  m.to = NodeId(1);
  for (int i = 0; i < 3; ++i) {
    raft::Entry e;
    e.data = "cmd" + std::to_string(i);
    m.entries.push_back(e);
  }
  Result<raft::Message> back = DecodeMessage(EncodeMessage(m));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->entries.size(), 3u);
  EXPECT_EQ(back->entries[2].data, "cmd2");

  m.entries[1].index = LogIndex(7);  // a proposal with an index is malformed
  EXPECT_EQ(DecodeMessage(EncodeMessage(m)).status().code(), Code::kInvalidArgument);
  m.entries[1].index = LogIndex(0);
  m.type = raft::MessageType::kApp;  // log entries must still be a run of indexes
  EXPECT_EQ(DecodeMessage(EncodeMessage(m)).status().code(), Code::kInvalidArgument);
}

TEST(RaftCodecTest, PlainTypesRoundTrip) {
  raft::HardState hs{Term(3), NodeId(2), LogIndex(17)};
  pb::HardState phs;
  ToProto(hs, &phs);
  EXPECT_EQ(*FromProto(phs), hs);

  const raft::ConfState cs = JointConfState();
  pb::ConfState pcs;
  ToProto(cs, &pcs);
  EXPECT_EQ(*FromProto(pcs), cs);

  const raft::Entry e = MakeEntry(4, 5, "data", raft::EntryType::kConfChange);
  pb::Entry pe;
  ToProto(e, &pe);
  EXPECT_EQ(*FromProto(pe), e);
  EXPECT_EQ(pe.data(), "data");  // the const overload leaves its input alone
}

TEST(RaftCodecTest, RejectsUnknownEnumValues) {
  pb::Message p;
  ToProto(FullMessage(), &p);
  p.set_type(static_cast<pb::MessageType>(99));
  EXPECT_EQ(FromProto(p).status().code(), Code::kInvalidArgument);
  p.set_type(pb::MSG_UNSPECIFIED);
  EXPECT_EQ(DecodeMessage(p.SerializeAsString()).status().code(), Code::kInvalidArgument);

  ToProto(FullMessage(), &p);
  p.mutable_entries(1)->set_type(static_cast<pb::EntryType>(7));
  EXPECT_EQ(DecodeMessage(p.SerializeAsString()).status().code(), Code::kInvalidArgument);
}

TEST(RaftCodecTest, RejectsInconsistentContent) {
  pb::Message p;
  ToProto(FullMessage(), &p);
  p.mutable_entries(1)->set_index(104);  // a gap after 101
  EXPECT_EQ(DecodeMessage(p.SerializeAsString()).status().code(), Code::kInvalidArgument);

  ToProto(FullMessage(), &p);
  p.mutable_snapshot()->mutable_meta()->mutable_conf_state()->add_voters(0);
  EXPECT_EQ(DecodeMessage(p.SerializeAsString()).status().code(), Code::kInvalidArgument);

  ToProto(FullMessage(), &p);
  p.mutable_snapshot()->mutable_meta()->mutable_conf_state()->add_learners(5);  // twice
  Result<raft::Message> m = DecodeMessage(p.SerializeAsString());
  EXPECT_EQ(m.status().code(), Code::kInvalidArgument);
  EXPECT_NE(m.status().message().find("repeated"), std::string_view::npos);
}

TEST(RaftCodecTest, GarbageNeverCrashes) {
  env::Random rng(42);
  int rejected = 0;
  for (int i = 0; i < 5000; ++i) {
    std::string bytes(rng.Uniform(64), '\0');
    for (char& c : bytes) c = static_cast<char>(rng.Uniform(256));
    Result<raft::Message> m = DecodeMessage(bytes);
    if (!m.ok()) {
      EXPECT_EQ(m.status().code(), Code::kInvalidArgument);
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 4000);  // random bytes are almost never a valid message
}

TEST(RaftCodecTest, EveryTruncationAndBitFlipIsHandled) {
  const std::string good = EncodeMessage(FullMessage());
  for (size_t cut = 0; cut < good.size(); ++cut) {
    Result<raft::Message> m = DecodeMessage(std::string_view(good).substr(0, cut));
    if (!m.ok()) {
      EXPECT_EQ(m.status().code(), Code::kInvalidArgument) << cut;
    }
  }
  for (size_t i = 0; i < good.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = good;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      Result<raft::Message> m = DecodeMessage(bad);
      if (!m.ok()) {
        EXPECT_EQ(m.status().code(), Code::kInvalidArgument) << i << ":" << bit;
      }
    }
  }
}

}  // namespace
}  // namespace synod::storage
