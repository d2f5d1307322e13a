/**
 * Malformed input over real sockets: INVALID_MESSAGE (bad JSON, too deep, wrong shapes),
 * INVALID_ACTION, MESSAGE_TOO_LARGE and the 1009 hard limit, the 4008 protocol-violation close,
 * UNAVAILABLE from a broker that cannot be reached, and INTERNAL_ERROR from one that fails unexpectedly.
 * Every error names the request it answers.
 */
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CloseCode, ErrorCode } from '@signalbox/protocol';
import { MemoryBroker, RedisBroker, type HistoryQuery } from '../src/index.js';
import { connectPrp, startGateway, uniqueChannel, type Msg, type TestClient, type TestGateway } from './helpers/gateway.js';
import { http } from './helpers/core-util.js';

// Starting gateways can take long on a starved CI machine; a hang still fails, just later.
vi.setConfig({ hookTimeout: 120_000 });

function nested(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = i % 2 === 0 ? { a: v } : [v];
  return v;
}

/** Sends a raw frame and awaits the next error (or reply) after it. */
async function sendAndAwait(client: TestClient, frame: string | Buffer, pred: (m: Msg) => boolean = (m) => m.type === 'error'): Promise<Msg> {
  const from = client.messages.length;
  client.sendRaw(frame);
  return client.next(pred, 5000, from);
}

