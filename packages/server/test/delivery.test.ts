/**
 * The delivery guarantee over real sockets: a subscriber that reconnects with its last position
 * gets exactly what it missed, in order, then live traffic, none twice; publications from HTTP and
 * WebSocket publishers reach every subscriber (both endpoints) in offset order; acks come only once
 * the publication is in history; every channel event names its channel and position.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { TestClient, connectPrd, connectPrp, startGateway, uniqueChannel, type Msg, type TestGateway } from './helpers/gateway.js';
import {
  awaitOffset, historyHttp, namespace, namespacesWith, outcomeOf, prdRequest, publications, publishManyHttp, publishWs,
  quietPeriod, streamViolation, subscribePrp, uniqueId, type Position,
} from './helpers/delivery-kit.js';

type Dialect = 'prp' | 'prp-msgpack' | 'prd';

async function connect(gw: TestGateway, dialect: Dialect): Promise<TestClient> {
  if (dialect === 'prd') return connectPrd(gw);
  return connectPrp(gw, { msgpack: dialect === 'prp-msgpack' });
}

/** Subscribes in the client's dialect; returns the channel outcome {channel, position, recovered?, reason?, missed?}. */
async function subscribe(client: TestClient, dialect: Dialect, channel: string, since?: Position): Promise<Msg> {
  if (dialect === 'prd') {
    const ack = await prdRequest(client, { type: 'subscribe', channel, ...(since ? { data: { since } } : {}) });
    expect(ack.type).toBe('ack');
    return { channel, ...(ack.data as Msg) };
  }
  const conf = await subscribePrp(client, channel, since);
  expect(conf.type).toBe('subscription.confirmed');
  return outcomeOf(conf, channel);
}

describe('reconnect with the last position: exactly the missed publications, then live', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    // `stream` keeps more than 1,000 so live publications racing the resubscribe stay recoverable.
    gw = await startGateway({ namespaces: namespacesWith(namespace('stream', { historySize: 5000 })) });
  });
  afterAll(() => gw?.close());

  for (const dialect of ['prp', 'prp-msgpack', 'prd'] as const) {
    it(`${dialect}: 1,000 missed publications (history holds exactly 1,000), then live traffic, none twice`, async () => {
      const channel = uniqueChannel('project'); // historySize 1000
      const first = await connect(gw, dialect);
      await subscribe(first, dialect, channel);
      await gw.publish({ channel, type: 'test.event', data: { i: 'before' } });
      const seen = await awaitOffset(first, channel, 1);
      const last: Position = { epoch: seen.epoch, offset: seen.offset };
      await first.close();

      const missed = await publishManyHttp(gw, channel, 1000);
      expect(missed.map((r) => r.offset)).toEqual(Array.from({ length: 1000 }, (_, i) => i + 2));

      const again = await connect(gw, dialect);
      const outcome = await subscribe(again, dialect, channel, last);
      expect(outcome).toMatchObject({ recovered: true, missed: 1000, position: { epoch: last.epoch, offset: 1001 } });
      // Live traffic once the subscription is live.
      const live = await publishManyHttp(gw, channel, 50, 4, 'live');
      await awaitOffset(again, channel, 1051, 60_000);
      // Nothing more may arrive (a duplicate would come right after): a bounded negative check.
      await quietPeriod();
      const got = publications(again, channel);
      expect(streamViolation(got.map((m) => m.offset), 2)).toBeNull();
      expect(got).toHaveLength(1050);
      expect(got.slice(0, 1000).map((m) => m.id)).toEqual(missed.map((r) => r.id));
      expect(got.slice(1000).map((m) => m.id)).toEqual(live.map((r) => r.id));
      expect(new Set(got.map((m) => m.epoch))).toEqual(new Set([last.epoch]));
      await again.close();
    }, 90_000);
  }

  it('publisher running throughout the disconnect and the resubscribe: no gap, no duplicate at the seam', async () => {
    const channel = uniqueChannel('stream');
    const first = await connectPrp(gw);
    await subscribePrp(first, channel);
    let stop = false;
    let published = 0;
    const publisher = (async () => {
      while (!stop) {
        const r = await gw.publish({ channel, type: 'test.event', data: { n: published } });
        if (r.status !== 200) throw new Error(`publish failed: ${r.status} ${JSON.stringify(r.body)}`);
        published++;
      }
    })();
    // Stops the publisher however the test ends (it must not outlive the gateway).
    onTestFinished(async () => {
      stop = true;
      await publisher.catch(() => undefined);
    });
    await awaitOffset(first, channel, 100);
    const got1 = publications(first, channel);
    const last: Position = { epoch: got1.at(-1)!.epoch, offset: got1.at(-1)!.offset };
    await first.close();
    await publishManyHttp(gw, channel, 1000); // plus the running publisher's

    const again = await connectPrp(gw);
    const outcome = await subscribePrp(again, channel, last).then((c) => outcomeOf(c, channel));
    expect(outcome.recovered).toBe(true);
    expect(outcome.missed).toBe(outcome.position.offset - last.offset);
    // Let the running publisher add some more after the seam, then stop it.
    await awaitOffset(again, channel, outcome.position.offset + 50, 60_000);
    stop = true;
    await publisher;
    const top = (await historyHttp(gw, channel, { limit: 0 })).body.position.offset as number;
    await awaitOffset(again, channel, top, 60_000);
    await quietPeriod(); // nothing after the top (a duplicate would show here)
    const offsets = publications(again, channel).map((m) => m.offset);
    expect(streamViolation(offsets, last.offset + 1)).toBeNull();
    expect(offsets.at(-1)).toBe(top);
    await again.close();
  }, 90_000);
});

