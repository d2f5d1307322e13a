/**
 * The write path joins the frames bound for one socket within a turn into slices of one reused
 * arena. A slice must never be overwritten while a queued write still refers to it: these tests
 * hold a write queued (a stream nobody reads, a WebSocket client that pauses) while later turns
 * keep joining, and check every byte that finally comes out.
 */
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { Writable, type Duplex } from 'node:stream';
import { setImmediate as turn } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { WebSocket } from 'ws';
import { WriteBatcher } from '../src/transport/batcher.js';
import { WsTransport } from '../src/transport/ws-transport.js';
import { connectPrp, startGateway, uniqueChannel, type TestGateway } from './helpers/gateway.js';

vi.setConfig({ hookTimeout: 120_000 });

/** A frame-like buffer whose bytes say which turn and which frame it is. */
function chunk(turnNo: number, k: number, size: number): Buffer {
  return Buffer.from(`<${turnNo}.${k}|${'abcdefghijklmnopqrstuvwxyz'.repeat(Math.ceil(size / 26)).slice(0, size)}>`);
}

/** A connected TCP pair on loopback: the server end (what a transport writes to) and the client end. */
async function tcpPair(): Promise<{ server: Socket; client: Socket; close(): void }> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<Socket>((resolve) => srv.once('connection', resolve));
  const client = connect((srv.address() as AddressInfo).port, '127.0.0.1');
  const server = await accepted;
  srv.close();
  return { server, client, close: () => (server.destroy(), client.destroy()) };
}

/** Reads `socket` until `bytes` bytes have arrived. */
function readAll(socket: Socket, bytes: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  return new Promise((resolve, reject) => {
    socket.on('error', reject);
    socket.on('data', (b: Buffer) => {
      parts.push(b);
      n += b.length;
      if (n >= bytes) resolve(Buffer.concat(parts));
    });
    socket.resume();
  });
}

describe('WriteBatcher arena', () => {
  const noWs = {} as WebSocket; // only close()/bufferedAmount use it; these tests do neither

  it('a write the kernel could not take keeps its bytes while later turns join into the arena', { timeout: 30_000 }, async () => {
    const batcher = new WriteBatcher();
    const stalled = await tcpPair(); // its client does not read until the end
    const flowing = await tcpPair();
    stalled.client.pause();
    const a = new WsTransport(noWs, stalled.server, batcher);
    const b = new WsTransport(noWs, flowing.server, batcher);
    const turns = Array.from({ length: 60 }, (_, t) => ({
      a: Array.from({ length: 5 }, (_, k) => chunk(t, k, 40_000 + t)),
      b: Array.from({ length: 5 }, (_, k) => chunk(t, k, 30_000 + k)),
    }));
    const totalA = Buffer.concat(turns.flatMap((x) => x.a));
    const totalB = Buffer.concat(turns.flatMap((x) => x.b));
    const gotB = readAll(flowing.client, totalB.length);
    let queuedAt = -1;
    for (let t = 0; t < turns.length; t++) {
      for (let k = 0; k < 5; k++) {
        a.sendFrame(turns[t]!.a[k]!);
        b.sendFrame(turns[t]!.b[k]!);
      }
      await turn(); // the batcher flushes on setImmediate
      if (queuedAt < 0 && stalled.server.writableLength > 0) queuedAt = t;
    }
    // 12 MB for a reader that does not read: the kernel's buffers fill and writes queue in Node.
    expect(queuedAt).toBeGreaterThanOrEqual(0);
    expect(queuedAt).toBeLessThan(59);
    const [outA, outB] = await Promise.all([readAll(stalled.client, totalA.length), gotB]);
    expect(outB.equals(totalB)).toBe(true);
    expect(outA.length).toBe(totalA.length);
    expect(outA.equals(totalA)).toBe(true);
    stalled.close();
    flowing.close();
  });

  it('joins larger than the arena still arrive whole, and the arena grows for the next turn', { timeout: 30_000 }, async () => {
    const batcher = new WriteBatcher();
    const pair = await tcpPair();
    const t = new WsTransport(noWs, pair.server, batcher);
    const expected: Buffer[] = [];
    for (let round = 0; round < 3; round++) {
      for (let k = 0; k < 12; k++) {
        const f = chunk(round, k, 200 * 1024); // 12 x 200 KiB: more than the first arena (1 MiB)
        t.sendFrame(f);
        expected.push(f);
      }
      await turn();
    }
    const total = Buffer.concat(expected);
    expect((await readAll(pair.client, total.length)).equals(total)).toBe(true);
    pair.close();
  });
});

