// `synod bench`: a load generator speaking RESP to Synod or Redis (docs/loadgen.md). This file
// only turns flags into loadgen::RunOptions, prints the progress line and the report; the
// machinery is in src/loadgen/.
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <iostream>

#include "cli/commands.h"
#include "common/address.h"
#include "loadgen/report.h"
#include "loadgen/runner.h"

namespace synod::cli {
namespace {

constexpr int kExitNothingSucceeded = 1;
// With --requests and no --duration, the run is still bounded, by this.
constexpr const char* kRequestsBound = "10m";

struct BenchFlags {
  std::vector<std::string> hosts = {"127.0.0.1:7001"};
  int clients = 50;
  int pipeline = 1;
  int threads = 1;
  uint64_t keys = 100000;
  size_t key_size = 8;
  size_t value_size = 256;
  double read_fraction = 0.5;
  std::string ratio;
  std::string duration = "10s";
  uint64_t requests = 0;
  double rate = 0;
  std::string warmup = "1s";
  std::string timeout = "5s";
  bool readonly = false;
  std::string command;
  uint64_t seed = 1;
  bool json = false;
  bool progress = true;
  bool duration_given = false;
};

std::atomic<bool> g_interrupted{false};
void OnInterrupt(int) { g_interrupted.store(true); }

// Flags -> options; prints what is wrong and returns false on a usage error.
bool ToOptions(const BenchFlags& f, loadgen::RunOptions* o) {
  auto fail = [](const std::string& what) {
    std::cerr << "synod bench: " << what << "\n";
    return false;
  };
  for (const std::string& h : f.hosts) {
    auto hp = SplitHostPort(h, PortZero::kRefused);
    if (!hp.ok()) return fail(std::string(hp.status().message()));
    o->hosts.push_back(*hp);
  }
  auto duration = loadgen::ParseDuration(
      f.requests > 0 && !f.duration_given ? std::string(kRequestsBound) : f.duration);
  auto warmup = loadgen::ParseDuration(f.warmup);
  auto timeout = loadgen::ParseDuration(f.timeout);
  for (const auto* r : {&duration, &warmup, &timeout}) {
    if (!r->ok()) return fail(std::string(r->status().message()));
  }
  o->duration_ns = *duration;
  o->warmup_ns = *warmup;
  o->timeout_ns = *timeout;
  o->clients = f.clients;
  o->pipeline = f.pipeline;
  o->threads = f.threads;
  o->requests = f.requests;
  o->rate = f.rate;
  o->readonly = f.readonly;
  o->seed = f.seed;
  o->workload.keys = f.keys;
  o->workload.key_size = f.key_size;
  o->workload.value_size = f.value_size;
  o->workload.read_fraction = f.read_fraction;
  if (!f.ratio.empty()) {
    auto r = loadgen::ParseRatio(f.ratio);
    if (!r.ok()) return fail(std::string(r.status().message()));
    o->workload.read_fraction = *r;
  }
  if (!f.command.empty()) {
    o->workload.command = loadgen::SplitCommand(f.command);
    if (o->workload.command.empty()) return fail("--command is empty");
  }
  return true;
}

int RunBenchCommand(const BenchFlags& f) {
  loadgen::RunOptions options;
  if (!ToOptions(f, &options)) return kExitUsage;
  // On a terminal the line rewrites itself; in a log file every second gets its own line.
  const bool tty = isatty(STDERR_FILENO) != 0;
  uint64_t ok_before = 0;
  int64_t measured_before = 0;
  loadgen::ProgressFn progress;
  if (f.progress) {
    progress = [&](const loadgen::Progress& p) {
      std::cerr << loadgen::FormatProgress(p, ok_before, measured_before)
                << (tty ? "\x1b[K\r" : "\n");
      std::cerr.flush();
      ok_before = p.counters.ok;
      measured_before = p.measured_ns;
    };
  }
  // Ctrl-C ends the run early and still prints what was measured.
  g_interrupted.store(false);
  auto old_int = std::signal(SIGINT, OnInterrupt);
  auto old_term = std::signal(SIGTERM, OnInterrupt);
  auto result = loadgen::RunBench(options, progress, g_interrupted);
  std::signal(SIGINT, old_int);
  std::signal(SIGTERM, old_term);
  if (f.progress && tty) std::cerr << "\x1b[K";
  if (!result.ok()) {
    std::cerr << "synod bench: " << result.status().message() << "\n";
    return result.status().code() == Code::kInvalidArgument ? kExitUsage : kExitNothingSucceeded;
  }
  if (f.json) {
    std::cout << loadgen::ToJson(options, *result).dump() << "\n";
  } else {
    std::cout << loadgen::FormatSummary(options, *result);
  }
  return result->counters.ok == 0 ? kExitNothingSucceeded : 0;
}

void AddWorkloadFlags(CLI::App* cmd, BenchFlags* f) {
  cmd->add_option("--keys", f->keys, "Key space: keys are chosen uniformly among this many")
      ->capture_default_str();
  cmd->add_option("--key-size", f->key_size, "Bytes per key (zero-padded decimal index)")
      ->capture_default_str();
  cmd->add_option("--value-size", f->value_size, "Bytes per SET value")->capture_default_str();
  auto* fraction =
      cmd->add_option("--read-fraction", f->read_fraction, "Share of GETs; the rest are SETs")
          ->capture_default_str();
  cmd->add_option("--ratio", f->ratio, "READS:WRITES instead of --read-fraction, e.g. 9:1")
      ->excludes(fraction);
  cmd->add_option("--command", f->command,
                  "One command instead of GET/SET, e.g. \"INCR\" or \"HSET h __key__ "
                  "__value__\"; the key is appended unless __key__ appears");
  cmd->add_flag("--readonly", f->readonly, "Send READONLY first on every connection");
  cmd->add_option("--seed", f->seed, "Seed of the key choice")->capture_default_str();
}

}  // namespace

void AddBenchCommand(CLI::App& app) {
  auto f = std::make_shared<BenchFlags>();
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Load generator: RESP over many connections, latency percentiles (docs/loadgen.md).");
  cmd->add_option("--host", f->hosts, "Client address(es), repeatable or comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("-c,--clients", f->clients, "TCP connections")->capture_default_str();
  cmd->add_option("-P,--pipeline", f->pipeline, "Outstanding requests per connection")
      ->capture_default_str();
  cmd->add_option("--threads", f->threads, "I/O threads")->capture_default_str();
  auto* duration = cmd->add_option("-d,--duration", f->duration, "Measured time (e.g. 10s, 2m)")
                       ->capture_default_str();
  cmd->add_option("-n,--requests", f->requests,
                  "Stop after this many measured requests (bounded by --duration, default " +
                      std::string(kRequestsBound) + ")");
  cmd->add_option("--rate", f->rate,
                  "Open loop: total requests/s on a fixed schedule; latency counts from the "
                  "scheduled time (0 = closed loop)")
      ->capture_default_str();
  cmd->add_option("--warmup", f->warmup, "Unmeasured time before the run")->capture_default_str();
  cmd->add_option("--timeout", f->timeout, "Connect and reply timeout")->capture_default_str();
  AddWorkloadFlags(cmd, f.get());
  cmd->add_flag("--json", f->json, "Print one JSON object instead of the summary");
  cmd->add_flag("--progress,!--no-progress", f->progress,
                "A progress line on stderr every second (default on)");
  cmd->callback([f, duration] {
    f->duration_given = duration->count() > 0;
    const int code = RunBenchCommand(*f);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace synod::cli
