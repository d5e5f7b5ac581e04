#include "raft/script/env.h"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/details/null_mutex.h>
#include <spdlog/sinks/base_sink.h>

#include "common/assert.h"
#include "raft/describe.h"

namespace synod::raft::script {

namespace {

// Bounds every "until nothing is left" loop so that a livelock shows as an error line.
constexpr int kStabilizeRoundsMax = 1000;

// An spdlog sink appending formatted lines to the current command's Output.
class OutputSink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 public:
  explicit OutputSink(Output* out) : out_(out) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    out_->Write(std::string_view(buf.data(), buf.size()));
  }
  void flush_() override {}

 private:
  Output* out_;
};

// The state machine's image in a snapshot: "index:size:data" per applied entry.
std::string EncodeState(const std::vector<AppliedEntry>& ents, LogIndex upto) {
  std::string out;
  for (const AppliedEntry& e : ents) {
    if (e.index > upto) break;
    out += fmt::format("{}:{}:", e.index.value(), e.data.size());
    out += e.data;
  }
  return out;
}

Result<std::vector<AppliedEntry>> DecodeState(std::string_view s) {
  std::vector<AppliedEntry> out;
  while (!s.empty()) {
    size_t c1 = s.find(':');
    size_t c2 = c1 == std::string_view::npos ? c1 : s.find(':', c1 + 1);
    if (c2 == std::string_view::npos) return Status::Corruption("bad state machine image");
    auto index = ParseUint(s.substr(0, c1));
    auto size = ParseUint(s.substr(c1 + 1, c2 - c1 - 1));
    if (!index.ok() || !size.ok() || s.size() - c2 - 1 < *size) {
      return Status::Corruption("bad state machine image");
    }
    out.push_back({LogIndex(*index), std::string(s.substr(c2 + 1, *size))});
    s.remove_prefix(c2 + 1 + *size);
  }
  return out;
}

}  // namespace

std::string SimNode::ImageAt(LogIndex index) const { return EncodeState(applied, index); }

const ConfState* SimNode::ConfAt(LogIndex index) const {
  const ConfState* cs = nullptr;
  for (const auto& [at, conf] : conf_history) {
    if (at <= index) cs = &conf;
  }
  return cs;
}

Result<Snapshot> NodeStorage::GetSnapshot() const {
  Result<Snapshot> stored = mem_.GetSnapshot();
  if (!stored.ok() || node_->applied_index <= stored->meta.index) return stored;
  const LogIndex index = node_->applied_index;
  Result<Term> term = mem_.TermAt(index);
  const ConfState* cs = node_->ConfAt(index);
  if (!term.ok() || cs == nullptr) return stored;
  Snapshot snap;
  snap.meta.index = index;
  snap.meta.term = *term;
  snap.meta.conf_state = *cs;
  snap.data = node_->ImageAt(index);
  return snap;
}

void Output::Write(std::string_view s) {
  for (char c : s) {
    if (at_line_start_ && c != '\n') buf_.append(static_cast<size_t>(indent_), ' ');
    buf_.push_back(c);
    at_line_start_ = c == '\n';
  }
}

std::string Output::Take() {
  std::string out;
  out.swap(buf_);
  at_line_start_ = true;
  indent_ = 0;
  return out;
}

Env::Env() {
  auto sink = std::make_shared<OutputSink>(&out_);
  sink->set_pattern("%L %v");
  spd_ = std::make_shared<spdlog::logger>("raft_script", std::move(sink));
  spd_->set_level(spdlog::level::info);
  logger_ = Logger(spd_);
}

std::string Env::Run(const Command& cmd) {
  const auto& table = Commands();
  auto it = std::find_if(table.begin(), table.end(),
                         [&](const CommandSpec& c) { return c.name == cmd.name; });
  if (it == table.end()) {
    out_.Line(fmt::format("error: unknown command '{}'", cmd.name));
  } else {
    Status s = (this->*(it->handler))(cmd.args);
    if (!s.ok()) out_.Line(fmt::format("error: {}\nusage: {}", s.message(), it->usage));
  }
  return out_.Take();
}

