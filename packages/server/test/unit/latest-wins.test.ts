/**
 * Latest-wins delivery (`delivery: latest`, the `metrics` namespace by default), on one Connection
 * with a FakeTransport whose backlog the test sets: in step with the socket every publication goes
 * out; behind, only the newest per key (event type + `data[latestBy]`) is kept and goes out when
 * the socket drains, in offset order, without closing the connection as a slow consumer.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { unitNode, type FakeTransport, type UnitNode } from '../helpers/fake-transport.js';
import { latestKey } from '../../src/hub/hub.js';
import { quietPeriod } from '../helpers/wait.js';

let node: UnitNode;
beforeEach(async () => {
  node = await unitNode({ outboundBufferBytes: 64 * 1024, slowConsumerGraceMs: 50 });
});
afterEach(() => node.close());

const frame = (msg: unknown) => Buffer.from(JSON.stringify(msg));
const metricsNs = () => node.ctx.namespaces.resolve('metrics');

async function subscribedViewer() {
  const { conn, t } = node.connect(await node.token());
  conn.onFrame(frame({ id: 's', action: 'subscribe', payload: { channels: ['metrics'] } }), false);
  await vi.waitFor(() => expect(t.of('subscription.confirmed')).toHaveLength(1));
  return { conn, t };
}

async function sample(n: string, i: number) {
  const r = metricsNs();
  if (!r.ok) throw new Error('no metrics namespace');
  await node.ctx.ops.publish(r.channel, { type: 'metrics.node', data: { node: n, i } }, { via: 'gateway', service: 'metrics' });
}

const samples = (t: FakeTransport) => t.of('metrics.node').map((m) => `${m.data.node}${m.data.i}@${m.offset}`);

describe('latest-wins delivery', () => {
  it('the confirmation says delivery: latest', async () => {
    const { t } = await subscribedViewer();
    expect(t.of('subscription.confirmed')[0]!.data.channels[0]).toMatchObject({ channel: 'metrics', delivery: 'latest' });
  });

  it('in step with the socket, every publication goes out', async () => {
    const { t } = await subscribedViewer();
    for (let i = 1; i <= 3; i++) await sample('a', i);
    expect(samples(t)).toEqual(['a1@1', 'a2@2', 'a3@3']);
  });

  it('behind: only the newest per node is kept, sent when the socket drains, offsets still growing', async () => {
    const { conn, t } = await subscribedViewer();
    await sample('a', 1);
    t.backlog = 60 * 1024; // the socket holds more than a quarter of the 64 KiB outbound buffer
    for (let i = 2; i <= 50; i++) await sample(i % 2 ? 'a' : 'b', i);
    expect(samples(t)).toEqual(['a1@1']);
    t.drain();
    // b's newest (50 @ offset 50) and a's newest (49 @ 49), in offset order.
    expect(samples(t)).toEqual(['a1@1', 'a49@49', 'b50@50']);
    expect(conn.isOpen).toBe(true);
    // In step again: straight out.
    await sample('a', 51);
    expect(samples(t).at(-1)).toBe('a51@51');
  });

  it('a socket that stays behind is not closed as a slow consumer for it', async () => {
    const { conn, t } = await subscribedViewer();
    t.backlog = 10 * 1024 * 1024;
    for (let i = 0; i < 200; i++) await sample('a', i);
    await quietPeriod(80); // past the 50 ms slow-consumer grace
    await sample('a', 200);
    expect(conn.isOpen).toBe(true);
    expect(t.closes).toEqual([]);
    t.drain();
    expect(samples(t)).toEqual(['a200@201']);
  });

  it('the key: event type and data[latestBy] (strings and numbers), else the type alone', () => {
    const pub = (type: string, data: unknown) => ({ id: 'x', channel: 'metrics', type, data, offset: 1, epoch: 'e', time: 0 });
    expect(latestKey(pub('metrics.node', { node: 'n1' }), 'node')).toBe('metrics.node\u0000n1');
    expect(latestKey(pub('cpu', { node: 7 }), 'node')).toBe('cpu\u00007');
    expect(latestKey(pub('cpu', { other: 1 }), 'node')).toBe('cpu');
    expect(latestKey(pub('cpu', [1, 2]), 'node')).toBe('cpu');
    expect(latestKey(pub('cpu', { node: { nested: 1 } }), 'node')).toBe('cpu');
  });
});
