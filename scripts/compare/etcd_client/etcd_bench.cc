// etcd_bench: a load generator for etcd v3's gRPC KV API, the etcd side of `make bench`
// (scripts/compare/run.py, docs/benchmarks.md). It mirrors `synod bench` (docs/loadgen.md): the
// same flags where they apply, the same key and value shapes, the same --json fields, so that
// the report treats both alike.
//
//   etcd_bench --endpoints 127.0.0.1:2379,127.0.0.1:2479 --clients 64 --read-fraction 0 --json
//   etcd_bench --endpoints ... --clients 64 --read-fraction 1 --serializable   # stale reads
//   etcd_bench --endpoints ... --clients 64 --rate 2000                        # open loop
//   etcd_bench --endpoints ... --failover --acks FILE --prefix fo/3            # failover writer
//
// Load mode: --clients requests are outstanding at once (closed loop), or each of the --clients
// slots follows a fixed schedule of rate/clients requests per second (open loop, latency from
// the scheduled time, like synod bench). Slots are spread over one gRPC channel (one TCP
// connection) per 16 slots, at least one per endpoint, channel c going to endpoint c mod N.
// Everything runs on the async CompletionQueue API, one queue per --threads thread.
//
// Failover mode: each slot writes unique keys PREFIX/slot/seq through its own channel to one
// endpoint (slot i to endpoint i mod N), with a --timeout deadline, retrying 10 ms after a
// failure, and appends "key send_ns ack_ns endpoint" (CLOCK_REALTIME) to --acks for every
// acknowledged write. A line "killed NS IDX" on stdin says the endpoint IDX was killed at NS;
// the run then ends 300 ms after the first write sent after NS and acknowledged by another
// endpoint, or --window after NS, or at --duration.
#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "etcd_kv.grpc.pb.h"

namespace {

using etcdserverpb::KV;
using etcdserverpb::PutRequest;
using etcdserverpb::PutResponse;
using etcdserverpb::RangeRequest;
using etcdserverpb::RangeResponse;

int64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

int64_t RealNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

gpr_timespec MonoToDeadline(int64_t mono_ns) {
  const int64_t delta = std::max<int64_t>(0, mono_ns - MonoNs());
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_nanos(delta, GPR_TIMESPAN));
}

struct Options {
  std::vector<std::string> endpoints = {"127.0.0.1:2379"};
  int clients = 16;
  int threads = 1;
  int per_channel = 16;
  double duration_s = 10;
  double warmup_s = 1;
  int64_t keys = 100000;
  int key_size = 8;
  int value_size = 256;
  double read_fraction = 0;
  bool serializable = false;
  double rate = 0;
  int64_t timeout_ms = 5000;
  uint64_t seed = 1;
  bool json = false;
  bool failover = false;
  std::string acks_path;
  std::string prefix = "fo";
  double window_s = 10;
};

[[noreturn]] void Usage(const std::string& why) {
  std::cerr << "etcd_bench: " << why << "\n"
            << "flags: --endpoints H:P[,H:P...] --clients N --threads T --per-channel N\n"
            << "       --duration S --warmup S --keys K --key-size B --value-size B\n"
            << "       --read-fraction F --serializable --rate R --timeout-ms MS --seed S --json\n"
            << "       --failover --acks FILE --prefix P --window S\n";
  std::exit(3);
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, sep)) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

// Seconds from "10", "10s", "500ms", "2m".
double ParseSeconds(const std::string& s) {
  try {
    if (s.ends_with("ms")) return std::stod(s.substr(0, s.size() - 2)) / 1000;
    if (s.ends_with("s")) return std::stod(s.substr(0, s.size() - 1));
    if (s.ends_with("m")) return std::stod(s.substr(0, s.size() - 1)) * 60;
    return std::stod(s);
  } catch (const std::exception&) {
    Usage("bad duration " + s);
  }
}

