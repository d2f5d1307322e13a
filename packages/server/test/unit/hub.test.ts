/**
 * The hub with no sockets and no real broker: a scripted FakeBroker (every history read waits
 * until the test answers or fails it; publications reach the hub only when the test hands them
 * over) and RecordingSubscribers that decode what they are sent. Every stream transition, in
 * milliseconds: in order, duplicate and old offsets, gap while live, gap while positioning, a
 * publication racing the position read, repair failure and retry (fake timers), repair
 * overflow, resubscribe during a repair, a loss reported by the broker (also during a repair),
 * epoch change, catch-up seam and overflow, and a publication that cannot be encoded.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Publication, StreamPosition, SubscribeOutcome } from '@signalbox/protocol';
import { BrokerUnavailableError, type Broker, type BrokerHandler, type HistoryQuery, type HistoryResult, type PublishResult } from '../../src/broker/types.js';
import type { NamespaceConfig } from '../../src/channels/namespaces.js';
import type { EncIndex } from '../../src/frames.js';
import { transition, type StreamEffects, type StreamEvent, type StreamPhase } from '../../src/hub/channel-stream.js';
import { Hub, type Subscriber } from '../../src/hub/hub.js';
import { MAX_CONCURRENT_RESYNCS, ResyncScheduler, retryDelay } from '../../src/hub/resync-scheduler.js';
import { createLogger } from '../../src/logger.js';
import { Metrics } from '../../src/metrics.js';

const CH = 'project:p1';
const NS: NamespaceConfig = {
  name: 'project', type: 'private', historySize: 100, historyTtlMs: 3600_000, clientPublish: true, presence: false,
  maxSubscribers: 0, allowBare: false, allowIds: true,
};

interface Read {
  channel: string;
  query: HistoryQuery;
  /** Answers from the broker's log; `top` answers as of the moment the log ended at that offset. */
  serve(o?: { top?: number }): Promise<void>;
  fail(): Promise<void>;
}

/** Lets every promise continuation queued so far run (the hub's awaits), without any timer. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

/**
 * A broker whose log the test writes (`append`), whose history reads wait for the test (`nextRead`),
 * and which hands nothing to the hub by itself: the test calls `hub.onPublication` / `hub.onResync`.
 */
class FakeBroker implements Broker {
  readonly kind = 'fake';
  epoch = 'E1';
  readonly log: Publication[] = [];
  /** Publications at or below this offset are no longer retained. */
  forgotten = 0;
  readonly subscribed: string[] = [];
  readonly unsubscribed: string[] = [];
  private readonly pending: Read[] = [];
  private waiter: ((r: Read) => void) | undefined;
  readonly reads: HistoryQuery[] = [];

  append(data: unknown = null): Publication {
    const pub: Publication = { id: `p${this.log.length + 1}`, channel: CH, type: 'test.event', data, offset: this.log.length + 1, epoch: this.epoch, time: 0 };
    this.log.push(pub);
    return pub;
  }

  /** The stream lost its past: a new epoch, offsets from 1 again. */
  reset(epoch: string): void {
    this.epoch = epoch;
    this.log.length = 0;
    this.forgotten = 0;
  }

  /** The next history read (already asked, or the next one asked). */
  nextRead(): Promise<Read> {
    const r = this.pending.shift();
    if (r) return Promise.resolve(r);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  get waitingReads(): number {
    return this.pending.length;
  }

  answer(query: HistoryQuery, top = this.log.length): HistoryResult {
    const log = this.log.slice(0, top).filter((p) => p.offset > this.forgotten);
    let pubs = query.since ? log.filter((p) => p.offset > query.since!.offset) : log;
    if (query.limit !== undefined) pubs = query.since ? pubs.slice(0, query.limit) : query.limit === 0 ? [] : pubs.slice(-query.limit);
    return { publications: pubs, position: { epoch: this.epoch, offset: top }, earliestOffset: log[0]?.offset ?? top + 1 };
  }

  start(_handler: BrokerHandler): Promise<void> {
    return Promise.resolve();
  }

  publish(): Promise<PublishResult> {
    throw new Error('not used: the test appends to the log');
  }

  history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    this.reads.push(query);
    return new Promise((resolve, reject) => {
      const read: Read = {
        channel, query,
        serve: async (o = {}) => {
          resolve(this.answer(query, o.top));
          await settle();
        },
        fail: async () => {
          reject(new BrokerUnavailableError('scripted outage'));
          await settle();
        },
      };
      const w = this.waiter;
      this.waiter = undefined;
      if (w) w(read);
      else this.pending.push(read);
    });
  }

