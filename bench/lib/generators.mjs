// Starting generator processes and spreading subscriber connections over them.
import path from 'node:path';
import { forkReady, request } from './ipc.mjs';
import { repoRoot } from './targets.mjs';
import { Histogram } from './hist.mjs';

export async function startGenerators(n) {
  const gens = [];
  for (let i = 0; i < n; i++) gens.push(await forkReady(path.join(repoRoot, 'bench/gen.mjs')));
  return gens;
}

/**
 * Opens `total` connections spread evenly over the generators (connection i -> source address
 * addrs[i % addrs.length], gateway port ports[i % ports.length]).
 */
export async function connectAll(gens, target, o) {
  const per = Math.ceil(o.total / gens.length);
  const t0 = performance.now();
  const res = await Promise.all(gens.map((g, k) => {
    const firstIndex = k * per;
    const count = Math.max(0, Math.min(per, o.total - firstIndex));
    return request(g, {
      cmd: 'connect', target: target.name, host: target.host, ports: target.ports, count, firstIndex,
      channels: o.channels, addrs: o.addrs, client: o.client, concurrency: o.concurrency, ctx: target.ctx,
      setupTimeoutMs: o.setupTimeoutMs,
    }, 30 * 60_000);
  }));
  const ms = performance.now() - t0;
  const bad = res.find((r) => r.error);
  if (bad) throw new Error(bad.error);
  // --client native: each generator's sockets are read by a reader process of its own.
  res.forEach((r, k) => { gens[k].nativePid = r.nativePid; });
  const connected = res.reduce((a, r) => a + r.connected, 0);
  const errors = {};
  for (const r of res) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  return {
    connected,
    failed: res.reduce((a, r) => a + r.failed, 0),
    errors,
    connectMs: Math.round(ms),
    connectRate: Math.round((connected * 1000) / ms),
  };
}

/** Every process doing a generator's work (the generator, and its native reader if any). */
export function genPids(gens) {
  return gens.flatMap((g) => (g.nativePid ? [g.pid, g.nativePid] : [g.pid]));
}

export async function allGens(gens, msg, timeoutMs) {
  return Promise.all(gens.map((g) => request(g, msg, timeoutMs)));
}

export function mergeSnapshots(snaps) {
  const h = new Histogram();
  const sum = { received: 0, stale: 0, dups: 0, other: 0, firstUs: 0, lastUs: 0, closedDuring: 0 };
  for (const s of snaps) {
    h.merge(s.hist);
    sum.received += s.received;
    sum.stale += s.stale;
    sum.dups += s.dups;
    sum.other += s.other;
    sum.closedDuring += s.closedDuring;
    if (s.firstUs && (!sum.firstUs || s.firstUs < sum.firstUs)) sum.firstUs = s.firstUs;
    if (s.lastUs > sum.lastUs) sum.lastUs = s.lastUs;
  }
  return { ...sum, latency: h.summary() };
}

export async function stopGenerators(gens) {
  await Promise.all(gens.map((g) => request(g, { cmd: 'close' }, 10_000).catch(() => {})));
  for (const g of gens) g.kill('SIGTERM');
}
