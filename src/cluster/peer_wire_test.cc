#include "cluster/peer_wire.h"

#include <gtest/gtest.h>

#include <string>

#include "storage/raft_codec.h"

namespace synod::cluster::peer_wire {
namespace {

raft::Message Append() {
  raft::Message m;
  m.type = raft::MessageType::kApp;
  m.from = NodeId(2);
  m.to = NodeId(3);
  m.term = Term(5);
  m.index = LogIndex(40);
  raft::Entry e;
  e.term = Term(5);
  e.index = LogIndex(41);
  e.data = std::string("\0payload", 8);
  m.entries.push_back(e);
  return m;
}

TEST(PeerWireTest, RaftEnvelopeRoundTripsWithItsGroup) {
  for (uint64_t g : {uint64_t{1}, uint64_t{300}, uint64_t{1} << 40, UINT64_MAX}) {
    const std::string bytes = EncodeRaft(GroupId(g), Append());
    EXPECT_EQ(KindOf(bytes), static_cast<uint8_t>(Kind::kRaft));
    Result<RaftEnvelope> got = DecodeRaft(bytes);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->group, GroupId(g));
    EXPECT_EQ(storage::EncodeMessage(got->message), storage::EncodeMessage(Append()));
    EXPECT_EQ(got->message.entries, Append().entries);
  }
}

TEST(PeerWireTest, BadEnvelopesAreRefusedNeverCrash) {
  const std::string good = EncodeRaft(GroupId(9), Append());
  EXPECT_FALSE(DecodeRaft("").ok());
  EXPECT_FALSE(DecodeRaft(std::string("\x02") + good.substr(1)).ok());  // another kind
  EXPECT_FALSE(DecodeRaft(good.substr(0, 5)).ok());                     // truncated envelope
  std::string group0 = good;
  for (int i = 1; i <= 8; ++i) group0[i] = 0;
  EXPECT_FALSE(DecodeRaft(group0).ok());
  EXPECT_FALSE(DecodeRaft(good.substr(0, good.size() - 3)).ok());  // a cut message
  // Every prefix and every single flipped byte either decodes or is refused cleanly.
  for (size_t n = 0; n < good.size(); ++n) (void)DecodeRaft(good.substr(0, n));
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0xA5);
    (void)DecodeRaft(bad);
  }
}

TEST(PeerWireTest, CallsAndLeadershipNoticesRoundTripAndBadOnesAreRefused) {
  const std::string req = EncodeCall(Kind::kRequest, 42, "body");
  Result<Call> c = DecodeCall(Kind::kRequest, req);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->id, 42u);
  EXPECT_EQ(c->body, "body");
  EXPECT_FALSE(DecodeCall(Kind::kResponse, req).ok());  // another kind
  EXPECT_FALSE(DecodeCall(Kind::kRequest, req.substr(0, 5)).ok());
  const std::vector<LeaderNotice> led = {{GroupId(2), 7}, {GroupId(9), 1}};
  Result<std::vector<LeaderNotice>> back = DecodeLeaders(EncodeLeaders(led));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, led);
  EXPECT_TRUE(DecodeLeaders(EncodeLeaders({})).ok());
  EXPECT_FALSE(DecodeLeaders(EncodeLeaders(led).substr(0, 20)).ok());  // not whole records
  EXPECT_FALSE(DecodeLeaders(EncodeLeaders({{GroupId(0), 1}})).ok());
  EXPECT_FALSE(DecodeLeaders("").ok());
}

TEST(PeerWireTest, QuiescenceNoticesWakesAndBeatsRoundTripAndBadOnesAreRefused) {
  const std::vector<QuiesceNotice> q = {{GroupId(2), 7, 100}, {GroupId(3), 1, 5}};
  Result<std::vector<QuiesceNotice>> qb = DecodeQuiesce(EncodeQuiesce(q));
  ASSERT_TRUE(qb.ok());
  EXPECT_EQ(*qb, q);
  EXPECT_FALSE(DecodeQuiesce(EncodeQuiesce(q).substr(0, 30)).ok());  // not whole records
  EXPECT_FALSE(DecodeQuiesce(EncodeQuiesce({{GroupId(0), 1, 1}})).ok());
  EXPECT_FALSE(DecodeQuiesce(EncodeWake({GroupId(2), GroupId(3), GroupId(4)})).ok());  // kind
  const std::vector<GroupId> w = {GroupId(4), GroupId(1)};
  Result<std::vector<GroupId>> wb = DecodeWake(EncodeWake(w));
  ASSERT_TRUE(wb.ok());
  EXPECT_EQ(*wb, w);
  EXPECT_FALSE(DecodeWake(EncodeWake(w).substr(0, 12)).ok());
  EXPECT_FALSE(DecodeWake(EncodeWake({GroupId(0)})).ok());
  Result<uint8_t> beat = DecodeBeat(EncodeBeat(kBeatStorageFailed));
  ASSERT_TRUE(beat.ok());
  EXPECT_EQ(*beat, kBeatStorageFailed);
  EXPECT_FALSE(DecodeBeat(EncodeBeat(0) + "x").ok());
  EXPECT_FALSE(DecodeBeat("").ok());
  EXPECT_FALSE(DecodeBeat(std::string(1, static_cast<char>(Kind::kBeat))).ok());
}

