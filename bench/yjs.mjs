#!/usr/bin/env node
// Yjs documents (issue 18; `doc:{id}` channels, @signalbox/yjs). Three measurements, gateways as
// child processes on loopback with default limits and compaction settings unless said:
//
//  sync     A joiner's sync of a document of 1, 10, 50 MB encoded state (`--sizes`). The document
//           is built by publishing `yjs.update`s (transactions of 16 inserts of 1 KiB at random
//           places, ~16 KiB each) from --loaders connections, and left to compact (the gateway's
//           default every 500 updates / 1 MiB); then a fresh SignalboxProvider is timed from `new`
//           to `synced` (its client already connected). Printed: sync time, snapshot parts and
//           tail updates it read, bytes its socket received, whether its text is the document's.
//           On one node (memory), then (`--engines`) two nodes on Redis: loaders on A, joiner on B
//           (`--redis-sizes`, default the same sizes). Meanwhile a probe client publishes on
//           another channel every 20 ms: its ack p99/max show how long compactions hold the node.
//  editors  Updates/s on one document with 10 and 100 editors (`--editors`), each a
//           SignalboxProvider on its own connection typing one character at a random place as fast
//           as allowed: at most --rate edits/s (default 100, the gateway's per-connection publish
//           rate) and at most --in-flight (default 4) unacknowledged updates, for --seconds. Printed: updates/s accepted,
//           updates/s delivered to the other editors, latency p50/p99 from the sender's edit to
//           another editor's doc applying it, RATE_LIMITED seen, whether every editor converged to
//           the same text afterwards (and how long that took). One node (memory). The editors run
//           in this process, so on a small machine they compete with the gateway for CPU.
//  redis    Redis bytes per document: two nodes on Redis (--redis), --redis-editors editors spread
//           over them type --updates updates in total, once with compaction off
//           (SIGNALBOX_YJS_COMPACT_UPDATES=0, SIGNALBOX_YJS_COMPACT_BYTES=0) and once with the
//           defaults; then `MEMORY USAGE` of every key of the document (`<prefix>:{doc:…}:*`,
//           packages/server/src/redis/keys.ts), against the size of the document's encoded state.
//
// Writes bench/results/yjs-<ts>.json (or --out).
//
//   npm run build && node bench/yjs.mjs [--quick] [--only sync,editors,redis] [--sizes 1,10,50] [--engines memory,redis] [--redis-sizes 1,10,50]
//     [--loaders 8] [--editors 10,100] [--seconds 10] [--rate 100] [--in-flight 4] [--updates 5000] [--redis-editors 10]
//     [--redis redis://127.0.0.1:6379] [--out file.json]
//
// --quick: --sizes 1,10 --engines memory --seconds 3 --updates 1000 (about 30 s; the default about 60-80 s).
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { Redis } from 'ioredis';
import * as Y from 'yjs';
import { SignalboxClient } from '@signalbox/client/node';
import { msgpack } from '@signalbox/client/msgpack';
import { mintToken } from '@signalbox/server';
import { SignalboxProvider } from '@signalbox/yjs';
import { num, numList, parseArgs, strList } from './lib/args.mjs';
import { Histogram } from './lib/hist.mjs';
import { machineInfo, writeResult } from './lib/machine.mjs';
import { readProc } from './lib/proc.mjs';
import { SECRET, startNode, stopNode } from './lib/nodes.mjs';
import os from 'node:os';

const a = parseArgs();
const QUICK = a.quick === true;
const ONLY = strList(a.only, ['sync', 'editors', 'redis']);
const SIZES = numList(a.sizes, QUICK ? [1, 10] : [1, 10, 50]);
const REDIS_SIZES = numList(a.redisSizes, SIZES);
const ENGINES = strList(a.engines, QUICK ? ['memory'] : ['memory', 'redis']);
const LOADERS = num(a.loaders, 8);
const EDITORS = numList(a.editors, [10, 100]);
const SECONDS = num(a.seconds, QUICK ? 3 : 10);
const RATE = num(a.rate, 100);
const WINDOW = num(a.inFlight, 4);
const UPDATES = num(a.updates, QUICK ? 1000 : 5000);
const REDIS_EDITORS = num(a.redisEditors, 10);
const REDIS = a.redis ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const MB = 1024 * 1024;
const results = { scenario: 'yjs', startedAt: new Date().toISOString(), machine: machineInfo(), options: { QUICK, SIZES, REDIS_SIZES, ENGINES, WINDOW, LOADERS, EDITORS, SECONDS, RATE, UPDATES, REDIS_EDITORS }, sync: [], editors: [], redis: [] };


