'use strict';
// Shared by the Node.js cluster-client scripts (ioredis_cluster_test.js and
// node_redis_cluster_test.js): their arguments, hash slots, bounded retries, the handshake with
// the C++ test around its kill -9, and the failover phase both clients run.
//
// Usage of a script: node SCRIPT NODE_MODULES PORT MODE MASTERS SYNC_DIR
//   NODE_MODULES  the node_modules directory `npm ci` filled (the clients are not in the tree)
//   PORT          the one node the client is given (as a user gives one address)
//   MODE          redirects | plain (whether the nodes answer -MOVED; the checks are the same)
//   MASTERS       how many masters the slot map must name at the start
//   SYNC_DIR      a directory shared with the C++ test: the script writes `ready` after phase 1,
//                 the test kill -9s a node and writes `killed` (its client port) there
// Every check fails the script (exit 1, a line starting with FAIL on stderr); every wait is
// bounded. Run by ClusterProtocol.*ClusterClientWorks* in tests/e2e/cluster_protocol_test.cc.
const fs = require('fs');
const path = require('path');

const KEYS = 10000;
// How long a command may keep failing around the failover before the script gives up, and
// how long the client's map may keep naming the killed node as a master.
const RECOVERY_MS_MAX = 15000;
// A single try that neither succeeds nor fails within this long counts as failed (a command
// queued on a connection to the dead node may otherwise wait for a reconnect forever).
const TRY_MS_MAX = 3000;
// How long the script waits for the C++ test to kill a node after it said `ready`.
const KILL_WAIT_MS_MAX = 30000;

function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}

function check(cond, msg) {
  if (!cond) fail(msg);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function parseArgs(argv) {
  if (argv.length !== 7) {
    fail(`usage: node ${path.basename(argv[1])} NODE_MODULES PORT MODE MASTERS SYNC_DIR`);
  }
  const [modules, port, mode, masters, syncDir] = argv.slice(2);
  check(mode === 'redirects' || mode === 'plain', `MODE must be redirects or plain: ${mode}`);
  return { modules, port: Number(port), mode, masters: Number(masters), syncDir };
}

// require() of a client from NODE_MODULES, failing clearly when `npm ci` did not install it.
function requireClient(modules, name) {
  try {
    return require(path.join(modules, name));
  } catch (e) {
    fail(`cannot load ${name} from ${modules} (did npm ci run?): ${e.message}`);
  }
}

// CRC16-CCITT (XMODEM) of a key's hash tag, mod 16384: Redis Cluster's HASH_SLOT, here only to
// count the slots the test's keys cover (the clients route with their own copy).
const CRC16_TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let b = 0; b < 8; b++) crc = ((crc << 1) ^ (crc & 0x8000 ? 0x1021 : 0)) & 0xffff;
    t[i] = crc;
  }
  return t;
})();

function keySlot(key) {
  let k = Buffer.from(key);
  const open = k.indexOf('{');
  if (open >= 0) {
    const close = k.indexOf('}', open + 1);
    if (close > open + 1) k = k.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of k) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ byte) & 0xff];
  return crc % 16384;
}

// The kind of an error for the counts printed at the end: its first word when it is a Redis
// error reply (CLUSTERDOWN, TRYAGAIN, MOVED, ...), else its message without numbers.
function errorKind(e) {
  const msg = String((e && e.message) || e);
  const word = msg.split(' ')[0];
  if (/^[A-Z]{3,}$/.test(word)) return word;
  return msg.replace(/\d+/g, 'N').slice(0, 90);
}

