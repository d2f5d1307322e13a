/**
 * Latest-wins delivery over a real socket (the `metrics` namespace: `delivery: latest`, keyed by
 * `data.node`): a viewer that stops reading while 16 MB of samples are published — 250 times its
 * outbound buffer, which would close an ordinary subscriber with 4010 — stays connected, and when
 * it reads again gets the newest sample of each series, with offsets that only grow, instead of
 * the backlog.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectPrp, startGateway, type TestGateway } from './helpers/gateway.js';
import { until } from './helpers/wait.js';

vi.setConfig({ hookTimeout: 120_000 });

describe('latest-wins over a real socket', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ outboundBufferBytes: 64 * 1024, slowConsumerGraceMs: 300 });
  });
  afterAll(() => gw.close());

  it('a viewer that stops reading is not closed, and then gets the newest value per series, not the backlog', { timeout: 120_000 }, async () => {
    const channel = 'metrics:app';
    const viewer = await connectPrp(gw);
    const confirmed = await viewer.request('subscribe', { channels: [channel] });
    expect(confirmed.data.channels[0]).toMatchObject({ channel, delivery: 'latest' });
    viewer.ws.pause();
    // More than loopback's kernel buffers take (they grow to several MB), in batches in order.
    const pad = 'v'.repeat(16_000);
    const N = 1000;
    for (let i = 1; i <= N; i++) {
      const r = await gw.publish({ channel, type: 'app.sample', data: { node: i % 2 ? 'a' : 'b', i, pad } });
      expect(r.status).toBe(200);
    }
    viewer.ws.resume();
    await until(() => {
      const got = viewer.messages.filter((m) => m.type === 'app.sample').map((m) => m.data.i as number);
      return got.includes(N) && got.includes(N - 1);
    }, { label: 'the last sample of each series', timeoutMs: 60_000 });
    const got = viewer.messages.filter((m) => m.type === 'app.sample');
    const offsets = got.map((m) => m.offset as number);
    expect([...offsets].sort((a, b) => a - b)).toEqual(offsets);
    expect(new Set(offsets).size).toBe(offsets.length);
    // Far fewer than published: what the kernel buffers took before the socket was behind, then the newest of each.
    expect(got.length).toBeLessThan(N / 2);
    expect(viewer.ws.readyState).toBe(viewer.ws.OPEN);
    await viewer.close();
  });
});
