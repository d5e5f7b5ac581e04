#!/usr/bin/python3
"""`make bench` / `make bench-quick`: Synod side by side with etcd and Redis on loopback.

Starts, one at a time and each in its own directory under build/compare/:
  * a 3-member etcd cluster (Debian's etcd-server, fsync on, its default);
  * Redis (Debian's redis-server) with appendonly yes, appendfsync always: one durable node;
  * a 3-node Synod cluster with one data shard (`synod up --shards 1`, fsync always on);
runs the same workloads on each (writes at 1/16/64/256 clients, linearizable and stale reads,
latency at half the maximum write throughput, leader failover, resident memory). Then Synod's
scale-out rows (scale_out() below): 3 nodes x 6 shards against 3 nodes x 1 shard (writes/s and
the node processes' CPU per write at 64 and 256 clients), a write's p50 through a follower that
forwards it against the leader, and the CPU and memory of 1,000 idle shards. Writes
build/compare/results.json, the PNG plots in docs/benchmarks/ (Debian's gnuplot),
docs/benchmarks.md, and the headline paragraph of README.md between its bench markers.

Clients: `synod bench` for Synod and Redis, etcd_client/'s `etcd_bench` (gRPC async) for etcd;
scripts/compare/synod_failover.py and `etcd_bench --failover` for the failover trials.

Usage: scripts/compare/run.py [--quick]     (Python standard library only)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / "build" / "compare"
SYNOD = ROOT / "build" / "release" / "src" / "cli" / "synod"
ETCD_BUILD = ROOT / "build" / "etcd_client"
ETCD_BENCH = ETCD_BUILD / "etcd_bench"
ETCD_SRC = ROOT / "scripts" / "compare" / "etcd_client"
FAILOVER_PY = ROOT / "scripts" / "compare" / "synod_failover.py"
DOCS = ROOT / "docs"
PLOTS = DOCS / "benchmarks"
HOST = "127.0.0.1"
PACKAGES = ["etcd-server", "etcd-client", "redis-server", "gnuplot-nox", "libgrpc++-dev",
            "protobuf-compiler-grpc", "pkg-config", "python3-redis", "cmake", "ninja-build"]

ETCD_CLIENT_PORTS = [23379, 23380, 23381]
ETCD_PEER_PORTS = [23479, 23480, 23481]
REDIS_PORT = 26479
SYNOD_BASE = 25001  # clients 25001-25003, peers 25101-25103, admin 25201-25203

WRITE_CLIENTS = [1, 16, 64, 256]
READ_CLIENTS = 64
LATENCY_CLIENTS = 256
KEYS, KEY_SIZE, VALUE_SIZE = 100000, 8, 256

# Scale out (the issue "Scale out"): layouts compared, client counts, the forwarding probe.
SHARD_LAYOUTS = [1, 6]
SHARD_CLIENTS = [64, 256]
FORWARD_RATE, FORWARD_CLIENTS = 500, 8
IDLE_SHARDS = 1000
SETTLE_WAIT_S = 30.0  # bound on the wait for every shard to be led by its preferred leader
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Mode:
    name: str
    duration: float  # seconds measured per point
    warmup: float
    reps: int  # runs per point; the median is reported
    trials: int  # failover trials per system
    check_perf: bool  # run `etcdctl check perf --load=xl` (60 s)
    idle_settle: float  # seconds the idle shards get to elect and quiesce before the window
    idle_window: float  # seconds over which the idle shards' CPU is measured
    # The elastic rows: the shard moved, in MB of keys and values (its snapshot streams in
    # chunks: no size bound but memory).
    move_mb: int
    data_mb: int  # ... the data stored when two nodes join and when one dies


QUICK = Mode("bench-quick", 2.5, 0.5, 1, 3, False, 15.0, 10.0, 64, 128)
FULL = Mode("bench", 10.0, 1.0, 3, 10, True, 25.0, 30.0, 1024, 2048)

# Every process we started and have not reaped, by PID; killed on exit.
LIVE: dict[int, subprocess.Popen] = {}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# Processes


def spawn(args: list[str], logfile: Optional[Path] = None, **kw: Any) -> subprocess.Popen:
    out = open(logfile, "ab") if logfile else subprocess.DEVNULL
    p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                         **kw)
    LIVE[p.pid] = p
    return p


def stop(p: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 20.0) -> None:
    """Signals our process p by PID and reaps it (SIGKILL after `wait` seconds)."""
    if p.poll() is None:
        try:
            os.kill(p.pid, sig)
            p.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
        except ProcessLookupError:
            pass
    LIVE.pop(p.pid, None)


def cleanup(*_: Any) -> None:
    for p in list(LIVE.values()):
        stop(p, signal.SIGTERM, wait=10.0)


def run(args: list[str], **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, text=True, **kw)


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def serving(address: str) -> bool:
    """Whether the Redis server at HOST:PORT answers a GET, not an error (a node that just
    joined answers LOADING until it has the cluster's replicated settings)."""
    import socket
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2) as s:
            s.sendall(b"*2\r\n$3\r\nGET\r\n$13\r\nbench:serving\r\n")
            return not s.recv(64).startswith(b"-")
    except OSError:
        return False


