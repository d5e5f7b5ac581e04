// RunBench's machinery: a Shard per I/O thread (io_context, connections, timers, its own
// counters and histogram) and a Connection per TCP connection. Shards share nothing while
// running except three atomics (stop, the request quota, done) and a mutex-guarded snapshot
// they publish a few times a second for the progress line.
#include "loadgen/runner.h"

#include <fmt/format.h>
#include <algorithm>
#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>

#include "common/assert.h"
#include "server/resp/resp.h"

namespace synod::loadgen {
namespace {

using asio::ip::tcp;

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kBackoffMinNs = 10 * kMs;
constexpr int64_t kBackoffMaxNs = 1000 * kMs;
// The watchdog's period: timeouts, the stop flag and the end of a --requests run are noticed
// this late at most.
constexpr int64_t kWatchdogNs = 10 * kMs;
constexpr int kPublishEveryTicks = 25;  // 250 ms
// The open-loop pacer sleeps at least this long: a bound on wake-ups, charged to latency.
constexpr int64_t kPaceMinNs = 20'000;
// Distinct server error kinds kept apart; further kinds count as "other".
constexpr size_t kErrorKindsMax = 32;
constexpr size_t kReadBufferBytes = 64 * 1024;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::chrono::steady_clock::time_point AtNs(int64_t ns) {
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns));
}

void CountError(Counters* c, std::string kind, std::string_view message = {}) {
  if (c->errors.size() >= kErrorKindsMax && !c->errors.contains(kind)) kind = "other";
  ++c->errors[kind];
  if (!message.empty() && !c->error_samples.contains(kind)) {
    c->error_samples.emplace(kind, std::string(message.substr(0, 200)));
  }
}

// A server error's kind: its first word, as Redis clients classify them.
std::string ErrorKind(const std::string& message) {
  const size_t end = std::min<size_t>(message.find(' '), 32);
  return message.empty() ? "ERR" : message.substr(0, end);
}

// The schedule of a run, fixed before any thread starts.
struct Plan {
  int64_t start_ns = 0;
  int64_t measured_start_ns = 0;
  int64_t end_ns = 0;
  int64_t interval_ns = 0;  // open loop: per connection; 0 = closed loop
};

class Shard;

// One TCP connection and its requests. Owned by its Shard; used on the shard's thread only.
class Connection {
 public:
  Connection(Shard& shard, tcp::endpoint endpoint, uint64_t seed, int64_t first_due_ns);

  void Connect();
  // Closed loop: tops the pipeline up. Open loop: sends what is due. Then flushes.
  void Refill(int64_t now_ns);
  // Fails the connection if its connect or oldest request exceeded the timeout.
  void CheckTimeout(int64_t now_ns);
  bool idle() const { return inflight_.empty(); }
  bool up() const { return state_ == State::kUp; }
  bool can_send() const;
  int64_t next_due_ns() const { return next_due_ns_; }
  void Close();

 private:
  struct InFlight {
    int64_t start_ns;  // latency origin: queued (closed loop) or scheduled (open loop)
    int64_t sent_ns;   // when it was queued, for the timeout
    OpKind kind;
    bool measured;
    bool control;  // READONLY: neither a request nor a success
  };
  enum class State { kDown, kConnecting, kUp };

  bool Issue(int64_t start_ns, int64_t now_ns);
  void Flush();
  void StartRead();
  void OnRead(size_t bytes);
  void OnReply(const resp::ReplyValue& v, int64_t now_ns);
  void Fail(const char* kind);

  Shard& shard_;
  const tcp::endpoint endpoint_;
  tcp::socket socket_;
  asio::steady_timer backoff_timer_;
  Rng rng_;
  State state_ = State::kDown;
  uint64_t generation_ = 0;  // bumped on Close so that handlers of the old socket do nothing
  int64_t since_ns_ = 0;     // when the connect started
  int64_t backoff_ns_ = kBackoffMinNs;
  int64_t next_due_ns_;  // open loop: the scheduled time of the next request
  std::string out_;      // requests not yet handed to the socket
  std::string sending_;  // the bytes of the write in flight
  bool writing_ = false;
  int requests_inflight_ = 0;  // inflight_ minus control entries
  std::deque<InFlight> inflight_;
  std::unique_ptr<resp::ReplyParser> parser_;
  std::vector<char> read_buf_;
};

// What a shard shows the progress thread.
struct Snapshot {
  Counters counters;
  Histogram latency;
};

