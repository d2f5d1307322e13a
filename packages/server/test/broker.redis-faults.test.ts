/**
 * RedisBroker under faults, against a private redis-server it may kill, pause and restart.
 * Every test is bounded in time; the server is always killed in afterEach.
 */
import { afterEach, expect, it } from 'vitest';
import type { Publication } from '@signalbox/protocol';
import { RedisBroker } from '../src/broker/redis.js';
import { BrokerUnavailableError } from '../src/broker/types.js';
import { publishTo, Recorder, uniqueChannel } from './contract/broker.contract.js';
import { describeWithRedisServer, RedisServerProcess } from './helpers/redis-server.js';

const COMMAND_TIMEOUT_MS = 500;
/** Slack for "fails fast" assertions on a loaded 2-core CI machine. */
const MARGIN_MS = 400;


describeWithRedisServer('RedisBroker faults (private redis-server)', () => {
  let server: RedisServerProcess | null = null;
  let broker: RedisBroker | null = null;

  afterEach(async () => {
    server?.resume();
    await broker?.close();
    await server?.stop();
    broker = null;
    server = null;
  });

  async function startBroker(url: string, heartbeatMs = 60_000): Promise<{ broker: RedisBroker; rec: Recorder }> {
    const rec = new Recorder();
    broker = new RedisBroker({ url, prefix: 'faults', commandTimeoutMs: COMMAND_TIMEOUT_MS, reconnectMaxMs: 200, heartbeatMs });
    await broker.start(rec);
    expect(broker.isReady()).toBe(true);
    return { broker, rec };
  }

  async function expectFastUnavailable(b: RedisBroker, channel: string): Promise<number> {
    const t0 = performance.now();
    await expect(publishTo(b, channel, 'during outage')).rejects.toBeInstanceOf(BrokerUnavailableError);
    const elapsed = performance.now() - t0;
    expect(elapsed).toBeLessThan(COMMAND_TIMEOUT_MS + MARGIN_MS);
    return elapsed;
  }

  it('kill -9 while publishing, restart with data: recovers by itself, same epoch, offsets continue', async () => {
    server = await RedisServerProcess.start({ persistent: true });
    const { broker: b, rec } = await startBroker(server.url);
    const ch = uniqueChannel('kill9');
    await b.subscribe(ch);
    const epoch = (await publishTo(b, ch, 'first')).publication.epoch;

    // Publish continuously; the loop ends at the first failure (the kill).
    const acked: Publication[] = [];
    const failures: unknown[] = [];
    let reached20: () => void = () => {};
    const twenty = new Promise<void>((r) => (reached20 = r));
    const loop = (async () => {
      for (let i = 0; ; i++) {
        try {
          acked.push((await publishTo(b, ch, { i })).publication);
          if (acked.length === 20) reached20();
        } catch (err) {
          failures.push(err);
          return;
        }
      }
    })();
    await twenty;
    await server.kill9();
    await loop;
    await rec.until(() => rec.readiness.includes(false), 'readiness false');
    expect(failures).toHaveLength(1);
    expect(failures[0]).toBeInstanceOf(BrokerUnavailableError);
    expect(b.isReady()).toBe(false);
    await expectFastUnavailable(b, ch);
    await expect(b.history(ch, {})).rejects.toBeInstanceOf(BrokerUnavailableError);

    await server.restart(true);
    await rec.until(() => b.isReady() && rec.resyncs.length > 0, 'ready again and a resync', 10_000);
    expect(rec.readiness).toEqual([true, false, true]);
    expect(rec.resyncs).toEqual([null]);

    // Every acknowledged publication survived (appendfsync always), in the same epoch.
    const h = await b.history(ch, {});
    expect(h.position.epoch).toBe(epoch);
    const stored = new Map(h.publications.map((p) => [p.offset, p]));
    for (const p of acked) expect(stored.get(p.offset)).toEqual(p);
    // Offsets continue: past every acknowledged one; at most the one in flight at the kill may have been applied.
    const maxAcked = Math.max(...acked.map((p) => p.offset));
    const next = (await publishTo(b, ch, 'after restart')).publication;
    expect(next.epoch).toBe(epoch);
    expect(next.offset).toBeGreaterThan(maxAcked);
    expect(next.offset).toBeLessThanOrEqual(maxAcked + 2);
    // The subscription came back by itself.
    await rec.until(() => rec.of(ch).some((p) => p.offset === next.offset), 'delivery after restart');
  }, 30_000);

  it('restart without data: a new epoch, offsets restart, no (epoch, offset) pair reused', async () => {
    server = await RedisServerProcess.start({ persistent: false });
    const { broker: b, rec } = await startBroker(server.url);
    const ch = uniqueChannel('wipe');
    await b.subscribe(ch);
    const before: Publication[] = [];
    for (let i = 0; i < 5; i++) before.push((await publishTo(b, ch, i)).publication);
    const oldEpoch = before[0]!.epoch;
    // An ack does not mean the pub/sub copy has left Redis: the reply and the copy are two writes
    // to two sockets, and a SIGKILL between them loses the copy (a wiped restart, the history too;
    // seen once in CI under load). Kill only once all five arrived: what is checked is the restart.
    await rec.publicationsOf(ch, 5);

    await server.kill9();
    await rec.until(() => rec.readiness.includes(false), 'readiness false');
    await expectFastUnavailable(b, ch);
    await server.restart(false);
    await rec.until(() => b.isReady() && rec.resyncs.length > 0, 'ready again and a resync', 10_000);

    // What the hub sees when it resyncs: a different epoch, so it cannot mistake the new stream for the old.
    const h = await b.history(ch, {});
    expect(h.position.epoch).not.toBe(oldEpoch);
    expect(h.position.offset).toBe(0);
    const after: Publication[] = [];
    for (let i = 0; i < 5; i++) after.push((await publishTo(b, ch, i)).publication);
    expect(after.map((p) => p.offset)).toEqual([1, 2, 3, 4, 5]);
    expect(new Set(after.map((p) => p.epoch))).toEqual(new Set([h.position.epoch]));
    const pairs = [...before, ...after].map((p) => `${p.epoch}/${p.offset}`);
    expect(new Set(pairs).size).toBe(pairs.length);
    // The subscription came back by itself: the new stream arrives through pub/sub, in order.
    const delivered = await rec.publicationsOf(ch, 10);
    expect(delivered.slice(5).map((p) => `${p.epoch}/${p.offset}`)).toEqual(after.map((p) => `${p.epoch}/${p.offset}`));
  }, 30_000);

  it('hung Redis (SIGSTOP): publish rejects within the timeout, the event loop stays responsive, recovery after SIGCONT', async () => {
    server = await RedisServerProcess.start({ persistent: false });
    const { broker: b, rec } = await startBroker(server.url);
    const ch = uniqueChannel('hung');
    const first = (await publishTo(b, ch, 'before')).publication;

    server.pause();
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    try {
      const t0 = performance.now();
      const err = await publishTo(b, ch, 'hung').then(
        () => null,
        (e: unknown) => e,
      );
      const elapsed = performance.now() - t0;
      expect(err).toBeInstanceOf(BrokerUnavailableError);
      expect(elapsed).toBeLessThan(COMMAND_TIMEOUT_MS + MARGIN_MS);
      // Timers kept firing while the publish waited: nothing blocked the loop.
      expect(ticks).toBeGreaterThanOrEqual(Math.floor(elapsed / 10 / 4));
    } finally {
      clearInterval(ticker);
    }
    // The silent socket is declared dead: readiness drops and later calls fail fast.
    await rec.until(() => rec.readiness.includes(false), 'readiness false', 5000);
    expect(await expectFastUnavailable(b, ch)).toBeLessThan(100);

    server.resume();
    await rec.until(() => b.isReady(), 'ready after SIGCONT', 10_000);
    const next = (await publishTo(b, ch, 'after')).publication;
    expect(next.epoch).toBe(first.epoch);
    // The timed-out publish may still have run when Redis woke up (its bytes were already sent):
    // outcome unknown, which is why publishers retry with an idempotency key.
    expect([2, 3]).toContain(next.offset);
  }, 30_000);

  it('an idle hung Redis is noticed by the heartbeat; the subscription resyncs after SIGCONT', async () => {
    server = await RedisServerProcess.start({ persistent: false });
    const { broker: b, rec } = await startBroker(server.url, 100);
    const ch = uniqueChannel('idle');
    await b.subscribe(ch);
    await publishTo(b, ch, 'before');
    await rec.publicationsOf(ch, 1);

    server.pause();
    // No command of ours is pending: only the heartbeat can tell.
    await rec.until(() => rec.readiness.includes(false), 'readiness false from the heartbeat', 5000);
    await expectFastUnavailable(b, ch);

    server.resume();
    await rec.until(() => b.isReady() && rec.resyncs.length > 0, 'ready again and a resync', 10_000);
    expect(rec.resyncs).toEqual([null]);
    await publishTo(b, ch, 'after');
    expect((await rec.publicationsOf(ch, 2)).map((p) => p.offset)).toEqual([1, 2]);
  }, 30_000);
});
