#!/usr/bin/env node
// Charts of p99 latency against delivered rate, one line per target and run, from fan-out result
// JSON files. Writes an SVG per chart and renders it to PNG with playwright-core driving Debian's
// chromium (bash scripts/install-chromium.sh); without chromium, only the SVG is written.
//
//   node bench/chart.mjs bench/reports/fanout-1k-r4.json [more.json ...] [--out-dir bench/reports] [--name fanout-1k-r4] [--mixed-sizes]
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from './lib/args.mjs';
import { repoRoot } from './lib/targets.mjs';

const COLORS = { signalbox: '#d62728', 'ws-coalesce': '#1f77b4', 'ws-naive': '#2ca02c', socketio: '#9467bd' };
const LABELS = { signalbox: 'Signalbox', 'ws-coalesce': 'bare ws, coalesced writes', 'ws-naive': 'bare ws, send per subscriber', socketio: 'Socket.IO v4 room broadcast' };
const DASH = ['', '6 3', '2 3', '8 3 2 3'];

const a = parseArgs();
const files = process.argv.slice(2).filter((x) => !x.startsWith('--') && x.endsWith('.json'));
if (!files.length) {
  console.error('usage: node bench/chart.mjs <fanout-result.json> [...] [--out-dir dir] [--name base]');
  process.exit(2);
}
const outDir = path.resolve(a.outDir ?? path.join(repoRoot, 'bench/reports'));
mkdirSync(outDir, { recursive: true });

const groups = new Map(); // key -> { title, series: Map(target -> [runs]) }
for (const f of files) {
  const d = JSON.parse(readFileSync(f, 'utf8'));
  const o = d.options;
  // --mixed-sizes: one chart for runs of different payload sizes (equal frames on the wire), each
  // target labelled with its payload size.
  const key = a.mixedSizes ? `${o.conns}-${o.channels}-${o.subsPerChannel}` : `${o.conns}-${o.channels}-${o.subsPerChannel}-${o.size}`;
  const g = groups.get(key) ?? { o, machine: d.machine, series: new Map(), name: a.name, sizes: new Set() };
  groups.set(key, g);
  g.sizes.add(o.size);
  for (const r of d.runs) {
    if (!r.steps?.length) continue;
    const label = a.mixedSizes ? `${r.target} (${o.size} B)` : r.target;
    const list = g.series.get(label) ?? [];
    list.push(r.steps.filter((s) => s.p99Ms !== null));
    g.series.set(label, list);
  }
}

function niceLog(min, max) {
  const lo = Math.floor(Math.log10(min));
  const hi = Math.ceil(Math.log10(max));
  return [lo, hi];
}

function fmtRate(v) {
  return v >= 1e6 ? `${v / 1e6}M` : v >= 1e3 ? `${v / 1e3}k` : `${v}`;
}