Status Env::AddNode(Config cfg, const ConfState* bootstrap, LogIndex index) {
  auto node = std::make_unique<Node>();
  node->id = NodeId(nodes_.size() + 1);
  node->storage = std::make_unique<NodeStorage>(node.get());
  if (bootstrap != nullptr) {
    // Bootstrap as etcd's interaction tests do: a snapshot at `index` (term 1) that holds
    // only the initial membership, so that every node starts with the same log prefix.
    Snapshot snap;
    snap.meta.index = index;
    snap.meta.term = Term(1);
    snap.meta.conf_state = *bootstrap;
    SYNOD_RETURN_IF_ERROR(node->storage->mem().ApplySnapshot(snap));
    node->conf_history.emplace_back(index, *bootstrap);
    node->applied_index = index;
  }
  cfg.id = node->id;
  cfg.storage = node->storage.get();
  cfg.applied = node->applied_index;
  cfg.random_seed = node->id.value();
  cfg.logger = logger_;
  node->config = cfg;
  auto raw = RawNode::Create(cfg);
  if (!raw.ok()) return raw.status();
  node->raw = std::move(raw).value();
  nodes_.push_back(std::move(node));
  return Status::Ok();
}

void Env::ProcessReady(Node& n) {
  SYNOD_ASSERT(n.raw != nullptr);
  if (!n.raw->HasReady()) {
    out_.Line("<empty Ready>");
    return;
  }
  Ready rd = n.raw->GetReady();
  out_.Write(DescribeReady(rd));
  // a. Messages that may leave before the state is durable.
  network_.insert(network_.end(), rd.messages.begin(), rd.messages.end());
  // b. Persist: snapshot, entries, hard state (one "atomic" step for MemoryStorage).
  if (rd.snapshot) {
    Status s = n.storage->mem().ApplySnapshot(*rd.snapshot);
    if (!s.ok()) out_.Line("error: persisting the snapshot: " + s.ToString());
  }
  if (!rd.entries.empty()) {
    Status s = n.storage->mem().Append(rd.entries);
    if (!s.ok()) out_.Line("error: persisting entries: " + s.ToString());
  }
  if (rd.hard_state) n.storage->mem().SetHardState(*rd.hard_state);
  // c. Messages whose promise rests on the persisted state.
  network_.insert(network_.end(), rd.messages_after_persist.begin(),
                  rd.messages_after_persist.end());
  // d. Apply.
  if (rd.snapshot) ApplySnapshot(n, *rd.snapshot);
  ApplyCommitted(n, rd.committed_entries);
  // e.
  n.raw->Advance(rd);
}

void Env::ApplySnapshot(Node& n, const Snapshot& snap) {
  auto state = DecodeState(snap.data);
  if (!state.ok()) {
    out_.Line("error: " + state.status().ToString());
    return;
  }
  n.applied.clear();
  n.applied = std::move(state).value();
  n.conf_history.assign(1, {snap.meta.index, snap.meta.conf_state});
  n.applied_index = snap.meta.index;
}

void Env::ApplyCommitted(Node& n, const std::vector<Entry>& ents) {
  for (const Entry& e : ents) {
    if (e.index != n.applied_index + 1) {
      out_.Line(fmt::format("error: committed entry {} handed out after {}", e.index.value(),
                            n.applied_index.value()));
    }
    n.applied_index = e.index;
    if (e.type == EntryType::kNormal) {
      if (!e.data.empty()) n.applied.push_back({e.index, e.data});
      continue;
    }
    auto cc = ConfChange::Decode(e.data);
    if (!cc.ok()) {
      out_.Line("error: undecodable conf change: " + cc.status().ToString());
      continue;
    }
    auto cs = n.raw->ApplyConfChange(*cc);
    if (!cs.ok()) {
      out_.Line(fmt::format("error: conf change {} not applied: {}", e.index.value(),
                            cs.status().ToString()));
      continue;
    }
    n.conf_history.emplace_back(e.index, *cs);
  }
}

