// Env: the simulated world an interaction script drives (etcd's rafttest.InteractionEnv).
//
// It holds a set of Raft nodes, each a RawNode on its own storage (a MemoryStorage) with a tiny
// state machine (the list of applied entry data), and one network: a single ordered queue of the
// messages the nodes sent and that were not yet delivered or dropped. Nothing happens on its
// own: every tick, Ready round and delivery is a script command, so a script is a complete,
// deterministic description of an interaction and its output is a golden transcript.
//
// The Ready contract of raw_node.h is followed literally by ProcessReady: messages are queued
// first, then snapshot/entries/hard state are persisted, then messages_after_persist are
// queued, then the snapshot and committed entries are applied, then Advance.
//
// Raft's own log lines go through an spdlog logger whose sink writes into the current
// command's output ("I raft=1 event=..."), at the level set by `log-level` (default info).
//
// Thread-safety: none; one Env per script run.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/log.h"
#include "raft/raw_node.h"
#include "raft/script/script.h"
#include "raft/storage.h"

namespace synod::raft::script {

// The text a command prints. Everything written while an indent is set is indented at each
// line start, log lines included, which is how "> 1 handling Ready" sections nest.
class Output {
 public:
  void Write(std::string_view s);
  void Line(std::string_view s) {
    Write(s);
    Write("\n");
  }
  void Indent(int delta) { indent_ += delta; }
  std::string Take();

 private:
  std::string buf_;
  int indent_ = 0;
  bool at_line_start_ = true;
};

// An applied normal entry: a node's state machine is the list of these.
struct AppliedEntry {
  LogIndex index;
  std::string data;
};

struct SimNode;

// A node's durable log: a MemoryStorage, except that GetSnapshot() returns a snapshot of the
// state machine as applied now when that is newer than the stored one, as an application
// builds snapshots on demand (etcd's interaction env does the same). A new or lagging member
// can then always be caught up, and the snapshot's ConfState includes it.
class NodeStorage final : public Storage {
 public:
  explicit NodeStorage(const SimNode* node) : node_(node) {}

  Result<std::pair<HardState, ConfState>> InitialState() const override {
    return mem_.InitialState();
  }
  Result<std::vector<Entry>> Entries(LogIndex lo, LogIndex hi, uint64_t max_bytes) const override {
    return mem_.Entries(lo, hi, max_bytes);
  }
  Result<Term> TermAt(LogIndex i) const override { return mem_.TermAt(i); }
  LogIndex FirstIndex() const override { return mem_.FirstIndex(); }
  LogIndex LastIndex() const override { return mem_.LastIndex(); }
  Result<Snapshot> GetSnapshot() const override;

  MemoryStorage& mem() { return mem_; }
  const MemoryStorage& mem() const { return mem_; }

 private:
  MemoryStorage mem_;
  const SimNode* node_;
};

// One simulated node: its storage, its RawNode and its state machine.
struct SimNode {
  NodeId id;
  Config config;  // what the node was created with; reused on restart
  std::unique_ptr<NodeStorage> storage;
  std::unique_ptr<RawNode> raw;  // null while crashed
  std::vector<AppliedEntry> applied;
  // The ConfState in force from each index on: the bootstrap/snapshot one, then one per
  // applied membership change. Snapshots take the last one at or below their index.
  std::vector<std::pair<LogIndex, ConfState>> conf_history;
  LogIndex applied_index;

  // The state machine image at `index` (<= applied_index), for snapshots.
  std::string ImageAt(LogIndex index) const;
  const ConfState* ConfAt(LogIndex index) const;
};

class Env {
 public:
  Env();
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;

  // Runs one command and returns everything it printed. Script errors (unknown command, bad
  // argument) are printed as "error: ..." lines; they never abort the run.
  std::string Run(const Command& cmd);

 private:
  using Node = SimNode;
  using Handler = Status (Env::*)(const Args&);
  struct CommandSpec {
    std::string_view name;
    std::string_view usage;
    Handler handler;
  };
  enum class DropMode : uint8_t { kDeliver, kDrop };
  struct MsgFilter {
    std::optional<NodeId> from;
    std::optional<MessageType> type;
    std::optional<uint64_t> count;  // at most this many (the oldest) messages
  };

  static const std::vector<CommandSpec>& Commands();

  // commands.cc: one handler per command; each parses its arguments and calls the core.
  Status CmdAddNodes(const Args& args);
  Status CmdCampaign(const Args& args);
  Status CmdTick(const Args& args);
  Status CmdTickElection(const Args& args);
  Status CmdTickHeartbeat(const Args& args);
  Status CmdProcessReady(const Args& args);
  Status CmdDeliverMsgs(const Args& args);
  Status CmdStabilize(const Args& args);
  Status CmdPropose(const Args& args);
  Status CmdProposeConfChange(const Args& args);
  Status CmdReadIndex(const Args& args);
  Status CmdTransferLeadership(const Args& args);
  Status CmdPartition(const Args& args);
  Status CmdHeal(const Args& args);
  Status CmdReorderMsgs(const Args& args);
  Status CmdCompact(const Args& args);
  Status CmdCrash(const Args& args);
  Status CmdRestart(const Args& args);
  Status CmdStatus(const Args& args);
  Status CmdRaftLog(const Args& args);
  Status CmdRaftState(const Args& args);
  Status CmdAppliedData(const Args& args);
  Status CmdLogLevel(const Args& args);
  Result<Config> ParseNodeConfig(const Args& args) const;
  Result<Node*> NodeById(uint64_t id);
  Result<Node*> RunningNode(const Arg* arg);
  // The nodes named by the positional arguments, or all nodes when there are none.
  Result<std::vector<Node*>> NodeList(const Args& args);
  // Prints a Raft error (a refused proposal, ...) as output; nothing when OK.
  void PrintIfError(const Status& s);

  // env.cc: the simulated world.
  Status AddNode(Config cfg, const ConfState* bootstrap, LogIndex index);
  void ProcessReady(Node& n);
  void ApplySnapshot(Node& n, const Snapshot& snap);
  void ApplyCommitted(Node& n, const std::vector<Entry>& ents);
  bool HasMessagesFor(NodeId to) const;
  void DeliverTo(NodeId to, DropMode mode, const MsgFilter& filter);
  void Dropped(const Message& m, std::string_view reason);
  void Stabilize(const std::vector<Node*>& nodes);
  void TickElection(Node& n);
  Status Compact(Node& n, LogIndex index);
  Status Restart(Node& n);
  bool Partitioned(NodeId a, NodeId b) const;
  void PrintStatusOf(const Node& n);
  void PrintLogOf(const Node& n);

  Output out_;
  std::shared_ptr<spdlog::logger> spd_;
  Logger logger_;
  std::vector<std::unique_ptr<Node>> nodes_;  // nodes_[i] has id i+1
  std::vector<Message> network_;              // in send order
  // Partition groups: messages between groups are dropped at delivery; a node in no group
  // is alone. Empty when healed.
  std::vector<std::vector<NodeId>> partition_;
};

}  // namespace synod::raft::script
