#include "cluster/logic/layout.h"

#include <algorithm>
#include <charconv>
#include <set>
#include <string>

namespace synod::cluster {

Result<std::vector<ShardDescriptor>> InitialLayout(std::vector<NodeId> nodes, int shards,
                                                   int replicas) {
  std::sort(nodes.begin(), nodes.end());
  if (nodes.empty()) return Status::InvalidArgument("a layout needs at least one node");
  if (nodes.front() == kNoNode || std::adjacent_find(nodes.begin(), nodes.end()) != nodes.end()) {
    return Status::InvalidArgument("node ids must be distinct and >= 1");
  }
  if (shards < 1 || shards > static_cast<int>(kSlotCount)) {
    return Status::InvalidArgument("--shards must be between 1 and " + std::to_string(kSlotCount) +
                                   ", not " + std::to_string(shards));
  }
  if (replicas < 1) {
    return Status::InvalidArgument("--replicas must be at least 1, not " +
                                   std::to_string(replicas));
  }
  const size_t n = nodes.size();
  const size_t r = std::min(static_cast<size_t>(replicas), n);
  const uint32_t base = kSlotCount / static_cast<uint32_t>(shards);
  const uint32_t extra = kSlotCount % static_cast<uint32_t>(shards);
  std::vector<ShardDescriptor> out;
  out.reserve(static_cast<size_t>(shards));
  uint32_t first = 0;
  for (uint32_t i = 0; i < static_cast<uint32_t>(shards); ++i) {
    const uint32_t size = base + (i < extra ? 1 : 0);
    ShardDescriptor d;
    d.group = GroupId(kFirstShardGroup.value() + i);
    d.first_slot = static_cast<uint16_t>(first);
    d.last_slot = static_cast<uint16_t>(first + size - 1);
    d.epoch = 1;
    for (size_t k = 0; k < r; ++k) d.voters.push_back(nodes[(i + k) % n]);
    out.push_back(std::move(d));
    first += size;
  }
  return out;
}

ShardDescriptor InitialMetaShard(std::vector<NodeId> nodes) {
  std::sort(nodes.begin(), nodes.end());
  ShardDescriptor d;
  d.group = kMetaGroup;
  d.epoch = 1;
  const size_t r = std::min(nodes.size(), static_cast<size_t>(kMetaReplicasMax));
  d.voters.assign(nodes.begin(), nodes.begin() + static_cast<std::ptrdiff_t>(r));
  return d;
}

Result<Layout> MakeInitialLayout(const std::vector<NodeId>& nodes, int shards, int replicas) {
  Result<std::vector<ShardDescriptor>> data = InitialLayout(nodes, shards, replicas);
  if (!data.ok()) return data.status();
  Layout l{InitialMetaShard(nodes), std::move(data).value()};
  SYNOD_RETURN_IF_ERROR(ValidateLayout(l));
  return l;
}

namespace {

Status CheckMembers(const ShardDescriptor& d) {
  std::set<NodeId> seen;
  if (d.voters.empty() != (d.merged_into != kNoGroup)) {
    return Status::InvalidArgument(
        "shard " + std::to_string(d.group.value()) +
        (d.voters.empty() ? " has no voters" : " is merged and has voters"));
  }
  for (const auto* list : {&d.voters, &d.learners}) {
    for (NodeId n : *list) {
      if (n == kNoNode || !seen.insert(n).second) {
        return Status::InvalidArgument("shard " + std::to_string(d.group.value()) + " lists node " +
                                       std::to_string(n.value()) + " twice or a node 0");
      }
    }
  }
  return Status::Ok();
}

std::string JoinIds(const std::vector<NodeId>& ids) {
  std::string out;
  for (NodeId n : ids) {
    if (!out.empty()) out.push_back(',');
    out += std::to_string(n.value());
  }
  return out;
}

bool ParseU64(std::string_view s, uint64_t* v) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && p == s.data() + s.size();
}

bool ParseIds(std::string_view s, std::vector<NodeId>* out) {
  while (!s.empty()) {
    const size_t comma = s.find(',');
    uint64_t v = 0;
    if (!ParseU64(s.substr(0, comma), &v)) return false;
    out->emplace_back(v);
    s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
  }
  return true;
}

}  // namespace

Status ValidateLayout(const Layout& l) {
  if (l.meta.group != kMetaGroup) return Status::InvalidArgument("the meta shard must be group 1");
  SYNOD_RETURN_IF_ERROR(CheckMembers(l.meta));
  if (l.shards.empty()) return Status::InvalidArgument("a layout needs at least one data shard");
  std::set<GroupId> groups{kMetaGroup};
  uint32_t next = 0;
  for (const ShardDescriptor& d : l.shards) {
    if (d.group == kNoGroup || !groups.insert(d.group).second) {
      return Status::InvalidArgument("shard group " + std::to_string(d.group.value()) +
                                     " is 0, the meta shard's, or repeated");
    }
    if (d.first_slot != next || d.last_slot < d.first_slot) {
      return Status::InvalidArgument("shard " + std::to_string(d.group.value()) + " owns slots " +
                                     std::to_string(d.first_slot) + "-" +
                                     std::to_string(d.last_slot) + ", expected to start at " +
                                     std::to_string(next));
    }
    SYNOD_RETURN_IF_ERROR(CheckMembers(d));
    next = uint32_t{d.last_slot} + 1;
  }
  if (next != kSlotCount) {
    return Status::InvalidArgument("the shards end at slot " + std::to_string(next - 1) + ", not " +
                                   std::to_string(kSlotCount - 1));
  }
  return Status::Ok();
}

