/**
 * A page server on 127.0.0.1 for the session tests: serves the one-script-tag bundle (built from
 * source, the same way scripts/bundle.mjs builds it), a test page that starts a session from its
 * query string, and a few API routes; records the headers each API request arrived with.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export interface PageServer {
  origin: string;
  /** Headers of every request to /api/*, by path. */
  requests: { path: string; headers: IncomingHttpHeaders }[];
  close(): Promise<void>;
}

/** The IIFE bundle (window.SignalboxSession), built from source. */
export async function buildBundle(): Promise<Uint8Array> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL('../../src/bundle-entry.ts', import.meta.url))],
    bundle: true, minify: true, format: 'iife', globalName: 'SignalboxSession', platform: 'browser', target: 'es2022', write: false, logLevel: 'silent',
  });
  return result.outputFiles[0]!.contents;
}

/**
 * The test page: `?ws=…&token=…&session=…&opts=<json>` starts a session with `opts` (JSON, plus
 * `patterns` as regex sources) and exposes it as `window.session`; `window.ready` resolves when
 * the command handler is registered.
 */
export const TEST_PAGE = `<!doctype html>
<html><head><title>Checkout</title></head>
<body>
<h1 id="title">Checkout <small>step 2</small></h1>
<p id="secret">card=4242424242424242</p>
<button id="pay" onclick="document.getElementById('status').textContent = 'paid ' + (++window.clicks)">Pay</button>
<div id="status">idle</div>
<input id="name" value="">
<script src="/signalbox-session.min.js"></script>
<script>
  window.clicks = 0;
  const q = new URLSearchParams(location.search);
  const opts = JSON.parse(q.get('opts') || '{}');
  if (opts.redact && opts.redact.patterns) opts.redact.patterns = opts.redact.patterns.map((p) => new RegExp(p, 'g'));
  const { SignalboxClient, startSession } = window.SignalboxSession;
  const client = new SignalboxClient({ url: q.get('ws'), token: q.get('token') });
  window.watchedCalls = [];
  client.connect();
  window.session = startSession({ client, session: q.get('session'), flushMs: 10, ...opts, onWatched: (v) => window.watchedCalls.push(v.length) });
  window.ready = window.session.commands.ready.then(() => true);
</script>
</body></html>`;

/** Something always moving, so Chromium keeps painting (a screencast only sends frames when the screen changes). */
const SPINNER = '<style>@keyframes spin{to{transform:rotate(360deg)}}#spin{width:40px;height:40px;background:linear-gradient(90deg,#e11,#11e);animation:spin 1s linear infinite}</style><div id="spin"></div>';

/** The page the bridge tests drive: a button whose clicks change the page's state and log. */
export const BRIDGE_PAGE = `<!doctype html>
<html><head><title>Bridge page</title></head>
<body style="margin:0;font:16px sans-serif">
<button id="go" style="position:absolute;left:100px;top:80px;width:120px;height:40px">Go</button>
<div id="status" style="position:absolute;left:100px;top:140px">idle</div>
<input id="name" style="position:absolute;left:100px;top:180px">
<div style="position:absolute;left:300px;top:80px">${SPINNER}</div>
<script>
  let clicks = 0;
  document.getElementById('go').addEventListener('click', () => {
    clicks++;
    document.getElementById('status').textContent = 'clicked ' + clicks;
    console.log('clicked', clicks, { at: Date.now() > 0 });
  });
</script>
</body></html>`;

export async function startPageServer(bundle: Uint8Array): Promise<PageServer> {
  const requests: PageServer['requests'] = [];
  const http: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/signalbox-session.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
    } else if (path.startsWith('/api/')) {
      requests.push({ path, headers: req.headers });
      let body = '';
      req.on('data', (d: Buffer) => { body += d.toString(); });
      req.on('end', () => {
        if (path === '/api/broken') res.writeHead(500, { 'content-type': 'application/json', 'content-length': '18', 'set-cookie': 'sid=sekret-cookie-1; HttpOnly' }).end('{"error":"broken"}');
        else res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': 'sid=sekret-cookie-2' }).end(JSON.stringify({ ok: true, got: body.length }));
      });
    } else if (path === '/other') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><title>Other</title><h1 id="title">Other page</h1>${SPINNER}`);
    } else if (path === '/bridge') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(BRIDGE_PAGE);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' }).end(TEST_PAGE);
    }
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise<void>((resolve) => {
      http.closeAllConnections();
      http.close(() => resolve());
    }),
  };
}

/** A port nothing listens on (bound, then released): a fetch there fails for real. */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
