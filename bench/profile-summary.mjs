#!/usr/bin/env node
// Summarizes a V8 CPU profile (`node --cpu-prof`, e.g. a gateway run by a bench with
// BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"): self time per function and per
// source file, and total (inclusive) time of the functions that match --focus, as shares of the
// profile's samples. The recipe is in bench/README.md ("Profiling").
//
// A bench's profile also holds its setup (connecting 1,000 clients) and drain: the timeline printed
// first (busy share per second) shows where the load ran; pass that window as --from/--to (seconds
// from the profile's start), or --busiest N for the N busiest consecutive seconds.
//
//   node bench/profile-summary.mjs /tmp/prof/CPU.*.cpuprofile [--busiest 5 | --from 18 --to 23] [--top 40] [--focus publish,fanout]
import { readFileSync } from 'node:fs';
import { parseArgs } from './lib/args.mjs';

const argv = process.argv.slice(2);
const a = parseArgs(argv);
const files = argv.filter((x, i) => !x.startsWith('--') && (i === 0 || !argv[i - 1].startsWith('--') || argv[i - 1].includes('=')));
if (!files.length) {
  console.error('usage: node bench/profile-summary.mjs FILE.cpuprofile [--top N] [--focus name1,name2]');
  process.exit(2);
}
const TOP = Number(a.top ?? 40);
const focus = String(a.focus ?? '').split(',').filter(Boolean);

for (const file of files) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Sample times (ms from the start) from the deltas.
  const times = new Float64Array(prof.samples.length);
  for (let i = 0, t = 0; i < prof.samples.length; i++) times[i] = (t += prof.timeDeltas[i]) / 1000;
  const idleId = prof.nodes.find((n) => n.callFrame.functionName === '(idle)')?.id;
  const seconds = Math.ceil((prof.endTime - prof.startTime) / 1e6);
  const busy = new Array(seconds).fill(0);
  const all = new Array(seconds).fill(0);
  for (let i = 0; i < times.length; i++) {
    const sec = Math.min(seconds - 1, Math.floor(times[i] / 1000));
    all[sec]++;
    if (prof.samples[i] !== idleId) busy[sec]++;
  }
  let from = a.from === undefined ? 0 : Number(a.from);
  let to = a.to === undefined ? seconds : Number(a.to);
  if (a.busiest !== undefined) {
    const w = Number(a.busiest);
    let best = -1;
    for (let s0 = 0; s0 + w <= seconds; s0++) {
      const b = busy.slice(s0, s0 + w).reduce((x, y) => x + y, 0);
      if (b > best) [best, from, to] = [b, s0, s0 + w];
    }
  }
  const hits = new Map();
  let total = 0;
  for (let i = 0; i < times.length; i++) {
    if (times[i] < from * 1000 || times[i] >= to * 1000) continue;
    hits.set(prof.samples[i], (hits.get(prof.samples[i]) ?? 0) + 1);
    total++;
  }
  const durMs = (to - from) * 1000;

  const short = (url) => url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, 'npm:').replace(/^.*\/packages\//, '').replace(/^node:/, 'node:');
  const label = (cf) => `${cf.functionName || '(anonymous)'} ${cf.url ? `${short(cf.url)}:${cf.lineNumber + 1}` : ''}`.trim();

  const selfFn = new Map();
  const selfFile = new Map();
  const incl = new Map();
  for (const [id, n] of hits) {
    const node = byId.get(id);
    const cf = node.callFrame;
    const key = label(cf);
    selfFn.set(key, (selfFn.get(key) ?? 0) + n);
    const f = cf.url ? short(cf.url) : `(${cf.functionName || 'native'})`;
    selfFile.set(f, (selfFile.get(f) ?? 0) + n);
    if (focus.length) {
      // Inclusive: each matching function on the stack once per sample.
      const seen = new Set();
      for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
        const name = byId.get(cur).callFrame.functionName;
        const m = focus.find((x) => name === x);
        if (m && !seen.has(m)) {
          seen.add(m);
          incl.set(m, (incl.get(m) ?? 0) + n);
        }
      }
    }
  }
  const pct = (n) => `${((n / total) * 100).toFixed(1).padStart(5)} %`;
  const top = (m, k) => [...m].sort((x, y) => y[1] - x[1]).slice(0, k);
  console.log(`== ${file}`);
  console.log(`busy share per second: ${busy.map((b, i) => `${i}:${all[i] ? Math.round((b / all[i]) * 100) : 0}`).join(' ')}`);
  console.log(`-- window ${from}-${to} s: ${total} samples over ${durMs.toFixed(0)} ms`);
  console.log('-- self time by file');
  for (const [k, n] of top(selfFile, 25)) console.log(`${pct(n)}  ${k}`);
  console.log(`-- self time by function (top ${TOP})`);
  for (const [k, n] of top(selfFn, TOP)) console.log(`${pct(n)}  ${k}`);
  if (focus.length) {
    console.log('-- total time (self + callees) of the focused functions');
    for (const name of focus) console.log(`${pct(incl.get(name) ?? 0)}  ${name}`);
  }
}
