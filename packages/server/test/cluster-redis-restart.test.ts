/**
 * Scale-out acceptance, part 2: three gateway processes on a private redis-server that is killed
 * (SIGKILL) while an HTTP publisher is publishing, then restarted — once with its data kept (AOF,
 * fsync always), once without.
 *
 * - While Redis is down: every node's `/readyz` is 503, an HTTP publish answers 503 UNAVAILABLE
 *   (while Redis is still down, so it did not wait for it), a WebSocket publish gets an `error`
 *   UNAVAILABLE, a subscribe to a channel the node does not carry yet is refused UNAVAILABLE (and
 *   goes through, retried by the SDK, once Redis is back).
 * - After the restart, the same node processes are ready again (no node restart).
 * - Data kept: every subscriber has every acknowledged message exactly once, in order.
 * - Data lost: every subscriber is told `recovered: false` (epoch_changed), and nothing it misses
 *   is missed silently.
 *
 * Needs a build of the server (`npx tsc -b packages/server`).
 */
import { randomBytes } from 'node:crypto';
import { afterEach, expect, it } from 'vitest';
import { SignalboxClient, type SignalboxError } from '../../client/src/node.js';
import {
  checkAll, checkRecord, clusterToken, describeWithRedisServer, GatewayProcess, HttpPublisher, startNodes, startSubscribers,
  type RecordingSubscriber,
} from './helpers/cluster.js';
import { uniquePrefix } from './helpers/redis.js';
import { RedisServerProcess } from './helpers/redis-server.js';
import { until } from './helpers/wait.js';

const SUBSCRIBERS = 60;
const COUNT = 600;
const RESTART_AFTER = 150;

