#!/usr/bin/env node
// The machine's floor for fan-out latency: bench/native/floor.c writes one 100-byte message to each
// of N loopback TCP sockets per round, from 1 or more threads, and a reader process measures the
// latency of every message from the round's due time. No WebSocket, no JavaScript, no server
// logic: what a gateway adds at the same rate is what the fan-out scenario measures above this.
// Run it beside the fan-out runs (same machine, same hour): the per-write cost moves with the
// machine by a third between runs.
//
//   node bench/floor.mjs --subs 1000 --rates 20k --threads 1,2 --runs 3 --duration 5
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { num, numList, parseArgs } from './lib/args.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SOURCE = path.join(here, 'native/floor.c');
const BINARY = path.join(here, 'native/build/floor');

function ensureBuilt() {
  if (existsSync(BINARY) && statSync(BINARY).mtimeMs >= statSync(SOURCE).mtimeMs) return;
  mkdirSync(path.dirname(BINARY), { recursive: true });
  const cc = process.env.CC ?? 'cc';
  execFileSync(cc, ['-O2', '-Wall', '-pthread', '-o', BINARY, SOURCE], { stdio: ['ignore', 'inherit', 'inherit'] });
}

export function runFloor(a) {
  const subs = num(a.subs, 1000);
  const rates = numList(a.rates, [20_000]);
  const threads = numList(a.threads, [1, 2]);
  const runs = num(a.runs, 3);
  const duration = num(a.duration, 5);
  const size = num(a.size, 100);
  if (subs > 9000) throw new Error('--subs: at most 9,000 (both ends of every connection are in this process tree, 20,000 files each)');
  ensureBuilt();
  const results = [];
  console.log(`== floor: ${subs} loopback TCP sockets, ${size}-byte messages, ${duration} s per step, ${runs} run(s); C writer and reader, no WebSocket`);
  for (let run = 1; run <= runs; run++) {
    for (const rate of rates) {
      for (const t of threads) {
        const perSecond = Math.max(1, Math.round(rate / subs));
        const out = execFileSync(BINARY, [subs, perSecond, t, duration, size].map(String), { encoding: 'utf8', timeout: (duration + 60) * 1000 });
        const r = { run, offered: perSecond * subs, ...JSON.parse(out.trim().split('\n').at(-1)) };
        results.push(r);
        console.log(`[floor run ${run}] ${r.offered / 1000}k deliveries/s, ${t} writer thread(s): p50 ${r.p50Ms} p95 ${r.p95Ms} p99 ${r.p99Ms} max ${r.maxMs} ms | round ${r.roundMs} ms (${r.roundUsPerSocket} us per socket)`);
      }
    }
  }
  const data = { scenario: 'floor', startedAt: new Date().toISOString(), options: { subs, rates, threads, runs, duration, size }, results };
  const file = a.out ?? path.join(here, 'results', `floor-${data.startedAt.replace(/[:.]/g, '-')}.json`);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(data, null, 2));
  console.log(`wrote ${file}`);
  return data;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    runFloor(parseArgs());
  } catch (err) {
    console.error(err);
    process.exit(1);
  }
}
