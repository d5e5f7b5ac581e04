// The e2e suite's linearizability histories (history.h).
#include "history.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>

namespace synod::e2e {
namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// One client operation in docs/check.md's format.
struct Op {
  int client = 0;
  std::string op, key;
  std::optional<std::string> value;
  std::optional<std::string> expected;  // cas: the value it swaps from (nullopt: absent)
  int64_t call = 0, ret = 0;
  bool ok = true, unknown = false;

  Json ToJson() const {
    Json j = {{"client", client}, {"op", op},           {"key", key},         {"call", call},
              {"ok", ok},         {"unknown", unknown}, {"expected", nullptr}};
    if (expected) j["expected"] = *expected;
    j["value"] = value ? Json(*value) : Json(nullptr);
    j["return"] = unknown ? Json(nullptr) : Json(ret);
    return j;
  }
};

// What a reply says about a write's outcome (docs/check.md): OK happened; CLUSTERDOWN promises
// "it was not applied"; TRYAGAIN and a lost connection leave it unknown.
void ClassifyWrite(const Reply& r, Op* op) {
  if (r.IsOk() || r.type == REDIS_REPLY_INTEGER) return;
  if (r.ErrorStartsWith("CLUSTERDOWN")) {
    op->ok = false;
  } else {
    op->unknown = true;
  }
}

// A client of the history: random GET / SET / DEL on a few keys through one node, moving to
// the next when its connection breaks.
class HistoryClient {
 public:
  HistoryClient(int id, std::vector<uint16_t> ports, int64_t epoch_ns, int keys, int pause_ms,
                int script_cas_percent)
      : script_cas_percent_(script_cas_percent),
        id_(id),
        ports_(std::move(ports)),
        epoch_ns_(epoch_ns),
        keys_(keys),
        pause_ms_(pause_ms),
        rng_(1000 + id) {}

  void Run(const std::atomic<bool>& stop, size_t ops_max) {
    auto conn = std::make_unique<Redis>(ports_[0], 3000);
    size_t next = 0;
    for (size_t n = 0; !stop && n < ops_max; ++n) {
      Op op = Next(n);
      const Reply r = Execute(*conn, &op);
      ops_.push_back(op);
      if (r.IsError() && !r.ErrorStartsWith("CLUSTERDOWN") && !r.ErrorStartsWith("TRYAGAIN")) {
        unexpected_.push_back(op.op + " " + op.key + ": " + r.str);
      }
      // A broken connection needs a new one. So does one whose session the node refuses
      // (reported above as unexpected): the history goes on through a fresh session.
      if (!conn->connected() || r.ErrorStartsWith("ERR session expired")) {
        next = (next + 1) % ports_.size();
        conn = std::make_unique<Redis>(ports_[next], 3000);
      }
      // A few hundred operations a second per client: enough overlap to matter, and the
      // history lasts through every fault without exceeding ops_max.
      const bool failed = r.IsError() || r.type == Reply::kIoError;
      std::this_thread::sleep_for(std::chrono::milliseconds(failed ? 20 : pause_ms_));
    }
  }

  const std::vector<Op>& ops() const { return ops_; }
  const std::vector<std::string>& unexpected() const { return unexpected_; }

 private:
  Op Next(size_t n) {
    Op op;
    op.client = id_;
    op.key = "k" + std::to_string(rng_() % static_cast<unsigned>(keys_));
    if (script_cas_percent_ > 0 && static_cast<int>(rng_() % 100) < script_cas_percent_) {
      // A compare-and-set as an EVAL script, from the value this client last saw.
      op.op = "cas";
      op.expected = last_seen_[op.key];
      op.value = "c" + std::to_string(id_) + "-" + std::to_string(n);
      return op;
    }
    const unsigned dice = rng_() % 10;
    if (dice < 5) {
      op.op = "get";
    } else if (dice < 9) {
      op.op = "put";
      op.value = "c" + std::to_string(id_) + "-" + std::to_string(n);
    } else {
      op.op = "del";
    }
    return op;
  }

