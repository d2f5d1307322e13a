/**
 * Limits over real sockets: publish/subscribe/message rates (RATE_LIMITED, then 4029 on sustained
 * abuse), subscriptions per connection and per channel (SUBSCRIPTION_LIMIT), and what is refused
 * before the upgrade: per-IP cap (429), node capacity (503), Origin (403), unknown path (404).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CloseCode, ErrorCode } from '@signalbox/protocol';
import { DEFAULT_NAMESPACES } from '../src/index.js';
import { TestClient, connectPrp, startGateway, uniqueChannel, type Msg, type TestGateway } from './helpers/gateway.js';
import { http, upgradeStatus } from './helpers/core-util.js';
import { until } from './helpers/wait.js';

// Starting gateways can take long on a starved CI machine; a hang still fails, just later.
vi.setConfig({ hookTimeout: 120_000 });

async function errorsFor(client: TestClient, id: string, final: (m: Msg) => boolean): Promise<{ reply: Msg; errors: Msg[] }> {
  const reply = await client.next((m) => m.replyTo === id && final(m));
  return { reply, errors: client.messages.filter((m) => m.type === 'error' && m.replyTo === id) };
}

/** Polls /v1/stats (an event source of its own) until the node counts `n` connections. */
function untilConnections(gw: TestGateway, n: number): Promise<void> {
  return until(async () => (await http(gw, '/v1/stats')).body.connections === n, { label: `the gateway to count ${n} connections`, timeoutMs: 10_000 });
}

describe('rate limits', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ publishRate: 1, publishBurst: 2, subscribeRate: 1, subscribeBurst: 2 });
  });
  afterAll(() => gw.close());

  it('publishes over the burst are RATE_LIMITED, naming the request and channel', async () => {
    const client = await connectPrp(gw);
    const channel = uniqueChannel('agent');
    for (let i = 0; i < 3; i++) client.send({ id: `rp${i}`, action: 'publish', payload: { channel, type: 'agent.progress', data: { i } } });
    const replies = await Promise.all([0, 1, 2].map((i) => client.next((m) => m.replyTo === `rp${i}`)));
    expect(replies.map((r) => r.type)).toEqual(['ack', 'ack', 'error']);
    expect(replies[2]!.data).toMatchObject({ code: ErrorCode.RATE_LIMITED, details: { requestId: 'rp2', action: 'publish', channel } });
    await client.close();
  });

  it('subscriptions over the subscribe burst are RATE_LIMITED per channel', async () => {
    const client = await connectPrp(gw);
    const [a, b, c] = [uniqueChannel(), uniqueChannel(), uniqueChannel()];
    client.send({ id: 'rs1', action: 'subscribe', payload: { channels: [a, b, c] } });
    const { reply, errors } = await errorsFor(client, 'rs1', (m) => m.type === 'subscription.confirmed');
    expect(reply.data.subscribedChannels).toEqual([a, b]);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.data).toMatchObject({ code: ErrorCode.RATE_LIMITED, details: { requestId: 'rs1', action: 'subscribe', channel: c } });
    await client.close();
  });

  it('sustained rate-limit violations close the connection with 4029', async () => {
    const client = await connectPrp(gw);
    const channel = uniqueChannel('agent');
    for (let i = 0; i < 160; i++) client.send({ id: `ab${i}`, action: 'publish', payload: { channel, type: 'agent.progress', data: { i } } });
    const closed = await client.closed;
    expect(closed.code).toBe(CloseCode.RATE_LIMITED);
    expect(client.messages.filter((m) => m.type === 'error' && m.data.code === ErrorCode.RATE_LIMITED).length).toBeGreaterThanOrEqual(100);
  });
});

describe('message rate', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ messageRate: 1, messageBurst: 3 });
  });
  afterAll(() => gw.close());

  it('frames of any kind over the burst are RATE_LIMITED, each naming its request', async () => {
    const client = await connectPrp(gw);
    for (let i = 0; i < 5; i++) client.send({ id: `mr${i}`, action: 'ping' });
    const replies = await Promise.all([0, 1, 2, 3, 4].map((i) => client.next((m) => m.replyTo === `mr${i}`)));
    expect(replies.map((r) => r.type)).toEqual(['pong', 'pong', 'pong', 'error', 'error']);
    expect(replies[3]!.data).toMatchObject({ code: ErrorCode.RATE_LIMITED, details: { requestId: 'mr3', action: 'ping' } });
    expect(replies[4]!.data).toMatchObject({ code: ErrorCode.RATE_LIMITED, details: { requestId: 'mr4', action: 'ping' } });
    await client.close();
  });
});

