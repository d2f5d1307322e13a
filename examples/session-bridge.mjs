#!/usr/bin/env node
// The CDP bridge: a headless Chromium the platform runs (here started with
// --remote-debugging-port=0, as an agent's or a test's browser would be) is attached to
// `session:{id}` with attachBridge(). A viewer joins: the screencast starts (only while someone
// watches), frames arrive as binary JPEG publications; the viewer clicks the page's button
// remotely, reads the result back with dom.query, and sees the page's console line.
//
//   node examples/session-bridge.mjs            (needs Chromium: /usr/bin/chromium or CHROMIUM_PATH)
//
// The same from a terminal: signalbox session attach --cdp http://127.0.0.1:9222 --target /app --session demo
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignalboxClient } from '@signalbox/client/node';
import { msgpack } from '@signalbox/client/msgpack';
import { attachBridge, BinaryPublishWebSocket, frameBytes, jpegSize } from '@signalbox/session/node';
import { next, run, setup } from './lib/setup.mjs';

const SESSION = 'agent_run_7';
const CHANNEL = `session:${SESSION}`;
const CHROMIUM = process.env.CHROMIUM_PATH ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));

const PAGE = `<!doctype html><title>Agent task</title><body style="margin:0;font:18px sans-serif">
<style>@keyframes spin{to{transform:rotate(360deg)}}#spin{width:30px;height:30px;background:#36c;animation:spin 1s linear infinite}</style>
<h1 style="margin:20px">Order #1234</h1><button id="approve" style="margin:20px;font-size:18px">Approve</button>
<p id="state" style="margin:20px">pending</p><div id="spin" style="margin:20px"></div>
<script>document.getElementById('approve').onclick = () => { document.getElementById('state').textContent = 'approved'; console.log('order approved'); };</script>`;

/** Starts Chromium headless with remote debugging on a free port; resolves with its CDP endpoint. */
function launchChromium(url) {
  const profile = mkdtempSync(join(tmpdir(), 'sb-bridge-'));
  const child = spawn(CHROMIUM, ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--remote-debugging-port=0',
    `--user-data-dir=${profile}`, '--window-size=800,600', url], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.once('exit', () => {
    try {
      rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    } catch {
      // A Chromium helper process may still be writing its profile; the OS cleans tmp.
    }
  });
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr.on('data', (d) => {
      err += d;
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
      if (m) resolve({ endpoint: m[1], kill: () => new Promise((done) => { child.once('exit', done); child.kill(); }) });
    });
    child.once('exit', (code) => reject(new Error(`chromium exited (${code}): ${err.slice(-500)}`)));
  });
}

run(async () => {
  if (!CHROMIUM) throw new Error('no Chromium found: install it (Debian: apt-get install chromium) or set CHROMIUM_PATH');
  const gw = await setup();
  const site = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE));
  await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve));
  const chrome = await launchChromium(`http://127.0.0.1:${site.address().port}/app`);
  console.log(`[platform] headless Chromium, CDP at ${chrome.endpoint.replace(/\/devtools.*/, '')}`);

  // ---- the bridge: read + handle on the session; frames go out as MessagePack bytes ----
  const bridgeClient = new SignalboxClient({ url: gw.wsUrl(), token: await gw.token('bridge', { channels: [CHANNEL], handle: [CHANNEL] }), WebSocket: BinaryPublishWebSocket });
  await bridgeClient.connect();
  const bridge = await attachBridge({ client: bridgeClient, cdp: chrome.endpoint, target: '/app', session: SESSION, screencast: { maxFps: 5 }, watchIntervalMs: 250 });
  await bridge.commands.ready;
  console.log(`[bridge] attached to tab ${bridge.targetId.slice(0, 8)}… on ${CHANNEL}; screencasting: ${bridge.stats.screencasting} (nobody watches yet)`);

  // ---- a viewer: read + call; MessagePack so frames arrive as bytes ----
  const viewer = new SignalboxClient({ url: gw.wsUrl(), token: await gw.token('usr_operator', { channels: [CHANNEL], call: [CHANNEL] }), format: msgpack });
  await viewer.connect();
  const live = viewer.subscribe(CHANNEL);
  let frames = 0;
  const threeFrames = new Promise((resolve) => {
    live.on('publication', (p) => {
      if (p.type !== 'page.frame') return;
      const jpeg = frameBytes(p.data.jpeg);
      const ok = jpeg[0] === 0xff && jpeg[1] === 0xd8 && jpeg.at(-2) === 0xff && jpeg.at(-1) === 0xd9;
      const size = jpegSize(jpeg);
      if (++frames <= 3) console.log(`[viewer] frame ${frames}: JPEG ${size.width}x${size.height}, ${(jpeg.length / 1024).toFixed(1)} kB, markers ${ok ? 'ok' : 'BAD'}, bytes: ${p.data.jpeg instanceof Uint8Array}`);
      if (frames === 3) resolve();
    });
  });
  await next(live, 'subscribed');
  await threeFrames;

  // ---- a remote click, read back from the page ----
  const logged = next(live, 'publication', (p) => p.type === 'console.log');
  console.log(`[viewer] before: ${JSON.stringify((await viewer.call(CHANNEL, 'dom.query', { selector: '#state' })).text)}`);
  await viewer.call(CHANNEL, 'click', { selector: '#approve' });
  console.log(`[viewer] after a remote click: ${JSON.stringify((await viewer.call(CHANNEL, 'dom.query', { selector: '#state' })).text)}`);
  console.log(`[viewer] the page logged: ${(await logged).data.args.join(' ')}`);
  console.log(`[bridge] frames published: ${bridge.stats.framesPublished > 0 ? 'yes' : 'no'}, at most 5 per second`);

  viewer.disconnect();
  await bridge.stop();
  bridgeClient.disconnect();
  await chrome.kill();
  site.close();
  await gw.close();
});
