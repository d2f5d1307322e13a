/**
 * Recovery outcomes, table-driven, over real sockets (both dialects): same epoch, changed epoch
 * (gateway restart), position older than history, history expired, position ahead, no history.
 * Whatever the outcome, the subscriber then gets live publications from `position + 1`, and a
 * failed recovery delivers nothing of the past: never a silent partial recovery.
 *
 * Also: `recoveryOutcome` unit table, and the hub's gap repair when the broker loses a
 * publication on its way to the hub (repaired from history, or 4011 when history lost it too).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode, type Publication } from '@signalbox/protocol';
import { recoveryOutcome, type HistoryResult } from '../src/index.js';
import { TEST_API_KEY, connectPrd, connectPrp, startGateway, uniqueChannel, type Msg, type TestClient, type TestGateway } from './helpers/gateway.js';
import {
  WithholdingBroker, awaitOffset, historyHttp, namespace, namespacesWith, outcomeOf, positionOf, prdRequest,
  publications, publishManyHttp, quietPeriod, streamViolation, subscribePrp, type Position,
} from './helpers/delivery-kit.js';
import { until } from './helpers/wait.js';

const TTL_MS = 300;

interface Setup {
  channel: string;
  since: Position;
}

interface RecoveryCase {
  name: string;
  setup(gw: TestGateway, restarted: Position & { channel: string }): Promise<Setup>;
  /** Expected outcome, given the stream position at subscribe time. */
  expected(since: Position, position: Position): { recovered: boolean; reason?: string; missed?: number };
}

async function publishN(gw: TestGateway, channel: string, n: number): Promise<Position> {
  await publishManyHttp(gw, channel, n, 1);
  return positionOf(gw, channel);
}

const CASES: RecoveryCase[] = [
  {
    name: 'same epoch, behind: exactly the missed publications',
    async setup(gw) {
      const channel = uniqueChannel('project');
      const pos = await publishN(gw, channel, 10);
      return { channel, since: { epoch: pos.epoch, offset: 4 } };
    },
    expected: (since, position) => ({ recovered: true, missed: position.offset - since.offset }),
  },
  {
    name: 'same epoch, from offset 0 (subscribed before the first publication)',
    async setup(gw) {
      const channel = uniqueChannel('project');
      const pos = await publishN(gw, channel, 7);
      return { channel, since: { epoch: pos.epoch, offset: 0 } };
    },
    expected: (_since, position) => ({ recovered: true, missed: position.offset }),
  },
  {
    name: 'same epoch, at the top: recovered with nothing missed',
    async setup(gw) {
      const channel = uniqueChannel('project');
      const pos = await publishN(gw, channel, 5);
      return { channel, since: pos };
    },
    expected: () => ({ recovered: true, missed: 0 }),
  },
  {
    name: 'same epoch, oldest retained is exactly since+1: recovered',
    async setup(gw) {
      const channel = uniqueChannel('short'); // keeps 5
      const pos = await publishN(gw, channel, 12);
      return { channel, since: { epoch: pos.epoch, offset: 7 } };
    },
    expected: () => ({ recovered: true, missed: 5 }),
  },
  {
    name: 'changed epoch (the gateway restarted with a new memory broker)',
    async setup(gw, restarted) {
      const channel = restarted.channel;
      await publishN(gw, channel, 3);
      return { channel, since: { epoch: restarted.epoch, offset: restarted.offset } };
    },
    expected: () => ({ recovered: false, reason: 'epoch_changed' }),
  },
  {
    name: 'position older than history',
    async setup(gw) {
      const channel = uniqueChannel('short'); // keeps 5
      const pos = await publishN(gw, channel, 12);
      return { channel, since: { epoch: pos.epoch, offset: 6 } };
    },
    expected: () => ({ recovered: false, reason: 'too_far_behind' }),
  },
  {
    name: 'history expired (idle past the namespace TTL)',
    async setup(gw) {
      const channel = uniqueChannel('brief'); // TTL 300 ms
      const pos = await publishN(gw, channel, 6);
      // Wait for the TTL by watching the history endpoint, not by sleeping blindly.
      await until(async () => (await historyHttp(gw, channel)).body.publications.length === 0, { label: 'history to expire', timeoutMs: 20_000 });
      return { channel, since: { epoch: pos.epoch, offset: 3 } };
    },
    expected: () => ({ recovered: false, reason: 'history_expired' }),
  },
  {
    name: 'position ahead of the stream',
    async setup(gw) {
      const channel = uniqueChannel('project');
      const pos = await publishN(gw, channel, 4);
      return { channel, since: { epoch: pos.epoch, offset: 9 } };
    },
    expected: () => ({ recovered: false, reason: 'position_ahead' }),
  },
  {
    name: 'no history (metrics keeps none)',
    async setup(gw) {
      const channel = 'metrics';
      const pos = await publishN(gw, channel, 5);
      return { channel, since: { epoch: pos.epoch, offset: pos.offset - 3 } };
    },
    expected: () => ({ recovered: false, reason: 'no_history' }),
  },
];

