/**
 * Stream positions and subscription bookkeeping, driven synchronously through the in-memory socket:
 * deduplication, gaps and epoch changes, `since`, servers that do not echo request ids, removal by
 * the server, and handlers that throw.
 */
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { SignalboxClient, type PublicationMessage, type SignalboxError, type StateChange } from '../src/index.js';
import type { PrpEventData } from '../src/prp.js';
import { FakeSocket, FakeWebSocket } from './helpers/fake-socket.js';

function setup() {
  const client = new SignalboxClient<PrpEventData>({ url: 'ws://gw.test/v1/ws/prps', token: 't', WebSocket: FakeWebSocket, pingInterval: 0 });
  const errors: SignalboxError[] = [];
  const states: StateChange[] = [];
  client.on('error', (e) => { errors.push(e); });
  client.on('$state', (c) => { states.push(c); });
  void client.connect();
  FakeSocket.last.establish();
  return { client, errors, states, socket: FakeSocket.last };
}

function confirm(socket: FakeSocket, channel: string, position: { epoch: string; offset: number }, extra: Record<string, unknown> = {}) {
  const req = socket.frames('subscribe').at(-1)!;
  socket.receive({ id: 'c', type: 'subscription.confirmed', timestamp: '', replyTo: req.id, data: { subscribedChannels: [channel], channels: [{ channel, position, ...extra }] } });
}

function pub(socket: FakeSocket, channel: string, epoch: string, offset: number) {
  socket.receive({ id: `p${offset}`, type: 'message', timestamp: '', channel, epoch, offset, data: { offset } });
}

beforeEach(() => {
  vi.useRealTimers();
  FakeSocket.reset();
});

describe('stream position', () => {
  it('drops publications at or before the last offset seen', () => {
    const { client, socket } = setup();
    const sub = client.subscribe('agent:a');
    const seen: number[] = [];
    sub.on('publication', (m) => { seen.push(m.offset); });
    confirm(socket, 'agent:a', { epoch: 'e', offset: 2 });
    for (const o of [1, 2, 3, 3, 4, 2]) pub(socket, 'agent:a', 'e', o);
    expect(seen).toEqual([3, 4]);
    expect(sub.position).toEqual({ epoch: 'e', offset: 4 });
    client.disconnect();
  });

  it('treats an epoch change mid-stream as a gap: reconnect, and let the resubscribe report it', () => {
    const { client, socket, states } = setup();
    const sub = client.subscribe('agent:a');
    const seen: number[] = [];
    sub.on('publication', (m) => { seen.push(m.offset); });
    confirm(socket, 'agent:a', { epoch: 'e1', offset: 0 });
    pub(socket, 'agent:a', 'e1', 1);
    pub(socket, 'agent:a', 'e2', 1);
    expect(seen).toEqual([1]);
    expect(states.at(-1)).toMatchObject({ to: 'reconnecting', reason: 'insufficient_state' });
    client.disconnect();
  });

  it('on a latest-wins channel (delivery: latest) a skipped offset is a superseded value: delivered, no reconnect; older ones still dropped', () => {
    const { client, socket, states } = setup();
    const sub = client.subscribe('metrics');
    const seen: number[] = [];
    sub.on('publication', (m) => { seen.push(m.offset); });
    confirm(socket, 'metrics', { epoch: 'e', offset: 10 }, { delivery: 'latest' });
    for (const o of [11, 15, 14, 40]) pub(socket, 'metrics', 'e', o);
    expect(seen).toEqual([11, 15, 40]);
    expect(states.filter((s) => s.to === 'reconnecting')).toEqual([]);
    // The same skip on an ordinary channel is a hole: the client reconnects to recover it.
    const other = client.subscribe('agent:a');
    other.on('publication', () => {});
    confirm(socket, 'agent:a', { epoch: 'e', offset: 0 });
    pub(socket, 'agent:a', 'e', 2);
    expect(states.at(-1)).toMatchObject({ to: 'reconnecting', reason: 'insufficient_state' });
    client.disconnect();
  });

  it('subscribe(channel, { since }) resumes from a persisted position', () => {
    const { client, socket } = setup();
    client.subscribe('project:p', { since: { epoch: 'e', offset: 41 } });
    expect(socket.frames('subscribe').at(-1)!.payload).toEqual({ channels: [{ channel: 'project:p', since: { epoch: 'e', offset: 41 } }] });
    client.disconnect();
  });

  it('matches a confirmation without replyTo (the PRP document\'s own server) by channel', () => {
    const { client, socket } = setup();
    const [a, b] = client.subscribe(['x:1', 'x:2']);
    socket.receive({ id: 'c', type: 'subscription.confirmed', timestamp: '', data: { subscribedChannels: ['x:1', 'x:2'] } });
    expect(a!.state).toBe('subscribed');
    expect(b!.state).toBe('subscribed');
    // Without positions, events are delivered as they come (nothing to compare them with).
    const seen: string[] = [];
    client.on('prp.created', (m) => { seen.push(m.data.id); });
    socket.receive({ id: 'm1', type: 'prp.created', timestamp: '', data: { id: 'prp_1' } });
    expect(seen).toEqual(['prp_1']);
    client.disconnect();
  });

  it('a subscription removed by the server ends with removed_by_server and is not resubscribed', () => {
    const { client, socket } = setup();
    const sub = client.subscribe('agent:a');
    confirm(socket, 'agent:a', { epoch: 'e', offset: 0 });
    const ended: unknown[] = [];
    sub.on('unsubscribed', (e) => { ended.push(e); });
    socket.receive({ id: 'r', type: 'subscription.removed', timestamp: '', channel: 'agent:a', data: { channel: 'agent:a', code: 'PERMISSION_DENIED', message: 'revoked' } });
    expect(ended).toEqual([{ channel: 'agent:a', reason: 'removed_by_server', code: 'PERMISSION_DENIED', message: 'revoked' }]);
    expect(client.getSubscription('agent:a')).toBeUndefined();
    client.disconnect();
  });

  it('an UNRECOVERABLE_POSITION refusal forgets the position, reports recovery_failed and subscribes afresh', () => {
    const { client, socket } = setup();
    const sub = client.subscribe('agent:a', { since: { epoch: 'old', offset: 9 } });
    const failed: unknown[] = [];
    sub.on('recovery_failed', (e) => { failed.push(e); });
    const req = socket.frames('subscribe').at(-1)!;
    vi.useFakeTimers();
    socket.receive({ id: 'e', type: 'error', timestamp: '', replyTo: req.id, data: { code: 'UNRECOVERABLE_POSITION', message: 'gone', details: { channel: 'agent:a', reason: 'history_expired' } } });
    expect(failed).toEqual([{ channel: 'agent:a', reason: 'history_expired', position: undefined }]);
    vi.runOnlyPendingTimers();
    expect(socket.frames('subscribe').at(-1)!.payload).toEqual({ channels: ['agent:a'] });
    client.disconnect();
    vi.useRealTimers();
  });
});

