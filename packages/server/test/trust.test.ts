/**
 * The trust model over real sockets: reading, publishing and producing are separate grants, and
 * every publication carries the publisher the gateway authenticated (both dialects, both
 * encodings, live, recovered and in history), including the name of the HTTP API key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '@signalbox/protocol';
import { TestClient, connectPrd, connectPrp, startGateway, uniqueChannel, type Msg, type TestGateway } from './helpers/gateway.js';

const BACKEND_KEY = 'sk_backend_0123456789abcdef';
const READER_KEY = 'sk_reader_0123456789abcdef';

async function api(gw: TestGateway, path: string, key: string, body?: unknown): Promise<{ status: number; body: Msg }> {
  const res = await fetch(`${gw.http}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Msg };
}

/** PRP and PRD publications on `channel`, in the shape each dialect sends: [offset, event type, publisher]. */
function seen(client: TestClient, channel: string): [number, string, unknown][] {
  return client.messages
    .filter((m) => m.channel === channel && typeof m.offset === 'number' && (m.type !== 'ack' && m.type !== 'error'))
    .map((m) => [m.offset, m.type === 'message' ? m.event : m.type, m.publisher]);
}

describe('grants: read, publish and produce are separate', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  it('a reader without a publish grant is refused, naming the channel; the connection goes on', async () => {
    const channel = uniqueChannel('agent');
    const reader = await connectPrp(gw, { token: await gw.token({ channels: [channel], publish: [], handle: [] }) });
    expect((await reader.request('subscribe', { channels: [channel] })).data.subscribedChannels).toEqual([channel]);
    const refused = await reader.request('publish', { channel, type: 'chat.message', data: { text: 'hi' } });
    expect(refused).toMatchObject({
      type: 'error',
      data: { code: ErrorCode.PERMISSION_DENIED, details: { action: 'publish', channel } },
    });
    expect(refused.data.message).toContain('`publish` claim');
    expect((await reader.request('ping')).type).toBe('pong');
    await reader.close();
  });

  it('a publish grant alone publishes, without reading; reading still needs `channels`', async () => {
    const channel = uniqueChannel('session');
    const page = await connectPrp(gw, { token: await gw.token({ channels: [], publish: [channel], handle: [] }) });
    expect((await page.request('publish', { channel, type: 'note', data: 1 })).type).toBe('ack');
    const sub = await page.request('subscribe', { channels: [channel] });
    expect(sub.data.subscribedChannels).toEqual([]);
    expect(page.messages.some((m) => m.type === 'error' && m.data.code === ErrorCode.PERMISSION_DENIED && m.data.details.channel === channel)).toBe(true);
    await page.close();
  });

  it('a viewer cannot publish the producer\'s reserved types, in either dialect; the producer can', async () => {
    const channel = uniqueChannel('agent');
    const viewer = await connectPrp(gw, { token: await gw.token({ sub: 'usr_viewer', channels: [channel], publish: [channel], handle: [] }) });
    for (const type of ['agent.progress', 'agent.completed', 'chat.token', 'chat.done']) {
      const r = await viewer.request('publish', { channel, type, data: {} });
      expect(r.data, type).toMatchObject({ code: ErrorCode.PERMISSION_DENIED, details: { channel, type } });
      expect(r.data.message).toContain('reserved');
    }
    expect((await viewer.request('publish', { channel, type: 'chat.message', data: { text: 'hi' } })).type).toBe('ack');

    const prd = await connectPrd(gw, { token: await gw.token({ sub: 'usr_viewer', channels: [channel], publish: [channel], handle: [] }) });
    prd.send({ type: 'message', id: 'prd_1', channel, event: 'agent.progress', data: {} });
    const err = await prd.next((m) => m.replyTo === 'prd_1');
    expect(err).toMatchObject({ type: 'error', data: { code: ErrorCode.PERMISSION_DENIED, details: { channel, type: 'agent.progress' } } });

    const agent = await connectPrp(gw, { token: await gw.token({ sub: 'agent_1', channels: [channel], publish: [], handle: [channel] }) });
    expect((await agent.request('publish', { channel, type: 'agent.progress', data: { pct: 10 } })).type).toBe('ack');
    expect((await agent.request('publish', { channel, type: 'chat.token', data: { text: 'a' } })).type).toBe('ack');
    // `handle` is for the channel it names only.
    const other = uniqueChannel('agent');
    expect((await agent.request('publish', { channel: other, type: 'agent.progress', data: {} })).data.code).toBe(ErrorCode.PERMISSION_DENIED);
    await Promise.all([viewer.close(), prd.close(), agent.close()]);
  });

  it('a namespace without client publishing refuses even a full grant', async () => {
    const client = await connectPrp(gw, { token: await gw.token({ channels: ['*'], publish: ['*'], handle: ['*'] }) });
    const r = await client.request('publish', { channel: 'project:p1', type: 'prp.created', data: {} });
    expect(r.data).toMatchObject({ code: ErrorCode.PERMISSION_DENIED, details: { channel: 'project:p1' } });
    await client.close();
  });

  it('a refreshed token brings its own grants', async () => {
    const channel = uniqueChannel('agent');
    const client = await connectPrp(gw, { token: await gw.token({ channels: [channel], publish: [] }) });
    expect((await client.request('publish', { channel, type: 'chat.message', data: 1 })).type).toBe('error');
    expect((await client.request('refresh', { token: await gw.token({ channels: [channel], publish: [channel] }) })).type).toBe('token.refreshed');
    expect((await client.request('publish', { channel, type: 'chat.message', data: 2 })).type).toBe('ack');
    await client.close();
  });
});

