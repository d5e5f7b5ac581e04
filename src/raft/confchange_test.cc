#include "raft/confchange.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace synod::raft {
namespace {

using T = ConfChangeTransition;

std::set<NodeId> Ids(std::initializer_list<uint64_t> ids) {
  std::set<NodeId> out;
  for (uint64_t id : ids) out.insert(NodeId(id));
  return out;
}

// A config built directly, without any check (so tests can also build broken ones).
MembershipConfig Config(std::initializer_list<uint64_t> voters,
                        std::initializer_list<uint64_t> outgoing = {},
                        std::initializer_list<uint64_t> learners = {},
                        std::initializer_list<uint64_t> learners_next = {},
                        bool auto_leave = false) {
  MembershipConfig cfg;
  cfg.voters.incoming = MajorityConfig(Ids(voters));
  cfg.voters.outgoing = MajorityConfig(Ids(outgoing));
  cfg.learners = Ids(learners);
  cfg.learners_next = Ids(learners_next);
  cfg.auto_leave = auto_leave;
  return cfg;
}

ConfChange Change(std::string_view text, T transition = T::kAuto) {
  Result<ConfChange> cc = ConfChange::Parse(text);
  SYNOD_ASSERT(cc.ok());
  cc->transition = transition;
  return *cc;
}

// Applies `text` and returns the new config's ToString, or the error's ToString.
std::string Apply(MembershipConfig* cfg, std::string_view text, T transition = T::kAuto) {
  Result<MembershipConfig> next = ApplyConfChange(*cfg, Change(text, transition));
  if (!next.ok()) return next.status().ToString();
  *cfg = *next;
  return cfg->ToString();
}

bool IsInvalid(const Result<MembershipConfig>& r) {
  return !r.ok() && r.status().code() == Code::kInvalidArgument;
}

// ---- ConfChange ----

TEST(ConfChangeTest, EntersJointAndAutoLeave) {
  struct Case {
    std::string text;
    T transition;
    bool enters_joint;
    bool auto_leave;
  };
  const Case cases[] = {
      {"", T::kAuto, false, false},
      {"v1", T::kAuto, false, false},
      {"v1 v2", T::kAuto, true, true},
      {"v1", T::kJointImplicit, true, true},
      {"v1 l2", T::kJointImplicit, true, true},
      {"v1", T::kJointExplicit, true, false},
      {"v1 r2", T::kJointExplicit, true, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text + " transition=" + std::to_string(static_cast<int>(c.transition)));
    ConfChange cc = Change(c.text, c.transition);
    EXPECT_EQ(cc.EntersJoint(), c.enters_joint);
    EXPECT_EQ(cc.AutoLeave(), c.auto_leave);
    EXPECT_EQ(cc.IsLeaveJoint(), c.text.empty());
  }
}

TEST(ConfChangeTest, ToStringAndParse) {
  ConfChange cc;
  cc.changes = {{ConfChangeType::kAddNode, NodeId(2)},
                {ConfChangeType::kAddLearner, NodeId(3)},
                {ConfChangeType::kRemoveNode, NodeId(40)}};
  EXPECT_EQ(cc.ToString(), "v2 l3 r40");
  Result<ConfChange> parsed = ConfChange::Parse("v2 l3 r40");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed, cc);
  EXPECT_EQ(parsed->transition, T::kAuto);
  EXPECT_EQ(ConfChange().ToString(), "");
}

TEST(ConfChangeTest, ParseToleratesWhitespace) {
  Result<ConfChange> cc = ConfChange::Parse("  v1\tl2 \n r3  ");
  ASSERT_TRUE(cc.ok());
  EXPECT_EQ(cc->ToString(), "v1 l2 r3");
  Result<ConfChange> empty = ConfChange::Parse("   ");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->IsLeaveJoint());
  Result<ConfChange> max = ConfChange::Parse("v18446744073709551615");
  ASSERT_TRUE(max.ok());
  EXPECT_EQ(max->changes[0].node, NodeId::Max());
}

TEST(ConfChangeTest, ParseRejectsBadTokens) {
  for (const char* text :
       {"x1", "v", "l", "v1a", "v-1", "1", "v1 q2", "V1", "v18446744073709551616", "v1,v2"}) {
    SCOPED_TRACE(text);
    Result<ConfChange> cc = ConfChange::Parse(text);
    ASSERT_FALSE(cc.ok());
    EXPECT_EQ(cc.status().code(), Code::kInvalidArgument);
  }
}

