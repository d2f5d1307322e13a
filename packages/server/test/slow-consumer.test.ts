/**
 * Backpressure over real sockets: a subscriber that stops reading while its channel keeps
 * publishing is closed with 4010 (slow consumer) once its outbound buffer overflows; the other
 * subscribers of the channel get everything.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CloseCode } from '@signalbox/protocol';
import { connectPrp, startGateway, uniqueChannel, type TestGateway } from './helpers/gateway.js';

// Starting gateways can take long on a starved CI machine; a hang still fails, just later.
vi.setConfig({ hookTimeout: 120_000 });

describe('slow consumer', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ outboundBufferBytes: 64 * 1024 });
  });
  afterAll(() => gw.close());

  it('a subscriber that stops reading is closed with 4010; a reading subscriber gets every publication', async () => {
    const channel = uniqueChannel('project');
    const slow = await connectPrp(gw);
    const fast = await connectPrp(gw);
    await slow.request('subscribe', { channels: [channel] });
    await fast.request('subscribe', { channels: [channel] });
    slow.ws.pause();
    const chunk = 'x'.repeat(40 * 1024);
    const N = 100; // 4 MB: far beyond the socket buffers of a reader that does not read
    for (let i = 1; i <= N; i++) {
      const res = await gw.publish({ channel, type: 'chunk', data: { i, chunk } });
      expect(res.status).toBe(200);
    }
    const got = await fast.collect((m) => m.type === 'chunk', N, 60_000);
    expect(got.map((m) => m.offset)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    // The slow reader resumes: it reads what was sent before the overflow, then the 4010 close.
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