def port_free(port: int) -> bool:
    import socket
    with socket.socket() as s:
        return s.connect_ex((HOST, port)) != 0


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime of the processes, in clock ticks (/proc/PID/stat fields 14 and 15)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ", field 3 is [0]
        total += int(fields[11]) + int(fields[12])
    return total


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """Samples VmRSS of some PIDs every 200 ms in a thread; keeps the maximum of each."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak = {p: 0 for p in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for p in self.pids:
                self.peak[p] = max(self.peak[p], rss_kb(p))
            self._stop.wait(0.2)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------------------------------
# Setup


def install_packages() -> None:
    missing = [p for p in PACKAGES if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
        text=True).stdout.find("install ok installed") < 0]
    if not missing:
        return
    log(f"installing {' '.join(missing)}")
    sudo = [] if os.geteuid() == 0 else (["sudo"] if shutil.which("sudo") else [])
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(sudo + ["apt-get", "update", "-qq"], env=env)
    run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing, env=env)


def build() -> None:
    if not SYNOD.exists():
        raise RuntimeError(f"{SYNOD} missing: `make build` first (make bench does)")
    log("building the etcd client (scripts/compare/etcd_client)")
    if not (ETCD_BUILD / "build.ninja").exists():
        run(["cmake", "-S", str(ETCD_SRC), "-B", str(ETCD_BUILD), "-G", "Ninja",
             "-DCMAKE_BUILD_TYPE=Release"], stdout=subprocess.DEVNULL)
    run(["ninja", "-C", str(ETCD_BUILD)], stdout=subprocess.DEVNULL)


# ---------------------------------------------------------------------------------------------
# The three systems


@dataclass
class Node:
    index: int
    client: str  # host:port for clients
    proc: Optional[subprocess.Popen] = None
    pid: int = 0


@dataclass
class System:
    name: str
    nodes: list[Node] = field(default_factory=list)
    dir: Path = BENCH_DIR

    def pids(self) -> list[int]:
        return [n.pid for n in self.nodes if n.pid]


class Etcd(System):
    def __init__(self) -> None:
        super().__init__("etcd", dir=BENCH_DIR / "etcd")
        self.nodes = [Node(i, f"{HOST}:{ETCD_CLIENT_PORTS[i]}") for i in range(3)]
        self.cluster = ",".join(f"e{i + 1}=http://{HOST}:{ETCD_PEER_PORTS[i]}" for i in range(3))

    def command(self, i: int) -> list[str]:
        c, p = ETCD_CLIENT_PORTS[i], ETCD_PEER_PORTS[i]
        return ["etcd", "--name", f"e{i + 1}", "--data-dir", str(self.dir / f"e{i + 1}"),
                "--listen-client-urls", f"http://{HOST}:{c}",
                "--advertise-client-urls", f"http://{HOST}:{c}",
                "--listen-peer-urls", f"http://{HOST}:{p}",
                "--initial-advertise-peer-urls", f"http://{HOST}:{p}",
                "--initial-cluster", self.cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", "synod-bench", "--quota-backend-bytes", str(8 << 30)]

    def start_node(self, i: int) -> None:
        n = self.nodes[i]
        n.proc = spawn(self.command(i), self.dir / f"e{i + 1}.log")
        n.pid = n.proc.pid

    def start(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        for i in range(3):
            self.start_node(i)
        wait_until(lambda: self.leader() is not None, 30, "an etcd leader")

    def stop(self) -> None:
        for n in self.nodes:
            if n.proc:
                stop(n.proc)

    def etcdctl(self, endpoints: list[str], *args: str, timeout: float = 5) -> str:
        r = subprocess.run(["etcdctl", "--endpoints", ",".join(endpoints), *args],
                           capture_output=True, text=True, timeout=timeout,
                           env=dict(os.environ, ETCDCTL_API="3"))
        return r.stdout if r.returncode == 0 else ""

    def leader(self) -> Optional[int]:
        """The index of the leader, as the live members see it."""
        live = [n.client for n in self.nodes if n.proc and n.proc.poll() is None]
        try:
            out = self.etcdctl(live, "endpoint", "status", "-w", "json",
                               "--command-timeout=1s")
            for st in json.loads(out or "[]"):
                s = st["Status"]
                if s["leader"] and s["header"]["member_id"] == s["leader"]:
                    return [n.client for n in self.nodes].index(st["Endpoint"])
        except (ValueError, KeyError, subprocess.TimeoutExpired):
            pass
        return None

    def healthy(self, i: int) -> bool:
        return "is healthy" in subprocess.run(
            ["etcdctl", "--endpoints", self.nodes[i].client, "endpoint", "health",
             "--command-timeout=1s"], capture_output=True, text=True,
            env=dict(os.environ, ETCDCTL_API="3")).stderr


class Redis(System):
    def __init__(self) -> None:
        super().__init__("redis", dir=BENCH_DIR / "redis")
        self.nodes = [Node(0, f"{HOST}:{REDIS_PORT}")]

    def command(self) -> list[str]:
        return ["redis-server", "--port", str(REDIS_PORT), "--bind", HOST, "--appendonly", "yes",
                "--appendfsync", "always", "--save", "", "--dir", str(self.dir),
                "--daemonize", "no"]

    def start(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        n = self.nodes[0]
        n.proc = spawn(self.command(), self.dir / "redis.log")
        n.pid = n.proc.pid
        wait_until(lambda: subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "ping"],
                                          capture_output=True, text=True).stdout.strip()
                   == "PONG", 20, "redis")

    def stop(self) -> None:
        if self.nodes[0].proc:
            stop(self.nodes[0].proc)


def synod_ports() -> list[int]:
    # Nodes 4 and 5 of the elastic rows too.
    return [SYNOD_BASE + o + i for o in (0, 100, 200) for i in range(5)]


class Synod(System):
    """A 3-node cluster started by `synod up` with `shards` data shards (every node holds a
    replica of every shard). The comparison with etcd and Redis runs one shard; the scale-out
    rows start others, one at a time, on the same ports."""

    def __init__(self, shards: int = 1, name: str = "synod") -> None:
        super().__init__(name, dir=BENCH_DIR / name)
        self.shards = shards
        self.nodes = [Node(i, f"{HOST}:{SYNOD_BASE + i}") for i in range(3)]
        self.up: Optional[subprocess.Popen] = None
        self.settled_at_start = False

    flags: list[str] = []  # passed to every node (`synod up --node-flag`, joining nodes)

    def up_command(self) -> list[str]:
        return [str(SYNOD), "up", "--nodes", "3", "--shards", str(self.shards), "--dir",
                str(self.dir), "--base-port", str(SYNOD_BASE)] + [
                    f"--node-flag={f}" for f in self.flags]

    def admin(self, i: int) -> str:
        return f"{HOST}:{SYNOD_BASE + 200 + i}"

    def start(self) -> None:
        # The previous cluster on these ports has exited (stop() reaps `synod up`, which reaps
        # its nodes); its sockets may linger a moment.
        wait_until(lambda: all(port_free(p) for p in synod_ports()), 30, "free Synod ports")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        up_log = self.dir / "up.log"  # fresh: the PIDs are read from it
        self.up = spawn(self.up_command(), up_log)
        # `synod up` prints a table "NODE PID CLIENT ..." once a leader is elected.
        table = re.compile(r"^\s*(\d+)\s+(\d+)\s+127\.0\.0\.1:(\d+)")

        def parsed() -> bool:
            text = up_log.read_text(errors="replace")
            rows = [table.match(line) for line in text.splitlines()]
            rows = [m for m in rows if m]
            for m in rows:
                self.nodes[int(m.group(1)) - 1].pid = int(m.group(2))
            return len(rows) == 3

        wait_until(parsed, 60, "synod up")
        self.settled_at_start = self.wait_settled()

    def stop(self) -> None:
        if self.up:
            stop(self.up, wait=30)
        for n in self.nodes:  # nodes restarted by a failover trial are ours, not synod up's
            if n.proc:
                stop(n.proc)

    def status(self, i: int) -> Optional[dict[str, Any]]:
        # /status lists every shard: about 300 bytes each, so 1,000 shards need longer.
        timeout = 0.5 + self.shards / 500
        try:
            with urllib.request.urlopen(f"http://{self.admin(i)}/status", timeout=timeout) as r:
                return json.loads(r.read())
        except (OSError, ValueError):
            return None

    def shard_leaders(self) -> dict[int, int]:
        """Data shard (its group id) -> index of the node leading it, each node speaking for
        itself (a node's `shards` in /status carry its own role in each)."""
        led: dict[int, int] = {}
        for i in range(3):
            for s in (self.status(i) or {}).get("shards", []):
                if s.get("role") == "leader":
                    led[s["group"]] = i
        return led

    def leader(self) -> Optional[int]:
        """The node leading the first data shard: in the one-shard layout, where writes go.
        (The top-level `role` of /status is the meta shard's, which may be elsewhere.)"""
        led = self.shard_leaders()
        return led[min(led)] if led else None

    def led_per_node(self) -> list[int]:
        led = list(self.shard_leaders().values())
        return [led.count(i) for i in range(3)]

    def settled(self) -> bool:
        """Every data shard is led by its preferred leader, the first voter of its descriptor,
        as that node says. A new cluster's shards elect whoever comes first, then hand their
        leadership over to their preferred leaders, spread evenly over the nodes
        (src/cluster/group_host.h); so does a shard whose preferred leader comes back."""
        preferred_led = 0
        for i in range(3):
            st = self.status(i)
            if not st:
                return False
            for s in st.get("shards", []):
                if s.get("voters") and s["voters"][0] == st.get("id"):
                    if s.get("role") != "leader":
                        return False
                    preferred_led += 1
        return preferred_led == self.shards

    def wait_settled(self, timeout: float = SETTLE_WAIT_S) -> bool:
        """Waits (bounded) until settled(); returns whether it happened (logs if not)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.settled():
                return True
            time.sleep(0.5)
        log(f"  {self.name}: shards not all on their preferred leaders after {timeout:g} s "
            f"(data shards led per node: {self.led_per_node()})")
        return False

    def restart_node(self, i: int) -> None:
        peer = f"{HOST}:{SYNOD_BASE + 100 + i}"
        n = self.nodes[i]
        n.proc = spawn([str(SYNOD), "start", "--id", str(i + 1), "--data",
                        str(self.dir / f"node-{i + 1}"), "--client", n.client, "--peer", peer,
                        "--admin", self.admin(i)], self.dir / f"node-{i + 1}.log")
        n.pid = n.proc.pid


# ---------------------------------------------------------------------------------------------
# Load generators


def generator_args(args: list[str], clients: int, read_fraction: float,
                   rate: float) -> list[str]:
    """A load generator's command line (`synod bench` or `etcd_bench`: the same flags for the
    workload's shape, and JSON out) with the benchmark's key and value shapes."""
    args = args + ["--clients", str(clients), "--keys", str(KEYS), "--key-size", str(KEY_SIZE),
                   "--value-size", str(VALUE_SIZE), "--read-fraction", str(read_fraction),
                   "--json"]
    if rate > 0:
        args += ["--rate", str(int(rate))]
    return args


def run_generator(args: list[str], clients: int, mode: Mode, read_fraction: float,
                  rate: float) -> dict[str, Any]:
    """Runs a load generator (generator_args) to its end; returns its JSON."""
    out = subprocess.run(generator_args(args, clients, read_fraction, rate), capture_output=True,
                         text=True, timeout=mode.duration + 60).stdout
    return json.loads(out)


def synod_bench_args(hosts: list[str], mode: Mode, readonly: bool = False) -> list[str]:
    args = [str(SYNOD), "bench", "--host", ",".join(hosts), "--duration", f"{mode.duration}s",
            "--warmup", f"{mode.warmup}s", "--no-progress"]
    if readonly:
        args.append("--readonly")
    return args


def synod_bench(hosts: list[str], clients: int, mode: Mode, read_fraction: float = 0.0,
                readonly: bool = False, rate: float = 0.0) -> dict[str, Any]:
    return run_generator(synod_bench_args(hosts, mode, readonly), clients, mode, read_fraction,
                         rate)


def sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.monotonic()))


def writes_with_cpu(system: System, hosts: list[str], clients: int,
                    mode: Mode) -> dict[str, Any]:
    """Closed-loop `synod bench` writes through `hosts` (connection i to hosts[i mod n]), and
    the CPU time (utime + stime) of the system's node processes and, apart, of the load
    generator over a window inside the measured interval: from 0.3 s after the warmup ends to
    0.2 s before the run does (the generator's clock starts a little after its process). CPU
    per write = (CPU seconds / window seconds) / (writes per second of the measured interval).
    """
    args = generator_args(synod_bench_args(hosts, mode), clients, 0.0, 0.0)
    gen = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    LIVE[gen.pid] = gen
    try:
        start = time.monotonic()
        sleep_until(start + mode.warmup + 0.3)
        n0, g0, w0 = cpu_ticks(system.pids()), cpu_ticks([gen.pid]), time.monotonic()
        sleep_until(start + mode.warmup + mode.duration - 0.2)
        n1, g1, w1 = cpu_ticks(system.pids()), cpu_ticks([gen.pid]), time.monotonic()
        out, _ = gen.communicate(timeout=mode.duration + 60)
    finally:
        stop(gen)
    r = json.loads(out)
    window = w1 - w0
    node_cores = (n1 - n0) / CLK_TCK / window
    gen_cores = (g1 - g0) / CLK_TCK / window
    per_write = 1e6 / r["ops_per_sec"] if r["ops_per_sec"] > 0 else float("nan")
    r["cpu"] = {"window_s": round(window, 3), "node_cores": round(node_cores, 3),
                "generator_cores": round(gen_cores, 3),
                "node_us_per_write": round(node_cores * per_write, 1),
                "generator_us_per_write": round(gen_cores * per_write, 1)}
    return r


def etcd_bench(hosts: list[str], clients: int, mode: Mode, read_fraction: float = 0.0,
               serializable: bool = False, rate: float = 0.0) -> dict[str, Any]:
    args = [str(ETCD_BENCH), "--endpoints", ",".join(hosts), "--duration", str(mode.duration),
            "--warmup", str(mode.warmup)]
    if serializable:
        args.append("--serializable")
    return run_generator(args, clients, mode, read_fraction, rate)


def median_run(runs: list[dict[str, Any]], key: Callable[[dict[str, Any]], float]) -> dict:
    """The run whose key is the median (the lower middle one for an even count)."""
    ordered = sorted(runs, key=key)
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["runs"] = [key(r) for r in runs]
    return chosen


def measure(fn: Callable[[], dict[str, Any]], mode: Mode, what: str,
            key: Callable[[dict[str, Any]], float] = lambda r: r["ops_per_sec"]) -> dict:
    runs = []
    for _ in range(mode.reps):
        r = fn()
        runs.append(r)
    m = median_run(runs, key)
    lat = m["latency_ms"]
    log(f"  {what}: {m['ops_per_sec']:.0f} ops/s, p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} "
        f"ms, errors {m['requests']['errors']} (runs {', '.join(f'{x:.0f}' for x in m['runs'])})")
    return m


# ---------------------------------------------------------------------------------------------
# Workloads


def workloads(system: System, mode: Mode) -> dict[str, Any]:
    """Writes at each client count, reads, latency at half load, RSS; on a started system."""
    res: dict[str, Any] = {"rss_idle_kb": {}, "rss_load_kb": {}, "writes": {}}
    time.sleep(1.0)
    res["rss_idle_kb"] = {str(i + 1): rss_kb(p) for i, p in enumerate(system.pids())}

    def writes(clients: int, rate: float = 0.0) -> dict[str, Any]:
        if isinstance(system, Synod):  # writes to the leader's client port
            lead = system.leader()
            return synod_bench([system.nodes[lead if lead is not None else 0].client], clients,
                               mode, rate=rate)
        if isinstance(system, Redis):
            return synod_bench([system.nodes[0].client], clients, mode, rate=rate)
        lead = system.leader()  # etcd: to the leader too (measured fastest; see the report)
        return etcd_bench([system.nodes[lead if lead is not None else 0].client], clients, mode,
                          rate=rate)

    for c in WRITE_CLIENTS:
        if c == 64:
            with RssSampler(system.pids()) as s:
                res["writes"][str(c)] = measure(lambda: writes(c), mode, f"writes, {c} clients")
            res["rss_load_kb"] = {str(i + 1): s.peak[p] for i, p in enumerate(system.pids())}
        else:
            res["writes"][str(c)] = measure(lambda: writes(c), mode, f"writes, {c} clients")

    every = [n.client for n in system.nodes]
    if isinstance(system, Etcd):
        res["reads"] = measure(lambda: etcd_bench(every, READ_CLIENTS, mode, 1.0), mode,
                               "linearizable reads")
        res["stale_reads"] = measure(lambda: etcd_bench(every, READ_CLIENTS, mode, 1.0, True),
                                     mode, "serializable reads")
    elif isinstance(system, Synod):
        res["reads"] = measure(lambda: synod_bench(every, READ_CLIENTS, mode, 1.0), mode,
                               "linearizable reads")
        res["stale_reads"] = measure(lambda: synod_bench(every, READ_CLIENTS, mode, 1.0, True),
                                     mode, "READONLY reads")
    else:
        res["reads"] = measure(lambda: synod_bench(every, READ_CLIENTS, mode, 1.0), mode, "GET")

    peak = max(r["ops_per_sec"] for r in res["writes"].values())
    rate = peak / 2
    res["half_load_rate"] = rate
    res["latency"] = measure(lambda: writes(LATENCY_CLIENTS, rate), mode,
                             f"writes at {rate:.0f}/s (half load)",
                             key=lambda r: r["latency_ms"]["p99"])
    return res


# ---------------------------------------------------------------------------------------------
# Failover


def read_acks(path: Path) -> list[tuple[str, int, int, int]]:
    acks = []
    for line in path.read_text().splitlines():
        key, sent, acked, node = line.split()
        acks.append((key, int(sent), int(acked), int(node)))
    return acks


def recovery_ms(acks: list[tuple[str, int, int, int]], killed_ns: int,
                killed: int) -> Optional[float]:
    """From the kill to the first acknowledgement, by a survivor, of a write sent after it."""
    after = [a[2] for a in acks if a[1] >= killed_ns and a[3] != killed]
    return (min(after) - killed_ns) / 1e6 if after else None


def missing_synod(system: Synod, survivor: int, acks: list[tuple[str, int, int, int]]) -> int:
    """Acknowledged keys that a linearizable read through a survivor does not return."""
    import redis  # Debian's python3-redis
    host, port = system.nodes[survivor].client.split(":")
    r = redis.Redis(host=host, port=int(port), socket_timeout=10)
    lost = 0
    keys = [a[0] for a in acks]
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        for k, v in zip(chunk, r.mget(chunk)):
            lost += v is None or v.decode() != k
    return lost


def missing_etcd(system: Etcd, survivor: int, prefix: str,
                 acks: list[tuple[str, int, int, int]]) -> int:
    out = system.etcdctl([system.nodes[survivor].client], "get", "--prefix", prefix + "/",
                         "--keys-only", timeout=60)
    present = set(line for line in out.splitlines() if line)
    return sum(a[0] not in present for a in acks)


def failover_trial(system: System, trial: int) -> dict[str, Any]:
    lead = system.leader()
    if lead is None:
        raise RuntimeError(f"{system.name}: no leader before trial {trial}")
    acks_path = BENCH_DIR / f"{system.name}-failover-{trial}.acks"
    hosts = ",".join(n.client for n in system.nodes)
    if isinstance(system, Etcd):
        prefix = f"fo/{trial}"
        args = [str(ETCD_BENCH), "--failover", "--endpoints", hosts, "--clients", "6",
                "--timeout-ms", "200", "--window", "10", "--duration", "60", "--acks",
                str(acks_path), "--prefix", prefix]
    else:
        prefix = f"fo:{trial}"
        args = ["/usr/bin/python3", str(FAILOVER_PY), "--hosts", hosts, "--clients-per-node",
                "2", "--timeout", "0.2", "--window", "10", "--duration", "60", "--acks",
                str(acks_path), "--prefix", prefix]
    writer = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    LIVE[writer.pid] = writer
    time.sleep(1.0)  # writes flow through every node
    victim = system.nodes[lead]
    killed_ns = time.time_ns()
    os.kill(victim.pid, signal.SIGKILL)
    assert writer.stdin is not None
    writer.stdin.write(f"killed {killed_ns} {lead}\n")
    writer.stdin.flush()
    out, _ = writer.communicate(timeout=90)
    LIVE.pop(writer.pid, None)
    if victim.proc:  # a node we restarted earlier: reap it
        victim.proc.wait()
        LIVE.pop(victim.proc.pid, None)
    summary = json.loads(out)
    acks = read_acks(acks_path)
    rec = recovery_ms(acks, killed_ns, lead)
    survivor = next(i for i in range(3) if i != lead)
    if isinstance(system, Etcd):
        lost = missing_etcd(system, survivor, prefix, acks)
        system.start_node(lead)
        wait_until(lambda: system.healthy(lead), 30, "the restarted etcd member")
    else:
        assert isinstance(system, Synod)
        lost = missing_synod(system, survivor, acks)
        system.restart_node(lead)
        wait_until(lambda: (system.status(lead) or {}).get("leader", 0) not in (0, None), 30,
                   "the restarted synod node")
        # The restarted node is its shard's preferred leader again once it has caught up: let
        # the hand-back happen before the next trial picks the leader to kill.
        system.wait_settled()
    wait_until(lambda: system.leader() is not None, 30, "a leader after the restart")
    time.sleep(0.5)
    log(f"  trial {trial}: killed node {lead + 1}, recovery "
        f"{'none' if rec is None else f'{rec:.0f} ms'}, {len(acks)} acknowledged, {lost} lost")
    return {"killed": lead + 1, "recovery_ms": rec, "acks": len(acks), "lost": lost,
            "errors": summary.get("errors", {})}


def failover(system: System, mode: Mode) -> dict[str, Any]:
    trials = [failover_trial(system, t) for t in range(1, mode.trials + 1)]
    recs = [t["recovery_ms"] for t in trials]
    done = [r for r in recs if r is not None]
    return {"trials": trials,
            "median_ms": statistics.median(done) if len(done) == len(recs) else None,
            "max_ms": max(done) if len(done) == len(recs) else None,
            "lost": sum(t["lost"] for t in trials),
            "acks": sum(t["acks"] for t in trials)}


def check_perf(system: Etcd) -> dict[str, Any]:
    """`etcdctl check perf --load=xl` (its heaviest: 1000 clients, 60 s) on the same cluster."""
    log("  etcdctl check perf --load=xl (60 s)")
    r = subprocess.run(["etcdctl", "--endpoints", ",".join(n.client for n in system.nodes),
                        "check", "perf", "--load=xl", "--prefix", "/check-perf/"],
                       capture_output=True, text=True, timeout=200,
                       env=dict(os.environ, ETCDCTL_API="3"))
    text = (r.stdout + r.stderr).replace("\r", "\n")
    m = re.search(r"Throughput is (\d+) writes/s|Throughput too low: (\d+) writes/s", text)
    tput = int(m.group(1) or m.group(2)) if m else None
    lines = [ln for ln in text.splitlines() if re.match(r"^(PASS|FAIL|Slowest|Stddev)", ln)]
    log(f"  check perf: {tput} writes/s")
    return {"writes_per_sec": tput, "output": lines}


# ---------------------------------------------------------------------------------------------
# Scale out: six shards against one, forwarding, idle shards


def forwarding_run(system: Synod, where: str, mode: Mode) -> dict[str, Any]:
    """Open-loop writes at FORWARD_RATE from FORWARD_CLIENTS connections, all to the data
    shard's leader (`where` = "leader") or all to one follower, which forwards each write to
    the leader over its node-to-node request channel."""
    lead = system.leader()
    if lead is None:
        raise RuntimeError("synod: no leader of the data shard for the forwarding probe")
    node = lead if where == "leader" else (lead + 1) % 3
    r = synod_bench([system.nodes[node].client], FORWARD_CLIENTS, mode, rate=FORWARD_RATE)
    r["node"] = node + 1
    lat = r["latency_ms"]
    log(f"  {FORWARD_RATE}/s to the {where} (node {node + 1}): p50 {lat['p50']:.3f} ms, "
        f"p99 {lat['p99']:.2f} ms, errors {r['requests']['errors']}")
    return r


def layout_round(shards: int, mode: Mode, round_no: int) -> dict[str, Any]:
    """One cluster of `shards` data shards: writes over all three nodes at each SHARD_CLIENTS
    count with the nodes' CPU, and, on the one-shard cluster, the forwarding probe (leader and
    follower alternated between rounds)."""
    system = Synod(shards, f"synod-{shards}-shards")
    log(f"scale out, round {round_no}: {shards} shard(s): starting")
    system.start()
    try:
        out: dict[str, Any] = {"settled": system.settled_at_start,
                               "led_per_node": system.led_per_node(), "writes": {}}
        every = [n.client for n in system.nodes]
        for c in SHARD_CLIENTS:
            r = writes_with_cpu(system, every, c, mode)
            cpu = r["cpu"]
            log(f"  {shards} shard(s), {c} clients over 3 nodes: {r['ops_per_sec']:.0f} writes/s, "
                f"nodes {cpu['node_us_per_write']:.0f} µs CPU/write "
                f"({cpu['node_cores']:.2f} cores), generator {cpu['generator_us_per_write']:.0f} "
                f"µs, errors {r['requests']['errors']}")
            out["writes"][str(c)] = r
        if shards == 1:
            order = ["leader", "follower"] if round_no % 2 else ["follower", "leader"]
            out["forwarding"] = {w: forwarding_run(system, w, mode) for w in order}
        return out
    finally:
        log(f"scale out: {shards} shard(s): stopping")
        system.stop()


def summarize_writes(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median run by throughput, with the median CPU per write over all runs beside it."""
    m = median_run(runs, lambda r: r["ops_per_sec"])
    node = [r["cpu"]["node_us_per_write"] for r in runs]
    gen = [r["cpu"]["generator_us_per_write"] for r in runs]
    m["node_cpu_us_per_write"] = statistics.median(node)
    m["node_cpu_runs"] = node
    m["generator_cpu_us_per_write"] = statistics.median(gen)
    m["generator_cpu_runs"] = gen
    return m


def idle_shards(mode: Mode) -> dict[str, Any]:
    """IDLE_SHARDS data shards on 3 nodes, no clients: after mode.idle_settle seconds (elections,
    hand-backs to preferred leaders, quiescence), each node process's CPU over
    mode.idle_window seconds (% of one core) and its VmRSS (at the end, and the largest
    sample of the window)."""
    system = Synod(IDLE_SHARDS, f"synod-{IDLE_SHARDS}-shards")
    log(f"scale out: {IDLE_SHARDS} idle shards: starting, {mode.idle_settle:g} s to settle, "
        f"then {mode.idle_window:g} s measured")
    system.start()
    try:
        time.sleep(mode.idle_settle)
        pids = system.pids()
        t0, w0 = [cpu_ticks([p]) for p in pids], time.monotonic()
        with RssSampler(pids) as sampler:
            time.sleep(mode.idle_window)
        t1, w1 = [cpu_ticks([p]) for p in pids], time.monotonic()
        rss = [rss_kb(p) for p in pids]
        # Read after the window, so that serving 1,000 shards' JSON is not in the CPU figure.
        statuses = [system.status(i) or {} for i in range(3)]
        res = {"shards": IDLE_SHARDS, "settle_s": mode.idle_settle,
               "window_s": round(w1 - w0, 2),
               "cpu_pct": {str(i + 1): round((t1[i] - t0[i]) / CLK_TCK / (w1 - w0) * 100, 2)
                           for i in range(len(pids))},
               "rss_kb": {str(i + 1): rss[i] for i in range(len(pids))},
               "rss_peak_kb": {str(i + 1): sampler.peak[p] for i, p in enumerate(pids)},
               "groups": {str(i + 1): len(st.get("groups", [])) for i, st in enumerate(statuses)},
               "groups_quiesced": {str(i + 1): st.get("groups_quiesced")
                                   for i, st in enumerate(statuses)},
               "led_per_node": system.led_per_node()}
        log(f"  CPU % of a core per node {list(res['cpu_pct'].values())}, RSS MB "
            f"{[round(k / 1024, 1) for k in rss]}, "
            f"groups quiesced {list(res['groups_quiesced'].values())}")
        return res
    finally:
        log(f"scale out: {IDLE_SHARDS} idle shards: stopping")
        system.stop()


def scale_out(mode: Mode) -> dict[str, Any]:
    """The issue "Scale out"'s rows: 3 nodes x 6 shards against 3 nodes x 1 shard (the layouts
    alternated, mode.reps rounds, a fresh cluster each), the forwarding probe and idle shards.
    """
    rounds: dict[int, list[dict[str, Any]]] = {s: [] for s in SHARD_LAYOUTS}
    for rep in range(1, mode.reps + 1):
        order = SHARD_LAYOUTS if rep % 2 else SHARD_LAYOUTS[::-1]  # against drift
        for shards in order:
            rounds[shards].append(layout_round(shards, mode, rep))
    layouts = {}
    for shards, rs in rounds.items():
        layouts[str(shards)] = {
            "shards": shards, "settled": [r["settled"] for r in rs],
            "led_per_node": [r["led_per_node"] for r in rs],
            "writes": {str(c): summarize_writes([r["writes"][str(c)] for r in rs])
                       for c in SHARD_CLIENTS}}
    fwd_runs = [r["forwarding"] for r in rounds[1]]
    p50 = {w: [f[w]["latency_ms"]["p50"] for f in fwd_runs] for w in ("leader", "follower")}
    forwarding = {
        "rate": FORWARD_RATE, "clients": FORWARD_CLIENTS,
        "leader": median_run([f["leader"] for f in fwd_runs], lambda r: r["latency_ms"]["p50"]),
        "follower": median_run([f["follower"] for f in fwd_runs],
                               lambda r: r["latency_ms"]["p50"]),
        "p50_ms": p50,
        "p50_delta_ms": [round(b - a, 3) for a, b in zip(p50["leader"], p50["follower"])],
        "p50_delta_median_ms": round(statistics.median(p50["follower"]) -
                                     statistics.median(p50["leader"]), 3)}
    log(f"  forwarding: p50 +{forwarding['p50_delta_median_ms']:.3f} ms through a follower")
    return {"layouts": layouts, "clients": SHARD_CLIENTS, "forwarding": forwarding,
            "idle": idle_shards(mode)}


# ---------------------------------------------------------------------------------------------
# The elastic cluster (issue 17): a shard's move (MB/s) and the client p99 during it and during a
# split, the time to balance after two nodes join, the time to heal after a node dies.

ELASTIC_RATE, ELASTIC_CLIENTS = 200, 4  # the steady client whose latency is watched
ELASTIC_VALUE = 16384  # bytes per value of the stored data
DEAD_NODE_TIMEOUT_S = 10


class ElasticSynod(Synod):
    """A `synod up` cluster of three nodes with flags, to which nodes 4 and 5 may join."""

    def __init__(self, name: str, shards: int, flags: list[str]) -> None:
        super().__init__(shards, name)
        self.flags = flags
        self.nodes += [Node(i, f"{HOST}:{SYNOD_BASE + i}") for i in (3, 4)]
        self.shards = 0  # settled() is not used: shards split and move here

    def start(self) -> None:
        wait_until(lambda: all(port_free(p) for p in synod_ports()), 30, "free Synod ports")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        up_log = self.dir / "up.log"
        self.up = spawn(self.up_command(), up_log)
        table = re.compile(r"^\s*(\d+)\s+(\d+)\s+127\.0\.0\.1:(\d+)")

        def parsed() -> bool:
            rows = [m for m in (table.match(ln) for ln in
                                up_log.read_text(errors="replace").splitlines()) if m]
            for m in rows:
                self.nodes[int(m.group(1)) - 1].pid = int(m.group(2))
            return len(rows) == 3

        wait_until(parsed, 60, "synod up")

    def add_node(self, i: int) -> None:
        n = self.nodes[i]
        n.proc = spawn([str(SYNOD), "start", "--id", str(i + 1), "--data",
                        str(self.dir / f"node-{i + 1}"), "--client", n.client, "--peer",
                        f"{HOST}:{SYNOD_BASE + 100 + i}", "--admin", self.admin(i), "--join",
                        self.admin(0)] + self.flags, self.dir / f"node-{i + 1}.log")
        n.pid = n.proc.pid

    def kill9(self, i: int) -> None:
        if self.nodes[i].pid:
            os.kill(self.nodes[i].pid, signal.SIGKILL)
        self.nodes[i].pid = 0

    def live(self) -> list[int]:
        return [i for i, n in enumerate(self.nodes) if n.pid]

    def view(self) -> dict[str, Any]:
        """The meta leader's /status (its moves and liveness), else node 1's."""
        st = self.status(0) or {}
        lead = st.get("meta_leader", 0)
        if lead and lead != 1 and self.nodes[lead - 1].pid:
            st = self.status(lead - 1) or st
        return st

    def balanced(self, nodes: list[int]) -> bool:
        """Every shard on three of `nodes` (ids), replicas within one per node, no learner,
        no move under way."""
        st = self.view()
        shards = st.get("shards", [])
        if not shards or st.get("moves"):
            return False
        count = {n: 0 for n in nodes}
        for s in shards:
            if s.get("learners") or len(s.get("voters", [])) != 3:
                return False
            for v in s["voters"]:
                if v not in count:
                    return False
                count[v] += 1
        return max(count.values()) - min(count.values()) <= 1

    def stored_bytes(self) -> int:
        return sum(s.get("bytes", 0) for s in (self.status(0) or {}).get("shards", []))


def fill(system: ElasticSynod, mb: int) -> dict[str, Any]:
    """Writes about `mb` MB of 16 KiB values through every node; returns the generator's JSON."""
    keys = mb * 1_000_000 // ELASTIC_VALUE
    hosts = [system.nodes[i].client for i in system.live()]
    out = subprocess.run([str(SYNOD), "bench", "--host", ",".join(hosts), "--clients", "16",
                          "--pipeline", "4", "--requests", str(keys * 2), "--keys", str(keys),
                          "--key-size", "16", "--value-size", str(ELASTIC_VALUE),
                          "--read-fraction", "0", "--warmup", "0s", "--duration", "10m",
                          "--no-progress", "--json"], capture_output=True, text=True,
                         timeout=900).stdout
    r = json.loads(out)
    log(f"  filled: {r['ops_per_sec']:.0f} writes/s of {ELASTIC_VALUE} B, "
        f"{r['ops_per_sec'] * ELASTIC_VALUE / 1e6:.0f} MB/s, errors {r['requests']['errors']}"
        f"{'' if not r['requests']['errors'] else ' ' + json.dumps(r.get('errors'))[:300]}"
        f"{'' if not r.get('error_samples') else ' ' + json.dumps(r['error_samples'])[:600]}")
    return r


class Watcher:
    """The steady client (ELASTIC_RATE writes/s, open loop) in consecutive 2-s runs on a thread,
    each run's latencies kept, until stopped."""

    def __init__(self, system: ElasticSynod) -> None:
        self.hosts = [system.nodes[i].client for i in system.live()]
        self.runs: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def one(self) -> dict[str, Any]:
        out = subprocess.run([str(SYNOD), "bench", "--host", ",".join(self.hosts), "--clients",
                              str(ELASTIC_CLIENTS), "--rate", str(ELASTIC_RATE), "--keys",
                              "100000", "--value-size", "256", "--read-fraction", "0",
                              "--warmup", "0s", "--duration", "2s", "--no-progress", "--json"],
                             capture_output=True, text=True, timeout=60).stdout
        r = json.loads(out)
        r["ended"] = time.monotonic()
        return r

    def loop(self) -> None:
        while not self.stop.is_set():
            try:
                self.runs.append(self.one())
            except (ValueError, subprocess.TimeoutExpired):
                pass

    def __enter__(self) -> "Watcher":
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    def summary(self, since: float = 0.0) -> dict[str, Any]:
        runs = [r for r in self.runs if r["ended"] >= since]
        if not runs:
            return {"runs": 0}
        p99 = [r["latency_ms"]["p99"] for r in runs]
        return {"runs": len(runs), "p99_ms_median": round(statistics.median(p99), 3),
                "p99_ms_max": round(max(p99), 3),
                "max_ms": round(max(r["latency_ms"]["max"] for r in runs), 3),
                "errors": sum(r["requests"]["errors"] for r in runs)}


def baseline(system: ElasticSynod, runs: int = 3) -> dict[str, Any]:
    w = Watcher(system)
    w.runs = [w.one() for _ in range(runs)]
    return w.summary()


def elastic_move(mode: Mode, target_ms: float | None = None) -> dict[str, Any]:
    """One shard of mode.move_mb on nodes 1-3 (placement off, no splits) moves to node 4;
    `target_ms`: the nodes' --move-p99-target-ms (None: the default)."""
    flags = ["--placement=off", "--shard-max-bytes=0"]
    if target_ms is not None:
        flags.append(f"--move-p99-target-ms={target_ms:g}")
    system = ElasticSynod("synod-move", 1, flags)
    log(f"elastic: a {mode.move_mb} MB shard's move"
        f"{'' if target_ms is None else f' (--move-p99-target-ms {target_ms:g})'}: starting")
    system.start()
    try:
        system.add_node(3)
        wait_until(lambda: len((system.status(0) or {}).get("node_list", [])) == 4, 30,
                   "node 4 listed")
        # Listed is not serving yet: the fill writes through node 4 too.
        wait_until(lambda: serving(system.nodes[3].client), 30, "node 4 serving")
        fill(system, mode.move_mb)
        stored = system.stored_bytes()
        # The nodes' RocksDB compacts what the fill wrote for a while: the baseline is taken
        # after it, else "before" measures the compaction, not the clients' usual p99.
        time.sleep(min(30.0, mode.move_mb / 20))
        base = baseline(system)
        shard = (system.status(0) or {})["shards"][0]
        source = next(v for v in shard["voters"] if v != shard.get("leader"))
        with Watcher(system) as w:
            time.sleep(2.5)
            t0 = time.monotonic()
            r = subprocess.run([str(SYNOD), "shard", "move", str(shard["group"]), "--from",
                                str(source), "--to", "4", "--host", system.admin(0)],
                               capture_output=True, text=True, timeout=300)
            seconds = time.monotonic() - t0
            # The steady client's runs last 2 s: wait for the one the move ended in to end.
            time.sleep(2.5)
            during = w.summary(since=t0)
        ok = r.returncode == 0
        log(f"  moved {stored / 1e6:.0f} MB in {seconds:.1f} s ({stored / 1e6 / seconds:.1f} "
            f"MB/s){'' if ok else ' FAILED: ' + r.stderr.strip()}; p99 {base['p99_ms_median']} "
            f"ms before, {during.get('p99_ms_max')} ms at worst during")
        # A split of the moved shard, under the same client.
        base2 = baseline(system)
        with Watcher(system) as w:
            time.sleep(1.0)
            t1 = time.monotonic()
            sr = subprocess.run([str(SYNOD), "shard", "split", str(shard["group"]), "--host",
                                 system.admin(0)], capture_output=True, text=True, timeout=60)
            split_s = time.monotonic() - t1
            time.sleep(2.5)
            split_during = w.summary(since=t1)
        log(f"  split in {split_s * 1000:.0f} ms ({'ok' if sr.returncode == 0 else sr.stderr}): "
            f"p99 {base2['p99_ms_median']} ms before, {split_during.get('p99_ms_max')} ms at "
            f"worst in the runs around it, max {split_during.get('max_ms')} ms")
        return {"bytes": stored, "seconds": round(seconds, 2), "ok": ok, "target_ms": target_ms,
                "mb_per_s": round(stored / 1e6 / seconds, 1), "before": base, "during": during,
                "split": {"ms": round(split_s * 1000), "ok": sr.returncode == 0,
                          "before": base2, "during": split_during}}
    finally:
        log("elastic: move: stopping")
        system.stop()
        for i in (3, 4):
            if system.nodes[i].proc:
                stop(system.nodes[i].proc)


def elastic_scale(mode: Mode) -> dict[str, Any]:
    """mode.data_mb on three nodes (shards split at 64 MiB), two nodes join: the time until
    balanced; then one dies: the time until every shard has three replicas on the others."""
    system = ElasticSynod("synod-elastic", 0, [f"--dead-node-timeout={DEAD_NODE_TIMEOUT_S}"])
    log(f"elastic: {mode.data_mb} MB, two nodes join, one dies: starting")
    system.start()
    try:
        fill(system, mode.data_mb)
        wait_until(lambda: system.balanced([1, 2, 3]), 120, "three balanced nodes")
        stored = system.stored_bytes()
        shards = len((system.status(0) or {}).get("shards", []))
        with Watcher(system) as w:
            t0 = time.monotonic()
            system.add_node(3)
            system.add_node(4)
            wait_until(lambda: system.balanced([1, 2, 3, 4, 5]), 600, "five balanced nodes")
            balance_s = time.monotonic() - t0
            during = w.summary(since=t0)
        log(f"  {stored / 1e6:.0f} MB in {shards} shards: balanced over five nodes "
            f"{balance_s:.1f} s after two joined; p99 {during.get('p99_ms_max')} ms at worst")
        t1 = time.monotonic()
        system.kill9(4)
        wait_until(lambda: system.balanced([1, 2, 3, 4]), 600, "healed")
        heal_s = time.monotonic() - t1
        log(f"  healed {heal_s:.1f} s after a kill -9 (dead-node timeout {DEAD_NODE_TIMEOUT_S} s)")
        return {"bytes": stored, "shards": shards, "balance_s": round(balance_s, 1),
                "during_balance": during, "heal_s": round(heal_s, 1),
                "dead_node_timeout_s": DEAD_NODE_TIMEOUT_S}
    finally:
        log("elastic: stopping")
        system.stop()
        for i in (3, 4):
            if system.nodes[i].proc:
                stop(system.nodes[i].proc)


# The tight latency target of the second move: the throttle's trade of speed for p99.
TIGHT_MOVE_TARGET_MS = 5.0


# ---------------------------------------------------------------------------------------------
# Scripts: EVALSHA beside the plain commands it runs, and beside durable Redis's EVALSHA

SCRIPT_CLIENTS = 64
# An INCR-style script (one command) and a 10-command one (ten INCRBYs of its key).
SCRIPT_ONE = "return redis.call('incr', KEYS[1])"
SCRIPT_TEN = ("local v = 0 for i = 1, 10 do v = redis.call('incrby', KEYS[1], 1) end return v")


def redis_benchmark(port: int, args: list[str], mode: Mode) -> float:
    """redis-benchmark's requests per second for one command line, 64 clients, random keys."""
    n = int(max(2000, 4000 * mode.duration))
    out = run(["redis-benchmark", "-h", HOST, "-p", str(port), "-c", str(SCRIPT_CLIENTS), "-n",
               str(n), "-r", "100000", "-q", *args], capture_output=True, timeout=600).stdout
    m = re.findall(r"([0-9.]+) requests per second", out)
    return float(m[-1]) if m else 0.0


def script_rows(port: int, mode: Mode) -> dict[str, Any]:
    sha = {}
    for name, body in (("one", SCRIPT_ONE), ("ten", SCRIPT_TEN)):
        sha[name] = run(["redis-cli", "-h", HOST, "-p", str(port), "SCRIPT", "LOAD", body],
                        capture_output=True).stdout.strip()
    rows: dict[str, list[float]] = {"incr": [], "one": [], "ten": []}
    for _ in range(mode.reps):
        rows["incr"].append(redis_benchmark(port, ["INCR", "key:__rand_int__"], mode))
        for name in ("one", "ten"):
            rows[name].append(redis_benchmark(
                port, ["EVALSHA", sha[name], "1", "key:__rand_int__"], mode))
    return {k: statistics.median(v) for k, v in rows.items()}


def scripts_part(mode: Mode) -> dict[str, Any]:
    out: dict[str, Any] = {"clients": SCRIPT_CLIENTS}
    for system in (Redis(), Synod()):
        system.start()
        try:
            port = REDIS_PORT if system.name == "redis" else SYNOD_BASE
            out[system.name] = script_rows(port, mode)
            log(f"scripts {system.name}: {out[system.name]}")
        finally:
            system.stop()
    return out


def elastic(mode: Mode) -> dict[str, Any]:
    return {"move": elastic_move(mode), "move_tight": elastic_move(mode, TIGHT_MOVE_TARGET_MS),
            "scale": elastic_scale(mode), "rate": ELASTIC_RATE, "clients": ELASTIC_CLIENTS}


# ---------------------------------------------------------------------------------------------
# Orchestration


def machine() -> dict[str, Any]:
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                .splitlines() if ln.startswith("model name")), platform.processor())
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    df = subprocess.run(["df", "-hT", str(BENCH_DIR)], capture_output=True, text=True).stdout
    fm = subprocess.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", str(BENCH_DIR)],
                        capture_output=True, text=True).stdout.strip()
    src = fm.split()[0] if fm else ""
    lsblk = subprocess.run(["lsblk", "-d", "-n", "-o", "NAME,SIZE,ROTA,TYPE,MODEL", src],
                           capture_output=True, text=True).stdout.strip() if src else ""

    def version(args: list[str]) -> str:
        try:
            return subprocess.run(args, capture_output=True, text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            return "?"

    return {"cores": os.cpu_count(), "cpu": cpu, "mem_gib": round(int(mem) / 2**20, 1),
            "kernel": platform.release(), "os": version(["cat", "/etc/debian_version"]),
            "df": df.strip(), "findmnt": fm, "lsblk": lsblk,
            "etcd": version(["etcd", "--version"]),
            "redis": version(["redis-server", "--version"]),
            "load_before": os.getloadavg()}


def bench_system(system: System, mode: Mode) -> dict[str, Any]:
    log(f"{system.name}: starting")
    system.start()
    try:
        res = workloads(system, mode)
        if isinstance(system, (Etcd, Synod)):
            log(f"{system.name}: failover, {mode.trials} trials")
            res["failover"] = failover(system, mode)
        if isinstance(system, Etcd) and mode.check_perf:
            res["check_perf"] = check_perf(system)
        return res
    finally:
        log(f"{system.name}: stopping")
        system.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description="Synod vs etcd vs Redis (docs/benchmarks.md)")
    ap.add_argument("--quick", action="store_true", help="about one minute: short points, 1 run")
    ap.add_argument("--only", default="etcd,redis,synod,scale_out,elastic,scripts",
                    help="what to run (debugging): etcd, redis, synod, scale_out, elastic, "
                         "scripts")
    args = ap.parse_args()
    mode = QUICK if args.quick else FULL
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: (cleanup(), sys.exit(128 + s)))
    started = time.time()
    try:
        install_packages()
        build()
        BENCH_DIR.mkdir(parents=True, exist_ok=True)
        busy = [p for p in ETCD_CLIENT_PORTS + ETCD_PEER_PORTS + [REDIS_PORT] + synod_ports()
                if not port_free(p)]
        if busy:
            raise RuntimeError(f"ports in use: {busy}")
        results: dict[str, Any] = {"mode": mode.__dict__, "machine": machine(),
                                   "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        systems: list[System] = [Etcd(), Redis(), Synod()]
        for s in systems:
            if s.name in args.only.split(","):
                results[s.name] = bench_system(s, mode)
        if "scale_out" in args.only.split(","):
            results["scale_out"] = scale_out(mode)
        if "elastic" in args.only.split(","):
            results["elastic"] = elastic(mode)
        if "scripts" in args.only.split(","):
            results["scripts"] = scripts_part(mode)
        results["seconds"] = round(time.time() - started)
        (BENCH_DIR / "results.json").write_text(json.dumps(results, indent=1))
        if set(args.only.split(",")) != set(ap.get_default("only").split(",")):
            # A part (debugging): docs/benchmarks.md keeps the last whole run's numbers.
            log(f"done in {results['seconds']} s: build/compare/results.json (a partial run: "
                "docs/benchmarks.md left as it was)")
            return 0
        sys.path.insert(0, str(Path(__file__).parent))
        import report  # scripts/compare/report.py
        report.write_all(results, mode.name)
        log(f"done in {results['seconds']} s: docs/benchmarks.md, docs/benchmarks/*.png, "
            f"build/compare/results.json")
        return 0
    finally:
        cleanup()


if __name__ == "__main__":
    sys.exit(main())
