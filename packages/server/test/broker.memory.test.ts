import { describe, expect, it } from 'vitest';
import { MemoryBroker } from '../src/broker/memory.js';
import { brokerContract, type BrokerFactory } from './contract/broker.contract.js';

// One process, one engine: no second node to share it with, and every publication reaches the handler.
const factory: BrokerFactory = Object.assign(
  async () => {
    const broker = new MemoryBroker();
    return { broker, cleanup: () => broker.close() };
  },
  { capabilities: { sharedEngine: false, selectiveDelivery: false } },
);

brokerContract('memory', factory);

describe('MemoryBroker idempotency key cap', () => {
  const req = (i: number, key: string) => ({
    channel: 'project:cap', type: 'e', data: { i }, publisher: { via: 'http' as const, key: 'p' }, idempotencyKey: key,
    history: { size: 0, ttlMs: 0 }, idempotencyWindowMs: 60_000,
  });

  it('past the cap the oldest keys go, in bulk, and the newest are still deduplicated', async () => {
    const broker = new MemoryBroker({ maxIdempotencyKeys: 640 });
    await broker.start({ onPublication: () => {}, onResync: () => {} });
    for (let i = 0; i < 1000; i++) expect((await broker.publish(req(i, `k${i}`))).duplicate).toBe(false);
    // The newest 500 are remembered: a repeat is a duplicate carrying the first publish's offset.
    for (let i = 500; i < 1000; i++) {
      const r = await broker.publish(req(i, `k${i}`));
      expect(r.duplicate).toBe(true);
      expect(r.publication.offset).toBe(i + 1);
    }
    // The oldest went to make room: publishing one again is a new publication.
    const again = await broker.publish(req(0, 'k0'));
    expect(again.duplicate).toBe(false);
    expect(again.publication.offset).toBe(1001);
    await broker.close();
  });
});

describe('MemoryBroker history budget with appends', () => {
  it('an append counts twice its size (itself and folded into its message); trimming a message frees its appends', async () => {
    const broker = new MemoryBroker();
    await broker.start({ onPublication: () => {}, onResync: () => {} });
    const publisher = { via: 'ws' as const, sub: 'agent', client: 'c' };
    const base = { channel: 'agent:budget', type: 'm', publisher, history: { size: 1, ttlMs: 60_000 }, idempotencyWindowMs: 0 };
    await broker.publish({ ...base, data: 'a', id: 'm', size: 1000 });
    const one = broker.historyBytes();
    await broker.publish({ ...base, data: 'b', id: 'm.1', appendTo: 'm', size: 1000 });
    const appendBytes = broker.historyBytes() - one;
    expect(appendBytes - one).toBe(1000);
    // A new message trims the old one with its append: only the new message is counted.
    await broker.publish({ ...base, data: 'c', id: 'n', size: 1000 });
    expect(broker.historyBytes()).toBe(one);
    await broker.close();
  });

  it('over budget, an idle stream loses its oldest message with its appends; the stream appended to keeps its whole message', async () => {
    const broker = new MemoryBroker({ maxHistoryBytes: 20_000 });
    await broker.start({ onPublication: () => {}, onResync: () => {} });
    const publisher = { via: 'ws' as const, sub: 'agent', client: 'c' };
    const req = (channel: string, id: string, appendTo?: string, size = 1000) => ({
      channel, type: 'm', data: 'x', id, publisher, history: { size: 100, ttlMs: 60_000 }, idempotencyWindowMs: 0, size,
      ...(appendTo ? { appendTo } : {}),
    });
    // 3200 + 2200 + 1200 bytes; then 1200 + 6 x 2200: 21,000 > 20,000, and dropping the oldest
    // message alone (3200) is enough for the 18,000 target: its append must go with it.
    await broker.publish(req('agent:idle', 'old', undefined, 3000));
    await broker.publish(req('agent:idle', 'old.1', 'old'));
    await broker.publish(req('agent:idle', 'kept'));
    // A long answer on another channel pushes the budget over.
    await broker.publish(req('agent:busy', 'ans'));
    for (let i = 0; i < 6; i++) await broker.publish(req('agent:busy', `ans.${i}`, 'ans'));
    const idle = await broker.history('agent:idle', { compact: true });
    expect(idle.publications.map((p) => p.id)).toEqual(['kept']);
    expect(idle.earliestOffset).toBe(3);
    expect(idle.evictedThrough).toBe(2);
    const busy = await broker.history('agent:busy', { compact: true });
    expect(busy.publications.map((p) => [p.id, p.data, p.through])).toEqual([['ans', 'xxxxxxx', 7]]);
    expect(broker.historyBytes()).toBeLessThanOrEqual(20_000);
    await broker.close();
  });
});
