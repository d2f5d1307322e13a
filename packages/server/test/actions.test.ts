/**
 * Every client action of the PRP endpoint over a real socket: subscribe (batches, refusals,
 * re-subscribe), unsubscribe, publish, history, presence, refresh, ping; channel grammar and
 * namespace authorization.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ErrorCode } from '@signalbox/protocol';
import { connectPrp, startGateway, uniqueChannel, type Msg, type TestClient, type TestGateway } from './helpers/gateway.js';
import { claims, http, metricValue, quietPeriod, scrapeMetrics, signHmac } from './helpers/core-util.js';
import { until } from './helpers/wait.js';

// Starting gateways can take long on a starved CI machine; a hang still fails, just later.
vi.setConfig({ hookTimeout: 120_000 });

/** Sends a request with a chosen id and awaits its final reply; returns it with every error that answered the same id. */
async function req(client: TestClient, id: string, action: string, payload?: unknown): Promise<{ reply: Msg; errors: Msg[] }> {
  const from = client.messages.length;
  client.send({ id, action, ...(payload !== undefined ? { payload } : {}) });
  const final = action === 'subscribe' ? 'subscription.confirmed' : action === 'unsubscribe' ? 'unsubscription.confirmed' : undefined;
  const reply = await client.next((m) => m.replyTo === id && (final === undefined || m.type === final), 5000, from);
  const errors = client.messages.slice(from).filter((m) => m.type === 'error' && m.replyTo === id);
  return { reply, errors };
}

function byChannel(errors: Msg[]): Record<string, string> {
  return Object.fromEntries(errors.map((e) => [e.data.details.channel as string, e.data.code as string]));
}