TEST(ConfChangeTest, EncodeDecodeRoundTrip) {
  std::vector<ConfChange> samples = {
      ConfChange(),
      Change("v1"),
      Change("v1 v2 l3 r4", T::kJointImplicit),
      Change("l127 l128 r16383 v16384", T::kJointExplicit),
      Change("v18446744073709551615 r0"),  // extremes are a matter for ApplyConfChange
  };
  ConfChange with_context = Change("l4");
  with_context.context = std::string("4=127.0.0.1:7104\0binary", 23);
  samples.push_back(with_context);
  for (const ConfChange& cc : samples) {
    SCOPED_TRACE(cc.ToString());
    const std::string bytes = cc.Encode();
    Result<ConfChange> decoded = ConfChange::Decode(bytes);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_EQ(*decoded, cc);
  }
}

TEST(ConfChangeTest, EncodingIsCompactAndVersioned) {
  const std::string bytes = Change("v2 r300", T::kJointExplicit).Encode();
  // version, transition, count, (type, id), (type, id as two varint bytes), context length
  EXPECT_EQ(bytes, std::string("\x01\x02\x02\x00\x02\x01\xac\x02\x00", 9));
}

TEST(ConfChangeTest, DecodeRejectsEveryTruncation) {
  const std::string bytes = Change("v1 l300 r18446744073709551615", T::kJointImplicit).Encode();
  for (size_t len = 0; len < bytes.size(); ++len) {
    SCOPED_TRACE("len=" + std::to_string(len));
    Result<ConfChange> cc = ConfChange::Decode(std::string_view(bytes).substr(0, len));
    ASSERT_FALSE(cc.ok());
    EXPECT_EQ(cc.status().code(), Code::kInvalidArgument);
  }
}

