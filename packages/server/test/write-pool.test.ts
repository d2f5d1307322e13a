/**
 * Writer threads (WritePool): large rounds are written to the sockets' file descriptors from
 * several threads, bypassing libuv, and what the kernel does not take is queued through the
 * socket. These tests run real TCP sockets on loopback, make the kernel refuse part of the bytes
 * (readers that do not read), reset a peer in the middle, and check every byte that comes out.
 */
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { setImmediate as turn } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { WebSocket } from 'ws';
import { WriteBatcher } from '../src/transport/batcher.js';
import { WsTransport } from '../src/transport/ws-transport.js';
import { BACKOFF_MAX_MS, BACKOFF_MIN_MS, WriterBackoff, WritePool } from '../src/transport/write-pool.js';
import { http, metricValue } from './helpers/core-util.js';
import { connectPrp, startGateway, uniqueChannel, type TestClient, type TestGateway } from './helpers/gateway.js';

vi.setConfig({ hookTimeout: 120_000 });

const noWs = {} as WebSocket; // only close()/bufferedAmount use it; these tests do neither

/** `n` connected TCP pairs on loopback: server ends (what transports write to) and client ends. */
async function tcpPairs(n: number): Promise<{ server: Socket; client: Socket }[]> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  const accepted: Socket[] = [];
  const all = new Promise<void>((resolve) => srv.on('connection', (s) => accepted.push(s) === n && resolve()));
  const clients: Socket[] = [];
  for (let i = 0; i < n; i++) {
    const c = connect(port, '127.0.0.1');
    await new Promise((resolve) => c.once('connect', resolve));
    clients.push(c);
  }
  await all;
  srv.close();
  // Accept order is connect order on loopback, but match by port to be sure.
  const byPort = new Map(accepted.map((s) => [s.remotePort, s]));
  return clients.map((client) => ({ client, server: byPort.get(client.localPort)! }));
}

/** Collects everything `socket` receives; `done(bytes)` resolves once that many have arrived. */
function collector(socket: Socket) {
  const parts: Buffer[] = [];
  let n = 0;
  let want = Infinity;
  let wake: (() => void) | null = null;
  socket.on('data', (b: Buffer) => {
    parts.push(b);
    n += b.length;
    if (n >= want) wake?.();
  });
  return {
    done(bytes: number): Promise<Buffer> {
      want = bytes;
      return new Promise((resolve) => {
        wake = () => resolve(Buffer.concat(parts));
        if (n >= want) wake();
      });
    },
  };
}

describe('WritePool', () => {
  it('writes large rounds from several threads; sockets the kernel refuses get the rest queued, in order', { timeout: 60_000 }, async () => {
    const pool = new WritePool(1);
    const batcher = new WriteBatcher(pool);
    const pairs = await tcpPairs(64);
    const STALLED = 4; // clients that read nothing until the end
    for (let i = 0; i < STALLED; i++) pairs[i]!.client.pause();
    const sinks = pairs.map((p) => collector(p.client));
    const transports = pairs.map((p) => new WsTransport(noWs, p.server, batcher));
    const expected: Buffer[][] = pairs.map(() => []);
    let sawQueued = false;
    for (let t = 0; t < 60; t++) {
      // A publication shared by every socket (copied once into the pool's arena)...
      const shared = Buffer.from(`<shared ${t}|${'s'.repeat(100 + t)}>`);
      for (let i = 0; i < pairs.length; i++) {
        transports[i]!.sendFrame(shared);
        expected[i]!.push(shared);
        // ...and, for the stalled sockets, 200 KB more per turn: 12 MB in all, more than the
        // kernel holds for a reader that does not read.
        if (i < STALLED) {
          const big = Buffer.from(`<big ${t}.${i}|${String.fromCharCode(97 + (t % 26)).repeat(200_000)}>`);
          transports[i]!.sendFrame(big);
          expected[i]!.push(big);
        }
      }
      await turn(); // the batcher flushes on setImmediate
      if (pairs.slice(0, STALLED).some((p) => p.server.writableLength > 0)) sawQueued = true;
    }
    expect(pool.stats.jobs).toBeGreaterThan(0);
    expect(pool.stats.incomplete).toBeGreaterThan(0); // the kernel refused part of some writes
    expect(sawQueued).toBe(true); // and the rest went through the socket's queue
    expect(pool.stats.threadJobs).toBeGreaterThan(0); // the writer thread did some of the writes
    for (let i = 0; i < STALLED; i++) pairs[i]!.client.resume();
    const got = await Promise.all(sinks.map((s, i) => s.done(Buffer.concat(expected[i]!).length)));
    for (let i = 0; i < pairs.length; i++) expect(got[i]!.equals(Buffer.concat(expected[i]!))).toBe(true);
    for (const p of pairs) p.client.destroy();
    await pool.close();
  });

  it('a peer reset in the middle fails only its own write: its socket errors and closes, the others get everything', { timeout: 30_000 }, async () => {
    const pool = new WritePool(1);
    const batcher = new WriteBatcher(pool);
    const pairs = await tcpPairs(40);
    const sinks = pairs.map((p) => collector(p.client));
    const transports = pairs.map((p) => new WsTransport(noWs, p.server, batcher));
    const victim = pairs[17]!;
    const victimClosed = new Promise<boolean>((resolve) => victim.server.on('close', (hadError) => resolve(hadError)));
    const victimError = new Promise<string>((resolve) => victim.server.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message)));
    let victimFailed = false;
    void victimError.then(() => (victimFailed = true));
    const frames: Buffer[] = [];
    for (let t = 0; t < 20; t++) {
      const f = Buffer.from(`<${t}|${'x'.repeat(500)}>`);
      frames.push(f);
      for (const tr of transports) tr.sendFrame(f);
      if (t === 5) {
        victim.client.resetAndDestroy(); // RST: the next writes to it fail (EPIPE / ECONNRESET)
      }
      await turn();
    }
    // Until the RST has reached the server side, writes to the victim may still succeed: write to it
    // alone until one fails (bounded), instead of guessing how long that takes.
    for (let i = 0; !victimFailed && i < 2000; i++) {
      transports[17]!.sendFrame(frames[0]!);
      await turn();
    }
    expect(await victimError).toMatch(/EPIPE|ECONNRESET/);
    expect(await victimClosed).toBe(true);
    const total = Buffer.concat(frames);
    const others = pairs.map((_, i) => i).filter((i) => i !== 17);
    const got = await Promise.all(others.map((i) => sinks[i]!.done(total.length)));
    for (const g of got) expect(g.equals(total)).toBe(true);
    for (const p of pairs) p.client.destroy();
    await pool.close();
  });

  it('close() ends the writer threads', async () => {
    const pool = new WritePool(2);
    await pool.close();
    await pool.close(); // idempotent
  });
});

