/**
 * Serialization and redaction without a browser: whatever a page logs becomes bounded plain JSON
 * (the in-page tests check the same in Chromium, with DOM nodes); URLs and headers lose their secrets.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_SERIALIZE_LIMITS, Redactor, serialize, serializeAll } from '../src/index.js';

describe('serialize', () => {
  it('turns what JSON cannot carry into $type markers, and survives throwing getters and proxies', () => {
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    const v = {
      u: undefined, n: NaN, b: 10n, s: Symbol('k'), f: function named() {}, d: new Date(0), re: /x+/g,
      m: new Map([['a', 1]]), set: new Set([1, 2]), bytes: new Uint8Array(7),
      get boom(): never { throw new Error('getter'); }, p: revoked.proxy,
    };
    const { value } = serialize(v);
    expect(value).toEqual({
      u: { $type: 'undefined' }, n: { $type: 'number', value: 'NaN' }, b: { $type: 'bigint', value: '10' }, s: { $type: 'symbol', value: 'Symbol(k)' },
      f: { $type: 'function', name: 'named' }, d: { $type: 'date', value: '1970-01-01T00:00:00.000Z' }, re: '/x+/g',
      m: { $type: 'map', entries: [['a', 1]] }, set: { $type: 'set', entries: [1, 2] }, bytes: { $type: 'bytes', length: 7 },
      boom: { $type: 'unserializable' }, p: { $type: 'unserializable' },
    });
    expect(JSON.parse(JSON.stringify(value))).toEqual(value);
  });

  it('marks cycles but not the same object twice side by side, and cuts depth and breadth', () => {
    const shared = { k: 1 };
    const a: Record<string, unknown> = { x: shared, y: shared };
    a.self = a;
    expect(serialize(a).value).toEqual({ x: { k: 1 }, y: { k: 1 }, self: { $type: 'cycle' } });
    let deep: Record<string, unknown> = {};
    const root = deep;
    for (let i = 0; i < 20; i++) deep = (deep.next = {}) as Record<string, unknown>;
    expect(JSON.stringify(serialize(root).value)).toContain('"$type":"depth"');
    const wide = serialize(Array.from({ length: 500 }, (_, i) => i));
    expect((wide.value as unknown[]).length).toBe(DEFAULT_SERIALIZE_LIMITS.maxEntries + 1);
    expect((wide.value as unknown[]).at(-1)).toEqual({ $type: 'more', count: 450 });
    expect(wide.truncated).toBe(true);
  });

  it('bounds a whole call: many huge arguments stay within the total budget', () => {
    const huge = 'y'.repeat(1_000_000);
    const { values, truncated } = serializeAll([huge, huge, huge, huge, huge, huge, huge, huge, huge, huge, { nested: [huge, huge] }], DEFAULT_SERIALIZE_LIMITS);
    expect(truncated).toBe(true);
    expect(JSON.stringify(values).length).toBeLessThan(DEFAULT_SERIALIZE_LIMITS.maxTotal + 1000);
  });
});

describe('Redactor', () => {
  const r = new Redactor({ headers: ['X-Api-Key'], patterns: [/sk_live_\w+/], url: (u) => u.replace('/private/', '/…/') });
  it('redacts the always-secret headers and the configured ones, whatever their case', () => {
    expect(r.headers([['Authorization', 'Bearer a'], ['COOKIE', 'c=1'], ['Set-Cookie', 's'], ['x-api-key', 'k'], ['Accept', 'text/html']])).toEqual({
      authorization: '[redacted]', cookie: '[redacted]', 'set-cookie': '[redacted]', 'x-api-key': '[redacted]', accept: 'text/html',
    });
  });
  it('redacts URL credentials, secret query and fragment parameters, then the text patterns and the url hook', () => {
    expect(r.url('https://bob:pw@ex.com/private/a?token=t1&page=2&KEY=k#id_token=x&s=1')).toBe('https://%5Bredacted%5D@ex.com/…/a?token=%5Bredacted%5D&page=2&KEY=%5Bredacted%5D#id_token=%5Bredacted%5D&s=1');
    expect(r.url('/relative?code=abc', 'http://127.0.0.1:1/')).toBe('http://127.0.0.1:1/relative?code=%5Bredacted%5D');
    expect(r.text('key sk_live_abc123 and sk_live_def')).toBe('key [redacted] and [redacted]');
  });
});
