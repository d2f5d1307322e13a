/**
 * Idempotent publish: the same id published 3 times through each API (PRP WebSocket request id,
 * PRD-035 message id, HTTP body id) yields one history entry and one delivery; the repeats are
 * answered with the first result and `duplicate: true`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectPrd, connectPrp, startGateway, uniqueChannel, type Msg, type TestClient, type TestGateway } from './helpers/gateway.js';
import { awaitOffset, historyHttp, prdRequest, publications, quietPeriod, subscribePrp, uniqueId } from './helpers/delivery-kit.js';

describe('idempotent publish', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  /** A PRP and a PRD subscriber on `channel`. */
  async function subscribers(channel: string): Promise<TestClient[]> {
    const prp = await connectPrp(gw);
    await subscribePrp(prp, channel);
    const prd = await connectPrd(gw);
    await prdRequest(prd, { type: 'subscribe', channel });
    return [prp, prd];
  }

  /** One history entry with `id`, one delivery of it to each subscriber (and nothing else). */
  async function expectOnce(channel: string, id: string, subs: TestClient[], offset: number): Promise<void> {
    // A marker published afterwards: once it arrives, any duplicate delivery would already be there.
    const marker = await gw.publish({ channel, type: 'test.marker', data: {} });
    for (const s of subs) {
      await awaitOffset(s, channel, marker.body.offset as number);
      const got = publications(s, channel);
      expect(got.filter((m) => m.id === id)).toHaveLength(1);
      expect(got.map((m) => m.offset)).toEqual([offset, marker.body.offset]);
    }
    const h = await historyHttp(gw, channel);
    expect(h.body.publications.filter((p: Msg) => p.id === id)).toHaveLength(1);
    expect(h.body.publications.map((p: Msg) => p.offset)).toEqual([offset, marker.body.offset]);
  }

  it('PRP WebSocket: the same request id 3 times -> one publication, then duplicate acks with the first result', async () => {
    const channel = uniqueChannel('agent');
    const subs = await subscribers(channel);
    const publisher = await connectPrp(gw);
    const id = uniqueId('prp');
    const acks: Msg[] = [];
    for (let i = 0; i < 3; i++) {
      const from = publisher.messages.length;
      publisher.send({ id, action: 'publish', payload: { channel, type: 'chat.message', data: { attempt: i } } });
      acks.push(await publisher.next((m) => m.replyTo === id, 5000, from));
    }
    expect(acks.map((a) => a.type)).toEqual(['ack', 'ack', 'ack']);
    expect(acks.map((a) => a.data.duplicate)).toEqual([false, true, true]);
    for (const a of acks) expect(a.data).toMatchObject({ id, channel, offset: 1, epoch: acks[0]!.data.epoch });
    await expectOnce(channel, id, subs, 1);
    // The first publish's data is what was stored and delivered.
    expect(publications(subs[0]!, channel)[0]!.data).toEqual({ attempt: 0 });
    await Promise.all([...subs, publisher].map((c) => c.close()));
  });

  it('PRP WebSocket: a retry after reconnecting (new connection, same id) is a duplicate too', async () => {
    const channel = uniqueChannel('agent');
    const subs = await subscribers(channel);
    const id = uniqueId('retry');
    for (let i = 0; i < 3; i++) {
      const publisher = await connectPrp(gw, { msgpack: i === 1 });
      const from = publisher.messages.length;
      const msg = { id, action: 'publish', payload: { channel, type: 'chat.message', data: { attempt: i } } };
      if (i === 1) publisher.sendMsgpack(msg);
      else publisher.send(msg);
      const ack = await publisher.next((m) => m.replyTo === id, 5000, from);
      expect(ack.data).toMatchObject({ id, offset: 1, duplicate: i > 0 });
      await publisher.close();
    }
    await expectOnce(channel, id, subs, 1);
    await Promise.all(subs.map((c) => c.close()));
  });

  it('PRD-035 message: the same id 3 times -> one publication, acks with duplicate false/true/true', async () => {
    const channel = uniqueChannel('agent');
    const subs = await subscribers(channel);
    const publisher = await connectPrd(gw);
    const id = uniqueId('msg');
    const acks: Msg[] = [];
    for (let i = 0; i < 3; i++) acks.push(await prdRequest(publisher, { type: 'message', channel, id, data: { attempt: i } }));
    expect(acks.map((a) => [a.type, a.replyTo, a.data.action, a.data.duplicate])).toEqual([
      ['ack', id, 'message', false], ['ack', id, 'message', true], ['ack', id, 'message', true],
    ]);
    for (const a of acks) expect(a.data).toMatchObject({ id, channel, offset: 1 });
    await expectOnce(channel, id, subs, 1);
    await Promise.all([...subs, publisher].map((c) => c.close()));
  });

  it('HTTP POST /v1/publish: the same id 3 times (sequential) -> one publication, duplicate flags false/true/true', async () => {
    const channel = uniqueChannel('project');
    const subs = await subscribers(channel);
    const id = uniqueId('http');
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await gw.publish({ channel, id, type: 'prp.created', data: { attempt: i } }));
    expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(results.map((r) => r.body.duplicate)).toEqual([false, true, true]);
    for (const r of results) expect(r.body).toMatchObject({ id, channel, offset: 1, epoch: results[0]!.body.epoch });
    await expectOnce(channel, id, subs, 1);
    await Promise.all(subs.map((c) => c.close()));
  });

  it('HTTP POST /v1/publish: the same id 3 times concurrently -> exactly one is not a duplicate', async () => {
    const channel = uniqueChannel('project');
    const subs = await subscribers(channel);
    const id = uniqueId('conc');
    const results = await Promise.all([0, 1, 2].map((i) => gw.publish({ channel, id, type: 'prp.created', data: { attempt: i } })));
    expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(results.filter((r) => r.body.duplicate === false)).toHaveLength(1);
    expect(new Set(results.map((r) => r.body.offset))).toEqual(new Set([1]));
    await expectOnce(channel, id, subs, 1);
    await Promise.all(subs.map((c) => c.close()));
  });

  it('HTTP multi-channel publish repeated: one publication per channel, every repeat a duplicate', async () => {
    const a = uniqueChannel('project');
    const b = uniqueChannel('agent');
    const subsA = await subscribers(a);
    const subsB = await subscribers(b);
    const id = uniqueId('multi');
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await gw.publish({ channels: [a, b], id, type: 'prp.created', data: { attempt: i } }));
    for (const [i, r] of results.entries()) {
      expect(r.status).toBe(200);
      expect(r.body.id).toBe(id);
      expect(r.body.publications).toEqual([
        expect.objectContaining({ id, channel: a, offset: 1, duplicate: i > 0 }),
        expect.objectContaining({ id, channel: b, offset: 1, duplicate: i > 0 }),
      ]);
    }
    await expectOnce(a, id, subsA, 1);
    await expectOnce(b, id, subsB, 1);
    await Promise.all([...subsA, ...subsB].map((c) => c.close()));
  });

  it('the same id on two different channels is two publications (the key is per channel)', async () => {
    const a = uniqueChannel('project');
    const b = uniqueChannel('project');
    const id = uniqueId('perchan');
    const ra = await gw.publish({ channel: a, id, type: 'prp.created', data: {} });
    const rb = await gw.publish({ channel: b, id, type: 'prp.created', data: {} });
    expect([ra.body.duplicate, rb.body.duplicate]).toEqual([false, false]);
    expect((await historyHttp(gw, b)).body.publications.map((p: Msg) => p.id)).toEqual([id]);
  });

  it('publishes without an id are never deduplicated', async () => {
    const channel = uniqueChannel('project');
    const subs = await subscribers(channel);
    for (let i = 0; i < 3; i++) expect((await gw.publish({ channel, type: 'prp.created', data: { same: true } })).body.duplicate).toBe(false);
    for (const s of subs) await awaitOffset(s, channel, 3);
    await quietPeriod(50); // nothing beyond the three
    for (const s of subs) expect(publications(s, channel).map((m) => m.offset)).toEqual([1, 2, 3]);
    expect(new Set(publications(subs[0]!, channel).map((m) => m.id)).size).toBe(3);
    await Promise.all(subs.map((c) => c.close()));
  });
});
