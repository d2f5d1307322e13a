/**
 * Protocol behaviour against a scriptable server on real sockets (`ws`, 127.0.0.1, port 0):
 * handshake and token transports, resubscription with recovery (exactly once, in order),
 * publish acks and resends, refused channels, half-open detection, gaps, both dialects, MessagePack.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SignalboxClient, type PublicationMessage, type SignalboxClientOptions, type StateChange } from '../src/node.js';
import type { PrpEventData } from '../src/prp.js';
import { msgpack } from '../src/msgpack.js';
import { FakeServer, once, type FakeConnection } from './helpers/fake-server.js';

let server: FakeServer;
const clients: SignalboxClient<PrpEventData>[] = [];

function makeClient(options: SignalboxClientOptions = {}): SignalboxClient<PrpEventData> {
  const client = new SignalboxClient<PrpEventData>({ url: server.url(), token: 'tok', reconnectInterval: 20, maxReconnectInterval: 50, ...options });
  client.on('error', () => {});
  clients.push(client);
  return client;
}

function state(client: SignalboxClient<PrpEventData>, to: StateChange['to'], reason?: StateChange['reason']): Promise<StateChange> {
  return once<StateChange>(client, '$state', (c) => c.to === to && (reason === undefined || c.reason === reason));
}

/** Connects a client and completes the handshake on the server side. */
async function connected(client: SignalboxClient<PrpEventData>): Promise<FakeConnection> {
  const done = client.connect();
  const conn = await server.accept();
  conn.establish();
  await done;
  return conn;
}

beforeEach(async () => {
  server = await FakeServer.start();
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  await server.close();
});

describe('handshake', () => {
  it('sends the token as a Bearer header from Node and resolves connect() on connection.established', async () => {
    const client = makeClient({ token: 'abc.def.ghi' });
    const states: string[] = [];
    client.on('$state', (c) => { states.push(`${c.from}->${c.to}:${c.reason}`); });
    const conn = await connected(client);
    expect(conn.authorization).toBe('Bearer abc.def.ghi');
    expect(client.isConnected).toBe(true);
    expect(client.connectionId).toBe('conn_1');
    expect(states).toEqual(['disconnected->connecting:connect_called', 'connecting->connected:established']);
  });

  it('offers signalbox.json + bearer.<jwt> as subprotocols (the browser way)', async () => {
    const client = makeClient({ token: 'abc.def.ghi', tokenTransport: 'subprotocol' });
    const conn = await connected(client);
    expect(conn.request.headers['sec-websocket-protocol']?.split(/,\s*/)).toEqual(['signalbox.json', 'bearer.abc.def.ghi']);
    expect(conn.socket.protocol).toBe('signalbox.json');
    expect(conn.authorization).toBeUndefined();
  });

  it('puts the token in ?token= when asked', async () => {
    const client = makeClient({ token: 'abc', tokenTransport: 'query' });
    const conn = await connected(client);
    expect(conn.url.searchParams.get('token')).toBe('abc');
  });

  it('an auth failure (error, then close 4001) rejects connect() and stops', async () => {
    const client = makeClient();
    const errors: string[] = [];
    client.on('error', (e) => { errors.push(e.code); });
    const done = client.connect();
    const conn = await server.accept();
    conn.event('error', { code: 'AUTH_FAILED', message: 'Authentication failed', details: {} });
    void conn.close(4001, 'auth failed');
    await expect(done).rejects.toMatchObject({ code: 'CLOSED' });
    expect(client.state).toBe('closed');
    expect(errors).toContain('AUTH_FAILED');
  });
});