  subscribe(channel: string): Promise<void> {
    this.subscribed.push(channel);
    return Promise.resolve();
  }

  unsubscribe(channel: string): Promise<void> {
    this.unsubscribed.push(channel);
    return Promise.resolve();
  }

  clearHistory(): Promise<void> {
    return Promise.reject(new Error('the hub never clears history'));
  }

  isReady(): boolean {
    return true;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** A subscriber that decodes every frame it is sent (PRP JSON) and, told to recover, leaves like a closed connection. */
class RecordingSubscriber implements Subscriber {
  readonly encIdx: EncIndex = 0;
  readonly got: { offset: number; epoch: string; catchUp: boolean; data: unknown }[] = [];
  readonly lost: string[] = [];
  outcome: SubscribeOutcome | undefined;

  constructor(private readonly hub: Hub) {}

  deliver(frame: Buffer, catchUp = false): void {
    const len = frame[1]! & 0x7f;
    const header = len === 126 ? 4 : len === 127 ? 10 : 2;
    const m = JSON.parse(frame.subarray(header).toString('utf8')) as { offset: number; epoch: string; data: unknown };
    this.got.push({ offset: m.offset, epoch: m.epoch, catchUp, data: m.data });
  }

  /** Latest-wins frames, with their key (this subscriber is never behind: it records them like the rest). */
  readonly latestKeys: string[] = [];
  deliverLatest(_channel: string, key: string, frame: Buffer): void {
    this.latestKeys.push(key);
    this.deliver(frame);
  }

  lose(channel: string, why: 'resync' | 'overflow'): void {
    this.lost.push(why);
    this.hub.abandon(this, channel);
  }

  get offsets(): number[] {
    return this.got.map((g) => g.offset);
  }
}

function setup(opts: { maxCatchUpBuffer?: number; ns?: Partial<NamespaceConfig> } = {}) {
  const broker = new FakeBroker();
  const metrics = new Metrics({ defaultMetrics: false });
  const hub = new Hub(broker, metrics, createLogger('silent'), { maxCatchUpBuffer: opts.maxCatchUpBuffer ?? 1000 });
  const ns = { ...NS, ...opts.ns };
  const sub = () => new RecordingSubscriber(hub);
  /** Subscribe: prepare, answer the position read (as of `top`), confirm, activate. */
  async function subscribe(s: RecordingSubscriber, o: { since?: StreamPosition; top?: number } = {}): Promise<SubscribeOutcome> {
    const prepared = hub.prepare(s, CH, ns, o.since);
    await (await broker.nextRead()).serve({ top: o.top });
    const p = await prepared;
    s.outcome = p.outcome;
    hub.activate(s, p);
    return p.outcome;
  }
  /** Appends to the log and hands the publication to the hub, as the broker's pub/sub would. */
  function publish(data: unknown = null): Publication {
    const pub = broker.append(data);
    hub.onPublication(pub);
    return pub;
  }
  async function resyncs(): Promise<string> {
    const text = await metrics.registry.getSingleMetricAsString('signalbox_stream_resyncs_total');
    return text.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace('signalbox_stream_resyncs_total', '')).join(' ');
  }
  return { broker, hub, ns, sub, subscribe, publish, resyncs };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('live', () => {
  it('passes publications on in order, once each; duplicates and old offsets are dropped', async () => {
    const { hub, broker, sub, subscribe, publish } = setup();
    const a = sub();
    expect(await subscribe(a)).toEqual({ channel: CH, position: { epoch: 'E1', offset: 0 } });
    const p1 = publish();
    const p2 = publish();
    hub.onPublication(p2);
    hub.onPublication(p1);
    publish();
    expect(a.offsets).toEqual([1, 2, 3]);
    expect(a.got.every((g) => !g.catchUp && g.epoch === 'E1')).toBe(true);
    expect(hub.position(CH)).toEqual({ epoch: 'E1', offset: 3 });
    expect(broker.waitingReads).toBe(0);
    expect(a.lost).toEqual([]);
  });

  it('a gap while live is repaired from history before anything newer is passed on', async () => {
    const { hub, broker, sub, subscribe, publish, resyncs } = setup();
    const a = sub();
    await subscribe(a);
    publish();
    broker.append(); // 2: lost on its way to the hub
    publish(); // 3: the gap is seen
    publish(); // 4: waits behind the repair
    expect(a.offsets).toEqual([1]);
    const read = await broker.nextRead();
    expect(read.query).toEqual({ since: { epoch: 'E1', offset: 1 }, limit: NS.historySize });
    await read.serve({ top: 3 }); // read before 4 was appended: 4 comes from what waited
    expect(a.offsets).toEqual([1, 2, 3, 4]);
    expect(hub.position(CH)).toEqual({ epoch: 'E1', offset: 4 });
    publish();
    expect(a.offsets).toEqual([1, 2, 3, 4, 5]);
    expect(a.lost).toEqual([]);
    expect(await resyncs()).toBe('{outcome="repaired"} 1');
  });

  it('a gap history no longer holds: every subscriber is told to recover, and the stream goes on from the top', async () => {
    const { hub, broker, sub, subscribe, publish, resyncs } = setup();
    const a = sub();
    const b = sub();
    await subscribe(a);
    await subscribe(b);
    publish();
    broker.append();
    broker.append();
    broker.forgotten = 2;
    publish(); // 4
    await (await broker.nextRead()).serve();
    expect(a.offsets).toEqual([1]);
    expect(a.lost).toEqual(['resync']);
    expect(b.lost).toEqual(['resync']);
    expect(hub.subscriberCount(CH)).toBe(0);
    expect(await resyncs()).toBe('{outcome="lost"} 1');
  });

  it('an epoch change: every subscriber is told to recover, and the stream follows the new epoch', async () => {
    const { hub, broker, sub, subscribe, publish } = setup();
    const a = sub();
    const b = sub();
    await subscribe(a);
    await subscribe(b);
    publish();
    publish();
    b.lose = function (this: RecordingSubscriber, _channel: string, why: 'resync' | 'overflow') {
      this.lost.push(why); // stays subscribed: sees what the stream does next
    };
    broker.reset('E2');
    publish(); // E2:1
    expect(a.lost).toEqual(['resync']);
    expect(b.lost).toEqual(['resync']);
    expect(hub.position(CH)).toEqual({ epoch: 'E2', offset: 1 });
    publish(); // E2:2
    expect(b.got.map((g) => `${g.epoch}:${g.offset}`)).toEqual(['E1:1', 'E1:2', 'E2:1', 'E2:2']);
    expect(broker.waitingReads).toBe(0);
  });
});

describe('positioning (a new stream before its first position read)', () => {
  it('a publication racing the position read, read before it: passed on live once', async () => {
    const { hub, broker, sub, ns } = setup();
    const a = sub();
    const prepared = hub.prepare(a, CH, ns);
    const read = await broker.nextRead();
    const p1 = broker.append();
    hub.onPublication(p1); // arrives before the position read answers, which was taken before it
    await read.serve({ top: 0 });
    const p = await prepared;
    expect(p.outcome.position).toEqual({ epoch: 'E1', offset: 0 });
    hub.activate(a, p);
    expect(a.offsets).toEqual([1]);
    expect(hub.position(CH)).toEqual({ epoch: 'E1', offset: 1 });
  });

  it('a publication racing the position read, read after it: not passed on (the position already covers it)', async () => {
    const { hub, broker, sub, ns, publish } = setup();
    const a = sub();
    const prepared = hub.prepare(a, CH, ns);
    const read = await broker.nextRead();
    const p1 = broker.append();
    hub.onPublication(p1);
    await read.serve({ top: 1 });
    const p = await prepared;
    expect(p.outcome.position).toEqual({ epoch: 'E1', offset: 1 });
    hub.activate(a, p);
    expect(a.offsets).toEqual([]);
    publish();
    expect(a.offsets).toEqual([2]);
  });

  it('a gap while positioning: what was queued is checked against the position read, and the gap repaired', async () => {
    const { hub, broker, sub, ns } = setup();
    const a = sub();
    broker.append();
    broker.append();
    const prepared = hub.prepare(a, CH, ns);
    const read = await broker.nextRead();
    broker.append(); // 3: lost on its way to the hub
    hub.onPublication(broker.append()); // 4: queued while positioning
    await read.serve({ top: 2 });
    const p = await prepared;
    hub.activate(a, p);
    expect(p.outcome.position).toEqual({ epoch: 'E1', offset: 2 });
    expect(a.offsets).toEqual([]);
    const repair = await broker.nextRead();
    expect(repair.query.since).toEqual({ epoch: 'E1', offset: 2 });
    await repair.serve();
    expect(a.offsets).toEqual([3, 4]);
    expect(a.lost).toEqual([]);
  });

  it('a loss reported while positioning needs no repair: the position read comes after it', async () => {
    const { hub, broker, sub, ns } = setup();
    const a = sub();
    const prepared = hub.prepare(a, CH, ns);
    const read = await broker.nextRead();
    hub.onResync(null);
    await read.serve();
    hub.activate(a, await prepared);
    expect(broker.waitingReads).toBe(0);
    expect(broker.reads).toHaveLength(1);
  });
});

describe('repair failure and retry', () => {
  it('a failed repair read is retried after a backoff; subscribers keep their stream and get every offset once, in order', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { broker, sub, subscribe, publish, resyncs } = setup();
    const a = sub();
    await subscribe(a);
    publish();
    broker.append();
    publish(); // 3: gap
    await (await broker.nextRead()).fail();
    publish(); // 4: queued during the backoff
    expect(broker.waitingReads).toBe(0);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(200); // attempt 1: 100..200 ms
    const second = await broker.nextRead();
    expect(second.query.since).toEqual({ epoch: 'E1', offset: 1 });
    await second.fail();
    await vi.advanceTimersByTimeAsync(400); // attempt 2: 200..400 ms
    await (await broker.nextRead()).serve();
    expect(a.offsets).toEqual([1, 2, 3, 4]);
    expect(a.lost).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
    expect(await resyncs()).toBe('{outcome="failed"} 2 {outcome="repaired"} 1');
  });

  it('a loss reported during the backoff reads at once instead of waiting for the timer', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { broker, hub, sub, subscribe, publish } = setup();
    const a = sub();
    await subscribe(a);
    publish();
    broker.append();
    publish();
    await (await broker.nextRead()).fail();
    hub.onResync([CH]);
    await (await broker.nextRead()).serve();
    expect(a.offsets).toEqual([1, 2, 3]);
    await vi.advanceTimersByTimeAsync(5000); // the retry timer finds nothing left to do
    expect(broker.waitingReads).toBe(0);
    expect(broker.reads).toHaveLength(3); // position read, failed repair, repair
  });

  it('too much arriving during a failing repair: subscribers are told to recover rather than held without bound', async () => {
    const { broker, hub, sub, subscribe, publish } = setup({ maxCatchUpBuffer: 3 });
    const a = sub();
    await subscribe(a);
    publish();
    broker.append();
    publish(); // 3: gap, queued
    publish();
    publish(); // 5: three queued
    await (await broker.nextRead()).fail();
    expect(a.lost).toEqual(['resync']);
    expect(hub.position(CH)).toBeNull(); // its last subscriber left: the stream is dropped
    expect(broker.unsubscribed).toEqual([CH]);
  });

  it('a stream dropped during its failing repair is not retried', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { broker, hub, sub, subscribe, publish } = setup();
    const a = sub();
    await subscribe(a);
    publish();
    broker.append();
    publish();
    await (await broker.nextRead()).fail();
    hub.abandon(a, CH);
    await vi.advanceTimersByTimeAsync(5000);
    expect(broker.waitingReads).toBe(0);
    expect(broker.reads).toHaveLength(2);
  });
});

