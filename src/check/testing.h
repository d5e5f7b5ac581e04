// Helpers for tests of the checker and of code that records histories: terse constructors
// for operations, and a generator of random histories that are linearizable by construction.
//
// Thread-safety: free functions over values.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>

#include "check/operation.h"

namespace synod::check::testing {

using Value = std::optional<std::string>;

inline Operation MakeOp(OpType type, int64_t client, std::string key, Value value, Value expected,
                        int64_t call_ns, int64_t return_ns, bool ok = true) {
  return Operation{.client = client,
                   .type = type,
                   .key = std::move(key),
                   .value = std::move(value),
                   .expected = std::move(expected),
                   .call_ns = call_ns,
                   .return_ns = return_ns,
                   .ok = ok,
                   .unknown = false};
}
inline Operation Get(int64_t client, std::string key, Value read, int64_t call, int64_t ret) {
  return MakeOp(OpType::kGet, client, std::move(key), std::move(read), {}, call, ret);
}
inline Operation Put(int64_t client, std::string key, std::string v, int64_t call, int64_t ret) {
  return MakeOp(OpType::kPut, client, std::move(key), std::move(v), {}, call, ret);
}
inline Operation Del(int64_t client, std::string key, int64_t call, int64_t ret) {
  return MakeOp(OpType::kDel, client, std::move(key), {}, {}, call, ret);
}
inline Operation Cas(int64_t client, std::string key, Value expected, Value v, bool ok,
                     int64_t call, int64_t ret) {
  return MakeOp(OpType::kCas, client, std::move(key), std::move(v), std::move(expected), call, ret,
                ok);
}
// The same operation with its outcome unknown.
inline Operation Unknown(Operation op) {
  op.unknown = true;
  if (op.type == OpType::kGet) op.value.reset();
  return op;
}

struct GenerateOptions {
  int clients = 10;
  int ops_per_client = 100;
  int keys = 5;
  double unknown_fraction = 0.02;  // of operations whose outcome is then unknown
  double failed_fraction = 0.02;   // of puts that definitely failed (ok:false, no effect)
  int64_t gap_ns_max = 20;         // between a client's reply and its next call
  int64_t duration_ns_max = 100;
  uint64_t seed = 1;
};

// A random history that is linearizable by construction: every operation gets a random instant
// inside [call, return]; replaying them in that order on a map gives the results. Each client
// runs one operation at a time. Writes carry unique values; an unknown write takes effect or
// not at random.
inline History GenerateLinearizableHistory(const GenerateOptions& o) {
  std::mt19937_64 rng(o.seed);
  auto uniform = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  History h;
  std::vector<std::pair<int64_t, size_t>> points;  // (instant, index)
  for (int c = 0; c < o.clients; ++c) {
    int64_t t = 0;
    for (int j = 0; j < o.ops_per_client; ++j) {
      Operation op;
      op.client = c;
      op.type = static_cast<OpType>(uniform(0, 3));
      op.key = "k" + std::to_string(uniform(0, o.keys - 1));
      op.call_ns = t + uniform(0, o.gap_ns_max);
      op.return_ns = op.call_ns + uniform(0, o.duration_ns_max);
      if (op.type == OpType::kPut || op.type == OpType::kCas) {
        op.value = "c" + std::to_string(c) + "-" + std::to_string(j);
      }
      op.unknown = chance(o.unknown_fraction);
      op.ok = !(op.type == OpType::kPut && !op.unknown && chance(o.failed_fraction));
      t = op.return_ns;
      points.emplace_back(uniform(op.call_ns, op.return_ns), h.size());
      h.push_back(std::move(op));
    }
  }
  std::sort(points.begin(), points.end());
  std::map<std::string, Value> store;
  std::vector<Value> written;  // for cas comparisons that fail
  for (const auto& [instant, i] : points) {
    Operation& op = h[i];
    Value& cur = store[op.key];
    const bool applies = op.ok && (!op.unknown || chance(0.5));
    switch (op.type) {
      case OpType::kGet:
        if (!op.unknown) op.value = cur;
        break;
      case OpType::kPut:
        if (applies) cur = op.value;
        written.push_back(op.value);
        break;
      case OpType::kDel:
        if (applies) cur.reset();
        break;
      case OpType::kCas:
        op.expected = chance(0.5) || written.empty()
                          ? cur
                          : written[uniform(0, static_cast<int64_t>(written.size()) - 1)];
        op.ok = op.expected == cur;
        if (op.ok && applies) cur = op.value;
        if (op.unknown) op.ok = true;
        break;
    }
  }
  return h;
}

}  // namespace synod::check::testing