const stop = stopNode;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A `ws` class counting the bytes its sockets receive (`counter.bytes`). */
function countingSockets(counter) {
  return class Counting extends WebSocket {
    constructor(address, protocols, options) {
      super(address, protocols, options);
      this.on('message', (data) => { counter.bytes += Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : data.byteLength ?? data.length; });
    }
  };
}

async function client(port, sub, channel, counters = {}, counter = null) {
  const token = await mintToken(SECRET, { sub, ttlSeconds: 3600, channels: [channel], publish: [channel] });
  const c = new SignalboxClient({
    url: `ws://127.0.0.1:${port}/v1/ws/prps`, token, format: msgpack, connectTimeout: 30_000,
    reconnectInterval: 100, maxReconnectInterval: 1000, ...(counter ? { WebSocket: countingSockets(counter) } : {}),
  });
  c.on('error', (err) => { if (err.code === 'RATE_LIMITED') counters.rateLimited = (counters.rateLimited ?? 0) + 1; });
  await c.connect();
  return c;
}

async function inBatches(items, size, fn) {
  const out = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

/** Resolves when `probe()` returns true (checked every `everyMs`), rejects after `timeoutMs`. */
async function until(probe, what, timeoutMs = 60_000, everyMs = 20) {
  const end = performance.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (performance.now() > end) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(everyMs);
  }
}