describe('client actions', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  describe('subscribe', () => {
    it('confirms what was subscribed and gives each refused channel its own error naming it', async () => {
      const token = await signHmac(claims({ channels: ['project:*', 'agent:agent_001'] }));
      const client = await connectPrp(gw, { token });
      const project = uniqueChannel('project');
      const { reply, errors } = await req(client, 'sub_1', 'subscribe', {
        channels: [project, 'prp:prp_789012', 'bad channel', 'nope:x', 'agent:agent_001', 'agent:agent_002', 'user:usr_1', 'user:usr_2'],
      });
      expect(reply.type).toBe('subscription.confirmed');
      expect(reply.data.subscribedChannels).toEqual([project, 'agent:agent_001', 'user:usr_1']);
      expect(byChannel(errors)).toEqual({
        'prp:prp_789012': ErrorCode.PERMISSION_DENIED,
        'bad channel': ErrorCode.INVALID_CHANNEL,
        'nope:x': ErrorCode.INVALID_CHANNEL,
        'agent:agent_002': ErrorCode.PERMISSION_DENIED,
        'user:usr_2': ErrorCode.PERMISSION_DENIED,
      });
      for (const e of errors) {
        expect(e.data.details).toMatchObject({ requestId: 'sub_1', action: 'subscribe' });
        expect(e.data.message).toContain(e.data.details.channel === 'bad channel' ? 'bad channel' : e.data.details.channel);
      }
      // Each confirmed channel comes with its stream position.
      for (const c of reply.data.channels) expect(c.position).toEqual({ epoch: expect.any(String), offset: expect.any(Number) });
      await client.close();
    });

    it('lists only the confirmed channels when every channel is refused', async () => {
      const client = await connectPrp(gw, { token: await signHmac(claims({ channels: [] })) });
      const { reply, errors } = await req(client, 'sub_none', 'subscribe', { channels: ['project:p1', 'prp:p2'] });
      expect(reply.data.subscribedChannels).toEqual([]);
      expect(errors.map((e) => e.data.code)).toEqual([ErrorCode.PERMISSION_DENIED, ErrorCode.PERMISSION_DENIED]);
      await client.close();
    });

    it('accepts a single channel string and {channel} objects', async () => {
      const client = await connectPrp(gw);
      const a = uniqueChannel('project');
      const b = uniqueChannel('project');
      expect((await client.request('subscribe', { channel: a })).data.subscribedChannels).toEqual([a]);
      expect((await client.request('subscribe', { channels: [{ channel: b }] })).data.subscribedChannels).toEqual([b]);
      await client.close();
    });

    it('delivers publications to subscribers and stops after unsubscribe', async () => {
      const client = await connectPrp(gw);
      const channel = uniqueChannel('project');
      await client.request('subscribe', { channels: [channel] });
      const res = await gw.publish({ channel, type: 'prp.created', data: { id: 'prp_1' } });
      const ev = await client.nextType('prp.created');
      expect(ev).toMatchObject({ id: res.body.id, channel, data: { id: 'prp_1' } });
      const { reply } = await req(client, 'unsub_1', 'unsubscribe', { channels: [channel] });
      expect(reply).toMatchObject({ type: 'unsubscription.confirmed', replyTo: 'unsub_1', data: { unsubscribedChannels: [channel] } });
      await gw.publish({ channel, type: 'prp.updated', data: { id: 'prp_1' } });
      // Absence: a publication after unsubscribe must not arrive (bounded wait).
      expect((await quietPeriod(client, 200)).filter((m) => m.type === 'prp.updated')).toEqual([]);
      await client.close();
    });

    it('unsubscribe: an unheld valid channel is confirmed, an invalid one gets INVALID_CHANNEL', async () => {
      const client = await connectPrp(gw);
      const { reply, errors } = await req(client, 'unsub_2', 'unsubscribe', { channels: ['project:never_held', 'bogus:x', 'Project:x'] });
      expect(reply.data.unsubscribedChannels).toEqual(['project:never_held']);
      expect(byChannel(errors)).toEqual({ 'bogus:x': ErrorCode.INVALID_CHANNEL, 'Project:x': ErrorCode.INVALID_CHANNEL });
      await client.close();
    });
  });

  describe('channel names', () => {
    const invalid: [string, string][] = [
      ['empty', ''],
      ['upper-case namespace', 'Project:p1'],
      ['empty id', 'project:'],
      ['empty segment', 'project::p1'],
      ['space', 'project:p 1'],
      ['wildcard', 'project:*'],
      ['trailing wildcard', 'project:p*'],
      ['question mark', 'project:p?'],
      ['NUL', 'project:p\u0000'],
      ['newline', 'project:p\n1'],
      ['DEL', 'project:p\u007f'],
      ['non-ASCII', 'project:pé'],
      ['slash', 'project:a/b'],
      ['id longer than 128', `project:${'a'.repeat(129)}`],
      ['name longer than 160', `project:${'a'.repeat(100)}:${'b'.repeat(60)}`],
      ['namespace longer than 32', `${'a'.repeat(33)}:x`],
      ['unknown namespace', 'invalid:channel'],
      ['bare namespace that is not a channel', 'project'],
    ];

    it.each(invalid)('refuses %s with INVALID_CHANNEL', async (_what, name) => {
      const client = await connectPrp(gw);
      const { reply, errors } = await req(client, 'c1', 'subscribe', { channels: [name] });
      expect(reply.data.subscribedChannels).toEqual([]);
      expect(errors).toHaveLength(1);
      expect(errors[0]!.data).toMatchObject({ code: ErrorCode.INVALID_CHANNEL, details: { requestId: 'c1', action: 'subscribe', channel: name } });
      // Control characters are never echoed raw in the message.
      expect([...(errors[0]!.data.message as string)].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f)).toBe(false);
      await client.close();
    });

    it('accepts the longest valid names and the bare public namespace', async () => {
      const client = await connectPrp(gw, { token: await signHmac(claims({ channels: ['project:*'] })) });
      const longId = `project:${'a'.repeat(128)}`;
      const longest = `project:${'a'.repeat(100)}:${'b'.repeat(51)}`;
      expect(longest).toHaveLength(160);
      const multi = 'project:org_1:team.2:x@y=z-w';
      const { reply, errors } = await req(client, 'c2', 'subscribe', { channels: [longId, longest, multi, 'metrics'] });
      expect(errors).toEqual([]);
      expect(reply.data.subscribedChannels).toEqual([longId, longest, multi, 'metrics']);
      await client.close();
    });
  });

  describe('authorization', () => {
    it('private channels need a matching channels pattern; user:{sub} needs none; public needs none', async () => {
      const client = await connectPrp(gw, { token: await signHmac(claims({ sub: 'usr_7', channels: ['project:proj_1', 'prp:*'] })) });
      const { reply, errors } = await req(client, 'z1', 'subscribe', {
        channels: ['project:proj_1', 'project:proj_2', 'prp:prp_1', 'user:usr_7', 'user:usr_8', 'metrics', 'metrics:cpu', 'session:s1'],
      });
      expect(reply.data.subscribedChannels).toEqual(['project:proj_1', 'prp:prp_1', 'user:usr_7', 'metrics', 'metrics:cpu']);
      expect(byChannel(errors)).toEqual({
        'project:proj_2': ErrorCode.PERMISSION_DENIED,
        'user:usr_8': ErrorCode.PERMISSION_DENIED,
        'session:s1': ErrorCode.PERMISSION_DENIED,
      });
      await client.close();
    });

    it('a token without a channels claim reads only public channels and its own user channel', async () => {
      const client = await connectPrp(gw, { token: await signHmac({ sub: 'usr_9', exp: Math.floor(Date.now() / 1000) + 600 }) });
      const { reply, errors } = await req(client, 'z2', 'subscribe', { channels: ['user:usr_9', 'metrics', 'project:p'] });
      expect(reply.data.subscribedChannels).toEqual(['user:usr_9', 'metrics']);
      expect(byChannel(errors)).toEqual({ 'project:p': ErrorCode.PERMISSION_DENIED });
      await client.close();
    });
  });

  describe('publish', () => {
    it('publishes on agent: and session: (answered by ack) and subscribers receive it', async () => {
      const pub = await connectPrp(gw);
      const sub = await connectPrp(gw);
      const agent = uniqueChannel('agent');
      const session = uniqueChannel('session');
      await sub.request('subscribe', { channels: [agent, session] });
      const { reply } = await req(pub, 'pub_1', 'publish', { channel: agent, type: 'agent.progress', data: { agentId: 'agent_001', progress: 45 } });
      expect(reply).toMatchObject({ type: 'ack', replyTo: 'pub_1', data: { channel: agent, offset: 1, duplicate: false } });
      expect(typeof reply.data.id).toBe('string');
      expect(typeof reply.data.epoch).toBe('string');
      const ev = await sub.nextType('agent.progress');
      expect(ev).toMatchObject({ id: reply.data.id, channel: agent, offset: 1, epoch: reply.data.epoch, data: { agentId: 'agent_001', progress: 45 } });
      const s = await req(pub, 'pub_2', 'publish', { channel: session, data: { text: 'hi' } });
      // session: has presence (viewers are its members): the subscriber's presence.joined took offset 1.
      expect(s.reply).toMatchObject({ type: 'ack', data: { channel: session, offset: 2 } });
      // No `type`: the event type is `message`.
      expect(await sub.nextType('message')).toMatchObject({ channel: session, data: { text: 'hi' } });
      await pub.close();
      await sub.close();
    });

    it('a repeated request id is an idempotent publish: same publication, duplicate: true', async () => {
      const pub = await connectPrp(gw);
      const agent = uniqueChannel('agent');
      const first = await req(pub, 'idem_1', 'publish', { channel: agent, type: 'agent.progress', data: { n: 1 } });
      const again = await req(pub, 'idem_1', 'publish', { channel: agent, type: 'agent.progress', data: { n: 1 } });
      expect(again.reply.data).toMatchObject({ id: first.reply.data.id, offset: first.reply.data.offset, duplicate: true });
      await pub.close();
    });

    it('refuses namespaces without client publishing, ungranted channels, invalid names and reserved types', async () => {
      const pub = await connectPrp(gw, { token: await signHmac(claims({ channels: ['project:*', 'agent:agent_001'] })) });
      const cases: [Record<string, unknown>, string][] = [
        [{ channel: 'project:proj_1', type: 'prp.created', data: {} }, ErrorCode.PERMISSION_DENIED],
        [{ channel: 'prp:prp_1', type: 'prp.created', data: {} }, ErrorCode.PERMISSION_DENIED],
        [{ channel: 'user:usr_1', type: 'x', data: {} }, ErrorCode.PERMISSION_DENIED],
        [{ channel: 'metrics', type: 'x', data: {} }, ErrorCode.PERMISSION_DENIED],
        [{ channel: 'agent:agent_002', type: 'agent.progress', data: {} }, ErrorCode.PERMISSION_DENIED],
        [{ channel: 'agent:*', type: 'agent.progress', data: {} }, ErrorCode.INVALID_CHANNEL],
        [{ channel: 'nope:x', type: 'agent.progress', data: {} }, ErrorCode.INVALID_CHANNEL],
        [{ channel: 'agent:agent_001', type: 'heartbeat', data: {} }, ErrorCode.INVALID_MESSAGE],
        [{ channel: 'agent:agent_001', type: 'connection.established', data: {} }, ErrorCode.INVALID_MESSAGE],
        [{ channel: 'agent:agent_001', type: '1bad', data: {} }, ErrorCode.INVALID_MESSAGE],
      ];
      for (const [i, [payload, code]] of cases.entries()) {
        const { reply } = await req(pub, `bad_${i}`, 'publish', payload);
        expect(reply.type, JSON.stringify(payload)).toBe('error');
        expect(reply.data).toMatchObject({ code, details: { requestId: `bad_${i}`, action: 'publish', channel: payload.channel } });
      }
      // Still connected and working.
      expect((await pub.request('publish', { channel: 'agent:agent_001', type: 'agent.progress', data: {} })).type).toBe('ack');
      await pub.close();
    });
  });

  describe('history and presence', () => {
    it('history returns the channel publications; a position from another epoch is UNRECOVERABLE_POSITION', async () => {
      const client = await connectPrp(gw);
      const channel = uniqueChannel('project');
      for (let i = 1; i <= 3; i++) await gw.publish({ channel, type: 'prp.updated', data: { i } });
      const { reply } = await req(client, 'h1', 'history', { channel });
      expect(reply.type).toBe('history');
      expect(reply.data.channel).toBe(channel);
      expect(reply.data.publications.map((p: Msg) => p.data.i)).toEqual([1, 2, 3]);
      expect(reply.data.position.offset).toBe(3);
      const since = await req(client, 'h2', 'history', { channel, since: { epoch: reply.data.position.epoch, offset: 1 } });
      expect(since.reply.data.publications.map((p: Msg) => p.offset)).toEqual([2, 3]);
      const stale = await req(client, 'h3', 'history', { channel, since: { epoch: 'another-epoch', offset: 1 } });
      expect(stale.reply.data).toMatchObject({ code: ErrorCode.UNRECOVERABLE_POSITION, details: { requestId: 'h3', action: 'history', channel, reason: 'epoch_changed' } });
      await client.close();
    });

    it('history and presence need read access; presence on a namespace without presence is PERMISSION_DENIED', async () => {
      const client = await connectPrp(gw, { token: await signHmac(claims({ channels: ['agent:*'] })) });
      const h = await req(client, 'h4', 'history', { channel: 'project:secret' });
      expect(h.reply.data).toMatchObject({ code: ErrorCode.PERMISSION_DENIED, details: { requestId: 'h4', action: 'history' } });
      const p = await req(client, 'p1', 'presence', { channel: 'agent:agent_001' });
      expect(p.reply.data).toMatchObject({ code: ErrorCode.PERMISSION_DENIED, details: { requestId: 'p1', action: 'presence' } });
      const q = await req(client, 'p2', 'presence', { channel: 'nope:x' });
      expect(q.reply.data).toMatchObject({ code: ErrorCode.INVALID_CHANNEL, details: { requestId: 'p2', action: 'presence' } });
      await client.close();
    });
  });

  describe('ping and refresh', () => {
    it('ping is answered by pong naming the request; a ping without id gets a pong too', async () => {
      const client = await connectPrp(gw);
      const { reply } = await req(client, 'client_msg_003', 'ping');
      expect(reply).toMatchObject({ type: 'pong', replyTo: 'client_msg_003' });
      const from = client.messages.length;
      client.send({ action: 'ping' });
      const bare = await client.next((m) => m.type === 'pong', 5000, from);
      expect(bare.replyTo).toBeUndefined();
      // A numeric id is accepted and echoed as a string.
      client.send({ id: 42, action: 'ping' });
      expect(await client.next((m) => m.replyTo === '42')).toMatchObject({ type: 'pong' });
      await client.close();
    });

    it('refresh with a new token for the same sub keeps the connection', async () => {
      const client = await connectPrp(gw, { token: await signHmac(claims({ exp: Math.floor(Date.now() / 1000) + 60 })) });
      const channel = uniqueChannel('project');
      await client.request('subscribe', { channels: [channel] });
      const newExp = Math.floor(Date.now() / 1000) + 7200;
      const { reply } = await req(client, 'r1', 'refresh', { token: await signHmac(claims({ exp: newExp })) });
      expect(reply).toMatchObject({ type: 'token.refreshed', replyTo: 'r1', data: { expiresAt: new Date(newExp * 1000).toISOString() } });
      // Same connection, subscriptions intact.
      await gw.publish({ channel, type: 'prp.created', data: {} });
      await client.nextType('prp.created');
      await client.close();
    });

    it('refuses a refresh for another sub, an expired or invalid token, and keeps the connection', async () => {
      const client = await connectPrp(gw);
      const other = await req(client, 'r2', 'refresh', { token: await signHmac(claims({ sub: 'usr_other' })) });
      expect(other.reply.data).toMatchObject({ code: ErrorCode.AUTH_FAILED, details: { requestId: 'r2', action: 'refresh' } });
      const expired = await req(client, 'r3', 'refresh', { token: await signHmac(claims({ iat: 1, exp: 2 })) });
      expect(expired.reply.data).toMatchObject({ code: ErrorCode.TOKEN_EXPIRED, details: { requestId: 'r3', action: 'refresh' } });
      const garbage = await req(client, 'r4', 'refresh', { token: 'garbage' });
      expect(garbage.reply.data).toMatchObject({ code: ErrorCode.AUTH_FAILED, details: { requestId: 'r4', action: 'refresh' } });
      const wrongSig = await req(client, 'r5', 'refresh', { token: await signHmac(claims(), { secret: 'not-the-secret-0123456789' }) });
      expect(wrongSig.reply.data).toMatchObject({ code: ErrorCode.AUTH_FAILED });
      expect((await client.request('ping')).type).toBe('pong');
      await client.close();
    });

    it('a refresh that narrows the grants removes the subscriptions no longer granted', async () => {
      const client = await connectPrp(gw, { token: await signHmac(claims({ channels: ['project:*'] })) });
      const keep = 'project:keep_1';
      const lose = 'project:lose_1';
      await client.request('subscribe', { channels: [keep, lose] });
      const { reply } = await req(client, 'r6', 'refresh', { token: await signHmac(claims({ channels: [keep] })) });
      expect(reply.type).toBe('token.refreshed');
      const removed = client.messages.filter((m) => m.type === 'subscription.removed');
      expect(removed).toHaveLength(1);
      expect(removed[0]).toMatchObject({ channel: lose, data: { channel: lose, code: ErrorCode.PERMISSION_DENIED } });
      await client.close();
    });
  });
});

