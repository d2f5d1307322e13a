#!/usr/bin/env node
// Bounded soak: mixed traffic plus abuse against gateway processes on loopback, then the
// delivery account. Stops by itself.
//
//   npm run build && node bench/soak.mjs [--seconds 60] [--mode single|cluster|both] [--rate 100]
//
// Traffic: SDK subscribers (reconnect + recover) on a few channels, an HTTP publisher (ids, retried
// on failure with the same id) round-robin over the nodes. Abuse, all the time: malformed and
// oversized frames, too-deep JSON, clients that never read and keep asking for history, a
// channel-creation flood of large publications. `cluster`: 3 nodes on a private redis-server, one
// node SIGKILLed (and restarted) a third of the way, Redis restarted (empty) two thirds of the way.
//
// Prints: publications acked, deliveries, lost silently (must be 0: an acked publication a
// subscriber neither received nor was told it could not recover), announced unrecoverable, each
// gateway's RSS at start / peak / end, and crashes (a node that died unasked: must be 0).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { SignalboxClient } from '@signalbox/client/node';
import { mintToken } from '@signalbox/server';
import { parseArgs } from './lib/args.mjs';

const a = parseArgs();
const SECONDS = Number(a.seconds ?? 60);
const MODE = a.mode ?? 'both';
const RATE = Number(a.rate ?? 100);
const SUBSCRIBERS = Number(a.subscribers ?? 20);
const CHANNELS = Array.from({ length: 4 }, (_, i) => `agent:soak_${i}`);
const CLI = fileURLToPath(new URL('../packages/server/dist/cli.js', import.meta.url));
const SECRET = randomBytes(24).toString('hex');
const API_KEY = `sk_soak_${randomBytes(12).toString('hex')}`;
const children = new Set();
process.on('exit', () => { for (const c of children) c.kill('SIGKILL'); });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function rssMiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

class Node {
  constructor(name, broker, prefix) {
    Object.assign(this, { name, broker, prefix, child: null, port: 0, rss: { start: NaN, peak: 0, end: NaN }, crashes: 0, killing: false });
  }

  async start() {
    this.port ||= await freePort();
    const child = spawn(process.execPath, [CLI, 'serve'], {
      stdio: ['ignore', 'ignore', 'ignore'],
      env: {
        PATH: process.env.PATH, HOME: process.env.HOME, SIGNALBOX_HOST: '127.0.0.1', SIGNALBOX_PORT: String(this.port),
        SIGNALBOX_BROKER: this.broker, SIGNALBOX_REDIS_PREFIX: this.prefix, SIGNALBOX_JWT_SECRET: SECRET, SIGNALBOX_API_KEY: API_KEY,
        SIGNALBOX_LOG_LEVEL: 'silent', SIGNALBOX_MAX_CONNECTIONS_PER_IP: '0', SIGNALBOX_HEARTBEAT_INTERVAL: '2s', SIGNALBOX_METRICS_INTERVAL: '1s',
      },
    });
    children.add(child);
    child.once('exit', () => {
      children.delete(child);
      if (!this.killing) this.crashes++;
    });
    this.child = child;
    for (let i = 0; i < 400; i++) {
      try {
        if ((await fetch(`http://127.0.0.1:${this.port}/readyz`)).status === 200) break;
      } catch { /* starting */ }
      await sleep(50);
    }
    if (Number.isNaN(this.rss.start)) this.rss.start = rssMiB(child.pid);
  }

  sample() {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    const r = rssMiB(this.child.pid);
    if (r > this.rss.peak) this.rss.peak = r;
    this.rss.end = r;
  }

  async kill() {
    this.killing = true;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGKILL');
    await exited;
    this.killing = false;
  }

  async stop() {
    this.sample();
    this.killing = true;
    this.child?.kill('SIGTERM');
  }

  get http() { return `http://127.0.0.1:${this.port}`; }
  get ws() { return `ws://127.0.0.1:${this.port}/v1/ws/prps`; }
}

async function startRedis() {
  const port = await freePort();
  const redis = { port, child: null, url: `redis://127.0.0.1:${port}` };
  redis.start = async () => {
    redis.child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    children.add(redis.child);
    for (let i = 0; i < 100; i++) {
      const up = await new Promise((resolve) => {
        const s = createServer();
        s.once('error', () => resolve(true)).listen(port, '127.0.0.1', () => s.close(() => resolve(false)));
      });
      if (up) return;
      await sleep(50);
    }
  };
  redis.restart = async () => {
    const exited = new Promise((r) => redis.child.once('exit', r));
    redis.child.kill('SIGKILL');
    await exited;
    await redis.start();
  };
  await redis.start();
  return redis;
}

/** Abusive clients that run until `stop`: malformed frames, non-readers with history floods, a channel-creation flood. */
async function abuse(nodes, stop) {
  const token = await mintToken(SECRET, { sub: 'abuser', channels: ['*'], publish: ['*'], ttlSeconds: 3600 });
  const open = (node, opts = {}) => new Promise((resolve) => {
    const ws = new WebSocket(node.ws, { headers: { authorization: `Bearer ${token}` }, ...opts });
    ws.on('error', () => {});
    ws.once('open', () => resolve(ws));
    ws.once('close', () => resolve(null));
  });
  const deep = '['.repeat(5000) + ']'.repeat(5000);
  const big = 'x'.repeat(600 * 1024);
  let flood = 0;
  while (!stop.done) {
    const node = nodes[Math.floor(Math.random() * nodes.length)];
    const ws = await open(node);
    if (ws) {
      for (const f of ['{not json', deep, JSON.stringify({ id: 'x', action: 'publish', payload: { channel: CHANNELS[0], data: big } }), '\u0000\uffff', JSON.stringify({ action: 'nope' })]) {
        if (ws.readyState === WebSocket.OPEN) ws.send(f);
      }
      // Channel-creation flood: large publications to new channels.
      for (let i = 0; i < 20 && ws.readyState === WebSocket.OPEN; i++) {
        ws.send(JSON.stringify({ id: `f${flood}`, action: 'publish', payload: { channel: `agent:flood_${flood++}`, data: 'y'.repeat(60_000) } }));
      }
      setTimeout(() => ws.terminate(), 500);
    }
    // A client that never reads and floods history requests.
    const slow = await open(node);
    if (slow) {
      slow._socket.pause();
      for (let i = 0; i < 40 && slow.readyState === WebSocket.OPEN; i++) slow.send(JSON.stringify({ id: `h${i}`, action: 'history', payload: { channel: CHANNELS[i % CHANNELS.length], limit: 1000 } }));
      setTimeout(() => slow.terminate(), 3000);
    }
    await sleep(200);
  }
}