describe('resubscribe during a repair', () => {
  it('a subscriber joining while the stream repairs goes live at its position read, with no duplicate when the repair lands', async () => {
    const { broker, hub, sub, subscribe, publish, ns } = setup();
    const a = sub();
    await subscribe(a);
    publish();
    broker.append();
    broker.append();
    publish(); // 4: gap after 1
    const repair = await broker.nextRead();
    const b = sub();
    const prepared = hub.prepare(b, CH, ns);
    await (await broker.nextRead()).serve(); // b's position read: offset 4
    const p = await prepared;
    hub.activate(b, p);
    expect(p.outcome.position).toEqual({ epoch: 'E1', offset: 4 });
    expect(b.offsets).toEqual([]);
    await repair.serve();
    publish();
    expect(a.offsets).toEqual([1, 2, 3, 4, 5]);
    expect(b.offsets).toEqual([5]);
  });

  it('a subscriber recovering while the stream repairs gets exactly the missed ones, then the rest once', async () => {
    const { broker, hub, sub, subscribe, publish, ns } = setup();
    const a = sub();
    await subscribe(a);
    publish();
    broker.append();
    publish(); // 3: gap after 1
    const repair = await broker.nextRead();
    const b = sub();
    const prepared = hub.prepare(b, CH, ns, { epoch: 'E1', offset: 1 });
    await (await broker.nextRead()).serve({ top: 2 });
    const p = await prepared;
    expect(p.outcome).toMatchObject({ recovered: true, missed: 1, position: { offset: 2 } });
    hub.activate(b, p);
    await repair.serve();
    publish();
    expect(b.offsets).toEqual([2, 3, 4]);
    expect(b.got.map((g) => g.catchUp)).toEqual([true, false, false]);
    expect(a.offsets).toEqual([1, 2, 3, 4]);
  });

  it('unsubscribe and subscribe again while a repair read is out: the new stream is not touched by the old read', async () => {
    const { broker, hub, sub, subscribe, publish } = setup();
    const a = sub();
    await subscribe(a);
    publish();
    broker.append();
    publish(); // 3: gap
    const oldRepair = await broker.nextRead();
    hub.abandon(a, CH);
    const again = sub();
    expect(await subscribe(again, { since: { epoch: 'E1', offset: 1 } })).toMatchObject({ recovered: true, missed: 2 });
    expect(again.offsets).toEqual([2, 3]);
    await oldRepair.serve();
    publish();
    expect(again.offsets).toEqual([2, 3, 4]);
    expect(broker.subscribed).toEqual([CH, CH]);
    expect(broker.unsubscribed).toEqual([CH]);
  });
});

