#include "cluster/logic/placement.h"

#include <algorithm>
#include <map>
#include <optional>

#include "cluster/logic/layout.h"

namespace synod::cluster {

namespace {

enum class NodeState : uint8_t { kUsable, kDead, kDraining, kUnlisted };

bool Has(const std::vector<NodeId>& v, NodeId n) {
  return std::find(v.begin(), v.end(), n) != v.end();
}

std::vector<NodeId> MembersOf(const ShardDescriptor& d) {
  std::vector<NodeId> out = d.voters;
  out.insert(out.end(), d.learners.begin(), d.learners.end());
  return out;
}

class Planner {
 public:
  explicit Planner(const PlacementInput& in) : in_(in), budget_(in.max_changes) {
    budget_ -= static_cast<int>(in.busy.size());
    for (const PlacementNode& n : in.nodes) {
      nodes_[n.id] = &n;
      if (State(n.id) == NodeState::kUsable) {
        usable_.push_back(n.id);
        load_[n.id] = 0;
      }
    }
    for (const ShardDescriptor& d : in.shards) {
      for (NodeId m : MembersOf(d)) {
        if (load_.contains(m)) ++load_[m];
      }
    }
  }

  std::vector<PlacementAction> Run() {
    // 1. Repairs: the meta shard first, then the data shards.
    const int usable = static_cast<int>(usable_.size());
    Repair(in_.meta, std::min(in_.meta_replicas, usable), /*max_voters=*/in_.meta_replicas);
    for (const ShardDescriptor& d : in_.shards) {
      Repair(d, std::min(in_.replicas, usable), in_.replicas);
    }
    // 2. Balance, on a settled cluster only: replica counts, then bytes.
    if (out_.empty() && in_.busy.empty()) Balance();
    if (out_.empty() && in_.busy.empty()) BalanceBytes();
    // 3. Leaders, of the shards no membership action touches.
    BalanceLeaders();
    // Drained nodes leave the node list.
    for (const PlacementNode& n : in_.nodes) {
      if (!n.draining) continue;
      bool holds = Has(MembersOf(in_.meta), n.id);
      for (const ShardDescriptor& d : in_.shards) holds = holds || Has(MembersOf(d), n.id);
      if (!holds)
        out_.push_back({PlacementAction::Kind::kForget, GroupId(), n.id, kNoNode, "drained"});
    }
    return std::move(out_);
  }

 private:
  NodeState State(NodeId n) const {
    auto it = nodes_.find(n);
    if (it == nodes_.end()) return NodeState::kUnlisted;
    if (it->second->draining) return NodeState::kDraining;
    if (!it->second->live) return NodeState::kDead;
    return NodeState::kUsable;
  }
  std::string Zone(NodeId n) const {
    auto it = nodes_.find(n);
    return it == nodes_.end() ? std::string() : it->second->zone;
  }
  static const char* Reason(NodeState s) {
    switch (s) {
      case NodeState::kDead:
        return "dead";
      case NodeState::kDraining:
        return "draining";
      case NodeState::kUnlisted:
        return "unlisted";
      case NodeState::kUsable:
        break;
    }
    return "usable";
  }

  // A node's zone, an unlabelled node being a zone of its own.
  std::string ZoneKey(NodeId n) const {
    std::string z = Zone(n);
    return z.empty() ? "#" + std::to_string(n.value()) : z;
  }
  // The zones of d's members other than `except`.
  std::set<std::string> ZonesOf(const ShardDescriptor& d, NodeId except) const {
    std::set<std::string> z;
    for (NodeId m : MembersOf(d)) {
      if (m != except) z.insert(ZoneKey(m));
    }
    return z;
  }

