'use strict';
// ioredis's Redis.Cluster against a running Synod cluster, used as its README shows:
//   new Redis.Cluster([{ host: '127.0.0.1', port }])
// Phase 1 writes 10,000 keys over every slot (a thousand commands in flight at a time) and reads
// them back through a second client with auto-pipelining (ioredis's batching per node), then
// multi-key commands on hash-tagged keys (MSET/MGET, a pipeline, MULTI), DEL and EXISTS. Phase 2
// keeps writing while the C++ test kill -9s a node (common.js, failoverPhase).
// Usage and exit codes: common.js. Run by ClusterProtocol.IoredisClusterClientWorks*.
const {
  KEYS, check, checkValues, failoverPhase, keySlot, newStats, parseArgs, requireClient, withTimeout,
  writeKeys,
} = require('./common');

const want = (key) => `v-${key}`;

// The masters of ioredis's slot map (`cluster.slots`: slot -> ["host:port" of the master, then
// the replicas]). Not nodes('master'), which drops a node as soon as its connection closes.
function masterPorts(cluster) {
  const masters = new Set(cluster.slots.filter((s) => s && s.length).map((s) => s[0]));
  return [...masters].map((key) => Number(key.split(':').pop()));
}

async function phase1(cluster, autoPipelined, args) {
  const masters = masterPorts(cluster);
  check(masters.length === args.masters, `ioredis's masters: ${masters}, want ${args.masters}`);
  const nodes = cluster.nodes('master').length;
  check(nodes === args.masters, `ioredis's nodes('master'): ${nodes}, want ${args.masters}`);
  check(keySlot('foo') === 12182, 'keySlot(foo) is not 12182');
  for (const key of ['foo', 'io:1', '{user1000}.following', 'a{b}c{d}']) {
    const slot = await cluster.cluster('KEYSLOT', key);
    check(slot === keySlot(key), `CLUSTER KEYSLOT ${key} = ${slot}, want ${keySlot(key)}`);
  }

  const keys = await writeKeys(cluster, 'io', want);
  // Read back through a second client with ioredis's auto-pipelining, which batches the commands
  // of one tick per node.
  const stats = newStats();
  const getMany = (ks) => Promise.all(ks.map((k) => autoPipelined.get(k)));
  await checkValues({ getMany }, keys, want, stats, 'phase 1');
  check(stats.failed === 0, `phase 1 reads failed: ${JSON.stringify(stats.errors)}`);

  // Multi-key commands within one slot (hash tags), spread over every shard: ioredis sends each
  // to the slot's master, and a pipeline or MULTI whose keys share a slot goes to one node.
  for (let u = 0; u < 100; u++) {
    const name = `{user:${u}}:name`, mail = `{user:${u}}:mail`, visits = `{user:${u}}:visits`;
    check(await cluster.mset({ [name]: `n${u}`, [mail]: `m${u}` }) === 'OK', `MSET for user ${u}`);
    const got = await cluster.mget(name, mail);
    check(got[0] === `n${u}` && got[1] === `m${u}`, `MGET for user ${u}: ${got}`);
    const piped = await cluster.pipeline().incr(visits).incr(visits).get(name).exec();
    check(JSON.stringify(piped) === JSON.stringify([[null, 1], [null, 2], [null, `n${u}`]]),
          `pipeline for user ${u}: ${JSON.stringify(piped)}`);
    const tx = await cluster.multi().incr(visits).get(visits).exec();
    check(JSON.stringify(tx) === JSON.stringify([[null, 3], [null, '3']]),
          `MULTI for user ${u}: ${JSON.stringify(tx)}`);
  }

  check(await cluster.del(keys[0]) === 1, `DEL ${keys[0]}`);
  check(await cluster.del('{user:0}:name', '{user:0}:mail') === 2, 'DEL of two keys in a slot');
  check(await cluster.exists(keys[0]) === 0 && await cluster.exists(keys[1]) === 1,
        'EXISTS after DEL');
  check(await cluster.exists('{user:0}:name', '{user:0}:visits') === 1, 'EXISTS of two keys');
  const info = await cluster.cluster('INFO');
  check(info.includes('cluster_state:ok'), `CLUSTER INFO: ${info}`);
  return { keys: keys.slice(1), slots: new Set(keys.map(keySlot)).size };
}

async function main() {
  const args = parseArgs(process.argv);
  const Redis = requireClient(args.modules, 'ioredis');
  const connect = async (options) => {
    const cluster = new Redis.Cluster([{ host: '127.0.0.1', port: args.port }], options);
    let errors = 0;
    cluster.on('error', (e) => {
      if (errors++ < 5) console.error(`ioredis error event: ${e.message}`);
    });
    await withTimeout(new Promise((resolve) => cluster.once('ready', resolve)), 10000);
    return cluster;
  };
  const cluster = await connect();
  const autoPipelined = await connect({ enableAutoPipelining: true });
  const { keys, slots } = await phase1(cluster, autoPipelined, args);
  autoPipelined.disconnect();
  console.log(`ioredis cluster: phase 1 passed (${args.mode}, ${KEYS} keys, ${slots} slots)`);

  const client = {
    set: (k, v) => cluster.set(k, v),
    getMany: (ks) => Promise.all(ks.map((k) => cluster.get(k))),
    masterPorts: () => masterPorts(cluster),
  };
  await failoverPhase(client, args, keys, want, 'ioredis');
  cluster.disconnect();
  console.log(`ioredis cluster: all checks passed (${args.mode})`);
}

main().then(() => process.exit(0), (e) => {
  console.error(`FAIL: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