describe('WriterBackoff (when the writer threads sit out)', () => {
  it('a stall of an idle loop changes nothing', () => {
    const b = new WriterBackoff();
    expect(b.allowed(0)).toBe(true);
    expect(b.stalled(100, false)).toBe(false);
    expect(b.allowed(100)).toBe(true);
  });

  it('a stall of a busy loop pauses the threads for the minimum, then they are tried again', () => {
    const b = new WriterBackoff();
    expect(b.stalled(100, true)).toBe(true);
    expect(b.allowed(100)).toBe(false);
    expect(b.allowed(100 + BACKOFF_MIN_MS - 1)).toBe(false);
    expect(b.allowed(100 + BACKOFF_MIN_MS)).toBe(true);
  });

  it('stalls that keep coming double the pause up to the maximum; a quiet spell resets it', () => {
    const b = new WriterBackoff();
    let now = 0;
    const pauses: number[] = [];
    for (let i = 0; i < 8; i++) {
      b.stalled(now, true);
      pauses.push(b.currentPauseMs);
      now += b.currentPauseMs + 10; // the first round after the pause stalls again
      expect(b.allowed(now)).toBe(true);
    }
    const min = BACKOFF_MIN_MS;
    expect(pauses).toEqual([min, 2 * min, 4 * min, 8 * min, 16 * min, 32 * min, 64 * min, 128 * min].map((ms) => Math.min(ms, BACKOFF_MAX_MS)));
    expect(pauses.at(-1)).toBe(BACKOFF_MAX_MS);
    // Long after the last pause ended, a stall starts again from the minimum.
    now += 3 * BACKOFF_MAX_MS;
    b.stalled(now, true);
    expect(b.currentPauseMs).toBe(BACKOFF_MIN_MS);
  });
});

describe('gateway with writer threads', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ writeThreads: 2, maxPendingRequests: 1000, publishRate: 100_000, publishBurst: 100_000, messageRate: 100_000, messageBurst: 100_000 });
  });
  afterAll(() => gw.close());

  it('every one of 60 subscribers gets every publication of a burst, in order', { timeout: 60_000 }, async () => {
    const channel = uniqueChannel('session');
    const publisher = await connectPrp(gw);
    const subs: TestClient[] = [];
    for (let i = 0; i < 60; i++) {
      const c = await connectPrp(gw);
      await c.request('subscribe', { channels: [channel] });
      subs.push(c);
    }
    const N = 300;
    for (let i = 1; i <= N; i++) publisher.send({ id: `p${i}`, action: 'publish', payload: { channel, type: 'burst', data: { i } } });
    expect((await publisher.next((m) => m.replyTo === `p${N}`, 20_000)).type).toBe('ack');
    const want = Array.from({ length: N }, (_, k) => k + 1);
    for (const s of subs) expect((await s.collect((m) => m.type === 'burst', N, 20_000)).map((m) => m.data.i)).toEqual(want);
    await Promise.all([publisher, ...subs].map((c) => c.close()));
    // The writer threads' counters are exported; the threads' writes are some of the deliveries.
    const text = (await http(gw, '/metrics', { apiKey: null })).text;
    const writes = metricValue(text, 'signalbox_write_thread_writes_total');
    expect(writes).toBeGreaterThanOrEqual(0);
    expect(writes).toBeLessThanOrEqual(metricValue(text, 'signalbox_deliveries_total', { namespace: 'session' })!);
    expect(metricValue(text, 'signalbox_write_thread_stalls_total')).toBeGreaterThanOrEqual(0);
    expect(metricValue(text, 'signalbox_write_thread_pauses_total')).toBeLessThanOrEqual(metricValue(text, 'signalbox_write_thread_stalls_total')!);
  });
});
