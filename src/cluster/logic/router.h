// RequestRouter: a node's routing of requests to shards — the pure half of the request channel,
// run alike by the real node (cluster/GroupHost) and the simulator.
//
// Call() runs a request where its shard can serve it: on this node's replica when it leads the
// shard (or, for a READONLY read, holds a replica), else on the leader's node, sent through the
// host's RequestTransport; where to is DecideRoute's rule (shard_map.h). An attempt that meets a
// node that does not lead (it names the leader), a stale route (the receiver's descriptor of
// the shard has another epoch), a hop that times out, or a peer that became unreachable is
// tried again transparently until the request's deadline: at once when a refusal names another
// leader, else after a tick. A write carries its connection's session for the shard, so a
// retried write applies at most once.
//
// Serve() runs a request another node sent: only on a replica that leads the shard (a stale
// read is sent only to a leader too: it is served linearizably), and only when the request was
// routed by a descriptor no older than the one this node holds (its epoch, when the sender gave
// one). Every answer carries this node's leader hint for the shard, so a sender learns where to
// go next.
//
// Time comes in as arguments (now_ns, monotonic); the host ticks it. Deadlines: a request's is
// the request timeout plus a second (the replica answers within the timeout; the second lets a
// definite answer from the last hop arrive); a hop's is half the timeout, at least 500 ms.
//
// Thread-safety: none; the node's core thread (or the simulator's) owns it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "cluster/logic/request.h"
#include "cluster/logic/shard_map.h"
#include "cluster/logic/store.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/status.h"

namespace synod::cluster {

using ResponseFn = std::function<void(ShardResponse)>;

// The request channel's sending half, and the host's "run a round soon".
class RequestTransport {
 public:
  virtual ~RequestTransport() = default;
  virtual void SendRequest(NodeId to, uint64_t id, const ShardRequest& req) = 0;
  virtual void SendResponse(NodeId to, uint64_t id, const ShardResponse& resp) = 0;
  // The Store was given work (a request submitted to a replica): run its rounds soon.
  virtual void Wake() = 0;
};

// Scripts on this node (compute/script_runner.h): the router hands it the script requests for
// shards this node leads, and asks it about writes and reads of keys a script holds.
class ScriptService {
 public:
  virtual ~ScriptService() = default;
  // Runs a kScript request on this node's leader replica of req.group; answers exactly once.
  virtual void Run(const ShardRequest& req, ReplyFn reply) = 0;
  // A write about to go to this node's replica of `group`: true when one of its keys is held
  // by a running script; then `go` runs once they are free, or `reply` gets a BUSY error.
  virtual bool HoldWrite(GroupId group, const kv::Command& cmd, std::function<void()> go,
                         ReplyFn reply) = 0;
  // Whether a read of `argv` on `group` must answer BUSY (a key held by a script past the
  // busy threshold).
  virtual bool ReadBusy(GroupId group, const std::vector<std::string>& argv) = 0;
  // SCRIPT KILL (functions false) / FUNCTION KILL: stops the runs on `group` here that have
  // proposed nothing; how many.
  virtual int Kill(GroupId group, bool functions) = 0;
};

struct RouterOptions {
  NodeId self;
  int64_t request_timeout_ms = 5000;
  // Requests in flight to other nodes plus those waiting for a leader; beyond, refused.
  size_t routed_max = 100'000;
  // Ticks a request for a shard hosted here waits for its replica to know a leader before the
  // shard's other voters are asked (RouteInput::wait_max); about two election timeouts.
  int hosted_wait_ticks = 20;
  // The id of the first request sent; ids count up from it. Draw it at random for every start
  // of the node: a peer may answer a request of the node's previous incarnation after it
  // restarted (on the new connection), and that answer must not match a new request.
  uint64_t first_request_id = 1;
  // A planted bug for the simulator to catch: a request is served whatever its epoch and its
  // slots (no stale-route refusal, no check of a read's slots against the shard's). Never set
  // outside tests.
  bool testing_bug_stale_route = false;
};

struct RouterCounters {
  uint64_t proposals = 0;  // writes this node's replicas were given
  uint64_t forwarded = 0;  // hops sent to other nodes
  uint64_t served = 0;     // requests other nodes sent here
  uint64_t retries = 0;    // attempts tried again
};

class RequestRouter {
 public:
  // REQUIRES: map, store and transport outlive the router.
  RequestRouter(RouterOptions opts, ShardMap* map, Store* store, RequestTransport* transport,
                Logger logger);
  ~RequestRouter();
  RequestRouter(const RequestRouter&) = delete;
  RequestRouter& operator=(const RequestRouter&) = delete;

