/**
 * A gap repair whose history read fails while the broker is unavailable is retried with backoff:
 * subscribers keep their connection and still get every offset once, in order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrokerUnavailableError, type HistoryQuery, type HistoryResult } from '../src/index.js';
import { connectPrp, startGateway, uniqueChannel, type TestGateway } from './helpers/gateway.js';
import { WithholdingBroker, awaitOffset, publications, streamViolation, subscribePrp } from './helpers/delivery-kit.js';

class FlakyHistoryBroker extends WithholdingBroker {
  private failures = new Map<string, number>();
  failNextHistory(channel: string, times: number): void {
    this.failures.set(channel, times);
  }
  override async history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    const left = this.failures.get(channel) ?? 0;
    if (left > 0) {
      this.failures.set(channel, left - 1);
      throw new BrokerUnavailableError('simulated outage');
    }
    return super.history(channel, query);
  }
}

describe('resync while the broker is unavailable', () => {
  let gw: TestGateway;
  const broker = new FlakyHistoryBroker();
  beforeAll(async () => {
    gw = await startGateway({}, { broker });
  });
  afterAll(() => gw.close());

  it('retries the history read and delivers the gap in order, without closing subscribers', async () => {
    const channel = uniqueChannel('project');
    const client = await connectPrp(gw);
    await subscribePrp(client, channel);
    const withheld = broker.withhold(channel, 3);
    for (let i = 1; i <= 2; i++) expect((await gw.publish({ channel, type: 'e', data: { i } })).status).toBe(200);
    await awaitOffset(client, channel, 2);
    broker.failNextHistory(channel, 2);
    for (let i = 3; i <= 5; i++) expect((await gw.publish({ channel, type: 'e', data: { i } })).status).toBe(200);
    await withheld;
    await awaitOffset(client, channel, 5);
    const offsets = publications(client, channel).map((m) => m.offset as number);
    expect(streamViolation(offsets, 1)).toBeNull();
    expect(offsets).toEqual([1, 2, 3, 4, 5]);
    expect(client.ws.readyState).toBe(client.ws.OPEN);
    const metrics = await (await fetch(`${gw.http}/metrics`)).text();
    expect(metrics).toMatch(/signalbox_stream_resyncs_total\{outcome="failed"\} 2/);
    expect(metrics).toMatch(/signalbox_stream_resyncs_total\{outcome="repaired"\} 1/);
    await client.close();
  });
});
