"""The report of `make bench` (scripts/compare/run.py): docs/benchmarks.md, the PNG plots in
docs/benchmarks/ (Debian's gnuplot) and README.md's headline paragraph between its bench markers.

write_all(results, target) is the entry point; results is what build/compare/results.json holds.
Standard library only.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PLOTS = DOCS / "benchmarks"
DATA = ROOT / "build" / "compare" / "plot"
README = ROOT / "README.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
SYSTEMS = ["synod", "etcd", "redis"]
LABEL = {"synod": "Synod (3 nodes)", "etcd": "etcd (3 members)", "redis": "Redis (1 node, AOF always)"}

# Targets from the issue: reported, not asserted.
TARGET_WRITE_VS_ETCD = 10.0
TARGET_WRITE_VS_REDIS = 0.5
TARGET_READ_VS_REDIS = 0.5
TARGET_P99_MS = 5.0
TARGET_FAILOVER_MS = 1000.0
TARGET_IDLE_RSS_MB = 50.0
# The issue "Scale out": 3 nodes x 6 shards against 1 shard, forwarding, idle shards.
TARGET_SHARD_WRITES_RATIO = 1.0  # writes/s of 6 shards at least one shard's
TARGET_SHARD_CPU_RATIO = 1.10  # CPU per write of 6 shards within 10% of one shard's
TARGET_FORWARD_P50_MS = 0.3  # p50 through a forwarding node at most this above the leader's
TARGET_IDLE_SHARDS_CPU_PCT = 2.0  # 1,000 idle shards: % of a core per node, under
TARGET_IDLE_SHARDS_RSS_MB = 200.0  # and MB resident per node, under


def ops(r: Optional[dict[str, Any]]) -> Optional[float]:
    return None if r is None else r.get("ops_per_sec")


def fmt_ops(v: Optional[float]) -> str:
    return "—" if v is None else f"{v:,.0f}"


def fmt_ms(v: Optional[float]) -> str:
    return "—" if v is None else (f"{v:.2f}" if v < 100 else f"{v:,.0f}")


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or not b else a / b


def fmt_ratio(v: Optional[float]) -> str:
    return "—" if v is None else f"{v:.2f}×"


def get(results: dict[str, Any], system: str, *path: str) -> Any:
    node: Any = results.get(system)
    for p in path:
        if not isinstance(node, dict) or p not in node:
            return None
        node = node[p]
    return node


def mb(kb: Optional[int]) -> str:
    return "—" if kb is None else f"{kb / 1024:.1f}"


# ---------------------------------------------------------------------------------------------
# Plots


def gnuplot(script: str) -> None:
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


def plot_throughput(results: dict[str, Any]) -> None:
    lines = []
    for s in SYSTEMS:
        writes = get(results, s, "writes") or {}
        if not writes:
            continue
        dat = DATA / f"writes-{s}.dat"
        dat.write_text("".join(f"{c} {w['ops_per_sec']:.1f}\n"
                               for c, w in sorted(writes.items(), key=lambda kv: int(kv[0]))))
        lines.append(f"'{dat}' using 1:2 with linespoints lw 2 pt 7 title '{LABEL[s]}'")
    gnuplot(f"""set terminal pngcairo size 900,560 font 'DejaVu Sans,11'
set output '{PLOTS / "writes.png"}'
set title 'Write throughput (SET / Put, 8-byte keys, 256-byte values, fsync on)'
set xlabel 'concurrent clients'
set ylabel 'acknowledged writes per second'
set logscale x 2
set logscale y 10
set xtics (1, 4, 16, 64, 256)
set xrange [0.8:320]
set grid
set key top left
plot {", ".join(lines)}
""")


def plot_cdf(results: dict[str, Any]) -> None:
    lines = []
    for s in SYSTEMS:
        cdf = get(results, s, "latency", "cdf_ms")
        if not cdf:
            continue
        dat = DATA / f"cdf-{s}.dat"
        dat.write_text("".join(f"{max(ms, 0.001):.4f} {p}\n" for p, ms in cdf))
        rate = get(results, s, "half_load_rate") or 0
        lines.append(f"'{dat}' using 1:2 with linespoints lw 2 pt 7 ps 0.6 "
                     f"title '{LABEL[s]} at {rate:,.0f}/s'")
    gnuplot(f"""set terminal pngcairo size 900,560 font 'DejaVu Sans,11'
set output '{PLOTS / "latency-cdf.png"}'
set title 'Write latency at half of each system''s maximum throughput (open loop, 256 clients)'
set xlabel 'latency (ms, log scale)'
set ylabel 'percent of requests at or below'
set logscale x 10
set yrange [0:100]
set grid
set key bottom right
plot {", ".join(lines)}
""")


# ---------------------------------------------------------------------------------------------
# Markdown


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def machine_section(r: dict[str, Any]) -> str:
    m = r["machine"]
    return f"""## The machine