  // The best usable node for a replica of d that replaces `replaced` (kNoNode: an addition).
  std::optional<NodeId> BestTarget(const ShardDescriptor& d, NodeId replaced) const {
    std::vector<NodeId> candidates;
    for (NodeId n : usable_) {
      if (!Has(MembersOf(d), n)) candidates.push_back(n);
    }
    if (candidates.empty()) return std::nullopt;
    const std::set<std::string> zones = ZonesOf(d, replaced);
    std::vector<NodeId> new_zone;
    for (NodeId n : candidates) {
      if (!zones.contains(ZoneKey(n))) new_zone.push_back(n);
    }
    if (!new_zone.empty()) candidates = std::move(new_zone);
    return *std::min_element(candidates.begin(), candidates.end(), [&](NodeId a, NodeId b) {
      const int la = load_.at(a), lb = load_.at(b);
      return la != lb ? la < lb : a < b;
    });
  }

  int Load(NodeId n) const {
    auto it = load_.find(n);
    return it == load_.end() ? 0 : it->second;
  }

  bool Take() {
    if (budget_ <= 0) return false;
    --budget_;
    return true;
  }
  void Plan(PlacementAction a) {
    if (a.kind != PlacementAction::Kind::kLead) {
      touched_.insert(a.group);
      if (a.group != kMetaGroup) {
        if (a.to != kNoNode && load_.contains(a.to)) ++load_[a.to];
        if (a.from != kNoNode && load_.contains(a.from)) --load_[a.from];
      }
    }
    out_.push_back(std::move(a));
  }

  void Repair(const ShardDescriptor& d, int target, int max_voters) {
    using K = PlacementAction::Kind;
    if (in_.busy.contains(d.group) || d.voters.empty()) return;
    // A learner is being caught up (the leader promotes it), unless its node is unusable.
    if (!d.learners.empty()) {
      for (NodeId l : d.learners) {
        const NodeState s = State(l);
        if (s == NodeState::kUsable) continue;
        if (Take()) Plan({K::kRemove, d.group, l, kNoNode, std::string("learner ") + Reason(s)});
        break;
      }
      return;
    }
    // A voter on a node that is not usable: replaced, or removed when it is to go anyway.
    for (NodeId v : d.voters) {
      const NodeState s = State(v);
      if (s == NodeState::kUsable) continue;
      if (std::optional<NodeId> t = BestTarget(d, v)) {
        if (Take()) Plan({K::kMove, d.group, v, *t, Reason(s)});
        return;
      }
      if (s != NodeState::kDead && d.voters.size() > 1) {
        if (Take()) Plan({K::kRemove, d.group, v, kNoNode, Reason(s)});
        return;
      }
    }
    int usable_members = 0;
    for (NodeId m : d.voters) usable_members += State(m) == NodeState::kUsable ? 1 : 0;
    if (usable_members < target) {
      if (std::optional<NodeId> t = BestTarget(d, kNoNode)) {
        if (Take()) Plan({K::kAdd, d.group, kNoNode, *t, "under-replicated"});
      }
      return;
    }
    if (static_cast<int>(d.voters.size()) > max_voters) {
      // The most loaded node's, not the preferred leader's while another will do.
      std::vector<NodeId> choices(d.voters.begin() + 1, d.voters.end());
      const NodeId victim =
          *std::max_element(choices.begin(), choices.end(), [&](NodeId a, NodeId b) {
            const int la = Load(a), lb = Load(b);
            return la != lb ? la < lb : a < b;
          });
      if (Take()) Plan({K::kRemove, d.group, victim, kNoNode, "over-replicated"});
      return;
    }
    // Two replicas in one zone while a usable node of a zone the shard lacks exists.
    std::map<std::string, std::vector<NodeId>> by_zone;
    for (NodeId m : d.voters) {
      if (!Zone(m).empty()) by_zone[Zone(m)].push_back(m);
    }
    for (const auto& [zone, members] : by_zone) {
      if (members.size() < 2) continue;
      // The one to move: not the preferred leader, the most loaded.
      NodeId from = kNoNode;
      for (NodeId m : members) {
        if (m == d.voters.front()) continue;
        if (from == kNoNode || Load(m) > Load(from)) from = m;
      }
      if (from == kNoNode) continue;
      std::optional<NodeId> t = BestTarget(d, from);
      if (t && !ZonesOf(d, from).contains(ZoneKey(*t))) {
        if (Take()) Plan({K::kMove, d.group, from, *t, "zone"});
        return;
      }
    }
  }