  Reply Execute(Redis& conn, Op* op) {
    std::vector<std::string> argv;
    if (op->op == "get") argv = {"GET", op->key};
    if (op->op == "put") argv = {"SET", op->key, *op->value};
    if (op->op == "del") argv = {"DEL", op->key};
    if (op->op == "cas") {
      argv = {
          "EVAL",    kCasScript, "1", op->key, op->expected ? "1" : "0", op->expected.value_or(""),
          *op->value};
    }
    op->call = NowNs() - epoch_ns_;
    const Reply r = conn.Command(argv);
    op->ret = NowNs() - epoch_ns_;
    if (op->op == "cas") {
      // 1 swapped, 0 did not (a result the checker judges); any error is recorded as of
      // unknown outcome (safe even when it promised nothing was applied).
      if (r.type == REDIS_REPLY_INTEGER) {
        op->ok = r.integer == 1;
        if (op->ok) last_seen_[op->key] = op->value;
      } else {
        op->unknown = true;
      }
      return r;
    }
    if (op->op == "get" && r.type == REDIS_REPLY_STRING) last_seen_[op->key] = r.str;
    if (op->op == "get" && r.IsNil()) last_seen_[op->key] = std::nullopt;
    if (op->op != "get") {
      ClassifyWrite(r, op);
    } else if (r.type == REDIS_REPLY_STRING) {
      op->value = r.str;
    } else if (!r.IsNil()) {
      op->ok = false;  // an error: nothing was learned
    }
    return r;
  }

  static constexpr const char* kCasScript =
      "local v = redis.call('GET', KEYS[1]) "
      "local ok = (ARGV[1] == '0' and v == false) or (ARGV[1] == '1' and v == ARGV[2]) "
      "if ok then redis.call('SET', KEYS[1], ARGV[3]) return 1 end return 0";
  const int script_cas_percent_;
  std::map<std::string, std::optional<std::string>> last_seen_;
  const int id_;
  const std::vector<uint16_t> ports_;
  const int64_t epoch_ns_;
  const int keys_;
  const int pause_ms_;
  std::mt19937 rng_;
  std::vector<Op> ops_;
  std::vector<std::string> unexpected_;
};

}  // namespace

void CheckHistoryUnderFaults(TestCluster& c, int keys, const std::function<void()>& faults,
                             std::vector<uint64_t> via, int pause_ms, int script_cas_percent) {
  const std::vector<uint64_t> ids = via.empty() ? c.ids() : std::move(via);
  const int64_t epoch = NowNs();
  std::vector<std::unique_ptr<HistoryClient>> clients;
  for (int i = 0; i < 6; ++i) {
    std::vector<uint16_t> ports;
    for (size_t k = 0; k < ids.size(); ++k) {
      ports.push_back(c.client_port(ids[(static_cast<size_t>(i) + k) % ids.size()]));
    }
    clients.push_back(
        std::make_unique<HistoryClient>(i + 1, ports, epoch, keys, pause_ms, script_cas_percent));
  }
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (auto& cl : clients) threads.emplace_back([&cl, &stop] { cl->Run(stop, 20000); });
  faults();
  stop = true;
  for (auto& t : threads) t.join();

  const std::string path = c.dir() + "/history.jsonl";
  size_t total = 0, ok = 0, unknown = 0;
  {
    std::ofstream out(path);
    for (auto& cl : clients) {
      for (const Op& op : cl->ops()) {
        out << op.ToJson().dump() << "\n";
        ++total;
        ok += op.ok && !op.unknown;
        unknown += op.unknown;
      }
      EXPECT_TRUE(cl->unexpected().empty()) << ::testing::PrintToString(cl->unexpected());
    }
  }
  std::cerr << "e2e: history of " << total << " operations (" << ok << " ok, " << unknown
            << " unknown)\n";
  EXPECT_GT(ok, 500u) << "too few operations succeeded for the history to mean much";
  const ProgramResult check =
      RunProgram({c.synod_bin(), "check", "--timeout-seconds", "60", path}, 90000);
  std::cerr << check.out << check.err;
  EXPECT_EQ(check.exit_code, 0) << "synod check: 0 linearizable, 1 not, 2 unknown, 3 bad input";
  if (check.exit_code != 0 && std::getenv("SYNOD_E2E_KEEP") == nullptr) {
    std::cerr << "e2e: set SYNOD_E2E_KEEP=1 to keep " << path << "\n";
  }
}

}  // namespace synod::e2e
