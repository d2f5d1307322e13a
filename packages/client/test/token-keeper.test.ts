/**
 * The token keeper on its own, with fake timers and a recording host: the refresh is scheduled
 * ahead of `exp`, one is in flight at most, a failed getToken retries, an answer for a transport
 * that is gone is dropped, and stop() leaves no timer.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { SignalboxError } from '../src/errors.js';
import type { ClientConfig, TokenRequestReason } from '../src/options.js';
import { TokenKeeper } from '../src/token-keeper.js';
import { fakeJwt } from './helpers/jwt.js';

let connected = true;
let transportId: number | undefined = 1;
let sent: string[] = [];
let errors: SignalboxError[] = [];
let asked: TokenRequestReason[] = [];
let answer: () => string | Promise<string> = () => 'next';
let config: Pick<ClientConfig, 'getToken' | 'refreshMargin' | 'reconnectInterval'>;
let keeper: TokenKeeper;

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(0);
  connected = true;
  transportId = 1;
  sent = [];
  errors = [];
  asked = [];
  answer = () => 'next';
  config = { getToken: ({ reason }) => { asked.push(reason); return answer(); }, refreshMargin: 30_000, reconnectInterval: 500 };
  keeper = new TokenKeeper(config, {
    canRefresh: () => connected,
    transportId: () => transportId,
    sendRefresh: (token) => { keeper.markInFlight(); sent.push(token); },
    onError: (err) => { errors.push(err); },
  });
});

afterEach(() => {
  vi.useRealTimers();
});

const expiringIn = (ms: number) => fakeJwt({ exp: (Date.now() + ms) / 1000 });

describe('TokenKeeper', () => {
  it('refreshes refreshMargin before exp, and only then', async () => {
    const token = expiringIn(120_000);
    keeper.markCurrent(token);
    keeper.scheduleRefresh(token, undefined);
    await vi.advanceTimersByTimeAsync(89_999);
    expect(asked).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(asked).toEqual(['refresh']);
    expect(sent).toEqual(['next']);
    expect(keeper.inFlight).toBe(true);
    keeper.refreshed('next', undefined);
    expect(keeper.current).toBe('next');
    expect(keeper.inFlight).toBe(false);
    // 'next' is not a JWT and no expiresAt was given: nothing more to schedule.
    expect(vi.getTimerCount()).toBe(0);
  });

  it('refreshes at half the remaining life when that is shorter than the margin, and uses expiresAt without a JWT exp', async () => {
    keeper.scheduleRefresh('opaque', Date.now() + 20_000);
    await vi.advanceTimersByTimeAsync(9_999);
    expect(asked).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(asked).toEqual(['refresh']);
    keeper.stop();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('schedules nothing without getToken', () => {
    config.getToken = undefined;
    keeper.scheduleRefresh(expiringIn(60_000), undefined);
    expect(vi.getTimerCount()).toBe(0);
    keeper.refresh('token_expired');
    expect(sent).toEqual([]);
  });

  it('keeps one refresh in flight at most, until its outcome', async () => {
    let resolve!: (t: string) => void;
    answer = () => new Promise<string>((r) => { resolve = r; });
    keeper.refresh('token_expired');
    keeper.refresh('token_expired');
    expect(asked).toEqual(['token_expired']);
    resolve('fresh');
    await vi.advanceTimersByTimeAsync(0);
    expect(sent).toEqual(['fresh']);
    keeper.refresh('token_expired');
    expect(asked).toEqual(['token_expired']);
    keeper.refreshRefused();
    keeper.refresh('token_expired');
    expect(asked).toEqual(['token_expired', 'token_expired']);
  });

  it('does not resend the token already current', async () => {
    keeper.markCurrent('same');
    answer = () => 'same';
    keeper.refresh('refresh');
    await vi.advanceTimersByTimeAsync(0);
    expect(sent).toEqual([]);
    expect(keeper.inFlight).toBe(false);
  });

  it('retries a failed getToken after max(1000, reconnectInterval), reporting the error', async () => {
    answer = () => { throw new Error('token endpoint down'); };
    keeper.refresh('refresh');
    expect(errors.map((e) => [e.code, e.message])).toEqual([['TOKEN_UNAVAILABLE', 'getToken() failed: token endpoint down']]);
    expect(keeper.inFlight).toBe(false);
    await vi.advanceTimersByTimeAsync(999);
    expect(asked).toEqual(['refresh']);
    answer = () => 'ok';
    await vi.advanceTimersByTimeAsync(1);
    expect(asked).toEqual(['refresh', 'refresh']);
    expect(sent).toEqual(['ok']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('treats an empty token as a failure', async () => {
    answer = () => '';
    keeper.refresh('refresh');
    expect(errors.map((e) => e.code)).toEqual(['TOKEN_UNAVAILABLE']);
    keeper.stop();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('drops an answer that arrives after its transport is gone', async () => {
    let resolve!: (t: string) => void;
    answer = () => new Promise<string>((r) => { resolve = r; });
    keeper.refresh('refresh');
    transportId = 2;
    keeper.stop();
    resolve('late');
    await vi.advanceTimersByTimeAsync(0);
    expect(sent).toEqual([]);
  });

  it('does not refresh while not connected', () => {
    connected = false;
    keeper.refresh('refresh');
    expect(asked).toEqual([]);
  });

  it('remembers a refused token until cleared', () => {
    keeper.refuse({ token: 'bad', reason: 'auth_failed', code: 4001 });
    expect(keeper.refused).toEqual({ token: 'bad', reason: 'auth_failed', code: 4001 });
    keeper.stop();
    expect(keeper.refused?.token).toBe('bad');
    keeper.clearRefused();
    expect(keeper.refused).toBeUndefined();
  });

  it('stop() clears the refresh timer and the in-flight mark', () => {
    keeper.scheduleRefresh(expiringIn(120_000), undefined);
    keeper.markInFlight();
    expect(vi.getTimerCount()).toBe(1);
    keeper.stop();
    expect(vi.getTimerCount()).toBe(0);
    expect(keeper.inFlight).toBe(false);
    vi.advanceTimersByTime(200_000);
    expect(asked).toEqual([]);
  });
});