describe('subscriptions and recovery', () => {
  it('resubscribes with the last position after a restart, and handlers see each missed publication once, in order', async () => {
    const client = makeClient();
    const seen: number[] = [];
    const viaSub: number[] = [];
    client.on('prp.created', (m) => { seen.push(m.offset ?? -1); });
    const conn = await connected(client);
    const sub = client.subscribe('project:p1');
    sub.on('publication', (m) => { viaSub.push(m.offset); });
    const req = await conn.next('subscribe');
    expect(req.payload).toEqual({ channels: ['project:p1'] });
    conn.event('subscription.confirmed', { subscribedChannels: ['project:p1'], channels: [{ channel: 'project:p1', position: { epoch: 'e1', offset: 10 } }] }, { replyTo: req.id });
    for (let o = 11; o <= 13; o++) conn.publication('project:p1', 'e1', o, 'prp.created', { id: `prp_${o}` });
    await once(sub, 'publication', (m: PublicationMessage) => m.offset === 13);

    // The node restarts: 1012, reconnect, resubscribe from offset 13.
    const lost = state(client, 'reconnecting');
    await conn.close(1012, 'restarting');
    expect(await lost).toMatchObject({ code: 1012, reason: 'transport_closed' });
    const conn2 = await server.accept();
    conn2.establish('conn_2');
    const req2 = await conn2.next('subscribe');
    expect(req2.payload).toEqual({ channels: [{ channel: 'project:p1', since: { epoch: 'e1', offset: 13 } }] });
    const resubscribed = once<{ recovered?: boolean; resubscribed: boolean }>(sub, 'subscribed');
    conn2.event('subscription.confirmed', {
      subscribedChannels: ['project:p1'],
      channels: [{ channel: 'project:p1', position: { epoch: 'e1', offset: 16 }, recovered: true, missed: 3 }],
    }, { replyTo: req2.id });
    expect(await resubscribed).toMatchObject({ recovered: true, resubscribed: true });
    // A replayed duplicate (13) must be dropped; 14-16 are the missed ones; 17 is live.
    for (const o of [13, 14, 15, 16, 17]) conn2.publication('project:p1', 'e1', o, 'prp.created', { id: `prp_${o}` });
    await once(sub, 'publication', (m: PublicationMessage) => m.offset === 17);
    expect(seen).toEqual([11, 12, 13, 14, 15, 16, 17]);
    expect(viaSub).toEqual(seen);
    expect(sub.position).toEqual({ epoch: 'e1', offset: 17 });
  });

  it('surfaces recovered: false as recovery_failed on the subscription, and continues from the new position', async () => {
    const client = makeClient();
    const conn = await connected(client);
    const sub = client.subscribe('project:p1');
    const req = await conn.next('subscribe');
    conn.event('subscription.confirmed', { subscribedChannels: ['project:p1'], channels: [{ channel: 'project:p1', position: { epoch: 'e1', offset: 5 } }] }, { replyTo: req.id });
    await once(sub, 'subscribed');
    void conn.close(4011, 'resync');
    const conn2 = await server.accept();
    conn2.establish();
    const req2 = await conn2.next('subscribe');
    const failed = once<{ reason: string; position?: unknown }>(sub, 'recovery_failed');
    conn2.event('subscription.confirmed', {
      subscribedChannels: ['project:p1'],
      channels: [{ channel: 'project:p1', position: { epoch: 'e2', offset: 0 }, recovered: false, reason: 'epoch_changed' }],
    }, { replyTo: req2.id });
    expect(await failed).toEqual({ channel: 'project:p1', reason: 'epoch_changed', position: { epoch: 'e2', offset: 0 } });
    conn2.publication('project:p1', 'e2', 1, 'prp.updated', {});
    const pub = await once<PublicationMessage>(sub, 'publication');
    expect(pub.offset).toBe(1);
  });

  it('a refused channel is reported and forgotten; the others go live', async () => {
    const client = makeClient();
    const conn = await connected(client);
    const [ok, bad] = client.subscribe(['project:p1', 'nope:x']);
    const req = await conn.next('subscribe');
    const refused = once<{ code: string }>(bad!, 'error');
    const live = once(ok!, 'subscribed');
    conn.event('error', { code: 'INVALID_CHANNEL', message: "Channel 'nope:x' does not exist", details: { requestId: req.id, action: 'subscribe', channel: 'nope:x' } }, { replyTo: req.id });
    conn.event('subscription.confirmed', { subscribedChannels: ['project:p1'], channels: [{ channel: 'project:p1', position: { epoch: 'e', offset: 0 } }] }, { replyTo: req.id });
    expect(await refused).toMatchObject({ code: 'INVALID_CHANNEL' });
    await live;
    expect(bad!.state).toBe('unsubscribed');
    expect(client.getSubscription('nope:x')).toBeUndefined();
    expect(ok!.state).toBe('subscribed');
  });

  it('a gap in offsets is never delivered: the client reconnects and recovers from the last position', async () => {
    const client = makeClient();
    const conn = await connected(client);
    const sub = client.subscribe('project:p1');
    const seen: number[] = [];
    sub.on('publication', (m) => { seen.push(m.offset); });
    const req = await conn.next('subscribe');
    conn.event('subscription.confirmed', { subscribedChannels: ['project:p1'], channels: [{ channel: 'project:p1', position: { epoch: 'e', offset: 0 } }] }, { replyTo: req.id });
    conn.publication('project:p1', 'e', 1, 'm', {});
    conn.publication('project:p1', 'e', 3, 'm', {});
    expect(await state(client, 'reconnecting')).toMatchObject({ reason: 'insufficient_state' });
    const conn2 = await server.accept();
    conn2.establish();
    const req2 = await conn2.next('subscribe');
    expect(req2.payload).toEqual({ channels: [{ channel: 'project:p1', since: { epoch: 'e', offset: 1 } }] });
    expect(seen).toEqual([1]);
  });

  it('unsubscribe() sends the request and later publications on that channel are not delivered', async () => {
    const client = makeClient();
    const conn = await connected(client);
    const got: string[] = [];
    client.on('*', (m) => { if (m.channel) got.push(`${m.channel}:${m.offset}`); });
    client.subscribe(['a:1', 'b:1']);
    const req = await conn.next('subscribe');
    conn.event('subscription.confirmed', { subscribedChannels: ['a:1', 'b:1'], channels: [
      { channel: 'a:1', position: { epoch: 'e', offset: 0 } }, { channel: 'b:1', position: { epoch: 'e', offset: 0 } }] }, { replyTo: req.id });
    await once(client.getSubscription('b:1')!, 'subscribed');
    client.unsubscribe('a:1');
    expect((await conn.next('unsubscribe')).payload).toEqual({ channels: ['a:1'] });
    conn.publication('a:1', 'e', 1, 'm', {});
    conn.publication('b:1', 'e', 1, 'm', {});
    await once(client, '*', (m: { channel?: string }) => m.channel === 'b:1');
    expect(got).toEqual(['b:1:1']);
  });
});

