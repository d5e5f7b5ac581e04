// Store: one node's host of many Raft groups (CockroachDB's Store, TiKV's raftstore) — the pure
// decision logic that the real node (cluster/) and the simulator (sim/) both run.
//
// It owns one Replica per group the node holds, each over its GroupStorage in the node's one
// NodeDb, and drives them together:
//  - Events (a message, a client request, a tick) go to the group they name; a group an event
//    touched is put in the ready set, and only groups in it are examined for work, so a round
//    costs what the busy groups cost, not what the node holds.
//  - The node round: BeginRound() runs the Ready of every group in the ready set. Groups whose
//    Ready needs nothing durable finish at once; the others have staged their records in the
//    NodeDb. If any did, BeginRound returns true and the host makes the node's one write
//    durable (TakeWrite, then WriteTaken on its storage thread, or after a simulated fsync),
//    then calls FinishRound() with the result: every group of the round then sends what had
//    to wait for durability and applies what committed. One fsync per round for all groups
//    (node-wide group commit). While a round's write is in flight no group starts another
//    Ready: what arrives meanwhile is batched into the next round.
//  - Quiescence (CockroachDB's): a group with nothing to do stops ticking, so that idle groups
//    cost nothing per tick. A leader whose group stayed idle (Replica::QuiescableLeader) for
//    quiesce_after_ticks ticks stops ticking and sends every member a quiesce notice (term,
//    last index); a follower whose log and commit end there (Replica::QuiescableFollower)
//    stops ticking too, one that cannot asks the leader to wake up. Any event for a quiesced
//    group wakes it: a message, a request, a touch; a member woken by anything but its
//    leader's message asks the leader to wake (SendWake), and the leader's next heartbeat
//    wakes the others. A follower cannot notice a dead leader without ticks, so the host
//    reports nodes it no longer hears from (PeerDown; the real node: no message, its node beat
//    included, for an election timeout, or a lost connection): their groups wake and elect.
//    A member that knows no leader for an election timeout (one restarted while its group was
//    quiesced: the leader sends nothing, and a learner never campaigns) asks every other
//    member to wake the group; wakes from a node that is no member of the group (removed
//    without knowing it) are ignored. Only with ReadIndex reads (a lease counts ticks).
//  - A failed write fails every group of the round (and the NodeDb refuses every later write,
//    so every group fails at its next round): the node stops acknowledging until restarted.
//
// Splits (docs/sharding.md, "Splits"): when a replica applies a split of its shard, the Store
// creates this node's replica of the new shard before the next node write, from the split's
// right half: a snapshot at the split's index with the parent's membership, whose state is the
// parent's keys of the moved slots where they are stored (nothing is copied). On the node
// that led the parent, the new replica campaigns at once. Every replica of the parent does the
// same at the same index, so all of them start from the same state. A node whose replica of
// the parent never applies the split (it got a snapshot past it) gets the new shard like any
// new member, by a snapshot from its leader — which it refuses while a replica of another group
// here still holds any of the snapshot's slots (it would overwrite that replica's keys).
//
// Merges (docs/sharding.md, "Merges"): when a replica applies a merge, this node's replica of the
// absorbed shard (frozen, or lagging behind its freeze) is destroyed in the same round, its
// records deleted and its keys left: the merge's write cleared its slots and stored the
// absorbed keys under them. One with a Ready in flight goes when its round ends, without
// finishing it (it could only apply what the merge replaced).
//
// Replicas removed from their group: a data shard's replica (keys under slots, not the meta
// shard's own) that applied a configuration without this node (a move, a member removal) is
// destroyed at the end of its round, and its
// records — and its keys, when no other replica here owns any of their slots — are deleted in
// the node's next write (TiKV's peer destruction). Messages still coming for it are kept and
// dropped as for any group not held. RemoveGroup destroys a replica on the host's word (an
// empty one the node made for a shard that no longer lists it).
//
// Messages for a group the node does not hold are kept for a while (a few per group, for a
// few groups, for two election timeouts): a split's new shard may hear from its first leader
// before this node applied the split; they are delivered when the group appears, else dropped.
//
// Thread-safety: none; one thread (the node's core thread, or the simulator's) owns a Store.
// Time is Tick(); the host decides how long a tick is.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "cluster/logic/replica.h"
#include "cluster/logic/transport.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/status.h"
#include "storage/group_storage.h"
#include "storage/node_db.h"