describeWithRedisServer('cluster: Redis restarted while publishing', () => {
  let redis: RedisServerProcess | null = null;
  let nodes: GatewayProcess[] = [];
  let subscribers: RecordingSubscriber[] = [];
  let publisher: HttpPublisher | null = null;
  const clients: SignalboxClient[] = [];

  afterEach(async () => {
    publisher?.stop();
    publisher = null;
    for (const s of subscribers) s.close();
    subscribers = [];
    for (const c of clients.splice(0)) c.disconnect();
    await Promise.all(nodes.map((n) => n.kill()));
    nodes = [];
    await redis?.stop();
    redis = null;
  });

  for (const keepData of [true, false]) {
    const title = keepData
      ? 'with its data kept: exact delivery, 503 UNAVAILABLE while down, nodes ready again without a restart'
      : 'without its data: every subscriber is told recovered: false, no silent gap, nodes ready again without a restart';
    it(title, async () => {
      redis = await RedisServerProcess.start({ persistent: keepData });
      nodes = await startNodes(3, { broker: redis.url, prefix: uniquePrefix(keepData ? 'restart-kept' : 'restart-lost') });
      const all = nodes;
      const pids = all.map((n) => n.pid);
      const tag = randomBytes(4).toString('hex');
      const channel = `project:restart_${tag}`;
      const idPrefix = `r${tag}-`;
      subscribers = await startSubscribers(SUBSCRIBERS, all.map((n) => n.wsUrl()), channel, idPrefix);

      // A WebSocket publisher on node C (`agent:` accepts client publishes).
      const wsPublisher = new SignalboxClient({ url: all[2]!.wsUrl(), token: await clusterToken('usr_ws'), reconnectInterval: 100, maxReconnectInterval: 1000 });
      wsPublisher.on('error', () => {});
      clients.push(wsPublisher);
      await wsPublisher.connect();
      const wsChannel = `agent:restart_${tag}`;
      expect((await wsPublisher.publish(wsChannel, { before: true })).offset).toBe(1);

      publisher = new HttpPublisher(() => all.filter((n) => n.alive), channel, COUNT, idPrefix, { rate: 200, window: 4, perMessageTimeoutMs: 120_000 });
      await publisher.waitAcked(RESTART_AFTER, 120_000);
      await redis.kill9();

      // Down: not ready, and publishing fails fast, over HTTP and WebSocket.
      await Promise.all(all.map((n) => n.waitReady(503, 60_000)));
      for (const node of all) {
        const res = await node.publish({ channel, id: `probe-${node.name}`, data: { probe: true } }, 15_000);
        expect(res.status, node.name).toBe(503);
        expect((res.body.error as { code: string }).code).toBe('UNAVAILABLE');
      }
      const wsError = await wsPublisher.publish(wsChannel, { during: true }).then(() => null, (err: SignalboxError) => err);
      expect(wsError?.code).toBe('UNAVAILABLE');
      // A subscribe to a channel no one on the node carries needs Redis: refused UNAVAILABLE (the SDK retries it).
      const lateChannel = `project:late_${tag}`;
      const late = new SignalboxClient({ url: all[1]!.wsUrl(), token: await clusterToken('usr_late'), reconnectInterval: 100, maxReconnectInterval: 1000 });
      late.on('error', () => {});
      clients.push(late);
      const lateSub = late.subscribe(lateChannel);
      const lateRefused = new Promise<SignalboxError>((resolve) => lateSub.on('error', resolve));
      const lateSubscribed = new Promise<void>((resolve) => lateSub.on('subscribed', () => resolve()));
      const lateGot: number[] = [];
      lateSub.on('publication', (m) => {
        lateGot.push(m.offset);
      });
      await late.connect();
      expect((await lateRefused).code).toBe('UNAVAILABLE');
      // The publisher kept trying during the outage (same ids).
      await until(() => publisher!.failureCount > 0, { label: 'the publisher to hit the outage', timeoutMs: 60_000, intervalMs: 50 });
      await redis.restart(keepData);

      // Up again: the same processes become ready by themselves.
      await Promise.all(all.map((n) => n.waitReady(200, 60_000)));
      expect(all.map((n) => n.pid)).toEqual(pids);
      expect(all.every((n) => n.alive)).toBe(true);
      await publisher.done;
      expect((await wsPublisher.publish(wsChannel, { after: true })).duplicate).toBe(false);
      // The refused subscribe went through once Redis was back, and is live.
      await lateSubscribed;
      const lateAck = await all[0]!.publish({ channel: lateChannel, data: { late: true } });
      expect(lateAck.status).toBe(200);
      await until(() => lateGot.includes(lateAck.body.offset as number), { label: 'the late subscriber to get its publication', timeoutMs: 60_000, intervalMs: 50 });

      const order = publisher.streamOrder();
      expect(order).toHaveLength(COUNT);
      const epochs = [...new Set(order.map((a) => a.epoch))];
      const end = order[order.length - 1]!;
      await until(() => subscribers.every((s) => s.reached(end)), {
        label: 'every subscriber to reach the last message',
        timeoutMs: 120_000,
        intervalMs: 50,
        detail: () => {
          const behind = subscribers.filter((s) => !s.reached(end));
          return `${behind.length} behind, e.g. ${behind.slice(0, 5).map((s) => `${s.label} at ${JSON.stringify(s.last)} (${s.client.state})`).join(', ')}`;
        },
      });

      if (keepData) {
        // One stream, offsets 1..COUNT; each subscriber got exactly that.
        expect(epochs).toHaveLength(1);
        expect(order.map((a) => a.offset)).toEqual(Array.from({ length: COUNT }, (_, i) => i + 1));
        expect(checkAll(subscribers, (s) => checkRecord(s.events, order, 'exact'))).toEqual([]);
      } else {
        // The stream restarted in a new epoch; every subscriber was told, and missed nothing silently.
        expect(epochs).toHaveLength(2);
        expect(checkAll(subscribers, (s) => {
          const told = s.events.some((e) => e.kind === 'recovery_failed' && e.reason === 'epoch_changed');
          return [...(told ? [] : ['never told recovered: false (epoch_changed)']), ...checkRecord(s.events, order, { announced: true, retried: publisher!.retried })];
        })).toEqual([]);
      }
    }, 300_000);
  }
});
