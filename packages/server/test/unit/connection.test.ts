/**
 * One Connection's state machine with no socket: a FakeTransport records what it sends; the
 * broker, hub and channel operations are the real in-memory ones. Each transition in
 * milliseconds: authenticating -> open (frames received meanwhile processed in order), refused
 * tokens, the pre-auth frame cap, the command order, the outbound limit for every frame, token
 * expiry and refresh, heartbeat liveness, and closing (subscriptions and presence released once).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CloseCode, ErrorCode } from '@signalbox/protocol';
import { unitNode, type UnitNode } from '../helpers/fake-transport.js';

let node: UnitNode;
beforeEach(async () => {
  node = await unitNode({ outboundBufferBytes: 64 * 1024, slowConsumerGraceMs: 1000, heartbeatIntervalMs: 1000, tokenExpiryGraceMs: 500 });
});
afterEach(async () => {
  vi.useRealTimers();
  await node.close();
});

const frame = (msg: unknown) => Buffer.from(JSON.stringify(msg));

describe('authenticating -> open', () => {
  it('frames that arrive before the token is verified wait, then run in order after connection.established', async () => {
    const { conn, t } = node.connect(await node.token());
    conn.onFrame(frame({ id: 'a', action: 'ping' }), false);
    conn.onFrame(frame({ id: 'b', action: 'subscribe', payload: { channels: ['project:p1'] } }), false);
    conn.onFrame(frame({ id: 'c', action: 'ping' }), false);
    expect(t.sent).toEqual([]);
    await vi.waitFor(() => expect(t.of('pong')).toHaveLength(2));
    expect(t.sent[0]!.type).toBe('connection.established');
    expect(t.sent.map((m) => m.replyTo ?? m.type)).toEqual(['connection.established', 'a', 'b', 'c']);
    expect(conn.isOpen).toBe(true);
  });

  it('no token: AUTH_FAILED, then close 4001; nothing it sent is processed', async () => {
    const { conn, t } = node.connect(null);
    conn.onFrame(frame({ id: 'a', action: 'ping' }), false);
    expect(t.of('error')[0]!.data.code).toBe(ErrorCode.AUTH_FAILED);
    expect(t.closes).toEqual([{ code: CloseCode.AUTH_FAILED, reason: 'auth failed' }]);
    expect(t.of('pong')).toEqual([]);
  });

  it('a badly signed token: close 4001; an expired one: TOKEN_EXPIRED and close 4002', async () => {
    const bad = node.connect(`${(await node.token()).slice(0, -4)}AAAA`);
    await vi.waitFor(() => expect(bad.t.closes).toEqual([{ code: CloseCode.AUTH_FAILED, reason: 'auth failed' }]));
    const expired = node.connect(await node.token({ ttlSeconds: -10 }));
    await vi.waitFor(() => expect(expired.t.closes.map((c) => c.code)).toEqual([CloseCode.TOKEN_EXPIRED]));
    expect(expired.t.of('error')[0]!.data.code).toBe(ErrorCode.TOKEN_EXPIRED);
  });

  it('more than 64 frames before the token is verified: close 4008', async () => {
    const { conn, t } = node.connect(await node.token());
    for (let i = 0; i < 65; i++) conn.onFrame(frame({ id: `p${i}`, action: 'ping' }), false);
    expect(t.closes.map((c) => c.code)).toEqual([CloseCode.PROTOCOL_VIOLATION]);
  });
});

describe('open', () => {
  async function open(token?: string) {
    const c = node.connect(token ?? (await node.token()));
    await vi.waitFor(() => expect(c.conn.isOpen).toBe(true));
    return c;
  }

  it('replies follow request order; a publish is acked, then delivered to the subscriber through the hub', async () => {
    const { conn, t } = await open();
    conn.onFrame(frame({ id: 's', action: 'subscribe', payload: { channels: ['agent:a1'] } }), false);
    conn.onFrame(frame({ id: 'p', action: 'publish', payload: { channel: 'agent:a1', type: 'agent.progress', data: { progress: 45 } } }), false);
    conn.onFrame(frame({ id: 'q', action: 'ping' }), false);
    await vi.waitFor(() => expect(t.of('agent.progress')).toHaveLength(1));
    await vi.waitFor(() => expect(t.of('pong')).toHaveLength(1));
    expect(t.sent.filter((m) => m.replyTo).map((m) => `${m.replyTo}:${m.type}`)).toEqual(['s:subscription.confirmed', 'p:ack', 'q:pong']);
    expect(t.of('agent.progress')[0]).toMatchObject({ channel: 'agent:a1', offset: 1, data: { progress: 45 } });
    expect(node.hub.subscriberCount('agent:a1')).toBe(1);
  });

  it('an error names the request and the connection goes on', async () => {
    const { conn, t } = await open();
    conn.onFrame(frame({ id: 'x', action: 'subscribe', payload: { channels: ['nope:1'] } }), false);
    conn.onFrame(frame({ id: 'y', action: 'ping' }), false);
    await vi.waitFor(() => expect(t.of('pong')).toHaveLength(1));
    expect(t.of('error')[0]!.data).toMatchObject({ code: ErrorCode.INVALID_CHANNEL, details: { requestId: 'x', action: 'subscribe', channel: 'nope:1' } });
    expect(t.closes).toEqual([]);
  });

  it('any frame over 4x the outbound buffer closes it as a slow consumer (4010), a reply as much as a delivery', async () => {
    const { conn, t } = await open();
    t.backlog = 4 * 64 * 1024 + 1;
    conn.onFrame(frame({ id: 'h', action: 'history', payload: { channel: 'project:p1' } }), false);
    await vi.waitFor(() => expect(t.closes.map((c) => c.code)).toEqual([CloseCode.SLOW_CONSUMER]));
    expect(t.of('history')).toEqual([]);
  });

  it('above the buffer but under 4x: tolerated for the grace period, then 4010 if it stays there', async () => {
    const { conn, t } = await open();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    t.backlog = 64 * 1024 + 1;
    conn.onFrame(frame({ id: 'q1', action: 'ping' }), false);
    expect(t.of('pong')).toHaveLength(1);
    expect(t.closes).toEqual([]);
    vi.advanceTimersByTime(1002);
    expect(t.closes.map((c) => c.code)).toEqual([CloseCode.SLOW_CONSUMER]);
  });

  it('back under the buffer within the grace period: kept', async () => {
    const { conn, t } = await open();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    t.backlog = 64 * 1024 + 1;
    conn.onFrame(frame({ id: 'q1', action: 'ping' }), false);
    t.backlog = 0;
    vi.advanceTimersByTime(1002);
    expect(t.closes).toEqual([]);
  });

  it('heartbeat: a ping per tick; no pong since the last tick terminates it, a pong keeps it', async () => {
    const { conn, t } = await open();
    const beat = Buffer.concat([Buffer.from([0x89, 0x00]), Buffer.from([0x81, 0x02]), Buffer.from('{}')]);
    conn.heartbeat(beat);
    expect(t.pings).toBe(1);
    conn.onPong();
    conn.heartbeat(beat);
    expect(t.terminated).toBe(false);
    // Traffic of its own is no answer.
    conn.onFrame(frame({ id: 'q', action: 'ping' }), false);
    conn.heartbeat(beat);
    expect(t.terminated).toBe(true);
  });

  it('token expiry: token_expired, then close 4002 after the grace period unless refreshed', async () => {
    // exp is in whole seconds: a 1 s token may have only a few ms left, less than opening takes on a loaded machine.
    const { conn, t } = await open(await node.token({ ttlSeconds: 2 }));
    await vi.waitFor(() => expect(t.of('token_expired')).toHaveLength(1), { timeout: 4000 });
    expect(t.of('token_expired')[0]!.data.graceMs).toBe(500);
    await vi.waitFor(() => expect(t.closes.map((c) => c.code)).toEqual([CloseCode.TOKEN_EXPIRED]), { timeout: 4000 });
    expect(conn.isOpen).toBe(false);
  });

  it('a refresh within the grace period keeps the connection and drops channels the new token does not grant', async () => {
    const { conn, t } = await open(await node.token({ ttlSeconds: 2, channels: ['project:*'] }));
    conn.onFrame(frame({ id: 's', action: 'subscribe', payload: { channels: ['project:p1', 'project:p2'] } }), false);
    await vi.waitFor(() => expect(t.of('subscription.confirmed')).toHaveLength(1));
    await vi.waitFor(() => expect(t.of('token_expired')).toHaveLength(1), { timeout: 4000 });
    conn.onFrame(frame({ id: 'r', action: 'refresh', payload: { token: await node.token({ channels: ['project:p1'] }) } }), false);
    await vi.waitFor(() => expect(t.sent.some((m) => m.replyTo === 'r')).toBe(true));
    expect(t.sent.find((m) => m.replyTo === 'r')!.type).not.toBe('error');
    expect(t.of('subscription.removed').map((m) => m.data.channel)).toEqual(['project:p2']);
    await new Promise((r) => setTimeout(r, 600)); // past the old grace period: the refreshed token holds
    expect(t.closes).toEqual([]);
    expect(node.hub.subscriberCount('project:p1')).toBe(1);
    expect(node.hub.subscriberCount('project:p2')).toBe(0);
  });

  it('a refresh for another subject is refused and changes nothing', async () => {
    const { conn, t } = await open();
    conn.onFrame(frame({ id: 'r', action: 'refresh', payload: { token: await node.token({ sub: 'usr_other' }) } }), false);
    await vi.waitFor(() => expect(t.of('error')).toHaveLength(1));
    expect(t.of('error')[0]!.data).toMatchObject({ code: ErrorCode.AUTH_FAILED, details: { requestId: 'r' } });
    expect(conn.subject).toBe('usr_1');
  });
});

describe('closing', () => {
  it('close releases every subscription and presence membership once, and reports the connection gone once', async () => {
    const { conn, t } = node.connect(await node.token({ sub: 'alice' }));
    await vi.waitFor(() => expect(conn.isOpen).toBe(true));
    conn.onFrame(frame({ id: 's', action: 'subscribe', payload: { channels: ['room:r1', 'project:p1'] } }), false);
    await vi.waitFor(() => expect(t.of('presence.joined')).toHaveLength(1));
    const watcher = node.connect(await node.token({ sub: 'bob' }));
    await vi.waitFor(() => expect(watcher.conn.isOpen).toBe(true));
    watcher.conn.onFrame(frame({ id: 'w', action: 'subscribe', payload: { channels: ['room:r1'] } }), false);
    await vi.waitFor(() => expect(watcher.t.of('subscription.confirmed')).toHaveLength(1));
    conn.close(CloseCode.NORMAL, 'bye');
    expect(t.closes).toEqual([{ code: CloseCode.NORMAL, reason: 'bye' }]);
    expect(node.hub.subscriberCount('project:p1')).toBe(0);
    expect(node.hub.subscriberCount('room:r1')).toBe(1);
    await vi.waitFor(() => expect(watcher.t.of('presence.left').map((m) => m.data.member.userId)).toEqual(['alice']));
    // Closing twice, and the socket's own close after it, change nothing more.
    conn.close(CloseCode.NORMAL, 'again');
    conn.onTransportClosed(1000);
    conn.onTransportClosed(1000);
    expect(t.closes).toHaveLength(1);
    expect(node.closed).toEqual([conn]);
    // Frames after the close are ignored.
    conn.onFrame(frame({ id: 'late', action: 'ping' }), false);
    expect(t.sent.some((m) => m.replyTo === 'late')).toBe(false);
  });
});