describe('a loss the broker reports (onResync)', () => {
  it('while live: the stream is re-read from its last offset and what was missed passed on', async () => {
    const { broker, hub, sub, subscribe, publish } = setup();
    const a = sub();
    await subscribe(a);
    publish();
    broker.append();
    broker.append();
    hub.onResync(null);
    const read = await broker.nextRead();
    expect(read.query.since).toEqual({ epoch: 'E1', offset: 1 });
    await read.serve();
    expect(a.offsets).toEqual([1, 2, 3]);
    publish();
    expect(a.offsets).toEqual([1, 2, 3, 4]);
  });

  it('during a repair read: read once more after it, from where it ended', async () => {
    const { broker, hub, sub, subscribe, publish } = setup();
    const a = sub();
    await subscribe(a);
    publish();
    broker.append();
    publish(); // 3: gap
    const first = await broker.nextRead();
    hub.onResync([CH]);
    hub.onResync([CH]); // twice: still one more read
    broker.append(); // 4: lost after the first read's snapshot
    await first.serve({ top: 3 });
    expect(a.offsets).toEqual([1, 2, 3]);
    const second = await broker.nextRead();
    expect(second.query.since).toEqual({ epoch: 'E1', offset: 3 });
    await second.serve();
    expect(a.offsets).toEqual([1, 2, 3, 4]);
    expect(broker.waitingReads).toBe(0);
  });
});