describe('invalid messages', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ maxJsonDepth: 8, maxMessageBytes: 1024 });
  });
  afterAll(() => gw.close());

  it('bad JSON is INVALID_MESSAGE and the connection survives', async () => {
    const client = await connectPrp(gw);
    for (const frame of ['{', 'not json', '{"action":"ping",}', '']) {
      const err = await sendAndAwait(client, frame);
      expect(err.data).toMatchObject({ code: ErrorCode.INVALID_MESSAGE, details: {} });
      expect(err.replyTo).toBeUndefined();
    }
    expect((await client.request('ping')).type).toBe('pong');
    await client.close();
  });

  it('nesting deeper than maxJsonDepth is INVALID_MESSAGE; at the limit it is processed', async () => {
    const client = await connectPrp(gw);
    const agent = uniqueChannel('agent');
    // {id, action, payload: {channel, data: <nested>}}: the envelope and payload add two levels.
    const tooDeep = await sendAndAwait(client, JSON.stringify({ id: 'deep_1', action: 'publish', payload: { channel: agent, data: nested(7) } }));
    expect(tooDeep.data.code).toBe(ErrorCode.INVALID_MESSAGE);
    expect(tooDeep.data.message).toMatch(/nesting/i);
    const ok = await sendAndAwait(client, JSON.stringify({ id: 'deep_2', action: 'publish', payload: { channel: agent, data: nested(6) } }), (m) => m.replyTo === 'deep_2');
    expect(ok.type).toBe('ack');
    // Brackets inside strings do not count.
    const str = await sendAndAwait(client, JSON.stringify({ id: 'deep_3', action: 'publish', payload: { channel: agent, data: '[[[[[[[[[[[[[[[[[[[[' } }), (m) => m.replyTo === 'deep_3');
    expect(str.type).toBe('ack');
    await client.close();
  });

  const shapes: [string, unknown, Record<string, unknown>][] = [
    ['an array', [1, 2], {}],
    ['a string', 'ping', {}],
    ['a number', 42, {}],
    ['null', null, {}],
    ['no action', { id: 'm1' }, { requestId: 'm1' }],
    ['a non-string action', { id: 'm2', action: 5 }, { requestId: 'm2' }],
    ['an object id', { id: { x: 1 }, action: 'ping' }, {}],
    ['an id with spaces', { id: 'a b', action: 'ping' }, {}],
    ['a non-object payload', { id: 'm3', action: 'subscribe', payload: [] }, { requestId: 'm3', action: 'subscribe' }],
    ['subscribe without channels', { id: 'm4', action: 'subscribe' }, { requestId: 'm4', action: 'subscribe' }],
    ['subscribe with an empty list', { id: 'm5', action: 'subscribe', payload: { channels: [] } }, { requestId: 'm5', action: 'subscribe' }],
    ['subscribe with a number', { id: 'm6', action: 'subscribe', payload: { channels: [5] } }, { requestId: 'm6', action: 'subscribe' }],
    ['subscribe with a bad since', { id: 'm7', action: 'subscribe', payload: { channels: [{ channel: 'project:p', since: { epoch: 1 } }] } }, { requestId: 'm7', action: 'subscribe' }],
    ['unsubscribe with an object', { id: 'm8', action: 'unsubscribe', payload: { channels: {} } }, { requestId: 'm8', action: 'unsubscribe' }],
    ['publish without data', { id: 'm9', action: 'publish', payload: { channel: 'agent:a' } }, { requestId: 'm9', action: 'publish' }],
    ['publish without channel', { id: 'm10', action: 'publish', payload: { data: 1 } }, { requestId: 'm10', action: 'publish' }],
    ['publish with a numeric type', { id: 'm11', action: 'publish', payload: { channel: 'agent:a', type: 1, data: 1 } }, { requestId: 'm11', action: 'publish' }],
    ['history with a bad limit', { id: 'm12', action: 'history', payload: { channel: 'project:p', limit: -1 } }, { requestId: 'm12', action: 'history' }],
    ['refresh without token', { id: 'm13', action: 'refresh', payload: {} }, { requestId: 'm13', action: 'refresh' }],
    ['presence without channel', { id: 'm14', action: 'presence', payload: {} }, { requestId: 'm14', action: 'presence' }],
  ];

  it.each(shapes)('%s is INVALID_MESSAGE with the request id and action', async (_what, msg, details) => {
    const client = await connectPrp(gw);
    const err = await sendAndAwait(client, JSON.stringify(msg));
    expect(err.data.code).toBe(ErrorCode.INVALID_MESSAGE);
    expect(err.data.details).toEqual(details);
    if (details.requestId) expect(err.replyTo).toBe(details.requestId);
    expect((await client.request('ping')).type).toBe('pong');
    await client.close();
  });

  it('an unknown action is INVALID_ACTION naming the request and the action', async () => {
    const client = await connectPrp(gw);
    const err = await sendAndAwait(client, JSON.stringify({ id: 'client_msg_009', action: 'explode', payload: {} }));
    expect(err).toMatchObject({
      type: 'error', replyTo: 'client_msg_009',
      data: { code: ErrorCode.INVALID_ACTION, details: { requestId: 'client_msg_009', action: 'explode' } },
    });
    expect(err.data.message).toContain('explode');
    await client.close();
  });

  it('a frame over maxMessageBytes is MESSAGE_TOO_LARGE and the connection survives', async () => {
    const client = await connectPrp(gw);
    const big = JSON.stringify({ id: 'big_1', action: 'publish', payload: { channel: 'agent:a', data: 'x'.repeat(2000) } });
    const err = await sendAndAwait(client, big);
    expect(err.data.code).toBe(ErrorCode.MESSAGE_TOO_LARGE);
    expect(err.data.message).toContain('1024');
    // It names the request it refuses, so the client can fail that publish at once.
    expect(err).toMatchObject({ replyTo: 'big_1', data: { details: { requestId: 'big_1', action: 'publish' } } });
    // Up to 4x the limit is still only refused, not closed.
    const err4x = await sendAndAwait(client, 'x'.repeat(4 * 1024));
    expect(err4x.data.code).toBe(ErrorCode.MESSAGE_TOO_LARGE);
    expect((await client.request('ping')).type).toBe('pong');
    await client.close();
  });

  it('a frame over 4x the limit closes the socket with 1009', async () => {
    const client = await connectPrp(gw);
    client.sendRaw('x'.repeat(4 * 1024 + 1));
    expect((await client.closed).code).toBe(CloseCode.MESSAGE_TOO_BIG);
  });

  it('an invalid MessagePack frame is INVALID_MESSAGE', async () => {
    const client = await connectPrp(gw);
    const err = await sendAndAwait(client, Buffer.from([0xc1, 0xc1, 0xc1]));
    expect(err.data.code).toBe(ErrorCode.INVALID_MESSAGE);
    expect((await client.request('ping')).type).toBe('pong');
    await client.close();
  });

  it('repeated invalid messages close the connection with 4008', async () => {
    const client = await connectPrp(gw);
    for (let i = 0; i < 40; i++) client.sendRaw('{');
    const closed = await client.closed;
    expect(closed.code).toBe(CloseCode.PROTOCOL_VIOLATION);
    // The first ones were each answered before the close.
    expect(client.messages.filter((m) => m.type === 'error' && m.data.code === ErrorCode.INVALID_MESSAGE).length).toBeGreaterThanOrEqual(20);
  });

  it('repeated unknown actions also count as violations (4008)', async () => {
    const client = await connectPrp(gw);
    for (let i = 0; i < 40; i++) client.send({ id: `x${i}`, action: 'nope' });
    expect((await client.closed).code).toBe(CloseCode.PROTOCOL_VIOLATION);
  });
});

