#!/usr/bin/env python3
"""redis-py (Debian's python3-redis) against a running Synod node.

Usage: redis_py_test.py PORT   (or SYNOD_PORT=PORT redis_py_test.py)

Exercises the client library's view of Redis's string, key, expiry and transaction commands,
with Redis's behaviour as the specification. Every check asserts; the script exits 1 at the
first failure, naming the check and what it got. Run by the e2e test
RedisPy.ClientLibraryWorksAgainstTheCluster (tests/e2e/redis_commands_test.cc) against a
follower of a fresh 3-node cluster. Keys are prefixed "py:" and the script starts with FLUSHALL.
"""
import inspect
import os
import sys
import time

try:
    import redis
except ImportError as e:  # the C++ test fails on this: make test installs python3-redis
    print(f"FAIL: cannot import redis ({e}); install python3-redis", file=sys.stderr)
    sys.exit(2)

CHECKS = 0


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(name, got, want):
    global CHECKS
    CHECKS += 1
    if got != want:
        fail(f"{name}: got {got!r}, want {want!r}")


def check_true(name, cond, detail=""):
    global CHECKS
    CHECKS += 1
    if not cond:
        fail(f"{name}: {detail}")


def check_between(name, got, lo, hi):
    check_true(name, isinstance(got, int) and lo <= got <= hi, f"got {got!r}, want [{lo}, {hi}]")


def expect_error(name, fn, want_message, exc_type=redis.ResponseError):
    """fn() must raise exc_type whose message is exactly want_message (redis-py strips the
    leading "ERR " of Redis's error text)."""
    global CHECKS
    CHECKS += 1
    try:
        got = fn()
    except exc_type as e:
        if str(e) != want_message:
            fail(f"{name}: error {str(e)!r}, want {want_message!r}")
        return
    except Exception as e:  # noqa: BLE001 - any other exception is a failure, shown as is
        fail(f"{name}: raised {type(e).__name__}: {e!r}, want {exc_type.__name__}")
    fail(f"{name}: returned {got!r}, want {exc_type.__name__} {want_message!r}")