describe('subscription limits', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({
      maxSubscriptionsPerConnection: 2,
      namespaces: [...DEFAULT_NAMESPACES, { name: 'room', type: 'public', historySize: 0, historyTtlMs: 0, clientPublish: false, presence: false, maxSubscribers: 1, allowBare: false, allowIds: true }],
    });
  });
  afterAll(() => gw.close());

  it('a connection holds at most maxSubscriptionsPerConnection channels', async () => {
    const client = await connectPrp(gw);
    const [a, b, c] = [uniqueChannel(), uniqueChannel(), uniqueChannel()];
    client.send({ id: 'sl1', action: 'subscribe', payload: { channels: [a, b, c] } });
    const first = await errorsFor(client, 'sl1', (m) => m.type === 'subscription.confirmed');
    expect(first.reply.data.subscribedChannels).toEqual([a, b]);
    expect(first.errors).toHaveLength(1);
    expect(first.errors[0]!.data).toMatchObject({ code: ErrorCode.SUBSCRIPTION_LIMIT, details: { requestId: 'sl1', action: 'subscribe', channel: c } });
    // At the limit, re-subscribing a held channel is still confirmed quietly.
    client.send({ id: 'sl2', action: 'subscribe', payload: { channels: [a] } });
    const again = await errorsFor(client, 'sl2', (m) => m.type === 'subscription.confirmed');
    expect(again.reply.data.subscribedChannels).toEqual([a]);
    expect(again.errors).toEqual([]);
    // Freeing one makes room.
    await client.request('unsubscribe', { channels: [b] });
    client.send({ id: 'sl3', action: 'subscribe', payload: { channels: [c] } });
    expect((await errorsFor(client, 'sl3', (m) => m.type === 'subscription.confirmed')).reply.data.subscribedChannels).toEqual([c]);
    await client.close();
  });

  it('a channel holds at most its namespace maxSubscribers', async () => {
    const one = await connectPrp(gw);
    const two = await connectPrp(gw);
    expect((await one.request('subscribe', { channels: ['room:r1'] })).data.subscribedChannels).toEqual(['room:r1']);
    two.send({ id: 'full1', action: 'subscribe', payload: { channels: ['room:r1'] } });
    const { reply, errors } = await errorsFor(two, 'full1', (m) => m.type === 'subscription.confirmed');
    expect(reply.data.subscribedChannels).toEqual([]);
    expect(errors[0]!.data).toMatchObject({ code: ErrorCode.SUBSCRIPTION_LIMIT, details: { channel: 'room:r1' } });
    await one.close();
    await two.close();
  });
});

