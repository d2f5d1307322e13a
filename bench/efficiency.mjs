#!/usr/bin/env node
// Efficiency scenario: server CPU microseconds per delivered message at fixed offered loads
// (no saturation stop). Same harness as fan-out; the figure is serverCpuUsPerDelivery.
//
//   node bench/efficiency.mjs --target signalbox,ws-coalesce,ws-naive,socketio --rates 20k,50k,100k --runs 3
import { fileURLToPath } from 'node:url';
import { parseArgs } from './lib/args.mjs';
import { fanoutOptions, runFanout, median } from './fanout.mjs';

export async function runEfficiency(a) {
  const o = fanoutOptions({ rates: '20k,50k,100k', ...a, scenario: 'efficiency', noStop: true });
  const data = await runFanout(o);
  console.log('== server CPU microseconds per delivered message (median of runs; loss/p99 in the JSON)');
  console.log(`   ${'target'.padEnd(12)} ${o.rates.map((r) => `${r / 1000}k/s`.padStart(10)).join('')}`);
  for (const [t, s] of Object.entries(data.summary.targets)) {
    console.log(`   ${t.padEnd(12)} ${o.rates.map((r) => String(median(s.cpuUsPerDelivery[r] ?? []) ?? '-').padStart(10)).join('')}`);
  }
  return data;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  runEfficiency(parseArgs()).then(() => process.exit(0), (err) => {
    console.error(err);
    process.exit(1);
  });
}