describe('subscribing again to a held channel', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  it('is confirmed quietly and counted once (metric, stats, deliveries)', async () => {
    const client = await connectPrp(gw);
    const channel = uniqueChannel('project');
    const first = await req(client, 'd1', 'subscribe', { channels: [channel] });
    expect(first.reply.data.subscribedChannels).toEqual([channel]);
    const again = await req(client, 'd2', 'subscribe', { channels: [channel, channel] });
    expect(again.errors).toEqual([]);
    expect(again.reply.data.subscribedChannels).toEqual([channel]);
    expect(again.reply.data.channels[0].position).toEqual(first.reply.data.channels[0].position);
    const metrics = await scrapeMetrics(gw);
    expect(metricValue(metrics, 'signalbox_subscriptions', { namespace: 'project' })).toBe(1);
    const stats = await http(gw, '/v1/stats');
    expect(stats.body).toMatchObject({ connections: 1, channels: 1, subscriptions: 1 });
    await gw.publish({ channel, type: 'prp.created', data: {} });
    await client.nextType('prp.created');
    // Absence: the publication is delivered once, not once per subscribe (bounded wait).
    await quietPeriod(client, 150);
    expect(client.messages.filter((m) => m.type === 'prp.created')).toHaveLength(1);
    await client.close();
    // Once the node has seen the close, nothing is left counted.
    await until(async () => (await http(gw, '/v1/stats')).body.connections === 0, { label: 'the node to count 0 connections', timeoutMs: 10_000 });
    expect((await http(gw, '/v1/stats')).body).toMatchObject({ connections: 0, channels: 0, subscriptions: 0 });
    expect(metricValue(await scrapeMetrics(gw), 'signalbox_subscriptions', { namespace: 'project' })).toBe(0);
  });
});