describe('recovery outcomes over real sockets', () => {
  let gw: TestGateway;
  /** A position (and channel) seen on a gateway that has since been stopped. */
  let restarted: Position & { channel: string };

  beforeAll(async () => {
    const table = namespacesWith(namespace('short', { historySize: 5 }), namespace('brief', { historySize: 100, historyTtlMs: TTL_MS }));
    // A first gateway process: a client subscribes, sees some publications, then the gateway stops.
    const before = await startGateway({ namespaces: table });
    const channel = uniqueChannel('project');
    const client = await connectPrp(before);
    await subscribePrp(client, channel);
    await publishManyHttp(before, channel, 3, 1);
    const seen = await awaitOffset(client, channel, 3);
    restarted = { channel, epoch: seen.epoch, offset: seen.offset };
    const closed = client.closed;
    await before.close();
    expect((await closed).code).toBe(CloseCode.SERVICE_RESTART);
    // ...and starts again: a new memory broker, so every stream is in a new epoch.
    gw = await startGateway({ namespaces: table });
  }, 60_000);
  afterAll(() => gw?.close());

  for (const dialect of ['prp', 'prd'] as const) {
    describe(dialect, () => {
      for (const c of CASES) {
        it(c.name, async () => {
          const { channel, since } = await c.setup(gw, restarted);
          const client: TestClient = dialect === 'prp' ? await connectPrp(gw) : await connectPrd(gw);
          let outcome: Msg;
          let confIdx: number;
          if (dialect === 'prp') {
            const conf = await subscribePrp(client, channel, since);
            expect(conf.type).toBe('subscription.confirmed');
            outcome = outcomeOf(conf, channel);
            confIdx = client.messages.indexOf(conf);
          } else {
            const ack = await prdRequest(client, { type: 'subscribe', channel, data: { since } });
            expect(ack).toMatchObject({ type: 'ack', channel, data: { action: 'subscribe' } });
            outcome = ack.data as Msg;
            confIdx = client.messages.indexOf(ack);
          }
          const position = outcome.position as Position;
          expect(position).toEqual(await positionOf(gw, channel));
          const want = c.expected(since, position);
          expect({ recovered: outcome.recovered, reason: outcome.reason, missed: outcome.missed }).toEqual({
            recovered: want.recovered, reason: want.reason, missed: want.missed,
          });

          // What history held after `since` when the subscription went live (before more publications).
          const recoverable = want.recovered ? (await historyHttp(gw, channel, { since, limit: 1000 })).body.publications as Msg[] : [];
          // Then live traffic: the next publication is position+1, right after whatever was recovered.
          const live = await gw.publish({ channel, type: 'test.live', data: { live: true } });
          expect(live.body.offset).toBe(position.offset + 1);
          await awaitOffset(client, channel, position.offset + 1);
          await quietPeriod(100); // nothing else may follow (no duplicate)
          const got = publications(client, channel, confIdx + 1);
          const first = want.recovered ? since.offset + 1 : position.offset + 1;
          expect(streamViolation(got.map((m) => m.offset), first)).toBeNull();
          expect(got.at(-1)).toMatchObject({ id: live.body.id, offset: position.offset + 1, epoch: position.epoch });
          expect(got.slice(0, -1).map((m) => m.id)).toEqual(recoverable.map((p) => p.id));
          await client.close();
        });
      }
    });
  }

  it('a PRP subscribe recovering several channels at once gets each outcome separately, in one confirmation', async () => {
    const ok = uniqueChannel('project');
    const okPos = await publishN(gw, ok, 6);
    const ahead = uniqueChannel('project');
    const aheadPos = await publishN(gw, ahead, 2);
    const client = await connectPrp(gw);
    const conf = await client.request('subscribe', {
      channels: [{ channel: ok, since: { epoch: okPos.epoch, offset: 2 } }, { channel: ahead, since: { epoch: aheadPos.epoch, offset: 5 } }],
    });
    expect(outcomeOf(conf, ok)).toMatchObject({ recovered: true, missed: 4, position: okPos });
    expect(outcomeOf(conf, ahead)).toMatchObject({ recovered: false, reason: 'position_ahead', position: aheadPos });
    await awaitOffset(client, ok, 6);
    await quietPeriod(100); // and nothing from `ahead`'s past
    expect(publications(client, ok).map((m) => m.offset)).toEqual([3, 4, 5, 6]);
    expect(publications(client, ahead)).toEqual([]);
    await client.close();
  });
});