describe('publish', () => {
  it('resolves with the ack and rejects with the server error', async () => {
    const client = makeClient();
    const conn = await connected(client);
    const ok = client.publish('project:p1', { n: 1 }, { type: 'prp.created' });
    const req = await conn.next('publish');
    expect(req.payload).toEqual({ channel: 'project:p1', type: 'prp.created', data: { n: 1 } });
    conn.event('ack', { id: req.id, channel: 'project:p1', offset: 7, epoch: 'e', duplicate: false }, { replyTo: req.id });
    expect(await ok).toEqual({ id: req.id, channel: 'project:p1', offset: 7, epoch: 'e', duplicate: false });

    const denied = client.publish('private:x', 1);
    const req2 = await conn.next('publish');
    conn.event('error', { code: 'PERMISSION_DENIED', message: 'no', details: { requestId: req2.id, action: 'publish' } }, { replyTo: req2.id });
    await expect(denied).rejects.toMatchObject({ name: 'SignalboxError', code: 'PERMISSION_DENIED', replyTo: req2.id });
  });

  it('resends an unacknowledged publish with the same id after a reconnect, and queues publishes made meanwhile', async () => {
    const client = makeClient();
    const conn = await connected(client);
    const first = client.publish('project:p1', 'first', { id: 'pub-1' });
    expect((await conn.next('publish')).id).toBe('pub-1');
    const lost = state(client, 'reconnecting');
    void conn.close(1011);
    await lost;
    const second = client.publish('project:p1', 'second');
    expect(client.pendingPublishes).toBe(2);
    const conn2 = await server.accept();
    conn2.establish();
    // One channel's publishes go out one at a time, in call order: the second after the first's ack.
    const r1 = await conn2.next('publish');
    expect(r1).toMatchObject({ id: 'pub-1', payload: { data: 'first' } });
    conn2.event('ack', { id: 'pub-1', channel: 'project:p1', offset: 1, epoch: 'e', duplicate: true }, { replyTo: 'pub-1' });
    const r2 = await conn2.next('publish');
    expect(r2).toMatchObject({ payload: { data: 'second' } });
    conn2.event('ack', { id: r2.id, channel: 'project:p1', offset: 2, epoch: 'e', duplicate: false }, { replyTo: r2.id });
    expect(await first).toMatchObject({ offset: 1, duplicate: true });
    expect(await second).toMatchObject({ offset: 2 });
  });
});

describe('liveness', () => {
  it('detects a server that went silent (half-open) and reconnects', async () => {
    const client = makeClient({ pingInterval: 150, pongTimeout: 150 });
    const conn = await connected(client);
    const ping = await conn.next('ping');
    expect(ping.id).toEqual(expect.any(String));
    // The server never answers.
    expect(await state(client, 'reconnecting')).toMatchObject({ reason: 'heartbeat_timeout' });
    const conn2 = await server.accept();
    conn2.establish();
    await state(client, 'connected');
  });

  it('a pong keeps the connection', async () => {
    const client = makeClient({ pingInterval: 100, pongTimeout: 1000 });
    const conn = await connected(client);
    for (let i = 0; i < 3; i++) {
      const ping = await conn.next('ping');
      conn.event('pong', undefined, { replyTo: ping.id });
    }
    expect(client.state).toBe('connected');
  });
});

describe('token refresh', () => {
  it('answers the server\'s token_expired with an in-band refresh from getToken', async () => {
    let n = 0;
    const client = makeClient({ getToken: async () => `token-${++n}` });
    const conn = await connected(client);
    expect(conn.authorization).toBe('Bearer token-1');
    conn.event('token_expired', { expiredAt: new Date().toISOString(), graceMs: 5000 });
    const refresh = await conn.next('refresh');
    expect(refresh.payload).toEqual({ token: 'token-2' });
    conn.event('token.refreshed', { expiresAt: null }, { replyTo: refresh.id });
    expect(client.state).toBe('connected');
  });
});

