#!/usr/bin/env node
// What the append bookkeeping costs a plain publication: the broker called directly, in process
// (MemoryBroker, and RedisBroker against a real Redis), for a channel of a namespace without
// appends (the plain path) and one with appends (message index, order list, fold state), side by
// side. Plain publications only (no appendTo), each with an id and an idempotency key as the
// gateway gives a client's, spread over 100 channels with a history of 100. Prints publishes/s,
// sequential (one at a time) and pipelined (many in flight), alternating the two namespaces in
// rounds, and what one channel with 100 retained messages takes: Redis `MEMORY USAGE` of its keys,
// and for the memory broker the heap per channel (with --expose-gc). About 45 s in all with a baseline (the defaults).
//
//   npm run build && node --expose-gc bench/publish-cost.mjs [--seconds 1] [--rounds 3] [--inflight 64] [--redis redis://127.0.0.1:6379]
//     [--baseline <dir>]   also measure the brokers of another build (its packages/server/dist), e.g. the one before appends
//   A baseline build of a06577a (before appends), from the repository root:
//     mkdir -p /tmp/base && git archive a06577a packages/server packages/protocol tsconfig.base.json | tar -x -C /tmp/base
//     mkdir -p /tmp/base/node_modules/@signalbox && for e in node_modules/* node_modules/.bin; do [ "$(basename $e)" = @signalbox ] || ln -s "$PWD/$e" /tmp/base/node_modules/; done
//     ln -s /tmp/base/packages/protocol /tmp/base/node_modules/@signalbox/protocol && npx tsc -b /tmp/base/packages/server
//     node --expose-gc bench/publish-cost.mjs --baseline /tmp/base/packages/server/dist
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { MemoryBroker, RedisBroker } from '@signalbox/server';
import { parseArgs } from './lib/args.mjs';

const a = parseArgs();
const SECONDS = Number(a.seconds ?? 1);
const ROUNDS = Number(a.rounds ?? 3);
const INFLIGHT = Number(a.inflight ?? 64);
const REDIS = a.redis ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const CHANNELS = 100;
const HISTORY = { size: 100, ttlMs: 600_000 };
const publisher = { via: 'ws', sub: 'user_1', client: 'conn_1' };
const data = { text: 'hello from a small channel', n: 1 };

const engines = [{ name: 'this build', MemoryBroker, RedisBroker }];
if (a.baseline) {
  const base = await import(pathToFileURL(`${a.baseline}/index.js`).href);
  engines.push({ name: `baseline (${a.baseline})`, MemoryBroker: base.MemoryBroker, RedisBroker: base.RedisBroker });
}
const prefix = `bench-pubcost-${randomBytes(4).toString('hex')}`;
const handler = { onPublication() {}, onResync() {} };
let seq = 0;

function request(channel, appends) {
  const id = `p${++seq}`;
  return { channel, type: 'chat.message', data, id, idempotencyKey: `client|6:user_1:${id}`, publisher, size: 60, history: HISTORY, idempotencyWindowMs: 120_000, ...(appends ? { appends: true } : {}) };
}

const raw = new Redis(REDIS, { lazyConnect: false });

/** Redis' own count of EVALSHA calls and the µs spent in them (INFO commandstats; never reset: the Redis may be shared). */
async function evalshaStats() {
  const out = { calls: 0, usec: 0, inner: 0 };
  for (const l of (await raw.info('commandstats')).split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(l);
    if (!m) continue;
    if (m[1] === 'evalsha') {
      out.calls = Number(m[2]);
      out.usec = Number(m[3]);
    } else if (m[1] !== 'info' && m[1] !== 'eval') out.inner += Number(m[2]);
  }
  return out;
}

/** Publishes for SECONDS, `inflight` at a time; returns publishes/s. */
async function rate(broker, tag, appends, inflight) {
  const channels = Array.from({ length: CHANNELS }, (_, i) => `bench:${tag}-${i}`);
  let n = 0;
  const end = performance.now() + SECONDS * 1000;
  const worker = async () => {
    while (performance.now() < end) {
      await broker.publish(request(channels[n % CHANNELS], appends));
      n++;
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: inflight }, worker));
  return n / ((performance.now() - start) / 1000);
}

async function withBrokers(engine, fn) {
  const memory = new engine.MemoryBroker();
  const redis = new engine.RedisBroker({ url: REDIS, prefix });
  await memory.start(handler);
  await redis.start(handler);
  try {
    return await fn({ memory, redis });
  } finally {
    await memory.close();
    await redis.close();
  }
}

const fmt = (x) => Math.round(x).toLocaleString('en-US');
const modes = [['without appends', false], ['with appends', true]];
// The baseline knows no `appends`: it always takes its own (only) path.
const modesOf = (engine) => (engine === engines[0] ? modes : [['(its only path)', false]]);
const results = [];