def main():
    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SYNOD_PORT", "0"))
    if port <= 0:
        fail("usage: redis_py_test.py PORT (or SYNOD_PORT)")
    print(f"redis-py {redis.__version__} against 127.0.0.1:{port}")
    r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=10)
    r2 = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=10)
    check("ping", r.ping(), True)
    check("flushall", r.flushall(), True)

    # ---- SET and its options ----
    check("set", r.set("py:a", "1"), True)
    check("get", r.get("py:a"), "1")
    check("get missing", r.get("py:missing"), None)
    check("set ex", r.set("py:ex", "v", ex=100), True)
    check_between("ttl after ex", r.ttl("py:ex"), 99, 100)
    check("set px", r.set("py:px", "v", px=100000), True)
    check_between("pttl after px", r.pttl("py:px"), 95000, 100000)
    check("set nx existing", r.set("py:a", "2", nx=True), None)
    check("get after nx", r.get("py:a"), "1")
    check("set xx missing", r.set("py:xx", "v", xx=True), None)
    check("exists after xx", r.exists("py:xx"), 0)
    check("set nx missing", r.set("py:nx", "v", nx=True), True)
    check("set xx existing", r.set("py:nx", "w", xx=True), True)
    check("get after xx", r.get("py:nx"), "w")
    check("set keepttl", r.set("py:ex", "v2", keepttl=True), True)
    check_between("ttl after keepttl", r.ttl("py:ex"), 98, 100)
    check("set drops ttl", (r.set("py:ex", "v3"), r.ttl("py:ex")), (True, -1))
    check("set get", r.set("py:a", "2", get=True), "1")
    check("get after set get", r.get("py:a"), "2")
    check("set get missing", r.set("py:new", "n", get=True), None)
    check("set exat", r.set("py:exat", "v", exat=int(time.time()) + 200), True)
    check_between("ttl after exat", r.ttl("py:exat"), 198, 201)

    # ---- GETEX, INCRBYFLOAT, MSET/MGET/MSETNX ----
    check("getex ex", r.getex("py:a", ex=50), "2")
    check_between("ttl after getex", r.ttl("py:a"), 49, 50)
    check("getex px", r.getex("py:a", px=40000), "2")
    check_between("pttl after getex px", r.pttl("py:a"), 35000, 40000)
    check("getex persist", r.getex("py:a", persist=True), "2")
    check("ttl after persist", r.ttl("py:a"), -1)
    check("getex missing", r.getex("py:missing", ex=10), None)
    check("incrbyfloat new", r.incrbyfloat("py:f", 10.5), 10.5)
    check("incrbyfloat", r.incrbyfloat("py:f", 0.1), 10.6)
    check("incrbyfloat text", r.get("py:f"), "10.6")
    check("incrbyfloat negative", r.incrbyfloat("py:f", -5), 5.6)
    check("mset", r.mset({"py:m1": "a", "py:m2": "b"}), True)
    check("mget", r.mget(["py:m1", "py:m2", "py:missing"]), ["a", "b", None])
    check("msetnx taken", r.msetnx({"py:m2": "x", "py:m3": "y"}), False)
    check("mget after msetnx", r.mget("py:m2", "py:m3"), ["b", None])
    check("msetnx free", r.msetnx({"py:m3": "c", "py:m4": "d"}), True)
    check("mget after msetnx free", r.mget("py:m3", "py:m4"), ["c", "d"])
    check("incr", r.incr("py:n"), 1)
    check("incrby", r.incrby("py:n", 41), 42)
    check("decrby", r.decrby("py:n", 2), 40)
    check("append", r.append("py:n", "x"), 3)
    check("strlen", r.strlen("py:n"), 3)
    check("getrange", r.getrange("py:n", 0, 1), "40")
    check("setrange", r.setrange("py:n", 1, "2"), 3)
    check("get after setrange", r.get("py:n"), "42x")
    check("getdel", r.getdel("py:n"), "42x")
    check("getdel again", r.getdel("py:n"), None)

    # ---- SCAN, KEYS ----
    scan_keys = {f"py:scan:{i}" for i in range(250)}
    check("mset scan keys", r.mset({k: "v" for k in scan_keys}), True)
    seen = list(r.scan_iter(match="py:scan:*", count=10))
    check("scan_iter match count 10 sees every key", set(seen), scan_keys)
    check("scan_iter returns each key once", len(seen), len(scan_keys))
    every = set(r.scan_iter())
    check_true("scan_iter() includes every key", scan_keys <= every and "py:a" in every,
               f"{len(every)} keys")
    check("dbsize", r.dbsize(), len(every))
    check("keys pattern", set(r.keys("py:scan:1?")), {f"py:scan:{i}" for i in range(10, 20)})
    check("keys all", set(r.keys("*")), every)
    check("type", r.type("py:a"), "string")
    check("type none", r.type("py:missing"), "none")

    # ---- EXPIRE with NX/XX/GT/LT, TTL, PTTL ----
    r.set("py:e", "v")
    sig = inspect.signature(redis.Redis.expire).parameters
    if all(flag in sig for flag in ("nx", "xx", "gt", "lt")):
        check("expire xx without ttl", r.expire("py:e", 100, xx=True), False)
        check("expire gt without ttl", r.expire("py:e", 100, gt=True), False)
        check("expire nx", r.expire("py:e", 100, nx=True), True)
        check("expire nx again", r.expire("py:e", 200, nx=True), False)
        check("expire gt smaller", r.expire("py:e", 50, gt=True), False)
        check("expire gt larger", r.expire("py:e", 200, gt=True), True)
        check_between("ttl after gt", r.ttl("py:e"), 199, 200)
        check("expire lt larger", r.expire("py:e", 300, lt=True), False)
        check("expire lt smaller", r.expire("py:e", 150, lt=True), True)
        check_between("ttl after lt", r.ttl("py:e"), 149, 150)
        check("expire xx", r.expire("py:e", 120, xx=True), True)
        check_between("ttl after xx", r.ttl("py:e"), 119, 120)
        check("pexpire gt", r.pexpire("py:e", 200000, gt=True), True)
        check_between("pttl after pexpire gt", r.pttl("py:e"), 195000, 200000)
    else:
        print(f"skipped: expire nx/xx/gt/lt (redis-py {redis.__version__} lacks them)")
        check("expire", r.expire("py:e", 120), True)
    check("persist", r.persist("py:e"), True)
    check("ttl persistent", r.ttl("py:e"), -1)
    check("pttl persistent", r.pttl("py:e"), -1)
    check("ttl missing", r.ttl("py:missing"), -2)
    check("pttl missing", r.pttl("py:missing"), -2)
    check("pexpire short", r.pexpire("py:e", 200), True)
    time.sleep(0.4)
    check("expired get", r.get("py:e"), None)
    check("expired exists", r.exists("py:e"), 0)
    check("expired ttl", r.ttl("py:e"), -2)

    # ---- transactions ----
    p = r.pipeline(transaction=True)
    p.incr("py:x").incr("py:y").set("py:z", "v").get("py:z")
    check("pipeline(transaction=True)", p.execute(), [1, 1, True, "v"])
    check("after transaction", r.mget("py:x", "py:y", "py:z"), ["1", "1", "v"])
    p = r.pipeline(transaction=False)
    for i in range(200):
        p.set(f"py:pl:{i}", str(i))
        p.get(f"py:pl:{i}")
    out = p.execute()
    want = [x for i in range(200) for x in (True, str(i))]
    wrong = [i for i in range(len(want)) if i >= len(out) or out[i] != want[i]]
    check_true("pipeline(transaction=False): 200 SET/GET pairs, each GET after its SET",
               len(out) == len(want) and not wrong,
               f"{len(wrong)} of {len(want)} replies wrong; first: reply {wrong[:1]} = "
               f"{out[wrong[0]] if wrong and wrong[0] < len(out) else None!r}, want "
               f"{want[wrong[0]] if wrong else None!r}")
    # A runtime error inside EXEC: the others are applied (no rollback), redis-py raises.
    p = r.pipeline(transaction=True)
    p.set("py:t", "abc").incr("py:t").incr("py:x")
    try:
        p.execute()
        fail("a transaction with a failing INCR: execute() did not raise")
    except redis.ResponseError as e:
        check_true("runtime error in EXEC", "value is not an integer" in str(e), repr(e))
    check("the rest of the transaction applied", r.mget("py:t", "py:x"), ["abc", "2"])
    p = r.pipeline(transaction=False)
    p.set("py:t2", "abc").incr("py:t2").incr("py:x")
    out = p.execute(raise_on_error=False)
    check_true("pipeline error entry", isinstance(out[1], redis.ResponseError), repr(out))
    check("pipeline others", (out[0], out[2]), (True, 3))
    # EXECABORT: an unknown command while queueing discards the transaction.
    p = r.pipeline(transaction=True)
    p.set("py:aborted", "1")
    p.execute_command("NOSUCHCMD", "x")
    try:
        p.execute()
        fail("a transaction with an unknown command: execute() did not raise")
    except redis.ResponseError as e:
        check_true("execabort", "unknown command" in str(e), repr(e))
    check("aborted transaction applied nothing", r.exists("py:aborted"), 0)

    # WATCH: a write by another client aborts the transaction with WatchError.
    r.set("py:w", "orig")
    with r.pipeline() as p:
        p.watch("py:w")
        check("watched read", p.get("py:w"), "orig")
        r2.set("py:w", "theirs")
        p.multi()
        p.set("py:w", "mine")
        try:
            p.execute()
            fail("WATCH conflict: execute() did not raise WatchError")
        except redis.WatchError:
            pass
    check("watch conflict keeps the other write", r.get("py:w"), "theirs")
    with r.pipeline() as p:
        p.watch("py:w")
        cur = p.get("py:w")
        p.multi()
        p.set("py:w", cur + "+mine")
        check("watch without conflict", p.execute(), [True])
    check("after watch without conflict", r.get("py:w"), "theirs+mine")

    def add_one(pipe):
        v = int(pipe.get("py:counter") or 0)
        pipe.multi()
        pipe.set("py:counter", v + 1)

    for _ in range(5):
        r.transaction(add_one, "py:counter")
    check("r.transaction helper", r.get("py:counter"), "5")

    # ---- LCS ----
    r.mset({"py:k1": "ohmytext", "py:k2": "mynewtext"})
    if hasattr(r, "lcs"):
        check("lcs", r.lcs("py:k1", "py:k2"), "mytext")
        check("lcs len", r.lcs("py:k1", "py:k2", len=True), 6)
        idx = r.lcs("py:k1", "py:k2", idx=True)
        # RESP2: the map comes as a flat list (redis-py leaves it so) or, parsed, a dict.
        if isinstance(idx, dict):
            check("lcs idx", (idx.get("matches"), idx.get("len")),
                  ([[[4, 7], [5, 8]], [[2, 3], [0, 1]]], 6))
        else:
            check("lcs idx", idx, ["matches", [[[4, 7], [5, 8]], [[2, 3], [0, 1]]], "len", 6])
    else:
        print(f"skipped: r.lcs (redis-py {redis.__version__} lacks it)")
        check("LCS", r.execute_command("LCS", "py:k1", "py:k2"), "mytext")

    # ---- RESP3 ----
    if "protocol" in inspect.signature(redis.Redis.__init__).parameters:
        r3 = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, protocol=3,
                         socket_timeout=10)
        check("resp3 get missing", r3.get("py:missing"), None)
        check("resp3 get", r3.get("py:k1"), "ohmytext")
        idx = r3.execute_command("LCS", "py:k1", "py:k2", "IDX")
        check_true("resp3 lcs idx is a map", isinstance(idx, dict), repr(idx))
        check("resp3 lcs idx len", idx.get("len"), 6)
    else:
        print(f"skipped: RESP3 (redis-py {redis.__version__} has no protocol=3)")

    # ---- error texts (redis-py drops Redis's leading "ERR ") ----
    expect_error("wrong arity", lambda: r.execute_command("GET"),
                 "wrong number of arguments for 'get' command")
    expect_error("wrong arity getex", lambda: r.execute_command("GETEX"),
                 "wrong number of arguments for 'getex' command")
    expect_error("syntax error", lambda: r.execute_command("SET", "py:a", "v", "NX", "XX"),
                 "syntax error")
    expect_error("not an integer", lambda: r.incr("py:k1"),
                 "value is not an integer or out of range")
    expect_error("not an integer ex", lambda: r.execute_command("SET", "py:a", "v", "EX", "x"),
                 "value is not an integer or out of range")
    expect_error("not a float", lambda: r.incrbyfloat("py:k1", 1),
                 "value is not a valid float")
    expect_error("invalid expire", lambda: r.execute_command("SET", "py:a", "v", "EX", "0"),
                 "invalid expire time in 'set' command")
    expect_error("no such key", lambda: r.rename("py:missing", "py:b"), "no such key")
    expect_error("unknown command", lambda: r.execute_command("NOSUCHCMD", "a"),
                 "unknown command 'NOSUCHCMD', with args beginning with: 'a' ")
    expect_error("expire flags", lambda: r.execute_command("EXPIRE", "py:a", "10", "NX", "XX"),
                 "NX and XX, GT or LT options at the same time are not compatible")

    check("flushall at the end", r.flushall(), True)
    check("dbsize at the end", r.dbsize(), 0)
    print(f"redis-py: all checks passed ({CHECKS} checks)")


if __name__ == "__main__":
    main()