describe('recoveryOutcome (unit table)', () => {
  const ns = namespace('project', { historySize: 10 });
  const noHistory = namespace('metrics', { historySize: 0 });
  const pub = (offset: number, epoch = 'E1'): Publication => ({ id: `p${offset}`, channel: 'project:x', type: 'message', data: null, offset, epoch, time: 0 });
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => pub(from + i));
  const hist = (top: number, earliest: number, pubs: Publication[], epoch = 'E1'): HistoryResult => ({ position: { epoch, offset: top }, earliestOffset: earliest, publications: pubs });

  const table: { name: string; ns?: typeof ns; hist: HistoryResult; since?: Position; recovered?: boolean; reason?: string; missed?: number[] }[] = [
    { name: 'no since: position only', hist: hist(5, 1, []), missed: [] },
    { name: 'same epoch, behind', hist: hist(10, 1, range(4, 10)), since: { epoch: 'E1', offset: 3 }, recovered: true, missed: [4, 5, 6, 7, 8, 9, 10] },
    { name: 'same epoch, at the top', hist: hist(10, 1, []), since: { epoch: 'E1', offset: 10 }, recovered: true, missed: [] },
    { name: 'at the top of a stream with no history', ns: noHistory, hist: hist(10, 11, []), since: { epoch: 'E1', offset: 10 }, recovered: true, missed: [] },
    { name: 'epoch changed', hist: hist(10, 1, range(1, 10), 'E2'), since: { epoch: 'E1', offset: 3 }, recovered: false, reason: 'epoch_changed' },
    { name: 'epoch changed wins over ahead', hist: hist(1, 1, range(1, 1), 'E2'), since: { epoch: 'E1', offset: 30 }, recovered: false, reason: 'epoch_changed' },
    { name: 'position ahead', hist: hist(10, 1, []), since: { epoch: 'E1', offset: 11 }, recovered: false, reason: 'position_ahead' },
    { name: 'no history in the namespace', ns: noHistory, hist: hist(10, 11, []), since: { epoch: 'E1', offset: 4 }, recovered: false, reason: 'no_history' },
    { name: 'history expired', hist: hist(10, 11, []), since: { epoch: 'E1', offset: 4 }, recovered: false, reason: 'history_expired' },
    { name: 'older than history', hist: hist(20, 11, range(11, 20)), since: { epoch: 'E1', offset: 5 }, recovered: false, reason: 'too_far_behind' },
    { name: 'oldest retained is since+1', hist: hist(20, 11, range(11, 20)), since: { epoch: 'E1', offset: 10 }, recovered: true, missed: range(11, 20).map((p) => p.offset) },
    {
      name: 'a hole in what history returned: refused, not partial',
      hist: hist(10, 1, [...range(4, 6), ...range(8, 10)]), since: { epoch: 'E1', offset: 3 }, recovered: false, reason: 'too_far_behind',
    },
    { name: 'history returned fewer than missed (truncated): refused', hist: hist(10, 1, range(4, 8)), since: { epoch: 'E1', offset: 3 }, recovered: false, reason: 'too_far_behind' },
  ];

  for (const row of table) {
    it(row.name, () => {
      const { outcome, missed } = recoveryOutcome('project:x', row.ns ?? ns, row.hist, row.since);
      expect(outcome.channel).toBe('project:x');
      expect(outcome.position).toEqual(row.hist.position);
      expect(outcome.recovered).toBe(row.recovered);
      expect(outcome.reason).toBe(row.reason);
      expect(missed.map((p) => p.offset)).toEqual(row.missed ?? []);
      if (row.recovered) expect(outcome.missed).toBe(missed.length);
      else expect(outcome.missed).toBeUndefined();
    });
  }
});