describe('catching up', () => {
  it('missed publications, then those that arrived during the read, with no duplicate or gap at the seam', async () => {
    const { broker, hub, sub, subscribe, publish, ns } = setup();
    const a = sub();
    await subscribe(a);
    publish();
    publish();
    const b = sub();
    const prepared = hub.prepare(b, CH, ns, { epoch: 'E1', offset: 0 });
    const read = await broker.nextRead();
    publish(); // 3: in the read's snapshot and buffered
    publish(); // 4: buffered only
    await read.serve({ top: 3 });
    const p = await prepared;
    expect(p.outcome).toMatchObject({ recovered: true, missed: 3 });
    hub.activate(b, p);
    expect(b.offsets).toEqual([1, 2, 3, 4]);
    expect(b.got.every((g) => g.catchUp)).toBe(true);
    publish();
    expect(b.offsets).toEqual([1, 2, 3, 4, 5]);
    expect(b.got[4]!.catchUp).toBe(false);
  });

  it('more arriving during the read than the catch-up buffer holds: told to recover as a slow consumer', async () => {
    const { broker, hub, sub, subscribe, publish, ns } = setup({ maxCatchUpBuffer: 2 });
    const a = sub();
    await subscribe(a);
    const b = sub();
    const prepared = hub.prepare(b, CH, ns, { epoch: 'E1', offset: 0 });
    const read = await broker.nextRead();
    publish();
    publish();
    publish();
    expect(b.lost).toEqual(['overflow']);
    await read.serve();
    await prepared;
    expect(a.offsets).toEqual([1, 2, 3]);
  });

  it('an epoch change while catching up: told at once, and nothing of the new epoch is sent as catch-up', async () => {
    const { broker, hub, sub, subscribe, publish, ns } = setup();
    const a = sub();
    await subscribe(a);
    publish();
    const b = sub();
    b.lose = function (this: RecordingSubscriber, _channel: string, why: 'resync' | 'overflow') {
      this.lost.push(why); // stays subscribed: shows what activation would still send
    };
    const prepared = hub.prepare(b, CH, ns, { epoch: 'E1', offset: 0 });
    const read = await broker.nextRead();
    await read.serve();
    const p = await prepared;
    broker.reset('E2');
    publish(); // E2:1, buffered for b, before b is activated
    publish(); // E2:2
    expect(a.lost).toEqual(['resync']);
    expect(b.lost).toEqual(['resync']); // catching subscribers are told too, not only live ones
    hub.activate(b, p);
    expect(b.got.map((g) => `${g.epoch}:${g.offset}`)).toEqual(['E1:1']);
    expect(b.lost).toEqual(['resync', 'resync']);
  });
});

