// The descriptors' decisions on hand-made settings. (Proposals by the leaders of real groups
// are exercised by the simulator's sharded seeds, whose nodes keep their maps in step with the
// meta shard under every fault, and end to end.)
#include "cluster/logic/descriptors.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "cluster/logic/merge.h"
#include "kv/state_machine.h"

namespace synod::cluster {
namespace {

Layout ThreeNodesTwoShards() {
  auto l = MakeInitialLayout({NodeId(1), NodeId(2), NodeId(3)}, 2, 3);
  EXPECT_TRUE(l.ok());
  return *l;
}

// Settings as the meta shard stores them: "<epoch> <descriptor line>".
std::string Stored(const ShardDescriptor& d) {
  return std::to_string(d.epoch) + " " + EncodeDescriptor(d);
}

TEST(Descriptors, ANewerEpochReplacesTheMapsAndTheEpochsHeldAreRecorded) {
  ShardMap map(ThreeNodesTwoShards());
  const ShardDescriptor first = map.layout().shards[0];
  std::map<std::string, std::string> settings;
  HeldDescriptors held;
  // Nothing stored yet (a new cluster): nothing learnt, not every group held.
  LearnResult r = LearnDescriptors(map, settings, &held);
  EXPECT_TRUE(r.updated.empty());
  EXPECT_FALSE(r.all_held);
  EXPECT_TRUE(held.empty());

  // Every layout descriptor stored at epoch 1: held, nothing newer.
  settings[DescriptorSetting(map.layout().meta.group)] = Stored(map.layout().meta);
  for (const ShardDescriptor& d : map.layout().shards)
    settings[DescriptorSetting(d.group)] = Stored(d);
  r = LearnDescriptors(map, settings, &held);
  EXPECT_TRUE(r.updated.empty());
  EXPECT_TRUE(r.all_held);
  EXPECT_EQ(held.size(), 3u);

  // Node 4 joined the first shard: epoch 2 replaces the map's descriptor.
  const ShardDescriptor next = WithMembers(first, {NodeId(1), NodeId(2), NodeId(3)}, {NodeId(4)});
  settings[DescriptorSetting(first.group)] = Stored(next);
  r = LearnDescriptors(map, settings, &held);
  ASSERT_EQ(r.updated.size(), 1u);
  EXPECT_EQ(r.updated[0].epoch, 2u);
  EXPECT_EQ(map.Find(first.group)->learners, std::vector<NodeId>{NodeId(4)});
  EXPECT_EQ(held[first.group].epoch, 2u);

  // An older epoch (a late read) never takes the map back.
  settings[DescriptorSetting(first.group)] = Stored(first);
  r = LearnDescriptors(map, settings, &held);
  EXPECT_TRUE(r.updated.empty());
  EXPECT_EQ(map.Find(first.group)->epoch, 2u);
}

TEST(Descriptors, BadStoredValuesAreReportedAndSkipped) {
  ShardMap map(ThreeNodesTwoShards());
  const ShardDescriptor first = map.layout().shards[0];
  const ShardDescriptor second = map.layout().shards[1];
  std::map<std::string, std::string> settings;
  settings[DescriptorSetting(first.group)] = "garbage";
  // Another group's descriptor under this group's name.
  settings[DescriptorSetting(second.group)] = Stored(first);
  HeldDescriptors held;
  const LearnResult r = LearnDescriptors(map, settings, &held);
  EXPECT_EQ(r.bad.size(), 2u);
  EXPECT_TRUE(r.updated.empty());
  EXPECT_TRUE(held.empty());
  // An epoch prefix that disagrees with the descriptor's own.
  ShardDescriptor e3 = WithMembers(first, {NodeId(1), NodeId(2)}, {});
  settings.clear();
  settings[DescriptorSetting(first.group)] = "9 " + EncodeDescriptor(e3);
  EXPECT_EQ(LearnDescriptors(map, settings, &held).bad.size(), 1u);
}

TEST(Descriptors, TheProposalIsAVersionedSetOfTheMetaShard) {
  ShardMap map(ThreeNodesTwoShards());
  const ShardDescriptor d = WithMembers(map.layout().shards[1], {NodeId(2), NodeId(3)}, {});
  const kv::Command cmd = ProposeDescriptorCommand(d, 77);
  EXPECT_EQ(cmd.client_id, 77u);
  EXPECT_EQ(cmd.seq, 1u);  // a fresh session's first command
  ASSERT_EQ(cmd.args.size(), 4u);
  EXPECT_EQ(cmd.args[0], kv::kVersionedSetCommand);
  EXPECT_EQ(cmd.args[1], DescriptorSetting(d.group));
  EXPECT_EQ(cmd.args[2], std::to_string(d.epoch));
  // Applied, the stored value is what LearnDescriptors reads back.
  kv::StateMachine sm;
  sm.Apply(LogIndex(1), cmd);
  sm.Apply(LogIndex(2), cmd);  // applied twice (a retry): the same state
  HeldDescriptors held;
  const LearnResult r = LearnDescriptors(map, SettingsWithPrefix(sm, "shard/"), &held);
  ASSERT_EQ(r.updated.size(), 1u);
  EXPECT_EQ(r.updated[0].voters, (std::vector<NodeId>{NodeId(2), NodeId(3)}));
}

TEST(Descriptors, ASplitsNewShardIsLearntFromTheMetaShardAndAReadOfAllDescriptorsFindsIt) {
  ShardMap map(ThreeNodesTwoShards());
  const ShardDescriptor p = map.layout().shards[0];
  ShardDescriptor left = p;
  left.last_slot = 100;
  left.epoch = 2;
  ShardDescriptor right = p;
  right.group = GroupId(9);
  right.first_slot = 101;
  right.epoch = 2;
  kv::StateMachine sm;
  sm.Apply(LogIndex(1), ProposeDescriptorCommand(left, 1));
  sm.Apply(LogIndex(2), ProposeDescriptorCommand(right, 2));
  sm.Apply(LogIndex(3), ProposeDescriptorCommand(map.layout().shards[1], 3));
  // What a node beyond the meta shard's replicas fetches: a kConfig read of "shard/*".
  const std::vector<std::string> names = {"requirepass", std::string(kDescriptorSettings)};
  std::map<std::string, std::string> prefixed = SettingsWithPrefix(sm, "shard/");
  kv::Reply reply = kv::Reply::Array({kv::Reply::Nil(), kv::Reply::Array({})});
  for (const auto& [n, v] : prefixed) {
    reply.replies[1].replies.push_back(kv::Reply::Bulk(n));
    reply.replies[1].replies.push_back(kv::Reply::Bulk(v));
  }
  const std::map<std::string, std::string> got = SettingsOf(names, reply);
  EXPECT_EQ(got, prefixed);
  HeldDescriptors held;
  const LearnResult r = LearnDescriptors(map, got, &held);
  EXPECT_EQ(r.updated.size(), 2u);
  EXPECT_TRUE(map.clean());
  EXPECT_EQ(map.ForSlot(100).group, p.group);
  EXPECT_EQ(map.ForSlot(101).group, GroupId(9));
  EXPECT_EQ(held[GroupId(9)].epoch, 2u);
}

TEST(Descriptors, AMergeWidensTheAbsorbingShardAndItsTombstoneIsKeptApart) {
  ShardMap map(ThreeNodesTwoShards());
  const ShardDescriptor left = map.layout().shards[0];
  const ShardDescriptor right = map.layout().shards[1];
  // Merged here: the left shard owns both ranges at an epoch above both; the right is forgotten.
  AppliedMergeHere m{left.group,  right.group, SlotRange{0, 16383}, SlotRange{8192, 16383}, 2,
                     left.voters, {}};
  const std::vector<ShardDescriptor> learnt = LearnMerge(map, m);
  ASSERT_EQ(learnt.size(), 1u);
  EXPECT_EQ(learnt[0].epoch, 2u);
  EXPECT_EQ(map.ForSlot(16383).group, left.group);
  EXPECT_EQ(map.Find(right.group), nullptr);
  EXPECT_EQ(map.layout().shards.size(), 1u);

  // Applied late by a replica that lagged, while the map knows the shard at a later epoch
  // (split since): the map stays as it is.
  ShardDescriptor narrowed = learnt[0];
  narrowed.last_slot = 9000;
  narrowed.epoch = 5;
  ASSERT_TRUE(map.Update(narrowed));
  AppliedMergeHere late = m;
  late.epoch = 4;
  EXPECT_TRUE(LearnMerge(map, late).empty());
  EXPECT_EQ(map.Find(left.group)->epoch, 5u);
  EXPECT_EQ(map.Find(left.group)->last_slot, 9000);

  // The tombstone's codec: no members, merged=, refused with members or without merged=.
  const ShardDescriptor t =
      MergedTombstone(right.group, SlotRange{right.first_slot, right.last_slot}, left.group, 3);
  const std::string line = EncodeDescriptor(t);
  EXPECT_NE(line.find("merged=" + std::to_string(left.group.value())), std::string::npos);
  Result<ShardDescriptor> back = DecodeDescriptor(line);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->merged_into, left.group);
  EXPECT_TRUE(back->voters.empty());
  ShardDescriptor bad = t;
  bad.voters = {NodeId(1)};
  EXPECT_FALSE(DecodeDescriptor(EncodeDescriptor(bad)).ok());
  bad = right;
  bad.voters.clear();
  EXPECT_FALSE(DecodeDescriptor(EncodeDescriptor(bad)).ok());