// One I/O thread: an io_context and its connections. Run() returns when the plan's end is
// reached, the request quota is met, or stop is set.
class Shard {
 public:
  Shard(const RunOptions& options, const Workload& workload, const Plan& plan,
        std::atomic<bool>& stop, std::atomic<uint64_t>& quota_taken)
      : options_(options),
        workload_(workload),
        plan_(plan),
        stop_(stop),
        quota_taken_(quota_taken),
        deadline_(io_),
        watchdog_(io_),
        pacer_(io_) {}

  void AddConnection(tcp::endpoint endpoint, uint64_t seed, int64_t first_due_ns) {
    conns_.push_back(std::make_unique<Connection>(*this, endpoint, seed, first_due_ns));
  }
  void Run();
  bool done() const { return done_.load(); }
  // Copies the latest published snapshot into *out (merging). Any thread.
  void MergeSnapshot(Snapshot* out) {
    std::lock_guard<std::mutex> lock(mu_);
    out->counters.Merge(published_.counters);
    out->latency.Merge(published_.latency);
  }
  // After Run: the shard's results. REQUIRES: Run returned.
  const Counters& counters() const { return counters_; }
  const Histogram& latency() const { return latency_; }
  int64_t finished_ns() const { return finished_ns_; }
  uint64_t Backlog() const;

  // For connections.
  asio::io_context& io() { return io_; }
  const RunOptions& options() const { return options_; }
  const Workload& workload() const { return workload_; }
  const Plan& plan() const { return plan_; }
  Counters& live_counters() { return counters_; }
  Histogram& live_latency() { return latency_; }
  bool stopping() const { return stopping_; }
  // Takes one measured request from the --requests quota; false when it is used up.
  bool TakeQuota();
  void NoteMeasuredReply(int64_t now_ns) { last_reply_ns_ = now_ns; }

 private:
  void OnWatchdog();
  void ArmPacer(int64_t now_ns);
  void Finish(int64_t now_ns);
  void Publish();

  const RunOptions& options_;
  const Workload& workload_;
  const Plan plan_;
  std::atomic<bool>& stop_;
  std::atomic<uint64_t>& quota_taken_;
  asio::io_context io_;  // declared before the connections: their sockets use it
  asio::steady_timer deadline_;
  asio::steady_timer watchdog_;
  asio::steady_timer pacer_;
  std::vector<std::unique_ptr<Connection>> conns_;
  Counters counters_;
  Histogram latency_;
  bool stopping_ = false;
  bool quota_exhausted_ = false;
  int ticks_ = 0;
  int64_t last_reply_ns_ = 0;
  int64_t finished_ns_ = 0;
  std::atomic<bool> done_{false};
  std::mutex mu_;
  Snapshot published_;  // guarded by mu_
};

// ---- Connection ----

Connection::Connection(Shard& shard, tcp::endpoint endpoint, uint64_t seed, int64_t first_due_ns)
    : shard_(shard),
      endpoint_(endpoint),
      socket_(shard.io()),
      backoff_timer_(shard.io()),
      rng_(seed),
      next_due_ns_(first_due_ns),
      read_buf_(kReadBufferBytes) {}

void Connection::Connect() {
  if (shard_.stopping()) return;
  state_ = State::kConnecting;
  since_ns_ = NowNs();
  parser_ = std::make_unique<resp::ReplyParser>();
  const uint64_t gen = generation_;
  socket_.async_connect(endpoint_, [this, gen](const asio::error_code& ec) {
    if (gen != generation_) return;
    if (ec) return Fail("connect-failed");
    asio::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    state_ = State::kUp;
    ++shard_.live_counters().connects;
    if (shard_.options().readonly) {
      out_ += "*1\r\n$8\r\nREADONLY\r\n";
      const int64_t now = NowNs();
      inflight_.push_back({now, now, OpKind::kCustom, false, true});
    }
    Refill(NowNs());
    StartRead();
  });
}

bool Connection::can_send() const {
  return state_ == State::kUp && requests_inflight_ < shard_.options().pipeline &&
         !shard_.stopping();
}

bool Connection::Issue(int64_t start_ns, int64_t now_ns) {
  const bool measured = start_ns >= shard_.plan().measured_start_ns;
  if (measured && !shard_.TakeQuota()) return false;
  const OpKind kind = shard_.workload().AppendRequest(rng_, &out_);
  inflight_.push_back({start_ns, now_ns, kind, measured, false});
  ++requests_inflight_;
  return true;
}