// A promise that rejects after `ms` (the operation it races keeps going; its outcome is ignored).
function withTimeout(promise, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no reply within ${ms} ms`)), ms);
  });
  promise.catch(() => {});
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Stats of the retries, printed at the end.
function newStats() {
  return { failed: 0, retried: 0, errors: {}, lastFailedAt: 0, slowestMs: 0 };
}

// Runs op() until it succeeds, trying again every 100 ms; fails the script when it has kept
// failing for RECOVERY_MS_MAX. Counts every failed try in stats.errors by kind.
async function withRetry(op, stats, what) {
  const start = Date.now();
  for (let attempt = 0; ; attempt++) {
    try {
      const result = await withTimeout(op(), TRY_MS_MAX);
      if (attempt > 0) stats.retried++;
      stats.slowestMs = Math.max(stats.slowestMs, Date.now() - start);
      return result;
    } catch (e) {
      const kind = errorKind(e);
      stats.failed++;
      stats.lastFailedAt = Date.now();
      stats.errors[kind] = (stats.errors[kind] || 0) + 1;
      if (Date.now() - start >= RECOVERY_MS_MAX) {
        const tries = attempt + 1;
        fail(`${what}: still failing after ${RECOVERY_MS_MAX} ms (${tries} tries): ${e.message}`);
      }
      await sleep(100);
    }
  }
}

// Reads `keys` with client.getMany (the client's own batching), a chunk at a time, and fails
// on the first value that is not want(key). Returns how many keys it read.
async function checkValues(client, keys, want, stats, what) {
  const chunk = 1000;
  for (let at = 0; at < keys.length; at += chunk) {
    const part = keys.slice(at, at + chunk);
    const values = await withRetry(() => client.getMany(part), stats, `${what}: read`);
    check(values.length === part.length, `${what}: ${values.length} values, ${part.length} keys`);
    for (let i = 0; i < part.length; i++) {
      const [got, wanted] = [JSON.stringify(values[i]), JSON.stringify(want(part[i]))];
      check(got === wanted, `${what}: ${part[i]} is ${got}, want ${wanted}`);
    }
  }
  return keys.length;
}

function writeFileAtomically(file, text) {
  fs.writeFileSync(`${file}.tmp`, text);
  fs.renameSync(`${file}.tmp`, file);
}

// The client port the C++ test killed and when (the file's mtime: the test writes it right
// after the kill), or { port: 0 } while it has not.
function killed(syncDir) {
  const file = path.join(syncDir, 'killed');
  try {
    const port = Number(fs.readFileSync(file, 'utf8').trim()) || 0;
    return { port, at: Math.round(fs.statSync(file).mtimeMs) };
  } catch (e) {
    return { port: 0 };
  }
}

// Phase 2. Writes batches of new keys over every slot, says `ready` after the first one, and
// goes on while the C++ test kill -9s a node that leads some shards, until, after the kill: the
// client's own map no longer names the killed node as a master (the library refreshed it by
// itself), three batches in a row needed no retry, and 2 s passed. Every write is retried until
// acknowledged (each key has one value, so a retried write that had been applied changes
// nothing); at the end every key written in both phases is read back. `client` is the script's
// adapter:
//   set(key, value) -> 'OK', getMany(keys) -> values, masterPorts() -> the map's master ports.
async function failoverPhase(client, args, phase1Keys, want, name) {
  const stats = newStats();
  const written = [];
  let readyAt = 0;
  // Polled apart from the batches, which may wait seconds on a dead connection.
  const seen = { victim: 0, killedAt: 0, mapFixedAt: 0 };
  const watcher = setInterval(() => {
    if (!seen.victim) ({ port: seen.victim, at: seen.killedAt } = killed(args.syncDir));
    if (seen.victim && !seen.mapFixedAt && !client.masterPorts().includes(seen.victim)) {
      seen.mapFixedAt = Date.now();
    }
  }, 20);
  let cleanBatches = 0;
  for (let batch = 0; ; batch++) {
    const waited = readyAt ? Date.now() - readyAt : 0;
    check(seen.victim || waited < KILL_WAIT_MS_MAX, `no kill within ${KILL_WAIT_MS_MAX} ms`);
    const killedBefore = seen.victim !== 0;
    const failedBefore = stats.failed;
    const keys = Array.from({ length: 200 }, (_, i) => `fo:${batch}:${i}`);
    await Promise.all(
      keys.map(async (key) => {
        const reply = await withRetry(() => client.set(key, want(key)), stats, `SET ${key}`);
        check(reply === 'OK', `SET ${key} answered ${JSON.stringify(reply)}`);
        written.push(key);
      }),
    );
    if (!readyAt) {  // the writes flow: the test may kill a node now
      writeFileAtomically(path.join(args.syncDir, 'ready'), `${process.pid}\n`);
      console.log('READY');
      readyAt = Date.now();
    }
    if (!killedBefore) continue;
    const clean = stats.failed === failedBefore;
    cleanBatches = clean ? cleanBatches + 1 : 0;
    const since = Date.now() - seen.killedAt;
    if (seen.mapFixedAt && cleanBatches >= 3 && since >= 2000) break;
    check(since < RECOVERY_MS_MAX + 5000,
          `${since} ms after the kill: the client's masters ${client.masterPorts()} (killed ` +
          `${seen.victim}), ${cleanBatches} clean batches; errors ${JSON.stringify(stats.errors)}`);
    if (clean) await sleep(20);  // a batch lasts a few ms: spread the batches over the 2 s
  }
  clearInterval(watcher);
  const lastFailed = stats.lastFailedAt ? `${stats.lastFailedAt - seen.killedAt} ms` : 'never';
  const slowest = stats.slowestMs;
  const read = await checkValues(client, phase1Keys, want, stats, 'after the kill (phase 1 keys)') +
               await checkValues(client, written, want, stats, 'after the kill (new keys)');
  console.log(`${name} failover: killed the node on port ${seen.victim}; the client's map ` +
              `dropped it ${seen.mapFixedAt - seen.killedAt} ms after the kill; ` +
              `${written.length} writes acknowledged, the slowest after ${slowest} ms; ` +
              `${stats.retried} needed the script's retries (failed tries by error: ` +
              `${JSON.stringify(stats.errors)}, the last ${lastFailed} after the kill); ` +
              `${read} keys read back`);
}

// Phase 1's writes, the same for both clients (their set/get have the same shape): KEYS keys
// PREFIX:0.. over more than 4,000 slots, a thousand SETs in flight at a time, then every
// thousandth read back one at a time, as most code does. Returns the keys.
async function writeKeys(cluster, prefix, want) {
  const keys = Array.from({ length: KEYS }, (_, i) => `${prefix}:${i}`);
  const slots = new Set(keys.map(keySlot));
  check(slots.size >= 4000, `the keys cover only ${slots.size} slots`);
  for (let at = 0; at < KEYS; at += 1000) {
    const chunk = keys.slice(at, at + 1000);
    const replies = await Promise.all(chunk.map((k) => cluster.set(k, want(k))));
    check(replies.every((r) => r === 'OK'), `SETs from ${keys[at]}: ${replies.slice(0, 5)}...`);
  }
  for (let i = 0; i < KEYS; i += 1000) {
    const v = await cluster.get(keys[i]);
    check(v === want(keys[i]), `GET ${keys[i]}: ${v}`);
  }
  return keys;
}

module.exports = {
  KEYS,
  check,
  checkValues,
  errorKind,
  fail,
  failoverPhase,
  keySlot,
  newStats,
  parseArgs,
  requireClient,
  sleep,
  withRetry,
  withTimeout,
  writeKeys,
};
