#!/usr/bin/env node
// Capacity scenario: idle authenticated connections, each subscribed to 2 channels. Measures the
// connect rate, gateway RSS per connection above the process baseline, idle CPU, and whether
// heartbeats (WebSocket pings and app-level heartbeat events) arrive on time for every connection
// throughout a hold period. Writes bench/results/capacity-<ts>.json.
//
//   node bench/capacity.mjs --target signalbox --conns 19000                       (one gateway process)
//   node bench/capacity.mjs --target signalbox --conns 100000 --gateways 6 \
//        --broker redis://127.0.0.1:6379                                            (cluster on Redis)
//   node bench/capacity.mjs --target ws-coalesce --conns 19000                      (peer, for reference)
import { fileURLToPath } from 'node:url';
import { parseArgs, num } from './lib/args.mjs';
import { startTarget, signalboxAvailable } from './lib/targets.mjs';
import { startGenerators, connectAll, allGens, stopGenerators } from './lib/generators.mjs';
import { ProcSampler, readProc, round } from './lib/proc.mjs';
import { machineInfo, writeResult, loopbackAddrs } from './lib/machine.mjs';
import { waitForIdle } from './lib/idle.mjs';
import { prioritise } from './lib/ipc.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function capacityOptions(a) {
  const conns = num(a.conns ?? a.subs, 19000);
  const gateways = num(a.gateways, 1);
  return {
    target: a.target ?? (signalboxAvailable() ? 'signalbox' : 'ws-coalesce'),
    conns,
    gateways,
    broker: a.broker ?? (gateways > 1 ? 'redis://127.0.0.1:6379' : undefined),
    // Generators stay well under the 20,000 open files per process.
    gens: num(a.gens, Math.max(1, Math.ceil(conns / 15000))),
    heartbeatMs: num(a.heartbeat, 5) * 1000,
    holdMs: num(a.hold, 30) * 1000,
    channels: num(a.channels, 1000),
    addrs: num(a.addrs, Math.max(16, Math.ceil(conns / 10000))),
    concurrency: num(a.concurrency, 128),
    client: a.client === 'ws' ? 'ws' : 'raw',
    runs: num(a.runs, 1),
    namespace: a.namespace ?? 'session',
    waitIdle: num(a.waitIdle, 0),
    out: a.out,
  };
}