describe('batched writes over real sockets', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    // Room for the paused reader: this test is about bytes, not the slow-consumer rule.
    gw = await startGateway({
      outboundBufferBytes: 64 * 1024 * 1024, slowConsumerGraceMs: 60_000,
      publishRate: 100_000, publishBurst: 100_000, messageRate: 100_000, messageBurst: 100_000,
    });
  });
  afterAll(() => gw.close());

  it('bursts of publications reach a reader that pauses and resumes, and one that reads, intact and in order', { timeout: 60_000 }, async () => {
    const channel = uniqueChannel('session'); // a namespace clients may publish to
    const publisher = await connectPrp(gw);
    const paused = await connectPrp(gw);
    const reading = await connectPrp(gw);
    await paused.request('subscribe', { channels: [channel] });
    await reading.request('subscribe', { channels: [channel] });
    paused.ws.pause();
    const N = 3000;
    // 3-5 KB each, 12 MB in all: more than the kernel buffers hold for the paused reader.
    const body = (i: number) => `${i}:${'0123456789'.repeat(300 + (i % 200))}`;
    // Bursts of 100 publish frames in one go: the gateway reads many per turn, so each subscriber's
    // frames of that turn are joined into one write.
    for (let i = 1; i <= N; i += 100) {
      for (let j = i; j < i + 100 && j <= N; j++) publisher.send({ id: `p${j}`, action: 'publish', payload: { channel, type: 'burst', data: { i: j, body: body(j) } } });
      const reply = await publisher.next((m) => m.replyTo === `p${Math.min(i + 99, N)}`, 20_000);
      expect(reply.type).toBe('ack');
    }
    const check = (got: Record<string, any>[]) => { // eslint-disable-line @typescript-eslint/no-explicit-any
      expect(got.map((m) => m.data.i)).toEqual(Array.from({ length: N }, (_, k) => k + 1));
      for (const m of got) expect(m.data.body).toBe(body(m.data.i as number));
    };
    check(await reading.collect((m) => m.type === 'burst', N, 30_000));
    paused.ws.resume();
    check(await paused.collect((m) => m.type === 'burst', N, 30_000));
    await Promise.all([publisher.close(), paused.close(), reading.close()]);
  });
});

describe('WriteBatcher rounds', () => {
  it('a round longer than its time slice lets the loop run in between, and keeps every socket in order', { timeout: 30_000 }, async () => {
    const batcher = new WriteBatcher();
    // Sockets whose writes take 0.3 ms of CPU each: 512 of them make a ~150 ms round, many slices long, so the
    // two turns below fit in it even when the machine stalls the process for a while.
    const sinks = Array.from({ length: 512 }, () => {
      const got: Buffer[] = [];
      const sink = new Writable({
        write(chunk: Buffer, _enc, cb) {
          const until = performance.now() + 0.3;
          while (performance.now() < until) { /* a slow socket write */ }
          got.push(Buffer.from(chunk));
          cb();
        },
        writev(chunks, cb) {
          for (const c of chunks) got.push(Buffer.from(c.chunk as Buffer));
          cb();
        },
      });
      return { got, t: new WsTransport({} as WebSocket, sink as unknown as Duplex, batcher) };
    });
    for (const [k, s] of sinks.entries()) s.t.sendFrame(Buffer.from(`a${k};`));
    // Scheduled after the round started: runs between its slices, before the round ends.
    let ranBetween = false;
    setImmediate(() => setImmediate(() => {
      ranBetween = sinks[sinks.length - 1]!.got.length === 0;
      for (const [k, s] of sinks.entries()) s.t.sendFrame(Buffer.from(`b${k};`));
    }));
    for (let i = 0; i < 50 && sinks.some((s) => Buffer.concat(s.got).toString().split(';').length < 3); i++) await turn();
    expect(ranBetween).toBe(true);
    for (const [k, s] of sinks.entries()) expect(Buffer.concat(s.got).toString()).toBe(`a${k};b${k};`);
  });
});
