/**
 * Test harness: a real gateway on 127.0.0.1 (port 0) and real WebSocket clients.
 * Nothing here sleeps: every wait is for an event, with a timeout that fails the test.
 */
import { randomBytes } from 'node:crypto';
import { WebSocket, type ClientOptions } from 'ws';
import { decodeMsgpack, encodeMsgpack } from '@signalbox/protocol';
import { Gateway, loadConfig, mintToken, type GatewayConfig, type MintOptions } from '../../src/index.js';
import type { Broker } from '../../src/broker/types.js';
import type { PresenceStore } from '../../src/presence/types.js';

export const TEST_SECRET = 'test-secret-0123456789abcdef';
export const TEST_API_KEY = 'test-api-key-0123456789';

export interface TestGateway {
  gateway: Gateway;
  config: GatewayConfig;
  port: number;
  http: string;
  /** ws://127.0.0.1:port */
  ws: string;
  token(opts?: Partial<MintOptions>): Promise<string>;
  /** POST /v1/publish with the API key. */
  publish(body: unknown, apiKey?: string): Promise<{ status: number; body: Record<string, unknown> }>;
  close(): Promise<void>;
}

export async function startGateway(overrides: Partial<GatewayConfig> = {}, opts: { broker?: Broker; presence?: PresenceStore } = {}): Promise<TestGateway> {
  const config = loadConfig({
    env: {},
    // Live metrics off unless a test asks for them: they would interleave with a test's own publications on `metrics`.
    overrides: { host: '127.0.0.1', port: 0, jwtSecret: TEST_SECRET, apiKey: TEST_API_KEY, logLevel: 'silent', maxConnectionsPerIp: 0, metricsIntervalMs: 0, ...overrides },
  });
  const gateway = new Gateway(config, { broker: opts.broker, presence: opts.presence });
  const { port } = await gateway.start();
  const http = `http://127.0.0.1:${port}`;
  return {
    gateway, config, port, http, ws: `ws://127.0.0.1:${port}`,
    token: (o = {}) => mintToken(config.jwtSecret ?? TEST_SECRET, testGrants(o)),
    async publish(body, apiKey = TEST_API_KEY) {
      const res = await fetch(`${http}/v1/publish`, {
        method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
    close: () => gateway.drain(1000),
  };
}

export type Msg = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * A WebSocket client that records every message and lets a test await the next one matching a
 * predicate. Decodes JSON text frames and MessagePack binary frames.
 */
export class TestClient {
  readonly ws: WebSocket;
  readonly messages: Msg[] = [];
  private waiters: { pred: (m: Msg) => boolean; resolve: (m: Msg) => void; from: number }[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  private seq = 0;

  constructor(url: string, options: ClientOptions & { protocols?: string | string[] } = {}) {
    const { protocols, ...rest } = options;
    this.ws = protocols !== undefined ? new WebSocket(url, protocols, rest) : new WebSocket(url, rest);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { statusCode: res.statusCode })));
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    this.ws.on('message', (data, isBinary) => {
      const msg = (isBinary ? decodeMsgpack(data as Buffer) : JSON.parse(data.toString())) as Msg;
      this.messages.push(msg);
      const idx = this.messages.length - 1;
      this.waiters = this.waiters.filter((w) => {
        if (idx >= w.from && w.pred(msg)) {
          w.resolve(msg);
          return false;
        }
        return true;
      });
    });
  }

  /** Resolves with the first message (already received or future) matching `pred`, counting from index `from`. */
  next(pred: (m: Msg) => boolean = () => true, timeoutMs = 5000, from = 0): Promise<Msg> {
    for (let i = from; i < this.messages.length; i++) if (pred(this.messages[i]!)) return Promise.resolve(this.messages[i]!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for a message; got: ${JSON.stringify(this.messages.slice(-5))}`));
      }, timeoutMs);
      const done = (m: Msg) => {
        clearTimeout(timer);
        resolve(m);
      };
      this.waiters.push({ pred, resolve: done, from });
    });
  }

  /** Awaits a message of the given `type`. */
  nextType(type: string, timeoutMs?: number): Promise<Msg> {
    return this.next((m) => m.type === type, timeoutMs);
  }

  /** Awaits until `n` messages match `pred`; resolves with them. */
  async collect(pred: (m: Msg) => boolean, n: number, timeoutMs = 10_000): Promise<Msg[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = this.messages.filter(pred);
      if (got.length >= n) return got.slice(0, n);
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`timed out: ${got.length}/${n} messages matched`);
      await this.next(pred, remaining, this.messages.length).catch(() => undefined);
    }
  }

  send(msg: unknown): void {
    this.ws.send(JSON.stringify(msg));
  }

  sendMsgpack(msg: unknown): void {
    this.ws.send(encodeMsgpack(msg));
  }

  sendRaw(data: string | Buffer): void {
    this.ws.send(data);
  }

  /**
   * Sends a PRP request with a fresh id and awaits its final reply: for `subscribe`/`unsubscribe`
   * the confirmation (per-channel errors come before it), for anything else the first message
   * with replyTo = id (which may be an `error`).
   */
  async request(action: string, payload?: unknown, timeoutMs?: number): Promise<Msg> {
    const id = `req_${++this.seq}`;
    const from = this.messages.length;
    this.send({ id, action, ...(payload !== undefined ? { payload } : {}) });
    const batchReply = { subscribe: 'subscription.confirmed', unsubscribe: 'unsubscription.confirmed' }[action];
    const final = batchReply ? (m: Msg) => m.replyTo === id && m.type === batchReply : (m: Msg) => m.replyTo === id;
    return this.next(final, timeoutMs, from);
  }

  close(code = 1000): Promise<{ code: number; reason: string }> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code);
    return this.closed;
  }
}

/** Connects to /v1/ws/prps with a Bearer header and waits for `connection.established`. */
export async function connectPrp(gw: TestGateway, opts: { token?: string; query?: string; msgpack?: boolean } = {}): Promise<TestClient> {
  const token = opts.token ?? (await gw.token());
  const client = new TestClient(`${gw.ws}/v1/ws/prps${opts.query ?? (opts.msgpack ? '?format=msgpack' : '')}`, { headers: { authorization: `Bearer ${token}` } });
  await client.nextType('connection.established');
  return client;
}

/** Connects to the PRD-035 endpoint /ws?token= and waits for the connect ack. */
export async function connectPrd(gw: TestGateway, opts: { token?: string } = {}): Promise<TestClient> {
  const token = opts.token ?? (await gw.token());
  const client = new TestClient(`${gw.ws}/ws?token=${encodeURIComponent(token)}`);
  await client.next((m) => m.type === 'ack' && m.data?.action === 'connect');
  return client;
}

export function uniqueChannel(ns = 'project'): string {
  return `${ns}:t_${randomBytes(6).toString('hex')}`;
}

/**
 * A test token's claims: sub usr_1, one hour, and by default every grant (publish, handle, call)
 * on what it may read, as when reading implied publishing. Tests of the separate grants set each
 * grant they mean.
 */
export function testGrants(o: Partial<MintOptions> = {}): MintOptions {
  const channels = o.channels ?? ['*'];
  const publish = o.publish ?? channels;
  return { sub: 'usr_1', ttlSeconds: 3600, ...o, channels, publish, handle: o.handle ?? publish, call: o.call ?? channels };
}