function svgChart(g) {
  const W = 900, H = 560, L = 80, R = 260, T = 60, B = 70;
  const pw = W - L - R, ph = H - T - B;
  const pts = [...g.series.values()].flat(2);
  const [x0, x1] = niceLog(Math.max(1000, Math.min(...pts.map((p) => p.delivered))), Math.max(...pts.map((p) => p.delivered)));
  const [y0, y1] = niceLog(Math.max(0.1, Math.min(...pts.map((p) => p.p99Ms))), Math.max(100, ...pts.map((p) => p.p99Ms)));
  const X = (v) => L + ((Math.log10(Math.max(v, 10 ** x0)) - x0) / (x1 - x0)) * pw;
  const Y = (v) => T + ph - ((Math.log10(Math.max(v, 10 ** y0)) - y0) / (y1 - y0)) * ph;
  const o = g.o;
  const sizes = g.sizes.size > 1 ? 'payload size per target' : `${o.size}-byte messages`;
  const title = o.channels === 1
    ? `Fan-out: 1 publisher → ${o.conns.toLocaleString('en')} subscribers, one channel, ${sizes}`
    : `Fan-out: ${o.channels.toLocaleString('en')} channels × ${o.subsPerChannel} subscribers (${o.conns.toLocaleString('en')} connections), ${sizes}`;
  let s = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`;
  s += `<rect width="${W}" height="${H}" fill="white"/>`;
  s += `<text x="${L}" y="28" font-size="16" font-weight="bold">${title}</text>`;
  s += `<text x="${L}" y="46" fill="#555">p99 one-way latency against delivered rate; each line is one run (${g.machine?.cpus ?? '?'} cores, ${g.machine?.node ?? ''}, ${o.durationMs / 1000} s steps)</text>`;
  // grid
  for (let e = x0; e <= x1; e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v > 10 ** x1 || v < 10 ** x0) continue;
      const x = X(v);
      s += `<line x1="${x}" y1="${T}" x2="${x}" y2="${T + ph}" stroke="${m === 1 ? '#ccc' : '#eee'}"/>`;
      s += `<text x="${x}" y="${T + ph + 18}" text-anchor="middle" fill="#333">${fmtRate(v)}</text>`;
    }
  }
  for (let e = y0; e <= y1; e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v > 10 ** y1 || v < 10 ** y0) continue;
      const y = Y(v);
      s += `<line x1="${L}" y1="${y}" x2="${L + pw}" y2="${y}" stroke="${m === 1 ? '#ccc' : '#eee'}"/>`;
      s += `<text x="${L - 8}" y="${y + 4}" text-anchor="end" fill="#333">${v >= 1 ? v : v.toFixed(1)}</text>`;
    }
  }
  s += `<rect x="${L}" y="${T}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`;
  s += `<text x="${L + pw / 2}" y="${H - 22}" text-anchor="middle" font-size="13">delivered messages per second (all subscribers, log scale)</text>`;
  s += `<text transform="translate(22 ${T + ph / 2}) rotate(-90)" text-anchor="middle" font-size="13">p99 latency, ms (log scale)</text>`;
  const y50 = Y(50);
  s += `<line x1="${L}" y1="${y50}" x2="${L + pw}" y2="${y50}" stroke="#e377c2" stroke-dasharray="5 4" stroke-width="1.5"/>`;
  s += `<text x="${L + pw - 4}" y="${y50 - 5}" text-anchor="end" fill="#e377c2">p99 = 50 ms</text>`;
  let ly = T + 10;
  const order = ['signalbox', 'ws-coalesce', 'ws-naive', 'socketio'].filter((t) => g.series.has(t)).concat([...g.series.keys()].filter((t) => !COLORS[t]));
  for (const t of order) {
    const color = COLORS[t] ?? COLORS[t.split(' ')[0]] ?? '#555';
    g.series.get(t).forEach((steps, i) => {
      const sorted = [...steps].sort((p, q) => p.offered - q.offered);
      const d = sorted.map((p, k) => `${k ? 'L' : 'M'}${X(p.delivered).toFixed(1)} ${Y(p.p99Ms).toFixed(1)}`).join(' ');
      s += `<path d="${d}" fill="none" stroke="${color}" stroke-width="1.8" stroke-dasharray="${DASH[i % DASH.length]}" opacity="0.9"/>`;
      for (const p of sorted) {
        const lossy = p.lost > 0;
        s += `<circle cx="${X(p.delivered).toFixed(1)}" cy="${Y(p.p99Ms).toFixed(1)}" r="3.2" fill="${lossy ? 'white' : color}" stroke="${color}"/>`;
      }
    });
    s += `<line x1="${L + pw + 16}" y1="${ly}" x2="${L + pw + 40}" y2="${ly}" stroke="${color}" stroke-width="2.5"/>`;
    s += `<text x="${L + pw + 46}" y="${ly + 4}">${LABELS[t] ?? t}</text>`;
    s += `<text x="${L + pw + 46}" y="${ly + 19}" fill="#666" font-size="11">${g.series.get(t).length} run(s)</text>`;
    ly += 40;
  }
  s += `<text x="${L + pw + 16}" y="${ly + 4}" fill="#666" font-size="11">open circle: step with loss</text>`;
  s += `<text x="${L + pw + 16}" y="${ly + 20}" fill="#666" font-size="11">solid/dashed/dotted: run 1/2/3</text>`;
  s += '</svg>';
  return s;
}

async function renderPng(svgs) {
  const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
  if (!chromium) {
    console.log('no chromium found (bash scripts/install-chromium.sh): wrote SVG only');
    return;
  }
  const { chromium: pw } = await import('playwright-core');
  const browser = await pw.launch({
    executablePath: chromium,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ deviceScaleFactor: 2 });
    for (const { svg, png } of svgs) {
      await page.setContent(`<html><body style="margin:0">${svg}</body></html>`);
      await page.locator('svg').screenshot({ path: png });
      console.log(`wrote ${path.relative(process.cwd(), png)}`);
    }
  } finally {
    await browser.close();
  }
}

const out = [];
for (const [key, g] of groups) {
  const base = g.name ?? `p99-vs-delivered-${key}`;
  const svg = svgChart(g);
  const svgPath = path.join(outDir, `${base}.svg`);
  writeFileSync(svgPath, svg);
  console.log(`wrote ${path.relative(process.cwd(), svgPath)}`);
  out.push({ svg, png: path.join(outDir, `${base}.png`) });
}
await renderPng(out);