bool Env::HasMessagesFor(NodeId to) const {
  return std::any_of(network_.begin(), network_.end(),
                     [&](const Message& m) { return m.to == to; });
}

bool Env::Partitioned(NodeId a, NodeId b) const {
  if (partition_.empty()) return false;
  for (const auto& group : partition_) {
    bool has_a = std::find(group.begin(), group.end(), a) != group.end();
    bool has_b = std::find(group.begin(), group.end(), b) != group.end();
    if (has_a || has_b) return !(has_a && has_b);
  }
  return a != b;  // neither listed: each is alone
}

void Env::Dropped(const Message& m, std::string_view reason) {
  out_.Line(fmt::format("dropped ({}): {}", reason, DescribeMessage(m)));
  if (m.type != MessageType::kSnap) return;
  // A transport knows when a snapshot could not be sent, and says so; otherwise the leader
  // would wait for it forever.
  auto sender = NodeById(m.from.value());
  if (sender.ok() && (*sender)->raw != nullptr) {
    (*sender)->raw->ReportSnapshot(m.to, SnapshotStatus::kFailure);
    out_.Line(fmt::format("reported to {}: snapshot to {} failed", m.from.value(), m.to.value()));
  }
}

void Env::DeliverTo(NodeId to, DropMode mode, const MsgFilter& filter) {
  std::vector<Message> mine;
  std::vector<Message> rest;
  for (Message& m : network_) {
    bool match = m.to == to && (!filter.from || m.from == *filter.from) &&
                 (!filter.type || m.type == *filter.type) &&
                 (!filter.count || mine.size() < *filter.count);
    (match ? mine : rest).push_back(std::move(m));
  }
  network_ = std::move(rest);
  for (const Message& m : mine) {
    if (mode == DropMode::kDrop) {
      Dropped(m, "drop=true");
      continue;
    }
    if (Partitioned(m.from, m.to)) {
      Dropped(m, "partition");
      continue;
    }
    auto n = NodeById(to.value());
    if (!n.ok() || (*n)->raw == nullptr) {
      Dropped(m, "node down");
      continue;
    }
    out_.Line(DescribeMessage(m));
    Status s = (*n)->raw->Step(m);
    if (!s.ok()) out_.Line("error: " + s.ToString());
  }
}

void Env::Stabilize(const std::vector<Node*>& nodes) {
  for (int round = 0; round < kStabilizeRoundsMax; ++round) {
    bool done = true;
    for (Node* n : nodes) {
      if (n->raw == nullptr || !n->raw->HasReady()) continue;
      done = false;
      out_.Line(fmt::format("> {} handling Ready", n->id.value()));
      out_.Indent(2);
      ProcessReady(*n);
      out_.Indent(-2);
    }
    for (Node* n : nodes) {
      if (!HasMessagesFor(n->id)) continue;
      done = false;
      out_.Line(fmt::format("> {} receiving messages", n->id.value()));
      out_.Indent(2);
      DeliverTo(n->id, DropMode::kDeliver, MsgFilter{});
      out_.Indent(-2);
    }
    if (done) return;
  }
  out_.Line(fmt::format("error: not stable after {} rounds", kStabilizeRoundsMax));
}

