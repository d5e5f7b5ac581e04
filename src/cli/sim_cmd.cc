// `synod sim`: runs the deterministic simulator over a range of seeds.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "check/history_json.h"
#include "cli/commands.h"
#include "sim/simulator.h"

namespace synod::cli {

namespace {

struct SimArgs {
  std::string seeds = "1-10";
  int nodes = 3;
  int shards = -1;
  int splits = -1;
  int placement = -1;
  int merges = -1;
  std::string faults = "all";
  std::string duration = "10s";
  std::string bug;
  std::string history_out;
  int jobs = 0;
  bool first_failure = false;
  bool verbose = false;
};

// "7", "1-200" or a comma-separated list of both ("3,10-20,42"), in the order given. At most
// kSeedsMax seeds; anything else (junk after a number, a reversed range) is an error.
constexpr uint64_t kSeedsMax = 10'000'000;

Result<uint64_t> ParseSeedNumber(const std::string& s, const std::string& whole) {
  if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos) {
    return Status::InvalidArgument("--seeds: expected N, A-B or a list of them, got '" + whole +
                                   "'");
  }
  return std::stoull(s);
}

Result<std::vector<uint64_t>> ParseSeeds(const std::string& s) {
  std::vector<uint64_t> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    const size_t comma = s.find(',', pos);
    const std::string item =
        s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    const size_t dash = item.find('-');
    auto a = ParseSeedNumber(item.substr(0, dash), s);
    if (!a.ok()) return a.status();
    auto b = dash == std::string::npos ? a : ParseSeedNumber(item.substr(dash + 1), s);
    if (!b.ok()) return b.status();
    if (*b < *a) return Status::InvalidArgument("--seeds: the range ends before it starts");
    if (*b - *a >= kSeedsMax || out.size() + (*b - *a + 1) > kSeedsMax) {
      return Status::InvalidArgument("--seeds: more than 10000000 seeds");
    }
    for (uint64_t seed = *a; seed <= *b; ++seed) out.push_back(seed);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

// "10s", "500ms", "2m", "1.5s".
Result<int64_t> ParseDuration(const std::string& s) {
  try {
    size_t pos = 0;
    double v = std::stod(s, &pos);
    std::string unit = s.substr(pos);
    double scale = 0;
    if (unit == "s" || unit.empty()) scale = 1e9;
    if (unit == "ms") scale = 1e6;
    if (unit == "m") scale = 60e9;
    if (scale == 0 || v <= 0) throw std::invalid_argument("unit");
    return static_cast<int64_t>(v * scale);
  } catch (const std::exception&) {
    return Status::InvalidArgument("--duration: expected e.g. 10s, 500ms or 2m, got '" + s + "'");
  }
}

Status WriteHistory(const std::string& dir, uint64_t seed, const check::History& h) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IoError("cannot create " + dir + ": " + ec.message());
  auto text = check::WriteHistoryJsonl(h);
  if (!text.ok()) return text.status();
  std::string path = dir + "/seed-" + std::to_string(seed) + ".jsonl";
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << *text;
  out.close();
  if (!out) return Status::IoError("cannot write " + path);
  return Status::Ok();
}

// What a seed's child process reports back through its pipe.
struct SeedOutcome {
  bool passed = false;
  std::string text;  // the failure report, or the verbose line
};

// Runs one seed in this (child) process and writes the outcome to fd.
void RunSeedInChild(const sim::SimOptions& o, const std::string& history_out, int fd) {
  sim::SimResult r = sim::RunSimulation(o);
  if (!history_out.empty()) {
    Status s = WriteHistory(history_out, o.seed, r.history);
    if (!s.ok()) std::fprintf(stderr, "synod sim: %s\n", s.ToString().c_str());
  }
  std::string text;
  if (r.passed) {
    text = fmt::format(
        "seed {}: ok trace={:016x} events={} ops={} unknown={} faults={} quiesce_notices={} "
        "forwarded={} splits={} merges={} placement_moves={} knobs: {}",
        o.seed, r.trace_hash, r.events, r.ops_ok, r.ops_unknown, r.faults_injected,
        r.quiesce_notices, r.requests_forwarded, r.splits, r.merges, r.placement_moves, r.knobs);
  } else {
    text = fmt::format("FAIL seed {}: {}\n  reproduce: {}\n  knobs: {}", o.seed, r.failure,
                       sim::ReproCommand(o), r.knobs);
    if (!r.check_report.empty()) text += "\n" + r.check_report;
  }
  std::string msg = (r.passed ? "1" : "0") + text;
  size_t off = 0;
  while (off < msg.size()) {
    ssize_t n = ::write(fd, msg.data() + off, msg.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
}

// A seed runs in a child process, so that a crash (a failed assertion is one) is reported as
// that seed's failure, with the command that reproduces it, instead of ending the whole run.
struct Child {
  pid_t pid = -1;
  int fd = -1;
  uint64_t index = 0;
  std::string out;
};

SeedOutcome Reap(Child& c, const sim::SimOptions& o) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(c.fd, buf, sizeof buf);
    if (n <= 0) break;
    c.out.append(buf, static_cast<size_t>(n));
  }
  ::close(c.fd);
  int status = 0;
  ::waitpid(c.pid, &status, 0);
  SeedOutcome out;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && !c.out.empty()) {
    out.passed = c.out[0] == '1';
    out.text = c.out.substr(1);
    return out;
  }
  std::string how = WIFSIGNALED(status) ? fmt::format("killed by signal {}", WTERMSIG(status))
                                        : fmt::format("exited {}", WEXITSTATUS(status));
  out.text = fmt::format(
      "FAIL seed {}: the simulation crashed ({}); see its stderr above\n"
      "  reproduce: {}",
      o.seed, how, sim::ReproCommand(o));
  return out;
}

