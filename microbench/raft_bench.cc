// raft_bench: throughput and allocations of the pure Raft core, with a 3-node group exchanging
// messages in memory.
//
// Each node has its own MemoryStorage and runs the loop raw_node.h describes, honouring the
// persistence contract: send `messages`, persist snapshot/entries/hard state into the
// MemoryStorage, send `messages_after_persist`, apply `committed_entries`, Advance. The leader
// proposes `batch` 100-byte payloads per loop iteration (a busy node batches one iteration's
// worth of client requests), so replication is pipelined: proposals of later rounds are sent
// while earlier ones are still being acknowledged. Every node compacts its storage behind its
// applied index so memory stays bounded however long the benchmark runs.
//
// Two ways of handing a round's requests to the leader are measured: one Propose() per request
// (BM_RaftProposeEach: one append and one acknowledgement per request per follower) and one
// ProposeBatch() per round (BM_RaftProposeBatch: one append per round per follower).
//
// Reported per benchmark and batch size:
//   commits_per_second  entries committed and applied on the leader, per second of CPU time of
//                       the process (the same as wall time on an idle machine; CPU time keeps
//                       the figure meaningful on a machine shared with other work);
//   allocs_per_entry    heap allocations (every operator new in this process, all three nodes
//                       and the message exchange included) per committed entry. One of them
//                       is the client's payload string handed to Propose().
// The last line of output is `raft_commits_per_second: N`, the best sustained figure among
// the realistic batch sizes; the line before it says which benchmark and batch that was.
//
// Thread-safety: single-threaded; the whole group runs on the benchmark thread.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "common/assert.h"
#include "raft/raw_node.h"
#include "raft/storage.h"

// ---------------------------------------------------------------------------------------------
// Allocation counting: every global operator new of the binary goes through here.

