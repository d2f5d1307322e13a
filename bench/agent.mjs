#!/usr/bin/env node
// Agent runs (docs/agents.md): N concurrent runs, each an agent (`serveAgent`, its own connection)
// streaming an answer at --rate tokens/s to --viewers viewers (`Conversation`, one connection
// each). Prints delivered tokens/s (summed over viewers), token latency p50/p99 from the moment the
// agent's generator yields a token to the moment a viewer's Conversation hands it over (the 40 ms
// append window included: that batching is the point), whether every viewer ended with exactly the
// agent's text, RATE_LIMITED refusals seen, and gateway CPU (% of one core, user+system from /proc).
// On one node (memory engine), then on two nodes on Redis (agents on node A, viewers spread on A
// and B). Gateways run as child processes on loopback with default limits; the agents and viewers
// run in this process, so on a small machine they compete with the gateway for CPU.
//
//   npm run build && node bench/agent.mjs [--runs 200] [--seconds 10] [--rate 50] [--viewers 3] [--window 40] [--redis redis://127.0.0.1:6379] [--only memory|redis]
import { randomBytes } from 'node:crypto';
import { Conversation, SignalboxClient, serveAgent } from '@signalbox/client/node';
import { mintToken } from '@signalbox/server';
import { num, parseArgs } from './lib/args.mjs';
import { Histogram } from './lib/hist.mjs';
import { readProc } from './lib/proc.mjs';
import { SECRET, startNode } from './lib/nodes.mjs';

const a = parseArgs();
const RUNS = num(a.runs, 200);
const SECONDS = num(a.seconds, 10);
const RATE = num(a.rate, 50);
const VIEWERS = num(a.viewers, 3);
const WINDOW = num(a.window, 40);
const REDIS = a.redis ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ONLY = a.only;


/** Tokens "t0 t1 …" at `rate`/s for `count` tokens; records when each was yielded. */
async function* generator(count, rate, yielded, signal) {
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    if (signal.aborted) return;
    const wait = start + (i * 1000) / rate - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    yielded[i] = performance.now();
    yield `t${i} `;
  }
}

async function client(port, sub, grants, counters) {
  const token = await mintToken(SECRET, { sub, ttlSeconds: 3600, ...grants });
  const c = new SignalboxClient({ url: `ws://127.0.0.1:${port}/v1/ws/prps`, token, connectTimeout: 30_000 });
  c.on('error', (err) => { if (err.code === 'RATE_LIMITED') counters.rateLimited++; });
  c.on('*', (m) => { if (m.type === 'error' && m.data?.code === 'RATE_LIMITED') counters.rateLimited++; });
  c.on('undelivered', () => { counters.undelivered++; });
  await c.connect();
  return c;
}

/** Connects in batches, so N hundred handshakes do not all land in one event-loop turn. */
async function inBatches(items, size, fn) {
  const out = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

async function measure(label, agentPort, viewerPorts, pids) {
  const counters = { rateLimited: 0, undelivered: 0 };
  const tokens = Math.round(RATE * SECONDS);
  const hist = new Histogram();
  let delivered = 0;
  const tag = randomBytes(3).toString('hex');
  const runs = Array.from({ length: RUNS }, (_, i) => ({ channel: `agent:bench_${tag}_${i}`, yielded: new Float64Array(tokens), produced: '' }));

  // Agents: one connection each (the per-connection publish rate stays the gateway's default).
  const agents = await inBatches(runs, 50, async (r, i) => {
    const c = await client(agentPort, `agent_${i}`, { channels: [r.channel], handle: [r.channel] }, counters);
    const server = serveAgent(c, {
      channel: r.channel, appendWindowMs: WINDOW,
      handler: async (_input, run) => {
        await run.stream(generator(tokens, RATE, r.yielded, run.signal));
        r.produced = run.text;
      },
    });
    await server.ready;
    return c;
  });
  // Viewers: VIEWERS per run, spread over the nodes.
  const viewerSpecs = runs.flatMap((r, i) => Array.from({ length: VIEWERS }, (_, v) => ({ r, i, v })));
  const viewers = await inBatches(viewerSpecs, 100, async ({ r, i, v }) => {
    const port = viewerPorts[(i * VIEWERS + v) % viewerPorts.length];
    const c = await client(port, `viewer_${i}_${v}`, { channels: [r.channel], call: [r.channel] }, counters);
    const conv = new Conversation(c, r.channel);
    await conv.ready;
    const at = { next: 0 };
    conv.on('delta', (e) => {
      const now = performance.now();
      for (const word of e.text.split(' ')) {
        if (!word) continue;
        const idx = Number(word.slice(1));
        hist.record((now - r.yielded[idx]) * 1000);
        delivered++;
        if (idx !== at.next) counters.outOfOrder = (counters.outOfOrder ?? 0) + 1;
        at.next = idx + 1;
      }
    });
    return { c, conv, r, v };
  });

  const cpu0 = pids.map(readProc);
  const self0 = process.cpuUsage();
  const t0 = performance.now();
  // Every run at once: the first viewer of each sends the input.
  const sent = await Promise.all(viewers.filter((x) => x.v === 0).map(async (x) => ({ x, run: await x.conv.send('stream') })));
  const ends = await Promise.all(sent.flatMap(({ x, run }) => viewers.filter((y) => y.r === x.r).map(async (y) => ({ y, end: await y.conv.finished(run.runId) }))));
  const wall = (performance.now() - t0) / 1000;
  const cpu1 = pids.map(readProc);
  const cpuSec = cpu1.reduce((s, r, i) => s + (r && cpu0[i] ? r.cpuSec - cpu0[i].cpuSec : 0), 0);
  // The agents and viewers run in this process: near 100 % of a core, it (not the gateway) sets the latency.
  const self = process.cpuUsage(self0);
  const selfSec = (self.user + self.system) / 1e6;

  const complete = ends.filter(({ y, end }) => end.status === 'completed' && end.text === y.r.produced && end.text.length > 0).length;
  const s = hist.summary();
  console.log(`${label.padEnd(30)} ${RUNS} runs x ${VIEWERS} viewers, ${RATE} tok/s for ${SECONDS} s: `
    + `${Math.round(delivered / wall).toLocaleString('en')} delivered tokens/s, token latency p50 ${s.p50Ms} ms p99 ${s.p99Ms} ms, `
    + `gateway CPU ${Math.round((cpuSec / wall) * 100)}% of a core, bench process (agents + viewers) ${Math.round((selfSec / wall) * 100)}%, viewers with the exact text ${complete}/${ends.length}, `
    + `RATE_LIMITED ${counters.rateLimited}, undelivered ${counters.undelivered}, out of order ${counters.outOfOrder ?? 0} (wall ${wall.toFixed(1)} s)`);
  for (const c of [...agents, ...viewers.map((x) => x.c)]) c.disconnect();
}

if (ONLY !== 'redis') {
  const single = await startNode('memory', 'unused');
  await measure('one node (memory)', single.port, [single.port], [single.child.pid]);
  single.child.kill('SIGTERM');
}

if (ONLY !== 'memory') {
  const prefix = `bench_agent_${randomBytes(4).toString('hex')}`;
  let nodes;
  try {
    nodes = [await startNode(REDIS, prefix), await startNode(REDIS, prefix)];
  } catch (err) {
    console.log(`two nodes on Redis: skipped (${err.message}; is Redis at ${REDIS}?)`);
    process.exit(0);
  }
  await measure('two nodes on Redis', nodes[0].port, nodes.map((n) => n.port), nodes.map((n) => n.child.pid));
  for (const n of nodes) n.child.kill('SIGTERM');
}
process.exit(0);
