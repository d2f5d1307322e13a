/**
 * A publication the gateway cannot encode (issue 13, defect 1, the hub's half): it took an offset
 * and sits in history, but its data does not serialize. It must not stall the channel, and no
 * subscriber may skip it in silence: a live subscriber, a subscriber in the middle of a recovery
 * burst, and one whose buffered catch-up meets it are each closed with 4011, and the resubscribe
 * from their last position is confirmed `recovered: false, reason: "unencodable"`, then live.
 * Subscribers whose encoding can carry it are not affected.
 *
 * The broker is decorated so that a publish marked `poison` stores data the codecs refuse (a
 * BigInt for both, or an object whose `toJSON` throws for JSON only), as a bug on some way in
 * would; validation at the edges is not what is tested here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode } from '@signalbox/protocol';
import type { PublishRequest, PublishResult } from '../src/broker/types.js';
import { connectPrp, startGateway, uniqueChannel, type TestClient, type TestGateway } from './helpers/gateway.js';
import { WithholdingBroker, awaitOffset, outcomeOf, publications, subscribePrp, type Position } from './helpers/delivery-kit.js';

/** JSON.stringify throws on it; MessagePack encodes it as `{a: 1}`. */
class JsonRefuses {
  readonly a = 1;
  toJSON(): never {
    throw new Error('not JSON');
  }
}

class PoisoningBroker extends WithholdingBroker {
  override readonly kind: string = 'memory-poisoning';
  override publish(req: PublishRequest): Promise<PublishResult> {
    const poison = (req.data as { poison?: string } | null)?.poison;
    if (poison === 'bigint') return super.publish({ ...req, data: { n: 1n } });
    if (poison === 'json') return super.publish({ ...req, data: { v: new JsonRefuses() } });
    return super.publish(req);
  }
}

async function publishOk(gw: TestGateway, channel: string, data: unknown): Promise<number> {
  const r = await gw.publish({ channel, type: 'test.event', data });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body.offset as number;
}

function offsets(client: TestClient, channel: string): number[] {
  return publications(client, channel).map((m) => m.offset as number);
}

