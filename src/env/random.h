// Random: the only source of randomness the pure layers may use.
//
// A seeded xoshiro256** generator: the same seed gives the same sequence on every machine and
// build, which is what lets one simulation seed reproduce a whole run (FoundationDB keeps its
// deterministic random apart from any non-deterministic one for the same reason).
//
// Thread-safety: none; each owner keeps its own instance (Fork() derives independent streams).
#pragma once

#include <cstdint>

#include "common/assert.h"

namespace synod::env {

class Random {
 public:
  explicit Random(uint64_t seed) {
    // Expand the seed with splitmix64 so that nearby seeds give unrelated streams.
    uint64_t x = seed;
    for (uint64_t& s : s_) {
      x += 0x9E3779B97F4A7C15ull;
      uint64_t z = x;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      s = z ^ (z >> 31);
    }
  }

  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, n). REQUIRES: n > 0.
  uint64_t Uniform(uint64_t n) {
    SYNOD_ASSERT(n > 0);
    return Next() % n;
  }
  // Uniform in [lo, hi]. REQUIRES: lo <= hi.
  int64_t Range(int64_t lo, int64_t hi) {
    SYNOD_ASSERT(lo <= hi);
    return lo + static_cast<int64_t>(Uniform(static_cast<uint64_t>(hi - lo) + 1));
  }
  // True with probability p (p <= 0 never, p >= 1 always).
  bool Chance(double p) {
    if (p <= 0) return false;
    if (p >= 1) return true;
    return static_cast<double>(Next() >> 11) * 0x1.0p-53 < p;
  }
  // An independent generator derived from this one's stream.
  Random Fork() { return Random(Next()); }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace synod::env
