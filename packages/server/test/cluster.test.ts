/**
 * Scale-out acceptance, part 1: three gateway processes on loopback sharing the Redis at
 * REDIS_URL (unique key prefix, deleted afterwards).
 *
 * - 500 SDK subscribers spread over the nodes receive a 200 msg/s HTTP stream; one node is killed
 *   with SIGKILL mid-stream; its clients (given the three URLs) reconnect to the others and recover;
 *   in the end every subscriber has every message exactly once, in order.
 * - A subscriber on node A receives, in offset order, what is published through node B's HTTP API
 *   and through a client connected to node C.
 *
 * Needs a build of the server (`npx tsc -b packages/server`).
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { SignalboxClient, type PublicationMessage } from '../../client/src/node.js';
import {
  checkAll, checkRecord, clusterToken, GatewayProcess, HttpPublisher, startNodes, startSubscribers, type RecordingSubscriber,
} from './helpers/cluster.js';
import { deleteKeys, describeWithRedis, probeRedis, uniquePrefix } from './helpers/redis.js';
import { until } from './helpers/wait.js';

const probe = await probeRedis();

describeWithRedis('cluster: three gateway processes on one Redis', probe, () => {
  let nodes: GatewayProcess[] = [];
  let subscribers: RecordingSubscriber[] = [];
  let publisher: HttpPublisher | null = null;
  const clients: SignalboxClient[] = [];
  let prefix = '';

  beforeEach(() => {
    prefix = uniquePrefix('cluster');
  });

  afterEach(async () => {
    publisher?.stop();
    publisher = null;
    for (const s of subscribers) s.close();
    for (const c of clients.splice(0)) c.disconnect();
    subscribers = [];
    await Promise.all(nodes.map((n) => n.kill()));
    nodes = [];
    await deleteKeys(probe.url, prefix);
  });

  it('SIGKILL of one node under a 200 msg/s stream: 500 subscribers each get every message exactly once, in order', async () => {
    const COUNT = 1000;
    const SUBSCRIBERS = 500;
    const KILL_AFTER = 400;
    nodes = await startNodes(3, { broker: probe.url, prefix });
    const channel = `project:kill_${randomBytes(4).toString('hex')}`;
    const idPrefix = `k${randomBytes(3).toString('hex')}-`;
    subscribers = await startSubscribers(SUBSCRIBERS, nodes.map((n) => n.wsUrl()), channel, idPrefix);

    // Spread: subscriber i started on node i % 3.
    const perNode = await Promise.all(nodes.map(async (n) => (await n.stats()).connections));
    expect(perNode.reduce((a, b) => a + b, 0)).toBe(SUBSCRIBERS);
    // (A client whose first attempt timed out on a loaded machine moved on to the next URL.)
    for (const c of perNode) expect(c).toBeGreaterThanOrEqual(SUBSCRIBERS / 6);

    const victim = nodes[0]!;
    // A window of publishes in flight keeps the rate on a loaded machine; offsets give the order.
    const all = nodes;
    publisher = new HttpPublisher(() => all.filter((n) => n.alive), channel, COUNT, idPrefix, { rate: 200, window: 8 });
    await publisher.waitAcked(KILL_AFTER, 180_000);
    const victimClients = (await victim.stats()).connections;
    const resubscribesBefore = subscribers.map((s) => s.resubscribes.length);
    await victim.kill('SIGKILL');
    await publisher.done;

    // Every message acknowledged once, in one epoch, at offsets 1..COUNT.
    const order = publisher.streamOrder();
    expect(order).toHaveLength(COUNT);
    expect(new Set(order.map((a) => a.epoch)).size).toBe(1);
    expect(order.map((a) => a.offset)).toEqual(Array.from({ length: COUNT }, (_, i) => i + 1));
    const end = order[COUNT - 1]!;

    await until(() => subscribers.every((s) => s.reached(end)), {
      label: 'every subscriber to reach the last message',
      timeoutMs: 180_000,
      intervalMs: 50,
      detail: () => {
        const behind = subscribers.filter((s) => !s.reached(end));
        return `${behind.length} behind, e.g. ${behind.slice(0, 5).map((s) => `${s.label} at ${JSON.stringify(s.last)} (${s.client.state})`).join(', ')}`;
      },
    });

    expect(checkAll(subscribers, (s) => checkRecord(s.events, order, 'exact'))).toEqual([]);
    for (const s of subscribers) expect(s.pubCount).toBe(COUNT);

    // The victim's clients did move: each resubscribed elsewhere after the kill, and every
    // resubscribe (theirs, and any other a loaded machine caused) recovered.
    expect(victimClients).toBeGreaterThanOrEqual(SUBSCRIBERS / 6);
    const moved = subscribers.filter((s, i) => s.resubscribes.length > resubscribesBefore[i]!).length;
    expect(moved).toBeGreaterThanOrEqual(victimClients);
    for (const s of subscribers) expect(s.resubscribes.every((r) => r.recovered === true), `${s.label}: ${JSON.stringify(s.resubscribes)}`).toBe(true);
    const survivors = nodes.filter((n) => n.alive);
    expect(survivors).toHaveLength(2);
    await until(async () => {
      const counts = await Promise.all(survivors.map(async (n) => (await n.stats()).connections));
      return counts.reduce((a, b) => a + b, 0) === SUBSCRIBERS;
    }, { label: 'all subscribers connected to the two survivors', timeoutMs: 30_000, intervalMs: 50 });
  }, 480_000);

  it('a subscriber on node A gets publishes made through node B (HTTP) and a client on node C, in offset order', async () => {
    const PER_SOURCE = 150;
    nodes = await startNodes(3, { broker: probe.url, prefix });
    const [a, b, c] = nodes as [GatewayProcess, GatewayProcess, GatewayProcess];
    // `agent:` accepts client publishes in the default namespace table.
    const channel = `agent:order_${randomBytes(4).toString('hex')}`;
    const token = await clusterToken();

    const received = new Map<string, PublicationMessage[]>();
    for (const [name, node] of [['A', a], ['B', b], ['C', c]] as const) {
      const client = new SignalboxClient({ url: node.wsUrl(), token, reconnect: false });
      client.on('error', () => {});
      clients.push(client);
      const got: PublicationMessage[] = [];
      received.set(name, got);
      const sub = client.subscribe(channel);
      sub.on('publication', (m) => {
        got.push(m);
      });
      const subscribed = new Promise<void>((resolve) => sub.on('subscribed', () => resolve()));
      await client.connect();
      await subscribed;
    }

    const publisherOnC = new SignalboxClient({ url: c.wsUrl(), token, reconnect: false });
    publisherOnC.on('error', () => {});
    clients.push(publisherOnC);
    await publisherOnC.connect();

    // Both sources at once, each in its own order; Redis decides the interleaving.
    const acks = new Map<string, { offset: number; epoch: string; source: string }>();
    const viaHttp = (async () => {
      for (let i = 1; i <= PER_SOURCE; i++) {
        const id = `http-${i}`;
        const res = await b.publish({ channel, id, type: 'via.http', data: { source: 'http', i } });
        expect(res.status, JSON.stringify(res.body)).toBe(200);
        acks.set(id, { offset: res.body.offset as number, epoch: res.body.epoch as string, source: 'http' });
      }
    })();
    const viaWs = (async () => {
      for (let i = 1; i <= PER_SOURCE; i++) {
        const id = `ws-${i}`;
        const ack = await publisherOnC.publish(channel, { source: 'ws', i }, { id, type: 'via.ws' });
        acks.set(id, { offset: ack.offset, epoch: ack.epoch, source: 'ws' });
      }
    })();
    await Promise.all([viaHttp, viaWs]);

    const total = 2 * PER_SOURCE;
    await until(() => [...received.values()].every((g) => g.length >= total), {
      label: 'the three subscribers to receive every publication',
      timeoutMs: 60_000,
      intervalMs: 50,
      detail: () => [...received].map(([k, g]) => `${k}: ${g.length}`).join(', '),
    });

    const expected = [...acks].sort((x, y) => x[1].offset - y[1].offset);
    expect(expected.map(([, v]) => v.offset)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(new Set(expected.map(([, v]) => v.epoch)).size).toBe(1);
    for (const [name, got] of received) {
      expect(got.map((m) => m.offset), `subscriber on node ${name}`).toEqual(expected.map(([, v]) => v.offset));
      expect(got.map((m) => m.id), `subscriber on node ${name}`).toEqual(expected.map(([id]) => id));
      expect(got.map((m) => m.type)).toEqual(expected.map(([, v]) => (v.source === 'http' ? 'via.http' : 'via.ws')));
    }
    // Each source's publications arrive in that source's order.
    const onA = received.get('A')!;
    const order = (src: string) => onA.filter((m) => (m.data as { source: string }).source === src).map((m) => (m.data as { i: number }).i);
    expect(order('http')).toEqual(Array.from({ length: PER_SOURCE }, (_, i) => i + 1));
    expect(order('ws')).toEqual(Array.from({ length: PER_SOURCE }, (_, i) => i + 1));
  }, 240_000);
});