  // Runs `req` on its shard (req.group) and answers exactly once, by the request's deadline and
  // a tick: OK with the reply, or the error (kTimeout: the outcome of a write is unknown;
  // kNotLeader, kUnavailable, kProposalDropped: it was not applied; kInvalidArgument: no such
  // shard; kResourceExhausted: too many requests routed).
  void Call(ShardRequest req, ResponseFn done, int64_t now_ns);
  // Call at the latest time an entry point brought (from inside an answer, which has none).
  void Call(ShardRequest req, ResponseFn done) { Call(std::move(req), std::move(done), now_ns_); }
  // A request another node sent (`id` is its id on that node's side); the answer goes back
  // through the transport. A request that did not decode is answered with its error.
  void Serve(NodeId from, uint64_t id, Result<ShardRequest> req);
  // The answer to hop `id` from `from` (or what did not decode of it).
  void OnResponse(NodeId from, uint64_t id, Result<ShardResponse> resp, int64_t now_ns);
  // Every tick: hops past their deadline fail over, requests waiting for a leader try again.
  void Tick(int64_t now_ns);
  // The transport lost `peer`: the hops waiting on it fail over now.
  void PeerUnreachable(NodeId peer, int64_t now_ns);
  // Answers every request still routed (the node is shutting down). Idempotent; later calls
  // are refused with kUnavailable.
  void Stop();

  // The leader hint for `group`, and its term: the local replica's view (when it is a member)
  // or the map's (from refusals and notices), whichever is of the later term; at the same term
  // the replica's when it knows a leader.
  NodeId LeaderHint(GroupId group, uint64_t* term) const;

  // Where kScript requests run (nullptr: they are refused). REQUIRES: outlives the router.
  void set_scripts(ScriptService* scripts) { scripts_ = scripts; }

  size_t routed() const { return hops_.size() + waiting_.size(); }
  const RouterCounters& counters() const { return counters_; }
  // The writes this node served as their shard's leader since the last call, per shard and slot
  // (the first slot of each write's keys): the load that splits by load follow (LoadTracker).
  std::map<GroupId, std::map<uint16_t, uint64_t>> TakeWrites() {
    return std::exchange(writes_, {});
  }

 private:
  struct Attempt;
  using AttemptPtr = std::shared_ptr<Attempt>;
  void Step(const AttemptPtr& a, int64_t now_ns);
  // Runs `req` on this node's replica. From a peer (`from_peer`) the replica must lead; the
  // answer names this node's leader hint either way.
  void ExecuteLocal(const ShardRequest& req, bool from_peer, ResponseFn done);
  // An attempt answered (or failed) with `r`: done, or tried again while time is left.
  void OnAttemptResult(const AttemptPtr& a, ShardResponse r, bool maybe_applied, int64_t now_ns);
  // Fails the hops to `peer` (kNoNode: every hop past its deadline at now_ns).
  void ExpireHops(NodeId peer, int64_t now_ns);
  void StampLeader(GroupId group, ShardResponse* r) const;
  // A stale route's refusal carries this node's descriptors of the shard and of the owners of
  // the request's slots.
  void AttachDescriptors(const ShardRequest& req, ShardResponse* r) const;
  // Learns the descriptors a refusal carried.
  void LearnFrom(NodeId from, const ShardResponse& r);

  RouterOptions opts_;
  ShardMap* map_;
  Store* store_;
  ScriptService* scripts_ = nullptr;
  RequestTransport* transport_;
  Logger logger_;
  RouterCounters counters_;
  std::map<GroupId, std::map<uint16_t, uint64_t>> writes_;
  // Script requests served, by sender and id, the latest kScriptsSeenMax: a duplicate is
  // dropped (see Serve).
  static constexpr size_t kScriptsSeenMax = 100'000;
  std::set<std::pair<NodeId, uint64_t>> scripts_seen_;
  std::deque<std::pair<NodeId, uint64_t>> scripts_seen_order_;
  struct Hop {
    AttemptPtr attempt;
    NodeId to;
    int64_t deadline_ns = 0;
  };
  std::map<uint64_t, Hop> hops_;  // by request id
  uint64_t next_request_id_;
  std::vector<AttemptPtr> waiting_;  // for a leader, or after a refusal: next tick
  std::set<AttemptPtr> locals_;      // handed to this node's replica, not answered yet
  bool stopped_ = false;
  // The latest time an entry point brought: a replica's answer (which carries none) is handled
  // at it.
  int64_t now_ns_ = 0;
  // Set while alive: a replica's reply that arrives after the router is gone is dropped.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace synod::cluster
