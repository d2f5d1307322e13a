/**
 * Timing behaviour, with vitest's fake timers and an in-memory socket: backoff bounds, unlimited
 * reconnects, no leaks after disconnect(), token refresh before exp, the heartbeat watchdog, the
 * bounded offline queue.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CLOSE_CODE_DESCRIPTIONS } from '@signalbox/protocol';
import { backoffBounds, backoffDelay, closePolicy, SignalboxClient, type SignalboxClientOptions, type StateChange } from '../src/index.js';
import { FakeSocket, FakeWebSocket } from './helpers/fake-socket.js';
import { fakeJwt } from './helpers/jwt.js';

function makeClient(options: SignalboxClientOptions = {}) {
  const client = new SignalboxClient({ url: 'ws://gw.test/v1/ws/prps', token: 't0', WebSocket: FakeWebSocket, ...options });
  const states: StateChange[] = [];
  client.on('$state', (c) => { states.push(c); });
  // Transport errors are expected in these tests; keep them out of the console.
  client.on('error', () => {});
  return { client, states };
}

beforeEach(() => {
  vi.useFakeTimers();
  FakeSocket.reset();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('backoff', () => {
  it('draws each delay within [min, min(max, min * 2^(n+1))]', () => {
    for (let n = 0; n < 40; n++) {
      const { lower, upper } = backoffBounds(n, 500, 20_000);
      expect(lower).toBe(500);
      expect(upper).toBe(Math.min(20_000, 500 * 2 ** (n + 1)));
      expect(backoffDelay(n, 500, 20_000, () => 0)).toBe(lower);
      expect(backoffDelay(n, 500, 20_000, () => 0.999_999)).toBe(upper);
      for (let i = 0; i < 50; i++) {
        const d = backoffDelay(n, 500, 20_000);
        expect(d).toBeGreaterThanOrEqual(lower);
        expect(d).toBeLessThanOrEqual(upper);
      }
    }
  });

  it('spreads delays (jitter): not every client waits the same', () => {
    const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(3, 500, 20_000)));
    expect(delays.size).toBeGreaterThan(10);
  });

  it('the client waits a jittered delay within bounds before each reconnect, and keeps going past 5 attempts', () => {
    const { client, states } = makeClient({ reconnectInterval: 100, maxReconnectInterval: 5000 });
    void client.connect();
    for (let attempt = 1; attempt <= 12; attempt++) {
      const socket = FakeSocket.last;
      socket.serverClose(1006);
      const change = states[states.length - 1]!;
      expect(change).toMatchObject({ to: 'reconnecting', reason: 'transport_closed', code: 1006, attempt });
      const { lower, upper } = backoffBounds(attempt - 1, 100, 5000);
      expect(change.delay).toBeGreaterThanOrEqual(lower);
      expect(change.delay).toBeLessThanOrEqual(upper);
      // Not a millisecond early...
      vi.advanceTimersByTime(change.delay! - 1);
      expect(FakeSocket.instances.length).toBe(attempt);
      // ...and then the next socket.
      vi.advanceTimersByTime(1);
      expect(FakeSocket.instances.length).toBe(attempt + 1);
    }
    expect(client.state).toBe('reconnecting');
    expect(client.reconnectAttempts).toBe(12);
    client.disconnect();
  });

  it('connect() while reconnecting skips the rest of the backoff wait', () => {
    const { client } = makeClient({ reconnectInterval: 10_000, maxReconnectInterval: 10_000 });
    void client.connect();
    FakeSocket.last.serverClose(1006);
    expect(FakeSocket.instances.length).toBe(1);
    void client.connect();
    expect(FakeSocket.instances.length).toBe(2);
    expect(vi.getTimerCount()).toBe(1); // the new attempt's connect timeout only
    client.disconnect();
  });

  it('gives up after maxReconnectAttempts when one is set (the reference example sets 10)', async () => {
    const { client, states } = makeClient({ maxReconnectAttempts: 10, reconnectInterval: 10, maxReconnectInterval: 20 });
    const connected = client.connect();
    for (let i = 0; i < 11; i++) {
      FakeSocket.last.serverClose(1006);
      await vi.advanceTimersByTimeAsync(20);
    }
    expect(FakeSocket.instances.length).toBe(11);
    expect(client.state).toBe('closed');
    expect(states[states.length - 1]).toMatchObject({ to: 'closed', reason: 'max_attempts' });
    await expect(connected).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('resets the attempt counter only after the connection stayed up for stableConnectionAfter', () => {
    const { client, states } = makeClient({ reconnectInterval: 100, maxReconnectInterval: 100_000, stableConnectionAfter: 5000 });
    void client.connect();
    FakeSocket.last.establish();
    // Accepted, then dropped at once, three times: a crash loop must keep backing off.
    for (let i = 1; i <= 3; i++) {
      vi.advanceTimersByTime(1000);
      FakeSocket.last.serverClose(1011);
      expect(states[states.length - 1]).toMatchObject({ to: 'reconnecting', attempt: i });
      vi.advanceTimersByTime(states[states.length - 1]!.delay!);
      FakeSocket.last.establish();
    }
    vi.advanceTimersByTime(5000);
    expect(client.reconnectAttempts).toBe(0);
    FakeSocket.last.serverClose(1012);
    expect(states[states.length - 1]).toMatchObject({ to: 'reconnecting', attempt: 1, code: 1012 });
    client.disconnect();
  });
});

describe('close codes', () => {
  it('decide every documented code the way the catalog says', () => {
    const byCatalog = { yes: 'reconnect', no: 'stop', 'after-refresh': 'new-token' } as const;
    for (const [code, { reconnect }] of Object.entries(CLOSE_CODE_DESCRIPTIONS)) {
      // 4001 is "no" for the same token; the client still reconnects if getToken yields a different one.
      const expected = code === '4001' ? 'new-token' : byCatalog[reconnect];
      expect(closePolicy(Number(code)), `close code ${code}`).toBe(expected);
    }
    expect(closePolicy(1006)).toBe('reconnect');
    expect(closePolicy(4999)).toBe('reconnect');
  });

  it('4001 stops (closed) when no other token is available', async () => {
    const { client, states } = makeClient();
    const connected = client.connect();
    FakeSocket.last.open();
    FakeSocket.last.receive({ id: 'e', type: 'error', timestamp: '', data: { code: 'AUTH_FAILED', message: 'bad token', details: {} } });
    FakeSocket.last.serverClose(4001, 'auth failed');
    expect(client.state).toBe('closed');
    expect(states[states.length - 1]).toMatchObject({ to: 'closed', reason: 'auth_failed', code: 4001 });
    await expect(connected).rejects.toMatchObject({ code: 'CLOSED' });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('4001 reconnects when getToken supplies a different token, and stops when it returns the same', async () => {
    const tokens = ['a', 'b', 'b'];
    const reasons: string[] = [];
    const { client } = makeClient({ getToken: ({ reason }) => { reasons.push(reason); return tokens.shift()!; }, tokenTransport: 'query' });
    void client.connect();
    expect(FakeSocket.last.url).toContain('token=a');
    FakeSocket.last.serverClose(4001);
    expect(client.state).toBe('reconnecting');
    await vi.runOnlyPendingTimersAsync();
    expect(FakeSocket.last.url).toContain('token=b');
    FakeSocket.last.serverClose(4001);
    await vi.runOnlyPendingTimersAsync();
    expect(client.state).toBe('closed');
    expect(reasons).toEqual(['connect', 'auth_failed', 'auth_failed']);
    expect(FakeSocket.instances.length).toBe(2);
  });

  it('4002 gets a new token and reconnects', async () => {
    let n = 0;
    const { client } = makeClient({ getToken: async () => `tok${++n}`, tokenTransport: 'query' });
    void client.connect();
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.last.establish();
    FakeSocket.last.serverClose(4002, 'token expired');
    expect(client.state).toBe('reconnecting');
    await vi.runOnlyPendingTimersAsync();
    expect(FakeSocket.last.url).toContain('token=tok2');
    FakeSocket.last.establish();
    expect(client.state).toBe('connected');
    client.disconnect();
  });

  it('1000 and 4008 stop; 1012, 4010, 4011, 4029 reconnect', () => {
    for (const [code, state] of [[1000, 'closed'], [4008, 'closed'], [1012, 'reconnecting'], [4010, 'reconnecting'], [4011, 'reconnecting'], [4029, 'reconnecting']] as const) {
      const { client } = makeClient();
      void client.connect();
      FakeSocket.last.establish();
      FakeSocket.last.serverClose(code);
      expect(client.state, `code ${code}`).toBe(state);
      client.disconnect();
    }
  });

  it('tries several URLs in turn', () => {
    const { client } = makeClient({ url: ['ws://a.test/v1/ws/prps', 'ws://b.test/v1/ws/prps', 'ws://c.test/v1/ws/prps'], reconnectInterval: 10, maxReconnectInterval: 10 });
    void client.connect();
    for (let i = 0; i < 4; i++) {
      FakeSocket.last.serverClose(1006);
      vi.advanceTimersByTime(10);
    }
    expect(FakeSocket.instances.map((s) => new URL(s.url).host)).toEqual(['a.test', 'b.test', 'c.test', 'a.test', 'b.test']);
    client.disconnect();
  });

  it('connectTimeout covers a getToken() that never answers', async () => {
    let calls = 0;
    const { client, states } = makeClient({ connectTimeout: 2000, getToken: () => { calls++; return new Promise<string>(() => {}); } });
    void client.connect();
    await vi.advanceTimersByTimeAsync(2000);
    expect(states.at(-1)).toMatchObject({ to: 'reconnecting', reason: 'connect_timeout' });
    await vi.advanceTimersByTimeAsync(states.at(-1)!.delay!);
    expect(calls).toBe(2);
    expect(FakeSocket.instances.length).toBe(0);
    client.disconnect();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('abandons an attempt that does not complete within connectTimeout', () => {
    const { client, states } = makeClient({ connectTimeout: 3000 });
    void client.connect();
    FakeSocket.last.open();
    vi.advanceTimersByTime(3000);
    expect(states[states.length - 1]).toMatchObject({ to: 'reconnecting', reason: 'connect_timeout' });
    expect(FakeSocket.instances[0]!.detached).toBe(true);
    client.disconnect();
  });
});

describe('disconnect()', () => {
  it('leaves no timer and no socket listener, whatever was pending', async () => {
    const { client } = makeClient({ getToken: () => fakeJwt({ exp: Math.floor(Date.now() / 1000) + 3600 }) });
    const connected = client.connect();
    FakeSocket.last.establish();
    await connected;
    client.subscribe(['project:p1', 'agent:a1']);
    const published = client.publish('project:p1', { hello: 1 });
    // Heartbeat, stable-connection, token refresh and publish timers are all running now.
    expect(vi.getTimerCount()).toBeGreaterThanOrEqual(4);
    client.disconnect();
    expect(vi.getTimerCount()).toBe(0);
    expect(FakeSocket.last.detached).toBe(true);
    expect(FakeSocket.last.closedByClient).toMatchObject({ code: 1000 });
    await expect(published).rejects.toMatchObject({ code: 'DISCONNECTED' });
    expect(client.state).toBe('disconnected');
  });

  it('cancels a pending reconnect', () => {
    const { client } = makeClient();
    void client.connect();
    FakeSocket.last.serverClose(1006);
    expect(vi.getTimerCount()).toBe(1);
    client.disconnect();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.instances.length).toBe(1);
  });

  it('ignores a getToken that resolves after disconnect()', async () => {
    let release!: (t: string) => void;
    const { client } = makeClient({ getToken: () => new Promise<string>((r) => { release = r; }) });
    const connected = client.connect();
    client.disconnect();
    release('late');
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.instances.length).toBe(0);
    await expect(connected).rejects.toMatchObject({ code: 'DISCONNECTED' });
  });
});

describe('token refresh', () => {
  it('refreshes in-band before exp, and the connection stays up', async () => {
    vi.setSystemTime(new Date('2026-01-01T00:00:00Z'));
    const now = Date.now();
    const first = fakeJwt({ sub: 'u1', exp: Math.floor(now / 1000) + 600 });
    const second = fakeJwt({ sub: 'u1', exp: Math.floor(now / 1000) + 1200 });
    const tokens = [first, second];
    const { client, states } = makeClient({ getToken: () => tokens.shift()!, refreshMargin: 30_000, pingInterval: 0 });
    void client.connect();
    const socket = FakeSocket.last;
    expect(socket.protocols).toEqual(['signalbox.json', `bearer.${first}`]);
    socket.establish();
    vi.advanceTimersByTime(600_000 - 30_000 - 1);
    expect(socket.frames('refresh')).toHaveLength(0);
    vi.advanceTimersByTime(1);
    const [refresh] = socket.frames('refresh');
    expect(refresh).toMatchObject({ action: 'refresh', payload: { token: second } });
    socket.receive({ id: 'r', type: 'token.refreshed', timestamp: '', replyTo: refresh!.id, data: { expiresAt: new Date((now / 1000 + 1200) * 1000).toISOString() } });
    expect(FakeSocket.instances.length).toBe(1);
    expect(client.state).toBe('connected');
    expect(states.filter((s) => s.to !== 'connected' && s.from === 'connected')).toEqual([]);
    client.disconnect();
  });

  it('refreshes at once on the server\'s token_expired event, and still tells the handlers', () => {
    let n = 0;
    const { client } = makeClient({ getToken: () => `tok${++n}`, pingInterval: 0 });
    const expired: unknown[] = [];
    client.on('token_expired', (e) => { expired.push(e); });
    void client.connect();
    FakeSocket.last.establish();
    FakeSocket.last.receive({ id: 'x', type: 'token_expired', timestamp: '', data: { expiredAt: '2026-01-01T00:00:00Z', graceMs: 5000 } });
    expect(FakeSocket.last.frames('refresh')).toEqual([expect.objectContaining({ payload: { token: 'tok2' } })]);
    expect(expired).toEqual([{ expiredAt: '2026-01-01T00:00:00Z', graceMs: 5000 }]);
    client.disconnect();
  });

  it('without getToken, connect() while connected sends config.token as a refresh (the reference example\'s handler)', async () => {
    const { client } = makeClient({ pingInterval: 0 });
    void client.connect();
    FakeSocket.last.establish();
    client.config.token = 'renewed';
    await client.connect();
    expect(FakeSocket.last.frames('refresh')).toEqual([expect.objectContaining({ payload: { token: 'renewed' } })]);
    expect(FakeSocket.instances.length).toBe(1);
    client.disconnect();
  });
});

describe('heartbeat watchdog', () => {
  it('pings after pingInterval of silence and drops a half-open connection after pongTimeout', () => {
    const { client, states } = makeClient({ pingInterval: 30_000, pongTimeout: 10_000 });
    void client.connect();
    const socket = FakeSocket.last;
    socket.establish();
    vi.advanceTimersByTime(29_999);
    expect(socket.frames('ping')).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(socket.frames('ping')).toHaveLength(1);
    vi.advanceTimersByTime(9_999);
    expect(client.state).toBe('connected');
    vi.advanceTimersByTime(1);
    expect(states[states.length - 1]).toMatchObject({ from: 'connected', to: 'reconnecting', reason: 'heartbeat_timeout' });
    expect(socket.detached).toBe(true);
    client.disconnect();
  });

  it('any frame counts as a sign of life: server heartbeats keep it quiet', () => {
    const { client } = makeClient({ pingInterval: 30_000, pongTimeout: 10_000 });
    void client.connect();
    const socket = FakeSocket.last;
    socket.establish();
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(25_000);
      socket.receive({ id: `h${i}`, type: 'heartbeat', timestamp: '', data: { serverTime: '' } });
    }
    expect(socket.frames('ping')).toHaveLength(0);
    expect(client.state).toBe('connected');
    // A pong (any frame) after a ping keeps the connection.
    vi.advanceTimersByTime(30_000);
    const [ping] = socket.frames('ping');
    socket.receive({ id: 'p', type: 'pong', timestamp: '', replyTo: ping!.id });
    vi.advanceTimersByTime(10_000);
    expect(client.state).toBe('connected');
    client.disconnect();
  });
});

describe('offline queue', () => {
  it('rejects the newest publish with QUEUE_FULL when full (reject-new), and flushes the rest in order once connected', async () => {
    const { client } = makeClient({ maxQueueSize: 3, pingInterval: 0 });
    const acks = [client.publish('project:p1', 1), client.publish('project:p1', 2), client.publish('project:p1', 3)];
    await expect(client.publish('project:p1', 4)).rejects.toMatchObject({ code: 'QUEUE_FULL' });
    expect(client.pendingPublishes).toBe(3);
    void client.connect();
    FakeSocket.last.establish();
    // One channel's publishes go out one at a time, in call order: each after the previous one's ack.
    for (let i = 0; i < 3; i++) {
      const frames = FakeSocket.last.frames('publish');
      expect(frames.map((f) => (f.payload as { data: number }).data)).toEqual([1, 2, 3].slice(0, i + 1));
      const f = frames[i]!;
      FakeSocket.last.receive({ id: `a${i}`, type: 'ack', timestamp: '', replyTo: f.id, data: { id: f.id, channel: 'project:p1', offset: i + 1, epoch: 'e', duplicate: false } });
    }
    expect((await Promise.all(acks)).map((a) => a.offset)).toEqual([1, 2, 3]);
    client.disconnect();
  });

  it('drops the oldest with QUEUE_FULL under drop-oldest', async () => {
    const { client } = makeClient({ maxQueueSize: 2, queueOverflow: 'drop-oldest' });
    const first = client.publish('project:p1', 1);
    const second = client.publish('project:p1', 2);
    const third = client.publish('project:p1', 3);
    await expect(first).rejects.toMatchObject({ code: 'QUEUE_FULL' });
    expect(client.pendingPublishes).toBe(2);
    client.disconnect();
    await expect(second).rejects.toMatchObject({ code: 'DISCONNECTED' });
    await expect(third).rejects.toMatchObject({ code: 'DISCONNECTED' });
  });

  it('times out a written publish that gets no ack, but not one still waiting offline', async () => {
    const { client } = makeClient({ publishTimeout: 5000, pingInterval: 0 });
    const queued = client.publish('project:p1', 'x');
    vi.advanceTimersByTime(60_000);
    expect(client.pendingPublishes).toBe(1);
    void client.connect();
    FakeSocket.last.establish();
    vi.advanceTimersByTime(5000);
    await expect(queued).rejects.toMatchObject({ code: 'TIMEOUT' });
    client.disconnect();
  });
});
