// Workload: what `synod bench` sends — which keys, which values, which commands — encoded
// straight into RESP request bytes. Pure: no I/O, no clocks; randomness comes from a seeded
// Rng the caller owns, so a run's request sequence is a function of its seed.
//
// Thread-safety: a Workload is immutable after Make and may be shared by threads; each thread
// (connection) owns its Rng.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace synod::loadgen {

// A small fast generator (SplitMix64): a bench must not spend its time choosing keys.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) (Lemire's multiply-shift; the bias is below 2^-32 for n < 2^32).
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }
  // Uniform in [0, 1).
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

struct WorkloadOptions {
  uint64_t keys = 100000;    // key space: key indexes 0..keys-1, chosen uniformly
  size_t key_size = 8;       // every key is exactly this many bytes
  size_t value_size = 256;   // every SET value is this many bytes
  double read_fraction = 0;  // share of GETs; the rest are SETs. 0..1
  // When not empty, replaces GET/SET: the words of one command, where "__key__" and
  // "__value__" stand for a key and the value; without "__key__" the key is appended.
  std::vector<std::string> command;
};

enum class OpKind : uint8_t { kRead, kWrite, kCustom };

class Workload {
 public:
  // kInvalidArgument when the key space does not fit in key_size decimal digits, or a size or
  // fraction is out of range (the message names the flag's meaning).
  static Result<Workload> Make(const WorkloadOptions& options);

  // Appends one request, its key chosen by rng, to *out; returns its kind.
  OpKind AppendRequest(Rng& rng, std::string* out) const;

  // Key number `index` as sent: the zero-padded decimal index filling key_size bytes, after a
  // "key:" prefix when there is room for it. REQUIRES: index < keys.
  std::string Key(uint64_t index) const;

  const WorkloadOptions& options() const { return options_; }

 private:
  // One encoded request with holes for the key (all keys have the same length, so a request
  // is a copy of the template with the key written at fixed offsets).
  struct Template {
    std::string bytes;
    std::vector<size_t> key_offsets;
  };

  explicit Workload(const WorkloadOptions& options) : options_(options) {}
  Template Encode(const std::vector<std::string>& words) const;
  void WriteKey(uint64_t index, char* dst) const;
  void Append(const Template& t, Rng& rng, std::string* out) const;

  WorkloadOptions options_;
  size_t prefix_bytes_ = 0;  // 4 when keys start with "key:", else 0
  Template get_;
  Template set_;
  Template custom_;
};

// Parses "10s", "500ms", "2m", "1.5s", "250us" or a plain number of seconds into
// nanoseconds. kInvalidArgument for anything else or a negative duration.
Result<int64_t> ParseDuration(std::string_view text);

// Parses a read:write ratio such as "9:1" or "1:0" into the read fraction (9:1 -> 0.9).
// kInvalidArgument unless both parts are non-negative numbers with a positive sum.
Result<double> ParseRatio(std::string_view text);

// Splits a --command string into words at spaces; double quotes group words with spaces.
std::vector<std::string> SplitCommand(std::string_view text);

}  // namespace synod::loadgen
