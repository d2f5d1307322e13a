#!/usr/bin/env node
// Session debugging figures, on an embedded gateway (memory broker, loopback) and real Chromium:
//   1. in-page overhead: ms per 1,000 console.log calls in a page without capture, with capture
//      under the default cap (100 events/s: most calls are counted, not serialized), and with
//      capture and no effective cap (every call serialized and queued);
//   2. screencast: frames/s a viewer receives from the CDP bridge (maxFps cap as given) and the
//      end-to-end frame latency (bridge takes the frame -> viewer receives it, same clock);
//   3. command round trip p50/p99: a viewer's dom.query to the in-page source, evaluate to the bridge.
//
//   npm run build && node bench/session.mjs [--rounds 5] [--seconds 3] [--calls 200] [--fps 30]
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';
import { DEFAULT_NAMESPACES, Gateway, loadConfig, mintToken } from '@signalbox/server';
import { SignalboxClient } from '@signalbox/client/node';
import { msgpack } from '@signalbox/client/msgpack';
import { attachBridge, BinaryPublishWebSocket } from '@signalbox/session/node';
import { parseArgs } from './lib/args.mjs';

const a = parseArgs();
const ROUNDS = Number(a.rounds ?? 5);
const SECONDS = Number(a.seconds ?? 3);
const CALLS = Number(a.calls ?? 200);
const FPS = Number(a.fps ?? 30);
const CHROMIUM = process.env.CHROMIUM_PATH ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));
if (!CHROMIUM) throw new Error('no Chromium: set CHROMIUM_PATH');
const BUNDLE = readFileSync(fileURLToPath(import.meta.resolve('@signalbox/session/bundle')));

const pct = (xs, p) => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const median = (xs) => pct(xs, 50);
const f = (n, d = 2) => n.toFixed(d);

const secret = randomBytes(24).toString('hex');
const config = loadConfig({ env: {}, overrides: { host: '127.0.0.1', port: 0, jwtSecret: secret, logLevel: 'warn', metricsIntervalMs: 0, maxConnectionsPerIp: 0, maxMessageBytes: 1024 * 1024, namespaces: DEFAULT_NAMESPACES } });
const gateway = new Gateway(config);
const { port } = await gateway.start();
const WS = `ws://127.0.0.1:${port}/v1/ws/prps`;
const token = (sub, channel, grants) => mintToken(secret, { sub, channels: [channel], ttlSeconds: 3600, ...grants });

const PAGE = `<!doctype html><title>bench</title><h1 id="t">Bench page</h1>
<style>@keyframes spin{to{transform:rotate(360deg)}}#s{width:60px;height:60px;background:#c33;animation:spin .5s linear infinite}</style><div id="s"></div>
<script src="/b.js"></script>`;
const site = createServer((req, res) => {
  if (req.url === '/b.js') return res.writeHead(200, { 'content-type': 'text/javascript' }).end(BUNDLE);
  res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
});
await new Promise((r) => site.listen(0, '127.0.0.1', r));
const origin = `http://127.0.0.1:${site.address().port}`;

// ---- 1. in-page overhead ---------------------------------------------------------------------
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
const ctx = await browser.newContext();
/**
 * ms per 1,000 console.log calls (median of ROUNDS), in a fresh page, with `start` run first (or
 * nothing). `quiet` replaces the browser's console.log by a no-op first, so what is left is the
 * SDK's own cost (the real console is slow here: playwright listens to every message over CDP).
 */
async function consoleCost(start, quiet) {
  const page = await ctx.newPage();
  await page.goto(`${origin}/`);
  if (quiet) await page.evaluate(() => { console.log = () => {}; });
  if (start) await page.evaluate(start.fn, start.arg);
  const ms = await page.evaluate(async (rounds) => {
    const out = [];
    for (let r = 0; r < rounds; r++) {
      const t0 = performance.now();
      for (let i = 0; i < 1000; i++) console.log('order updated', i, { id: 'ord_1', items: [1, 2, 3], total: 42.5 });
      out.push(performance.now() - t0);
      await new Promise((res) => setTimeout(res, 20));
    }
    return out;
  }, ROUNDS);
  await page.close();
  return median(ms);
}
const startIn = async ({ ws, token, session, cap }) => {
  const { SignalboxClient: C, startSession } = window.SignalboxSession;
  const client = new C({ url: ws, token, maxQueueSize: 100_000 });
  await client.connect();
  window.s = startSession({ client, session, ...(cap ? { maxEventsPerSecond: cap, maxBuffer: 100_000 } : {}) });
  await window.s.commands.ready;
};
const pageSession = async (cap) => {
  const session = `bench_${randomBytes(4).toString('hex')}`;
  return { fn: startIn, arg: { ws: WS, token: await token('page', `session:${session}`, { handle: [`session:${session}`] }), session, cap } };
};
const without = await consoleCost(null, false);
const capped = await consoleCost(await pageSession(undefined), false);
const uncapped = await consoleCost(await pageSession(1e9), false);
console.log(`in-page console.log x1000, real console (median of ${ROUNDS}): no capture ${f(without)} ms | capture, default cap ${f(capped)} ms | capture, every call published ${f(uncapped)} ms`);
const qWithout = await consoleCost(null, true);
const qCapped = await consoleCost(await pageSession(undefined), true);
const qUncapped = await consoleCost(await pageSession(1e9), true);
console.log(`in-page console.log x1000, no-op console underneath (the SDK's own cost): no capture ${f(qWithout)} ms | capture, default cap ${f(qCapped)} ms | capture, every call published ${f(qUncapped)} ms`);