void Connection::Refill(int64_t now_ns) {
  const int64_t interval = shard_.plan().interval_ns;
  // Each iteration adds one request and the pipeline bounds them.
  while (can_send()) {
    if (interval == 0) {
      if (!Issue(now_ns, now_ns)) break;
    } else {
      if (next_due_ns_ > now_ns || !Issue(next_due_ns_, now_ns)) break;
      next_due_ns_ += interval;
    }
  }
  Flush();
}

void Connection::Flush() {
  if (writing_ || out_.empty() || state_ != State::kUp) return;
  // Everything queued goes out in one write; requests queued meanwhile wait for the next.
  sending_.swap(out_);
  out_.clear();
  writing_ = true;
  const uint64_t gen = generation_;
  asio::async_write(socket_, asio::buffer(sending_),
                    [this, gen](const asio::error_code& ec, size_t) {
                      if (gen != generation_) return;
                      writing_ = false;
                      if (ec) return Fail("connection-closed");
                      Flush();
                    });
}

void Connection::StartRead() {
  const uint64_t gen = generation_;
  socket_.async_read_some(asio::buffer(read_buf_),
                          [this, gen](const asio::error_code& ec, size_t n) {
                            if (gen != generation_) return;
                            if (ec) return Fail("connection-closed");
                            OnRead(n);
                          });
}

void Connection::OnRead(size_t bytes) {
  const int64_t now = NowNs();
  const uint64_t gen = generation_;
  parser_->Feed(std::string_view(read_buf_.data(), bytes));
  resp::ReplyValue v;
  // Each kValue consumes buffered bytes, so the loop ends.
  for (;;) {
    const auto st = parser_->Next(&v);
    if (st == resp::ReplyParser::State::kNeedMore) break;
    if (st == resp::ReplyParser::State::kError || inflight_.empty()) {
      return Fail("protocol-error");
    }
    OnReply(v, now);
  }
  if (gen != generation_) return;
  Refill(now);
  StartRead();
}

void Connection::OnReply(const resp::ReplyValue& v, int64_t now_ns) {
  const InFlight req = inflight_.front();
  inflight_.pop_front();
  if (!req.control) --requests_inflight_;
  backoff_ns_ = kBackoffMinNs;  // the server answers: the next failure starts afresh
  // A refused READONLY is reported even during the warmup: it changes what the run measures.
  if (!req.measured && !req.control) return;
  Counters& c = shard_.live_counters();
  if (v.type == resp::ReplyValue::Type::kError) {
    CountError(&c, req.control ? "READONLY-" + ErrorKind(v.str) : ErrorKind(v.str), v.str);
  } else if (!req.control) {
    ++c.ok;
    c.reads += req.kind == OpKind::kRead;
    c.writes += req.kind == OpKind::kWrite;
    c.nil += v.type == resp::ReplyValue::Type::kNull;
    shard_.live_latency().Record(now_ns - req.start_ns);
  }
  if (!req.control && req.measured) shard_.NoteMeasuredReply(now_ns);
}

void Connection::CheckTimeout(int64_t now_ns) {
  const int64_t timeout = shard_.options().timeout_ns;
  if ((state_ == State::kConnecting && now_ns - since_ns_ > timeout) ||
      (state_ == State::kUp && !inflight_.empty() &&
       now_ns - inflight_.front().sent_ns > timeout)) {
    Fail("timeout");
  }
}

void Connection::Close() {
  ++generation_;
  asio::error_code ignored;
  socket_.close(ignored);
  backoff_timer_.cancel();
  state_ = State::kDown;
  writing_ = false;
  out_.clear();
  sending_.clear();
  inflight_.clear();
  requests_inflight_ = 0;
}

void Connection::Fail(const char* kind) {
  const int64_t now = NowNs();
  Counters& c = shard_.live_counters();
  if (now >= shard_.plan().measured_start_ns && !shard_.stopping()) {
    CountError(&c, kind);
    for (const InFlight& f : inflight_) c.lost += f.measured && !f.control;
  }
  Close();
  if (shard_.stopping()) return;
  const uint64_t gen = generation_;
  backoff_timer_.expires_at(AtNs(now + backoff_ns_));
  backoff_ns_ = std::min(backoff_ns_ * 2, kBackoffMaxNs);
  backoff_timer_.async_wait([this, gen](const asio::error_code& ec) {
    if (!ec && gen == generation_) Connect();
  });
}

// ---- Shard ----

bool Shard::TakeQuota() {
  if (options_.requests == 0) return true;
  if (quota_exhausted_) return false;
  if (quota_taken_.fetch_add(1) < options_.requests) return true;
  quota_exhausted_ = true;
  return false;
}

