'use strict';
// node-redis's (package `redis`) cluster client against a running Synod cluster, used as its
// README shows:
//   createCluster({ rootNodes: [{ url: 'redis://127.0.0.1:PORT' }] })
// Phase 1 writes 10,000 keys over every slot (commands of one tick are pipelined per node) and
// reads them back with MGET, which node-redis splits by slot across the shards itself (its
// multi_shard request policy); DEL and EXISTS over several shards likewise; MSET and MULTI on
// hash-tagged keys. Phase 2 keeps writing while the C++ test kill -9s a node (common.js,
// failoverPhase). Usage and exit codes: common.js. Run by ClusterProtocol.NodeRedisClusterClient*.
const {
  KEYS, check, checkValues, failoverPhase, keySlot, newStats, parseArgs, requireClient, withTimeout,
  writeKeys,
} = require('./common');

const want = (key) => `v-${key}`;

async function phase1(cluster, args) {
  const masters = cluster.masters.map((m) => m.port);
  check(masters.length === args.masters, `node-redis's masters: ${masters}, want ${args.masters}`);
  check(keySlot('foo') === 12182, 'keySlot(foo) is not 12182');

  const keys = await writeKeys(cluster, 'nr', want);
  // One MGET of 1,000 keys at a time over every shard: the client splits it per slot.
  const stats = newStats();
  await checkValues({ getMany: (ks) => cluster.mGet(ks) }, keys, want, stats, 'phase 1');
  check(stats.failed === 0, `phase 1 reads failed: ${JSON.stringify(stats.errors)}`);

  for (let u = 0; u < 100; u++) {
    const name = `{user:${u}}:name`, mail = `{user:${u}}:mail`, visits = `{user:${u}}:visits`;
    check(await cluster.mSet([[name, `n${u}`], [mail, `m${u}`]]) === 'OK', `MSET for user ${u}`);
    const got = await cluster.mGet([name, mail]);
    check(got[0] === `n${u}` && got[1] === `m${u}`, `MGET for user ${u}: ${got}`);
    const tx = await cluster.multi().incr(visits).incr(visits).get(name).exec();
    check(JSON.stringify(tx) === JSON.stringify([1, 2, `n${u}`]),
          `MULTI for user ${u}: ${JSON.stringify(tx)}`);
    const piped = await cluster.multi().incr(visits).get(visits).execAsPipeline();
    check(JSON.stringify(piped) === JSON.stringify([3, '3']),
          `pipeline for user ${u}: ${JSON.stringify(piped)}`);
  }

  // DEL and EXISTS of keys in several shards: the client splits them and sums the counts.
  check(await cluster.del([keys[0], keys[1], '{user:0}:name']) === 3, 'DEL of three keys');
  check(await cluster.exists([keys[0], keys[1], keys[2], '{user:0}:mail']) === 2,
        'EXISTS after DEL');
  const node = await cluster.nodeClient(cluster.masters[0]);
  const info = await node.clusterInfo();
  check(info.includes('cluster_state:ok'), `CLUSTER INFO: ${info}`);
  return { keys: keys.slice(2), slots: new Set(keys.map(keySlot)).size };
}

async function main() {
  const args = parseArgs(process.argv);
  const { createCluster } = requireClient(args.modules, 'redis');
  const cluster = createCluster({ rootNodes: [{ url: `redis://127.0.0.1:${args.port}` }] });
  let errors = 0;
  cluster.on('error', (e) => {
    if (errors++ < 5) console.error(`node-redis error event: ${e.message}`);
  });
  await withTimeout(cluster.connect(), 10000);
  const { keys, slots } = await phase1(cluster, args);
  console.log(`node-redis cluster: phase 1 passed (${args.mode}, ${KEYS} keys, ${slots} slots)`);

  const client = {
    set: (k, v) => cluster.set(k, v),
    getMany: (ks) => cluster.mGet(ks),
    masterPorts: () => cluster.masters.map((m) => m.port),
  };
  await failoverPhase(client, args, keys, want, 'node-redis');
  cluster.destroy();
  console.log(`node-redis cluster: all checks passed (${args.mode})`);
}

main().then(() => process.exit(0), (e) => {
  console.error(`FAIL: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