namespace synod::cluster {

// A split this node's replica of `parent` applied, whose new shard the Store started here (or
// found started): what the host's map learns from it at once.
struct StartedSplit {
  GroupId parent;
  GroupId child;
  SlotRange kept;      // the parent's slots now
  SlotRange moved;     // the new shard's
  uint64_t epoch = 0;  // both halves' descriptors' (the split command's)
  // The parent's members at the split's entry: both halves'.
  std::vector<NodeId> voters;
  std::vector<NodeId> learners;
};

// A merge this node's replica of `group` applied: it absorbed shard `from` (whose replica here,
// if any, the Store destroyed, leaving its keys to `group`). What the host's map learns.
struct AppliedMergeHere {
  GroupId group;
  GroupId from;
  SlotRange slots;     // `group`'s slots now
  SlotRange absorbed;  // `from`'s
  uint64_t epoch = 0;  // the merge command's
  std::vector<NodeId> voters;
  std::vector<NodeId> learners;
};

struct StoreOptions {
  NodeId self;
  // The options of every replica. raft.id is set to `self`, `group` to the group's id, the
  // sync mode to kHost, and raft.random_seed is drawn from random_seed and the group id, so
  // that groups do not time their elections in lockstep.
  ReplicaOptions replica;
  uint64_t random_seed = 1;
  // Bound on the Ready rounds one group may run within one BeginRound without a write.
  int ready_rounds_max = 64;
  // A leader quiesces its group after this many ticks idle (see the class comment); 0 never.
  // Set it above the heartbeat interval, so that a heartbeat carried the final commit index.
  int quiesce_after_ticks = 0;
};

class Store {
 public:
  // REQUIRES: db, transport and observer (may be null) outlive the Store.
  Store(StoreOptions opts, storage::NodeDb* db, RaftTransport* transport, ReplicaObserver* observer,
        Logger logger);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Opens this node's replica of `group`, whose state machine keys are `span`, from what the
  // NodeDb holds. A group with no records is new: with `voters` (the group's initial members,
  // this node among them) it is bootstrapped as every initial member is — a snapshot at index
  // 1 holding that membership and an empty state machine, written durably (with whatever else
  // is staged) before AddGroup returns; without, it starts empty and waits
  // for a leader to send it a snapshot. Errors: kFailedPrecondition (the group is open, or a
  // round is in flight), kInvalidArgument (voters that do not include this node), the
  // storage's and the replica's errors (kCorruption, kIoError).
  Status AddGroup(GroupId group, storage::StateSpan span, const std::set<NodeId>& voters);

  bool HasGroup(GroupId group) const { return groups_.contains(group); }
  // The replica of `group`, or nullptr when this node holds none.
  Replica* replica(GroupId group);
  const Replica* replica(GroupId group) const;
  // The storage of `group`'s replica, or nullptr when this node holds none.
  const storage::GroupStorage* storage(GroupId group) const;
  storage::GroupStorage* storage(GroupId group);
  // Whether this node's replica of `group` is empty: made for a descriptor that listed the node,
  // no snapshot or state since (false when not held).
  bool HoldsNothing(GroupId group) const;
  // Whether a replica here other than `group`'s, not empty (HoldsNothing), owns any of `slots`
  // (a snapshot of `group` over them must wait: installing it would delete that replica's keys,
  // and the writes that replica has yet to apply would land on the snapshot's).
  bool SlotsHeldByOthers(GroupId group, SlotRange slots) const;
  // A streamed snapshot of `group`'s replica to `to` ended (Replica::StreamedSnapshotEnded).
  void StreamedSnapshotEnded(GroupId group, NodeId to, bool delivered);
  // The groups held, in id order.
  std::vector<GroupId> groups() const;
  size_t group_count() const { return groups_.size(); }

