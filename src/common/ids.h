// Strong id types: a Term can never be passed where a LogIndex is expected.
//
// Each is a thin wrapper over uint64_t with the arithmetic Raft needs: ordering, +/- of a plain
// count, and increment. Mixing two kinds (Term + LogIndex) does not compile. `value()` gives the
// raw number for formatting, hashing and wire encoding.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <limits>
#include <ostream>

namespace synod {

template <typename Tag>
class StrongU64 {
 public:
  constexpr StrongU64() = default;
  constexpr explicit StrongU64(uint64_t v) : v_(v) {}

  constexpr uint64_t value() const { return v_; }

  constexpr auto operator<=>(const StrongU64&) const = default;

  constexpr StrongU64 operator+(uint64_t n) const { return StrongU64(v_ + n); }
  // REQUIRES: n <= value(); unsigned underflow is always a bug here.
  constexpr StrongU64 operator-(uint64_t n) const { return StrongU64(v_ - n); }
  constexpr StrongU64& operator++() {
    ++v_;
    return *this;
  }
  constexpr StrongU64& operator+=(uint64_t n) {
    v_ += n;
    return *this;
  }

  static constexpr StrongU64 Max() { return StrongU64(std::numeric_limits<uint64_t>::max()); }

 private:
  uint64_t v_ = 0;
};

template <typename Tag>
std::ostream& operator<<(std::ostream& os, StrongU64<Tag> v) {
  return os << v.value();
}

struct TermTag {};
struct LogIndexTag {};
struct NodeIdTag {};
struct GroupIdTag {};

// A Raft term. Term 0 means "no term yet".
using Term = StrongU64<TermTag>;
// A position in a Raft log. Index 0 means "before the first entry".
using LogIndex = StrongU64<LogIndexTag>;
// A node (replica) id within a Raft group. Id 0 means "none".
using NodeId = StrongU64<NodeIdTag>;

// A Raft group (a shard, or the meta shard) within a cluster. Id 0 means "none". A node hosts
// many groups; every Raft message travels with the id of its group, and every record a group
// keeps in the node's database carries it (storage/node_db.h).
using GroupId = StrongU64<GroupIdTag>;

inline constexpr NodeId kNoNode{0};
inline constexpr GroupId kNoGroup{0};

}  // namespace synod

template <typename Tag>
struct std::hash<synod::StrongU64<Tag>> {
  size_t operator()(synod::StrongU64<Tag> v) const noexcept {
    return std::hash<uint64_t>()(v.value());
  }
};
