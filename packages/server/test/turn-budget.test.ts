/**
 * The turn budget (SIGNALBOX_TURN_BUDGET): once one event-loop turn has queued more outbound
 * bytes than the budget, a client socket that sends more is not read until the next round of
 * writes is out. Real gateway, real sockets: a publisher floods publishes in one burst, with a
 * budget small enough that the burst crosses it many times.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, metricValue } from './helpers/core-util.js';
import { connectPrp, startGateway, uniqueChannel, type TestClient, type TestGateway } from './helpers/gateway.js';

const SUBSCRIBERS = 20;
const BURST = 400;

describe('turn budget', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({
      turnBudgetBytes: 65_536, // the minimum: 20 subscribers x ~1 KiB frames cross it every 3 publishes
      maxPendingRequests: 1000, publishRate: 100_000, publishBurst: 100_000, messageRate: 100_000, messageBurst: 100_000,
    });
  });
  afterAll(() => gw.close());

  it('a flood of publishes is read a round at a time: every ack, every delivery, in order, and the sockets were held', { timeout: 60_000 }, async () => {
    const channel = uniqueChannel('session');
    const subs: TestClient[] = [];
    for (let i = 0; i < SUBSCRIBERS; i++) {
      const c = await connectPrp(gw);
      await c.request('subscribe', { channels: [channel] });
      subs.push(c);
    }
    const publisher = await connectPrp(gw);
    const pad = 'x'.repeat(900);
    for (let i = 1; i <= BURST; i++) publisher.send({ id: `f${i}`, action: 'publish', payload: { channel, type: 'flood', data: { i, pad } } });

    const acks = await publisher.collect((m) => m.type === 'ack', BURST, 30_000);
    expect(acks.map((m) => m.replyTo)).toEqual(Array.from({ length: BURST }, (_, k) => `f${k + 1}`));
    const want = Array.from({ length: BURST }, (_, k) => k + 1);
    for (const s of subs) expect((await s.collect((m) => m.type === 'flood', BURST, 30_000)).map((m) => m.data.i)).toEqual(want);

    const holds = metricValue((await http(gw, '/metrics', { apiKey: null })).text, 'signalbox_input_holds_total');
    expect(holds).toBeGreaterThan(0);

    // Held sockets are read again: the publisher still gets answers.
    expect((await publisher.request('publish', { channel, type: 'after', data: {} })).type).toBe('ack');
    await Promise.all([publisher, ...subs].map((c) => c.close()));
  });
});
