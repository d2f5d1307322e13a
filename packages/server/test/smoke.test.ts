import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectPrp, startGateway, uniqueChannel, type TestGateway } from './helpers/gateway.js';

describe('quick start flow', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  it('subscribes, receives an HTTP publication, and answers ping', async () => {
    const client = await connectPrp(gw);
    const channel = uniqueChannel('project');
    const confirmed = await client.request('subscribe', { channels: [channel] });
    expect(confirmed.type).toBe('subscription.confirmed');
    expect(confirmed.data.subscribedChannels).toEqual([channel]);
    const res = await gw.publish({ channel, type: 'prp.created', data: { id: 'prp_789012' } });
    expect(res.status).toBe(200);
    const ev = await client.nextType('prp.created');
    expect(ev).toMatchObject({ id: res.body.id, channel, offset: 1, data: { id: 'prp_789012' } });
    expect(typeof ev.timestamp).toBe('string');
    const pong = await client.request('ping');
    expect(pong.type).toBe('pong');
    await client.close();
  });
});