namespace {

std::atomic<uint64_t> g_allocations{0};

void* CountedAlloc(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void* CountedAlignedAlloc(std::size_t size, std::align_val_t align) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  const std::size_t a = static_cast<std::size_t>(align);
  // aligned_alloc wants a size that is a multiple of the alignment.
  const std::size_t rounded = size == 0 ? a : (size + a - 1) / a * a;
  void* p = std::aligned_alloc(a, rounded);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

uint64_t Allocations() { return g_allocations.load(std::memory_order_relaxed); }

}  // namespace

void* operator new(std::size_t size) { return CountedAlloc(size); }
void* operator new[](std::size_t size) { return CountedAlloc(size); }
void* operator new(std::size_t size, std::align_val_t align) {
  return CountedAlignedAlloc(size, align);
}
void* operator new[](std::size_t size, std::align_val_t align) {
  return CountedAlignedAlloc(size, align);
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace synod::raft {
namespace {

constexpr size_t kNodes = 3;
constexpr size_t kPayloadBytes = 100;
// Every node ticks once per this many rounds: heartbeats and check-quorum stay in the mix
// (far more often than a real 100 ms tick would fire at these rates).
constexpr uint64_t kTickEveryRounds = 1024;
// A node compacts its storage once this many applied entries accumulated past the last
// compaction, keeping the newest kRetainedEntries for followers that lag a little.
constexpr uint64_t kCompactEveryEntries = 8192;
constexpr uint64_t kRetainedEntries = 1024;
constexpr int kElectionRoundsMax = 1000;
constexpr int kWarmupRounds = 2000;
constexpr int kDrainRoundsMax = 100000;

// How the leader hands over one round's client requests.
enum class ProposeMode : uint8_t {
  kEach,   // one Propose() call per request: one append (and one ack) per request per follower
  kBatch,  // one ProposeBatch() call per round: one append per round per follower
};

// One replica: its durable log, its Raft handle, its inbox and its "state machine" (counters).
struct Node {
  NodeId id;
  std::unique_ptr<MemoryStorage> storage;
  std::unique_ptr<RawNode> raw;
  std::vector<Message> inbox;
  std::vector<Message> stepping;  // the inbox being stepped, swapped to keep both capacities
  LogIndex applied;
  uint64_t applied_entries = 0;  // client entries applied (the leader's no-op excluded)
  uint64_t applied_bytes = 0;
};

// The group and the in-memory network between its nodes. Node i has id i+1; node 0 leads.
class Cluster {
 public:
  Cluster() {
    for (size_t i = 0; i < kNodes; ++i) conf_state_.voters.insert(NodeId(i + 1));
    for (size_t i = 0; i < kNodes; ++i) nodes_.push_back(MakeNode(NodeId(i + 1)));
  }

  // Node 0 campaigns and wins.
  void ElectLeader() {
    SYNOD_ASSERT(nodes_[0].raw->Campaign().ok());
    for (int r = 0; r < kElectionRoundsMax && !LeaderStable(); ++r) Round(0, ProposeMode::kEach);
    SYNOD_ASSERT_MSG(LeaderStable(), "bench: node 1 did not become leader");
  }

  // One loop iteration of every node in turn: step what arrived, propose (leader only),
  // handle one Ready.
  void Round(size_t batch, ProposeMode mode) {
    ++rounds_;
    const bool tick = rounds_ % kTickEveryRounds == 0;
    for (size_t i = 0; i < kNodes; ++i) {
      Node& n = nodes_[i];
      if (tick) n.raw->Tick();
      StepInbox(n);
      if (i == 0) Propose(n, batch, mode);
      HandleReady(n);
    }
  }

  // Runs rounds without proposals until every node applied everything the leader has.
  void Drain() {
    for (int r = 0; r < kDrainRoundsMax; ++r) {
      const LogIndex last = nodes_[0].raw->raft().log().LastIndex();
      bool done = true;
      for (const Node& n : nodes_) done = done && n.applied == last;
      if (done) return;
      Round(0, ProposeMode::kEach);
    }
    SYNOD_ASSERT_MSG(false, "bench: the group did not catch up");
  }

  bool LeaderStable() const { return nodes_[0].raw->raft().role() == Role::kLeader; }
  const Node& node(size_t i) const { return nodes_[i]; }
  uint64_t dropped() const { return dropped_; }

 private:
  Node MakeNode(NodeId id) {
    Node n;
    n.id = id;
    n.storage = std::make_unique<MemoryStorage>();
    // Bootstrap: a snapshot at index 0 that carries only the membership.
    Snapshot boot;
    boot.meta.conf_state = conf_state_;
    SYNOD_ASSERT(n.storage->ApplySnapshot(std::move(boot)).ok());
    Config cfg;
    cfg.id = id;
    cfg.storage = n.storage.get();
    auto raw = RawNode::Create(cfg);
    SYNOD_ASSERT(raw.ok());
    n.raw = std::move(raw).value();
    return n;
  }

  void StepInbox(Node& n) {
    n.stepping.swap(n.inbox);
    for (Message& m : n.stepping) {
      // Errors here are the protocol's own refusals (e.g. a stale response): not fatal.
      (void)n.raw->Step(std::move(m));
    }
    n.stepping.clear();
  }

  // Each request's payload is a fresh string, as it would arrive from a client.
  void Propose(Node& n, size_t batch, ProposeMode mode) {
    if (batch == 0) return;
    if (mode == ProposeMode::kBatch) {
      std::vector<std::string> data(batch, payload_);
      if (!n.raw->ProposeBatch(std::move(data)).ok()) dropped_ += batch;
      return;
    }
    for (size_t i = 0; i < batch; ++i) {
      if (!n.raw->Propose(payload_).ok()) ++dropped_;
    }
  }

  void Send(std::vector<Message>& msgs) {
    for (Message& m : msgs) {
      SYNOD_ASSERT(m.to.value() >= 1 && m.to.value() <= kNodes);
      nodes_[m.to.value() - 1].inbox.push_back(std::move(m));
    }
  }

  // Steps a to e of the persistence contract in raw_node.h.
  void HandleReady(Node& n) {
    if (!n.raw->HasReady()) return;
    Ready rd = n.raw->GetReady();
    Send(rd.messages);                                                           // a
    if (rd.snapshot) SYNOD_ASSERT(n.storage->ApplySnapshot(*rd.snapshot).ok());  // b
    SYNOD_ASSERT(n.storage->Append(rd.entries).ok());
    if (rd.hard_state) n.storage->SetHardState(*rd.hard_state);
    Send(rd.messages_after_persist);                       // c
    if (rd.snapshot) n.applied = rd.snapshot->meta.index;  // d
    for (const Entry& e : rd.committed_entries) {
      SYNOD_ASSERT(e.index == n.applied + 1);
      SYNOD_ASSERT_MSG(e.type == EntryType::kNormal, "bench: no membership changes expected");
      n.applied = e.index;
      if (e.data.empty()) continue;  // a new leader's no-op
      ++n.applied_entries;
      n.applied_bytes += e.data.size();
    }
    n.raw->Advance(rd);  // e
    MaybeCompact(n);
  }

  // Snapshots the state machine at the applied index and drops all but the newest entries.
  void MaybeCompact(Node& n) {
    const LogIndex first = n.storage->FirstIndex();
    if (n.applied < first + (kCompactEveryEntries + kRetainedEntries)) return;
    // The bench's state machine image is its counters; nothing reads it back.
    auto snap = n.storage->CreateSnapshot(n.applied, &conf_state_, std::string());
    SYNOD_ASSERT(snap.ok());
    SYNOD_ASSERT(n.storage->Compact(n.applied - kRetainedEntries).ok());
  }

  ConfState conf_state_;
  std::vector<Node> nodes_;
  const std::string payload_ = std::string(kPayloadBytes, 'x');
  uint64_t rounds_ = 0;
  uint64_t dropped_ = 0;
};

void RunReplicate(benchmark::State& state, ProposeMode mode) {
  const size_t batch = static_cast<size_t>(state.range(0));
  Cluster cluster;
  cluster.ElectLeader();
  for (int r = 0; r < kWarmupRounds; ++r) cluster.Round(batch, mode);

  const uint64_t applied_before = cluster.node(0).applied_entries;
  const uint64_t allocs_before = Allocations();
  for (auto _ : state) cluster.Round(batch, mode);
  const uint64_t applied = cluster.node(0).applied_entries - applied_before;
  const uint64_t allocs = Allocations() - allocs_before;

  if (!cluster.LeaderStable() || cluster.dropped() != 0 || applied == 0) {
    state.SkipWithError("leadership changed, proposals were dropped or nothing committed");
    return;
  }
  // Every replica must end with the same state machine.
  cluster.Drain();
  for (size_t i = 1; i < kNodes; ++i) {
    SYNOD_ASSERT(cluster.node(i).applied_bytes == cluster.node(0).applied_bytes);
  }
  state.SetItemsProcessed(static_cast<int64_t>(applied));
  state.counters["commits_per_second"] =
      benchmark::Counter(static_cast<double>(applied), benchmark::Counter::kIsRate);
  state.counters["allocs_per_entry"] =
      benchmark::Counter(static_cast<double>(allocs) / static_cast<double>(applied));
}

// The leader calls Propose() once per request.
void BM_RaftProposeEach(benchmark::State& state) { RunReplicate(state, ProposeMode::kEach); }
// The leader calls ProposeBatch() once per round with all of the round's requests.
void BM_RaftProposeBatch(benchmark::State& state) { RunReplicate(state, ProposeMode::kBatch); }

BENCHMARK(BM_RaftProposeEach)
    ->ArgName("batch")
    ->Arg(1)
    ->Arg(16)
    ->Arg(64)
    ->Arg(256)
    ->MinTime(1.0)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RaftProposeBatch)
    ->ArgName("batch")
    ->Arg(16)
    ->Arg(64)
    ->Arg(256)
    ->MinTime(1.0)
    ->Unit(benchmark::kMicrosecond);

// The batch sizes a loaded node realistically proposes per loop iteration; batch 1 (no
// batching at all) is reported but not a candidate for the summary line.
bool RealisticBatch(int64_t batch) { return batch == 16 || batch == 64 || batch == 256; }

// The console reporter, also keeping commits_per_second per benchmark (the median when
// --benchmark_repetitions is given, else the single run).
class SummaryReporter final : public benchmark::ConsoleReporter {
 public:
  // Colours only on a terminal, as the library's own default reporter does.
  SummaryReporter() : ConsoleReporter(isatty(STDOUT_FILENO) ? OO_ColorTabular : OO_Tabular) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.error_occurred) continue;
      const bool median = r.run_type == Run::RT_Aggregate && r.aggregate_name == "median";
      const bool single = r.run_type == Run::RT_Iteration && r.repetitions <= 1;
      auto it = r.counters.find("commits_per_second");
      if ((!median && !single) || it == r.counters.end()) continue;
      const std::string& args = r.run_name.args;  // "batch:64"
      const int64_t batch = std::atoll(args.substr(args.find(':') + 1).c_str());
      results_[{r.run_name.function_name, batch}] = it->second.value;
    }
  }

  // Prints one line per benchmark, then the best realistic figure; the very last line is
  // `raft_commits_per_second: N`.
  void PrintSummary() const {
    const std::pair<std::string, int64_t>* best = nullptr;
    double best_value = 0;
    for (const auto& [key, value] : results_) {
      std::cout << "commits_per_second " << key.first << " batch:" << key.second << " "
                << static_cast<uint64_t>(value) << "\n";
      if (RealisticBatch(key.second) && value > best_value) {
        best = &key;
        best_value = value;
      }
    }
    std::cout << "raft_commits_per_second_from: "
              << (best == nullptr ? std::string("none") : best->first)
              << " batch:" << (best == nullptr ? 0 : best->second)
              << " (the best of the realistic batches 16, 64 and 256 requests per round)\n";
    std::cout << "raft_commits_per_second: " << static_cast<uint64_t>(best_value) << std::endl;
  }

 private:
  std::map<std::pair<std::string, int64_t>, double> results_;
};

}  // namespace
}  // namespace synod::raft

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  synod::raft::SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  reporter.PrintSummary();
  return 0;
}
