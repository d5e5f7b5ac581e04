#!/usr/bin/python3
"""The failover writer for Synod (and any Redis-protocol cluster), used by scripts/compare/run.py.

The Synod twin of `etcd_bench --failover` (etcd_client/etcd_bench.cc), with the same protocol:
CLIENTS_PER_NODE threads per node write unique keys PREFIX:thread:seq (value = key) with a
TIMEOUT-second socket timeout, retrying 10 ms after a failure, and every acknowledged write is
appended to --acks as "key send_ns ack_ns node_index" (CLOCK_REALTIME). A line "killed NS IDX"
on stdin says node IDX was killed at NS; the run ends 300 ms after the first write sent after NS
and acknowledged by another node, or WINDOW seconds after NS, or after DURATION seconds.
Prints one JSON object: {"acks": N, "errors": {...}, "killed_ns": NS, "recovered": bool}.

Uses Debian's python3-redis.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass, field

import redis


@dataclass
class State:
    killed_ns: int = 0
    killed_node: int = -1
    recovered_ns: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    acks: list[tuple[str, int, int, int]] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)


def writer(state: State, host: str, port: int, node: int, tid: int, prefix: str,
           timeout: float) -> None:
    client = redis.Redis(host=host, port=port, socket_timeout=timeout,
                         socket_connect_timeout=timeout)
    seq = 0
    while not state.stop.is_set():
        key = f"{prefix}:{tid}:{seq}"
        seq += 1
        sent = time.time_ns()
        try:
            client.set(key, key)
        except (redis.RedisError, OSError) as e:
            with state.lock:
                kind = type(e).__name__
                state.errors[kind] = state.errors.get(kind, 0) + 1
            client.connection_pool.disconnect()
            time.sleep(0.01)
            continue
        acked = time.time_ns()
        with state.lock:
            state.acks.append((key, sent, acked, node))
            if (state.killed_ns and sent >= state.killed_ns and node != state.killed_node
                    and not state.recovered_ns):
                state.recovered_ns = acked


def watch_stdin(state: State) -> None:
    for line in sys.stdin:
        words = line.split()
        if len(words) == 3 and words[0] == "killed":
            with state.lock:
                state.killed_node = int(words[2])
                state.killed_ns = int(words[1])


def should_stop(state: State, window: float, deadline: float) -> bool:
    now = time.time_ns()
    with state.lock:
        if state.recovered_ns and now >= state.recovered_ns + 300_000_000:
            return True
        if state.killed_ns and now >= state.killed_ns + int(window * 1e9):
            return True
    return time.monotonic() >= deadline


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", required=True, help="H:P[,H:P...]: node i is the i-th")
    ap.add_argument("--clients-per-node", type=int, default=2)
    ap.add_argument("--prefix", default="fo")
    ap.add_argument("--acks", required=True)
    ap.add_argument("--timeout", type=float, default=0.2)
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--duration", type=float, default=60.0)
    args = ap.parse_args()

    state = State()
    threads = []
    tid = 0
    for node, hp in enumerate(args.hosts.split(",")):
        host, port = hp.rsplit(":", 1)
        for _ in range(args.clients_per_node):
            t = threading.Thread(target=writer, args=(state, host, int(port), node, tid,
                                                      args.prefix, args.timeout), daemon=True)
            threads.append(t)
            tid += 1
    threading.Thread(target=watch_stdin, args=(state,), daemon=True).start()
    for t in threads:
        t.start()
    deadline = time.monotonic() + args.duration
    while not should_stop(state, args.window, deadline):
        time.sleep(0.01)
    state.stop.set()
    for t in threads:
        t.join(timeout=2 * args.timeout + 1)
    with state.lock:
        with open(args.acks, "w", encoding="utf-8") as f:
            for key, sent, acked, node in state.acks:
                f.write(f"{key} {sent} {acked} {node}\n")
        print(json.dumps({"acks": len(state.acks), "errors": state.errors,
                          "killed_ns": state.killed_ns, "recovered": bool(state.recovered_ns)}))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