async function soak(label, nodes, faults) {
  const token = await mintToken(SECRET, { sub: 'soak_sub', channels: ['*'], ttlSeconds: 3600 });
  const urls = nodes.map((n) => n.ws);
  const subs = [];
  for (let i = 0; i < SUBSCRIBERS; i++) {
    const urlList = [...urls.slice(i % urls.length), ...urls.slice(0, i % urls.length)];
    const client = new SignalboxClient({ url: urlList, token, reconnectInterval: 100, maxReconnectInterval: 1000 });
    client.on('error', () => {});
    const rec = { client, got: new Map(), announced: new Map() };
    for (const ch of CHANNELS) {
      rec.got.set(ch, new Set());
      rec.announced.set(ch, []);
      const sub = client.subscribe(ch);
      sub.on('publication', (m) => rec.got.get(ch).add(m.id));
      sub.on('recovery_failed', () => rec.announced.get(ch).push(Date.now()));
    }
    await client.connect();
    subs.push(rec);
  }
  await sleep(500);

  const acked = [];
  const stop = { done: false };
  const abuser = abuse(nodes, stop);
  const samples = setInterval(() => nodes.forEach((n) => n.sample()), 1000);
  let seq = 0;
  let rr = 0;
  const publishOne = async () => {
    const id = `soak_${++seq}`;
    const channel = CHANNELS[seq % CHANNELS.length];
    for (let attempt = 0; attempt < 50; attempt++) {
      const node = nodes[rr++ % nodes.length];
      try {
        const res = await fetch(`${node.http}/v1/publish`, {
          method: 'POST', headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify({ channel, id, type: 'soak.tick', data: { seq } }), signal: AbortSignal.timeout(3000),
        });
        if (res.status === 200) {
          await res.json();
          acked.push({ id, channel, at: Date.now() });
          return;
        }
        await res.arrayBuffer();
      } catch { /* node down or slow: retry (same id) on the next node */ }
      await sleep(100);
    }
  };
  const started = Date.now();
  const faultPlan = [...faults];
  const inflight = new Set();
  while (Date.now() - started < SECONDS * 1000) {
    const elapsed = (Date.now() - started) / (SECONDS * 1000);
    if (faultPlan.length > 0 && elapsed >= faultPlan[0].at) {
      const f = faultPlan.shift();
      console.log(`  [${label}] ${f.name}`);
      void f.run();
    }
    const p = publishOne().finally(() => inflight.delete(p));
    inflight.add(p);
    await sleep(1000 / RATE);
  }
  await Promise.all(inflight);
  stop.done = true;
  await abuser;
  // Quiescence: every subscriber is connected again and has caught up.
  await sleep(8000);
  clearInterval(samples);
  nodes.forEach((n) => n.sample());

  let delivered = 0;
  let lost = 0;
  let announced = 0;
  for (const s of subs) {
    for (const p of acked) {
      if (s.got.get(p.channel).has(p.id)) delivered++;
      else if (s.announced.get(p.channel).some((t) => t >= p.at - 50)) announced++;
      else lost++;
    }
    s.client.disconnect();
  }
  console.log(`${label}: ${acked.length} publications acked; ${delivered} deliveries of ${acked.length * subs.length} expected; lost silently: ${lost}; announced as unrecoverable: ${announced}`);
  for (const n of nodes) {
    console.log(`  ${n.name}: RSS start ${n.rss.start.toFixed(0)} MiB, peak ${n.rss.peak.toFixed(0)} MiB, end ${n.rss.end.toFixed(0)} MiB; crashes: ${n.crashes}`);
  }
  return lost;
}

let lostTotal = 0;
if (MODE === 'single' || MODE === 'both') {
  const node = new Node('node-1 (memory)', 'memory', 'unused');
  await node.start();
  lostTotal += await soak('one node, memory', [node], []);
  await node.stop();
}
if (MODE === 'cluster' || MODE === 'both') {
  const redis = await startRedis();
  const prefix = `soak_${randomBytes(4).toString('hex')}`;
  const nodes = [1, 2, 3].map((i) => new Node(`node-${i} (redis)`, redis.url, prefix));
  await Promise.all(nodes.map((n) => n.start()));
  lostTotal += await soak('three nodes, Redis', nodes, [
    { at: 1 / 3, name: 'SIGKILL node-2 (restarted after 3 s)', run: async () => { await nodes[1].kill(); await sleep(3000); await nodes[1].start(); } },
    { at: 2 / 3, name: 'Redis restarted (empty)', run: () => redis.restart() },
  ]);
  await Promise.all(nodes.map((n) => n.stop()));
  redis.child.kill('SIGTERM');
}
process.exit(lostTotal === 0 ? 0 : 1);