// ---- 3a. command round trip to the in-page source ------------------------------------------------
const session = `bench_${randomBytes(4).toString('hex')}`;
const channel = `session:${session}`;
const cmdPage = await ctx.newPage();
await cmdPage.goto(`${origin}/`);
await cmdPage.evaluate(startIn, { ws: WS, token: await token('page', channel, { handle: [channel] }), session });
const viewer = new SignalboxClient({ url: WS, token: await token('viewer', channel, { call: [channel] }) });
await viewer.connect();
async function roundTrips(ch, method, params) {
  const ms = [];
  for (let i = 0; i < CALLS; i++) {
    const t0 = performance.now();
    await viewer.call(ch, method, params);
    ms.push(performance.now() - t0);
  }
  return ms;
}
const domq = await roundTrips(channel, 'dom.query', { selector: '#t' });
console.log(`command round trip, in-page dom.query (${CALLS} calls, one at a time): p50 ${f(pct(domq, 50))} ms, p99 ${f(pct(domq, 99))} ms`);
await browser.close();

// ---- 2. screencast through the bridge, 3b. evaluate round trip ------------------------------------
const profile = mkdtempSync(join(tmpdir(), 'sb-bench-'));
const chrome = spawn(CHROMIUM, ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--remote-debugging-port=0', `--user-data-dir=${profile}`, '--window-size=800,600', `${origin}/`], { stdio: ['ignore', 'ignore', 'pipe'] });
const endpoint = await new Promise((resolve) => {
  let err = '';
  chrome.stderr.on('data', (d) => {
    err += d;
    const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
    if (m) resolve(m[1]);
  });
});
const bSession = `bench_${randomBytes(4).toString('hex')}`;
const bChannel = `session:${bSession}`;
const bridgeClient = new SignalboxClient({ url: WS, token: await token('bridge', bChannel, { handle: [bChannel] }), WebSocket: BinaryPublishWebSocket });
await bridgeClient.connect();
const bridge = await attachBridge({ client: bridgeClient, cdp: endpoint, target: origin, session: bSession, screencast: { maxFps: FPS, maxWidth: 800, maxHeight: 600 }, watchIntervalMs: 200 });
await bridge.commands.ready;
const watcher = new SignalboxClient({ url: WS, token: await token('watcher', bChannel, { call: [bChannel] }), format: msgpack });
await watcher.connect();
const sub = watcher.subscribe(bChannel);
const latencies = [];
let bytes = 0;
let firstAt = 0;
sub.on('publication', (p) => {
  if (p.type !== 'page.frame') return;
  if (!firstAt) firstAt = Date.now();
  latencies.push(Date.now() - p.data.ts);
  bytes += p.data.jpeg.length;
});
await new Promise((r) => {
  const wait = () => (latencies.length ? r() : setTimeout(wait, 20));
  wait();
});
await new Promise((r) => setTimeout(r, SECONDS * 1000));
const frames = latencies.length;
const elapsed = (Date.now() - firstAt) / 1000;
console.log(`screencast (maxFps ${FPS}, 800x600 max, JPEG q60): ${f(frames / elapsed, 1)} frames/s over ${f(elapsed, 1)} s, ${f(bytes / frames / 1024, 1)} kB/frame, latency bridge->viewer p50 ${pct(latencies, 50)} ms, p99 ${pct(latencies, 99)} ms`);
watcher.unsubscribe(bChannel);
const evalMs = [];
for (let i = 0; i < CALLS; i++) {
  const t0 = performance.now();
  await watcher.call(bChannel, 'evaluate', { expression: '1 + 1' });
  evalMs.push(performance.now() - t0);
}
console.log(`command round trip, bridge evaluate (${CALLS} calls): p50 ${f(pct(evalMs, 50))} ms, p99 ${f(pct(evalMs, 99))} ms`);

viewer.disconnect();
watcher.disconnect();
await bridge.stop();
bridgeClient.disconnect();
await new Promise((r) => { chrome.once('exit', r); chrome.kill(); });
try {
  rmSync(profile, { recursive: true, force: true, maxRetries: 3 });
} catch {
  // a Chromium helper may still be writing; tmp is cleaned by the OS
}
site.close();
await gateway.drain(1000);
process.exit(0);