  // Learnt from the meta shard: out of the map and of what is held, reported as merged.
  ShardMap fresh(ThreeNodesTwoShards());
  std::map<std::string, std::string> settings;
  settings[DescriptorSetting(left.group)] = Stored(learnt[0]);
  settings[DescriptorSetting(right.group)] = Stored(t);
  HeldDescriptors held;
  const LearnResult r = LearnDescriptors(fresh, settings, &held);
  EXPECT_TRUE(r.bad.empty());
  ASSERT_EQ(r.merged.size(), 1u);
  EXPECT_EQ(r.merged.begin()->second.merged_into, left.group);
  EXPECT_FALSE(held.contains(right.group));
  EXPECT_EQ(fresh.ForSlot(16383).group, left.group);
  EXPECT_EQ(fresh.Find(right.group), nullptr);

  // The merged shard changed while its merge ran (its descriptor ties the wider one's epoch, and
  // the narrower wins a tie): its tombstone takes it out once the wider one covers its slots,
  // and not before.
  ShardMap tie(ThreeNodesTwoShards());
  ShardDescriptor moved = WithMembers(right, {NodeId(1), NodeId(2), NodeId(4)}, {});
  moved.epoch = 2;
  ASSERT_TRUE(tie.Update(moved));
  EXPECT_FALSE(tie.ForgetMerged(t));  // nothing else covers its slots yet
  EXPECT_EQ(tie.ForSlot(16383).group, right.group);
  ASSERT_TRUE(tie.Update(learnt[0]));  // the wider descriptor, at the same epoch
  EXPECT_EQ(tie.ForSlot(16383).group, right.group);
  EXPECT_TRUE(tie.ForgetMerged(t));
  EXPECT_EQ(tie.ForSlot(16383).group, left.group);
  EXPECT_EQ(tie.Find(right.group), nullptr);
}

TEST(Descriptors, TheTombstonesOwedAreTheAbsorbedShardsTheMetaShardHasNoTombstoneOf) {
  // A shard that absorbed groups 5 and 7 (its replicated record): once the meta shard holds 5's
  // tombstone, only 7's is owed by whoever leads it.
  const std::vector<kv::Absorbed> absorbed = {kv::Absorbed{5, SlotRange{100, 199}, 3},
                                              kv::Absorbed{7, SlotRange{200, 299}, 4}};
  std::map<GroupId, ShardDescriptor> merged;
  EXPECT_EQ(TombstonesOwed(absorbed, merged), absorbed);
  merged[GroupId(5)] = MergedTombstone(GroupId(5), SlotRange{100, 199}, GroupId(2), 3);
  EXPECT_EQ(TombstonesOwed(absorbed, merged), std::vector<kv::Absorbed>{absorbed[1]});
  merged[GroupId(7)] = MergedTombstone(GroupId(7), SlotRange{200, 299}, GroupId(2), 9);
  EXPECT_TRUE(TombstonesOwed(absorbed, merged).empty());
}

}  // namespace
}  // namespace synod::cluster
