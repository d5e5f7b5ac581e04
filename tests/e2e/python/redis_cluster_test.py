#!/usr/bin/env python3
"""redis-py's RedisCluster (Debian's python3-redis) against a running Synod cluster.

Usage: redis_cluster_test.py PORT MODE [PRIMARIES]   (MODE: redirects | plain)

Connects through one node as a cluster-aware client does (CLUSTER SLOTS), writes 10,000 keys
spread over every slot and reads each back, plus the cluster helpers a user calls. With
`redirects` the nodes answer -MOVED for keys another node leads; with `plain` they serve every
key. Every check asserts; exit 1 at the first failure. Run by the e2e tests
ClusterProtocol.RedisPyClusterClientWorks* (tests/e2e/cluster_protocol_test.cc).
"""
import sys

try:
    from redis.cluster import RedisCluster
except ImportError as e:
    print(f"FAIL: cannot import redis.cluster ({e}); install python3-redis", file=sys.stderr)
    sys.exit(2)

KEYS = 10_000


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    port, mode = int(sys.argv[1]), sys.argv[2]
    primaries = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    rc = RedisCluster(host="127.0.0.1", port=port)
    nodes = rc.get_nodes()
    if len(nodes) != 3:
        fail(f"get_nodes: {[n.name for n in nodes]}, want 3 nodes")
    # The masters of the slot map. (Not get_primaries(): a Synod node leads some shards and
    # follows in others, and redis-py labels each node by the last slot range it read.)
    masters = {rc.nodes_manager.slots_cache[s][0].name for s in rc.nodes_manager.slots_cache}
    if len(masters) != primaries:
        fail(f"the slot map's masters: {sorted(masters)}, want {primaries}")
    if rc.keyslot("foo") != 12182 or rc.cluster_keyslot("foo") != 12182:
        fail("keyslot('foo') is not 12182")
    slots = set()
    pipe = rc.pipeline()
    for i in range(KEYS):
        key = f"rc:{i}"
        slots.add(rc.keyslot(key))
        pipe.set(key, f"value-{i}")
        if i % 500 == 499:
            replies = pipe.execute()
            if not all(r is True for r in replies):
                fail(f"pipelined SETs up to {key}: {replies[:5]}...")
    if len(slots) < 4000:
        fail(f"the keys cover only {len(slots)} slots")
    for i in range(0, KEYS, 1000):  # one at a time, as most code does
        if rc.get(f"rc:{i}") != f"value-{i}".encode():
            fail(f"GET rc:{i}")
    values = rc.mget_nonatomic([f"rc:{i}" for i in range(KEYS)])
    bad = [i for i, v in enumerate(values) if v != f"value-{i}".encode()]
    if bad:
        fail(f"{len(bad)} of {KEYS} keys read back wrong, first rc:{bad[0]}: {values[bad[0]]!r}")
    if rc.delete("rc:0", "rc:1") != 2:
        fail("DEL of two keys")
    if rc.exists("rc:0") != 0 or rc.exists("rc:2") != 1:
        fail("EXISTS after DEL")
    info = rc.cluster_info()
    if info.get("cluster_state") != "ok":
        fail(f"cluster_info: {info}")
    print(f"redis-py cluster: all checks passed ({mode}, {KEYS} keys over {len(slots)} slots)")


main()
