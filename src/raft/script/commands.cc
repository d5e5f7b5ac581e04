// The script commands: one declarative table, one small handler per command. A handler
// parses its arguments, calls the Env, and prints what Raft answered. A returned error means
// the script itself is wrong (printed with the usage line); Raft's own errors are output.
#include <algorithm>

#include <fmt/format.h>

#include "raft/describe.h"
#include "raft/script/env.h"

namespace synod::raft::script {

namespace {

Result<std::set<NodeId>> IdSet(const Arg* arg) {
  std::set<NodeId> ids;
  if (arg == nullptr) return ids;
  for (const std::string& v : arg->vals) {
    auto id = ParseUint(v);
    if (!id.ok()) return id.status();
    ids.insert(NodeId(*id));
  }
  return ids;
}

Result<MessageType> ParseMessageType(std::string_view name) {
  for (int t = 0; t <= static_cast<int>(MessageType::kReadIndexResp); ++t) {
    auto type = static_cast<MessageType>(t);
    if (name == MessageTypeName(type)) return type;
  }
  return Status::InvalidArgument(fmt::format("unknown message type '{}'", name));
}

Result<spdlog::level::level_enum> ParseLevel(std::string_view name) {
  if (name == "none") return spdlog::level::off;
  if (name == "error") return spdlog::level::err;
  if (name == "warn") return spdlog::level::warn;
  if (name == "info") return spdlog::level::info;
  if (name == "debug") return spdlog::level::debug;
  return Status::InvalidArgument(fmt::format("unknown log level '{}'", name));
}

// Sets `*field` from the option `key` when present.
template <typename T>
Status SetUint(const Args& args, std::string_view key, T* field) {
  auto v = args.Uint(key, static_cast<uint64_t>(*field));
  if (!v.ok()) return v.status();
  *field = static_cast<T>(*v);
  return Status::Ok();
}

}  // namespace

const std::vector<Env::CommandSpec>& Env::Commands() {
  static const std::vector<CommandSpec> kTable = {
      {"add-nodes",
       "add-nodes N [voters=(1,2,3)] [learners=(4)] [index=1] [prevote=true] [checkquorum=true] "
       "[read-only=safe|lease] [lease-drift=N] [election-ticks=N] [heartbeat-ticks=N] "
       "[max-inflight=N] [max-msg-bytes=N] [max-uncommitted-bytes=N]",
       &Env::CmdAddNodes},
      {"campaign", "campaign ID", &Env::CmdCampaign},
      {"tick", "tick ID [N]", &Env::CmdTick},
      {"tick-election", "tick-election ID", &Env::CmdTickElection},
      {"tick-heartbeat", "tick-heartbeat ID", &Env::CmdTickHeartbeat},
      {"process-ready", "process-ready ID...", &Env::CmdProcessReady},
      {"deliver-msgs", "deliver-msgs [ID...] [drop=true] [from=ID] [type=MsgApp] [count=N]",
       &Env::CmdDeliverMsgs},
      {"stabilize", "stabilize [ID...]", &Env::CmdStabilize},
      {"propose", "propose ID DATA", &Env::CmdPropose},
      {"propose-conf-change", "propose-conf-change ID [transition=auto|implicit|explicit] v2 l3 r4",
       &Env::CmdProposeConfChange},
      {"read-index", "read-index ID CONTEXT", &Env::CmdReadIndex},
      {"transfer-leadership", "transfer-leadership from=ID to=ID", &Env::CmdTransferLeadership},
      {"partition", "partition (1 2) (3)", &Env::CmdPartition},
      {"heal", "heal", &Env::CmdHeal},
      {"reorder-msgs", "reorder-msgs ID", &Env::CmdReorderMsgs},
      {"compact", "compact ID INDEX", &Env::CmdCompact},
      {"crash", "crash ID", &Env::CmdCrash},
      {"restart", "restart ID", &Env::CmdRestart},
      {"status", "status ID...", &Env::CmdStatus},
      {"raft-log", "raft-log ID", &Env::CmdRaftLog},
      {"raft-state", "raft-state", &Env::CmdRaftState},
      {"applied-data", "applied-data [ID...]", &Env::CmdAppliedData},
      {"log-level", "log-level none|error|warn|info|debug", &Env::CmdLogLevel},
  };
  return kTable;
}

void Env::PrintIfError(const Status& s) {
  if (!s.ok()) out_.Line(s.ToString());
}

Result<Env::Node*> Env::NodeById(uint64_t id) {
  if (id == 0 || id > nodes_.size()) {
    return Status::InvalidArgument(fmt::format("no node {}", id));
  }
  return nodes_[id - 1].get();
}

Result<Env::Node*> Env::RunningNode(const Arg* arg) {
  if (arg == nullptr || arg->vals.size() != 1) return Status::InvalidArgument("node id missing");
  auto id = ParseUint(arg->vals[0]);
  if (!id.ok()) return id.status();
  auto n = NodeById(*id);
  if (!n.ok()) return n.status();
  if ((*n)->raw == nullptr) return Status::InvalidArgument(fmt::format("node {} is down", *id));
  return n;
}

Result<std::vector<Env::Node*>> Env::NodeList(const Args& args) {
  std::vector<Node*> out;
  for (const Arg* a : args.Positional()) {
    for (const std::string& v : a->vals) {
      auto id = ParseUint(v);
      if (!id.ok()) return id.status();
      auto n = NodeById(*id);
      if (!n.ok()) return n.status();
      out.push_back(*n);
    }
  }
  if (out.empty()) {
    for (auto& n : nodes_) out.push_back(n.get());
  }
  return out;
}

Result<Config> Env::ParseNodeConfig(const Args& args) const {
  Config cfg;
  SYNOD_RETURN_IF_ERROR(
      args.CheckKeys({"voters", "learners", "index", "prevote", "checkquorum", "read-only",
                      "lease-drift", "election-ticks", "heartbeat-ticks", "max-inflight",
                      "max-msg-bytes", "max-uncommitted-bytes"}));
  auto pre_vote = args.Bool("prevote", cfg.pre_vote);
  if (!pre_vote.ok()) return pre_vote.status();
  cfg.pre_vote = *pre_vote;
  auto check_quorum = args.Bool("checkquorum", cfg.check_quorum);
  if (!check_quorum.ok()) return check_quorum.status();
  cfg.check_quorum = *check_quorum;
  if (auto ro = args.Str("read-only")) {
    if (*ro != "safe" && *ro != "lease") return Status::InvalidArgument("read-only=safe|lease");
    cfg.read_only_option = *ro == "lease" ? ReadOnlyOption::kLeaseBased : ReadOnlyOption::kSafe;
  }
  SYNOD_RETURN_IF_ERROR(SetUint(args, "lease-drift", &cfg.lease_clock_drift_ticks));
  SYNOD_RETURN_IF_ERROR(SetUint(args, "election-ticks", &cfg.election_ticks));
  SYNOD_RETURN_IF_ERROR(SetUint(args, "heartbeat-ticks", &cfg.heartbeat_ticks));
  SYNOD_RETURN_IF_ERROR(SetUint(args, "max-inflight", &cfg.max_inflight_msgs));
  SYNOD_RETURN_IF_ERROR(SetUint(args, "max-msg-bytes", &cfg.max_msg_bytes));
  SYNOD_RETURN_IF_ERROR(SetUint(args, "max-uncommitted-bytes", &cfg.max_uncommitted_bytes));
  return cfg;
}

Status Env::CmdAddNodes(const Args& args) {
  auto pos = args.Positional();
  if (pos.size() != 1 || pos[0]->vals.size() != 1) return Status::InvalidArgument("want N");
  auto count = ParseUint(pos[0]->vals[0]);
  if (!count.ok()) return count.status();
  auto cfg = ParseNodeConfig(args);
  if (!cfg.ok()) return cfg.status();
  auto voters = IdSet(args.Find("voters"));
  if (!voters.ok()) return voters.status();
  auto learners = IdSet(args.Find("learners"));
  if (!learners.ok()) return learners.status();
  auto index = args.Uint("index", 1);
  if (!index.ok()) return index.status();
  const bool bootstrap = args.Find("voters") != nullptr || args.Find("learners") != nullptr;
  ConfState cs;
  cs.voters = *voters;
  cs.learners = *learners;
  for (uint64_t i = 0; i < *count; ++i) {
    Status s = AddNode(*cfg, bootstrap ? &cs : nullptr, LogIndex(*index));
    if (!s.ok()) {
      out_.Line("error: " + s.ToString());
      break;
    }
  }
  return Status::Ok();
}

Status Env::CmdCampaign(const Args& args) {
  auto n = RunningNode(args.Positional().empty() ? nullptr : args.Positional()[0]);
  if (!n.ok()) return n.status();
  PrintIfError((*n)->raw->Campaign());
  return Status::Ok();
}

Status Env::CmdTick(const Args& args) {
  auto pos = args.Positional();
  auto n = RunningNode(pos.empty() ? nullptr : pos[0]);
  if (!n.ok()) return n.status();
  uint64_t count = 1;
  if (pos.size() > 1) {
    auto c = ParseUint(pos[1]->vals.empty() ? "" : pos[1]->vals[0]);
    if (!c.ok()) return c.status();
    count = *c;
  }
  for (uint64_t i = 0; i < count; ++i) (*n)->raw->Tick();
  return Status::Ok();
}

Status Env::CmdTickElection(const Args& args) {
  auto n = RunningNode(args.Positional().empty() ? nullptr : args.Positional()[0]);
  if (!n.ok()) return n.status();
  TickElection(**n);
  return Status::Ok();
}

Status Env::CmdTickHeartbeat(const Args& args) {
  auto n = RunningNode(args.Positional().empty() ? nullptr : args.Positional()[0]);
  if (!n.ok()) return n.status();
  for (int i = 0; i < (*n)->config.heartbeat_ticks; ++i) (*n)->raw->Tick();
  return Status::Ok();
}

Status Env::CmdProcessReady(const Args& args) {
  auto nodes = NodeList(args);
  if (!nodes.ok()) return nodes.status();
  const bool headers = nodes->size() > 1;
  for (Node* n : *nodes) {
    if (n->raw == nullptr)
      return Status::InvalidArgument(fmt::format("node {} is down", n->id.value()));
    if (headers) out_.Line(fmt::format("> {} handling Ready", n->id.value()));
    out_.Indent(headers ? 2 : 0);
    ProcessReady(*n);
    out_.Indent(headers ? -2 : 0);
  }
  return Status::Ok();
}

Status Env::CmdDeliverMsgs(const Args& args) {
  SYNOD_RETURN_IF_ERROR(args.CheckKeys({"drop", "from", "type", "count"}));
  auto nodes = NodeList(args);
  if (!nodes.ok()) return nodes.status();
  auto drop = args.Bool("drop", false);
  if (!drop.ok()) return drop.status();
  MsgFilter filter;
  if (args.Find("from") != nullptr) {
    auto from = args.Uint("from", 0);
    if (!from.ok()) return from.status();
    filter.from = NodeId(*from);
  }
  if (auto type = args.Str("type")) {
    auto t = ParseMessageType(*type);
    if (!t.ok()) return t.status();
    filter.type = *t;
  }
  if (args.Find("count") != nullptr) {
    auto count = args.Uint("count", 0);
    if (!count.ok()) return count.status();
    filter.count = *count;
  }
  std::vector<Node*> targets;
  for (Node* n : *nodes) {
    if (HasMessagesFor(n->id)) targets.push_back(n);
  }
  const bool headers = targets.size() > 1;
  for (Node* n : targets) {
    if (headers) out_.Line(fmt::format("> {} receiving messages", n->id.value()));
    out_.Indent(headers ? 2 : 0);
    DeliverTo(n->id, *drop ? DropMode::kDrop : DropMode::kDeliver, filter);
    out_.Indent(headers ? -2 : 0);
  }
  return Status::Ok();
}

Status Env::CmdStabilize(const Args& args) {
  auto nodes = NodeList(args);
  if (!nodes.ok()) return nodes.status();
  Stabilize(*nodes);
  return Status::Ok();
}

Status Env::CmdPropose(const Args& args) {
  auto pos = args.Positional();
  if (pos.size() != 2 || pos[1]->vals.size() != 1) return Status::InvalidArgument("want ID DATA");
  auto n = RunningNode(pos[0]);
  if (!n.ok()) return n.status();
  PrintIfError((*n)->raw->Propose(pos[1]->vals[0]));
  return Status::Ok();
}

Status Env::CmdProposeConfChange(const Args& args) {
  SYNOD_RETURN_IF_ERROR(args.CheckKeys({"transition"}));
  auto pos = args.Positional();
  auto n = RunningNode(pos.empty() ? nullptr : pos[0]);
  if (!n.ok()) return n.status();
  std::string text;
  for (size_t i = 1; i < pos.size(); ++i) {
    for (const std::string& v : pos[i]->vals) text += v + " ";
  }
  auto cc = ConfChange::Parse(text);
  if (!cc.ok()) return cc.status();
  const std::string transition = args.Str("transition").value_or("auto");
  if (transition == "implicit") {
    cc->transition = ConfChangeTransition::kJointImplicit;
  } else if (transition == "explicit") {
    cc->transition = ConfChangeTransition::kJointExplicit;
  } else if (transition != "auto") {
    return Status::InvalidArgument("transition=auto|implicit|explicit");
  }
  PrintIfError((*n)->raw->ProposeConfChange(*cc));
  return Status::Ok();
}

Status Env::CmdReadIndex(const Args& args) {
  auto pos = args.Positional();
  if (pos.size() != 2 || pos[1]->vals.size() != 1) return Status::InvalidArgument("want ID CTX");
  auto n = RunningNode(pos[0]);
  if (!n.ok()) return n.status();
  PrintIfError((*n)->raw->ReadIndex(pos[1]->vals[0]));
  return Status::Ok();
}

Status Env::CmdTransferLeadership(const Args& args) {
  SYNOD_RETURN_IF_ERROR(args.CheckKeys({"from", "to"}));
  auto n = RunningNode(args.Find("from"));
  if (!n.ok()) return n.status();
  auto to = args.Uint("to", 0);
  if (!to.ok()) return to.status();
  if (*to == 0) return Status::InvalidArgument("to= missing");
  PrintIfError((*n)->raw->TransferLeadership(NodeId(*to)));
  return Status::Ok();
}

Status Env::CmdPartition(const Args& args) {
  std::vector<std::vector<NodeId>> groups;
  for (const Arg* a : args.Positional()) {
    auto ids = IdSet(a);
    if (!ids.ok()) return ids.status();
    groups.emplace_back(ids->begin(), ids->end());
  }
  if (groups.empty()) return Status::InvalidArgument("want at least one group");
  partition_ = std::move(groups);
  return Status::Ok();
}

Status Env::CmdHeal(const Args& args) {
  partition_.clear();
  return Status::Ok();
}

Status Env::CmdReorderMsgs(const Args& args) {
  auto pos = args.Positional();
  if (pos.size() != 1 || pos[0]->vals.size() != 1) return Status::InvalidArgument("want ID");
  auto id = ParseUint(pos[0]->vals[0]);
  if (!id.ok()) return id.status();
  // Reverse the subsequence addressed to the node, leaving the others where they are.
  std::vector<size_t> slots;
  for (size_t i = 0; i < network_.size(); ++i) {
    if (network_[i].to == NodeId(*id)) slots.push_back(i);
  }
  for (size_t i = 0, j = slots.size(); i + 1 < j; ++i, --j) {
    std::swap(network_[slots[i]], network_[slots[j - 1]]);
  }
  for (size_t i : slots) out_.Line(DescribeMessage(network_[i]));
  return Status::Ok();
}

Status Env::CmdCompact(const Args& args) {
  auto pos = args.Positional();
  if (pos.size() != 2 || pos[1]->vals.size() != 1) return Status::InvalidArgument("want ID INDEX");
  auto n = RunningNode(pos[0]);
  if (!n.ok()) return n.status();
  auto index = ParseUint(pos[1]->vals[0]);
  if (!index.ok()) return index.status();
  return Compact(**n, LogIndex(*index));
}

Status Env::CmdCrash(const Args& args) {
  auto n = RunningNode(args.Positional().empty() ? nullptr : args.Positional()[0]);
  if (!n.ok()) return n.status();
  (*n)->raw.reset();
  return Status::Ok();
}

Status Env::CmdRestart(const Args& args) {
  auto pos = args.Positional();
  if (pos.size() != 1 || pos[0]->vals.size() != 1) return Status::InvalidArgument("want ID");
  auto id = ParseUint(pos[0]->vals[0]);
  if (!id.ok()) return id.status();
  auto n = NodeById(*id);
  if (!n.ok()) return n.status();
  if ((*n)->raw != nullptr) return Status::InvalidArgument(fmt::format("node {} is up", *id));
  Status s = Restart(**n);
  if (!s.ok()) out_.Line("error: " + s.ToString());
  return Status::Ok();
}

Status Env::CmdStatus(const Args& args) {
  auto nodes = NodeList(args);
  if (!nodes.ok()) return nodes.status();
  for (Node* n : *nodes) PrintStatusOf(*n);
  return Status::Ok();
}

Status Env::CmdRaftLog(const Args& args) {
  auto pos = args.Positional();
  if (pos.size() != 1 || pos[0]->vals.size() != 1) return Status::InvalidArgument("want ID");
  auto id = ParseUint(pos[0]->vals[0]);
  if (!id.ok()) return id.status();
  auto n = NodeById(*id);
  if (!n.ok()) return n.status();
  PrintLogOf(**n);
  return Status::Ok();
}

Status Env::CmdRaftState(const Args& args) {
  for (const auto& n : nodes_) {
    if (n->raw == nullptr) {
      out_.Line(fmt::format("{}: down", n->id.value()));
      continue;
    }
    const Raft& r = n->raw->raft();
    const char* kind = r.config().IsVoter(n->id)     ? "Voter"
                       : r.config().IsLearner(n->id) ? "Learner"
                                                     : "NonMember";
    out_.Line(fmt::format("{}: {} ({}) Term:{} Lead:{}", n->id.value(), RoleName(r.role()), kind,
                          r.term().value(), r.lead().value()));
  }
  return Status::Ok();
}

Status Env::CmdAppliedData(const Args& args) {
  auto nodes = NodeList(args);
  if (!nodes.ok()) return nodes.status();
  for (Node* n : *nodes) {
    std::string line =
        fmt::format("{}: applied={} data=[", n->id.value(), n->applied_index.value());
    for (size_t i = 0; i < n->applied.size(); ++i) {
      line += (i > 0 ? " " : "") + QuoteData(n->applied[i].data);
    }
    out_.Line(line + "]");
  }
  return Status::Ok();
}

Status Env::CmdLogLevel(const Args& args) {
  auto pos = args.Positional();
  if (pos.size() != 1 || pos[0]->vals.size() != 1) return Status::InvalidArgument("want a level");
  auto level = ParseLevel(pos[0]->vals[0]);
  if (!level.ok()) return level.status();
  spd_->set_level(*level);
  return Status::Ok();
}

}  // namespace synod::raft::script