describe('a publication that cannot be encoded', () => {
  it('live: its subscribers are told to recover; the stream does not stall and does not throw to the broker', async () => {
    const { hub, sub, subscribe, publish } = setup();
    const a = sub();
    const b = sub();
    await subscribe(a);
    await subscribe(b);
    publish();
    expect(() => publish({ n: 1n })).not.toThrow();
    expect(a.lost).toEqual(['resync']);
    expect(b.lost).toEqual(['resync']);
    expect(hub.position(CH)).toBeNull();
  });

  it('in the missed publications: the recovery is refused before it is confirmed', async () => {
    const { broker, sub, subscribe } = setup();
    broker.append();
    broker.append({ n: 1n });
    broker.append();
    const a = sub();
    expect(await subscribe(a, { since: { epoch: 'E1', offset: 1 } })).toEqual({
      channel: CH, position: { epoch: 'E1', offset: 3 }, recovered: false, reason: 'unencodable',
    });
    expect(a.offsets).toEqual([]);
    expect(a.lost).toEqual([]);
  });

  it('buffered during catch-up: told to recover at activation, after what came before it', async () => {
    const { broker, hub, sub, subscribe, publish, ns } = setup();
    const a = sub();
    await subscribe(a);
    publish();
    const b = sub();
    const prepared = hub.prepare(b, CH, ns, { epoch: 'E1', offset: 0 });
    const read = await broker.nextRead();
    publish({ n: 1n });
    await read.serve({ top: 1 });
    const p = await prepared;
    hub.activate(b, p);
    expect(b.offsets).toEqual([1]);
    expect(b.lost).toEqual(['resync']);
  });

  it('a subscriber whose delivery throws is told to recover; the others still get the publication', async () => {
    const { sub, subscribe, publish } = setup();
    const a = sub();
    const b = sub();
    await subscribe(a);
    await subscribe(b);
    a.deliver = () => {
      throw new Error('socket gone');
    };
    expect(() => publish()).not.toThrow();
    expect(a.lost).toEqual(['resync']);
    expect(b.offsets).toEqual([1]);
    publish();
    expect(b.offsets).toEqual([1, 2]);
  });
});