describe('a recovery larger than the outbound buffer', () => {
  it('is delivered in full (no 4010), then the subscriber is live and counted once', async () => {
    // A small outbound buffer: the recovery burst (60 publications of 1 KiB) is far above it, but a
    // recovery is bounded by the namespace's history and does not count against the limit.
    const gw = await startGateway({ outboundBufferBytes: 16 * 1024 });
    try {
      const channel = uniqueChannel('project');
      const reader = await connectPrp(gw);
      const conf = outcomeOf(await subscribePrp(reader, channel), channel);
      for (let i = 0; i < 60; i++) await gw.publish({ channel, type: 'test.event', data: { pad: 'x'.repeat(1024), i } });
      await awaitOffset(reader, channel, 60);

      const recovering = await connectPrp(gw);
      const confirmed = outcomeOf(await subscribePrp(recovering, channel, { epoch: conf.position.epoch, offset: 0 }), channel);
      expect(confirmed).toMatchObject({ recovered: true, missed: 60 });
      await awaitOffset(recovering, channel, 60);
      await gw.publish({ channel, type: 'test.event', data: { live: true } });
      await awaitOffset(recovering, channel, 61);
      expect(streamViolation(publications(recovering, channel).map((m) => m.offset), 1)).toBeNull();
      expect(recovering.ws.readyState).toBe(recovering.ws.OPEN);

      const stats = async () => {
        const res = await fetch(`${gw.http}/v1/channels`, { headers: { authorization: `Bearer ${TEST_API_KEY}` } });
        return ((await res.json()) as { channels: { channel: string; subscribers: number }[] }).channels.find((c) => c.channel === channel);
      };
      expect(await stats()).toMatchObject({ subscribers: 2 });
      await recovering.close();
      await reader.close();
      // Once the last subscriber leaves, the node stops carrying the channel.
      await until(async () => (await stats()) === undefined, { label: 'the channel to be dropped', timeoutMs: 5000 });
    } finally {
      await gw.close();
    }
  });
});

