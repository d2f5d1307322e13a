/**
 * Backpressure over real sockets: a subscriber that stops reading while its channel keeps
 * publishing is closed with 4010 (slow consumer) once its outbound buffer overflows; the other
 * subscribers of the channel get everything.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CloseCode } from '@signalbox/protocol';
import { connectPrp, startGateway, TEST_API_KEY, uniqueChannel, type TestGateway } from './helpers/gateway.js';
import { until } from './helpers/wait.js';

// Starting gateways can take long on a starved CI machine; a hang still fails, just later.
vi.setConfig({ hookTimeout: 120_000 });

/** The node's channel table (GET /v1/channels): how a test sees from outside that a client was dropped. */
async function channelTable(gw: TestGateway): Promise<{ channel: string; subscribers: number }[]> {
  const res = await fetch(`${gw.http}/v1/channels`, { headers: { authorization: `Bearer ${TEST_API_KEY}` } });
  return ((await res.json()) as { channels: { channel: string; subscribers: number }[] }).channels;
}

describe('slow consumer', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ outboundBufferBytes: 64 * 1024, slowConsumerGraceMs: 300 });
  });
  afterAll(() => gw.close());

  // 4 MB through HTTP and two sockets: slow on a loaded machine.
  it('a subscriber that stops reading is closed with 4010; a reading subscriber gets every publication', { timeout: 120_000 }, async () => {
    const channel = uniqueChannel('project');
    const slow = await connectPrp(gw);
    const fast = await connectPrp(gw);
    await slow.request('subscribe', { channels: [channel] });
    await fast.request('subscribe', { channels: [channel] });
    slow.ws.pause();
    const chunk = 'x'.repeat(40 * 1024);
    const N = 200; // 8 MB: beyond the socket buffers of a reader that does not read, and the 4x hard cap
    for (let i = 1; i <= N; i++) {
      const res = await gw.publish({ channel, type: 'chunk', data: { i, chunk } });
      expect(res.status).toBe(200);
    }
    const got = await fast.collect((m) => m.type === 'chunk', N, 100_000);
    expect(got.map((m) => m.offset)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    // The reader stays stalled past the grace period: the server starts closing it, which drops its
    // subscription at once (the close handshake completes only once it reads again). Only then does
    // it resume: it reads what was sent before the overflow, then the 4010 close.
    // Polling the server's channel table for the close: no event reaches the test while the reader is paused.
    await until(async () => (await channelTable(gw)).find((c) => c.channel === channel)?.subscribers === 1, {
      label: 'the stalled subscriber to be closed as a slow consumer',
      timeoutMs: 20_000,
      intervalMs: 50,
    });
    slow.ws.resume();
    const closed = await slow.closed;
    expect(closed.code).toBe(CloseCode.SLOW_CONSUMER);
    const offsets = slow.messages.filter((m) => m.type === 'chunk').map((m) => m.offset as number);
    expect(offsets.length).toBeLessThan(N);
    // What it did get is a gap-free prefix of the stream.
    expect(offsets).toEqual(Array.from({ length: offsets.length }, (_, i) => i + 1));
    expect(fast.ws.readyState).toBe(fast.ws.OPEN);
    await fast.close();
  });
});

describe('replies count against the outbound buffer', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ outboundBufferBytes: 64 * 1024, slowConsumerGraceMs: 300 });
  });
  afterAll(() => gw.close());

  it('a client that never reads but keeps asking for history is closed with 4010', { timeout: 120_000 }, async () => {
    const channel = uniqueChannel('project');
    const chunk = 'y'.repeat(2 * 1024);
    for (let i = 1; i <= 300; i++) expect((await gw.publish({ channel, type: 'chunk', data: { i, chunk } })).status).toBe(200);
    // A second channel only to see, from outside, when the server gives the reader up (close drops its subscriptions at once).
    const marker = uniqueChannel('project');
    const reader = await connectPrp(gw);
    await reader.request('subscribe', { channels: [marker] });
    reader.ws.pause();
    // 40 replies of ~700 KB each: nothing but replies, no channel delivery.
    for (let i = 0; i < 40; i++) reader.send({ id: `h${i}`, action: 'history', payload: { channel, limit: 1000 } });
    // Polling the server's channel table for the close, as above.
    await until(async () => !(await channelTable(gw)).some((c) => c.channel === marker), {
      label: 'a client that reads nothing to be closed (else its replies bypass the outbound buffer)',
      timeoutMs: 30_000,
      intervalMs: 50,
    });
    reader.ws.resume();
    expect((await reader.closed).code).toBe(CloseCode.SLOW_CONSUMER);
  });
});
