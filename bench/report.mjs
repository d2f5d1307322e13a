#!/usr/bin/env node
// Markdown tables from fan-out / efficiency / capacity result JSON, for docs/benchmarks.md.
//
//   node bench/report.mjs bench/reports/fanout-1k-r4.json [more.json ...]
import { readFileSync } from 'node:fs';
import { fmt, median, bestRate, peakRate } from './fanout.mjs';

const LABELS = { signalbox: 'Signalbox', 'ws-coalesce': 'bare ws, coalesced', 'ws-naive': 'bare ws, send per sub', socketio: 'Socket.IO v4' };
const ORDER = ['signalbox', 'ws-coalesce', 'ws-naive', 'socketio'];
const files = process.argv.slice(2).filter((x) => x.endsWith('.json'));

const r1 = (v) => (Math.abs(v) >= 100 ? Math.round(v) : Math.round(v * 10) / 10);
const r2 = (v) => Math.round(v * 100) / 100;
const range = (xs, f = r1) => {
  const v = xs.filter((x) => x !== null && x !== undefined);
  if (!v.length) return '-';
  const lo = Math.min(...v), hi = Math.max(...v), m = median(v);
  return v.length === 1 || lo === hi ? f(m) : `${f(m)} (${f(lo)}–${f(hi)})`;
};

function fanoutTables(d) {
  const o = d.options;
  const byT = {};
  for (const r of d.runs) (byT[r.target] ??= []).push(r);
  const targets = ORDER.filter((t) => byT[t]).concat(Object.keys(byT).filter((t) => !ORDER.includes(t)));
  let s = `#### ${d.scenario}: ${o.conns} subscribers, ${o.channels} channel(s) × ${o.subsPerChannel}, ${o.size}-byte messages, ` +
    `${o.durationMs / 1000} s steps, ${d.runs.length / targets.length} run(s) — ${d.startedAt.slice(0, 16).replace('T', ' ')} UTC\n\n`;
  s += '| target | highest delivered/s with p99 < 50 ms, zero loss, kept up: per run | median | peak delivered/s (any latency), median (min–max) | p99 at 20k/s (ms), per run | server µs CPU / delivery at 20k/s |\n|---|---|---|---|---|---|\n';
  for (const t of targets) {
    const rs = byT[t];
    const best = rs.map((r) => (r.error ? null : bestRate(r.steps)));
    const p20 = rs.map((r) => r.steps.find((x) => x.offered === 20_000)?.p99Ms ?? null);
    const e20 = rs.map((r) => r.steps.find((x) => x.offered === 20_000)?.serverCpuUsPerDelivery ?? null);
    const peak = rs.map((r) => (r.error ? null : peakRate(r.steps)));
    s += `| ${LABELS[t] ?? t} | ${best.map((b) => (b === null ? 'failed' : fmt(b))).join(' / ')} | **${fmt(median(best.filter((b) => b !== null)))}** | ${range(peak, fmt)} | ` +
      `${p20.map((v) => (v === null ? '-' : r1(v))).join(' / ')} | ${range(e20, r2)} |\n`;
  }
  for (const t of targets) {
    const rs = byT[t];
    const rates = [...new Set(rs.flatMap((r) => r.steps.map((x) => x.offered)))].sort((a, b) => a - b);
    s += `\n**${LABELS[t] ?? t}** — per offered rate, median (min–max) over the runs that reached it:\n\n`;
    s += '| offered/s | runs | delivered/s | p50 ms | p95 ms | p99 ms | max ms | lost | server CPU % | server RSS MiB | generator CPU % | other CPU % |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n';
    for (const rate of rates) {
      const st = rs.map((r) => r.steps.find((x) => x.offered === rate)).filter(Boolean);
      const col = (k) => st.map((x) => x[k]);
      s += `| ${fmt(rate)} | ${st.length} | ${range(col('delivered'), fmt)} | ${range(col('p50Ms'))} | ${range(col('p95Ms'))} | ${range(col('p99Ms'))} | ` +
        `${range(col('maxMs'))} | ${col('lost').reduce((a, b) => a + b, 0)} | ${range(col('serverCpuPct'))} | ${range(col('serverRssMiB'))} | ` +
        `${range(col('genCpuPct'))} | ${range(col('otherCpuPct'))} |\n`;
    }
  }
  return s;
}

/** Server CPU µs per delivered message at fixed offered rates (median and spread over runs). */
function efficiencyTable(d, rates = [20e3, 50e3, 100e3, 200e3, 500e3, 1e6]) {
  const byT = {};
  for (const r of d.runs) (byT[r.target] ??= []).push(r);
  const targets = ORDER.filter((t) => byT[t]);
  const present = rates.filter((rate) => d.runs.some((r) => r.steps.some((x) => x.offered === rate)));
  let s = `#### server CPU µs per delivered message (${d.scenario}, ${d.options.conns} subscribers), median (min–max) of runs\n\n`;
  s += `| target | ${present.map((r) => `${fmt(r)}/s`).join(' | ')} |\n|---|${present.map(() => '---').join('|')}|\n`;
  for (const t of targets) {
    s += `| ${LABELS[t] ?? t} | ${present.map((rate) => range(byT[t].map((r) => r.steps.find((x) => x.offered === rate)?.serverCpuUsPerDelivery ?? null), r2)).join(' | ')} |\n`;
  }
  return s;
}

function capacityTable(d) {
  const o = d.options;
  let s = `#### capacity: ${o.conns} idle connections × 2 channels, ${o.target} × ${o.gateways} process(es), heartbeat ${o.heartbeatMs} ms, hold ${o.holdMs / 1000} s\n\n`;
  s += '| run | connected | connect rate /s | baseline RSS MiB | RSS MiB | KiB / connection | idle CPU % | max beat gap ms | heartbeats on time |\n|---|---|---|---|---|---|---|---|---|\n';
  for (const r of d.runs) {
    if (r.error) {
      s += `| ${r.run} | failed: ${r.error.split('\n')[0]} |||||||\n`;
      continue;
    }
    const hb = r.heartbeat;
    s += `| ${r.run} | ${r.connected} | ${r.connectRate} | ${r.baselineRssMiB} | ${r.rssMiB} | ${r.rssPerConnKiB} | ${r.idleServerCpuPct} | ` +
      `${Math.max(hb.minPings > 0 ? hb.maxPingGapMs : 0, hb.minHeartbeats > 0 ? hb.maxHeartbeatGapMs : 0)} | ${hb.onTime ? 'yes' : 'NO'} |\n`;
  }
  return s;
}

for (const f of files) {
  const d = JSON.parse(readFileSync(f, 'utf8'));
  console.log(d.scenario === 'capacity' ? capacityTable(d) : `${fanoutTables(d)}\n${efficiencyTable(d)}`);
  console.log('');
}
