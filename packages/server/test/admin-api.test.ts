/**
 * The admin API over real sockets: connections listed, filtered, paged, disconnected (4003) and
 * unsubscribed; channels summed over nodes; on Redis the whole cluster answers, and a node that
 * does not answer is reported by id.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode, ErrorCode } from '@signalbox/protocol';
import { RedisRpcEngine } from '../src/rpc/redis.js';
import { connectPrp, startGateway, uniqueChannel, type Msg, type TestClient, type TestGateway } from './helpers/gateway.js';
import { deleteKeys, describeWithRedis, probeRedis, uniquePrefix } from './helpers/redis.js';
import { eventually } from './helpers/wait.js';

const ADMIN_KEY = 'sk_console_0123456789abcdef';
const BACKEND_KEY = 'sk_backend_0123456789abcdef';
const keys = [{ name: 'console', key: ADMIN_KEY, scopes: ['admin' as const] }, { name: 'backend', key: BACKEND_KEY, scopes: ['publish' as const] }];

async function admin(gw: TestGateway, method: 'GET' | 'DELETE', path: string, key = ADMIN_KEY): Promise<{ status: number; body: Msg }> {
  const res = await fetch(`${gw.http}${path}`, { method, headers: { authorization: `Bearer ${key}` } });
  return { status: res.status, body: (await res.json()) as Msg };
}

const idOf = (c: TestClient): string => c.messages[0]!.data.connectionId as string;

describe('admin API, one node', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ apiKeys: keys });
  });
  afterAll(() => gw.close());

  it('lists connections with their details, filters by subject and channel, and pages', async () => {
    const channel = uniqueChannel('project');
    const alice = await connectPrp(gw, { token: await gw.token({ sub: 'usr_alice' }) });
    const bob = await connectPrp(gw, { token: await gw.token({ sub: 'usr_bob' }), msgpack: true });
    await alice.request('subscribe', { channels: [channel] });
    const all = await admin(gw, 'GET', '/v1/connections');
    expect(all.status).toBe(200);
    expect(all.body.unavailable).toEqual([]);
    expect(all.body.nodes).toEqual([gw.gateway.nodeId]);
    const mine = (all.body.connections as Msg[]).filter((c) => c.id === idOf(alice) || c.id === idOf(bob));
    expect(mine).toHaveLength(2);
    expect(mine.find((c) => c.id === idOf(alice))).toMatchObject({
      subject: 'usr_alice', node: gw.gateway.nodeId, remoteAddress: '127.0.0.1', dialect: 'prp', encoding: 'json', channels: [channel], bytesBuffered: 0,
    });
    expect(mine.find((c) => c.id === idOf(bob))).toMatchObject({ subject: 'usr_bob', encoding: 'msgpack', channels: [] });
    expect(Date.parse(mine[0]!.connectedSince)).toBeGreaterThan(Date.now() - 60_000);

    expect((await admin(gw, 'GET', '/v1/connections?subject=usr_bob')).body.connections.map((c: Msg) => c.id)).toEqual([idOf(bob)]);
    expect((await admin(gw, 'GET', `/v1/connections?channel=${encodeURIComponent(channel)}`)).body.connections.map((c: Msg) => c.id)).toEqual([idOf(alice)]);

    // Pages of one: every connection exactly once, then no cursor.
    const seen: string[] = [];
    let cursor: string | null = '';
    while (cursor !== null) {
      const page = await admin(gw, 'GET', `/v1/connections?limit=1${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.body.connections.length).toBeLessThanOrEqual(1);
      seen.push(...page.body.connections.map((c: Msg) => c.id as string));
      cursor = page.body.next as string | null;
    }
    expect(seen).toEqual((all.body.connections as Msg[]).map((c) => c.id).sort());
    await Promise.all([alice.close(), bob.close()]);
  });

  it('disconnects a connection with 4003, and removes one subscription with notice', async () => {
    const channel = uniqueChannel('project');
    const other = uniqueChannel('project');
    const c = await connectPrp(gw, { token: await gw.token({ sub: 'usr_kick' }) });
    await c.request('subscribe', { channels: [channel, other] });
    const removed = await admin(gw, 'DELETE', `/v1/connections/${idOf(c)}/subscriptions/${encodeURIComponent(channel)}`);
    expect(removed).toEqual({ status: 200, body: { id: idOf(c), channel, removed: true } });
    expect(await c.next((m) => m.type === 'subscription.removed')).toMatchObject({ channel, data: { channel, code: ErrorCode.PERMISSION_DENIED } });
    expect((await admin(gw, 'GET', '/v1/connections?subject=usr_kick')).body.connections[0].channels).toEqual([other]);
    // Not subscribed any more: 404.
    expect((await admin(gw, 'DELETE', `/v1/connections/${idOf(c)}/subscriptions/${encodeURIComponent(channel)}`)).body.error.code).toBe(ErrorCode.NOT_FOUND);

    const kicked = await admin(gw, 'DELETE', `/v1/connections/${idOf(c)}?reason=maintenance`);
    expect(kicked).toEqual({ status: 200, body: { id: idOf(c), disconnected: true, node: gw.gateway.nodeId, closeCode: CloseCode.DISCONNECTED } });
    expect(await c.closed).toEqual({ code: CloseCode.DISCONNECTED, reason: 'maintenance' });
    expect((await admin(gw, 'GET', '/v1/connections?subject=usr_kick')).body.connections).toEqual([]);
    expect(await admin(gw, 'DELETE', `/v1/connections/${idOf(c)}`)).toMatchObject({ status: 404, body: { error: { code: ErrorCode.NOT_FOUND } } });
  });

  it('clears a channel\'s history: the position stays, a later recovery from before it is told recovered:false', async () => {
    const channel = uniqueChannel('project');
    for (let i = 0; i < 3; i++) expect((await gw.publish({ channel, data: i })).status).toBe(200);
    const cleared = await admin(gw, 'DELETE', `/v1/channels/${channel}/history`);
    expect(cleared).toMatchObject({ status: 200, body: { channel, cleared: true, position: { offset: 3 } } });
    expect(await admin(gw, 'DELETE', `/v1/channels/${channel}/history`, BACKEND_KEY)).toMatchObject({ status: 403 });
    const c = await connectPrp(gw);
    expect((await c.request('history', { channel })).data.publications).toEqual([]);
    const conf = await c.request('subscribe', { channels: [{ channel, since: { epoch: cleared.body.position.epoch, offset: 1 } }] });
    expect(conf.data.channels[0]).toMatchObject({ recovered: false, reason: 'history_expired' });
    await c.close();
  });

  it('lists channels with subscriber counts and search; a key without the admin scope is refused', async () => {
    const channel = uniqueChannel('project');
    const a = await connectPrp(gw);
    const b = await connectPrp(gw);
    await a.request('subscribe', { channels: [channel] });
    await b.request('subscribe', { channels: [channel] });
    const r = await admin(gw, 'GET', `/v1/channels?search=${channel.slice(8)}`);
    expect(r.body).toMatchObject({ total: 1, unavailable: [], channels: [{ channel, subscribers: 2, nodes: [{ node: gw.gateway.nodeId, subscribers: 2 }] }] });
    // A channel only handled (no subscriber) is listed, with its handler counted.
    const handled = uniqueChannel('session');
    const h = await connectPrp(gw, { token: await gw.token({ sub: 'usr_page', handle: [handled] }) });
    expect((await h.request('rpc.handle', { channel: handled })).type).toBe('rpc.handling');
    const listed = await admin(gw, 'GET', `/v1/channels?search=${handled.slice(8)}`);
    expect(listed.body).toMatchObject({ total: 1, channels: [{ channel: handled, subscribers: 0, handlers: 1, epoch: null, nodes: [{ node: gw.gateway.nodeId, subscribers: 0, handlers: 1 }] }] });
    await h.close();
    await eventually(async () => ((await admin(gw, 'GET', `/v1/channels?search=${handled.slice(8)}`)).body as { total: number }).total === 0 || undefined, { label: 'the handler to go from the list' });
    for (const path of ['/v1/channels', '/v1/connections']) {
      expect(await admin(gw, 'GET', path, BACKEND_KEY)).toMatchObject({ status: 403, body: { error: { code: ErrorCode.PERMISSION_DENIED, details: { scope: 'admin' } } } });
    }
    expect((await admin(gw, 'GET', '/v1/connections?limit=0')).status).toBe(400);
    await Promise.all([a.close(), b.close()]);
  });
});

const probe = await probeRedis();

describeWithRedis('admin API, two nodes on Redis', probe, () => {
  const prefix = uniquePrefix('admin');
  let a: TestGateway;
  let b: TestGateway;
  beforeAll(async () => {
    const common = { broker: probe.url, redisPrefix: prefix, apiKeys: keys };
    [a, b] = await Promise.all([startGateway(common), startGateway(common)]);
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await deleteKeys(probe.url, prefix);
  });

  it('one node answers for the cluster: connections and channels of both nodes, and a disconnect on the other node', async () => {
    const channel = uniqueChannel('project');
    const onA = await connectPrp(a, { token: await a.token({ sub: 'usr_on_a' }) });
    const onB = await connectPrp(b, { token: await b.token({ sub: 'usr_on_b' }) });
    await onA.request('subscribe', { channels: [channel] });
    await onB.request('subscribe', { channels: [channel] });
    const list = await admin(a, 'GET', '/v1/connections');
    expect(list.body.nodes).toEqual([a.gateway.nodeId, b.gateway.nodeId].sort());
    expect(list.body.unavailable).toEqual([]);
    const byId = new Map((list.body.connections as Msg[]).map((c) => [c.id, c]));
    expect(byId.get(idOf(onA))).toMatchObject({ subject: 'usr_on_a', node: a.gateway.nodeId });
    expect(byId.get(idOf(onB))).toMatchObject({ subject: 'usr_on_b', node: b.gateway.nodeId });

    const channels = await admin(a, 'GET', `/v1/channels?search=${channel.slice(8)}`);
    expect(channels.body.channels[0].subscribers).toBe(2);
    expect(channels.body.channels[0].nodes.map((n: Msg) => n.node).sort()).toEqual([a.gateway.nodeId, b.gateway.nodeId].sort());

    expect(await admin(a, 'DELETE', `/v1/connections/${idOf(onB)}`)).toMatchObject({ status: 200, body: { node: b.gateway.nodeId } });
    expect((await onB.closed).code).toBe(CloseCode.DISCONNECTED);
    await onA.close();
  });

  it('a node that does not answer is reported by id, and the answers of the others still come back', async () => {
    // A "node" that is alive in Redis and registered for admin questions, but never answers.
    const ghost = new RedisRpcEngine({ url: probe.url, prefix });
    await ghost.start('node_ghost', { onCall: () => {}, onOutcome: () => {} });
    await ghost.register('$admin', { handlerId: 'admin_node_ghost', node: 'node_ghost', methods: null });
    try {
      const list = await admin(a, 'GET', '/v1/connections');
      expect(list.status).toBe(200);
      expect(list.body.nodes).toEqual([a.gateway.nodeId, b.gateway.nodeId].sort());
      expect(list.body.unavailable).toEqual([{ node: 'node_ghost', code: ErrorCode.RPC_TIMEOUT, message: expect.any(String) }]);
    } finally {
      await ghost.close();
    }
  });
});