describe('the resync scheduler', () => {
  it('runs at most maxConcurrent reads at once, the rest in arrival order, skipping what is no longer wanted', async () => {
    const started: string[] = [];
    const finish = new Map<string, () => void>();
    const unwanted = new Set<string>();
    const s = new ResyncScheduler<string>({
      maxConcurrent: 2,
      wanted: (x) => !unwanted.has(x),
      run: (x) => {
        started.push(x);
        return new Promise<void>((r) => finish.set(x, r));
      },
    });
    for (const x of ['a', 'b', 'c', 'd', 'e']) s.schedule(x);
    expect(started).toEqual(['a', 'b']);
    expect(s.inFlight).toBe(2);
    unwanted.add('c');
    finish.get('a')!();
    await settle();
    expect(started).toEqual(['a', 'b', 'd']);
    finish.get('b')!();
    finish.get('d')!();
    await settle();
    expect(started).toEqual(['a', 'b', 'd', 'e']);
    finish.get('e')!();
    await settle();
    expect(s.inFlight).toBe(0);
  });

  it('a failed read waits a jittered, growing backoff: [100, 200) ms first, capped at 5 s', () => {
    expect(retryDelay(1, () => 0)).toBe(100);
    expect(retryDelay(1, () => 0.5)).toBe(150);
    expect(retryDelay(2, () => 0)).toBe(200);
    expect(retryDelay(5, () => 0)).toBe(1600);
    expect(retryDelay(6, () => 0)).toBe(2500); // 6.4 s capped at 5 s, times the jitter
    expect(retryDelay(30, () => 0.5)).toBe(3750);
    for (let i = 0; i < 100; i++) {
      const d = retryDelay(1);
      expect(d >= 100 && d <= 200).toBe(true);
    }
  });

  it('a broker reconnect asking for many channels at once reads them 64 at a time', async () => {
    const { broker, hub, ns } = setup();
    const subs = Array.from({ length: 70 }, (_, i) => ({ sub: new RecordingSubscriber(hub), channel: `project:c${i}` }));
    const prepared = subs.map(({ sub, channel }) => hub.prepare(sub, channel, ns));
    for (let i = 0; i < subs.length; i++) await (await broker.nextRead()).serve();
    await Promise.all(prepared);
    hub.onResync(null);
    await settle();
    expect(broker.waitingReads).toBe(MAX_CONCURRENT_RESYNCS);
    await (await broker.nextRead()).serve();
    expect(broker.waitingReads).toBe(MAX_CONCURRENT_RESYNCS); // one done, the next one started
    // Streams dropped while they wait for a slot are not read.
    for (const { sub, channel } of subs.slice(MAX_CONCURRENT_RESYNCS + 1)) hub.abandon(sub, channel);
    await (await broker.nextRead()).serve();
    expect(broker.waitingReads).toBe(MAX_CONCURRENT_RESYNCS - 1);
    expect(broker.reads).toHaveLength(subs.length + MAX_CONCURRENT_RESYNCS + 1);
  });
});

describe('the transition function, events its phase does not expect', () => {
  const limits = { historySize: 100, maxQueue: 10 };
  function recorder() {
    const log: string[] = [];
    const fx: StreamEffects = {
      deliver: (p) => log.push(`deliver ${p.offset}`),
      lost: (why) => log.push(`lost ${why}`),
      readGap: (from) => log.push(`read ${from.offset}`),
      retryLater: (n) => log.push(`retry ${n}`),
      repairOutcome: (o) => log.push(`outcome ${o}`),
    };
    return { log, fx };
  }
  const hist: HistoryResult = { publications: [], position: { epoch: 'E1', offset: 9 }, earliestOffset: 1 };
  const repairing = (read: 'pending' | 'backoff'): StreamPhase => ({ kind: 'repairing', epoch: 'E1', lastOffset: 5, queue: [], attempts: 1, again: false, read });
  const cases: { name: string; phase: StreamPhase; ev: StreamEvent }[] = [
    { name: 'a read result during the backoff (no read is out)', phase: repairing('backoff'), ev: { type: 'repair_read', hist } },
    { name: 'a read failure during the backoff', phase: repairing('backoff'), ev: { type: 'repair_failed' } },
    { name: 'a retry timer while a read is out', phase: repairing('pending'), ev: { type: 'retry_due' } },
    { name: 'a read result while live', phase: { kind: 'live', epoch: 'E1', lastOffset: 5 }, ev: { type: 'repair_read', hist } },
    { name: 'a second position read', phase: { kind: 'live', epoch: 'E1', lastOffset: 5 }, ev: { type: 'positioned', position: { epoch: 'E1', offset: 9 } } },
    { name: 'a retry timer while live', phase: { kind: 'live', epoch: 'E1', lastOffset: 5 }, ev: { type: 'retry_due' } },
  ];
  for (const c of cases) {
    it(`${c.name}: ignored`, () => {
      const { log, fx } = recorder();
      expect(transition(c.phase, c.ev, limits, fx)).toBe(c.phase);
      expect(log).toEqual([]);
    });
  }
});