Options ParseFlags(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage("missing value for " + a);
      return argv[++i];
    };
    if (a == "--endpoints") {
      o.endpoints = Split(value(), ',');
    } else if (a == "--clients" || a == "-c") {
      o.clients = std::stoi(value());
    } else if (a == "--threads") {
      o.threads = std::stoi(value());
    } else if (a == "--per-channel") {
      o.per_channel = std::stoi(value());
    } else if (a == "--duration" || a == "-d") {
      o.duration_s = ParseSeconds(value());
    } else if (a == "--warmup") {
      o.warmup_s = ParseSeconds(value());
    } else if (a == "--keys") {
      o.keys = std::stoll(value());
    } else if (a == "--key-size") {
      o.key_size = std::stoi(value());
    } else if (a == "--value-size") {
      o.value_size = std::stoi(value());
    } else if (a == "--read-fraction") {
      o.read_fraction = std::stod(value());
    } else if (a == "--serializable") {
      o.serializable = true;
    } else if (a == "--rate") {
      o.rate = std::stod(value());
    } else if (a == "--timeout-ms") {
      o.timeout_ms = std::stoll(value());
    } else if (a == "--seed") {
      o.seed = std::stoull(value());
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--failover") {
      o.failover = true;
    } else if (a == "--acks") {
      o.acks_path = value();
    } else if (a == "--prefix") {
      o.prefix = value();
    } else if (a == "--window") {
      o.window_s = ParseSeconds(value());
    } else {
      Usage("unknown flag " + a);
    }
  }
  if (o.endpoints.empty() || o.clients < 1 || o.threads < 1 || o.per_channel < 1 || o.keys < 1 ||
      o.key_size < 1 || o.read_fraction < 0 || o.read_fraction > 1) {
    Usage("bad flag value");
  }
  if (o.failover && o.acks_path.empty()) Usage("--failover needs --acks FILE");
  return o;
}

// The key of index i, as synod bench makes it: zero-padded decimal after "key:" when it fits.
std::string KeyOf(int64_t i, const Options& o) {
  const int digits = static_cast<int>(std::to_string(std::max<int64_t>(o.keys - 1, 0)).size());
  const bool prefix = 4 + digits <= o.key_size;
  std::string num = std::to_string(i);
  const int width = o.key_size - (prefix ? 4 : 0);
  if (static_cast<int>(num.size()) < width) num.insert(0, width - num.size(), '0');
  return (prefix ? "key:" : "") + num;
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& endpoint, int index) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one TCP connection per channel
  args.SetInt("synod.channel_index", index);           // and never shared between channels
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
  return grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args);
}

struct Ack {
  std::string key;
  int64_t send_ns;
  int64_t ack_ns;
  int endpoint;
};

struct Counters {
  uint64_t ok = 0, reads = 0, writes = 0, nil = 0, backlog = 0;
  std::map<std::string, uint64_t> errors;
  std::vector<int64_t> latencies;  // ns, measured successes only
  std::vector<Ack> acks;

  uint64_t ErrorsTotal() const {
    uint64_t n = 0;
    for (const auto& [k, v] : errors) n += v;
    return n;
  }
  void Merge(Counters&& other) {
    ok += other.ok;
    reads += other.reads;
    writes += other.writes;
    nil += other.nil;
    backlog += other.backlog;
    for (const auto& [k, v] : other.errors) errors[k] += v;
    latencies.insert(latencies.end(), other.latencies.begin(), other.latencies.end());
    for (Ack& a : other.acks) acks.push_back(std::move(a));
  }
};

// Shared by the workers in failover mode: when and where the leader was killed, and whether a
// surviving endpoint has acknowledged a write sent after that.
struct FailoverState {
  std::atomic<int64_t> killed_ns{0};
  std::atomic<int> killed_endpoint{-1};
  std::atomic<int64_t> recovered_mono_ns{0};
};

std::string CodeName(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    default:
      return "CODE_" + std::to_string(static_cast<int>(c));
  }
}

class Worker;

// One client: at most one request outstanding.
struct Slot {
  enum class Tag { kRpc, kAlarm };
  struct TagRef {
    Slot* slot;
    Tag tag;
  };

  int id = 0;
  int endpoint = 0;
  KV::Stub* stub = nullptr;
  std::unique_ptr<grpc::ClientContext> ctx;
  PutRequest put_req;
  PutResponse put_resp;
  RangeRequest range_req;
  RangeResponse range_resp;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<PutResponse>> put_rpc;
  std::unique_ptr<grpc::ClientAsyncResponseReader<RangeResponse>> range_rpc;
  grpc::Alarm alarm;
  bool in_flight = false;
  bool alarm_set = false;
  bool is_read = false;
  int64_t start_ns = 0;   // latency origin: the send, or the scheduled time in open loop
  int64_t next_due = 0;   // open loop: the next scheduled send
  int64_t interval = 0;   // open loop: ns between sends of this slot
  int64_t send_real = 0;  // failover: CLOCK_REALTIME at send
  uint64_t seq = 0;       // failover: the next key's sequence number
  std::mt19937_64 rng;
  TagRef rpc_tag{this, Tag::kRpc};
  TagRef alarm_tag{this, Tag::kAlarm};
};

