#!/usr/bin/env node
// RPC round trip: a caller connection calls a handler connection through the gateway.
// Prints round-trip p50/p99 (one call at a time) and calls/s (many in flight) on one node
// (memory engine), and across two nodes on Redis (caller on node A, handler on node B).
// Gateways run as child processes on loopback; stops by itself.
//
//   npm run build && node bench/rpc.mjs [--calls 2000] [--seconds 5] [--inflight 256] [--redis redis://127.0.0.1:6379]
import { randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';
import { mintToken } from '@signalbox/server';
import { parseArgs } from './lib/args.mjs';
import { SECRET, startNode as startGatewayNode } from './lib/nodes.mjs';

const a = parseArgs();
const CALLS = Number(a.calls ?? 2000);
const SECONDS = Number(a.seconds ?? 5);
const INFLIGHT = Number(a.inflight ?? 256);
const REDIS = a.redis ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

function startNode(broker, prefix) {
  return startGatewayNode(broker, prefix, {
    SIGNALBOX_RPC_MAX_IN_FLIGHT: String(INFLIGHT), SIGNALBOX_RPC_RATE: '1000000',
    SIGNALBOX_MESSAGE_RATE: '1000000', SIGNALBOX_MESSAGE_BURST: '1000000', SIGNALBOX_MAX_PENDING_REQUESTS: String(INFLIGHT * 4),
  });
}

async function connect(port, claims) {
  const token = await mintToken(SECRET, { sub: claims.sub, handle: claims.handle, call: claims.call, ttlSeconds: 3600 });
  const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws/prps`, { headers: { authorization: `Bearer ${token}` } });
  await new Promise((resolve, reject) => {
    ws.once('message', resolve);
    ws.once('error', reject);
  });
  return ws;
}

async function measure(label, callerPort, handlerPort) {
  const channel = `agent:bench_${randomBytes(4).toString('hex')}`;
  const handler = await connect(handlerPort, { sub: 'bench_handler', handle: [channel] });
  handler.on('message', (raw) => {
    const m = JSON.parse(raw.toString());
    if (m.type === 'rpc.request') handler.send(JSON.stringify({ action: 'rpc.reply', payload: { callId: m.data.callId, result: m.data.params } }));
  });
  handler.send(JSON.stringify({ id: 'h', action: 'rpc.handle', payload: { channel } }));
  await new Promise((resolve) => handler.once('message', resolve));

  const caller = await connect(callerPort, { sub: 'bench_caller', call: [channel] });
  const waiting = new Map();
  caller.on('message', (raw) => {
    const m = JSON.parse(raw.toString());
    const done = waiting.get(m.replyTo);
    if (!done) return;
    waiting.delete(m.replyTo);
    done(m);
  });
  let seq = 0;
  const call = () => new Promise((resolve, reject) => {
    const id = `c${++seq}`;
    waiting.set(id, (m) => (m.type === 'rpc.result' ? resolve() : reject(new Error(JSON.stringify(m.data)))));
    caller.send(JSON.stringify({ id, action: 'rpc.call', payload: { channel, method: 'echo', params: { n: seq }, timeoutMs: 10_000 } }));
  });

  for (let i = 0; i < 200; i++) await call(); // warm-up
  const rtt = [];
  for (let i = 0; i < CALLS; i++) {
    const t = performance.now();
    await call();
    rtt.push(performance.now() - t);
  }
  rtt.sort((x, y) => x - y);
  const q = (p) => rtt[Math.min(rtt.length - 1, Math.floor(p * rtt.length))].toFixed(2);

  let completed = 0;
  const until = performance.now() + SECONDS * 1000;
  const lane = async () => {
    while (performance.now() < until) {
      await call();
      completed++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: INFLIGHT }, lane));
  const rate = completed / ((performance.now() - t0) / 1000);
  console.log(`${label.padEnd(28)} p50 ${q(0.5)} ms   p99 ${q(0.99)} ms   ${Math.round(rate).toLocaleString('en')} calls/s (${INFLIGHT} in flight)`);
  handler.close();
  caller.close();
}

const single = await startNode('memory', 'unused');
await measure('one node (memory)', single.port, single.port);
single.child.kill('SIGTERM');

const prefix = `bench_rpc_${randomBytes(4).toString('hex')}`;
let nodes;
try {
  nodes = [await startNode(REDIS, prefix), await startNode(REDIS, prefix)];
} catch (err) {
  console.log(`two nodes on Redis: skipped (${err.message}; is Redis at ${REDIS}?)`);
  process.exit(0);
}
await measure('two nodes on Redis (A -> B)', nodes[0].port, nodes[1].port);
for (const n of nodes) n.child.kill('SIGTERM');
process.exit(0);