  void Balance() {
    while (budget_ > 0 && usable_.size() >= 2) {
      std::vector<NodeId> by_load = usable_;
      std::sort(by_load.begin(), by_load.end(), [&](NodeId a, NodeId b) {
        return load_.at(a) != load_.at(b) ? load_.at(a) < load_.at(b) : a < b;
      });
      std::optional<PlacementAction> move;
      for (auto from = by_load.rbegin(); from != by_load.rend() && !move; ++from) {
        for (NodeId to : by_load) {
          if (load_.at(*from) - load_.at(to) < 2) break;
          if (const ShardDescriptor* d = MovableShard(*from, to)) {
            move = PlacementAction{PlacementAction::Kind::kMove, d->group, *from, to, "balance"};
            break;
          }
        }
      }
      if (!move) return;
      Take();
      Plan(std::move(*move));
    }
  }

  // Rule 2b (placement.h). Node bytes count every voter's shard.
  void BalanceBytes() {
    if (budget_ < 1 || usable_.size() < 2) return;
    std::map<NodeId, uint64_t> held;
    for (NodeId n : usable_) held[n] = 0;
    for (const ShardDescriptor& d : in_.shards) {
      auto b = in_.bytes.find(d.group);
      if (b == in_.bytes.end()) return;  // not every shard reported yet
      for (NodeId v : d.voters) {
        if (held.contains(v)) held[v] += b->second;
      }
    }
    uint64_t total = 0;
    NodeId heavy = usable_.front();
    NodeId light = usable_.front();
    for (const auto& [n, h] : held) {
      total += h;
      if (h > held[heavy] || (h == held[heavy] && n < heavy)) heavy = n;
      if (h < held[light] || (h == held[light] && n < light)) light = n;
    }
    const uint64_t mean = total / held.size();
    const uint64_t gap = held[heavy] - held[light];
    if (held[heavy] * 10 <= mean * 11 || gap < kBytesSpreadMin) return;
    const auto bytes = [&](const ShardDescriptor& d) { return in_.bytes.at(d.group); };
    const auto movable = [&](NodeId from, NodeId to) {
      std::vector<const ShardDescriptor*> out;
      for (const ShardDescriptor& d : in_.shards) {
        if (CanMove(d, from, to)) out.push_back(&d);
      }
      return out;
    };
    const std::vector<const ShardDescriptor*> out_of_heavy = movable(heavy, light);
    const std::vector<const ShardDescriptor*> out_of_light = movable(light, heavy);
    // A move of s (and back of t) narrows the gap from `gap` to |gap - 2 (s - t)|.
    const auto after = [&](uint64_t s, uint64_t t) -> uint64_t {
      const int64_t d =
          static_cast<int64_t>(gap) - 2 * (static_cast<int64_t>(s) - static_cast<int64_t>(t));
      return static_cast<uint64_t>(d < 0 ? -d : d);
    };
    const ShardDescriptor* best_s = nullptr;
    const ShardDescriptor* best_t = nullptr;
    uint64_t best = gap;
    const bool plain_ok = Load(light) < Load(heavy);  // a plain move keeps counts within one
    for (const ShardDescriptor* sd : out_of_heavy) {
      if (plain_ok && after(bytes(*sd), 0) < best) {
        best = after(bytes(*sd), 0);
        best_s = sd;
        best_t = nullptr;
      }
      if (budget_ < 2) continue;
      for (const ShardDescriptor* td : out_of_light) {
        if (td == sd || bytes(*td) >= bytes(*sd)) continue;
        if (after(bytes(*sd), bytes(*td)) < best) {
          best = after(bytes(*sd), bytes(*td));
          best_s = sd;
          best_t = td;
        }
      }
    }
    if (best_s == nullptr) return;
    Take();
    Plan({PlacementAction::Kind::kMove, best_s->group, heavy, light, "bytes"});
    if (best_t != nullptr) {
      Take();
      Plan({PlacementAction::Kind::kMove, best_t->group, light, heavy, "bytes"});
    }
  }

