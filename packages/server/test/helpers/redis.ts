/**
 * Redis for tests: REDIS_URL (default redis://127.0.0.1:6379) is pinged once per test file.
 * Unreachable: under CI=true the Redis suites FAIL (a test that says why); elsewhere they are
 * skipped with a console message, so `npm test` works on a laptop without Redis.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe, it } from 'vitest';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
export const IN_CI = process.env.CI === 'true';

export interface RedisProbe {
  url: string;
  available: boolean;
  /** Why it is not available. */
  reason?: string;
}

/** One PING with a short timeout; never throws. */
export async function probeRedis(url: string = REDIS_URL, timeoutMs = 2000): Promise<RedisProbe> {
  const client = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
  });
  // The connection error (ECONNREFUSED, ENOTFOUND...) arrives as an event; the promise only says "closed".
  let cause: Error | null = null;
  client.on('error', (err: Error) => {
    cause ??= err;
  });
  try {
    await client.connect();
    const pong = await client.ping();
    return pong === 'PONG' ? { url, available: true } : { url, available: false, reason: `PING answered ${pong}` };
  } catch (err) {
    const reason = (cause as Error | null)?.message ?? (err instanceof Error ? err.message : String(err));
    return { url, available: false, reason };
  } finally {
    client.disconnect();
  }
}

/**
 * `describe` that needs Redis: runs when reachable; fails under CI=true when not; skips elsewhere
 * (with a message saying why).
 */
export function describeWithRedis(name: string, probe: RedisProbe, body: () => void): void {
  if (probe.available) {
    describe(name, body);
    return;
  }
  const why = `Redis not reachable at ${probe.url} (${probe.reason ?? 'unknown'}); set REDIS_URL or start redis-server`;
  if (IN_CI) {
    describe(name, () => {
      it('needs a reachable Redis (CI=true)', () => {
        throw new Error(`${why}. Redis is required under CI=true.`);
      });
    });
    return;
  }
  console.warn(`[skip] ${name}: ${why}.`);
  describe.skipIf(true)(name, body);
}

/** A key prefix unique to one test file run, so parallel runs never see each other's keys. */
export function uniquePrefix(label: string): string {
  return `sbtest-${label}-${randomBytes(4).toString('hex')}`;
}

/** Deletes every key under `prefix:` (SCAN + UNLINK); returns how many. */
export async function deleteKeys(url: string, prefix: string): Promise<number> {
  const client = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => null });
  client.on('error', () => {});
  let deleted = 0;
  try {
    let cursor = '0';
    do {
      // The prefix is ours (letters, digits, dashes): no glob characters to escape.
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) deleted += await client.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
  return deleted;
}

/** Keys under `prefix:` (for layout assertions). */
export async function listKeys(url: string, prefix: string): Promise<string[]> {
  const client = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => null });
  client.on('error', () => {});
  const out: string[] = [];
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      out.push(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
  return out.sort();
}

/** A short-lived plain client for assertions that need raw commands. */
export function rawClient(url: string): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => null });
  client.on('error', () => {});
  return client;
}