async function runOnce(o, run) {
  const log = (...x) => console.log(`[capacity ${o.target} run ${run}]`, ...x);
  if (o.waitIdle) await waitForIdle({ maxWaitMs: o.waitIdle * 1000, log });
  const target = await startTarget(o.target, { heartbeatMs: o.heartbeatMs, gateways: o.gateways, broker: o.broker, namespace: o.namespace });
  const res = { run, target: o.target, gateways: target.pids.length };
  let gens = [];
  try {
    await sleep(2000);
    const base = target.pids.map(readProc);
    res.baselineRssMiB = round(base.reduce((a, r) => a + (r?.rssBytes ?? 0), 0) / 2 ** 20, 1);
    gens = await startGenerators(o.gens);
    const sampler = new ProcSampler(target.pids);
    sampler.start();
    const conn = await connectAll(gens, target, {
      total: o.conns,
      channels: { prefix: target.channelPrefix, count: o.channels, perConn: 2 },
      addrs: loopbackAddrs(o.addrs), client: o.client, concurrency: o.concurrency, setupTimeoutMs: 60_000,
    });
    const connectProcs = sampler.stop();
    Object.assign(res, conn);
    res.connectServerCpuPct = round(connectProcs.reduce((a, p) => a + (p.cpuPct ?? 0), 0), 1);
    log(`${conn.connected}/${o.conns} connected+subscribed in ${conn.connectMs} ms (${conn.connectRate}/s)` +
      (conn.failed ? `, ${conn.failed} failed: ${JSON.stringify(conn.errors)}` : ''));
    // Hold idle; heartbeat gaps are measured from here on.
    await allGens(gens, { cmd: 'hbStart' });
    const hold = new ProcSampler(target.pids);
    hold.start();
    const rssTrail = [];
    const t0 = Date.now();
    while (Date.now() - t0 < o.holdMs) {
      await sleep(Math.min(5000, o.holdMs - (Date.now() - t0)));
      const r = target.pids.map(readProc);
      rssTrail.push(round(r.reduce((a, x) => a + (x?.rssBytes ?? 0), 0) / 2 ** 20, 1));
    }
    const holdProcs = hold.stop();
    const hb = await allGens(gens, { cmd: 'hbReport' });
    const rss = holdProcs.reduce((a, p) => a + (p.rssBytes ?? 0), 0);
    res.rssMiB = round(rss / 2 ** 20, 1);
    res.rssTrailMiB = rssTrail;
    res.perGatewayRssMiB = holdProcs.map((p) => round((p.rssBytes ?? 0) / 2 ** 20, 1));
    res.rssPerConnKiB = conn.connected ? round((rss - res.baselineRssMiB * 2 ** 20) / conn.connected / 1024, 2) : null;
    res.idleServerCpuPct = round(holdProcs.reduce((a, p) => a + (p.cpuPct ?? 0), 0), 1);
    const alive = hb.reduce((a, h) => a + h.alive, 0);
    const maxPingGapMs = Math.max(...hb.map((h) => h.maxPingGapMs));
    const maxHeartbeatGapMs = Math.max(...hb.map((h) => h.maxHeartbeatGapMs));
    const minPings = Math.min(...hb.map((h) => h.minPings));
    const minHeartbeats = Math.min(...hb.map((h) => h.minHeartbeats));
    const expectedBeats = Math.floor(o.holdMs / o.heartbeatMs) - 1;
    // On time: every connection saw a beat (ping or heartbeat event, whichever the target sends)
    // at least every 1.5 intervals, none was dropped, and each saw the expected number of beats.
    const usePing = minPings > 0 || o.target === 'ws-naive' || o.target === 'ws-coalesce';
    const gap = usePing ? maxPingGapMs : maxHeartbeatGapMs;
    const beats = usePing ? minPings : minHeartbeats;
    res.heartbeat = {
      intervalMs: o.heartbeatMs, holdMs: o.holdMs, alive, closedDuring: hb.reduce((a, h) => a + h.closedDuring, 0),
      maxPingGapMs, minPings, maxHeartbeatGapMs, minHeartbeats, expectedBeats,
      onTime: alive === conn.connected && gap <= 1.5 * o.heartbeatMs && beats >= expectedBeats,
    };
    log(`RSS ${res.baselineRssMiB} -> ${res.rssMiB} MiB = ${res.rssPerConnKiB} KiB/connection; idle CPU ${res.idleServerCpuPct}%; ` +
      `heartbeats: ${alive} alive, max gap ping ${maxPingGapMs} ms / event ${maxHeartbeatGapMs} ms (interval ${o.heartbeatMs} ms), ` +
      `min beats ${beats}/${expectedBeats} -> ${res.heartbeat.onTime ? 'ON TIME' : 'LATE OR LOST'}`);
  } catch (err) {
    res.error = String(err.stack ?? err);
    log(`FAILED: ${err.message}`);
  } finally {
    await stopGenerators(gens);
    await target.stop();
  }
  return res;
}

export async function runCapacity(o) {
  const startedAt = new Date().toISOString();
  console.log(`== capacity: ${o.conns} idle connections x 2 channels on ${o.gateways} ${o.target} process(es), ` +
    `${o.gens} generator(s), heartbeat ${o.heartbeatMs} ms, hold ${o.holdMs / 1000} s`);
  const runs = [];
  for (let run = 1; run <= o.runs; run++) runs.push(await runOnce(o, run));
  const data = { scenario: 'capacity', startedAt, finishedAt: new Date().toISOString(), machine: machineInfo(), options: o, runs };
  const file = writeResult(`capacity-${o.target}-${o.conns}`, data, o.out);
  console.log(`wrote ${file}`);
  return data;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  prioritise(process.pid);
  runCapacity(capacityOptions(parseArgs())).then(() => process.exit(0), (err) => {
    console.error(err);
    process.exit(1);
  });
}
