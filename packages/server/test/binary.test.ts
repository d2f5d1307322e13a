/**
 * Binary data: bytes published over MessagePack reach MessagePack subscribers byte for byte (live,
 * recovered, and through history), and JSON subscribers as `{"$base64": "..."}` that decodes to
 * the same bytes.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient, connectPrd, connectPrp, startGateway, uniqueChannel, type Msg, type TestGateway } from './helpers/gateway.js';
import { awaitOffset, historyHttp, outcomeOf, prdRequest, publications, subscribePrp, uniqueId } from './helpers/delivery-kit.js';

const KIB64 = 64 * 1024;

function asBuffer(v: unknown): Buffer {
  if (!(v instanceof Uint8Array)) throw new Error(`expected bytes, got ${JSON.stringify(v)?.slice(0, 80)}`);
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

function fromBase64Json(v: unknown): Buffer {
  const o = v as { $base64?: unknown };
  if (typeof o !== 'object' || o === null || typeof o.$base64 !== 'string' || Object.keys(o).length !== 1) {
    throw new Error(`expected {"$base64": ...}, got ${JSON.stringify(v)?.slice(0, 80)}`);
  }
  return Buffer.from(o.$base64, 'base64');
}

async function connectPrdMsgpack(gw: TestGateway): Promise<TestClient> {
  const client = new TestClient(`${gw.ws}/ws?token=${encodeURIComponent(await gw.token())}&format=msgpack`);
  await client.next((m) => m.type === 'ack' && m.data?.action === 'connect');
  return client;
}

/** Publishes over PRP MessagePack and awaits the (MessagePack) ack. */
async function publishMsgpack(client: TestClient, channel: string, data: unknown): Promise<Msg> {
  const id = uniqueId('bin');
  const from = client.messages.length;
  client.sendMsgpack({ id, action: 'publish', payload: { channel, type: 'file.chunk', data } });
  return client.next((m) => m.replyTo === id, 5000, from);
}