/** Deterministic pseudo-random numbers (mulberry32). */
function random(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const fmtBytes = (n) => (n >= MB ? `${(n / MB).toFixed(2)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);
const fmtN = (n) => Math.round(n).toLocaleString('en');

// ---------------------------------------------------------------------------------------------
// sync: a joiner's time to sync a large document

/** The updates that build a document of about `bytes` encoded state, and the document's text and exact state size. */
function buildUpdates(bytes) {
  const doc = new Y.Doc();
  const text = doc.getText('t');
  const updates = [];
  doc.on('update', (u) => updates.push(u));
  const rnd = random(bytes);
  const alphabet = 'abcdefghijklmnopqrstuvwxyz     ';
  const chunk = () => {
    let s = '';
    for (let i = 0; i < 1024; i++) s += alphabet[Math.floor(rnd() * alphabet.length)];
    return s;
  };
  let state = 0;
  for (let pass = 0; state < bytes && pass < 3; pass++) {
    // Inserted text is most of the encoded state; top up once measured.
    const want = bytes - state;
    for (let done = 0; done < want; done += 16 * 1024) {
      doc.transact(() => {
        for (let k = 0; k < 16; k++) text.insert(Math.floor(rnd() * (text.length + 1)), chunk());
      });
    }
    state = Y.encodeStateAsUpdate(doc).byteLength;
  }
  const out = { updates, text: text.toString(), state };
  doc.destroy();
  return out;
}

/** Earliest retained offset of a channel's stream (1 if nothing was compacted away). */
async function earliest(c, channel) {
  const head = await c.history(channel, { limit: 0 });
  try {
    await c.history(channel, { since: { epoch: head.position.epoch, offset: 0 }, limit: 1 });
    return { earliest: 1, head: head.position.offset };
  } catch (err) {
    const e = err.details?.earliestOffset;
    if (typeof e !== 'number') throw err;
    return { earliest: e, head: head.position.offset };
  }
}

/**
 * Another client of the node publishing a small message on another channel every 20 ms, one at a
 * time: its ack latency shows how long the node's event loop is held (by a compaction's merge).
 */
async function startProbe(port) {
  const channel = `room:bench_probe_${randomBytes(4).toString('hex')}`;
  const c = await client(port, 'probe', channel);
  const hist = new Histogram();
  let running = true;
  const done = (async () => {
    while (running) {
      const t = performance.now();
      await c.publish(channel, { t }, { type: 'probe' });
      hist.record((performance.now() - t) * 1000);
      await sleep(20);
    }
  })();
  return { stop: async () => { running = false; await done; c.disconnect(); return hist.summary(); } };
}

async function publishAll(ports, channel, updates, label) {
  const counters = {};
  const probe = await startProbe(ports[0]);
  const loaders = await Promise.all(Array.from({ length: LOADERS }, (_, i) => client(ports[0], `loader_${i}`, channel, counters)));
  let next = 0;
  let retries = 0;
  const t0 = performance.now();
  await Promise.all(loaders.map(async (c) => {
    while (next < updates.length) {
      const u = updates[next++];
      for (;;) {
        try {
          await c.publish(channel, u, { type: 'yjs.update' });
          break;
        } catch (err) {
          if (err.code !== 'RATE_LIMITED') throw err;
          retries++;
          await sleep(20);
        }
      }
    }
  }));
  const loadSec = (performance.now() - t0) / 1000;
  // Let the last compaction finish: the stream's earliest offset stays put for a while.
  let last = await earliest(loaders[0], channel);
  const s0 = performance.now();
  // (A merge runs in the gateway's merge thread: for a large document give it time to land.)
  const every = 300 + Math.round(updates.reduce((n, u) => n + u.byteLength, 0) / MB) * 20;
  for (let stable = 0; stable < 3;) {
    await sleep(every);
    const now = await earliest(loaders[0], channel);
    stable = now.earliest === last.earliest ? stable + 1 : 0;
    last = now;
    if (performance.now() - s0 > 120_000) { console.log(`  ${label}: compaction did not settle in 120 s`); break; }
  }
  for (const c of loaders) c.disconnect();
  return { loadSec, retries, ...last, probe: await probe.stop() };
}

async function syncOne(engine, ports, mb) {
  const channel = `doc:bench_sync_${randomBytes(4).toString('hex')}`;
  const label = `${engine}, ${mb} MB`;
  const built = buildUpdates(mb * MB);
  const updateBytes = built.updates.reduce((n, u) => n + u.byteLength, 0);
  const loaded = await publishAll(ports, channel, built.updates, label);
  const retained = loaded.head - loaded.earliest + 1;

  const counter = { bytes: 0 };
  const joinPort = ports[ports.length - 1];
  const c = await client(joinPort, 'joiner', channel, {}, counter);
  counter.bytes = 0;
  // History requests the provider makes (pages), counted.
  let pages = 0;
  const history = c.history.bind(c);
  c.history = (...args) => { pages++; return history(...args); };
  const doc = new Y.Doc();
  let progress = null;
  const t0 = performance.now();
  const provider = new SignalboxProvider(c, channel, doc, { awareness: null });
  provider.on('sync-progress', (p) => { progress = p; });
  let error = null;
  provider.on('error', (e) => { error = e; });
  await Promise.race([provider.whenSynced(), until(() => error !== null, 'error', 600_000, 50).then(() => { throw error; })]);
  const syncMs = performance.now() - t0;
  const exact = doc.getText('t').toString() === built.text;
  const r = {
    engine, mb, stateBytes: built.state, updates: built.updates.length, updateBytes, loadSec: loaded.loadSec, loadRetries: loaded.retries,
    retainedPublications: retained, headOffset: loaded.head, probeP99Ms: loaded.probe.p99Ms, probeMaxMs: loaded.probe.maxMs, syncMs, snapshotParts: progress?.parts ?? 0, snapshotBytes: progress?.size ?? 0,
    tailUpdates: retained - (progress?.parts ?? 0), historyRequests: pages, bytesReceived: counter.bytes, exact,
  };
  results.sync.push(r);
  console.log(`${label.padEnd(16)} state ${fmtBytes(r.stateBytes)} from ${fmtN(r.updates)} updates (published in ${r.loadSec.toFixed(1)} s, ${r.loadRetries} RATE_LIMITED retries; `
    + `meanwhile another client's publish ack p99 ${r.probeP99Ms} ms, max ${r.probeMaxMs} ms); `
    + `retained ${fmtN(retained)} publications of ${fmtN(r.headOffset)}; joiner synced in ${Math.round(syncMs)} ms: snapshot ${r.snapshotParts} parts (${fmtBytes(r.snapshotBytes)}) + ${r.tailUpdates} tail updates in ${pages} history requests, `
    + `${fmtBytes(r.bytesReceived)} received (${(r.bytesReceived / r.stateBytes).toFixed(2)} x state), text exact: ${exact}`);
  provider.destroy();
  c.disconnect();
  doc.destroy();
}

async function runSync() {
  console.log(`\n== sync: a fresh SignalboxProvider, from new to synced (documents built from ~16 KiB updates by ${LOADERS} loaders, default compaction)`);
  for (const engine of ENGINES) {
    let nodes;
    if (engine === 'memory') nodes = [await startNode('memory', 'unused')];
    else {
      const prefix = `bench_yjs_${randomBytes(4).toString('hex')}`;
      try {
        nodes = [await startNode(REDIS, prefix), await startNode(REDIS, prefix)];
      } catch (err) {
        console.log(`redis: skipped (${err.message}; is Redis at ${REDIS}?)`);
        continue;
      }
      results.redisPrefixes = [...(results.redisPrefixes ?? []), prefix];
    }
    try {
      for (const mb of engine === 'memory' ? SIZES : REDIS_SIZES) await syncOne(engine === 'memory' ? 'memory' : 'redis (2 nodes)', nodes.map((n) => n.port), mb);
    } finally {
      for (const n of nodes) await stop(n);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// editors: updates/s and latency on one document

async function openEditors(ports, channel, n, counters) {
  return inBatches(Array.from({ length: n }, (_, i) => i), 25, async (i) => {
    const c = await client(ports[i % ports.length], `editor_${i}`, channel, counters);
    const doc = new Y.Doc();
    const provider = new SignalboxProvider(c, channel, doc, { awareness: null });
    await provider.whenSynced();
    return { i, c, doc, text: doc.getText('t'), provider };
  });
}

function closeEditors(editors) {
  for (const e of editors) {
    e.provider.destroy();
    e.c.disconnect();
    e.doc.destroy();
  }
}

/**
 * Every editor types one character at a random place every 1000/rate ms, skipping a beat while
 * WINDOW of its updates are unacknowledged. `onSent(editor, clock)` at each edit. Resolves after `seconds`.
 */
async function type(editors, seconds, rate, seed, onSent = () => {}) {
  const rnd = random(seed);
  const end = performance.now() + seconds * 1000;
  let sent = 0;
  await Promise.all(editors.map(async (e, k) => {
    await sleep((k * 1000) / rate / editors.length);
    for (let t = performance.now(); t < end; t = performance.now()) {
      if (e.provider.pendingUpdates < WINDOW && e.provider.synced) {
        const clock = Y.getState(e.doc.store, e.doc.clientID);
        onSent(e, clock);
        e.text.insert(Math.floor(rnd() * (e.text.length + 1)), String.fromCharCode(97 + (e.i % 26)));
        sent++;
      }
      const wait = t + 1000 / rate - performance.now();
      await sleep(wait > 0 ? wait : 0);
    }
  }));
  return sent;
}

async function converge(editors, timeoutMs) {
  const t0 = performance.now();
  try {
    await until(() => editors.every((e) => e.provider.synced && e.provider.pendingUpdates === 0) && editors.every((e) => e.text.length === editors[0].text.length)
      && editors.every((e) => e.text.toString() === editors[0].text.toString()), 'convergence', timeoutMs, 50);
    return { converged: true, ms: performance.now() - t0 };
  } catch {
    return { converged: false, ms: performance.now() - t0 };
  }
}

async function editorsOne(node, n) {
  const port = node.port;
  const channel = `doc:bench_edit_${randomBytes(4).toString('hex')}`;
  const counters = {};
  const editors = await openEditors([port], channel, n, counters);
  editors[0].text.insert(0, 'start');
  await converge(editors, 30_000);

  const sentAt = new Map(editors.map((e) => [e.doc.clientID, new Map()]));
  const hist = new Histogram();
  let delivered = 0;
  let measuring = true;
  for (const e of editors) {
    e.doc.on('update', (u, origin) => {
      if (origin !== e.provider || !measuring) return;
      const now = performance.now();
      // An update may carry several edits (the provider merges what is typed while one publish
      // waits for its ack): every edit of the sender's clock range it covers counts, each with its own latency.
      const meta = Y.parseUpdateMeta(u);
      for (const [clientId, from] of meta.from) {
        const sent = sentAt.get(clientId);
        if (!sent) continue;
        const to = meta.to.get(clientId) ?? from + 1;
        for (let clock = from; clock < to; clock++) {
          const t = sent.get(clock);
          if (t !== undefined) {
            hist.record((now - t) * 1000);
            delivered++;
          }
        }
      }
    });
  }
  const cpu0 = readProc(node.child.pid);
  const t0 = performance.now();
  const sent = await type(editors, SECONDS, RATE, n, (e, clock) => sentAt.get(e.doc.clientID).set(clock, performance.now()));
  const typingSec = (performance.now() - t0) / 1000;
  const cpu1 = readProc(node.child.pid);
  const gatewayCpuPct = cpu0 && cpu1 ? Math.round(((cpu1.cpuSec - cpu0.cpuSec) / typingSec) * 100) : null;
  const conv = await converge(editors, 60_000);
  const wallSec = (performance.now() - t0) / 1000;
  measuring = false;
  const s = hist.summary();
  const r = {
    editors: n, seconds: SECONDS, rate: RATE, sent, sentPerSec: sent / typingSec, delivered, expected: sent * (n - 1), deliveredPerSec: delivered / wallSec,
    p50Ms: s.p50Ms, p99Ms: s.p99Ms, maxMs: s.maxMs, rateLimited: counters.rateLimited ?? 0, gatewayCpuPct, converged: conv.converged, convergeMs: conv.ms, textLength: editors[0].text.length,
  };
  results.editors.push(r);
  console.log(`${String(n).padStart(3)} editors, ${RATE}/s max each, ${SECONDS} s: ${fmtN(r.sentPerSec)} updates/s accepted on the document (${fmtN(sent)}), `
    + `${fmtN(r.deliveredPerSec)} delivered/s to the other editors (${fmtN(delivered)} of ${fmtN(r.expected)}), latency p50 ${s.p50Ms} ms p99 ${s.p99Ms} ms, `
    + `gateway CPU ${gatewayCpuPct}% of a core, RATE_LIMITED ${r.rateLimited}, converged: ${conv.converged} (${Math.round(conv.ms)} ms after typing stopped, ${fmtN(r.textLength)} chars)`);
  closeEditors(editors);
}

async function runEditors() {
  console.log(`\n== editors: one document, each editor its own connection, one character per edit, at most ${WINDOW} edits unacknowledged each (one node, memory)`);
  const node = await startNode('memory', 'unused');
  try {
    for (const n of EDITORS) await editorsOne(node, n);
  } finally {
    await stop(node);
  }
}

// ---------------------------------------------------------------------------------------------
// redis: bytes per document with compaction off and on

async function docKeys(redis, prefix, channel) {
  const keys = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:{${channel}}*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  let bytes = 0;
  const perKey = {};
  let idemTtlMs = null;
  for (const k of keys.sort()) {
    const b = (await redis.call('MEMORY', 'USAGE', k, 'SAMPLES', '0')) ?? 0;
    bytes += b;
    // Idempotency results (one per publish, expiring): counted together.
    let kind = k.slice(k.indexOf('}') + 1) || k;
    if (kind.startsWith(':idem:')) {
      kind = ':idem:*';
      idemTtlMs ??= await redis.pttl(k);
    }
    perKey[kind] = (perKey[kind] ?? 0) + b;
  }
  return { keys: keys.length, bytes, perKey, idemTtlMs };
}

async function redisOne(redis, compaction) {
  const prefix = `bench_yjs_${randomBytes(4).toString('hex')}`;
  const env = compaction ? {} : { SIGNALBOX_YJS_COMPACT_UPDATES: '0', SIGNALBOX_YJS_COMPACT_BYTES: '0' };
  const nodes = [await startNode(REDIS, prefix, env), await startNode(REDIS, prefix, env)];
  const channel = `doc:bench_redis_${randomBytes(4).toString('hex')}`;
  try {
    const counters = {};
    const editors = await openEditors(nodes.map((n) => n.port), channel, REDIS_EDITORS, counters);
    // Type until the stream has UPDATES updates (offsets), at most 100/s per editor.
    const rnd = random(UPDATES);
    let sent = 0;
    const t0 = performance.now();
    await Promise.all(editors.map(async (e) => {
      while (sent < UPDATES) {
        if (e.provider.pendingUpdates === 0 && e.provider.synced) {
          e.text.insert(Math.floor(rnd() * (e.text.length + 1)), String.fromCharCode(97 + (e.i % 26)));
          sent++;
        }
        await sleep(10);
      }
    }));
    const conv = await converge(editors, 60_000);
    const typeSec = (performance.now() - t0) / 1000;
    // Compaction runs after the publish that crosses a threshold: let the last one finish.
    let last = await earliest(editors[0].c, channel);
    for (let stable = 0; stable < 3;) {
      await sleep(300);
      const now = await earliest(editors[0].c, channel);
      stable = now.earliest === last.earliest ? stable + 1 : 0;
      last = now;
    }
    const state = Y.encodeStateAsUpdate(editors[0].doc).byteLength;
    const mem = await docKeys(redis, prefix, channel);
    const r = {
      compaction, updates: sent, headOffset: last.head, retainedPublications: last.head - last.earliest + 1, stateBytes: state, textLength: editors[0].text.length,
      redisKeys: mem.keys, redisBytes: mem.bytes, perKey: mem.perKey, idemTtlMs: mem.idemTtlMs, redisBytesWithoutIdem: mem.bytes - (mem.perKey[':idem:*'] ?? 0), converged: conv.converged, typeSec,
    };
    results.redis.push(r);
    console.log(`compaction ${compaction ? 'on (defaults: 500 updates / 1 MiB per node)' : 'off'}: ${fmtN(sent)} updates (${typeSec.toFixed(1)} s, ${REDIS_EDITORS} editors on 2 nodes), `
      + `stream head ${fmtN(last.head)}, ${fmtN(r.retainedPublications)} publications retained; Redis ${fmtBytes(mem.bytes)} in ${mem.keys} keys `
      + `(${Object.entries(mem.perKey).map(([k, b]) => `${k} ${fmtBytes(b)}`).join(', ')}; the idempotency keys expire, ${mem.idemTtlMs ?? '-'} ms left on one), `
      + `${fmtBytes(r.redisBytesWithoutIdem)} without them, for a document of ${fmtBytes(state)} encoded state (${(mem.bytes / state).toFixed(1)} x, ${(r.redisBytesWithoutIdem / state).toFixed(1)} x without); converged: ${conv.converged}`);
    closeEditors(editors);
  } finally {
    for (const n of nodes) await stop(n);
    await cleanup(redis, prefix);
  }
}

async function cleanup(redis, prefix) {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== '0');
}

async function runRedis() {
  console.log(`\n== redis: bytes per document after ${fmtN(UPDATES)} one-character updates, two nodes on ${REDIS}`);
  const redis = new Redis(REDIS, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
  } catch (err) {
    console.log(`redis: skipped (${err.message})`);
    return;
  }
  try {
    await redisOne(redis, false);
    await redisOne(redis, true);
  } finally {
    redis.disconnect();
  }
}

const t0 = performance.now();
console.log(`load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} on ${os.cpus().length} cores at the start`);
if (ONLY.includes('sync')) await runSync();
if (ONLY.includes('editors')) await runEditors();
if (ONLY.includes('redis')) await runRedis();
if (results.redisPrefixes) {
  const redis = new Redis(REDIS, { maxRetriesPerRequest: 1 });
  for (const p of results.redisPrefixes) await cleanup(redis, p);
  redis.disconnect();
}
results.finishedAt = new Date().toISOString();
results.loadavgAtEnd = os.loadavg();
console.log(`load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} at the end`);
console.log(`\n(total ${((performance.now() - t0) / 1000).toFixed(0)} s) results: ${writeResult('yjs', results, a.out)}`);
process.exit(0);
