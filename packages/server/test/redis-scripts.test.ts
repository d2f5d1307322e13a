/**
 * One script loader for the Redis engine: every script, presence included, runs with EVALSHA;
 * the full source goes over the wire (EVAL) only when Redis answers NOSCRIPT (first use on a
 * fresh server, after a restart or SCRIPT FLUSH). Counted by Redis itself (INFO commandstats),
 * on a private redis-server so no other test's traffic is in the counts.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RedisBroker } from '../src/broker/redis.js';
import { RedisPresenceStore } from '../src/presence/redis.js';
import { SCRIPTS } from '../src/redis/scripts.js';
import { Recorder, publishTo } from './contract/broker.contract.js';
import { rawClient } from './helpers/redis.js';
import { RedisServerProcess, describeWithRedisServer } from './helpers/redis-server.js';

/** Successful calls per command, from INFO commandstats (`calls` minus `failed_calls`: a NOSCRIPT reply is a failed call). */
async function succeeded(raw: Redis): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const line of (await raw.info('commandstats')).split('\r\n')) {
    const m = /^cmdstat_([a-z|]+):(.*)$/.exec(line);
    if (!m) continue;
    const fields = Object.fromEntries(m[2]!.split(',').map((kv) => kv.split('=') as [string, string]));
    out[m[1]!] = Number(fields.calls ?? 0) - Number(fields.failed_calls ?? 0);
  }
  return out;
}

describeWithRedisServer('Redis script loader (private redis-server)', () => {
  let server: RedisServerProcess;
  let raw: Redis;
  beforeAll(async () => {
    server = await RedisServerProcess.start({ persistent: false });
    raw = rawClient(server.url);
  }, 30_000);
  afterAll(async () => {
    raw?.disconnect();
    await server?.stop();
  });

  it('the presence store runs its scripts with EVALSHA, sending a source once per script and again only after NOSCRIPT', async () => {
    const store = new RedisPresenceStore({ url: server.url, prefix: 'scripts' });
    await store.start();
    try {
      await raw.script('FLUSH');
      await raw.config('RESETSTAT');
      for (let i = 0; i < 5; i++) {
        await store.add('room:a', { clientId: `c${i}`, userId: 'u' }, 60_000);
        expect((await store.list('room:a')).map((m) => m.clientId).sort()).toEqual(Array.from({ length: i + 1 }, (_, j) => `c${j}`));
      }
      let calls = await succeeded(raw);
      // Each script's first call met NOSCRIPT and was sent once with EVAL; every other call was EVALSHA.
      expect(calls.eval ?? 0).toBe(2);
      expect(calls.evalsha ?? 0).toBe(8);
      expect(await raw.script('EXISTS', SCRIPTS.presenceAdd.sha, SCRIPTS.presenceList.sha)).toEqual([1, 1]);

      // After SCRIPT FLUSH (what a Redis restart looks like to the loader), calls go on: one EVAL each, then EVALSHA.
      await raw.script('FLUSH');
      await store.add('room:a', { clientId: 'c9', userId: 'u' }, 60_000);
      await store.add('room:a', { clientId: 'c10', userId: 'u' }, 60_000);
      expect((await store.list('room:a')).length).toBe(7);
      calls = await succeeded(raw);
      expect(calls.eval ?? 0).toBe(4);
      expect(calls.evalsha ?? 0).toBe(9);
    } finally {
      await store.close();
    }
  });

  it('the broker runs publish and history through the same loader', async () => {
    const broker = new RedisBroker({ url: server.url, prefix: 'scripts' });
    await broker.start(new Recorder());
    try {
      await raw.script('FLUSH');
      await raw.config('RESETSTAT');
      for (let i = 0; i < 3; i++) await publishTo(broker, 'room:b', i);
      expect((await broker.history('room:b', {})).publications.map((p) => p.data)).toEqual([0, 1, 2]);
      await broker.history('room:b', {});
      const calls = await succeeded(raw);
      expect(calls.eval ?? 0).toBe(2);
      expect(calls.evalsha ?? 0).toBe(3);
      expect(await raw.script('EXISTS', SCRIPTS.publish.sha, SCRIPTS.history.sha)).toEqual([1, 1]);
    } finally {
      await broker.close();
    }
  });
});