void Shard::Run() {
  for (auto& c : conns_) c->Connect();
  deadline_.expires_at(AtNs(plan_.end_ns));
  deadline_.async_wait([this](const asio::error_code& ec) {
    if (!ec) Finish(plan_.end_ns);
  });
  watchdog_.expires_at(AtNs(NowNs() + kWatchdogNs));
  watchdog_.async_wait([this](const asio::error_code& ec) {
    if (!ec) OnWatchdog();
  });
  if (plan_.interval_ns > 0) ArmPacer(NowNs());
  io_.run();
  Publish();
  done_.store(true);
}

void Shard::ArmPacer(int64_t now_ns) {
  // Wake at the earliest future due time of a connected connection (blocked or not: its
  // reply may free it before then). A connection already late and blocked sends from its
  // reply path, one down after reconnecting, so 1 ms is only a fallback.
  int64_t next = now_ns + kMs;
  for (auto& c : conns_) {
    if (c->up() && (c->can_send() || c->next_due_ns() > now_ns)) {
      next = std::min(next, c->next_due_ns());
    }
  }
  pacer_.expires_at(AtNs(std::max(next, now_ns + kPaceMinNs)));
  pacer_.async_wait([this](const asio::error_code& ec) {
    if (ec || stopping_) return;
    const int64_t now = NowNs();
    for (auto& c : conns_) c->Refill(now);
    ArmPacer(now);
  });
}

void Shard::OnWatchdog() {
  const int64_t now = NowNs();
  if (stop_.load()) return Finish(now);
  for (auto& c : conns_) c->CheckTimeout(now);
  if (quota_exhausted_ || (options_.requests > 0 && quota_taken_.load() >= options_.requests)) {
    quota_exhausted_ = true;
    bool idle = true;
    for (auto& c : conns_) idle = idle && c->idle();
    if (idle) return Finish(std::max(last_reply_ns_, plan_.measured_start_ns));
  }
  if (++ticks_ % kPublishEveryTicks == 0) Publish();
  watchdog_.expires_at(AtNs(now + kWatchdogNs));
  watchdog_.async_wait([this](const asio::error_code& ec) {
    if (!ec) OnWatchdog();
  });
}

void Shard::Finish(int64_t now_ns) {
  if (stopping_) return;
  stopping_ = true;
  finished_ns_ = std::min(now_ns, plan_.end_ns);
  // Requests still in flight are neither successes nor errors: the run ended before them.
  for (auto& c : conns_) c->Close();
  deadline_.cancel();
  watchdog_.cancel();
  pacer_.cancel();
  io_.stop();
}

void Shard::Publish() {
  std::lock_guard<std::mutex> lock(mu_);
  published_.counters = counters_;
  published_.latency.Reset();
  published_.latency.Merge(latency_);
}

uint64_t Shard::Backlog() const {
  // Once the --requests quota is used up, nothing more was due.
  if (plan_.interval_ns == 0 || quota_exhausted_) return 0;
  uint64_t n = 0;
  for (auto& c : conns_) {
    if (c->next_due_ns() < finished_ns_) {
      n += static_cast<uint64_t>((finished_ns_ - c->next_due_ns()) / plan_.interval_ns) + 1;
    }
  }
  return n;
}

Result<std::vector<tcp::endpoint>> Resolve(const std::vector<HostPort>& hosts) {
  asio::io_context io;
  tcp::resolver resolver(io);
  std::vector<tcp::endpoint> out;
  for (const HostPort& h : hosts) {
    asio::error_code ec;
    auto r = resolver.resolve(h.host, std::to_string(h.port), ec);
    if (ec || r.empty()) {
      return Status::Unavailable(fmt::format("cannot resolve {}: {}", h.host, ec.message()));
    }
    out.push_back(r.begin()->endpoint());
  }
  return out;
}

Status Validate(const RunOptions& o) {
  if (o.hosts.empty()) return Status::InvalidArgument("no --host");
  if (o.clients < 1 || o.clients > 100000) return Status::InvalidArgument("--clients: 1..100000");
  if (o.pipeline < 1 || o.pipeline > 100000) {
    return Status::InvalidArgument("--pipeline: 1..100000");
  }
  if (o.threads < 1 || o.threads > 256) return Status::InvalidArgument("--threads: 1..256");
  if (o.duration_ns <= 0) return Status::InvalidArgument("--duration must be positive");
  if (o.warmup_ns < 0) return Status::InvalidArgument("--warmup must not be negative");
  if (o.timeout_ns <= 0) return Status::InvalidArgument("--timeout must be positive");
  if (!(o.rate >= 0) || o.rate > 1e9) return Status::InvalidArgument("--rate: 0..1e9");
  return Status::Ok();
}