describe('PRD-035 dialect (/ws)', () => {
  it('subscribes, receives, publishes and recovers in the PRD format; handlers see the same normalized messages', async () => {
    const client = makeClient({ url: server.url('/ws') });
    const done = client.connect();
    const conn = await server.accept();
    conn.send({ type: 'ack', data: { action: 'connect', connectionId: 'c1', serverVersion: '1.0.0', features: [] }, id: 's0', timestamp: '' });
    await done;
    const sub = client.subscribe('agent:123');
    const req = await conn.next('subscribe');
    expect(req).toMatchObject({ type: 'subscribe', channel: 'agent:123' });
    conn.send({ type: 'ack', channel: 'agent:123', id: 's1', timestamp: '', replyTo: req.id, data: {
      action: 'subscribe', subscribedChannels: ['agent:123'], channels: [{ channel: 'agent:123', position: { epoch: 'e', offset: 4 } }], position: { epoch: 'e', offset: 4 } } });
    await once(sub, 'subscribed');
    const typed: unknown[] = [];
    client.on('agent.progress', (m) => { typed.push(m.data.progress); });
    conn.send({ type: 'message', channel: 'agent:123', id: 'p5', timestamp: '', event: 'agent.progress', offset: 5, epoch: 'e', data: { agentId: 'a', prpId: 'p', progress: 45 } });
    const pub = await once<PublicationMessage>(sub, 'publication');
    expect(pub).toMatchObject({ type: 'agent.progress', channel: 'agent:123', offset: 5, epoch: 'e', data: { progress: 45 } });
    expect(typed).toEqual([45]);

    // Server heartbeat (PRD ping) is answered with a pong.
    conn.send({ type: 'ping', id: 'hb', timestamp: '', data: { serverTime: '' } });
    await conn.next('pong');

    const ack = client.publish('agent:123', { content: 'Hello' }, { type: 'agent.reply' });
    const preq = await conn.next('message');
    expect(preq).toMatchObject({ type: 'message', channel: 'agent:123', event: 'agent.reply', data: { content: 'Hello' } });
    conn.send({ type: 'ack', channel: 'agent:123', id: 's2', timestamp: '', replyTo: preq.id, data: { action: 'message', id: preq.id, channel: 'agent:123', offset: 6, epoch: 'e', duplicate: false } });
    expect(await ack).toMatchObject({ offset: 6 });

    // Reconnect: resubscribe carries since in data.
    void conn.close(1012);
    const conn2 = await server.accept();
    conn2.send({ type: 'ack', data: { action: 'connect', connectionId: 'c2', serverVersion: '1.0.0', features: [] }, id: 's0', timestamp: '' });
    const req2 = await conn2.next('subscribe');
    expect(req2).toMatchObject({ type: 'subscribe', channel: 'agent:123', data: { since: { epoch: 'e', offset: 5 } } });
  });

  it('reads the PRD token-expired error as token_expired', async () => {
    const client = makeClient({ url: server.url('/ws') });
    const done = client.connect();
    const conn = await server.accept();
    conn.send({ type: 'ack', data: { action: 'connect', connectionId: 'c1', serverVersion: '1.0.0', features: [] }, id: 's0', timestamp: '' });
    await done;
    const expired = once<{ graceMs: number }>(client, 'token_expired');
    conn.send({ type: 'error', id: 'x', timestamp: '', data: { code: 'TOKEN_EXPIRED', message: 'expired', details: { expiredAt: '2026-01-01T00:00:00Z', graceMs: 3000 } } });
    expect(await expired).toEqual({ expiredAt: '2026-01-01T00:00:00Z', graceMs: 3000 });
  });
});

describe('MessagePack', () => {
  it('asks for msgpack and decodes binary frames, bytes included', async () => {
    const client = makeClient({ format: msgpack });
    const done = client.connect();
    const conn = await server.accept();
    expect(conn.url.searchParams.get('format')).toBe('msgpack');
    conn.binary = true;
    conn.establish();
    await done;
    const sub = client.subscribe('files:1');
    const req = await conn.next('subscribe');
    conn.event('subscription.confirmed', { subscribedChannels: ['files:1'], channels: [{ channel: 'files:1', position: { epoch: 'e', offset: 0 } }] }, { replyTo: req.id });
    conn.publication('files:1', 'e', 1, 'file.chunk', { bytes: new Uint8Array([1, 2, 3]) });
    const pub = await once<PublicationMessage<{ bytes: Uint8Array }>>(sub, 'publication');
    expect([...pub.data.bytes]).toEqual([1, 2, 3]);
  });
});