class Worker {
 public:
  Worker(const Options& o, std::vector<std::unique_ptr<Slot>> slots, int64_t t0, int64_t warm_end,
         int64_t end, FailoverState* fo)
      : o_(o), slots_(std::move(slots)), t0_(t0), warm_end_(warm_end), end_(end), fo_(fo) {
    value_.assign(static_cast<size_t>(o.value_size), 'x');
  }

  void Run() {
    for (auto& s : slots_) {
      if (o_.rate > 0 && !o_.failover) {
        SetAlarm(*s, s->next_due);
      } else {
        Issue(*s, MonoNs());
      }
    }
    bool stopping = false;
    while (true) {
      void* tag = nullptr;
      bool ok = false;
      const auto r = cq_.AsyncNext(&tag, &ok, MonoToDeadline(MonoNs() + 20'000'000));
      const int64_t now = MonoNs();
      if (r == grpc::CompletionQueue::SHUTDOWN) break;
      if (!stopping && ShouldStop(now)) {
        stopping = true;
        for (auto& s : slots_) {
          if (s->in_flight) s->ctx->TryCancel();
          if (s->alarm_set) s->alarm.Cancel();
        }
      }
      if (r == grpc::CompletionQueue::GOT_EVENT) {
        auto* ref = static_cast<Slot::TagRef*>(tag);
        Slot& s = *ref->slot;
        if (ref->tag == Slot::Tag::kAlarm) {
          s.alarm_set = false;
          if (ok && !stopping) Issue(s, s.next_due);
        } else {
          s.in_flight = false;
          Complete(s, now, stopping);
        }
      }
      if (stopping && Idle()) {
        cq_.Shutdown();
        stopping = false;  // drain until SHUTDOWN
        done_ = true;
      }
    }
    // Open loop: requests that were due before the end but never sent.
    if (o_.rate > 0 && !o_.failover) {
      for (auto& s : slots_) {
        if (s->next_due < end_ && s->interval > 0) {
          c_.backlog += static_cast<uint64_t>((end_ - s->next_due) / s->interval);
        }
      }
    }
  }

  Counters TakeCounters() { return std::move(c_); }

 private:
  bool ShouldStop(int64_t now) const {
    if (done_) return false;
    if (now >= end_) return true;
    if (fo_ == nullptr) return false;
    const int64_t rec = fo_->recovered_mono_ns.load();
    if (rec != 0 && now >= rec + 300'000'000) return true;
    const int64_t killed = fo_->killed_ns.load();
    return killed != 0 && RealNs() >= killed + static_cast<int64_t>(o_.window_s * 1e9);
  }

  bool Idle() const {
    for (const auto& s : slots_) {
      if (s->in_flight || s->alarm_set) return false;
    }
    return true;
  }

  void SetAlarm(Slot& s, int64_t mono_ns) {
    s.alarm_set = true;
    s.alarm.Set(&cq_, MonoToDeadline(mono_ns), &s.alarm_tag);
  }