void Env::TickElection(Node& n) {
  Raft& r = n.raw->mutable_raft();
  const int election_ticks = n.config.election_ticks;
  if (r.role() == Role::kLeader) {
    for (int i = 0; i < election_ticks; ++i) n.raw->Tick();
    return;
  }
  // A campaign shows as a role or term change, or (a pre-candidate starting a new
  // pre-election) as new vote requests in the not-yet-collected outbox.
  auto votes_sent = [&r] {
    return std::count_if(r.msgs_after_persist().begin(), r.msgs_after_persist().end(),
                         [](const Message& m) {
                           return m.type == MessageType::kVote || m.type == MessageType::kPreVote;
                         });
  };
  // The randomized timeout is below 2 * election_ticks, so this many ticks always suffice
  // for a node that can campaign at all.
  const int ticks_max = 2 * election_ticks + 1;
  for (int i = 0; i < ticks_max; ++i) {
    const Role role = r.role();
    const Term term = r.term();
    const auto sent = votes_sent();
    n.raw->Tick();
    if (r.role() != role || r.term() != term || votes_sent() > sent) return;
  }
  out_.Line(fmt::format("node {} did not campaign within {} ticks", n.id.value(), ticks_max));
}

Status Env::Compact(Node& n, LogIndex index) {
  if (index > n.applied_index) {
    return Status::InvalidArgument(
        fmt::format("node {} has applied only up to {}", n.id.value(), n.applied_index.value()));
  }
  const ConfState* cs = n.ConfAt(index);
  if (cs == nullptr) return Status::InvalidArgument("no configuration known at that index");
  auto snap = n.storage->mem().CreateSnapshot(index, cs, n.ImageAt(index));
  if (!snap.ok()) {
    out_.Line("error: " + snap.status().ToString());
    return Status::Ok();
  }
  Status s = n.storage->mem().Compact(index);
  if (!s.ok()) out_.Line("error: " + s.ToString());
  PrintLogOf(n);
  return Status::Ok();
}

Status Env::Restart(Node& n) {
  // What was persisted is all that survives: the storage, and the state machine as of the
  // storage's snapshot (a real application would reload that image).
  auto snap = n.storage->mem().GetSnapshot();
  if (!snap.ok()) return snap.status();
  n.applied.clear();
  n.conf_history.clear();
  n.applied_index = LogIndex(0);
  if (!snap->IsEmpty() || snap->meta.conf_state != ConfState{}) ApplySnapshot(n, *snap);
  Config cfg = n.config;
  cfg.applied = n.applied_index;
  auto raw = RawNode::Create(cfg);
  if (!raw.ok()) return raw.status();
  n.raw = std::move(raw).value();
  return Status::Ok();
}

void Env::PrintStatusOf(const Node& n) {
  if (n.raw == nullptr) {
    out_.Line(fmt::format("{}: down", n.id.value()));
    return;
  }
  RaftStatus s = n.raw->GetStatus();
  out_.Line(fmt::format("{}: {} term={} vote={} commit={} applied={} lead={} last_index={}",
                        n.id.value(), RoleName(s.soft_state.role), s.hard_state.term.value(),
                        s.hard_state.vote.value(), s.hard_state.commit.value(), s.applied.value(),
                        s.soft_state.lead.value(), s.last_index.value()));
  out_.Line("config: " + s.config.ToString());
  if (s.soft_state.role != Role::kLeader) return;
  if (s.lead_transferee != kNoNode) {
    out_.Line(fmt::format("transferring to: {}", s.lead_transferee.value()));
  }
  out_.Line("progress:");
  for (const auto& [id, pr] : s.progress) {
    out_.Line(fmt::format("  {}: {}", id.value(), pr.ToString()));
  }
}

void Env::PrintLogOf(const Node& n) {
  const MemoryStorage& st = n.storage->mem();
  if (st.LastIndex() < st.FirstIndex()) {
    out_.Line(fmt::format("log is empty: first index={}, last index={}", st.FirstIndex().value(),
                          st.LastIndex().value()));
    return;
  }
  auto ents = st.Entries(st.FirstIndex(), st.LastIndex() + 1, UINT64_MAX);
  if (!ents.ok()) {
    out_.Line("error: " + ents.status().ToString());
    return;
  }
  for (const Entry& e : *ents) out_.Line(DescribeEntry(e));
}

}  // namespace synod::raft::script