TEST(PeerWireTest, RemovalNoticesRoundTripAndBadOnesAreRefused) {
  const std::vector<RemovedNotice> r = {{GroupId(9), 1234}, {GroupId(2), 1}};
  Result<std::vector<RemovedNotice>> rb = DecodeRemoved(EncodeRemoved(r));
  ASSERT_TRUE(rb.ok());
  EXPECT_EQ(*rb, r);
  EXPECT_FALSE(DecodeRemoved(EncodeRemoved(r).substr(0, 20)).ok());  // not whole records
  EXPECT_FALSE(DecodeRemoved(EncodeRemoved({{GroupId(0), 5}})).ok());
  EXPECT_FALSE(DecodeRemoved(EncodeWake({GroupId(2), GroupId(3)})).ok());  // kind
}

TEST(PeerWireTest, LoadNoticesRoundTripAndBadOnesAreRefused) {
  const std::vector<LoadNotice> l = {{GroupId(3), uint64_t{1} << 40, 1500, true, false},
                                     {GroupId(7), 0, 0, false, true},
                                     {GroupId(9), 1, 2, true, true}};
  Result<std::vector<LoadNotice>> lb = DecodeLoads(EncodeLoads(l));
  ASSERT_TRUE(lb.ok());
  EXPECT_EQ(*lb, l);
  EXPECT_FALSE(DecodeLoads(EncodeLoads(l).substr(0, 20)).ok());  // not whole records
  EXPECT_FALSE(DecodeLoads(EncodeLoads({{GroupId(0), 5}})).ok());
  EXPECT_FALSE(DecodeLoads(EncodeRemoved({{GroupId(2), 3}})).ok());  // kind
  std::string bad_flags = EncodeLoads({{GroupId(2), 5, 0, false}});
  bad_flags.back() = 4;
  EXPECT_FALSE(DecodeLoads(bad_flags).ok());
}

TEST(PeerWireTest, SnapshotStreamMessagesRoundTripAndBadOnesAreRefused) {
  raft::Message m;
  m.type = raft::MessageType::kSnap;
  m.from = NodeId(1);
  m.to = NodeId(2);
  m.term = Term(3);
  m.snapshot = raft::Snapshot{raft::SnapshotMeta{LogIndex(40), Term(3), {}}, ""};
  m.snapshot->meta.conf_state.voters = {NodeId(1), NodeId(2)};
  const std::string begin = EncodeSnapBegin(7, GroupId(5), SlotRange{300, 16383}, m);
  Result<SnapBegin> b = DecodeSnapBegin(begin);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->stream, 7u);
  EXPECT_EQ(b->group, GroupId(5));
  ASSERT_TRUE(b->range.has_value());
  EXPECT_EQ(b->range->first, 300);
  EXPECT_EQ(b->range->last, 16383);
  EXPECT_EQ(b->message.snapshot->meta, m.snapshot->meta);
  Result<SnapBegin> any = DecodeSnapBegin(EncodeSnapBegin(7, GroupId(1), std::nullopt, m));
  ASSERT_TRUE(any.ok());
  EXPECT_FALSE(any->range.has_value());
  EXPECT_FALSE(DecodeSnapBegin(begin.substr(0, 16)).ok());
  std::string bad_range = begin;
  bad_range[20] = 0;
  bad_range[21] = 0;  // last 0, before first 300
  EXPECT_FALSE(DecodeSnapBegin(bad_range).ok());
  std::string bad_flag = begin;
  bad_flag[17] = 2;
  EXPECT_FALSE(DecodeSnapBegin(bad_flag).ok());
  raft::Message app = m;
  app.type = raft::MessageType::kApp;
  app.snapshot.reset();
  EXPECT_FALSE(DecodeSnapBegin(EncodeSnapBegin(7, GroupId(5), std::nullopt, app)).ok())
      << "not a snapshot";
  // A decoded chunk's records view the encoded bytes: they must outlive it.
  const std::string chunk = EncodeSnapChunk(7, 12, true, "records");
  Result<SnapChunk> c = DecodeSnapChunk(chunk);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->stream, 7u);
  EXPECT_EQ(c->seq, 12u);
  EXPECT_TRUE(c->last);
  EXPECT_EQ(c->records, "records");
  std::string bad_last = EncodeSnapChunk(7, 12, true, "");
  bad_last[17] = 2;
  EXPECT_FALSE(DecodeSnapChunk(bad_last).ok());
  EXPECT_FALSE(DecodeSnapChunk(EncodeSnapChunk(0, 1, false, "x")).ok());
  EXPECT_FALSE(DecodeSnapChunk(EncodeSnapChunk(7, 1, false, "").substr(0, 17)).ok());
  const SnapAck a{7, 3, SnapAckCode::kDelivered};
  Result<SnapAck> ab = DecodeSnapAck(EncodeSnapAck(a));
  ASSERT_TRUE(ab.ok());
  EXPECT_EQ(*ab, a);
  std::string bad_code = EncodeSnapAck(a);
  bad_code[17] = 9;
  EXPECT_FALSE(DecodeSnapAck(bad_code).ok());
  EXPECT_FALSE(DecodeSnapAck(EncodeSnapAck(a) + "x").ok());
  Result<uint64_t> cancel = DecodeSnapCancel(EncodeSnapCancel(7));
  ASSERT_TRUE(cancel.ok());
  EXPECT_EQ(*cancel, 7u);
  EXPECT_FALSE(DecodeSnapCancel(EncodeSnapCancel(0)).ok());
  EXPECT_FALSE(DecodeSnapCancel(EncodeSnapAck(a)).ok());  // kind
}

}  // namespace
}  // namespace synod::cluster::peer_wire