describe('binary publications', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    // The limit applies to the whole frame: a 64 KiB payload plus its envelope needs more than the 64 KiB default.
    gw = await startGateway({ maxMessageBytes: 256 * 1024 });
  });
  afterAll(() => gw.close());

  it('a 64 KiB random buffer over MessagePack arrives byte-identical at MessagePack subscribers, and as $base64 at JSON ones', async () => {
    const channel = uniqueChannel('agent');
    const prpBin = await connectPrp(gw, { msgpack: true });
    const prdBin = await connectPrdMsgpack(gw);
    const prpJson = await connectPrp(gw);
    const prdJson = await connectPrd(gw);
    for (const c of [prpBin, prpJson]) await subscribePrp(c, channel);
    for (const c of [prdBin, prdJson]) await prdRequest(c, { type: 'subscribe', channel });

    const bytes = randomBytes(KIB64);
    const small = randomBytes(17);
    const publisher = await connectPrp(gw, { msgpack: true });
    const ack = await publishMsgpack(publisher, channel, { name: 'blob.bin', bytes, parts: [small, { inner: small }] });
    expect(ack).toMatchObject({ type: 'ack', data: { channel, offset: 1, duplicate: false } });

    for (const c of [prpBin, prdBin]) {
      const m = await awaitOffset(c, channel, 1);
      expect(m.data.name).toBe('blob.bin');
      expect(asBuffer(m.data.bytes).equals(bytes)).toBe(true);
      expect(asBuffer(m.data.parts[0]).equals(small)).toBe(true);
      expect(asBuffer(m.data.parts[1].inner).equals(small)).toBe(true);
    }
    for (const c of [prpJson, prdJson]) {
      const m = await awaitOffset(c, channel, 1);
      expect(m.data.name).toBe('blob.bin');
      expect(fromBase64Json(m.data.bytes).equals(bytes)).toBe(true);
      expect(fromBase64Json(m.data.parts[0]).equals(small)).toBe(true);
      expect(fromBase64Json(m.data.parts[1].inner).equals(small)).toBe(true);
    }
    // The JSON frame really is JSON text with the bytes inline as base64.
    const raw = await new Promise<string>((resolve) => {
      prpJson.ws.once('message', (data, isBinary) => {
        expect(isBinary).toBe(false);
        resolve(data.toString());
      });
      void publishMsgpack(publisher, channel, bytes);
    });
    const parsed = JSON.parse(raw) as Msg;
    expect(parsed).toMatchObject({ channel, offset: 2 });
    expect(fromBase64Json(parsed.data).equals(bytes)).toBe(true);
    await Promise.all([prpBin, prdBin, prpJson, prdJson, publisher].map((c) => c.close()));
  });

  it('top-level bytes from a PRD-035 MessagePack publisher; through HTTP history as $base64', async () => {
    const channel = uniqueChannel('agent');
    const sub = await connectPrp(gw, { msgpack: true });
    await subscribePrp(sub, channel);
    const publisher = await connectPrdMsgpack(gw);
    const bytes = randomBytes(KIB64);
    const id = uniqueId('prdbin');
    const from = publisher.messages.length;
    publisher.sendMsgpack({ type: 'message', channel, id, event: 'file.chunk', data: bytes });
    const ack = await publisher.next((m) => m.replyTo === id, 5000, from);
    expect(ack).toMatchObject({ type: 'ack', data: { action: 'message', id, offset: 1 } });
    const m = await awaitOffset(sub, channel, 1);
    expect(asBuffer(m.data).equals(bytes)).toBe(true);

    const h = await historyHttp(gw, channel);
    expect(h.status).toBe(200);
    expect(h.body.publications).toHaveLength(1);
    expect(fromBase64Json(h.body.publications[0].data).equals(bytes)).toBe(true);
    await Promise.all([sub.close(), publisher.close()]);
  });

  it('recovered and history-read binary publications are byte-identical too', async () => {
    const channel = uniqueChannel('agent');
    const publisher = await connectPrp(gw, { msgpack: true });
    const blobs = [randomBytes(KIB64), randomBytes(1), randomBytes(0), randomBytes(1000)];
    let epoch = '';
    for (const b of blobs) epoch = (await publishMsgpack(publisher, channel, { b })).data.epoch;

    const sub = await connectPrp(gw, { msgpack: true });
    const conf = await subscribePrp(sub, channel, { epoch, offset: 0 });
    expect(outcomeOf(conf, channel)).toMatchObject({ recovered: true, missed: 4 });
    await awaitOffset(sub, channel, 4);
    const got = publications(sub, channel);
    expect(got.map((m) => asBuffer(m.data.b).equals(blobs[m.offset - 1]!))).toEqual([true, true, true, true]);

    const hist = await sub.request('history', { channel, limit: 10 });
    expect(hist.type).toBe('history');
    expect(hist.data.publications.map((p: Msg) => asBuffer(p.data.b).equals(blobs[p.offset - 1]!))).toEqual([true, true, true, true]);

    const jsonSub = await connectPrp(gw);
    const jsonHist = await jsonSub.request('history', { channel, limit: 10 });
    expect(jsonHist.data.publications.map((p: Msg) => fromBase64Json(p.data.b).equals(blobs[p.offset - 1]!))).toEqual([true, true, true, true]);
    await Promise.all([publisher.close(), sub.close(), jsonSub.close()]);
  });

  it('a JSON publisher cannot send bytes: an object {"$base64": ...} stays an object for every subscriber', async () => {
    const channel = uniqueChannel('agent');
    const bin = await connectPrp(gw, { msgpack: true });
    await subscribePrp(bin, channel);
    const publisher = await connectPrp(gw);
    const data = { $base64: Buffer.from('hello').toString('base64') };
    const ack = await publisher.request('publish', { channel, type: 'file.chunk', data });
    expect(ack.type).toBe('ack');
    const m = await awaitOffset(bin, channel, 1);
    expect(m.data).toEqual(data);
    expect(m.data instanceof Uint8Array).toBe(false);
    await Promise.all([bin.close(), publisher.close()]);
  });
});