std::string EncodeDescriptor(const ShardDescriptor& d) {
  const bool meta = d.group == kMetaGroup;
  std::string out =
      std::string(meta ? "meta" : "shard") + " group=" + std::to_string(d.group.value());
  if (!meta) out += " slots=" + std::to_string(d.first_slot) + "-" + std::to_string(d.last_slot);
  out += " epoch=" + std::to_string(d.epoch) + " voters=" + JoinIds(d.voters) +
         " learners=" + JoinIds(d.learners);
  if (d.merged_into != kNoGroup) out += " merged=" + std::to_string(d.merged_into.value());
  return out;
}

std::string EncodeLayout(const Layout& l) {
  std::string out = EncodeDescriptor(l.meta) + "\n";
  for (const ShardDescriptor& d : l.shards) out += EncodeDescriptor(d) + "\n";
  return out;
}

namespace {

// One line; *is_meta says which kind it was.
Result<ShardDescriptor> ParseLine(std::string_view line, bool* is_meta) {
  auto bad = [&line](std::string_view why) {
    return Status::InvalidArgument("bad layout line \"" + std::string(line.substr(0, 120)) +
                                   "\": " + std::string(why));
  };
  const size_t sp = line.find(' ');
  const std::string_view what = line.substr(0, sp);
  if (what != "meta" && what != "shard") return bad("neither meta nor shard");
  ShardDescriptor d;
  bool have_group = false, have_slots = false;
  std::string_view rest = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
  while (!rest.empty()) {
    const size_t end = rest.find(' ');
    const std::string_view field = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    const size_t eq = field.find('=');
    if (eq == std::string_view::npos) return bad("a field without '='");
    const std::string_view key = field.substr(0, eq), value = field.substr(eq + 1);
    uint64_t v = 0;
    if (key == "group") {
      if (!ParseU64(value, &v)) return bad("group");
      d.group = GroupId(v);
      have_group = true;
    } else if (key == "slots") {
      const size_t dash = value.find('-');
      uint64_t a = 0, b = 0;
      if (dash == std::string_view::npos || !ParseU64(value.substr(0, dash), &a) ||
          !ParseU64(value.substr(dash + 1), &b) || a >= kSlotCount || b >= kSlotCount) {
        return bad("slots");
      }
      d.first_slot = static_cast<uint16_t>(a);
      d.last_slot = static_cast<uint16_t>(b);
      have_slots = true;
    } else if (key == "epoch") {
      if (!ParseU64(value, &v)) return bad("epoch");
      d.epoch = v;
    } else if (key == "voters") {
      if (!ParseIds(value, &d.voters)) return bad("voters");
    } else if (key == "learners") {
      if (!ParseIds(value, &d.learners)) return bad("learners");
    } else if (key == "merged") {
      if (!ParseU64(value, &v) || v == 0) return bad("merged");
      d.merged_into = GroupId(v);
    } else {
      return bad("unknown field");
    }
  }
  if (!have_group) return bad("no group");
  *is_meta = what == "meta";
  if (*is_meta && (have_slots || d.group != kMetaGroup)) {
    return bad("a meta line with slots or another group");
  }
  if (!*is_meta && (!have_slots || d.group == kMetaGroup)) return bad("no slots, or group 1");
  return d;
}

}  // namespace

Result<ShardDescriptor> DecodeDescriptor(std::string_view line) {
  bool is_meta = false;
  Result<ShardDescriptor> d = ParseLine(line, &is_meta);
  if (!d.ok()) return d.status();
  SYNOD_RETURN_IF_ERROR(CheckMembers(*d));
  if (!is_meta && d->last_slot < d->first_slot) {
    return Status::InvalidArgument("shard " + std::to_string(d->group.value()) +
                                   " ends before it starts");
  }
  return d;
}

Result<Layout> DecodeLayout(std::string_view text) {
  Layout l;
  bool have_meta = false;
  size_t lines = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.empty()) continue;
    if (++lines > kSlotCount + 1) return Status::InvalidArgument("layout has too many lines");
    bool is_meta = false;
    Result<ShardDescriptor> d = ParseLine(line, &is_meta);
    if (!d.ok()) return d.status();
    if (is_meta) {
      if (have_meta) return Status::InvalidArgument("layout has a second meta shard");
      have_meta = true;
      l.meta = std::move(d).value();
    } else {
      l.shards.push_back(std::move(d).value());
    }
  }
  if (!have_meta) return Status::InvalidArgument("layout has no meta shard");
  SYNOD_RETURN_IF_ERROR(ValidateLayout(l));
  return l;
}

bool SameMembers(const ShardDescriptor& d, const std::vector<NodeId>& voters,
                 const std::vector<NodeId>& learners) {
  auto sorted = [](std::vector<NodeId> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  return sorted(d.voters) == sorted(voters) && sorted(d.learners) == sorted(learners);
}

ShardDescriptor WithMembers(const ShardDescriptor& d, std::vector<NodeId> voters,
                            std::vector<NodeId> learners) {
  ShardDescriptor out = d;
  std::sort(voters.begin(), voters.end());
  std::sort(learners.begin(), learners.end());
  const NodeId preferred = d.voters.empty() ? kNoNode : d.voters.front();
  auto it = std::find(voters.begin(), voters.end(), preferred);
  if (it != voters.end()) std::rotate(voters.begin(), it, it + 1);
  out.voters = std::move(voters);
  out.learners = std::move(learners);
  ++out.epoch;
  return out;
}

}  // namespace synod::cluster
