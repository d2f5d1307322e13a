/**
 * One connection cannot create channels at its publish rate (issue 13, defect 3, the channel
 * flood): publishes to channels it has not published to lately draw on SIGNALBOX_NEW_CHANNEL_RATE;
 * publishing again and again to the same channels does not.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '@signalbox/protocol';
import { connectPrp, startGateway, uniqueChannel, type TestGateway } from './helpers/gateway.js';

describe('channel-creation flood', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ newChannelRate: 5 });
  });
  afterAll(() => gw.close());

  it('new channels beyond the burst are refused with RATE_LIMITED naming the setting; known channels are not', async () => {
    const c = await connectPrp(gw);
    const codes: string[] = [];
    for (let i = 0; i < 30; i++) {
      const r = await c.request('publish', { channel: uniqueChannel('agent'), type: 'x', data: 'y'.repeat(100) });
      codes.push(r.type === 'ack' ? 'ack' : r.data.code);
      if (r.type === 'error') expect(r.data.message).toContain('SIGNALBOX_NEW_CHANNEL_RATE');
    }
    const acked = codes.filter((x) => x === 'ack').length;
    expect(acked).toBeGreaterThanOrEqual(10);
    expect(acked).toBeLessThan(20);
    expect(codes.filter((x) => x !== 'ack').every((x) => x === ErrorCode.RATE_LIMITED)).toBe(true);
    await c.close();

    // A fresh connection publishing 60 times to the same two channels is never refused for it.
    const d = await connectPrp(gw);
    const same = [uniqueChannel('agent'), uniqueChannel('agent')];
    for (let i = 0; i < 60; i++) expect((await d.request('publish', { channel: same[i % 2], type: 'x', data: i })).type).toBe('ack');
    await d.close();
  });
});
