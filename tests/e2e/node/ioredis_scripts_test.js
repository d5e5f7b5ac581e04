'use strict';
// ioredis's defineCommand against Synod, as its README shows: a Lua command defined once and
// called like a method. ioredis sends EVALSHA and falls back to EVAL on NOSCRIPT by itself; the
// second client talks to another node, whose script cache has never seen the script.
// Usage: node ioredis_scripts_test.js MODULES PORT_A PORT_B. Prints `ok` and exits 0, or says
// what failed and exits 1. Run by Scripting.IoredisDefineCommand.
const path = require('path');

function fail(msg) {
  console.error(msg);
  process.exit(1);
}

async function main() {
  const [modules, portA, portB] = process.argv.slice(2);
  let Redis;
  try {
    Redis = require(path.join(modules, 'ioredis'));
  } catch (e) {
    fail(`cannot load ioredis from ${modules}: ${e.message}`);
  }
  const lua =
    "local v = tonumber(redis.call('get', KEYS[1]) or '0') + tonumber(ARGV[1]) " +
    "redis.call('set', KEYS[1], v) return v";
  const a = new Redis({ port: Number(portA), host: '127.0.0.1', maxRetriesPerRequest: 3 });
  const b = new Redis({ port: Number(portB), host: '127.0.0.1', maxRetriesPerRequest: 3 });
  for (const c of [a, b]) c.defineCommand('addTo', { numberOfKeys: 1, lua });
  await a.del('io:sum');
  const calls = [];
  for (let i = 0; i < 100; i++) calls.push((i % 2 === 0 ? a : b).addTo('io:sum', 1));
  const results = await Promise.all(calls);
  const seen = new Set(results.map(Number));
  if (seen.size !== 100) fail(`the 100 increments returned ${seen.size} distinct sums`);
  const final = Number(await b.get('io:sum'));
  if (final !== 100) fail(`io:sum is ${final}, want 100`);
  // A pipeline of defined commands, and the script's error as a rejected promise.
  const piped = await a.pipeline().addTo('io:sum', 5).addTo('io:sum', 5).exec();
  if (piped[1][1] !== 110) fail(`the pipeline's second sum is ${piped[1][1]}, want 110`);
  await a.set('io:text', 'abc');
  try {
    await b.addTo('io:text', 1);
    fail('adding to a non-number did not fail');
  } catch (e) {
    if (!/attempt to perform arithmetic/.test(e.message)) fail(`unexpected error: ${e.message}`);
  }
  a.disconnect();
  b.disconnect();
  console.log('ok');
}

main().catch((e) => fail(`failed: ${e.stack || e}`));
