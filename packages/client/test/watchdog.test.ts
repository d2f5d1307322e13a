/**
 * The heartbeat watchdog on its own, with fake timers: a ping after `pingInterval` of quiet,
 * dead after `pongTimeout` without a frame, any frame keeps it alive, and stop() leaves no timer.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Watchdog } from '../src/watchdog.js';

let pings = 0;
let dead: string[] = [];
const config = { pingInterval: 1000, pongTimeout: 500 };
let watchdog: Watchdog;

beforeEach(() => {
  vi.useFakeTimers();
  pings = 0;
  dead = [];
  config.pingInterval = 1000;
  config.pongTimeout = 500;
  watchdog = new Watchdog(config, { ping: () => { pings++; }, onDead: (m) => { dead.push(m); } });
});

afterEach(() => {
  vi.useRealTimers();
});

describe('Watchdog', () => {
  it('pings after pingInterval of quiet, and declares the line dead pongTimeout later', () => {
    watchdog.start();
    vi.advanceTimersByTime(999);
    expect(pings).toBe(0);
    vi.advanceTimersByTime(1);
    expect(pings).toBe(1);
    vi.advanceTimersByTime(499);
    expect(dead).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(dead).toEqual(['Nothing received within 500 ms of a ping']);
    // Dead once: nothing is armed any more.
    expect(vi.getTimerCount()).toBe(0);
  });

  it('stays alive when a frame answers the ping, and counts quiet time afresh from it', () => {
    watchdog.start();
    vi.advanceTimersByTime(1000);
    expect(pings).toBe(1);
    vi.advanceTimersByTime(400);
    watchdog.seen();
    vi.advanceTimersByTime(999);
    expect(pings).toBe(1);
    expect(dead).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(pings).toBe(2);
    watchdog.stop();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('does not ping while frames keep arriving', () => {
    watchdog.start();
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(600);
      watchdog.seen();
    }
    expect(pings).toBe(0);
    expect(dead).toEqual([]);
    watchdog.stop();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('never arms with pingInterval 0', () => {
    config.pingInterval = 0;
    watchdog.start();
    watchdog.seen();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(60_000);
    expect(pings + dead.length).toBe(0);
  });

  it('stop() leaves no timer, before and after a ping, and a stopped watchdog never fires', () => {
    watchdog.start();
    expect(vi.getTimerCount()).toBe(1);
    watchdog.stop();
    expect(vi.getTimerCount()).toBe(0);
    watchdog.start();
    vi.advanceTimersByTime(1000);
    expect(pings).toBe(1);
    watchdog.stop();
    expect(vi.getTimerCount()).toBe(0);
    // A frame after stop() must not re-arm it.
    watchdog.seen();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(10_000);
    expect(dead).toEqual([]);
  });
});