describe('refusals', () => {
  it('a transient refusal (UNAVAILABLE) keeps the subscription and retries it with backoff', () => {
    vi.useFakeTimers();
    const { client, socket } = setup();
    const [ok, flaky] = client.subscribe(['agent:a', 'agent:b']);
    const req = socket.frames('subscribe').at(-1)!;
    const errors: string[] = [];
    flaky!.on('error', (e) => { errors.push(e.code); });
    socket.receive({ id: 'e', type: 'error', timestamp: '', replyTo: req.id, data: { code: 'UNAVAILABLE', message: 'broker down', details: { channel: 'agent:b' } } });
    socket.receive({ id: 'c', type: 'subscription.confirmed', timestamp: '', replyTo: req.id, data: { subscribedChannels: ['agent:a'], channels: [{ channel: 'agent:a', position: { epoch: 'e', offset: 0 } }] } });
    expect(ok!.state).toBe('subscribed');
    expect(flaky!.state).toBe('subscribing');
    expect(errors).toEqual(['UNAVAILABLE']);
    vi.advanceTimersByTime(1000); // at most 2 x reconnectInterval (500) for the first retry
    expect(socket.frames('subscribe').at(-1)!.payload).toEqual({ channels: ['agent:b'] });
    client.disconnect();
    expect(vi.getTimerCount()).toBe(0);
    vi.useRealTimers();
  });

  it('an error for the whole request (no channel named) refuses each of its channels', () => {
    const { client, socket } = setup();
    const subs = client.subscribe(['agent:a', 'agent:b']);
    const req = socket.frames('subscribe').at(-1)!;
    socket.receive({ id: 'e', type: 'error', timestamp: '', replyTo: req.id, data: { code: 'SUBSCRIPTION_LIMIT', message: 'too many', details: {} } });
    expect(subs.map((s) => s.state)).toEqual(['unsubscribed', 'unsubscribed']);
    expect(client.subscriptions()).toEqual([]);
    client.disconnect();
  });
});

describe('handlers', () => {
  it('a throwing handler is reported as HANDLER_ERROR and does not stop the others', () => {
    const { client, socket, errors } = setup();
    const sub = client.subscribe('agent:a');
    confirm(socket, 'agent:a', { epoch: 'e', offset: 0 });
    const seen: number[] = [];
    sub.on('publication', () => { throw new Error('boom'); });
    client.on('message', (m) => { seen.push((m as PublicationMessage).offset); });
    pub(socket, 'agent:a', 'e', 1);
    expect(seen).toEqual([1]);
    expect(errors.map((e) => e.code)).toEqual(['HANDLER_ERROR']);
    expect((errors[0]!.cause as Error).message).toBe('boom');
    client.disconnect();
  });

  it('off() removes a handler; the server cannot impersonate $state', () => {
    const { client, socket, states } = setup();
    const got: string[] = [];
    const h = (m: { type: string }) => { got.push(m.type); };
    client.on('*', h);
    socket.receive({ id: 'x', type: '$state', timestamp: '', data: {} });
    client.off('*', h);
    socket.receive({ id: 'y', type: 'heartbeat', timestamp: '', data: {} });
    expect(got).toEqual(['$state']);
    expect(states.map((c) => c.to)).toEqual(['connecting', 'connected']);
    client.disconnect();
  });
});