  // Events. Each marks the group as having possible work for the next round.
  // Every group's clock advances one tick.
  void Tick();
  // A message from a peer for `group`. kNotFound (and the message dropped) when this node holds
  // no replica of it.
  Status Receive(GroupId group, raft::Message m);
  // Client requests (see Replica::Submit / SubmitRead). A request for a group this node does
  // not hold is answered at once with kNotFound.
  void Submit(GroupId group, const kv::Command& cmd, ReadMode mode, ReplyFn reply);
  void SubmitRead(GroupId group, ReadFn fn, ReadMode mode, ReplyFn reply);
  // Replicated expiry in every group this node leads; the number of keys proposed.
  size_t ProposeExpiry(int64_t now_ms, size_t limit_per_group);
  // The transport could not reach `peer`: every group that has it as a member is told.
  void ReportUnreachable(NodeId peer);
  // The host's wall clock, for every replica (Replica::set_wall_clock_ms).
  void set_wall_clock_ms(int64_t now_ms);
  // Marks a group as having work (after a host called into its replica directly); wakes it.
  void Touch(GroupId group);
  // Quiescence (see the class comment). A quiesce notice from `from`, the leader of `group` at
  // `term` with every log ending at `index`; a member's request to wake `group`; a node this
  // node no longer hears from (every quiesced group it leads wakes, to elect another leader).
  void ReceiveQuiesce(NodeId from, GroupId group, Term term, LogIndex index);
  // A wake from `from` is ignored unless it is a member of the group as this replica sees it (a
  // replica removed without knowing it would wake the group every election timeout).
  void ReceiveWake(NodeId from, GroupId group);
  void PeerDown(NodeId peer);
  // A removal notice from `from`: its replica of `group`, having applied up to `index`, has a
  // configuration without this node (a committed one). This node's replica of a data shard that
  // applied something but less than `index` is stale — removed while its node was away, it
  // never applied its removal — and is destroyed with its data (as when it applies its removal;
  // TakeRemovedGroups reports it). Ignored during a round (the next message brings another), for
  // an empty replica (it may be a new member waiting for its snapshot), and for a replica that
  // applied `index` or more (it knows better: it was added back since).
  void ReceiveRemoved(NodeId from, GroupId group, LogIndex index);
  bool quiesced(GroupId group) const;
  size_t quiesced_count() const { return quiesced_count_; }

  // The node round (see the class comment).
  // Whether a round may start and some group may have work.
  // A destroyed replica's deletion staged and not yet written is work too: until it is, the
  // group cannot be added back (AddGroup would read the records the deletion is about to drop).
  bool HasWork() const {
    return !round_in_flight_ && (!ready_.empty() || !destroys_staged_.empty());
  }
  // Runs the Ready of every group in the ready set. Returns true when a node write is needed:
  // the host takes it (db->TakeWrite()), makes it durable and calls FinishRound.
  bool BeginRound();
  // The round's node write is done (`written` is WriteTaken's result).
  void FinishRound(const Status& written);
  bool round_in_flight() const { return round_in_flight_; }
  // Groups in the round in flight.
  size_t round_groups() const { return round_.size(); }

  // Destroys this node's replica of `group` and deletes its records (with its keys when
  // `with_data` and no other replica here owns any of its slots), in the next node write.
  // kFailedPrecondition during a round, kNotFound when not held.
  Status RemoveGroup(GroupId group, bool with_data);
  // The groups destroyed since the last call (removed from them, or RemoveGroup).
  std::vector<GroupId> TakeRemovedGroups() { return std::exchange(removed_, {}); }
  // The splits applied here since the last call (the host learns both halves' descriptors).
  std::vector<StartedSplit> TakeStartedSplits() { return std::exchange(started_, {}); }
  // The merges applied here since the last call.
  std::vector<AppliedMergeHere> TakeMerges() { return std::exchange(merged_, {}); }