describe('hub gap repair: a publication lost between broker and hub', () => {
  it('is re-read from history: every subscriber gets every offset exactly once, in order', async () => {
    const broker = new WithholdingBroker();
    const gw = await startGateway({}, { broker });
    try {
      const channel = uniqueChannel('project');
      const subs = [await connectPrp(gw), await connectPrp(gw, { msgpack: true }), await connectPrd(gw)];
      await subscribePrp(subs[0]!, channel);
      await subscribePrp(subs[1]!, channel);
      await prdRequest(subs[2]!, { type: 'subscribe', channel });
      await publishManyHttp(gw, channel, 3, 1);
      const withheld = broker.withhold(channel, 4);
      await publishManyHttp(gw, channel, 7, 1);
      await withheld;
      for (const s of subs) {
        await awaitOffset(s, channel, 10);
        await quietPeriod(50); // no duplicate may follow
        const got = publications(s, channel);
        expect(streamViolation(got.map((m) => m.offset), 1)).toBeNull();
        expect(got).toHaveLength(10);
      }
      const metrics = await (await fetch(`${gw.http}/metrics`)).text();
      expect(metrics).toMatch(/signalbox_stream_resyncs_total\{outcome="repaired"\} 1/);
      await Promise.all(subs.map((s) => s.close()));
    } finally {
      await gw.close();
    }
  });

  it('two losses in a row are both repaired', async () => {
    const broker = new WithholdingBroker();
    const gw = await startGateway({}, { broker });
    try {
      const channel = uniqueChannel('project');
      const sub = await connectPrp(gw);
      await subscribePrp(sub, channel);
      const w = [broker.withhold(channel, 2), broker.withhold(channel, 3), broker.withhold(channel, 6)];
      await publishManyHttp(gw, channel, 8, 1);
      await Promise.all(w);
      await awaitOffset(sub, channel, 8);
      await quietPeriod(50); // no duplicate may follow
      expect(publications(sub, channel).map((m) => m.offset)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      await sub.close();
    } finally {
      await gw.close();
    }
  });

  it('while a new subscriber waits for its first history read: repaired, no gap at the seam', async () => {
    const broker = new WithholdingBroker();
    const gw = await startGateway({}, { broker });
    try {
      const channel = uniqueChannel('project');
      await publishManyHttp(gw, channel, 3, 1);
      // The subscriber's position read (offset 3) is slow to answer; meanwhile 4 is lost on its
      // way to the hub and 5 arrives: the first publication the hub sees for this stream is 5.
      const hold = broker.holdHistory(channel);
      const sub = await connectPrp(gw);
      const confirmation = subscribePrp(sub, channel);
      await hold.taken;
      const withheld = broker.withhold(channel, 4);
      await publishManyHttp(gw, channel, 2, 1);
      await withheld;
      hold.release();
      const outcome = outcomeOf(await confirmation, channel);
      expect(outcome.position.offset).toBe(3);
      await gw.publish({ channel, type: 'test.live', data: {} });
      const done = await Promise.race([awaitOffset(sub, channel, 6).then(() => 'delivered'), sub.closed.then((c) => `closed ${c.code}`)]);
      expect(done).toBe('delivered');
      await quietPeriod(50); // no duplicate may follow
      expect(publications(sub, channel).map((m) => m.offset)).toEqual([4, 5, 6]);
      await sub.close();
    } finally {
      await gw.close();
    }
  });

  it('is no longer in history: the subscriber is closed with 4011, and resubscribing with its last position says recovered:false', async () => {
    const broker = new WithholdingBroker();
    const gw = await startGateway({ namespaces: namespacesWith(namespace('tiny', { historySize: 1 })) }, { broker });
    try {
      const channel = uniqueChannel('tiny');
      const sub = await connectPrp(gw);
      await subscribePrp(sub, channel);
      await publishManyHttp(gw, channel, 2, 1);
      const seen = await awaitOffset(sub, channel, 2);
      const last: Position = { epoch: seen.epoch, offset: seen.offset };
      const withheld = broker.withhold(channel, 3);
      // Offset 3 never reaches the hub; when 4 does, history (size 1) only holds 4.
      await publishManyHttp(gw, channel, 2, 1);
      await withheld;
      const closed = await sub.closed;
      expect(closed.code).toBe(CloseCode.RESYNC_REQUIRED);
      // Nothing after offset 2 was delivered (offset 4 would have skipped 3).
      expect(publications(sub, channel).map((m) => m.offset)).toEqual([1, 2]);

      const again = await connectPrp(gw);
      const conf = await subscribePrp(again, channel, last);
      expect(outcomeOf(conf, channel)).toMatchObject({ recovered: false, reason: 'too_far_behind', position: { epoch: last.epoch, offset: 4 } });
      // The hub carries the stream again: live traffic continues from position+1.
      await gw.publish({ channel, type: 'test.live', data: {} });
      await awaitOffset(again, channel, 5);
      expect(publications(again, channel).map((m) => m.offset)).toEqual([5]);
      const metrics = await (await fetch(`${gw.http}/metrics`)).text();
      expect(metrics).toMatch(/signalbox_stream_resyncs_total\{outcome="lost"\} 1/);
      await again.close();
    } finally {
      await gw.close();
    }
  });
});