int RunSim(const SimArgs& a) {
  auto seeds = ParseSeeds(a.seeds);
  auto duration = ParseDuration(a.duration);
  auto faults = sim::ParseFaults(a.faults);
  for (const Status& s : {seeds.status(), duration.status(), faults.status()}) {
    if (!s.ok()) {
      std::fprintf(stderr, "synod sim: %s\n", std::string(s.message()).c_str());
      return kExitUsage;
    }
  }
  if (!a.bug.empty()) {
    const auto& bugs = sim::KnownBugs();
    if (std::find(bugs.begin(), bugs.end(), a.bug) == bugs.end()) {
      std::fprintf(stderr, "synod sim: unknown --bug '%s'\n", a.bug.c_str());
      return kExitUsage;
    }
  }
  if (a.nodes < 1 || a.nodes > 7) {
    std::fprintf(stderr, "synod sim: --nodes must be between 1 and 7\n");
    return kExitUsage;
  }
  if (a.shards < -1 || a.shards > 16) {
    std::fprintf(stderr, "synod sim: --shards must be between 0 and 16 (or -1: drawn per seed)\n");
    return kExitUsage;
  }
  if (a.splits < -1 || a.splits > 64) {
    std::fprintf(stderr, "synod sim: --splits must be between 0 and 64 (or -1: drawn per seed)\n");
    return kExitUsage;
  }
  if (a.merges < -1 || a.merges > 64) {
    std::fprintf(stderr, "synod sim: --merges must be between 0 and 64 (or -1: drawn per seed)\n");
    return kExitUsage;
  }
  const std::vector<uint64_t>& seed_list = *seeds;
  const uint64_t count = seed_list.size();
  const uint64_t jobs = a.jobs > 0 ? static_cast<uint64_t>(a.jobs)
                                   : std::max(1u, std::thread::hardware_concurrency());
  auto options = [&](uint64_t i) {
    sim::SimOptions o;
    o.seed = seed_list[i];
    o.nodes = a.nodes;
    o.shards = a.shards;
    o.splits = a.splits;
    o.placement = a.placement;
    o.merges = a.merges;
    o.faults = *faults;
    o.duration_ns = *duration;
    o.bug = a.bug;
    o.verbose = a.verbose;
    return o;
  };
  std::vector<std::optional<SeedOutcome>> outcomes(count);
  std::vector<Child> running;
  uint64_t next = 0;
  bool stop = false;
  std::fflush(stdout);
  while ((next < count && !stop) || !running.empty()) {
    while (next < count && !stop && running.size() < jobs) {
      int fds[2];
      if (::pipe(fds) != 0) {
        std::perror("synod sim: pipe");
        return kExitUsage;
      }
      pid_t pid = ::fork();
      if (pid == 0) {
        ::close(fds[0]);
        RunSeedInChild(options(next), a.history_out, fds[1]);
        ::close(fds[1]);
        std::fflush(nullptr);
        ::_exit(0);
      }
      ::close(fds[1]);
      if (pid < 0) {
        std::perror("synod sim: fork");
        return kExitUsage;
      }
      running.push_back(Child{pid, fds[0], next, {}});
      ++next;
    }
    // Reap the oldest child first: outputs stay in seed order without buffering them all.
    Child c = std::move(running.front());
    running.erase(running.begin());
    SeedOutcome out = Reap(c, options(c.index));
    if (!out.passed && a.first_failure) stop = true;
    outcomes[c.index] = std::move(out);
  }

  uint64_t passed = 0, failed = 0;
  for (const auto& out : outcomes) {
    if (!out) continue;
    if (out->passed) {
      ++passed;
      if (a.verbose) std::printf("%s\n", out->text.c_str());
    } else {
      ++failed;
      std::printf("%s\n", out->text.c_str());
    }
  }
  std::printf("seeds: %lu passed, %lu failed\n", passed, failed);
  return failed > 0 ? 1 : 0;
}

}  // namespace