// Waits on the calling thread until every shard is done (each ends by plan.end_ns at the
// latest), forwarding an interrupt and reporting progress. Returns whether it was interrupted.
bool WatchShards(const std::vector<std::unique_ptr<Shard>>& shards, const Plan& plan,
                 std::atomic<bool>& stop, const std::atomic<bool>& interrupt,
                 const ProgressFn& on_progress) {
  bool interrupted = false;
  // Progress ticks: every second of the warmup, then every second of the measured period
  // counted from its start, so that no line mixes the two.
  const auto next_tick = [&plan](int64_t prev) {
    const int64_t t = prev + 1'000'000'000;
    return prev < plan.measured_start_ns && t >= plan.measured_start_ns
               ? plan.measured_start_ns + 1'000'000'000
               : t;
  };
  int64_t tick = next_tick(plan.start_ns);
  for (;;) {
    bool all_done = true;
    for (auto& s : shards) all_done = all_done && s->done();
    if (all_done) break;
    if (interrupt.load() && !stop.load()) {
      interrupted = true;
      stop.store(true);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const int64_t now = NowNs();
    if (on_progress && now >= tick) {
      Snapshot snap;
      for (auto& s : shards) s->MergeSnapshot(&snap);
      const bool warming = tick < plan.measured_start_ns;
      Progress p{now - plan.start_ns, warming ? 0 : now - plan.measured_start_ns, warming,
                 std::move(snap.counters), std::move(snap.latency)};
      on_progress(p);
      tick = next_tick(tick);
    }
  }
  return interrupted;
}

}  // namespace

uint64_t Counters::ErrorsTotal() const {
  uint64_t n = 0;
  for (const auto& [kind, count] : errors) n += count;
  return n;
}

void Counters::Merge(const Counters& o) {
  ok += o.ok;
  reads += o.reads;
  writes += o.writes;
  nil += o.nil;
  lost += o.lost;
  connects += o.connects;
  for (const auto& [kind, count] : o.errors) errors[kind] += count;
  for (const auto& [kind, message] : o.error_samples) error_samples.emplace(kind, message);
}

Result<RunResult> RunBench(const RunOptions& options, const ProgressFn& on_progress,
                           const std::atomic<bool>& interrupt) {
  SYNOD_RETURN_IF_ERROR(Validate(options));
  auto workload = Workload::Make(options.workload);
  if (!workload.ok()) return workload.status();
  auto endpoints = Resolve(options.hosts);
  if (!endpoints.ok()) return endpoints.status();

  Plan plan;
  plan.start_ns = NowNs();
  plan.measured_start_ns = plan.start_ns + options.warmup_ns;
  plan.end_ns = plan.measured_start_ns + options.duration_ns;
  if (options.rate > 0) {
    plan.interval_ns = std::max<int64_t>(1, std::llround(1e9 * options.clients / options.rate));
  }
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> quota_taken{0};
  std::vector<std::unique_ptr<Shard>> shards;
  const int threads = std::min(options.threads, options.clients);
  for (int t = 0; t < threads; ++t) {
    shards.push_back(std::make_unique<Shard>(options, *workload, plan, stop, quota_taken));
  }
  for (int i = 0; i < options.clients; ++i) {
    // Open loop: connections start evenly staggered over one interval, so the total send rate
    // is smooth rather than `clients` requests at once.
    const int64_t first_due = plan.start_ns + plan.interval_ns * i / options.clients;
    shards[static_cast<size_t>(i % threads)]->AddConnection(
        (*endpoints)[static_cast<size_t>(i) % endpoints->size()],
        options.seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(i), first_due);
  }
  std::vector<std::thread> workers;
  for (auto& s : shards) workers.emplace_back([&s] { s->Run(); });

  RunResult result;
  result.interrupted = WatchShards(shards, plan, stop, interrupt, on_progress);
  for (auto& w : workers) w.join();
  int64_t finished = plan.measured_start_ns;
  for (auto& s : shards) {
    result.counters.Merge(s->counters());
    result.latency.Merge(s->latency());
    result.backlog += s->Backlog();
    finished = std::max(finished, s->finished_ns());
  }
  result.measured_ns = finished - plan.measured_start_ns;
  return result;
}

}  // namespace synod::loadgen