describe('a publication that cannot be encoded', () => {
  let gw: TestGateway;
  const broker = new PoisoningBroker();
  beforeAll(async () => {
    gw = await startGateway({}, { broker });
  });
  afterAll(() => gw.close());

  it('live: the publish is acked, the subscriber is told (4011), recovers with recovered:false "unencodable", and the channel goes on', async () => {
    const channel = uniqueChannel('project');
    const a = await connectPrp(gw);
    const conf = outcomeOf(await subscribePrp(a, channel), channel);
    await publishOk(gw, channel, { i: 1 });
    await awaitOffset(a, channel, 1);
    // The fan-out happens inside the publish (memory broker): a throw there would fail the publish.
    expect(await publishOk(gw, channel, { poison: 'bigint' })).toBe(2);
    expect((await a.closed).code).toBe(CloseCode.RESYNC_REQUIRED);
    expect(offsets(a, channel)).toEqual([1]); // 2 was never skipped silently: 3 never came on this socket
    await publishOk(gw, channel, { i: 3 });

    // The client reconnects and resubscribes from the last position it processed.
    const again = await connectPrp(gw);
    const since: Position = { epoch: conf.position.epoch, offset: 1 };
    const outcome = outcomeOf(await subscribePrp(again, channel, since), channel);
    expect(outcome).toMatchObject({ recovered: false, reason: 'unencodable', position: { epoch: since.epoch, offset: 3 } });
    await publishOk(gw, channel, { i: 4 });
    await awaitOffset(again, channel, 4);
    expect(offsets(again, channel)).toEqual([4]); // nothing of the past after recovered:false
    expect(again.ws.readyState).toBe(again.ws.OPEN);
    await again.close();
  });

  it('catch-up: a recovery whose missed publications include it is refused up front, never confirmed and then cut', async () => {
    const channel = uniqueChannel('project');
    const first = await publishOk(gw, channel, { i: 1 });
    await publishOk(gw, channel, { poison: 'bigint' });
    await publishOk(gw, channel, { i: 3 });
    const b = await connectPrp(gw);
    const probe = outcomeOf(await subscribePrp(b, channel), channel);
    await b.close();

    const c = await connectPrp(gw);
    const outcome = outcomeOf(await subscribePrp(c, channel, { epoch: probe.position.epoch, offset: first }), channel);
    expect(outcome).toMatchObject({ recovered: false, reason: 'unencodable', position: { offset: 3 } });
    expect(outcome.missed).toBeUndefined();
    await publishOk(gw, channel, { i: 4 });
    await awaitOffset(c, channel, 4);
    expect(offsets(c, channel)).toEqual([4]);
    // A recovery from after it is exact again.
    const d = await connectPrp(gw);
    const exact = outcomeOf(await subscribePrp(d, channel, { epoch: probe.position.epoch, offset: 2 }), channel);
    expect(exact).toMatchObject({ recovered: true, missed: 2 });
    await awaitOffset(d, channel, 4);
    expect(offsets(d, channel)).toEqual([3, 4]);
    await Promise.all([c.close(), d.close()]);
  });

  it('catch-up: arriving while the missed publications are read, it closes the recovering subscriber (4011), not the channel', async () => {
    const channel = uniqueChannel('project');
    await publishOk(gw, channel, { i: 1 });
    const live = await connectPrp(gw, { msgpack: true });
    const pos = outcomeOf(await subscribePrp(live, channel), channel).position as Position;

    const hold = broker.holdHistory(channel);
    const r = await connectPrp(gw);
    const confirmed = subscribePrp(r, channel, { epoch: pos.epoch, offset: 0 });
    await hold.taken;
    await publishOk(gw, channel, { poison: 'json' }); // buffered for `r`, delivered to `live` (MessagePack encodes it)
    await publishOk(gw, channel, { i: 3 });
    hold.release();
    expect(outcomeOf(await confirmed, channel)).toMatchObject({ recovered: true, missed: 1 });
    expect((await r.closed).code).toBe(CloseCode.RESYNC_REQUIRED);
    expect(offsets(r, channel)).toEqual([1]);

    await awaitOffset(live, channel, 3);
    expect(offsets(live, channel)).toEqual([2, 3]);
    expect(publications(live, channel)[0]!.data).toEqual({ v: { a: 1 } });
    expect(live.ws.readyState).toBe(live.ws.OPEN);
    await live.close();
  });

  it('per encoding: JSON subscribers are told, MessagePack subscribers of the same channel are not affected', async () => {
    const channel = uniqueChannel('project');
    const json = await connectPrp(gw);
    const bin = await connectPrp(gw, { msgpack: true });
    for (const c of [json, bin]) await subscribePrp(c, channel);
    await publishOk(gw, channel, { poison: 'json' });
    expect((await json.closed).code).toBe(CloseCode.RESYNC_REQUIRED);
    await publishOk(gw, channel, { i: 2 });
    await awaitOffset(bin, channel, 2);
    expect(offsets(bin, channel)).toEqual([1, 2]);
    expect(offsets(json, channel)).toEqual([]);
    expect(bin.ws.readyState).toBe(bin.ws.OPEN);
    await bin.close();
  });
  it('history (HTTP and WebSocket): a page stops before it, and a read that starts at it is refused naming its offset; reading on past it works', async () => {
    const channel = uniqueChannel('project');
    await publishOk(gw, channel, { i: 1 });
    await publishOk(gw, channel, { poison: 'bigint' });
    await publishOk(gw, channel, { i: 3 });
    const http = async (q: string) => {
      const res = await fetch(`${gw.http}/v1/channels/${encodeURIComponent(channel)}/history${q}`, { headers: { authorization: 'Bearer test-api-key-0123456789' } });
      return { status: res.status, body: (await res.json()) as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
    };
    const first = await http('');
    expect(first.status).toBe(200);
    expect(first.body.publications.map((p: { offset: number }) => p.offset)).toEqual([1]);
    expect(first.body.next.offset).toBe(1);
    const epoch = first.body.position.epoch as string;
    const stuck = await http(`?since_epoch=${epoch}&since_offset=1`);
    expect(stuck.status).toBe(409);
    expect(stuck.body.error).toMatchObject({ code: 'UNRECOVERABLE_POSITION', details: { reason: 'unencodable', offset: 2 } });
    const past = await http(`?since_epoch=${epoch}&since_offset=2`);
    expect(past.body.publications.map((p: { offset: number }) => p.offset)).toEqual([3]);

    // The same over WebSocket (JSON: the connection is not closed for it, only the read refused).
    const c = await connectPrp(gw);
    const h = await c.request('history', { channel });
    expect(h.type).toBe('history');
    expect(h.data.publications.map((p: { offset: number }) => p.offset)).toEqual([1]);
    const e = await c.request('history', { channel, since: { epoch, offset: 1 } });
    expect(e.data).toMatchObject({ code: 'UNRECOVERABLE_POSITION', details: { reason: 'unencodable', offset: 2, requestId: e.data.details.requestId } });
    expect(c.ws.readyState).toBe(c.ws.OPEN);
    await c.close();
  });
});