describe('broker unavailable', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    // A port nobody listens on: the Redis broker starts not-ready and every operation fails fast.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const broker = new RedisBroker({ url: `redis://127.0.0.1:${port}`, startTimeoutMs: 200, reconnectBaseMs: 50, reconnectMaxMs: 200, commandTimeoutMs: 500 });
    gw = await startGateway({}, { broker });
  });
  afterAll(() => gw.close());

  it('readyz is 503, HTTP publish 503 UNAVAILABLE, WebSocket publish/subscribe get UNAVAILABLE', async () => {
    const ready = await http(gw, '/readyz', { apiKey: null });
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ ready: false, reason: 'broker unavailable' });
    const pub = await gw.publish({ channel: 'project:p1', type: 'prp.created', data: {} });
    expect(pub.status).toBe(503);
    expect(pub.body).toMatchObject({ error: { code: ErrorCode.UNAVAILABLE } });
    const client = await connectPrp(gw);
    const ack = await client.request('publish', { channel: 'agent:a1', type: 'agent.progress', data: {} });
    expect(ack.data).toMatchObject({ code: ErrorCode.UNAVAILABLE, details: { action: 'publish', channel: 'agent:a1' } });
    const from = client.messages.length;
    client.send({ id: 'u1', action: 'subscribe', payload: { channels: ['project:p1'] } });
    const err = await client.next((m) => m.type === 'error' && m.replyTo === 'u1', 5000, from);
    expect(err.data).toMatchObject({ code: ErrorCode.UNAVAILABLE, details: { requestId: 'u1', action: 'subscribe', channel: 'project:p1' } });
    const confirmed = await client.next((m) => m.type === 'subscription.confirmed' && m.replyTo === 'u1', 5000, from);
    expect(confirmed.data.subscribedChannels).toEqual([]);
    await client.close();
  });
});

describe('an unexpected failure (a bug, not an outage)', () => {
  let gw: TestGateway;
  const BROKEN = 'project:broken';
  beforeAll(async () => {
    // A memory broker whose history() throws a plain Error for one channel, as a bug would.
    class BrokenHistory extends MemoryBroker {
      override history(channel: string, query: HistoryQuery): ReturnType<MemoryBroker['history']> {
        return channel === BROKEN ? Promise.reject(new Error('boom')) : super.history(channel, query);
      }
    }
    const broker = new BrokenHistory();
    gw = await startGateway({}, { broker });
  });
  afterAll(() => gw.close());

  it('answers INTERNAL_ERROR naming the request, keeps the connection, and says nothing of the cause', async () => {
    const client = await connectPrp(gw);
    const from = client.messages.length;
    client.send({ id: 'h1', action: 'history', payload: { channel: BROKEN } });
    const err = await client.next((m) => m.type === 'error' && m.replyTo === 'h1', 5000, from);
    expect(err.data).toMatchObject({ code: ErrorCode.INTERNAL_ERROR, message: 'Internal error', details: { requestId: 'h1', action: 'history', channel: BROKEN } });
    expect(JSON.stringify(err)).not.toContain('boom');
    // The same connection goes on: the next request is answered.
    const ok = await client.request('history', { channel: 'project:fine' });
    expect(ok.type).toBe('history');
    await client.close();
  });

  it('the HTTP API answers 500 INTERNAL_ERROR, and the gateway stays ready', async () => {
    const res = await http(gw, `/v1/channels/${encodeURIComponent(BROKEN)}/history`);
    expect(res.status).toBe(500);
    expect(res.body).toMatchObject({ error: { code: ErrorCode.INTERNAL_ERROR } });
    expect(res.text).not.toContain('boom');
    expect((await http(gw, '/readyz', { apiKey: null })).status).toBe(200);
  });
});