| | |
|---|---|
| CPU | {m['cores']} cores, {m['cpu']} |
| memory | {m['mem_gib']} GiB |
| kernel | Linux {m['kernel']} (Debian {m['os']}) |
| disk of the data directories | `{m['findmnt']}`; `{m['lsblk'] or '?'}` (lsblk: NAME SIZE ROTA TYPE MODEL) |
| load average at start | {' / '.join(f'{x:.2f}' for x in m['load_before'])} (1/5/15 min; the machine is shared) |
| etcd | {m['etcd']} (Debian's etcd-server) |
| Redis | {m['redis']} (Debian's redis-server) |

```
{m['df']}
```

Everything runs on this one machine over loopback (127.0.0.1): all nodes of a system, and
its load generator, share the {m['cores']} cores. One system runs at a time.
"""


def commands_section(r: dict[str, Any], target: str) -> str:
    mode = r["mode"]
    d, w = mode["duration"], mode["warmup"]
    settle, window = mode.get("idle_settle", 25), mode.get("idle_window", 30)
    return f"""## Where the time goes

[performance.md](performance.md) has Synod's profile: what each change of the write and read
paths bought, and what the remaining CPU per operation is spent on.

## What ran, exactly

`make {target}` ({'one run per point' if mode['reps'] == 1 else f"{mode['reps']} runs per point, the median reported"};
{d:g} s measured per point after {w:g} s of warmup; {mode['trials']} failover trials per system;
{r['seconds']} s in all). The systems, one at a time, each in a fresh directory under
`build/compare/`:

```
# etcd: 3 members, fsync on (the default); member i = 1..3: CLIENT = 23378+i, PEER = 23478+i
etcd --name e$i --data-dir build/compare/etcd/e$i \\
     --listen-client-urls http://127.0.0.1:$CLIENT --advertise-client-urls http://127.0.0.1:$CLIENT \\
     --listen-peer-urls http://127.0.0.1:$PEER --initial-advertise-peer-urls http://127.0.0.1:$PEER \\
     --initial-cluster e1=http://127.0.0.1:23479,e2=http://127.0.0.1:23480,e3=http://127.0.0.1:23481 \\
     --initial-cluster-state new --initial-cluster-token synod-bench \\
     --quota-backend-bytes 8589934592     # the only change: room for every run's revisions
# Redis: one durable node
redis-server --port 26479 --bind 127.0.0.1 --appendonly yes --appendfsync always --save '' \\
     --dir build/compare/redis --daemonize no
# Synod: 3 nodes (clients 25001-25003), one data shard, fsync always on
build/release/src/cli/synod up --nodes 3 --shards 1 --dir build/compare/synod --base-port 25001
```

The workloads (K = 100000 keys of 8 bytes, 256-byte values, one request outstanding per client):

```
# writes, C = 1, 16, 64, 256
synod bench --host LEADER --clients C --read-fraction 0 --keys 100000 --key-size 8 \\
     --value-size 256 --duration {d:g}s --warmup {w:g}s --json               # Synod (leader's port)
synod bench --host 127.0.0.1:26479 --clients C --read-fraction 0 ...        # Redis
etcd_bench --endpoints LEADER --clients C --read-fraction 0 --keys 100000 --key-size 8 --value-size 256 ...  # etcd
# reads, 64 clients, over every node / endpoint
synod bench --host N1,N2,N3 --clients 64 --read-fraction 1 [--readonly]      # Synod
synod bench --host 127.0.0.1:26479 --clients 64 --read-fraction 1            # Redis GET
etcd_bench --endpoints E1,E2,E3 --clients 64 --read-fraction 1 [--serializable]  # etcd
# latency: open loop at half of the system's best write throughput, 256 clients
synod bench ... --read-fraction 0 --clients 256 --rate R;  etcd_bench ... --rate R
# failover (etcd and Synod): 6 writers, 2 per node, 200 ms client timeout; SIGKILL the leader
etcd_bench --failover --endpoints E1,E2,E3 --clients 6 --timeout-ms 200 --acks FILE
scripts/compare/synod_failover.py --hosts N1,N2,N3 --clients-per-node 2 --timeout 0.2 --acks FILE
```

Synod's scale-out rows, after the three systems, each cluster fresh on the same ports:

```
# S = 1 and 6 shards, alternated, {mode['reps']} round(s), once every shard has its preferred
# leader:
synod up --nodes 3 --shards S --dir build/compare/synod-S-shards --base-port 25001
synod bench --host N1,N2,N3 --clients C --read-fraction 0 ...   # C = 64, 256; + /proc/PID/stat
# forwarding, on the one-shard cluster: all to the leader, then all to a follower (or the reverse)
synod bench --host LEADER|FOLLOWER --clients 8 --rate 500 --read-fraction 0 ...
# idle, no clients: {settle:g} s to settle, then CPU over {window:g} s
synod up --nodes 3 --shards 1000 --dir build/compare/synod-1000-shards --base-port 25001
```

Where requests go: writes go to the leader's client port, for Synod (the leader of its one
data shard) and for etcd alike (a follower would forward them to the leader, one more hop; for
etcd, spreading Puts over the three endpoints as its client library does measured no faster
than sending them to the leader). Reads, linearizable or stale, are spread over all three
nodes. Redis is one process, so everything goes to it. The scale-out rows spread writes over
all three nodes in both layouts: with six shards there is no one leader to send them to.
"""


def etcd_client_section(r: dict[str, Any]) -> str:
    cp = get(r, "etcd", "check_perf")
    best = max((ops(v) or 0 for v in (get(r, "etcd", "writes") or {}).values()), default=0)
    check = ""
    if cp:
        check = (f"On the same cluster, at the end of the etcd runs, `etcdctl check perf "
                 f"--load=xl` (etcd's own Go client, 1000 clients, 60 s) reached "
                 f"**{fmt_ops(cp['writes_per_sec'])} writes/s** (`{'; '.join(cp['output'])}`), "
                 f"against **{fmt_ops(best)} writes/s** for `etcd_bench` at its best client "
                 f"count: the driver gets more out of the same cluster than etcd's own client does, so "
                 f"it is not what holds etcd's numbers down. (check perf runs last, on a "
                 f"database the earlier runs have grown.)")
    else:
        check = ("`make bench` (not `bench-quick`) also runs `etcdctl check perf --load=xl` "
                 "on the same cluster and prints its throughput here, as a check that the "
                 "driver is not the bottleneck.")
    return f"""## The etcd client

etcd's numbers come from `etcd_bench` (scripts/compare/etcd_client/): a C++ client of etcd's
v3 gRPC KV API built on Debian's gRPC 1.51 (libgrpc++-dev), using the asynchronous
CompletionQueue API on one thread, one HTTP/2 connection per 16 clients (at least one per
endpoint), and a minimal wire-compatible copy of etcd's `Range` / `Put` messages. Same key and
value shapes, the same closed and open loops and the same JSON as `synod bench`. {check}
"""


def writes_section(r: dict[str, Any]) -> str:
    rows = []
    clients = sorted({int(c) for s in SYSTEMS for c in (get(r, s, "writes") or {})})
    for c in clients:
        v = {s: get(r, s, "writes", str(c)) for s in SYSTEMS}
        rows.append([str(c)] + [
            f"{fmt_ops(ops(v[s]))} ({fmt_ms(get(r, s, 'writes', str(c), 'latency_ms', 'p99'))})"
            for s in SYSTEMS] + [fmt_ratio(ratio(ops(v["synod"]), ops(v["etcd"]))),
                                 fmt_ratio(ratio(ops(v["synod"]), ops(v["redis"])))])
    return ("## Writes\n\nAcknowledged writes per second (p99 latency in ms), closed loop: each "
            "client sends its next write when the previous one is acknowledged. Every "
            "acknowledged write is on disk (fsync) — on a majority for Synod and etcd.\n\n" +
            table(["clients", "Synod", "etcd", "Redis", "Synod / etcd", "Synod / Redis"], rows) +
            "\n![write throughput against clients](benchmarks/writes.png)\n")


def reads_section(r: dict[str, Any]) -> str:
    lin = {s: ops(get(r, s, "reads")) for s in SYSTEMS}
    stale = {"synod": ops(get(r, "synod", "stale_reads")),
             "etcd": ops(get(r, "etcd", "stale_reads")), "redis": lin["redis"]}

    def row(name: str, v: dict[str, Optional[float]], kind: str) -> list[str]:
        def p99(s: str) -> Optional[float]:  # Redis has no stale reads: its GET run
            return get(r, s, kind if s != "redis" else "reads", "latency_ms", "p99")

        return [name] + [f"{fmt_ops(v[s])} ({fmt_ms(p99(s))})" for s in SYSTEMS] + [fmt_ratio(ratio(v["synod"], v["etcd"])),
                                              fmt_ratio(ratio(v["synod"], v["redis"]))]

    return ("## Reads\n\nReads per second (p99 ms), 64 clients, closed loop, over every node "
            "(Redis: its one node). *Linearizable*: Synod's default reads (ReadIndex), etcd's "
            "default linearizable Range; *stale*: Synod after `READONLY` (served by the node "
            "connected to), etcd's serializable Range. Redis has one kind: GET, in both rows. "
            "Keys are whatever the write runs left (most reads find a value; the JSON in "
            "build/compare/results.json counts the misses).\n\n" +
            table(["reads", "Synod", "etcd", "Redis GET", "Synod / etcd", "Synod / Redis"],
                  [row("linearizable", lin, "reads"),
                   row("stale (READONLY / serializable)", stale, "stale_reads")]))


def latency_section(r: dict[str, Any]) -> str:
    rows = []
    for s in SYSTEMS:
        lat = get(r, s, "latency", "latency_ms")
        if not lat:
            continue
        rows.append([LABEL[s], fmt_ops(get(r, s, "half_load_rate")),
                     fmt_ops(ops(get(r, s, "latency")))] +
                    [fmt_ms(lat[k]) for k in ("p50", "p90", "p99", "p99_9", "max")] +
                    [str(get(r, s, "latency", "backlog"))])
    p99 = {s: get(r, s, "latency", "latency_ms", "p99") for s in SYSTEMS}
    return ("## Latency at half load\n\nWrites in an open loop at half of each system's best "
            "write throughput above, 256 clients on a fixed schedule; latency counts from each "
            "request's scheduled send time (no coordinated omission). Milliseconds. "
            f"p99 ratios: Synod / etcd {fmt_ratio(ratio(p99['synod'], p99['etcd']))}, "
            f"Synod / Redis {fmt_ratio(ratio(p99['synod'], p99['redis']))} (lower is "
            "better).\n\n" +
            table(["system", "target rate", "achieved", "p50", "p90", "p99", "p99.9", "max",
                   "backlog"], rows) +
            "\n![write latency CDF at half load](benchmarks/latency-cdf.png)\n")


def failover_section(r: dict[str, Any]) -> str:
    rows = []
    for s in ("synod", "etcd"):
        f = get(r, s, "failover")
        if not f:
            continue
        each = ", ".join("none" if t["recovery_ms"] is None else f"{t['recovery_ms']:.0f}"
                         for t in f["trials"])
        rows.append([LABEL[s], str(len(f["trials"])), fmt_ms(f["median_ms"]),
                     fmt_ms(f["max_ms"]), f"{f['acks']:,}", str(f["lost"]), each])
    med = {s: get(r, s, "failover", "median_ms") for s in ("synod", "etcd")}
    return ("## Failover\n\nWriters (2 per node, each writing unique keys through one node with "
            "a 200 ms client timeout, retrying 10 ms after a failure) run for 1 s; then the "
            "leader is killed with SIGKILL. *Recovery* is the time from the kill to the first "
            "acknowledgement, by a surviving node, of a write sent after the kill. After each "
            "trial every acknowledged key is read back (linearizably) through a survivor; "
            "*lost* counts those missing. The killed node is restarted on its data before the "
            "next trial. Both use their default election timeouts (Synod: 50 ms ticks, 10-20 "
            "ticks; etcd: 1000 ms). Milliseconds. Median ratio Synod / etcd: "
            f"{fmt_ratio(ratio(med['synod'], med['etcd']))}.\n\n" +
            table(["system", "trials", "median", "max", "acknowledged writes", "lost",
                   "each trial"], rows))


def memory_section(r: dict[str, Any]) -> str:
    rows = []
    for s in SYSTEMS:
        idle = get(r, s, "rss_idle_kb") or {}
        load = get(r, s, "rss_load_kb") or {}
        for n in sorted(idle, key=int):
            rows.append([LABEL[s], n, mb(idle.get(n)), mb(load.get(n))])
    return ("## Resident memory\n\nVmRSS of each node process (/proc/PID/status), in MB: "
            "*idle* one second after start, before any load; *under load* the largest sample "
            "(every 200 ms) during the 64-client write runs.\n\n" +
            table(["system", "node", "idle MB", "under load MB"], rows))


def targets(r: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(target, met, the numbers) for each target of the issue."""
    out: list[tuple[str, bool, str]] = []
    s64, e64, r64 = (ops(get(r, s, "writes", "64")) for s in SYSTEMS)
    x = ratio(s64, e64)
    out.append((f"writes at 64 clients: Synod ≥ {TARGET_WRITE_VS_ETCD:g}× etcd",
                x is not None and x >= TARGET_WRITE_VS_ETCD,
                f"{fmt_ops(s64)} vs {fmt_ops(e64)} writes/s: {fmt_ratio(x)}"))
    x = ratio(s64, r64)
    out.append((f"writes at 64 clients: Synod ≥ {TARGET_WRITE_VS_REDIS:g}× durable Redis",
                x is not None and x >= TARGET_WRITE_VS_REDIS,
                f"{fmt_ops(s64)} vs {fmt_ops(r64)} writes/s: {fmt_ratio(x)}"))
    sr, rr = ops(get(r, "synod", "reads")), ops(get(r, "redis", "reads"))
    x = ratio(sr, rr)
    out.append((f"linearizable reads: Synod ≥ {TARGET_READ_VS_REDIS:g}× Redis GET",
                x is not None and x >= TARGET_READ_VS_REDIS,
                f"{fmt_ops(sr)} vs {fmt_ops(rr)} reads/s: {fmt_ratio(x)}"))
    p99 = get(r, "synod", "latency", "latency_ms", "p99")
    nums = f"p99 {fmt_ms(p99)} ms at {fmt_ops(get(r, 'synod', 'half_load_rate'))} writes/s"
    rp99 = get(r, "redis", "latency", "latency_ms", "p99")
    if rp99 is not None:  # the anchor's tail at its own half load, on the same machine
        nums += (f" (Redis, one process, at its half load: p99 {fmt_ms(rp99)} ms at "
                 f"{fmt_ops(get(r, 'redis', 'half_load_rate'))} writes/s)")
    out.append((f"Synod p99 write latency at half load ≤ {TARGET_P99_MS:g} ms",
                p99 is not None and p99 <= TARGET_P99_MS, nums))
    f = get(r, "synod", "failover") or {}
    med, lost = f.get("median_ms"), f.get("lost")
    out.append((f"Synod failover median ≤ {TARGET_FAILOVER_MS / 1000:g} s, no acknowledged "
                "write lost", med is not None and med <= TARGET_FAILOVER_MS and lost == 0,
                f"median {fmt_ms(med)} ms, max {fmt_ms(f.get('max_ms'))} ms over "
                f"{len(f.get('trials', []))} trials; {lost} of {f.get('acks', 0):,} "
                "acknowledged writes lost"))
    idle = get(r, "synod", "rss_idle_kb") or {}
    worst = max(idle.values()) if idle else None
    out.append((f"Synod idle RSS ≤ {TARGET_IDLE_RSS_MB:g} MB per node",
                worst is not None and worst / 1024 <= TARGET_IDLE_RSS_MB,
                f"largest {mb(worst)} MB ({', '.join(mb(v) for v in idle.values())})"))
    return out


def targets_section(r: dict[str, Any]) -> str:
    rows = [[t, "**met**" if ok else "**not met**", nums] for t, ok, nums in targets(r)]
    return ("## Targets\n\nFrom the issue; reported, not asserted.\n\n" +
            table(["target", "", "numbers"], rows) +
            "\nWhere the time of a write goes, what each optimization bought, and which targets "
            "this machine puts out of reach (with the measurements that show it): "
            "[performance.md](performance.md).\n")


# ---------------------------------------------------------------------------------------------
# Scale out


def shard_writes(r: dict[str, Any], shards: int, clients: int) -> Optional[dict[str, Any]]:
    return get(r, "scale_out", "layouts", str(shards), "writes", str(clients))


def shard_value(r: dict[str, Any], shards: int, clients: int, key: str) -> Optional[float]:
    w = shard_writes(r, shards, clients)
    return None if w is None else w.get(key)


def fmt_us(v: Optional[float]) -> str:
    return "—" if v is None else f"{v:,.0f}"


def scale_targets(r: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(target, met, the numbers) for each target of the issue "Scale out"."""
    if not r.get("scale_out"):
        return []
    clients = get(r, "scale_out", "clients") or []
    out: list[tuple[str, bool, str]] = []
    for what, key, fmt, ok_if in (
            ("6 shards: writes/s at least one shard's", "ops_per_sec",
             fmt_ops, lambda x: x >= TARGET_SHARD_WRITES_RATIO),
            (f"6 shards: node CPU per write within "
             f"{(TARGET_SHARD_CPU_RATIO - 1) * 100:.0f}% of one shard's",
             "node_cpu_us_per_write", lambda v: f"{fmt_us(v)} µs",
             lambda x: x <= TARGET_SHARD_CPU_RATIO)):
        met, nums = True, []
        for c in clients:
            one, six = shard_value(r, 1, c, key), shard_value(r, 6, c, key)
            x = ratio(six, one)
            met = met and x is not None and ok_if(x)
            nums.append(f"{c} clients: {fmt(six)} vs {fmt(one)}, {fmt_ratio(x)}")
        out.append((what + f" (at {' and '.join(map(str, clients))} clients)", met,
                    "; ".join(nums)))
    f = get(r, "scale_out", "forwarding") or {}
    d = f.get("p50_delta_median_ms")
    lead, fol = get(f, "leader", "latency_ms", "p50"), get(f, "follower", "latency_ms", "p50")
    out.append((f"p50 write through a forwarding node ≤ the leader's "
                f"+ {TARGET_FORWARD_P50_MS:g} ms", d is not None and d <= TARGET_FORWARD_P50_MS,
                f"{d:+.2f} ms (p50 {lead:.2f} ms at the leader, {fol:.2f} ms through a follower; "
                f"{f['rate']}/s, {f['clients']} clients)" if d is not None else "—"))
    idle = get(r, "scale_out", "idle") or {}
    cpu = idle.get("cpu_pct") or {}
    worst = max(cpu.values()) if cpu else None
    n = idle.get("shards", 0)
    out.append((f"{n:,} idle shards: < {TARGET_IDLE_SHARDS_CPU_PCT:g}% of a core per node",
                worst is not None and worst < TARGET_IDLE_SHARDS_CPU_PCT,
                f"largest {worst:.2f}% ({', '.join(f'{v:.2f}' for v in cpu.values())})"
                if worst is not None else "—"))
    rss = idle.get("rss_peak_kb") or {}
    top = max(rss.values()) if rss else None
    out.append((f"{n:,} idle shards: < {TARGET_IDLE_SHARDS_RSS_MB:g} MB per node",
                top is not None and top / 1024 < TARGET_IDLE_SHARDS_RSS_MB,
                f"largest {mb(top)} MB ({', '.join(mb(v) for v in rss.values())})"))
    return out


def runs_text(xs: Optional[list[float]], fmt: Any) -> str:
    return "" if not xs or len(xs) < 2 else f" (runs {' / '.join(fmt(x) for x in xs)})"


def scale_out_section(r: dict[str, Any]) -> str:
    so = r.get("scale_out")
    if not so:
        return ("## Scale out: six shards against one\n\nNot run this time "
                "(`scripts/compare/run.py --only` left out `scale_out`).\n")
    mode = r["mode"]
    rows = [[t, "**met**" if ok else "**not met**", nums] for t, ok, nums in scale_targets(r)]
    out = ["## Scale out: six shards against one\n\n"
           "Synod alone, 3 nodes: 6 data shards (two per node, the default layout, every node "
           "holding a replica of each) against 1 shard. A fresh cluster per layout and round "
           f"({mode['reps']} round{'s' if mode['reps'] > 1 else ''}, the layouts alternated), "
           "and before measuring a wait (at most 30 s) until every shard is led by its "
           "preferred leader: the layout spreads those evenly, two shards per node with six "
           "(*shards led per node* below). Writes run closed-loop from `synod bench` with "
           "its connections spread over all three nodes' client ports in both layouts, so a "
           "node forwards each write whose shard another node leads (two thirds of them in "
           "either layout). *Node CPU per write*: utime + stime of the three node processes "
           "(/proc/PID/stat) over the measured interval, divided by the writes acknowledged "
           "in it; the load generator runs on the same two cores and its own CPU per write is "
           "shown apart, not included. Targets from the issue; reported, not asserted.\n\n" +
           table(["target", "", "numbers"], rows) + "\n"]
    clients = so.get("clients", [])

    def cells(c: int, key: str, runs_key: str, fmt: Any) -> list[str]:
        one, six = shard_value(r, 1, c, key), shard_value(r, 6, c, key)
        return [fmt(one) + runs_text(shard_value(r, 1, c, runs_key), fmt),
                fmt(six) + runs_text(shard_value(r, 6, c, runs_key), fmt),
                fmt_ratio(ratio(six, one))]

    lrows = []
    for c in clients:
        lrows.append([f"writes/s, {c} clients"] + cells(c, "ops_per_sec", "runs", fmt_ops))
    for c in clients:
        lrows.append([f"node CPU µs per write, {c} clients"] +
                     cells(c, "node_cpu_us_per_write", "node_cpu_runs", fmt_us))
    for c in clients:
        p99 = [get(shard_writes(r, s, c) or {}, "latency_ms", "p99") for s in (1, 6)]
        lrows.append([f"p99 ms, {c} clients (the median run)"] + [fmt_ms(x) for x in p99] +
                     [fmt_ratio(ratio(p99[1], p99[0]))])
    for c in clients:
        lrows.append([f"load generator CPU µs per write, {c} clients (not in the above)"] +
                     cells(c, "generator_cpu_us_per_write", "generator_cpu_runs", fmt_us))
    def leaders(s: int) -> str:
        led = get(so, "layouts", str(s), "led_per_node") or []
        ok = get(so, "layouts", str(s), "settled") or [True] * len(led)
        return ", ".join("/".join(map(str, x)) + ("" if y else " (not settled)")
                         for x, y in zip(led, ok)) or "—"

    lrows.append(["shards led per node (nodes 1 / 2 / 3), each round"] +
                 [leaders(s) for s in (1, 6)] + [""])
    out.append(table(["", "1 shard", "6 shards", "6 / 1"], lrows))

    f = so.get("forwarding") or {}
    if f:
        frows = []
        for w, name in (("leader", "the leader"), ("follower", "a follower (forwards)")):
            lat = get(f, w, "latency_ms") or {}
            frows.append([name, fmt_ms(lat.get("p50")) + runs_text(get(f, "p50_ms", w), fmt_ms),
                          fmt_ms(lat.get("p90")), fmt_ms(lat.get("p99")),
                          str(get(f, w, "requests", "errors"))])
        out.append(f"\n**Forwarding.** On the one-shard cluster, {f['clients']} connections send "
                   f"writes in an open loop at {f['rate']}/s in all (latency from each "
                   "request's scheduled send time), all to the shard's leader or all to one "
                   "follower, which forwards each to the leader over its node-to-node request "
                   "channel; the two alternated, one run of each per round. Milliseconds (the "
                   f"median run): p50 **{f['p50_delta_median_ms']:+.2f} ms** through the "
                   f"follower (per round: {', '.join(f'{d:+.2f}' for d in f['p50_delta_ms'])})."
                   "\n\n" + table(["sent to", "p50", "p90", "p99", "errors"], frows))
    idle = so.get("idle") or {}
    if idle:
        irows = [[n, f"{idle['cpu_pct'][n]:.2f}", mb(idle["rss_kb"][n]),
                  mb(idle["rss_peak_kb"][n]), str(idle["groups"][n]),
                  str(idle["groups_quiesced"][n])] for n in sorted(idle["cpu_pct"], key=int)]
        out.append(f"\n**Idle shards.** `synod up --nodes 3 --shards {idle['shards']}` (each "
                   f"node holds {idle['shards'] + 1:,} groups with the meta shard), no clients; "
                   f"{idle['settle_s']:g} s to elect and settle, then each node process's CPU "
                   f"over {idle['window_s']:g} s and its VmRSS (at the end, and the largest "
                   "sample, taken every 200 ms). *Quiesced*: groups idle long enough to stop "
                   "ticking (`groups_quiesced` of /status, read after the window).\n\n" +
                   table(["node", "CPU % of a core", "RSS MB", "peak RSS MB", "groups",
                          "quiesced"], irows))
    out.append("\nWhy six shards cost what they do on this machine, and what would change it: "
               "[performance.md](performance.md#sharding-six-shards-against-one-2026-12-06).\n")
    return "".join(out)


def elastic_section(r: dict[str, Any]) -> str:
    el = r.get("elastic")
    if not el:
        return ("## The elastic cluster: moves, splits, joins and a node's death\n\nNot run this "
                "time (`scripts/compare/run.py --only` left out `elastic`).\n")
    mv, sc = el["move"], el["scale"]
    sp = mv["split"]

    def p99(s: dict[str, Any], key: str = "p99_ms_max") -> str:
        return fmt_ms(s.get(key)) if s.get("runs") else "n/a"

    move_ratio = ratio(mv["during"].get("p99_ms_max"), mv["before"].get("p99_ms_median"))
    rows = [
        ["a shard's move (MB/s)", f"{mv['mb_per_s']:.1f}",
         f"{mv['bytes'] / 1e6:.0f} MB in {mv['seconds']:.1f} s"
         f"{'' if mv['ok'] else ' (the move FAILED)'}", "at least 100"],
        ["client p99 during the move (ms)", p99(mv["during"]),
         f"{p99(mv['before'], 'p99_ms_median')} ms before: {fmt_ratio(move_ratio)}",
         "at most 2x before"],
    ]
    tight = el.get("move_tight")
    if tight:
        tight_ratio = ratio(tight["during"].get("p99_ms_max"), tight["before"].get("p99_ms_median"))
        rows += [
            [f"the move again, --move-p99-target-ms {tight['target_ms']:g} (MB/s)",
             f"{tight['mb_per_s']:.1f}", f"{tight['bytes'] / 1e6:.0f} MB in "
             f"{tight['seconds']:.1f} s{'' if tight['ok'] else ' (the move FAILED)'}",
             "slower: the throttle trades speed for p99"],
            ["client p99 during that move (ms)", p99(tight["during"]),
             f"{p99(tight['before'], 'p99_ms_median')} ms before: {fmt_ratio(tight_ratio)}",
             "at most 2x before"],
        ]
    rows += [
        ["client p99 around a split (ms)", p99(sp["during"]),
         f"{p99(sp['before'], 'p99_ms_median')} ms before; the split took {sp['ms']} ms, "
         f"the slowest write {fmt_ms(sp['during'].get('max_ms'))} ms", "under 100"],
        ["two nodes join: balanced after (s)", f"{sc['balance_s']:.1f}",
         f"{sc['bytes'] / 1e6:.0f} MB in {sc['shards']} shards; p99 "
         f"{p99(sc['during_balance'])} ms at worst meanwhile", "under 60 s for 2 GiB"],
        ["a node killed: three replicas again after (s)", f"{sc['heal_s']:.1f}",
         f"dead-node timeout {sc['dead_node_timeout_s']} s included", ""],
    ]
    return ("## The elastic cluster: moves, splits, joins and a node's death\n\n"
            "Synod alone (no anchor does this: etcd does not shard, and Redis Cluster's "
            "resharding is a manual MIGRATE of keys). Values of 16 KiB. A steady client writes "
            f"{el['rate']} times a second over {el['clients']} connections (open loop) in "
            "consecutive 2-s runs, and each run's p99 is kept: *before* is their median over "
            "three runs before the change, *during* the worst run that ended after it began. "
            "The move: one shard on nodes 1-3 (placement off, no splits), `synod shard move` "
            "of a follower's replica to node 4 (its snapshot streamed off the core threads, "
            "throttled while the clients' p99 is above --move-p99-target-ms, 50 by default; the "
            "second move with a tight target: docs/sharding.md). Joins and death: the default layout (shards split at "
            "64 MiB), placement on; nodes 4 and 5 join, then node 5 is killed.\n\n" +
            table(["row", "value", "how", "target"], rows))


def headline(r: dict[str, Any], target: str) -> str:
    s64, e64, r64 = (ops(get(r, s, "writes", "64")) for s in SYSTEMS)
    sr, er, rr = (ops(get(r, s, "reads")) for s in SYSTEMS)
    p99 = get(r, "synod", "latency", "latency_ms", "p99")
    fo = get(r, "synod", "failover", "median_ms")
    efo = get(r, "etcd", "failover", "median_ms")
    met = sum(ok for _, ok, _ in targets(r))
    scale = ""
    w1, w6 = (shard_value(r, s, 64, "ops_per_sec") for s in (1, 6))
    c1, c6 = (shard_value(r, s, 64, "node_cpu_us_per_write") for s in (1, 6))
    if w1 and w6:
        st = scale_targets(r)
        scale = (f" Six shards against one (64 clients over the three nodes): "
                 f"{fmt_ratio(ratio(w6, w1))} the writes/s at {fmt_ratio(ratio(c6, c1))} the CPU "
                 f"per write; {sum(ok for _, ok, _ in st)} of {len(st)} scale-out targets met.")
    return (f"Benchmarks ([docs/benchmarks.md](docs/benchmarks.md), `make {target}` on a "
            f"{r['machine']['cores']}-core machine, everything on loopback): at 64 clients "
            f"Synod acknowledges {fmt_ops(s64)} fsynced writes/s, "
            f"{fmt_ratio(ratio(s64, e64))} etcd's {fmt_ops(e64)} and "
            f"{fmt_ratio(ratio(s64, r64))} durable Redis's {fmt_ops(r64)}; linearizable reads "
            f"{fmt_ops(sr)}/s, {fmt_ratio(ratio(sr, er))} etcd and {fmt_ratio(ratio(sr, rr))} "
            f"Redis GET; p99 write latency at half load {fmt_ms(p99)} ms; leader failover "
            f"{fmt_ms(fo)} ms median (etcd {fmt_ms(efo)} ms). {met} of 6 targets met." + scale)


def write_readme(r: dict[str, Any], target: str) -> None:
    text = README.read_text()
    if BEGIN not in text or END not in text:
        return
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{headline(r, target)}\n{END}{tail}")


def scripts_section(r: dict[str, Any]) -> str:
    sc = r.get("scripts")
    if not sc:
        return ("## Scripts\n\nNot run this time (`scripts/compare/run.py --only` left out "
                "`scripts`).\n")
    lines = ["## Scripts: EVALSHA beside the commands it runs\n",
             f"redis-benchmark, {sc['clients']} clients, random keys; the median of the runs. "
             "`one`: `return redis.call('incr', KEYS[1])`; `ten`: ten `INCRBY`s of its key in one "
             "script. The script's cost against the plain commands it runs is "
             "INCR/s ÷ (commands × script/s): at most 1.3 is the target (docs/scripting.md).\n",
             "| system | INCR/s | EVALSHA one/s | EVALSHA ten/s | cost of one | cost of ten |",
             "|---|---|---|---|---|---|"]
    for name in ("synod", "redis"):
        row = sc.get(name)
        if not row:
            continue

        def cost(script: float, commands: int) -> str:
            return f"{row['incr'] / (commands * script):.2f}" if script else "n/a"

        lines.append(f"| {name} | {row['incr']:,.0f} | {row['one']:,.0f} | {row['ten']:,.0f} | "
                     f"{cost(row['one'], 1)} | {cost(row['ten'], 10)} |")
    if sc.get("synod") and sc.get("redis") and sc["redis"].get("one"):
        lines.append(f"\nSynod's EVALSHA one / Redis's: "
                     f"{sc['synod']['one'] / sc['redis']['one']:.2f}.")
    return "\n".join(lines) + "\n"


def write_all(r: dict[str, Any], target: str) -> None:
    PLOTS.mkdir(parents=True, exist_ok=True)
    DATA.mkdir(parents=True, exist_ok=True)
    plot_throughput(r)
    plot_cdf(r)
    doc = ("# Benchmarks: Synod, etcd and Redis side by side\n\n"
           f"*Written by `make {target}` ({r['started']}); do not edit by hand: run "
           "`make bench` (about 20 minutes) or `make bench-quick` (about three minutes, one "
           "short run per point: indicative only). The raw numbers are in "
           "build/compare/results.json.*\n\n"
           "The same workloads on three systems: Synod (3 nodes, Raft, every write fsynced on "
           "a majority), etcd (3 members, Raft, fsync on), and Redis with `appendfsync always` "
           "(one process, no replication: the upper bound for one durable node).\n\n" +
           targets_section(r) + "\n" + machine_section(r) + "\n" + etcd_client_section(r) +
           "\n" + writes_section(r) + "\n" + reads_section(r) + "\n" + latency_section(r) +
           "\n" + failover_section(r) + "\n" + memory_section(r) + "\n" +
           scale_out_section(r) + "\n" + elastic_section(r) + "\n" + scripts_section(r) + "\n" +
           commands_section(r, target))
    (DOCS / "benchmarks.md").write_text(doc)
    write_readme(r, target)