  // Whether d, untouched this round and with no learner, has a voter on `from` and no replica
  // on `to`, and keeps its zones if that voter moves there.
  bool CanMove(const ShardDescriptor& d, NodeId from, NodeId to) const {
    if (touched_.contains(d.group) || !d.learners.empty() || !Has(d.voters, from) ||
        Has(d.voters, to)) {
      return false;
    }
    std::set<std::string> after = ZonesOf(d, from);
    after.insert(ZoneKey(to));
    return after.size() >= ZonesOf(d, kNoNode).size();
  }

  // A shard that CanMove from `from` to `to`, rather one `from` is not the preferred leader of
  // (no leadership to hand over).
  const ShardDescriptor* MovableShard(NodeId from, NodeId to) const {
    const ShardDescriptor* pick = nullptr;
    for (const ShardDescriptor& d : in_.shards) {
      if (!CanMove(d, from, to)) continue;
      if (pick == nullptr || (pick->voters.front() == from && d.voters.front() != from)) pick = &d;
    }
    return pick;
  }

  void BalanceLeaders() {
    using K = PlacementAction::Kind;
    const size_t planned_before = out_.size();
    std::map<NodeId, int> led;
    for (NodeId n : usable_) led[n] = 0;
    std::vector<ShardDescriptor> shards;
    for (const ShardDescriptor& d : in_.shards) {
      if (touched_.contains(d.group) || in_.busy.contains(d.group) || d.voters.empty() ||
          !d.learners.empty()) {
        continue;
      }
      shards.push_back(d);
      if (led.contains(d.voters.front())) ++led[d.voters.front()];
    }
    auto fewest = [&](const ShardDescriptor& d, NodeId except) {
      std::optional<NodeId> best;
      for (NodeId v : d.voters) {
        if (v == except || !led.contains(v)) continue;
        if (!best || led[v] < led[*best] || (led[v] == led[*best] && v < *best)) best = v;
      }
      return best;
    };
    // A preferred leader that is not usable hands the preference on.
    for (ShardDescriptor& d : shards) {
      const NodeId p = d.voters.front();
      if (led.contains(p)) continue;
      if (std::optional<NodeId> to = fewest(d, p)) {
        ++led[*to];
        Plan({K::kLead, d.group, p, *to, std::string("leader ") + Reason(State(p))});
        d.voters.front() = *to;  // counted as done below
      }
    }
    // Then while some node prefers two more than a fellow voter.
    for (size_t round = 0; round < shards.size(); ++round) {
      bool moved = false;
      for (ShardDescriptor& d : shards) {
        const NodeId p = d.voters.front();
        if (!led.contains(p)) continue;
        std::optional<NodeId> to = fewest(d, p);
        if (!to || led[p] - led[*to] < 2) continue;
        // The most loaded preferred leader first: only from a node at the maximum.
        int max_led = 0;
        for (const auto& [n, c] : led) max_led = std::max(max_led, c);
        if (led[p] != max_led) continue;
        --led[p];
        ++led[*to];
        Plan({K::kLead, d.group, p, *to, "leader balance"});
        d.voters.front() = *to;
        moved = true;
        break;
      }
      if (!moved) break;
    }
    // 3b. Writes, once the counts are settled (no preference moved above).
    if (out_.size() == planned_before) BalanceLeaderWrites(shards, led);
  }