  // Counters (for metrics and tests).
  uint64_t rounds() const { return rounds_; }             // BeginRounds that needed a write
  uint64_t splits() const { return splits_; }             // new shards started by splits
  uint64_t destroyed() const { return destroyed_; }       // replicas destroyed (removed)
  uint64_t dropped_messages() const { return dropped_; }  // for groups not held
  uint64_t quiesces() const { return quiesces_; }         // groups that stopped ticking

 private:
  struct Group {
    std::unique_ptr<storage::GroupStorage> storage;
    std::unique_ptr<Replica> replica;
    bool quiesced = false;
    int idle_ticks = 0;        // leader: consecutive ticks QuiescableLeader
    int leaderless_ticks = 0;  // ticks without a known leader (see AskForALeader)
  };
  // Quiescence: a member that knew no leader for an election timeout asks the others to wake.
  void AskForALeader(GroupId id, Group& g);
  void Quiesce(Group& g);
  // Wakes `g` if quiesced; a follower asks its leader to wake too unless `leader_spoke` (the
  // event was the leader's own message) or the leader is `down`.
  void Wake(GroupId id, Group& g, bool leader_spoke, NodeId down = kNoNode);
  // Runs one group's Readys until it needs a write (returns true) or has none left.
  bool RunReadys(GroupId id, Group& g);
  // Starts the new shards of the splits `g`'s replica applied.
  void StartSplits(GroupId parent, Group& g);
  // After `g`'s replica applied merges: destroys this node's replicas of the absorbed shards
  // (keys kept), at once, or after the round when one has a Ready in flight.
  void FinishMerges(GroupId id, Group& g);
  // After its round: destroys `id`'s replica when it was removed from its group (see above).
  // Returns true when it did (the Group is gone).
  bool DestroyIfRemoved(GroupId id, Group& g);
  // `staged`: its records' deletion is staged already (a merged-away replica's, FinishMerges).
  void Destroy(GroupId id, bool with_data, bool staged = false);
  Status StartSplit(GroupId parent, AppliedSplit& split);
  // Builds the replica of an open storage (AddGroup, StartSplit).
  Result<std::unique_ptr<Replica>> MakeReplica(GroupId group, storage::GroupStorage* storage,
                                               kv::internal::State* adopt);
  // Whether a snapshot for `group` must wait: its slots overlap another replica's here.
  bool SnapshotOverlaps(GroupId group, const raft::Message& m) const;
  // Messages for groups not held (see the class comment).
  void KeepForLater(GroupId group, raft::Message m);
  void DeliverKept(GroupId group);

  StoreOptions opts_;
  storage::NodeDb* db_;
  RaftTransport* transport_;
  ReplicaObserver* observer_;
  Logger logger_;
  std::map<GroupId, Group> groups_;
  // Groups an event touched since their last Ready, in id order (deterministic rounds).
  std::set<GroupId> ready_;
  // Groups whose Ready waits for the round's write.
  std::vector<GroupId> round_;
  bool round_in_flight_ = false;
  uint64_t rounds_ = 0;
  uint64_t dropped_ = 0;
  size_t quiesced_count_ = 0;
  uint64_t quiesces_ = 0;
  uint64_t splits_ = 0;
  uint64_t destroyed_ = 0;
  std::vector<StartedSplit> started_;
  std::vector<AppliedMergeHere> merged_;
  std::set<GroupId> merged_away_;  // absorbed, to destroy when their round ends
  std::vector<GroupId> removed_;
  // Replicas destroyed whose deletion is staged and not taken by a round's write yet, and those
  // whose deletion the round in flight writes.
  std::set<GroupId> destroys_staged_;
  std::set<GroupId> destroys_writing_;
  uint64_t ticks_ = 0;
  struct Kept {
    uint64_t tick;
    raft::Message m;
  };
  std::map<GroupId, std::vector<Kept>> kept_;
  // Removal notices sent: (group, node) -> the tick; one per election timeout at most.
  std::map<std::pair<GroupId, NodeId>, uint64_t> removal_notices_;
  void MaybeNoticeRemoval(GroupId group, const Group& g, NodeId from);
  static constexpr size_t kKeptGroupsMax = 16;
  static constexpr size_t kKeptPerGroupMax = 16;
};

}  // namespace synod::cluster