describe('ordering, acks and channel events', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ publishRate: 10_000, publishBurst: 10_000, messageRate: 10_000, messageBurst: 10_000 });
  });
  afterAll(() => gw?.close());

  it('HTTP and WebSocket publishers interleaved: every subscriber on both endpoints gets offset order', async () => {
    const channel = uniqueChannel('agent');
    const subs = [await connectPrp(gw), await connectPrp(gw, { msgpack: true }), await connectPrd(gw), await connectPrd(gw)];
    await subscribePrp(subs[0]!, channel);
    await subscribePrp(subs[1]!, channel);
    for (const s of subs.slice(2)) await prdRequest(s, { type: 'subscribe', channel });
    const wsPrp = await connectPrp(gw);
    const wsPrd = await connectPrd(gw);
    const per = 100;
    const acks: Msg[] = [];
    // Three publishers, unsynchronised with each other, each awaiting its own acks in turn.
    await Promise.all([
      (async () => {
        for (let i = 0; i < per; i++) acks.push((await gw.publish({ channel, type: 'from.http', data: { src: 'http', i } })).body);
      })(),
      (async () => {
        for (let i = 0; i < per; i++) acks.push((await publishWs(wsPrp, channel, { src: 'prp', i }, { type: 'from.prp' })).data);
      })(),
      (async () => {
        for (let i = 0; i < per; i++) acks.push((await prdRequest(wsPrd, { type: 'message', channel, event: 'from.prd', data: { src: 'prd', i } })).data);
      })(),
    ]);
    const total = 3 * per;
    expect(new Set(acks.map((a) => a.offset)).size).toBe(total);
    const byOffset = new Map(acks.map((a) => [a.offset as number, a.id as string]));
    for (const s of subs) {
      await awaitOffset(s, channel, total);
      const got = publications(s, channel);
      expect(streamViolation(got.map((m) => m.offset), 1)).toBeNull();
      expect(got.map((m) => m.id)).toEqual(got.map((m) => byOffset.get(m.offset)));
      // Each publisher's own messages keep its order too.
      for (const src of ['http', 'prp', 'prd']) {
        const seq = got.filter((m) => m.data.src === src).map((m) => m.data.i);
        expect(seq).toEqual(Array.from({ length: per }, (_, i) => i));
      }
    }
    await Promise.all([...subs, wsPrp, wsPrd].map((c) => c.close()));
  }, 60_000);

  it('an ack (WS and HTTP) carries id, channel, offset, epoch, and the publication is already in history', async () => {
    const channel = uniqueChannel('agent');
    const pub = await connectPrp(gw);
    for (let i = 0; i < 20; i++) {
      const ack = await publishWs(pub, channel, { i });
      expect(ack.type).toBe('ack');
      expect(ack.data).toEqual({ id: expect.any(String), channel, offset: i * 2 + 1, epoch: expect.any(String), duplicate: false });
      const h = await historyHttp(gw, channel, { since: { epoch: ack.data.epoch, offset: ack.data.offset - 1 }, limit: 1 });
      expect(h.status).toBe(200);
      expect(h.body.publications).toEqual([expect.objectContaining({ id: ack.data.id, offset: ack.data.offset, epoch: ack.data.epoch, data: { i } })]);

      const r = await gw.publish({ channel, type: 'test.event', data: { j: i } });
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ id: expect.any(String), channel, offset: i * 2 + 2, epoch: ack.data.epoch, duplicate: false });
      const h2 = await historyHttp(gw, channel, { since: { epoch: r.body.epoch as string, offset: (r.body.offset as number) - 1 }, limit: 1 });
      expect(h2.body.publications).toEqual([expect.objectContaining({ id: r.body.id, offset: r.body.offset, data: { j: i } })]);
    }
    // PRD-035 ack, same guarantee.
    const prd = await connectPrd(gw);
    const id = uniqueId('prd');
    const ack = await prdRequest(prd, { type: 'message', channel, id, data: { k: 1 } });
    expect(ack).toMatchObject({ type: 'ack', channel, replyTo: id, data: { action: 'message', id, channel, offset: 41, epoch: expect.any(String), duplicate: false } });
    const h = await historyHttp(gw, channel, { since: { epoch: ack.data.epoch, offset: 40 } });
    expect(h.body.publications.map((p: Msg) => p.id)).toEqual([id]);
    await Promise.all([pub.close(), prd.close()]);
  });

  it('every channel event carries channel, offset and epoch, in every dialect and encoding', async () => {
    const channel = uniqueChannel('agent');
    const clients = [await connectPrp(gw), await connectPrp(gw, { msgpack: true }), await connectPrd(gw)];
    await subscribePrp(clients[0]!, channel);
    await subscribePrp(clients[1]!, channel);
    await prdRequest(clients[2]!, { type: 'subscribe', channel });
    const r = await gw.publish({ channel, type: 'prp.created', data: { id: 'prp_1' } });
    const ws = await publishWs(clients[0]!, channel, { id: 'prp_2' }, { type: 'prp.updated' });
    for (const c of clients) {
      await awaitOffset(c, channel, 2);
      const got = publications(c, channel);
      expect(got).toHaveLength(2);
      for (const [i, m] of got.entries()) {
        expect(m.channel).toBe(channel);
        expect(m.offset).toBe(i + 1);
        expect(m.epoch).toBe(r.body.epoch);
        expect(Number.isNaN(Date.parse(m.timestamp))).toBe(false);
      }
      expect(got.map((m) => m.id)).toEqual([r.body.id, ws.data.id]);
    }
    // PRP: the event type is `type`; PRD-035: `type: 'message'` and the event type in `event`.
    expect(publications(clients[0]!, channel).map((m) => m.type)).toEqual(['prp.created', 'prp.updated']);
    expect(publications(clients[2]!, channel).map((m) => [m.type, m.event])).toEqual([['message', 'prp.created'], ['message', 'prp.updated']]);
    await Promise.all(clients.map((c) => c.close()));
  });
});
