/**
 * The memory broker's total history budget (issue 13, defect 3): SIGNALBOX_HISTORY_MEMORY bounds
 * the history of all channels together; over it, the channels published to least recently lose
 * their oldest publications first, and a recovery that needed them is told `recovered: false`
 * with reason `history_evicted` — never a silent gap. Over real sockets, and on the broker itself
 * for the accounting.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, type Publication } from '@signalbox/protocol';
import { MemoryBroker } from '../src/broker/memory.js';
import { connectPrp, startGateway, uniqueChannel, type TestGateway } from './helpers/gateway.js';

const MiB = 1024 * 1024;
const BIG = 'x'.repeat(50_000);

describe('history budget over real sockets', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ historyMemoryBytes: MiB });
  });
  afterAll(() => gw.close());

  async function publishN(channel: string, n: number): Promise<{ epoch: string; offset: number }> {
    let last = { epoch: '', offset: 0 };
    for (let i = 0; i < n; i++) {
      const r = await gw.publish({ channel, type: 'big', data: { i, pad: BIG } });
      expect(r.status).toBe(200);
      last = { epoch: r.body.epoch as string, offset: r.body.offset as number };
    }
    return last;
  }

  it('evicts the least recently published channel first and says so to its recovery; recent channels recover exactly', async () => {
    const old = uniqueChannel('project');
    const recent = uniqueChannel('project');
    const oldPos = await publishN(old, 5);
    // 25 more publications of ~50 KB elsewhere: the 1 MiB budget is passed more than once.
    for (let k = 0; k < 5; k++) await publishN(uniqueChannel('project'), 5);
    const recentPos = await publishN(recent, 3);

    const c = await connectPrp(gw);
    const r = await c.request('subscribe', {
      channels: [
        { channel: old, since: { epoch: oldPos.epoch, offset: 0 } },
        { channel: recent, since: { epoch: recentPos.epoch, offset: 0 } },
      ],
    });
    expect(r.type).toBe('subscription.confirmed');
    const outcomes = r.data.channels as { channel: string; recovered: boolean; reason?: string; missed?: number; position: { offset: number } }[];
    const byName = new Map(outcomes.map((o) => [o.channel, o]));
    expect(byName.get(old)).toMatchObject({ recovered: false, reason: 'history_evicted', position: { offset: 5 } });
    expect(byName.get(recent)).toMatchObject({ recovered: true, missed: 3 });
    // The three missed publications of the recent channel follow, in order.
    const got = await c.collect((m) => m.type === 'big', 3);
    expect(got.map((m) => [m.channel, m.offset])).toEqual([[recent, 1], [recent, 2], [recent, 3]]);

    // A history read from the evicted position is refused with the same reason (WebSocket and HTTP).
    const h = await c.request('history', { channel: old, since: { epoch: oldPos.epoch, offset: 0 } });
    expect(h.type).toBe('error');
    expect(h.data).toMatchObject({ code: ErrorCode.UNRECOVERABLE_POSITION, details: { reason: 'history_evicted' } });
    const res = await fetch(`${gw.http}/v1/channels/${encodeURIComponent(old)}/history?since_epoch=${oldPos.epoch}&since_offset=0`, { headers: { authorization: 'Bearer test-api-key-0123456789' } });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: { details: { reason: string } } }).error.details.reason).toBe('history_evicted');
    // The position is kept: publishing goes on from offset 6 in the same epoch.
    const next = await gw.publish({ channel: old, type: 'big', data: 'small' });
    expect(next.body).toMatchObject({ epoch: oldPos.epoch, offset: 6 });
    await c.close();
  });
});

describe('history budget accounting (MemoryBroker)', () => {
  const policy = { size: 1000, ttlMs: 1000 };
  let clock = 1_000_000;
  const publishes: Publication[] = [];

  function broker(maxHistoryBytes: number): MemoryBroker {
    const b = new MemoryBroker({ maxHistoryBytes, now: () => clock });
    void b.start({ onPublication: (p) => publishes.push(p), onResync: () => {} });
    return b;
  }
  const publish = (b: MemoryBroker, channel: string, size: number) => b.publish({ channel, type: 'm', data: 1, size, history: policy, idempotencyWindowMs: 0 });

  it('never holds more than the budget, evicts least recent streams first, keeps the newest publication', async () => {
    const b = broker(MiB);
    for (let i = 0; i < 200; i++) {
      clock += 1;
      await publish(b, `c${i % 7}`, 20_000);
      expect(b.historyBytes()).toBeLessThanOrEqual(MiB);
    }
    // The stream appended to last (199 % 7 = 3) keeps its newest publication.
    const last = await b.history('c3', {});
    expect(last.publications.at(-1)!.offset).toBe(last.position.offset);
    // One publication larger than the whole budget is still retained (alone), and nothing else.
    clock += 1;
    await publish(b, 'huge', 2 * MiB);
    expect((await b.history('huge', {})).publications).toHaveLength(1);
    for (let i = 0; i < 7; i++) expect((await b.history(`c${i}`, {})).publications).toHaveLength(0);
    await b.close();
  });

  it('gives back what a trimmed, cleared or expired history held', async () => {
    const b = broker(64 * MiB);
    for (let i = 0; i < 10; i++) await publish(b, 'a', 1000);
    expect(b.historyBytes()).toBe(10 * 1200);
    // A smaller namespace size trims on the next publish.
    await b.publish({ channel: 'a', type: 'm', data: 1, size: 1000, history: { size: 2, ttlMs: 1000 }, idempotencyWindowMs: 0 });
    expect(b.historyBytes()).toBe(2 * 1200);
    await b.clearHistory('a');
    expect(b.historyBytes()).toBe(0);
    for (let i = 0; i < 4; i++) await publish(b, 'b', 1000);
    clock += 5000; // past the TTL: the next read drops it
    await b.history('b', {});
    expect(b.historyBytes()).toBe(0);
    await b.close();
  });
});