  // Rule 3b (placement.h): the preferred leaders' writes/s, by one hand-over (or a swap of two)
  // per round between the node leading the most writes/s and a fellow voter.
  void BalanceLeaderWrites(const std::vector<ShardDescriptor>& shards,
                           const std::map<NodeId, int>& led) {
    using K = PlacementAction::Kind;
    if (led.size() < 2 || shards.empty()) return;
    std::map<NodeId, uint64_t> writes;
    for (const auto& [n, c] : led) writes[n] = 0;
    for (const ShardDescriptor& d : in_.shards) {
      auto w = in_.writes.find(d.group);
      if (w == in_.writes.end()) return;  // not every shard reported yet
      if (!d.voters.empty() && writes.contains(d.voters.front())) {
        writes[d.voters.front()] += w->second;
      }
    }
    uint64_t total = 0;
    NodeId heavy = writes.begin()->first;
    for (const auto& [n, w] : writes) {
      total += w;
      if (w > writes[heavy]) heavy = n;
    }
    const uint64_t mean = total / writes.size();
    if (writes[heavy] * 10 <= mean * 11) return;
    const auto w_of = [&](const ShardDescriptor& d) { return in_.writes.at(d.group); };
    // Handing over w (net) from heavy to v takes their gap g to |g - 2w|: only a narrower gap
    // is taken (the sum of the squares of the nodes' writes falls, so it ends).
    const ShardDescriptor* best_s = nullptr;
    const ShardDescriptor* best_t = nullptr;
    NodeId best_v = kNoNode;
    uint64_t best_after = 0;
    uint64_t best_gap = 0;
    for (const ShardDescriptor& s : shards) {
      if (s.voters.front() != heavy) continue;
      for (NodeId v : s.voters) {
        if (v == heavy || !writes.contains(v) || writes[heavy] <= writes[v]) continue;
        const uint64_t gap = writes[heavy] - writes[v];
        if (gap < kWritesSpreadMin) continue;
        const auto after = [&](uint64_t w) {
          const int64_t d = static_cast<int64_t>(gap) - 2 * static_cast<int64_t>(w);
          return static_cast<uint64_t>(d < 0 ? -d : d);
        };
        const auto consider = [&](uint64_t net, const ShardDescriptor* t) {
          const uint64_t a = after(net);
          if (net == 0 || a >= gap) return;
          // The widest gap narrowed most: the largest fall of the sum of squares.
          if (best_s == nullptr || gap - a > best_gap - best_after) {
            best_s = &s;
            best_t = t;
            best_v = v;
            best_after = a;
            best_gap = gap;
          }
        };
        // A plain hand-over keeps the leader counts within the count rule's bound.
        if (led.at(v) < led.at(heavy)) consider(w_of(s), nullptr);
        for (const ShardDescriptor& t : shards) {
          if (t.voters.front() != v || !Has(t.voters, heavy) || w_of(t) >= w_of(s)) continue;
          consider(w_of(s) - w_of(t), &t);
        }
      }
    }
    if (best_s == nullptr) return;
    Plan({K::kLead, best_s->group, heavy, best_v, "leader writes"});
    if (best_t != nullptr) Plan({K::kLead, best_t->group, best_v, heavy, "leader writes"});
  }

  const PlacementInput& in_;
  int budget_;
  std::map<NodeId, const PlacementNode*> nodes_;
  std::vector<NodeId> usable_;  // in id order
  std::map<NodeId, int> load_;  // usable node -> replicas of data shards, planned included
  std::set<GroupId> touched_;   // shards with a membership action this round
  std::vector<PlacementAction> out_;
};

}  // namespace

std::vector<PlacementAction> PlanPlacement(const PlacementInput& in) { return Planner(in).Run(); }

std::string DescribeAction(const PlacementAction& a) {
  using K = PlacementAction::Kind;
  const char* kind = a.kind == K::kMove     ? "move"
                     : a.kind == K::kAdd    ? "add"
                     : a.kind == K::kRemove ? "remove"
                     : a.kind == K::kLead   ? "lead"
                                            : "forget";
  std::string out = kind;
  if (a.kind != K::kForget) out += " group=" + std::to_string(a.group.value());
  if (a.from != kNoNode) out += " from=" + std::to_string(a.from.value());
  if (a.to != kNoNode) out += " to=" + std::to_string(a.to.value());
  out += " reason=" + a.reason;
  return out;
}

}  // namespace synod::cluster
