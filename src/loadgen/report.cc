#include "loadgen/report.h"

#include <fmt/format.h>

namespace synod::loadgen {
namespace {

double Ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }

std::string HostList(const RunOptions& o) {
  std::string s;
  for (const HostPort& h : o.hosts) {
    if (!s.empty()) s += ",";
    s += h.host.find(':') != std::string::npos ? fmt::format("[{}]:{}", h.host, h.port)
                                               : fmt::format("{}:{}", h.host, h.port);
  }
  return s;
}

std::string MixText(const RunOptions& o) {
  if (!o.workload.command.empty()) {
    std::string cmd;
    for (const std::string& w : o.workload.command) cmd += (cmd.empty() ? "" : " ") + w;
    return fmt::format("command \"{}\"", cmd);
  }
  return fmt::format("{:.0f}% GET / {:.0f}% SET", o.workload.read_fraction * 100,
                     (1 - o.workload.read_fraction) * 100);
}

std::string ErrorsText(const Counters& c) {
  if (c.errors.empty()) return "none";
  std::string s;
  for (const auto& [kind, count] : c.errors) {
    s += fmt::format("{}{} {}", s.empty() ? "" : ", ", kind, count);
  }
  return s;
}

}  // namespace

double OpsPerSecond(const RunResult& r) {
  if (r.measured_ns <= 0) return 0;
  return static_cast<double>(r.counters.ok) * 1e9 / static_cast<double>(r.measured_ns);
}

std::string FormatProgress(const Progress& p, uint64_t ok_before, int64_t measured_before) {
  const int64_t interval_ns = p.measured_ns - measured_before;
  const double secs = static_cast<double>(p.elapsed_ns) / 1e9;
  if (p.warming_up) return fmt::format("[{:6.1f}s] warming up", secs);
  const double rate = interval_ns <= 0 ? 0.0
                                       : static_cast<double>(p.counters.ok - ok_before) * 1e9 /
                                             static_cast<double>(interval_ns);
  return fmt::format("[{:6.1f}s] {:>10.0f} ops/s  p50 {:.3f} ms  p99 {:.3f} ms  errors {}", secs,
                     rate, Ms(p.latency.ValueAtPercentile(50)), Ms(p.latency.ValueAtPercentile(99)),
                     p.counters.ErrorsTotal());
}

std::string FormatSummary(const RunOptions& o, const RunResult& r) {
  const Counters& c = r.counters;
  const Histogram& h = r.latency;
  std::string s;
  s += fmt::format(
      "synod bench: {} connection(s) to {}, pipeline {}, {} thread(s), {}\n", o.clients,
      HostList(o), o.pipeline, o.threads,
      o.rate > 0 ? fmt::format("open loop at {:.0f} ops/s", o.rate) : std::string("closed loop"));
  s += fmt::format("  workload:   {} keys of {} bytes, values of {} bytes, {}{}\n", o.workload.keys,
                   o.workload.key_size, o.workload.value_size, MixText(o),
                   o.readonly ? ", READONLY" : "");
  s += fmt::format("  measured:   {:.2f} s{}{}\n", static_cast<double>(r.measured_ns) / 1e9,
                   o.warmup_ns > 0 ? fmt::format(" after {:.2f} s of warmup",
                                                 static_cast<double>(o.warmup_ns) / 1e9)
                                   : std::string(),
                   r.interrupted ? " (interrupted)" : "");
  s += fmt::format("  throughput: {:.0f} ops/s ({} ok: {} GET, {} SET, {} nil)\n", OpsPerSecond(r),
                   c.ok, c.reads, c.writes, c.nil);
  s += fmt::format("  errors:     {} ({}); {} lost in flight; {} connects\n", c.ErrorsTotal(),
                   ErrorsText(c), c.lost, c.connects);
  for (const auto& [kind, message] : c.error_samples) {
    s += fmt::format("              first {}: {}\n", kind, message);
  }
  if (r.backlog > 0) {
    s += fmt::format("  backlog:    {} requests were due but never sent (server too slow)\n",
                     r.backlog);
  }
  s += fmt::format(
      "  latency ms: p50 {:.3f}  p90 {:.3f}  p99 {:.3f}  p99.9 {:.3f}  max {:.3f}  (mean {:.3f})\n",
      Ms(h.ValueAtPercentile(50)), Ms(h.ValueAtPercentile(90)), Ms(h.ValueAtPercentile(99)),
      Ms(h.ValueAtPercentile(99.9)), Ms(h.max()), h.mean() / 1e6);
  return s;
}

nlohmann::json ToJson(const RunOptions& o, const RunResult& r) {
  const Counters& c = r.counters;
  const Histogram& h = r.latency;
  nlohmann::json hosts = nlohmann::json::array();
  for (const HostPort& hp : o.hosts) hosts.push_back(fmt::format("{}:{}", hp.host, hp.port));
  nlohmann::json j;
  j["ops_per_sec"] = OpsPerSecond(r);
  j["measured_seconds"] = static_cast<double>(r.measured_ns) / 1e9;
  j["requests"] = {{"ok", c.ok},   {"reads", c.reads}, {"writes", c.writes},
                   {"nil", c.nil}, {"lost", c.lost},   {"errors", c.ErrorsTotal()}};
  j["errors"] = nlohmann::json::object();
  for (const auto& [kind, count] : c.errors) j["errors"][kind] = count;
  j["error_samples"] = nlohmann::json::object();
  for (const auto& [kind, message] : c.error_samples) j["error_samples"][kind] = message;
  j["latency_ms"] = {{"p50", Ms(h.ValueAtPercentile(50))},
                     {"p90", Ms(h.ValueAtPercentile(90))},
                     {"p99", Ms(h.ValueAtPercentile(99))},
                     {"p99_9", Ms(h.ValueAtPercentile(99.9))},
                     {"max", Ms(h.max())},
                     {"min", Ms(h.min())},
                     {"mean", h.mean() / 1e6}};
  // The latency distribution as [percentile, ms] pairs, for CDF plots (docs/benchmarks.md).
  nlohmann::json cdf = nlohmann::json::array();
  for (double p : {0.0,  1.0,  5.0,  10.0, 20.0, 30.0, 40.0, 50.0,  60.0,  70.0, 80.0,
                   90.0, 95.0, 97.0, 98.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0}) {
    cdf.push_back({p, p == 0 ? Ms(h.min()) : Ms(h.ValueAtPercentile(p))});
  }
  j["cdf_ms"] = cdf;
  j["connects"] = c.connects;
  j["backlog"] = r.backlog;
  j["interrupted"] = r.interrupted;
  j["config"] = {{"hosts", hosts},
                 {"clients", o.clients},
                 {"pipeline", o.pipeline},
                 {"threads", o.threads},
                 {"keys", o.workload.keys},
                 {"key_size", o.workload.key_size},
                 {"value_size", o.workload.value_size},
                 {"read_fraction", o.workload.read_fraction},
                 {"command", o.workload.command},
                 {"duration_seconds", static_cast<double>(o.duration_ns) / 1e9},
                 {"warmup_seconds", static_cast<double>(o.warmup_ns) / 1e9},
                 {"requests", o.requests},
                 {"rate", o.rate},
                 {"readonly", o.readonly},
                 {"seed", o.seed}};
  return j;
}

}  // namespace synod::loadgen