describe('refused before the upgrade', () => {
  it('per-IP connection cap: HTTP 429 before the upgrade, and room again after a close', async () => {
    const gw = await startGateway({ maxConnectionsPerIp: 2 });
    try {
      const a = await connectPrp(gw);
      const b = await connectPrp(gw);
      const refused = await upgradeStatus(`${gw.ws}/v1/ws/prps?token=${await gw.token()}`);
      expect(refused.status).toBe(429);
      expect(JSON.parse(refused.body)).toMatchObject({ error: { code: ErrorCode.RATE_LIMITED } });
      const c = new TestClient(`${gw.ws}/v1/ws/prps`, { headers: { authorization: `Bearer ${await gw.token()}` } });
      await expect(c.opened).rejects.toMatchObject({ statusCode: 429 });
      await a.close();
      await untilConnections(gw, 1);
      const d = await connectPrp(gw);
      await d.close();
      await b.close();
    } finally {
      await gw.close();
    }
  });

  it('node capacity: HTTP 503 with Retry-After', async () => {
    const gw = await startGateway({ maxConnections: 1 });
    try {
      const a = await connectPrp(gw);
      const refused = await upgradeStatus(`${gw.ws}/v1/ws/prps?token=${await gw.token()}`);
      expect(refused.status).toBe(503);
      expect(refused.headers['retry-after']).toBeDefined();
      await a.close();
    } finally {
      await gw.close();
    }
  });

  it('Origin allow-list: 403 for an unlisted Origin, upgrade for a listed one and for a non-browser (no Origin)', async () => {
    const gw = await startGateway({ allowedOrigins: ['https://app.example.com'] });
    try {
      const token = await gw.token();
      const url = `${gw.ws}/v1/ws/prps?token=${token}`;
      // No Origin: not a browser (the project's own Node SDK, the reference clients): admitted.
      expect((await upgradeStatus(url)).status).toBe(101);
      const evil = await upgradeStatus(url, { origin: 'https://evil.example.com' });
      expect(evil.status).toBe(403);
      expect(JSON.parse(evil.body)).toMatchObject({ error: { code: ErrorCode.PERMISSION_DENIED } });
      expect((await upgradeStatus(url, { origin: 'https://app.example.com.evil.net' })).status).toBe(403);
      const refusedClient = new TestClient(url, { origin: 'https://evil.example.com' });
      await expect(refusedClient.opened).rejects.toMatchObject({ statusCode: 403 });
      const ok = new TestClient(url, { origin: 'https://app.example.com' });
      await ok.nextType('connection.established');
      await ok.close();
    } finally {
      await gw.close();
    }
  });

  it('SIGNALBOX_REQUIRE_ORIGIN: an upgrade without Origin is refused with 403 naming the setting', async () => {
    const gw = await startGateway({ allowedOrigins: ['https://app.example.com'], requireOrigin: true });
    try {
      const url = `${gw.ws}/v1/ws/prps?token=${await gw.token()}`;
      const refused = await upgradeStatus(url);
      expect(refused.status).toBe(403);
      expect(JSON.parse(refused.body).error.message).toContain('SIGNALBOX_REQUIRE_ORIGIN');
      expect((await upgradeStatus(url, { origin: 'https://app.example.com' })).status).toBe(101);
    } finally {
      await gw.close();
    }
  });

  it('Origin allow-list with * admits any origin', async () => {
    const gw = await startGateway({ allowedOrigins: ['*'] });
    try {
      const url = `${gw.ws}/v1/ws/prps?token=${await gw.token()}`;
      expect((await upgradeStatus(url, { origin: 'https://anything.example' })).status).toBe(101);
      expect((await upgradeStatus(url)).status).toBe(101);
    } finally {
      await gw.close();
    }
  });

  it('the per-IP cap ignores X-Forwarded-For unless trustProxy is on', async () => {
    const spoofable = await startGateway({ maxConnectionsPerIp: 1 });
    try {
      const url = `${spoofable.ws}/v1/ws/prps?token=${await spoofable.token()}`;
      const a = new TestClient(url, { headers: { 'x-forwarded-for': '203.0.113.1' } });
      await a.nextType('connection.established');
      // Another claimed address does not buy another slot: the socket address counts.
      expect((await upgradeStatus(url, { 'x-forwarded-for': '203.0.113.2' })).status).toBe(429);
      await a.close();
    } finally {
      await spoofable.close();
    }
    const proxied = await startGateway({ maxConnectionsPerIp: 1, trustProxy: true });
    try {
      const url = `${proxied.ws}/v1/ws/prps?token=${await proxied.token()}`;
      // The rightmost entry is the address the proxy appended; entries left of it are the client's own claim.
      const a = new TestClient(url, { headers: { 'x-forwarded-for': '198.51.100.7, 203.0.113.1' } });
      const b = new TestClient(url, { headers: { 'x-forwarded-for': '203.0.113.2' } });
      await a.nextType('connection.established');
      await b.nextType('connection.established');
      expect((await upgradeStatus(url, { 'x-forwarded-for': '203.0.113.1' })).status).toBe(429);
      // A forged left part does not dodge the cap, nor is it counted against anyone.
      expect((await upgradeStatus(url, { 'x-forwarded-for': '203.0.113.9, 203.0.113.2' })).status).toBe(429);
      const c = new TestClient(url, { headers: { 'x-forwarded-for': '203.0.113.1, 203.0.113.3' } });
      await c.nextType('connection.established');
      await a.close();
      await b.close();
      await c.close();
    } finally {
      await proxied.close();
    }
  });

  it('an unknown path is 404 before the upgrade', async () => {
    const gw = await startGateway();
    try {
      const token = await gw.token();
      for (const path of ['/', '/v1/ws', '/v1/ws/prps/extra', '/WS', '/v2/ws/prps']) {
        const r = await upgradeStatus(`${gw.ws}${path}?token=${token}`);
        expect(r.status, path).toBe(404);
      }
      expect((await upgradeStatus(`${gw.ws}/v1/ws/prps?token=${token}`)).status).toBe(101);
      expect((await upgradeStatus(`${gw.ws}/ws?token=${token}`)).status).toBe(101);
    } finally {
      await gw.close();
    }
  });
});