  void Issue(Slot& s, int64_t origin) {
    s.ctx = std::make_unique<grpc::ClientContext>();
    s.ctx->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(o_.timeout_ms));
    s.start_ns = origin;
    s.in_flight = true;
    if (o_.failover) {
      s.is_read = false;
      s.put_req.set_key(o_.prefix + "/" + std::to_string(s.id) + "/" + std::to_string(s.seq++));
      s.put_req.set_value(s.put_req.key());
      s.send_real = RealNs();
      s.put_rpc = s.stub->AsyncPut(s.ctx.get(), s.put_req, &cq_);
      s.put_rpc->Finish(&s.put_resp, &s.status, &s.rpc_tag);
      return;
    }
    const int64_t k = static_cast<int64_t>(s.rng() % static_cast<uint64_t>(o_.keys));
    s.is_read = o_.read_fraction >= 1 ||
                (o_.read_fraction > 0 &&
                 std::uniform_real_distribution<double>(0, 1)(s.rng) < o_.read_fraction);
    if (s.is_read) {
      s.range_req.set_key(KeyOf(k, o_));
      s.range_req.set_serializable(o_.serializable);
      s.range_rpc = s.stub->AsyncRange(s.ctx.get(), s.range_req, &cq_);
      s.range_rpc->Finish(&s.range_resp, &s.status, &s.rpc_tag);
    } else {
      s.put_req.set_key(KeyOf(k, o_));
      s.put_req.set_value(value_);
      s.put_rpc = s.stub->AsyncPut(s.ctx.get(), s.put_req, &cq_);
      s.put_rpc->Finish(&s.put_resp, &s.status, &s.rpc_tag);
    }
  }

  void Complete(Slot& s, int64_t now, bool stopping) {
    const bool measured = now >= warm_end_ && now <= end_;
    if (s.status.ok()) {
      if (o_.failover) {
        const int64_t ack = RealNs();
        c_.acks.push_back({s.put_req.key(), s.send_real, ack, s.endpoint});
        const int64_t killed = fo_->killed_ns.load();
        if (killed != 0 && s.send_real >= killed && s.endpoint != fo_->killed_endpoint.load()) {
          int64_t expected = 0;
          fo_->recovered_mono_ns.compare_exchange_strong(expected, now);
        }
      } else if (measured) {
        ++c_.ok;
        if (s.is_read) {
          ++c_.reads;
          if (s.range_resp.kvs_size() == 0) ++c_.nil;
        } else {
          ++c_.writes;
        }
        c_.latencies.push_back(now - s.start_ns);
      }
    } else if (!stopping && (measured || o_.failover)) {
      ++c_.errors[CodeName(s.status.error_code())];
    }
    if (stopping) return;
    if (o_.rate > 0 && !o_.failover) {
      // Open loop: the next scheduled send, at once if it is already due.
      s.next_due += s.interval;
      if (s.next_due <= now) {
        Issue(s, s.next_due);
      } else {
        SetAlarm(s, s.next_due);
      }
    } else if (s.status.ok()) {
      Issue(s, now);
    } else {
      s.next_due = now + 10'000'000;  // retry 10 ms after a failure
      SetAlarm(s, s.next_due);
    }
  }

  const Options& o_;
  grpc::CompletionQueue cq_;
  std::vector<std::unique_ptr<Slot>> slots_;
  int64_t t0_, warm_end_, end_;
  FailoverState* fo_;
  std::string value_;
  Counters c_;
  bool done_ = false;
};

double Percentile(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * sorted.size()));
  return static_cast<double>(sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1]) / 1e6;
}

nlohmann::json ToJson(const Options& o, Counters& c, double measured_s, int connects) {
  std::sort(c.latencies.begin(), c.latencies.end());
  const auto& l = c.latencies;
  double mean = 0;
  for (int64_t v : l) mean += static_cast<double>(v);
  mean = l.empty() ? 0 : mean / static_cast<double>(l.size()) / 1e6;
  nlohmann::json j;
  j["ops_per_sec"] = measured_s > 0 ? static_cast<double>(c.ok) / measured_s : 0;
  j["measured_seconds"] = measured_s;
  j["requests"] = {{"ok", c.ok},   {"reads", c.reads}, {"writes", c.writes},
                   {"nil", c.nil}, {"lost", 0},        {"errors", c.ErrorsTotal()}};
  j["errors"] = nlohmann::json::object();
  for (const auto& [k, v] : c.errors) j["errors"][k] = v;
  j["latency_ms"] = {{"p50", Percentile(l, 50)},
                     {"p90", Percentile(l, 90)},
                     {"p99", Percentile(l, 99)},
                     {"p99_9", Percentile(l, 99.9)},
                     {"max", l.empty() ? 0 : static_cast<double>(l.back()) / 1e6},
                     {"min", l.empty() ? 0 : static_cast<double>(l.front()) / 1e6},
                     {"mean", mean}};
  nlohmann::json cdf = nlohmann::json::array();
  for (double p : {0.0,  1.0,  5.0,  10.0, 20.0, 30.0, 40.0, 50.0,  60.0,  70.0, 80.0,
                   90.0, 95.0, 97.0, 98.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0}) {
    cdf.push_back({p, p == 0 ? (l.empty() ? 0 : l.front() / 1e6) : Percentile(l, p)});
  }
  j["cdf_ms"] = cdf;
  j["connects"] = connects;
  j["backlog"] = c.backlog;
  j["interrupted"] = false;
  j["config"] = {{"hosts", o.endpoints},
                 {"clients", o.clients},
                 {"pipeline", 1},
                 {"threads", o.threads},
                 {"keys", o.keys},
                 {"key_size", o.key_size},
                 {"value_size", o.value_size},
                 {"read_fraction", o.read_fraction},
                 {"serializable", o.serializable},
                 {"duration_seconds", o.duration_s},
                 {"warmup_seconds", o.warmup_s},
                 {"rate", o.rate},
                 {"client", "etcd_bench (gRPC async, scripts/compare/etcd_client)"},
                 {"seed", o.seed}};
  return j;
}

