/**
 * Helpers for the gateway-core suites: token signing of every kind (good and hostile), raw HTTP
 * upgrade probes, a tiny JWKS server, metrics scraping, and bounded "nothing else arrives" checks.
 * Everything talks to real sockets; nothing here mocks a part of the gateway.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, SignJWT, type JWTPayload } from 'jose';
import { TEST_API_KEY, TEST_SECRET, type Msg, type TestClient, type TestGateway } from './gateway.js';

export const enc = new TextEncoder();

/** Seconds since the epoch, as JWT claims count time. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Signs a JWT with any HMAC algorithm and secret (default: the harness secret, HS256). */
export async function signHmac(
  claims: JWTPayload & Record<string, unknown>,
  opts: { alg?: 'HS256' | 'HS384' | 'HS512'; secret?: string | Uint8Array } = {},
): Promise<string> {
  const secret = opts.secret ?? TEST_SECRET;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: opts.alg ?? 'HS256', typ: 'JWT' })
    .sign(typeof secret === 'string' ? enc.encode(secret) : secret);
}

/** Signs a JWT with an asymmetric private key. */
export async function signAsym(claims: JWTPayload & Record<string, unknown>, key: KeyObject, alg = 'RS256', kid?: string): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT', ...(kid ? { kid } : {}) }).sign(key);
}

function b64url(obj: unknown): string {
  return Buffer.from(JSON.stringify(obj)).toString('base64url');
}

/** An unsecured JWT (`alg: none`), built by hand: header.payload. (empty signature). */
export function unsecuredJwt(claims: Record<string, unknown>): string {
  return `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims)}.`;
}

/**
 * Standard claims for a valid token: sub usr_1, all channels, one hour; by default every grant
 * (publish, handle, call) on what it may read. Tests of the separate grants set each one.
 */
export function claims(extra: Record<string, unknown> = {}): JWTPayload & Record<string, unknown> {
  const channels = extra.channels ?? ['*'];
  const publish = extra.publish ?? channels;
  return { sub: 'usr_1', iat: nowSeconds(), exp: nowSeconds() + 3600, ...extra, channels, publish, handle: extra.handle ?? publish, call: extra.call ?? channels };
}

export interface RsaPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicPem: string;
}

export function rsaPair(): RsaPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privateKey, publicKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/** A JWKS endpoint on 127.0.0.1; `delayMs` holds every answer back (a slow identity provider). */
export interface JwksServer {
  url: string;
  /** Requests served so far. */
  hits: number;
  delayMs: number;
  close(): Promise<void>;
}

export async function startJwksServer(publicKey: KeyObject, kid: string, delayMs = 0): Promise<JwksServer> {
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const body = JSON.stringify({ keys: [jwk] });
  const timers = new Set<NodeJS.Timeout>();
  const state = { hits: 0, delayMs };
  const server: Server = createServer((_req, res) => {
    state.hits++;
    const answer = () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    };
    if (state.delayMs <= 0) return answer();
    const t = setTimeout(() => {
      timers.delete(t);
      answer();
    }, state.delayMs);
    timers.add(t);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    get hits() {
      return state.hits;
    },
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(v: number) {
      state.delayMs = v;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  } as JwksServer;
}

/**
 * Sends a WebSocket upgrade request by hand and resolves with the HTTP answer: 101 for an accepted
 * upgrade (the socket is then destroyed), or the refusal's status and JSON body.
 */
export function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: u.hostname, port: u.port, path: `${u.pathname}${u.search}`, method: 'GET',
      headers: {
        connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers,
      },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, body: '', headers: res.headers });
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** GET/POST with JSON, returning status, parsed body (or text) and headers. */
export async function http(
  gw: TestGateway,
  path: string,
  opts: { method?: string; body?: unknown; rawBody?: string; apiKey?: string | null; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: Msg; text: string; contentType: string | null }> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  const key = opts.apiKey === undefined ? TEST_API_KEY : opts.apiKey;
  if (key !== null) headers.authorization = `Bearer ${key}`;
  let body: string | undefined;
  if (opts.rawBody !== undefined || opts.body !== undefined) {
    headers['content-type'] ??= 'application/json';
    body = opts.rawBody ?? JSON.stringify(opts.body);
  }
  const res = await fetch(`${gw.http}${path}`, { method: opts.method ?? (body !== undefined ? 'POST' : 'GET'), headers, body });
  const text = await res.text();
  let parsed: Msg = {};
  try {
    parsed = JSON.parse(text) as Msg;
  } catch {
    // not JSON (e.g. /metrics)
  }
  return { status: res.status, body: parsed, text, contentType: res.headers.get('content-type') };
}

/** The Prometheus exposition text of the gateway. */
export async function scrapeMetrics(gw: TestGateway): Promise<string> {
  const r = await http(gw, '/metrics', { apiKey: null });
  return r.text;
}

/** Value of one sample in Prometheus text, e.g. `metricValue(text, 'signalbox_subscriptions', {namespace: 'project'})`. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got: Record<string, string> = {};
    for (const part of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) got[part[1]!] = part[2]!;
    if (Object.entries(labels).every(([k, v]) => got[k] === v) && Object.keys(got).length === Object.keys(labels).length) return Number(m[4]);
  }
  return undefined;
}

/** Asserting absence: see {@link quietPeriod} in wait.ts (the one definition). */
export { quietPeriod } from './wait.js';

/** Messages of type `error`, optionally of one code. */
export function errorsOf(client: TestClient, code?: string): Msg[] {
  return client.messages.filter((m) => m.type === 'error' && (code === undefined || m.data?.code === code));
}

/** Awaits an `error` event answering request `requestId` (PRP dialect). */
export function nextError(client: TestClient, pred: (m: Msg) => boolean, timeoutMs = 5000): Promise<Msg> {
  return client.next((m) => m.type === 'error' && pred(m), timeoutMs);
}

/** Shape every PRP server message must have (what the reference client's handleMessage relies on). */
export function expectPrpEnvelope(m: Msg): void {
  if (typeof m.id !== 'string' || m.id.length === 0) throw new Error(`message without id: ${JSON.stringify(m)}`);
  if (typeof m.type !== 'string' || m.type.length === 0) throw new Error(`message without type: ${JSON.stringify(m)}`);
  if (typeof m.timestamp !== 'string' || Number.isNaN(Date.parse(m.timestamp)) || new Date(m.timestamp).toISOString() !== m.timestamp) {
    throw new Error(`message without an ISO 8601 timestamp: ${JSON.stringify(m)}`);
  }
}
