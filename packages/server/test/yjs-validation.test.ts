/**
 * What may be published on a Yjs document channel (`doc:{id}`, docs/protocol.md "Binary data"):
 * a `yjs.update` must carry bytes (MessagePack `bin`), over WebSocket and `POST /v1/publish`; a
 * `yjs.snapshot` is the gateway's alone. A refusal stores nothing and leaves the connection open.
 */
import * as Y from 'yjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectPrd, connectPrp, startGateway, uniqueChannel, type Msg, type TestClient, type TestGateway } from './helpers/gateway.js';
import { prdRequest, uniqueId } from './helpers/delivery-kit.js';

const UPDATE_RULE = "A 'yjs.update' on a document channel must carry the update's bytes as `data` (MessagePack bin; JSON cannot carry bytes)";

function anUpdate(text: string): Uint8Array {
  const doc = new Y.Doc();
  doc.getText('t').insert(0, text);
  return Y.encodeStateAsUpdate(doc);
}

/** Publishes over PRP (MessagePack or JSON, as the client was opened) and awaits the reply. */
function publish(client: TestClient, channel: string, type: string, data: unknown, msgpack: boolean): Promise<Msg> {
  const id = uniqueId('yv');
  const from = client.messages.length;
  const frame = { id, action: 'publish', payload: { channel, type, data } };
  if (msgpack) client.sendMsgpack(frame);
  else client.send(frame);
  return client.next((m) => m.replyTo === id, 5000, from);
}

describe('Yjs document publications are validated', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  async function stored(channel: string): Promise<string[]> {
    const hist = await gw.gateway.broker.history(channel, {});
    return hist.publications.filter((p) => p.type.startsWith('yjs.')).map((p) => p.type);
  }

  it('over WebSocket: a yjs.update of bytes is stored; one of a string, an object or {"$base64"} is INVALID_MESSAGE', async () => {
    const channel = uniqueChannel('doc');
    const bin = await connectPrp(gw, { msgpack: true });
    const json = await connectPrp(gw);
    const update = anUpdate('hi');
    expect(await publish(bin, channel, 'yjs.update', update, true)).toMatchObject({ type: 'ack', data: { channel, offset: 1 } });

    const refusals = [
      await publish(bin, channel, 'yjs.update', 'not bytes', true),
      await publish(bin, channel, 'yjs.update', { update: update }, true),
      await publish(json, channel, 'yjs.update', { $base64: Buffer.from(update).toString('base64') }, false),
      await publish(json, channel, 'yjs.update', Array.from(update), false),
    ];
    for (const r of refusals) {
      expect(r).toMatchObject({ type: 'error', data: { code: 'INVALID_MESSAGE', message: UPDATE_RULE, details: { channel, type: 'yjs.update' } } });
    }
    // PRD-035 dialect: the same rule.
    const prd = await connectPrd(gw);
    const r = await prdRequest(prd, { type: 'message', channel, event: 'yjs.update', data: 'text' });
    expect(r).toMatchObject({ type: 'error', data: { code: 'INVALID_MESSAGE', message: UPDATE_RULE } });

    expect(await stored(channel)).toEqual(['yjs.update']);
    // The connections are still open and usable.
    expect(await publish(bin, channel, 'yjs.update', anUpdate('more'), true)).toMatchObject({ type: 'ack', data: { offset: 2 } });
    for (const c of [bin, json, prd]) await c.close();
  });

  it('over POST /v1/publish: a yjs.update on a doc channel is INVALID_MESSAGE (HTTP 400), nothing stored', async () => {
    const channel = uniqueChannel('doc');
    const update = anUpdate('hi');
    for (const data of [{ $base64: Buffer.from(update).toString('base64') }, 'text', null]) {
      const res = await gw.publish({ channel, type: 'yjs.update', data });
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ error: { code: 'INVALID_MESSAGE', message: UPDATE_RULE } });
    }
    // In a multi-channel publish, the document channel refuses the whole publish.
    const other = uniqueChannel('room');
    const multi = await gw.publish({ channels: [other, channel], type: 'yjs.update', data: 'text' });
    expect(multi.status).toBe(400);
    expect((await gw.gateway.broker.history(other, {})).publications).toEqual([]);
    expect(await stored(channel)).toEqual([]);
  });

  it('yjs.snapshot is the gateway\'s alone: PERMISSION_DENIED over WebSocket (even well-formed) and HTTP (403)', async () => {
    const channel = uniqueChannel('doc');
    const bin = await connectPrp(gw, { msgpack: true });
    const part = { snapshot: 'snap_forged', part: 0, parts: 1, size: 3, bytes: anUpdate('forged') };
    const ws = await publish(bin, channel, 'yjs.snapshot', part, true);
    const message = `Event type 'yjs.snapshot' on channel '${channel}' is reserved for the gateway (its compacted snapshots)`;
    expect(ws).toMatchObject({ type: 'error', data: { code: 'PERMISSION_DENIED', message, details: { channel, type: 'yjs.snapshot' } } });
    const http = await gw.publish({ channel, type: 'yjs.snapshot', data: { snapshot: 'snap_forged', part: 0, parts: 1, size: 3 } });
    expect(http.status).toBe(403);
    expect(http.body).toMatchObject({ error: { code: 'PERMISSION_DENIED', message } });
    expect(await stored(channel)).toEqual([]);
    await bin.close();
  });

  it('the rules are the document namespace\'s: other types on doc:, and yjs.* elsewhere, are not affected', async () => {
    const channel = uniqueChannel('doc');
    const bin = await connectPrp(gw, { msgpack: true });
    expect(await publish(bin, channel, 'note', 'plain text', true)).toMatchObject({ type: 'ack' });
    const room = uniqueChannel('room');
    expect((await gw.publish({ channel: room, type: 'yjs.update', data: 'text' })).status).toBe(200);
    expect((await gw.publish({ channel: room, type: 'yjs.snapshot', data: {} })).status).toBe(200);
    await bin.close();
  });
});