TEST(ConfChangeTest, DecodeRejectsMalformedBytes) {
  const std::string valid = Change("v1").Encode();
  struct Case {
    std::string bytes;
    std::string why;
  };
  const Case cases[] = {
      {std::string("\x02\x00\x00", 3), "unknown encoding version 2"},
      {std::string("\x00\x00\x00", 3), "unknown encoding version 0"},
      {std::string("\x01\x03\x00", 3), "unknown transition 3"},
      {std::string("\x01\x00\x01\x03\x01", 5), "unknown change type 3"},
      {valid + "x", "trailing bytes"},
      {std::string("\x01\x00\x00\x05xy", 6), "context length 5 exceeds"},
      {std::string("\x01\x00\x00\x81\x80\x04", 6), "context length 65537 exceeds"},
      {std::string("\x01\x00\x05\x00\x01", 5), "exceeds the encoded bytes"},
      // A count of 2^63 must not be trusted (nor allocated for).
      {std::string("\x01\x00\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 12), "exceeds"},
      {std::string("\x01\x00\x01\x00\x81\x00", 6), "not minimally encoded"},
      {std::string("\x01\x00\x01\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 14),
       "overflows 64 bits"},
      {std::string("\x01\x00\x01\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 15),
       "overflows 64 bits"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.why);
    Result<ConfChange> cc = ConfChange::Decode(c.bytes);
    ASSERT_FALSE(cc.ok());
    EXPECT_EQ(cc.status().code(), Code::kInvalidArgument);
    EXPECT_NE(cc.status().message().find(c.why), std::string_view::npos) << cc.status().ToString();
  }
}

// Random bytes and mutated valid encodings never crash Decode, and whatever it accepts
// re-encodes to the same bytes (the encoding is canonical).
TEST(ConfChangeTest, DecodeFuzz) {
  std::mt19937_64 rng(1234);
  const std::string valid = Change("v1 l300 r70000 v5", T::kJointExplicit).Encode();
  int accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string bytes;
    if (iter % 2 == 0) {
      bytes.resize(rng() % 16);
      for (char& b : bytes) b = static_cast<char>(rng() % 4 == 0 ? rng() % 4 : rng());
      if (!bytes.empty() && rng() % 2 == 0) bytes[0] = 1;  // get past the version check
    } else {
      bytes = valid;
      for (int flips = 1 + rng() % 3; flips > 0; --flips) {
        bytes[rng() % bytes.size()] = static_cast<char>(rng());
      }
    }
    Result<ConfChange> cc = ConfChange::Decode(bytes);
    if (!cc.ok()) {
      EXPECT_EQ(cc.status().code(), Code::kInvalidArgument);
      continue;
    }
    ++accepted;
    EXPECT_EQ(cc->Encode(), bytes);
  }
  EXPECT_GT(accepted, 100);  // the fuzzer reached the success path too
}

// ---- MembershipConfig ----

TEST(MembershipConfigTest, ToString) {
  EXPECT_EQ(MembershipConfig().ToString(), "voters=()");
  EXPECT_EQ(Config({1, 2, 3}).ToString(), "voters=(1 2 3)");
  EXPECT_EQ(Config({1, 2, 3}, {1, 2}, {4}, {}, true).ToString(),
            "voters=(1 2 3)&&(1 2) learners=(4) autoleave");
  EXPECT_EQ(Config({1, 2}, {1, 2, 3}, {4}, {3}, true).ToString(),
            "voters=(1 2)&&(1 2 3) learners=(4) learners_next=(3) autoleave");
}

TEST(MembershipConfigTest, Accessors) {
  MembershipConfig cfg = Config({1, 2}, {2, 3}, {4}, {3});
  EXPECT_TRUE(cfg.IsJoint());
  EXPECT_TRUE(cfg.IsVoter(NodeId(3)));
  EXPECT_FALSE(cfg.IsVoter(NodeId(4)));
  EXPECT_TRUE(cfg.IsLearner(NodeId(4)));
  EXPECT_FALSE(cfg.IsLearner(NodeId(3)));  // staged, still voting in the outgoing half
  EXPECT_EQ(cfg.AllIds(), Ids({1, 2, 3, 4}));
}

TEST(MembershipConfigTest, ConfStateRoundTrip) {
  const MembershipConfig cases[] = {
      MembershipConfig(),
      Config({1}),
      Config({1, 2, 3}, {}, {4, 5}),
      Config({1, 2, 3}, {1, 2, 4, 6}, {5}, {4}, true),
      Config({1, 2, 3}, {1, 2, 4, 6}, {5}, {4}, false),
      Config({7}, {1, 2}),
  };
  for (const MembershipConfig& cfg : cases) {
    SCOPED_TRACE(cfg.ToString());
    ConfState cs = cfg.ToConfState();
    EXPECT_EQ(cs.voters, cfg.voters.incoming.ids());
    EXPECT_EQ(cs.voters_outgoing, cfg.voters.outgoing.ids());
    Result<MembershipConfig> back = MembershipConfig::FromConfState(cs);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, cfg);
  }
}

TEST(MembershipConfigTest, FromConfStateRejectsBrokenInvariants) {
  const MembershipConfig cases[] = {
      Config({1, 2}, {}, {2}),           // learner and voter
      Config({1, 2}, {1, 3}, {3}),       // learner and outgoing voter
      Config({1, 2}, {1, 3}, {}, {4}),   // learners_next not an outgoing voter
      Config({1, 2}, {1, 3}, {}, {2}),   // learners_next also an incoming voter
      Config({1, 2}, {1, 3}, {3}, {3}),  // learner and staged learner
      Config({1, 2}, {}, {}, {}, true),  // autoleave outside a joint config
      Config({1, 2}, {}, {}, {2}),       // learners_next outside a joint config
      Config({}, {}, {1}),               // learners without voters
      Config({}, {1, 2}),                // joint with an empty incoming half
      Config({0, 1}),                    // node id 0
      Config({1}, {}, {0}),              // node id 0
  };
  for (const MembershipConfig& cfg : cases) {
    SCOPED_TRACE(cfg.ToString());
    EXPECT_TRUE(IsInvalid(MembershipConfig::FromConfState(cfg.ToConfState())));
  }
}

// ---- ApplyConfChange ----

TEST(ApplyConfChangeTest, SimpleAddAndRemove) {
  MembershipConfig cfg;
  EXPECT_EQ(Apply(&cfg, "v1"), "voters=(1)");
  EXPECT_EQ(Apply(&cfg, "v2"), "voters=(1 2)");
  EXPECT_EQ(Apply(&cfg, "v3"), "voters=(1 2 3)");
  EXPECT_EQ(Apply(&cfg, "l4"), "voters=(1 2 3) learners=(4)");
  EXPECT_EQ(Apply(&cfg, "r1"), "voters=(2 3) learners=(4)");
  EXPECT_EQ(Apply(&cfg, "r4"), "voters=(2 3)");
  EXPECT_EQ(Apply(&cfg, "v2"), "voters=(2 3)");  // adding a voter again is a no-op
  EXPECT_EQ(Apply(&cfg, "r9"), "voters=(2 3)");  // removing an unknown node too
  EXPECT_FALSE(cfg.IsJoint());
}

TEST(ApplyConfChangeTest, SimplePromoteAndDemote) {
  MembershipConfig cfg = Config({1, 2, 3}, {}, {4});
  EXPECT_EQ(Apply(&cfg, "v4"), "voters=(1 2 3 4)");
  EXPECT_EQ(Apply(&cfg, "l4"), "voters=(1 2 3) learners=(4)");  // outside joint: directly
  EXPECT_EQ(Apply(&cfg, "l4"), "voters=(1 2 3) learners=(4)");  // already a learner
}

TEST(ApplyConfChangeTest, SimpleChangeOfTwoVotersIsRefused) {
  MembershipConfig cfg = Config({1, 2, 3});
  std::vector<ConfChangeSingle> two = {{ConfChangeType::kAddNode, NodeId(4)},
                                       {ConfChangeType::kRemoveNode, NodeId(1)}};
  Result<MembershipConfig> r = ApplySimpleConfChange(cfg, two);
  ASSERT_TRUE(IsInvalid(r));
  EXPECT_NE(r.status().message().find("more than one voter changed"), std::string_view::npos);
  // Two voters added at once, or a promotion plus a demotion, are refused as well.
  EXPECT_TRUE(
      IsInvalid(ApplySimpleConfChange(Config({1}), {{ConfChangeType::kAddNode, NodeId(2)},
                                                    {ConfChangeType::kAddNode, NodeId(3)}})));
  EXPECT_TRUE(IsInvalid(ApplySimpleConfChange(
      Config({1, 2}, {}, {3}),
      {{ConfChangeType::kAddNode, NodeId(3)}, {ConfChangeType::kAddLearner, NodeId(2)}})));
  // Several changes that alter only one voter are fine as a simple change.
  Result<MembershipConfig> ok = ApplySimpleConfChange(
      cfg, {{ConfChangeType::kAddNode, NodeId(4)}, {ConfChangeType::kAddLearner, NodeId(5)}});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->ToString(), "voters=(1 2 3 4) learners=(5)");
  // Through ApplyConfChange two changes never take the simple path: they go joint.
  MembershipConfig via_auto = cfg;
  EXPECT_EQ(Apply(&via_auto, "v4 r1"), "voters=(2 3 4)&&(1 2 3) autoleave");
}

TEST(ApplyConfChangeTest, EnterAndLeaveJoint) {
  MembershipConfig cfg = Config({1, 2, 3}, {}, {7});
  EXPECT_EQ(Apply(&cfg, "v4 v5 r1 r2", T::kJointExplicit), "voters=(3 4 5)&&(1 2 3) learners=(7)");
  EXPECT_TRUE(cfg.IsJoint());
  EXPECT_FALSE(cfg.auto_leave);
  // Nothing but leaving is allowed while joint.
  EXPECT_EQ(Apply(&cfg, "v6"),
            "InvalidArgument: conf change: can't apply a simple config change in a joint config");
  EXPECT_EQ(Apply(&cfg, "v6 v8"), "InvalidArgument: conf change: config is already joint");
  EXPECT_EQ(Apply(&cfg, "v6", T::kJointImplicit),
            "InvalidArgument: conf change: config is already joint");
  EXPECT_EQ(Apply(&cfg, ""), "voters=(3 4 5) learners=(7)");
  EXPECT_FALSE(cfg.IsJoint());
  EXPECT_EQ(Apply(&cfg, ""), "InvalidArgument: conf change: can't leave a non-joint config");
}

TEST(ApplyConfChangeTest, AutoLeaveFlags) {
  const MembershipConfig base = Config({1, 2, 3});
  MembershipConfig cfg = base;
  EXPECT_EQ(Apply(&cfg, "v4 v5"), "voters=(1 2 3 4 5)&&(1 2 3) autoleave");
  EXPECT_TRUE(cfg.auto_leave);
  EXPECT_EQ(Apply(&cfg, ""), "voters=(1 2 3 4 5)");
  EXPECT_FALSE(cfg.auto_leave);  // cleared on leave

  cfg = base;
  EXPECT_EQ(Apply(&cfg, "v4", T::kJointImplicit), "voters=(1 2 3 4)&&(1 2 3) autoleave");
  cfg = base;
  EXPECT_EQ(Apply(&cfg, "v4", T::kJointExplicit), "voters=(1 2 3 4)&&(1 2 3)");
  EXPECT_FALSE(cfg.auto_leave);
  // The transition of the leaving change does not matter.
  EXPECT_EQ(Apply(&cfg, "", T::kJointExplicit), "voters=(1 2 3 4)");
}

TEST(ApplyConfChangeTest, DemotionGoesThroughLearnersNext) {
  MembershipConfig cfg = Config({1, 2, 3});
  // 3 keeps voting in the outgoing half until the joint config is left.
  EXPECT_EQ(Apply(&cfg, "l3 v4"), "voters=(1 2 4)&&(1 2 3) learners_next=(3) autoleave");
  EXPECT_TRUE(cfg.IsVoter(NodeId(3)));
  EXPECT_FALSE(cfg.IsLearner(NodeId(3)));
  EXPECT_EQ(Apply(&cfg, ""), "voters=(1 2 4) learners=(3)");
  EXPECT_TRUE(cfg.IsLearner(NodeId(3)));
  EXPECT_FALSE(cfg.IsVoter(NodeId(3)));
}

TEST(ApplyConfChangeTest, LearnersNextCanBeUndoneInTheSameChange) {
  MembershipConfig cfg = Config({1, 2, 3});
  EXPECT_EQ(Apply(&cfg, "l3 v3", T::kJointExplicit), "voters=(1 2 3)&&(1 2 3)");
  cfg = Config({1, 2, 3});
  EXPECT_EQ(Apply(&cfg, "l3 r3", T::kJointExplicit), "voters=(1 2)&&(1 2 3)");
  EXPECT_EQ(Apply(&cfg, ""), "voters=(1 2)");
  // A new node added as learner while joint is a learner at once.
  cfg = Config({1, 2, 3});
  EXPECT_EQ(Apply(&cfg, "l5 v4"), "voters=(1 2 3 4)&&(1 2 3) learners=(5) autoleave");
}

TEST(ApplyConfChangeTest, RemovingTheLastVoterIsRefused) {
  MembershipConfig cfg = Config({1}, {}, {2});
  EXPECT_EQ(Apply(&cfg, "r1"), "InvalidArgument: conf change: removed all voters");
  EXPECT_EQ(Apply(&cfg, "l1"), "InvalidArgument: conf change: removed all voters");
  cfg = Config({1, 2});
  EXPECT_EQ(Apply(&cfg, "r1 r2"), "InvalidArgument: conf change: removed all voters");
  EXPECT_EQ(Apply(&cfg, "l1 l2", T::kJointExplicit),
            "InvalidArgument: conf change: removed all voters");
  EXPECT_EQ(cfg, Config({1, 2}));  // unchanged by the failures
}

TEST(ApplyConfChangeTest, EmptyConfigCannotGoJoint) {
  MembershipConfig cfg;
  EXPECT_EQ(Apply(&cfg, "v1 v2"),
            "InvalidArgument: conf change: can't make a zero-voter config joint");
  EXPECT_EQ(Apply(&cfg, "l1"), "InvalidArgument: conf change: removed all voters");
}

TEST(ApplyConfChangeTest, NodeIdZeroIsRefused) {
  MembershipConfig cfg = Config({1, 2, 3});
  EXPECT_EQ(Apply(&cfg, "v0"), "InvalidArgument: conf change: node id 0 is invalid");
  EXPECT_EQ(Apply(&cfg, "r0"), "InvalidArgument: conf change: node id 0 is invalid");
  EXPECT_EQ(Apply(&cfg, "v4 l0"), "InvalidArgument: conf change: node id 0 is invalid");
}

TEST(ApplyConfChangeTest, BrokenCurrentConfigIsRefused) {
  MembershipConfig learner_and_voter = Config({1, 2}, {}, {2});
  EXPECT_EQ(Apply(&learner_and_voter, "v3"),
            "InvalidArgument: conf change: 2 is both a learner and a voter");
  MembershipConfig stray_next = Config({1, 2}, {1, 2}, {}, {3});
  EXPECT_EQ(Apply(&stray_next, ""),
            "InvalidArgument: conf change: 3 is in learners_next but not an outgoing voter");
  MembershipConfig stray_auto_leave = Config({1, 2}, {}, {}, {}, true);
  EXPECT_EQ(Apply(&stray_auto_leave, "v3"),
            "InvalidArgument: conf change: autoleave set in a non-joint config");
}

TEST(ApplyConfChangeTest, UnknownChangeTypeIsRefused) {
  ConfChange cc;
  cc.changes = {{static_cast<ConfChangeType>(9), NodeId(2)}};
  Result<MembershipConfig> r = ApplyConfChange(Config({1}), cc);
  ASSERT_TRUE(IsInvalid(r));
  EXPECT_NE(r.status().message().find("unknown change type 9"), std::string_view::npos);
}

TEST(ApplyConfChangeTest, DirectJointOperations) {
  Result<MembershipConfig> joint =
      EnterJointConfig(Config({1, 2, 3}), true, {{ConfChangeType::kAddLearner, NodeId(1)}});
  ASSERT_TRUE(joint.ok()) << joint.status().ToString();
  EXPECT_EQ(joint->ToString(), "voters=(2 3)&&(1 2 3) learners_next=(1) autoleave");
  Result<MembershipConfig> left = LeaveJointConfig(*joint);
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(left->ToString(), "voters=(2 3) learners=(1)");
  EXPECT_TRUE(IsInvalid(LeaveJointConfig(*left)));
  EXPECT_TRUE(IsInvalid(EnterJointConfig(*joint, false, {})));
}

// Random sequences of changes from random starting points: every accepted config keeps the
// invariants (it survives a ConfState round trip), simple changes alter at most one voter, and
// a refused change leaves nothing behind (ApplyConfChange is pure).
TEST(ApplyConfChangePropertyTest, RandomChangesKeepInvariants) {
  std::mt19937_64 rng(99);
  int accepted = 0;
  int joint_seen = 0;
  for (int run = 0; run < 300; ++run) {
    MembershipConfig cfg = Config({1});
    for (int step = 0; step < 30; ++step) {
      ConfChange cc;
      cc.transition = static_cast<T>(rng() % 3);
      const size_t n = rng() % 4 == 0 ? 0 : 1 + rng() % 3;
      for (size_t i = 0; i < n; ++i) {
        cc.changes.push_back({static_cast<ConfChangeType>(rng() % 3), NodeId(1 + rng() % 6)});
      }
      SCOPED_TRACE(cfg.ToString() + " + [" + cc.ToString() + "]");
      const MembershipConfig before = cfg;
      Result<MembershipConfig> next = ApplyConfChange(cfg, cc);
      ASSERT_EQ(cfg, before);
      if (!next.ok()) {
        ASSERT_EQ(next.status().code(), Code::kInvalidArgument);
        continue;
      }
      ++accepted;
      joint_seen += next->IsJoint() ? 1 : 0;
      ASSERT_FALSE(next->voters.incoming.empty());
      for (NodeId id : next->learners) ASSERT_FALSE(next->IsVoter(id));
      if (!cc.IsLeaveJoint()) {
        ASSERT_EQ(next->IsJoint(), cc.EntersJoint());
      }
      Result<MembershipConfig> restored = MembershipConfig::FromConfState(next->ToConfState());
      ASSERT_TRUE(restored.ok()) << restored.status().ToString();
      ASSERT_EQ(*restored, *next);
      cfg = *next;
    }
  }
  EXPECT_GT(accepted, 1000);
  EXPECT_GT(joint_seen, 300);
}

}  // namespace
}  // namespace synod::raft