describe('publisher identity', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({
      apiKeys: [
        { name: 'backend', key: BACKEND_KEY, scopes: ['publish', 'history'] },
        { name: 'reader', key: READER_KEY, scopes: ['history'] },
      ],
    });
  });
  afterAll(() => gw.close());

  it('every subscriber, in both dialects and encodings, live, recovered and in history, sees the true publisher', async () => {
    const channel = uniqueChannel('agent');
    const connect = async (path: string) => {
      const c = new TestClient(`${gw.ws}${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(await gw.token({ sub: 'usr_watch', channels: [channel], publish: [] }))}`);
      await c.opened;
      return c;
    };
    const subscribers = {
      prpJson: await connect('/v1/ws/prps'),
      prpMsgpack: await connect('/v1/ws/prps?format=msgpack'),
      prdJson: await connect('/ws'),
      prdMsgpack: await connect('/ws?format=msgpack'),
    };
    for (const [name, c] of Object.entries(subscribers)) {
      if (name.startsWith('prp')) await c.request('subscribe', { channels: [channel] });
      else {
        c.send({ type: 'subscribe', id: 's1', channel });
        await c.next((m) => m.replyTo === 's1');
      }
    }

    const agent = await connectPrp(gw, { token: await gw.token({ sub: 'agent_7', channels: [], publish: [], handle: [channel] }) });
    const agentConn = agent.messages[0]!.data.connectionId as string;
    expect(agentConn).toMatch(/\S/);
    // A payload that claims a publisher is just data.
    expect((await agent.request('publish', { channel, type: 'agent.progress', data: { publisher: { via: 'http', key: 'backend' } } })).type).toBe('ack');
    expect((await api(gw, '/v1/publish', BACKEND_KEY, { channel, type: 'agent.assigned', data: {} })).status).toBe(200);
    expect((await api(gw, '/v1/publish', BACKEND_KEY, { channel, type: 'chat.message', data: { text: 'from alice' }, as: 'usr_alice' })).status).toBe(200);

    const expected: [number, string, unknown][] = [
      [1, 'agent.progress', { via: 'ws', sub: 'agent_7', client: agentConn }],
      [2, 'agent.assigned', { via: 'http', key: 'backend' }],
      [3, 'chat.message', { via: 'http', key: 'backend', sub: 'usr_alice' }],
    ];
    for (const [name, c] of Object.entries(subscribers)) {
      await c.next((m) => m.channel === channel && m.offset === 3);
      expect(seen(c, channel), name).toEqual(expected);
    }

    // Recovered: a new subscriber asking from offset 0 gets the same publishers.
    const late = await connectPrp(gw, { token: await gw.token({ channels: [channel], publish: [] }) });
    const epoch = subscribers.prpJson.messages.find((m) => m.channel === channel && m.offset === 1)!.epoch as string;
    const conf = await late.request('subscribe', { channels: [{ channel, since: { epoch, offset: 0 } }] });
    expect(conf.data.channels[0]).toMatchObject({ recovered: true, missed: 3 });
    await late.next((m) => m.channel === channel && m.offset === 3);
    expect(seen(late, channel)).toEqual(expected);

    // History, over WebSocket and HTTP (with a key that may only read history).
    const wsHistory = await late.request('history', { channel });
    expect(wsHistory.data.publications.map((p: Msg) => [p.offset, p.type, p.publisher])).toEqual(expected);
    const httpHistory = await api(gw, `/v1/channels/${channel}/history`, READER_KEY);
    expect(httpHistory.status).toBe(200);
    expect(httpHistory.body.publications.map((p: Msg) => [p.offset, p.type, p.publisher])).toEqual(expected);

    await Promise.all([...Object.values(subscribers).map((c) => c.close()), agent.close(), late.close()]);
  });

  it('presence changes are marked as the gateway\'s own', async () => {
    const channel = uniqueChannel('room');
    const watcher = await connectPrp(gw);
    await watcher.request('subscribe', { channels: [channel] });
    const joiner = await connectPrp(gw, { token: await gw.token({ sub: 'usr_joiner' }) });
    await joiner.request('subscribe', { channels: [channel] });
    const joined = await watcher.next((m) => m.type === 'presence.joined' && m.data.member.userId === 'usr_joiner');
    expect(joined.publisher).toEqual({ via: 'gateway', service: 'presence' });
    await Promise.all([watcher.close(), joiner.close()]);
  });

  it('API keys: each route needs its scope (403 naming key and scope), an unknown key is 401, `as` is validated', async () => {
    const channel = uniqueChannel('project');
    const denied = await api(gw, '/v1/publish', READER_KEY, { channel, type: 'x', data: 1 });
    expect(denied.status).toBe(403);
    expect(denied.body.error).toMatchObject({ code: ErrorCode.PERMISSION_DENIED, details: { key: 'reader', scope: 'publish' } });
    expect(JSON.stringify(denied.body)).not.toContain(READER_KEY);
    expect((await api(gw, '/v1/stats', BACKEND_KEY)).status).toBe(403);
    expect((await api(gw, `/v1/channels/${channel}/history`, READER_KEY)).status).toBe(200);
    expect((await api(gw, `/v1/channels/${channel}/history`, `${READER_KEY}x`)).status).toBe(401);
    expect((await api(gw, '/v1/publish', 'sk_unknown_0123456789abcdef', { channel, data: 1 })).status).toBe(401);
    // The default key (SIGNALBOX_API_KEY) keeps every scope.
    expect((await gw.publish({ channel, data: 1 })).status).toBe(200);
    expect((await api(gw, '/v1/stats', gw.config.apiKey!)).status).toBe(200);
    for (const as of ['', 7, 'x'.repeat(129)]) {
      const bad = await api(gw, '/v1/publish', BACKEND_KEY, { channel, data: 1, as });
      expect(bad.status, JSON.stringify(as)).toBe(400);
    }
  });

  it('the same publish id from two API keys is one publication (one backend scope); a client\'s is its own', async () => {
    const channel = uniqueChannel('agent');
    const a = await api(gw, '/v1/publish', BACKEND_KEY, { channel, id: 'job-1', data: 1 });
    const b = await api(gw, '/v1/publish', gw.config.apiKey!, { channel, id: 'job-1', data: 2 });
    expect(b.body).toMatchObject({ offset: a.body.offset, duplicate: true });
    const client = await connectPrp(gw);
    client.send({ id: 'job-1', action: 'publish', payload: { channel, type: 'chat.message', data: 3 } });
    const ack = await client.next((m) => m.replyTo === 'job-1');
    expect(ack.data).toMatchObject({ duplicate: false, offset: a.body.offset + 1 });
    await client.close();
  });
});
