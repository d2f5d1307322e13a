import { afterAll, describe, expect, it } from 'vitest';
import { BrokerUnavailableError } from '../src/broker/types.js';
import { RedisBroker, redisChannelKeys } from '../src/broker/redis.js';
import { brokerContract, publishTo, Recorder, uniqueChannel, type BrokerFactory } from './contract/broker.contract.js';
import { deleteKeys, describeWithRedis, listKeys, probeRedis, rawClient, uniquePrefix } from './helpers/redis.js';
import { freePort } from './helpers/redis-server.js';
import { until } from './helpers/wait.js';

const redis = await probeRedis();
const prefix = uniquePrefix('broker');

const factory: BrokerFactory = Object.assign(
  async () => {
    const made: RedisBroker[] = [];
    const make = (): RedisBroker => {
      const b = new RedisBroker({ url: redis.url, prefix });
      made.push(b);
      return b;
    };
    return { broker: make(), peer: async () => make(), cleanup: async () => void (await Promise.all(made.map((b) => b.close()))) };
  },
  { capabilities: { sharedEngine: true, selectiveDelivery: true } },
);

describeWithRedis('RedisBroker', redis, () => {
  afterAll(async () => {
    await deleteKeys(redis.url, prefix);
  });

  brokerContract('redis', factory);

  describe('redis specifics', () => {
    it('keeps every key of a channel under the prefix and the channel\u2019s hash tag', async () => {
      const broker = new RedisBroker({ url: redis.url, prefix });
      await broker.start(new Recorder());
      try {
        const ch = uniqueChannel('layout');
        await publishTo(broker, ch, 1, { idempotencyKey: 'weird}{key*' });
        const keys = (await listKeys(redis.url, prefix)).filter((k) => k.includes(ch));
        expect(keys).toEqual([`${prefix}:{${ch}}:idem:weird}{key*`, `${prefix}:{${ch}}:meta`, `${prefix}:{${ch}}:msgs`, `${prefix}:{${ch}}:order`, `${prefix}:{${ch}}:stream`]);
      } finally {
        await broker.close();
      }
    });

    it('sets the TTLs: stream = history TTL, meta = max(streamMetaTtlMs, history TTL), idempotency = window', async () => {
      const broker = new RedisBroker({ url: redis.url, prefix, streamMetaTtlMs: 3_600_000 });
      await broker.start(new Recorder());
      const raw = rawClient(redis.url);
      try {
        const ch = uniqueChannel('ttls');
        await publishTo(broker, ch, 1, { history: { size: 10, ttlMs: 60_000 }, idempotencyKey: 'k', idempotencyWindowMs: 30_000 });
        const keys = redisChannelKeys(prefix, ch);
        const [stream, meta, idem] = await Promise.all([raw.pttl(keys.stream), raw.pttl(keys.meta), raw.pttl(`${keys.idem}k`)]);
        expect(stream).toBeGreaterThan(55_000);
        expect(stream).toBeLessThanOrEqual(60_000);
        expect(meta).toBeGreaterThan(3_500_000);
        expect(meta).toBeLessThanOrEqual(3_600_000);
        expect(idem).toBeGreaterThan(25_000);
        expect(idem).toBeLessThanOrEqual(30_000);
        // A history TTL longer than the meta TTL stretches the meta TTL: the position never dies before its history.
        await publishTo(broker, ch, 2, { history: { size: 10, ttlMs: 7_200_000 } });
        expect(await raw.pttl(keys.meta)).toBeGreaterThan(7_000_000);
      } finally {
        raw.disconnect();
        await broker.close();
      }
    });

    it('forgets the position streamMetaTtlMs after the last publication: a new epoch', async () => {
      const broker = new RedisBroker({ url: redis.url, prefix, streamMetaTtlMs: 150 });
      await broker.start(new Recorder());
      const raw = rawClient(redis.url);
      try {
        const ch = uniqueChannel('meta-ttl');
        const first = await publishTo(broker, ch, 1, { history: { size: 10, ttlMs: 100 } });
        const meta = redisChannelKeys(prefix, ch).meta;
        // Expiry is Redis' clock at work: poll the key, bounded.
        await until(async () => (await raw.exists(meta)) === 0, { label: 'the meta hash to expire', timeoutMs: 5000 });
        const next = await publishTo(broker, ch, 2, { history: { size: 10, ttlMs: 100 } });
        expect(next.publication.epoch).not.toBe(first.publication.epoch);
        expect(next.publication.offset).toBe(1);
      } finally {
        raw.disconnect();
        await broker.close();
      }
    });

    it('escapes names so user input never forms its own hash tag or pattern', async () => {
      const keys = redisChannelKeys('p', 'a{b}*?[c] %');
      for (const k of Object.values(keys)) {
        expect(k.startsWith('p:{a%007bb%007d%002a%003f%005bc%005d%0020%0025}:')).toBe(true);
        expect(k.match(/[{}]/g)).toEqual(['{', '}']);
      }
      // Injective: distinct channels never share keys.
      expect(redisChannelKeys('p', '%007b').meta).not.toBe(redisChannelKeys('p', '{').meta);
      const broker = new RedisBroker({ url: redis.url, prefix });
      await broker.start(new Recorder());
      try {
        const odd = `${uniqueChannel('odd')}{x}`;
        await publishTo(broker, odd, 1);
        expect((await broker.history(odd, {})).publications.map((p) => p.data)).toEqual([1]);
      } finally {
        await broker.close();
      }
    });

    it('a stream written before messages were listed (an older node) reads back compacted as messages, and is trimmed by messages from then on', async () => {
      const broker = new RedisBroker({ url: redis.url, prefix });
      await broker.start(new Recorder());
      const raw = rawClient(redis.url);
      try {
        const ch = uniqueChannel('legacy');
        const history = { size: 3, ttlMs: 60_000 };
        for (const d of ['old1', 'old2']) await publishTo(broker, ch, d, { history });
        // What an older node leaves behind: the stream and meta only.
        const keys = redisChannelKeys(prefix, ch);
        await raw.del(keys.msgs, keys.order);
        expect((await broker.history(ch, { compact: true })).publications.map((p) => p.data)).toEqual(['old1', 'old2']);
        await publishTo(broker, ch, 'new', { history, publisher: { via: 'http', key: 'k' }, id: 'n', idempotencyKey: 'n' });
        await publishTo(broker, ch, '+', { history, publisher: { via: 'http', key: 'k' }, id: 'n.1', idempotencyKey: 'n.1', appendTo: 'n' });
        const h = await broker.history(ch, { compact: true });
        expect(h.publications.map((p) => [p.data, p.through])).toEqual([['old1', undefined], ['old2', undefined], ['new+', 4]]);
        expect((await broker.history(ch, { compact: true, limit: 2 })).publications.map((p) => p.data)).toEqual(['old2', 'new+']);
        // The first trim by messages drops every entry older than the oldest listed message.
        await publishTo(broker, ch, 'a', { history });
        await publishTo(broker, ch, 'b', { history });
        await publishTo(broker, ch, 'c', { history });
        const after = await broker.history(ch, { compact: true });
        expect(after.publications.map((p) => p.data)).toEqual(['a', 'b', 'c']);
        expect(after.earliestOffset).toBe(5);
      } finally {
        raw.disconnect();
        await broker.close();
      }
    });

    it('rejects a prefix that could form a hash tag or pattern', () => {
      for (const bad of ['a{b}', 'x*', '', 'has space']) {
        expect(() => new RedisBroker({ url: redis.url, prefix: bad })).toThrow(TypeError);
      }
    });

    it('starts a new epoch when the meta hash is lost, and drops entries of the old one', async () => {
      const broker = new RedisBroker({ url: redis.url, prefix });
      await broker.start(new Recorder());
      const raw = rawClient(redis.url);
      try {
        const ch = uniqueChannel('lost');
        let old = '';
        for (let i = 0; i < 3; i++) old = (await publishTo(broker, ch, i)).publication.epoch;
        await raw.del(redisChannelKeys(prefix, ch).meta);
        const next = await publishTo(broker, ch, 'new');
        expect(next.publication.epoch).not.toBe(old);
        expect(next.publication.offset).toBe(1);
        const h = await broker.history(ch, {});
        expect(h.publications).toEqual([next.publication]);
        expect(h.position).toEqual({ epoch: next.publication.epoch, offset: 1 });
      } finally {
        raw.disconnect();
        await broker.close();
      }
    });

    it('falls back to EVAL when Redis forgot the scripts', async () => {
      const broker = new RedisBroker({ url: redis.url, prefix });
      await broker.start(new Recorder());
      const raw = rawClient(redis.url);
      try {
        const ch = uniqueChannel('noscript');
        await publishTo(broker, ch, 1);
        await raw.script('FLUSH');
        expect((await publishTo(broker, ch, 2)).publication.offset).toBe(2);
        expect((await broker.history(ch, {})).position.offset).toBe(2);
      } finally {
        raw.disconnect();
        await broker.close();
      }
    });

    it('survives a throwing handler: later publications are still delivered', async () => {
      const broker = new RedisBroker({ url: redis.url, prefix });
      const rec = new Recorder();
      let calls = 0;
      await broker.start({
        onPublication(pub) {
          if (++calls === 1) throw new Error('hub bug');
          rec.onPublication(pub);
        },
        onResync: () => {},
        onReadyChange: () => {
          throw new Error('hub bug');
        },
      });
      try {
        const ch = uniqueChannel('throws');
        await broker.subscribe(ch);
        await publishTo(broker, ch, 1);
        await publishTo(broker, ch, 2);
        expect((await rec.publicationsOf(ch, 1)).map((p) => p.offset)).toEqual([2]);
      } finally {
        await broker.close();
      }
    });

    it('fails fast before start and after close', async () => {
      const broker = new RedisBroker({ url: redis.url, prefix });
      await expect(publishTo(broker, uniqueChannel('early'), 1)).rejects.toBeInstanceOf(BrokerUnavailableError);
      await broker.start(new Recorder());
      await broker.close();
      expect(broker.isReady()).toBe(false);
      await expect(broker.history(uniqueChannel('late'), {})).rejects.toBeInstanceOf(BrokerUnavailableError);
    });

    it('starts not-ready against an unreachable Redis, and fails fast', async () => {
      const port = await freePort();
      const broker = new RedisBroker({ url: `redis://127.0.0.1:${port}`, prefix, startTimeoutMs: 300 });
      const rec = new Recorder();
      try {
        await broker.start(rec);
        expect(broker.isReady()).toBe(false);
        const t0 = performance.now();
        await expect(publishTo(broker, uniqueChannel('down'), 1)).rejects.toBeInstanceOf(BrokerUnavailableError);
        await expect(broker.history(uniqueChannel('down'), {})).rejects.toBeInstanceOf(BrokerUnavailableError);
        expect(performance.now() - t0).toBeLessThan(100);
        // Subscribing while down is deferred, not refused.
        await broker.subscribe(uniqueChannel('down'));
        expect(rec.readiness).toEqual([]);
      } finally {
        await broker.close();
      }
    });
  });
});
