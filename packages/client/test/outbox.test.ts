/**
 * The outbox on its own, with fake timers and a recording `send`: timeouts from the call and from
 * each write, the two resend policies, settle/reject/failAll, and no timer left behind.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ClientRequest } from '../src/dialect.js';
import { ClientErrorCode, SignalboxError } from '../src/errors.js';
import { Outbox } from '../src/outbox.js';

let online = true;
let sent: ClientRequest[] = [];
let outbox: Outbox;

beforeEach(() => {
  vi.useFakeTimers();
  online = true;
  sent = [];
  outbox = new Outbox((req) => {
    if (!online) return false;
    sent.push(req);
    return true;
  });
});

afterEach(() => {
  vi.useRealTimers();
});

const publish = (id: string, channel = 'c:1') => ({ kind: 'publish' as const, id, channel, data: { n: id } });
const history = (id: string, channel = 'c:1') => ({ kind: 'history' as const, id, channel });
const ids = () => sent.map((r) => ('id' in r ? r.id : r.kind));
/** For requests nobody awaits in a test: a later failAll must not surface as an unhandled rejection. */
const quiet = (p: Promise<unknown>): void => { p.catch(() => {}); };

describe('Outbox', () => {
  it('resolves a publish with its ack and leaves no timer', async () => {
    const p = outbox.track(publish('p1'), { resend: 'always', timeout: { ms: 1000, from: 'send' } }, true);
    expect(ids()).toEqual(['p1']);
    expect(vi.getTimerCount()).toBe(1);
    const ack = { id: 'p1', channel: 'c:1', offset: 3, epoch: 'e', duplicate: false };
    expect(outbox.settle('p1', 'publish', ack)).toBe(true);
    await expect(p).resolves.toEqual(ack);
    expect(outbox.count('publish')).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    // A second answer to the same id is ignored.
    expect(outbox.settle('p1', 'publish', ack)).toBe(false);
  });

  it('does not settle an entry with an answer of another kind', () => {
    quiet(outbox.track(history('h1'), { resend: 'always', timeout: { ms: 1000, from: 'call' } }, true));
    expect(outbox.settle('h1', 'publish', { id: 'h1', channel: 'c:1', offset: 1, epoch: 'e', duplicate: false })).toBe(false);
    expect(outbox.count('history')).toBe(1);
    expect(outbox.get('h1', 'publish')).toBeUndefined();
    expect(outbox.get('h1', 'history')?.request).toEqual(history('h1'));
    outbox.failAll(ClientErrorCode.DISCONNECTED, 'bye');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('times a publish out from its write, not from the call: an offline one has no deadline', async () => {
    online = false;
    const p = outbox.track(publish('p1'), { resend: 'always', timeout: { ms: 1000, from: 'send' } }, true);
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(5000);
    expect(outbox.count('publish')).toBe(1);
    online = true;
    outbox.resendAll();
    expect(ids()).toEqual(['p1']);
    expect(vi.getTimerCount()).toBe(1);
    const rejected = expect(p).rejects.toMatchObject({ code: 'TIMEOUT', message: 'No ack within 1000 ms', details: { channel: 'c:1', requestId: 'p1' } });
    await vi.advanceTimersByTimeAsync(999);
    expect(outbox.count('publish')).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    await rejected;
    expect(outbox.count('publish')).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('times a read out from the call, across a dropped transport', async () => {
    const q = outbox.track(history('h1'), { resend: 'always', timeout: { ms: 1000, from: 'call' } }, true);
    const rejected = expect(q).rejects.toMatchObject({ code: 'TIMEOUT', message: 'No answer within 1000 ms', details: { channel: 'c:1', requestId: 'h1' } });
    await vi.advanceTimersByTimeAsync(600);
    outbox.dropTransportScoped();
    outbox.resendAll();
    expect(ids()).toEqual(['h1', 'h1']);
    await vi.advanceTimersByTimeAsync(400);
    await rejected;
    expect(vi.getTimerCount()).toBe(0);
  });

  it('stops per-write timers when the transport drops, and re-arms them on the resend', async () => {
    const p = outbox.track(publish('p1'), { resend: 'always', timeout: { ms: 1000, from: 'send' } }, true);
    await vi.advanceTimersByTimeAsync(900);
    outbox.dropTransportScoped();
    expect(vi.getTimerCount()).toBe(0);
    outbox.resendAll();
    await vi.advanceTimersByTimeAsync(900);
    // 1800 ms after the call, 900 after the resend: still waiting.
    expect(outbox.count('publish')).toBe(1);
    outbox.settle('p1', 'publish', { id: 'p1', channel: 'c:1', offset: 1, epoch: 'e', duplicate: false });
    await expect(p).resolves.toMatchObject({ offset: 1 });
    expect(vi.getTimerCount()).toBe(0);
  });

  it("drops transport-scoped requests with their transport and resends only 'always' ones, publishes first", () => {
    quiet(outbox.track(history('h1'), { resend: 'always', timeout: { ms: 1000, from: 'call' } }, false));
    quiet(outbox.track(publish('p1'), { resend: 'always', timeout: { ms: 1000, from: 'send' } }, false));
    quiet(outbox.track({ kind: 'subscribe', id: 's1', channels: [{ channel: 'c:1' }] }, { resend: 'transport' }, true));
    quiet(outbox.track({ kind: 'refresh', id: 'r1', token: 't' }, { resend: 'transport' }, true));
    quiet(outbox.track(publish('p2'), { resend: 'always', timeout: { ms: 1000, from: 'send' } }, false));
    expect(ids()).toEqual(['s1', 'r1']);
    outbox.dropTransportScoped();
    expect(outbox.count('subscribe')).toBe(0);
    expect(outbox.count('refresh')).toBe(0);
    expect([...outbox.requests('refresh')]).toEqual([]);
    sent = [];
    outbox.resendAll();
    // p2 is of p1's channel: it is written once p1 is acked.
    expect(ids()).toEqual(['p1', 'h1']);
    outbox.settle('p1', 'publish', { id: 'p1', channel: 'c:1', offset: 1, epoch: 'e', duplicate: false });
    expect(ids()).toEqual(['p1', 'h1', 'p2']);
    outbox.failAll(ClientErrorCode.CLOSED, 'closed');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('rejects a request with a server error, whatever its kind', async () => {
    const q = outbox.track({ kind: 'presence', id: 'q1', channel: 'p:1' }, { resend: 'always', timeout: { ms: 1000, from: 'call' } }, true);
    const err = new SignalboxError('PERMISSION_DENIED', 'no');
    expect(outbox.reject('q1', err)).toBe(true);
    await expect(q).rejects.toBe(err);
    expect(outbox.reject('q1', err)).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('failAll rejects everything pending, publishes first, and leaves no timer', async () => {
    const order: string[] = [];
    const q = outbox.track(history('h1', 'c:2'), { resend: 'always', timeout: { ms: 1000, from: 'call' } }, true);
    const p = outbox.track(publish('p1'), { resend: 'always', timeout: { ms: 1000, from: 'send' } }, true);
    q.catch(() => order.push('h1'));
    p.catch(() => order.push('p1'));
    expect(vi.getTimerCount()).toBe(2);
    outbox.failAll(ClientErrorCode.DISCONNECTED, 'disconnect() was called');
    await expect(p).rejects.toMatchObject({ code: 'DISCONNECTED', details: { channel: 'c:1' } });
    await expect(q).rejects.toMatchObject({ code: 'DISCONNECTED', details: { channel: 'c:2', requestId: 'h1' } });
    expect(order).toEqual(['p1', 'h1']);
    expect(outbox.count('publish') + outbox.count('history')).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('removes a transport-scoped request without settling it', () => {
    quiet(outbox.track({ kind: 'subscribe', id: 's1', channels: [{ channel: 'c:1' }] }, { resend: 'transport' }, true));
    expect(outbox.request('s1')?.kind).toBe('subscribe');
    outbox.remove('s1');
    expect(outbox.request('s1')).toBeUndefined();
    expect(outbox.count('subscribe')).toBe(0);
  });
});

describe('Outbox publish lanes', () => {
  const ack = (id: string, offset: number) => ({ id, channel: 'c:1', offset, epoch: 'e', duplicate: false });
  const limited = (retryAfterMs?: number) => new SignalboxError('RATE_LIMITED', 'Too many publishes', retryAfterMs === undefined ? {} : { retryAfterMs });
  const publishOpts = { resend: 'always' as const, timeout: { ms: 10_000, from: 'send' as const } };
  let undelivered: { id: string; code: string }[] = [];

  beforeEach(() => {
    undelivered = [];
    outbox = new Outbox((req) => {
      if (!online) return false;
      sent.push(req);
      return true;
    }, {
      onUndelivered: (req, err) => undelivered.push({ id: req.id, code: err.code }),
      publishPolicy: () => ({ maxAttempts: 3, deadline: 10_000, baseDelay: 100, maxDelay: 1000, window: 1 }),
      random: () => 1,
    });
  });

  it('writes one publish per channel at a time, channels in parallel', () => {
    quiet(outbox.track(publish('a1', 'c:1'), publishOpts, true));
    quiet(outbox.track(publish('a2', 'c:1'), publishOpts, true));
    quiet(outbox.track(publish('b1', 'c:2'), publishOpts, true));
    expect(ids()).toEqual(['a1', 'b1']);
    outbox.settle('a1', 'publish', ack('a1', 1));
    expect(ids()).toEqual(['a1', 'b1', 'a2']);
    outbox.failAll(ClientErrorCode.CLOSED, 'closed');
  });

  it('retries a RATE_LIMITED publish after the backoff (at least retryAfterMs); nothing of its channel overtakes it', async () => {
    const p1 = outbox.track(publish('p1'), publishOpts, true);
    const p2 = outbox.track(publish('p2'), publishOpts, true);
    expect(ids()).toEqual(['p1']);
    expect(outbox.refused('p1', limited(250))).toBe('retrying');
    // Full jitter with random() = 1: the cap, 100 ms for the first retry; retryAfterMs 250 wins.
    await vi.advanceTimersByTimeAsync(249);
    expect(ids()).toEqual(['p1']);
    await vi.advanceTimersByTimeAsync(1);
    expect(ids()).toEqual(['p1', 'p1']);
    outbox.settle('p1', 'publish', ack('p1', 1));
    await expect(p1).resolves.toMatchObject({ offset: 1 });
    // Writes are paced after a refusal: p2 waits its turn, then goes.
    expect(outbox.publishPace).toBeGreaterThan(0);
    await vi.advanceTimersByTimeAsync(1000);
    expect(ids()).toEqual(['p1', 'p1', 'p2']);
    outbox.settle('p2', 'publish', ack('p2', 2));
    await expect(p2).resolves.toMatchObject({ offset: 2 });
    expect(undelivered).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('gives up after maxAttempts: rejects, reports undelivered, and the next one goes', async () => {
    const p1 = outbox.track(publish('p1'), publishOpts, true);
    quiet(outbox.track(publish('p2'), publishOpts, true));
    const rejected = expect(p1).rejects.toMatchObject({ code: 'RATE_LIMITED', message: /given up after 3 attempts/ });
    for (let i = 0; i < 2; i++) {
      expect(outbox.refused('p1', limited())).toBe('retrying');
      await vi.advanceTimersByTimeAsync(2000);
    }
    expect(ids()).toEqual(['p1', 'p1', 'p1']);
    expect(outbox.refused('p1', limited())).toBe('rejected');
    await rejected;
    expect(undelivered).toEqual([{ id: 'p1', code: 'RATE_LIMITED' }]);
    await vi.advanceTimersByTimeAsync(2000);
    expect(ids()).toEqual(['p1', 'p1', 'p1', 'p2']);
    outbox.failAll(ClientErrorCode.CLOSED, 'closed');
    expect(undelivered).toEqual([{ id: 'p1', code: 'RATE_LIMITED' }, { id: 'p2', code: 'CLOSED' }]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('rejects a non-retryable refusal at once and reports it; a timeout is reported too', async () => {
    const p1 = outbox.track(publish('p1'), publishOpts, true);
    expect(outbox.refused('p1', new SignalboxError('PERMISSION_DENIED', 'no'))).toBe('rejected');
    await expect(p1).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    const p2 = outbox.track(publish('p2'), { resend: 'always', timeout: { ms: 500, from: 'send' } }, true);
    const timedOut = expect(p2).rejects.toMatchObject({ code: 'TIMEOUT' });
    await vi.advanceTimersByTimeAsync(500);
    await timedOut;
    expect(undelivered).toEqual([{ id: 'p1', code: 'PERMISSION_DENIED' }, { id: 'p2', code: 'TIMEOUT' }]);
  });

  it('keeps a retry waiting across a dropped transport, and writes it on the next one', async () => {
    const p1 = outbox.track(publish('p1'), publishOpts, true);
    outbox.refused('p1', limited());
    online = false;
    outbox.dropTransportScoped();
    await vi.advanceTimersByTimeAsync(2000);
    expect(ids()).toEqual(['p1']);
    online = true;
    outbox.resendAll();
    expect(ids()).toEqual(['p1', 'p1']);
    outbox.settle('p1', 'publish', ack('p1', 1));
    await expect(p1).resolves.toMatchObject({ offset: 1 });
  });
});