void AddSimCommand(CLI::App& app) {
  auto args = std::make_shared<SimArgs>();
  CLI::App* cmd = app.add_subcommand(
      "sim", "Run the deterministic cluster simulator over a range of seeds, under faults");
  cmd->add_option("--seeds", args->seeds, "Seed, range A-B, or a comma-separated list of them")
      ->capture_default_str();
  cmd->add_option("--nodes", args->nodes, "Initial voters (1-7)")->capture_default_str();
  cmd->add_option("--shards", args->shards,
                  "Data shards (1-16, plus the meta shard; requests routed by slot), 0 for one "
                  "group holding every slot, -1 to draw it per seed")
      ->capture_default_str();
  cmd->add_option("--splits", args->splits,
                  "Sharded runs: split shards up to N times at random (0: never, -1: drawn per "
                  "seed)")
      ->capture_default_str();
  cmd->add_option("--merges", args->merges,
                  "Sharded runs: merge shards into their neighbours up to N times at random (0: "
                  "never, -1: drawn per seed)")
      ->capture_default_str();
  cmd->add_option("--placement", args->placement,
                  "Sharded runs: the placement logic with nodes joining, draining and dying "
                  "(1 on, 0 off, -1: drawn per seed)")
      ->capture_default_str()
      ->check(CLI::Range(-1, 1));
  cmd->add_option("--faults", args->faults,
                  "all, none, or a list of network,partition,crash,pause,disk,clock,"
                  "membership,transfer")
      ->capture_default_str();
  cmd->add_option("--duration", args->duration, "Simulated time with faults (e.g. 10s, 500ms)")
      ->capture_default_str();
  cmd->add_option("--bug", args->bug,
                  "Plant a known bug: stale-read, commit-old-term, ack-before-fsync, no-dedup, "
                  "stale-route, split-loses-writes, move-removes-early, deposed-script-effects");
  cmd->add_option("--history-out", args->history_out,
                  "Write each seed's client history as DIR/seed-N.jsonl (see synod check)");
  cmd->add_option("--jobs", args->jobs, "Seeds run in parallel (default: one per core)");
  cmd->add_flag("--first-failure", args->first_failure, "Stop at the first failing seed");
  cmd->add_flag("--verbose", args->verbose, "Print every seed and the cluster's log");
  cmd->callback([args] {
    int code = RunSim(*args);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace synod::cli