void PrintSummary(const nlohmann::json& j) {
  const auto& l = j["latency_ms"];
  std::printf(
      "etcd_bench: %d client(s) over %d channel(s) to %s\n"
      "  throughput: %.0f ops/s (%lu ok: %lu reads, %lu writes, %lu nil), errors %lu, "
      "backlog %lu\n"
      "  latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (mean %.3f)\n",
      j["config"]["clients"].get<int>(), j["connects"].get<int>(),
      j["config"]["hosts"].dump().c_str(), j["ops_per_sec"].get<double>(),
      j["requests"]["ok"].get<uint64_t>(), j["requests"]["reads"].get<uint64_t>(),
      j["requests"]["writes"].get<uint64_t>(), j["requests"]["nil"].get<uint64_t>(),
      j["requests"]["errors"].get<uint64_t>(), j["backlog"].get<uint64_t>(), l["p50"].get<double>(),
      l["p90"].get<double>(), l["p99"].get<double>(), l["p99_9"].get<double>(),
      l["max"].get<double>(), l["mean"].get<double>());
  if (!j["errors"].empty()) std::printf("  errors: %s\n", j["errors"].dump().c_str());
}

// Reads "killed NS IDX" lines from stdin (failover mode).
void WatchStdin(FailoverState* fo) {
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string word;
    int64_t ns = 0;
    int idx = -1;
    if (in >> word >> ns >> idx && word == "killed") {
      fo->killed_endpoint.store(idx);
      fo->killed_ns.store(ns);
    }
  }
}

int Run(const Options& o) {
  const int n = static_cast<int>(o.endpoints.size());
  const int channels =
      o.failover
          ? o.clients
          : std::min(o.clients, std::max(n, (o.clients + o.per_channel - 1) / o.per_channel));
  std::vector<std::unique_ptr<KV::Stub>> stubs;
  std::vector<int> stub_endpoint;
  for (int c = 0; c < channels; ++c) {
    stubs.push_back(KV::NewStub(MakeChannel(o.endpoints[static_cast<size_t>(c % n)], c)));
    stub_endpoint.push_back(c % n);
  }
  const int64_t t0 = MonoNs();
  const int64_t warm_end = t0 + static_cast<int64_t>((o.failover ? 0 : o.warmup_s) * 1e9);
  const int64_t end = warm_end + static_cast<int64_t>(o.duration_s * 1e9);
  std::vector<std::vector<std::unique_ptr<Slot>>> per_thread(static_cast<size_t>(o.threads));
  for (int i = 0; i < o.clients; ++i) {
    auto s = std::make_unique<Slot>();
    s->id = i;
    const int c = i % channels;
    s->stub = stubs[static_cast<size_t>(c)].get();
    s->endpoint = stub_endpoint[static_cast<size_t>(c)];
    s->rng.seed(o.seed * 1'000'003 + static_cast<uint64_t>(i));
    if (o.rate > 0) {
      s->interval = static_cast<int64_t>(1e9 * o.clients / o.rate);
      s->next_due = t0 + static_cast<int64_t>(1e9 * i / o.rate);
    }
    per_thread[static_cast<size_t>(i % o.threads)].push_back(std::move(s));
  }
  FailoverState fo;
  if (o.failover) std::thread(WatchStdin, &fo).detach();
  std::vector<std::unique_ptr<Worker>> workers;
  for (auto& slots : per_thread) {
    workers.push_back(std::make_unique<Worker>(o, std::move(slots), t0, warm_end, end,
                                               o.failover ? &fo : nullptr));
  }
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&w] { w->Run(); });
  for (auto& t : threads) t.join();
  const int64_t stopped = MonoNs();
  Counters total;
  for (auto& w : workers) total.Merge(w->TakeCounters());
  if (o.failover) {
    {
      std::ofstream out(o.acks_path);
      for (const Ack& a : total.acks) {
        out << a.key << ' ' << a.send_ns << ' ' << a.ack_ns << ' ' << a.endpoint << '\n';
      }
    }  // closed (flushed) before _Exit
    nlohmann::json j = {{"acks", total.acks.size()},
                        {"errors", total.errors},
                        {"killed_ns", fo.killed_ns.load()},
                        {"recovered", fo.recovered_mono_ns.load() != 0}};
    std::cout << j.dump() << std::endl;
    std::_Exit(0);  // the stdin watcher may still block in getline
  }
  const double measured = static_cast<double>(std::min(stopped, end) - warm_end) / 1e9;
  nlohmann::json j = ToJson(o, total, measured, channels);
  if (o.json) {
    std::cout << j.dump() << std::endl;
  } else {
    PrintSummary(j);
  }
  return total.ok == 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) { return Run(ParseFlags(argc, argv)); }
