#!/usr/bin/env node
// Browser-session debugging on `session:{id}`, with a real page: Chromium opens a checkout page
// that loads @signalbox/session with one script tag. The page logs, makes a request that fails and
// one that carries a secret header; a support engineer's debugger (Node SDK, read + call only)
// attaches later, reads what happened before with history(), watches live while the user clicks
// (which throws an uncaught error), queries the page's DOM, and is refused `eval`, which this page
// did not enable. The page shows the user a badge while it is watched.
//
//   node examples/session-debugger.mjs          (needs Chromium: /usr/bin/chromium or CHROMIUM_PATH)
import { createServer } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { URLSearchParams, fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { SignalboxClient } from '@signalbox/client/node';
import { next, run, setup } from './lib/setup.mjs';

const SESSION = 'sess_42';
const CHANNEL = `session:${SESSION}`;
const CHROMIUM = process.env.CHROMIUM_PATH ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));

// The one-script-tag bundle (`npm run build` makes it): SignalboxClient + startSession on window.SignalboxSession.
const BUNDLE = readFileSync(fileURLToPath(import.meta.resolve('@signalbox/session/bundle')));

const PAGE = `<!doctype html><html><head><title>Checkout</title></head><body>
<h1>Checkout: 3 items, 42.00 EUR</h1>
<button id="pay">Pay now</button>
<script src="/signalbox-session.min.js"></script>
<script>
  const { SignalboxClient, startSession } = window.SignalboxSession;
  const params = new URLSearchParams(location.hash.slice(1));
  const client = new SignalboxClient({ url: params.get('ws'), token: params.get('token') });
  client.connect();
  // Console, errors and network are captured by default; a badge tells the user while support watches.
  const session = startSession({ client, session: params.get('session'), badge: true, watchIntervalMs: 250, redact: { headers: ['x-api-key'] } });
  window.ready = session.commands.ready.then(async () => {
    console.log('app booted', { cart: { items: 3, total: 42 } });
    await fetch('/api/me', { headers: { Authorization: 'Bearer user-secret-token' } });
    await fetch('/api/coupon', { method: 'POST', body: JSON.stringify({ code: 'SPRING' }) });
    console.warn('coupon rejected');
    return true;
  });
  document.getElementById('pay').addEventListener('click', () => {
    console.log('pay clicked');
    setTimeout(() => { throw new TypeError("Cannot read properties of undefined (reading 'card')"); });
  });
</script></body></html>`;

run(async () => {
  if (!CHROMIUM) throw new Error('no Chromium found: install it (Debian: apt-get install chromium) or set CHROMIUM_PATH');
  const gw = await setup();
  const site = createServer((req, res) => {
    if (req.url === '/signalbox-session.min.js') return res.writeHead(200, { 'content-type': 'text/javascript' }).end(BUNDLE);
    if (req.url === '/api/me') return res.writeHead(200, { 'content-type': 'application/json' }).end('{"id":"usr_visitor"}');
    if (req.url === '/api/coupon') return res.writeHead(422, { 'content-type': 'application/json' }).end('{"error":"expired"}');
    res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
  });
  await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${site.address().port}`;

  // ---- the user's tab: the page's token may read and produce its own session, nothing else ----
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const tab = await browser.newPage();
  tab.on('pageerror', () => {});
  const pageToken = await gw.token('usr_visitor', { channels: [CHANNEL], handle: [CHANNEL] });
  await tab.goto(`${origin}/#${new URLSearchParams({ ws: gw.wsUrl(), token: pageToken, session: SESSION })}`);
  await tab.waitForFunction(() => window.ready);
  await tab.evaluate(() => window.ready);
  console.log(`[page] ${origin}/ loaded in Chromium, streaming on ${CHANNEL}`);

  // ---- the debugger attaches later: read + call on the session, no publish, no handle ----
  const dbg = new SignalboxClient({ url: gw.wsUrl(), token: await gw.token('usr_support', { channels: [CHANNEL], call: [CHANNEL] }) });
  await dbg.connect();
  const show = (p) => {
    const d = p.data;
    switch (p.type.split('.')[0]) {
      case 'console': return `${p.type} ${d.args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}`;
      case 'network': return `network.request ${d.method} ${d.url.replace(origin, '')} -> ${d.status} (${d.durationMs} ms, authorization: ${d.requestHeaders.authorization ?? '-'})`;
      case 'error': return `${p.type} ${d.message}`;
      case 'debug': return `${p.type} ${d.method}${d.caller ? ` by ${d.caller.sub}` : ` ok=${d.ok}`}`;
      default: return `${p.type} ${JSON.stringify(d).slice(0, 80)}`;
    }
  };
  // Wait until the page's boot events are all stored, then read them as history.
  let earlier;
  for (;;) {
    earlier = await dbg.history(CHANNEL, { limit: 100 });
    if (earlier.publications.some((p) => p.type === 'console.warn')) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const p of earlier.publications) console.log(`[debugger] (earlier) ${show(p)}`);
  const live = dbg.subscribe(CHANNEL, { since: earlier.position });
  live.on('publication', (p) => console.log(`[debugger] ${show(p)}`));
  await next(live, 'subscribed');

  // The page notices it is watched (presence) and shows its badge.
  await tab.locator('[data-signalbox-session-badge]').waitFor();
  console.log(`[page] badge shown to the user: "${await tab.locator('[data-signalbox-session-badge]').textContent()}"`);

  // The user clicks "Pay now": the click handler logs, then an uncaught error.
  const crashed = next(live, 'publication', (p) => p.type === 'error.uncaught');
  await tab.click('#pay');
  await crashed;

  // Commands run in the page, now; each is in the stream with its caller.
  const h1 = await dbg.call(CHANNEL, 'dom.query', { selector: 'h1' }, { timeout: 5000 });
  console.log(`[debugger] dom.query h1 -> ${JSON.stringify(h1.text)}`);
  const audited = next(live, 'publication', (p) => p.type === 'debug.result' && p.data.method === 'eval');
  const refused = await dbg.call(CHANNEL, 'eval', { expression: 'document.cookie' }).catch((e) => e);
  console.log(`[debugger] eval -> refused: ${refused.code} ${refused.details?.handlerCode}: ${refused.message}`);
  await audited;

  const stored = JSON.stringify((await dbg.history(CHANNEL, { limit: 100 })).publications);
  console.log(`[debugger] the secret header in the gateway's history: ${stored.includes('user-secret-token') ? 'FOUND' : 'never'}`);
  console.log(`[debugger] the page's token in the gateway's history: ${stored.includes(pageToken) ? 'FOUND' : 'never'}`);

  dbg.disconnect();
  await browser.close();
  site.close();
  await gw.close();
});