// Every build's brokers at once, so that each round runs every variant back to back (a loaded machine drifts).
const all = [];
for (const engine of engines) {
  const memory = new engine.MemoryBroker();
  const redis = new engine.RedisBroker({ url: REDIS, prefix });
  await memory.start(handler);
  await redis.start(handler);
  all.push({ engine, brokers: { memory, redis } });
}
for (const kind of ['memory', 'redis']) {
  for (const [style, inflight] of [['sequential', 1], ['pipelined', INFLIGHT]]) {
    const variants = all.flatMap(({ engine, brokers }) => modesOf(engine).map(([m, appends]) => ({ engine, broker: brokers[kind], m, appends, rates: [] })));
    for (const v of variants) await rate(v.broker, `warm-${kind}-${style}`, false, inflight);
    for (let r = 0; r < ROUNDS; r++) {
      for (const v of variants) {
        const before = kind === 'redis' ? await evalshaStats() : null;
        v.rates.push(await rate(v.broker, `${v.engine === engines[0] ? 'this' : 'base'}-${kind}-${style}-${v.appends ? 'on' : 'off'}-${r}`, v.appends, inflight));
        if (before) {
          const after = await evalshaStats();
          const calls = Math.max(1, after.calls - before.calls);
          (v.usec ??= []).push((after.usec - before.usec) / calls);
          // Commands a script ran (Redis counts those a script calls too): what a publication costs Redis, independent of the machine's load.
          (v.inner ??= []).push((after.inner - before.inner) / calls);
        }
      }
    }
    for (const v of variants) results.push({ engine: v.engine.name, broker: kind, style, namespace: v.m, rates: v.rates, usec: v.usec, inner: v.inner });
  }
}
for (const { brokers } of all) {
  await brokers.memory.close();
  await brokers.redis.close();
}

console.log(`publishes/s (${SECONDS} s per run, ${ROUNDS} rounds alternating; ${CHANNELS} channels, history ${HISTORY.size}; pipelined = ${INFLIGHT} in flight)`);
console.log('Redis µs/script: time Redis itself spent per EVALSHA during the run (INFO commandstats delta; other clients of a shared Redis count too)');
console.log('Redis cmds/script: Redis commands one publish script ran, on average (INFO commandstats delta)');
console.log('| build | broker | style | namespace | publishes/s (per round) | mean | Redis µs/script (per round) | Redis cmds/script |');
console.log('|---|---|---|---|---|---|---|---|');
const avg = (xs) => xs.reduce((x, y) => x + y, 0) / xs.length;
for (const r of results) {
  const us = r.usec ? r.usec.map((u) => u.toFixed(1)).join(' / ') : '-';
  const cmds = r.inner ? avg(r.inner).toFixed(1) : '-';
  console.log(`| ${r.engine} | ${r.broker} | ${r.style} | ${r.namespace} | ${r.rates.map(fmt).join(' / ')} | ${fmt(avg(r.rates))} | ${us} | ${cmds} |`);
}

// Memory of one channel with 100 retained messages.
console.log('\nRedis MEMORY USAGE of one channel with 100 retained messages (meta + stream + msgs + order; idempotency keys not counted)');
console.log('| build | namespace | keys | bytes |');
console.log('|---|---|---|---|');
for (const engine of engines) {
  await withBrokers(engine, async ({ redis }) => {
    for (const [m, appends] of modesOf(engine)) {
      const ch = `mem:${engine === engines[0] ? (appends ? 'on' : 'off') : 'base'}-${randomBytes(3).toString('hex')}`;
      for (let i = 0; i < 100; i++) await redis.publish(request(ch, appends));
      const base = `${prefix}:{${ch}}`;
      let bytes = 0;
      const present = [];
      for (const k of ['meta', 'stream', 'msgs', 'order']) {
        const u = await raw.call('MEMORY', 'USAGE', `${base}:${k}`, 'SAMPLES', '0');
        if (u !== null) {
          bytes += Number(u);
          present.push(`${k} ${u}`);
        }
      }
      console.log(`| ${engine.name} | ${m} | ${present.join(', ')} | ${fmt(bytes)} |`);
    }
  });
}

if (typeof globalThis.gc === 'function') {
  console.log('\nMemoryBroker heap per channel with 100 retained messages (1,000 channels, after GC)');
  console.log('| build | namespace | bytes per channel |');
  console.log('|---|---|---|');
  for (const engine of engines) {
    for (const [m, appends] of modesOf(engine)) {
      const broker = new engine.MemoryBroker();
      await broker.start(handler);
      globalThis.gc();
      const before = process.memoryUsage().heapUsed;
      // No idempotency keys here: the channels' history alone.
      for (let c = 0; c < 1000; c++) for (let i = 0; i < 100; i++) await broker.publish({ ...request(`heap:${c}`, appends), idempotencyKey: undefined });
      globalThis.gc();
      const per = (process.memoryUsage().heapUsed - before) / 1000;
      console.log(`| ${engine.name} | ${m} | ${fmt(per)} |`);
      await broker.close();
    }
  }
} else {
  console.log('\n(run with node --expose-gc for the memory broker heap figures)');
}

// Clean up every key of this run.
let cursor = '0';
do {
  const [next, keys] = await raw.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
  cursor = next;
  if (keys.length > 0) await raw.del(...keys);
} while (cursor !== '0');
raw.disconnect();
