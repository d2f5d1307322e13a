/**
 * The Broker contract, run against every implementation (broker.memory.test.ts,
 * broker.redis.test.ts). A new engine is proven by passing this file.
 *
 * Rules: unique channel per test; no sleeps to synchronise (await events through Recorder);
 * where the contract is about time passing (TTLs, idempotency windows) the test polls the
 * observable state until it changes, bounded by a deadline.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Bytes, type Publication, type Publisher } from '@signalbox/protocol';
import type { Broker, BrokerHandler, HistoryPolicy, PublishRequest, PublishResult } from '../../src/broker/types.js';
import { eventually } from '../helpers/wait.js';

/** What an engine can do beyond the common contract; decides which tests run. */
export interface BrokerCapabilities {
  /** Several broker instances (nodes) share one engine: they see each other's publications and offsets. */
  sharedEngine: boolean;
  /** Only subscribed channels reach the handler (an engine may also deliver everything: memory does). */
  selectiveDelivery: boolean;
}

export interface BrokerFixture {
  /** A broker not started yet; the suite starts it with its own handler. */
  broker: Broker;
  /** Closes every broker the fixture made (including peers) and releases engine resources. */
  cleanup(): Promise<void>;
  /** Another node on the same engine, not started (only with `capabilities.sharedEngine`). */
  peer?(): Promise<Broker>;
}

/** Makes a fresh fixture per test, and declares the engine's capabilities (all false when absent). */
export type BrokerFactory = (() => Promise<BrokerFixture>) & { readonly capabilities?: Partial<BrokerCapabilities> };

/** A BrokerHandler that records everything and lets tests await conditions on what it saw. */
export class Recorder implements BrokerHandler {
  readonly publications: Publication[] = [];
  readonly resyncs: (string[] | null)[] = [];
  readonly readiness: boolean[] = [];
  private readonly waiters = new Set<() => void>();

  onPublication(pub: Publication): void {
    this.publications.push(pub);
    this.notify();
  }

  onResync(channels: string[] | null): void {
    this.resyncs.push(channels);
    this.notify();
  }

  onReadyChange(ready: boolean): void {
    this.readiness.push(ready);
    this.notify();
  }

  of(channel: string): Publication[] {
    return this.publications.filter((p) => p.channel === channel);
  }

  /** Resolves when `cond()` holds after some event; rejects (failing the test) after `timeoutMs`. */
  until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!cond()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  /** Resolves once `n` publications of `channel` arrived. */
  publicationsOf(channel: string, n: number, timeoutMs = 5000): Promise<Publication[]> {
    return this.until(() => this.of(channel).length >= n, `${n} publications on ${channel} (have ${this.of(channel).length})`, timeoutMs).then(
      () => this.of(channel),
    );
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }
}

/** A channel name valid in the protocol grammar, unique per call. */
export function uniqueChannel(label: string): string {
  return `contract:${label}-${randomBytes(5).toString('hex')}`;
}

const DEFAULT_HISTORY: HistoryPolicy = { size: 1000, ttlMs: 60_000 };

/** Publishes with sensible defaults; overrides go through `extra`. */
export function publishTo(broker: Broker, channel: string, data: unknown, extra: Partial<PublishRequest> = {}): Promise<PublishResult> {
  return broker.publish({ channel, type: 'message', data, history: DEFAULT_HISTORY, idempotencyWindowMs: 60_000, ...extra });
}

function offsets(pubs: readonly Publication[]): number[] {
  return pubs.map((p) => p.offset);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

export function brokerContract(name: string, factory: BrokerFactory): void {
  const caps: BrokerCapabilities = { sharedEngine: false, selectiveDelivery: false, ...factory.capabilities };

  describe(`Broker contract: ${name}`, () => {
    let fixture: BrokerFixture;
    let broker: Broker;
    let rec: Recorder;

    beforeEach(async () => {
      fixture = await factory();
      broker = fixture.broker;
      rec = new Recorder();
      await broker.start(rec);
    });

    afterEach(async () => {
      await fixture.cleanup();
    });

    it('is ready once started and names its kind', () => {
      expect(broker.isReady()).toBe(true);
      expect(broker.kind).toMatch(/^[a-z]+$/);
    });

    describe('clearHistory', () => {
      it('drops what is retained, keeps the position; the next publish takes the next offset in the same epoch', async () => {
        const ch = uniqueChannel('clear');
        for (let i = 0; i < 3; i++) await publishTo(broker, ch, { i });
        const before = await broker.history(ch, {});
        await broker.clearHistory(ch);
        const after = await broker.history(ch, {});
        expect(after.publications).toEqual([]);
        expect(after.position).toEqual(before.position);
        expect(after.earliestOffset).toBe(4);
        const next = await publishTo(broker, ch, { i: 3 });
        expect(next.publication).toMatchObject({ offset: 4, epoch: before.position.epoch });
        expect(offsets((await broker.history(ch, {})).publications)).toEqual([4]);
        await broker.clearHistory(uniqueChannel('never'));
      });
    });

    describe('offsets', () => {
      it('gives offsets 1..N in one epoch, and history returns them in order', async () => {
        const ch = uniqueChannel('seq');
        const results: PublishResult[] = [];
        // Each kind of publisher is stored with its publication and read back as it was given.
        const publishers: Publisher[] = [
          { via: 'http', key: 'backend', sub: 'usr_9' }, { via: 'http', key: 'default' },
          { via: 'ws', sub: 'usr_1', client: 'conn_x1' }, { via: 'gateway', service: 'presence' },
        ];
        for (let i = 0; i < 20; i++) results.push(await publishTo(broker, ch, { i }, { publisher: publishers[i % 4] }));
        expect(offsets(results.map((r) => r.publication))).toEqual(range(1, 20));
        const epoch = results[0]!.publication.epoch;
        expect(epoch.length).toBeGreaterThan(0);
        expect(epoch.length).toBeLessThanOrEqual(64);
        for (const r of results) {
          expect(r.duplicate).toBe(false);
          expect(r.publication.epoch).toBe(epoch);
          expect(r.publication.channel).toBe(ch);
          expect(r.publication.type).toBe('message');
          expect(r.publication.publisher).toEqual(publishers[(r.publication.offset - 1) % 4]);
          expect(Math.abs(r.publication.time - Date.now())).toBeLessThan(60_000);
        }
        const h = await broker.history(ch, {});
        expect(h.publications).toEqual(results.map((r) => r.publication));
        expect(h.position).toEqual({ epoch, offset: 20 });
        expect(h.earliestOffset).toBe(1);
      });

      it('gives 500 concurrent publishes distinct consecutive offsets, history in offset order', async () => {
        const ch = uniqueChannel('concurrent');
        const results = await Promise.all(Array.from({ length: 500 }, (_, i) => publishTo(broker, ch, { i })));
        const got = results.map((r) => r.publication.offset).sort((a, b) => a - b);
        expect(got).toEqual(range(1, 500));
        expect(new Set(results.map((r) => r.publication.epoch)).size).toBe(1);
        const h = await broker.history(ch, {});
        expect(offsets(h.publications)).toEqual(range(1, 500));
        // Each stored publication is the one its publisher was told about.
        const byOffset = new Map(results.map((r) => [r.publication.offset, r.publication]));
        for (const p of h.publications) expect(p).toEqual(byOffset.get(p.offset));
      });

      it('reports a stable epoch at offset 0 for a channel never published, and the first publish uses it', async () => {
        const ch = uniqueChannel('fresh');
        const a = await broker.history(ch, {});
        const b = await broker.history(ch, { limit: 10 });
        expect(a.publications).toEqual([]);
        expect(a.position.offset).toBe(0);
        expect(a.position.epoch.length).toBeGreaterThan(0);
        expect(a.earliestOffset).toBe(1);
        expect(b.position).toEqual(a.position);
        const first = await publishTo(broker, ch, 'x');
        expect(first.publication.epoch).toBe(a.position.epoch);
        expect(first.publication.offset).toBe(1);
      });

      it('keeps channels independent', async () => {
        const a = uniqueChannel('ind-a');
        const b = uniqueChannel('ind-b');
        await publishTo(broker, a, 1);
        await publishTo(broker, a, 2);
        const rb = await publishTo(broker, b, 1);
        expect(rb.publication.offset).toBe(1);
        expect((await broker.history(a, {})).position.offset).toBe(2);
      });
    });

    describe('history queries', () => {
      let ch: string;
      let epoch: string;
      beforeEach(async () => {
        ch = uniqueChannel('query');
        for (let i = 1; i <= 10; i++) epoch = (await publishTo(broker, ch, { i })).publication.epoch;
      });

      it('since: the publications after since.offset', async () => {
        const h = await broker.history(ch, { since: { epoch, offset: 3 } });
        expect(offsets(h.publications)).toEqual(range(4, 10));
        expect(h.position).toEqual({ epoch, offset: 10 });
        expect(h.earliestOffset).toBe(1);
        expect(offsets((await broker.history(ch, { since: { epoch, offset: 0 } })).publications)).toEqual(range(1, 10));
      });

      it('since + limit: the first `limit` after since', async () => {
        const h = await broker.history(ch, { since: { epoch, offset: 3 }, limit: 2 });
        expect(offsets(h.publications)).toEqual([4, 5]);
        expect(offsets((await broker.history(ch, { since: { epoch, offset: 8 }, limit: 5 })).publications)).toEqual([9, 10]);
      });

      it('since at or beyond the top: nothing, with the position', async () => {
        for (const offset of [10, 15]) {
          const h = await broker.history(ch, { since: { epoch, offset } });
          expect(h.publications).toEqual([]);
          expect(h.position).toEqual({ epoch, offset: 10 });
        }
      });

      it('since does not interpret the epoch (the caller compares it with position.epoch)', async () => {
        const h = await broker.history(ch, { since: { epoch: 'some-other-epoch', offset: 7 } });
        expect(offsets(h.publications)).toEqual([8, 9, 10]);
        expect(h.position.epoch).toBe(epoch);
      });

      it('no since + limit: the last `limit` retained', async () => {
        expect(offsets((await broker.history(ch, { limit: 3 })).publications)).toEqual([8, 9, 10]);
        expect(offsets((await broker.history(ch, { limit: 100 })).publications)).toEqual(range(1, 10));
      });

      it('limit 0: no publications, just the position', async () => {
        for (const since of [undefined, { epoch, offset: 2 }]) {
          const h = await broker.history(ch, { since, limit: 0 });
          expect(h.publications).toEqual([]);
          expect(h.position).toEqual({ epoch, offset: 10 });
          expect(h.earliestOffset).toBe(1);
        }
      });
    });

    describe('retention', () => {
      it('trims history to `size`; earliestOffset is the oldest retained', async () => {
        const ch = uniqueChannel('trim');
        for (let i = 1; i <= 12; i++) await publishTo(broker, ch, i, { history: { size: 5, ttlMs: 60_000 } });
        const h = await broker.history(ch, {});
        expect(offsets(h.publications)).toEqual(range(8, 12));
        expect(h.earliestOffset).toBe(8);
        expect(h.position.offset).toBe(12);
        const since = await broker.history(ch, { since: { epoch: h.position.epoch, offset: 2 } });
        expect(offsets(since.publications)).toEqual(range(8, 12));
      });

      it('size 0 keeps nothing but still advances the offset', async () => {
        const ch = uniqueChannel('size0');
        const results: PublishResult[] = [];
        for (let i = 0; i < 3; i++) results.push(await publishTo(broker, ch, i, { history: { size: 0, ttlMs: 60_000 } }));
        expect(offsets(results.map((r) => r.publication))).toEqual([1, 2, 3]);
        const h = await broker.history(ch, {});
        expect(h.publications).toEqual([]);
        expect(h.position).toEqual({ epoch: results[0]!.publication.epoch, offset: 3 });
        expect(h.earliestOffset).toBe(4);
      });

      it('shrinking size to 0 drops what was retained', async () => {
        const ch = uniqueChannel('shrink');
        await publishTo(broker, ch, 1);
        await publishTo(broker, ch, 2);
        await publishTo(broker, ch, 3, { history: { size: 0, ttlMs: 60_000 } });
        const h = await broker.history(ch, {});
        expect(h.publications).toEqual([]);
        expect(h.earliestOffset).toBe(4);
      });

      it('expires history after ttlMs while the position survives', async () => {
        const ch = uniqueChannel('ttl');
        const policy = { size: 10, ttlMs: 250 };
        let last: PublishResult | undefined;
        for (let i = 0; i < 3; i++) last = await publishTo(broker, ch, i, { history: policy });
        const { epoch } = last!.publication;
        expect((await broker.history(ch, {})).publications.length).toBeGreaterThan(0);
        const expired = await eventually(async () => {
          const h = await broker.history(ch, {});
          return h.publications.length === 0 ? h : undefined;
        }, { label: 'history to expire' });
        expect(expired.position).toEqual({ epoch, offset: 3 });
        expect(expired.earliestOffset).toBe(4);
        const next = await publishTo(broker, ch, 'after', { history: policy });
        expect(next.publication).toMatchObject({ epoch, offset: 4 });
      });
    });

    describe('idempotency', () => {
      it('a key repeated within the window publishes once and returns the first result', async () => {
        const ch = uniqueChannel('idem');
        await broker.subscribe(ch);
        const first = await publishTo(broker, ch, { n: 1 }, { idempotencyKey: 'order-42' });
        const second = await publishTo(broker, ch, { n: 2 }, { idempotencyKey: 'order-42' });
        const third = await publishTo(broker, ch, { n: 3 }, { idempotencyKey: 'order-42' });
        expect(first.duplicate).toBe(false);
        expect(first.publication.id).toBe('order-42');
        expect(second).toEqual({ publication: first.publication, duplicate: true });
        expect(third).toEqual({ publication: first.publication, duplicate: true });
        const h = await broker.history(ch, {});
        expect(h.publications).toEqual([first.publication]);
        expect(h.position.offset).toBe(1);
        // A later distinct publish is delivered right after the first: the duplicates were never fanned out.
        const marker = await publishTo(broker, ch, 'marker');
        const delivered = await rec.publicationsOf(ch, 2);
        expect(delivered.map((p) => p.id)).toEqual(['order-42', marker.publication.id]);
      });

      it('concurrent repeats of one key: exactly one is not a duplicate', async () => {
        const ch = uniqueChannel('idem-par');
        const results = await Promise.all(Array.from({ length: 10 }, (_, i) => publishTo(broker, ch, { i }, { idempotencyKey: 'k' })));
        expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
        const winner = results.find((r) => !r.duplicate)!.publication;
        for (const r of results) expect(r.publication).toEqual(winner);
        expect((await broker.history(ch, {})).publications).toEqual([winner]);
      });

      it('keys are per channel', async () => {
        const a = await publishTo(broker, uniqueChannel('idem-a'), 1, { idempotencyKey: 'same' });
        const b = await publishTo(broker, uniqueChannel('idem-b'), 1, { idempotencyKey: 'same' });
        expect(a.duplicate).toBe(false);
        expect(b.duplicate).toBe(false);
      });

      it('a key is forgotten after the window', async () => {
        const ch = uniqueChannel('idem-win');
        const windowMs = 200;
        const first = await publishTo(broker, ch, 1, { idempotencyKey: 'w', idempotencyWindowMs: windowMs });
        // Duplicates have no effect, so re-publishing until the engine stops recognising the key is safe.
        const again = await eventually(async () => {
          const r = await publishTo(broker, ch, 2, { idempotencyKey: 'w', idempotencyWindowMs: windowMs });
          if (r.duplicate) {
            expect(r.publication).toEqual(first.publication);
            return undefined;
          }
          return r;
        }, { label: 'the idempotency window to pass' });
        expect(Date.now()).toBeGreaterThanOrEqual(first.publication.time + windowMs - 50);
        expect(again.publication).toMatchObject({ offset: 2, epoch: first.publication.epoch, id: 'w', data: 2 });
      });

      it('window 0 remembers nothing', async () => {
        const ch = uniqueChannel('idem-0');
        const a = await publishTo(broker, ch, 1, { idempotencyKey: 'z', idempotencyWindowMs: 0 });
        const b = await publishTo(broker, ch, 2, { idempotencyKey: 'z', idempotencyWindowMs: 0 });
        expect([a.duplicate, b.duplicate]).toEqual([false, false]);
        expect(b.publication.offset).toBe(2);
      });
    });

    describe('appends', () => {
      const agent: Publisher = { via: 'ws', sub: 'agent_1', client: 'conn_a' };
      const agentElsewhere: Publisher = { via: 'ws', sub: 'agent_1', client: 'conn_b' };
      const viewer: Publisher = { via: 'ws', sub: 'viewer_1', client: 'conn_v' };
      const as = (publisher: Publisher, id: string, appendTo?: string): Partial<PublishRequest> => ({
        // Scoped per subject, as the gateway scopes them (channels/operations.ts).
        publisher, id, idempotencyKey: `${publisher.via === 'ws' ? publisher.sub : publisher.via}:${id}`, ...(appendTo !== undefined ? { appendTo } : {}),
      });

      it('an append is a publication of its own: next offset, appendTo set, delivered in order', async () => {
        const ch = uniqueChannel('append');
        await broker.subscribe(ch);
        const root = await publishTo(broker, ch, { text: 'Hel' }, as(agent, 'm1'));
        const a1 = await publishTo(broker, ch, { text: 'lo' }, as(agent, 'm1.1', 'm1'));
        // The same subject on another connection (a producer that reconnected) may go on appending.
        const a2 = await publishTo(broker, ch, { text: ', world' }, as(agentElsewhere, 'm1.2', 'm1'));
        expect(root.publication.appendTo).toBeUndefined();
        expect(a1.publication).toMatchObject({ offset: 2, appendTo: 'm1', id: 'm1.1', data: { text: 'lo' }, publisher: agent });
        expect(a2.publication).toMatchObject({ offset: 3, appendTo: 'm1', data: { text: ', world' } });
        const got = await rec.publicationsOf(ch, 3);
        expect(got).toEqual([root.publication, a1.publication, a2.publication]);
      });

      it('compacted history: each message once, its appends folded in, `through` the last append; raw `since` has them all', async () => {
        const ch = uniqueChannel('fold');
        await publishTo(broker, ch, { text: 'Hel', n: 1, done: false }, as(agent, 'm1'));
        await publishTo(broker, ch, 'plain', as(viewer, 'v1'));
        await publishTo(broker, ch, { text: 'lo', n: 2 }, as(agent, 'm1.1', 'm1'));
        await publishTo(broker, ch, 'abc', as(agent, 's1'));
        await publishTo(broker, ch, { text: ' there', done: true, extra: 'x' }, as(agent, 'm1.2', 'm1'));
        await publishTo(broker, ch, 'def', as(agent, 's1.1', 's1'));
        const compact = await broker.history(ch, { compact: true });
        expect(compact.position.offset).toBe(6);
        expect(compact.publications.map((p) => [p.id, p.offset, p.through, p.data])).toEqual([
          ['m1', 1, 5, { text: 'Hello there', n: 2, done: true, extra: 'x' }],
          ['v1', 2, undefined, 'plain'],
          ['s1', 4, 6, 'abcdef'],
        ]);
        for (const p of compact.publications) expect(p.appendTo).toBeUndefined();
        // `limit` counts messages.
        expect((await broker.history(ch, { compact: true, limit: 2 })).publications.map((p) => p.id)).toEqual(['v1', 's1']);
        // Raw reads: exactly the publications after the position, appends included, unfolded.
        const raw = await broker.history(ch, { since: { epoch: compact.position.epoch, offset: 2 } });
        expect(raw.publications.map((p) => [p.offset, p.appendTo, p.data])).toEqual([
          [3, 'm1', { text: 'lo', n: 2 }], [4, undefined, 'abc'], [5, 'm1', { text: ' there', done: true, extra: 'x' }], [6, 's1', 'def'],
        ]);
        expect(raw.publications.every((p) => p.through === undefined)).toBe(true);
        // The stored message itself is untouched by the fold.
        expect((await broker.history(ch, { since: { epoch: compact.position.epoch, offset: 0 }, limit: 1 })).publications[0]!.data)
          .toEqual({ text: 'Hel', n: 1, done: false });
      });

      it('fold rule: other combinations replace, and later appends fold onto the replacement', async () => {
        const ch = uniqueChannel('fold-kinds');
        const cases: [unknown, unknown[], unknown][] = [
          ['a', [{ t: 'b' }, { t: 'c' }], { t: 'bc' }],
          [{ t: 'a' }, ['x', 'y'], 'xy'],
          [{ t: 'a', k: 1 }, [{ t: 2 }, { t: 'z' }], { t: 'z', k: 1 }],
          [{ t: 1 }, [{ t: 'a' }, { t: 'b' }], { t: 'ab' }],
          [[1, 2], [[3]], [3]],
          [7, ['s', 't'], 'st'],
          [{ a: { deep: 'x' } }, [{ a: { deep: 'y' }, b: null }], { a: { deep: 'y' }, b: null }],
          ['héllo ', ['wörld ', '😀'], 'héllo wörld 😀'],
          [{ t: '' }, [{ t: '' }, { u: 'new' }], { t: '', u: 'new' }],
        ];
        for (const [i, [root, appends]] of cases.entries()) {
          await publishTo(broker, ch, root, as(agent, `r${i}`));
          for (const [j, a] of appends.entries()) await publishTo(broker, ch, a, as(agent, `r${i}.${j}`, `r${i}`));
        }
        const compact = await broker.history(ch, { compact: true });
        expect(compact.publications.map((p) => p.data)).toEqual(cases.map((c) => c[2]));
      });

      it('history size counts messages: one message with 50 appends is one message of history', async () => {
        const ch = uniqueChannel('size-msgs');
        const history = { size: 2, ttlMs: 60_000 };
        const tokens = Array.from({ length: 50 }, (_, i) => `t${i} `);
        await publishTo(broker, ch, { text: '' }, { ...as(agent, 'ans'), history });
        for (const [i, t] of tokens.entries()) await publishTo(broker, ch, { text: t }, { ...as(agent, `ans.${i}`, 'ans'), history });
        await publishTo(broker, ch, { text: 'q2' }, { ...as(viewer, 'q2'), history });
        let h = await broker.history(ch, { compact: true });
        expect(h.publications.map((p) => [p.id, p.through, p.data])).toEqual([['ans', 51, { text: tokens.join('') }], ['q2', undefined, { text: 'q2' }]]);
        expect(h.earliestOffset).toBe(1);
        // Every raw publication is still there for an exact resume from inside the answer.
        const raw = await broker.history(ch, { since: { epoch: h.position.epoch, offset: 10 } });
        expect(offsets(raw.publications)).toEqual(range(11, 52));
        // A third message pushes the oldest out together with its appends.
        await publishTo(broker, ch, { text: 'q3' }, { ...as(viewer, 'q3'), history });
        h = await broker.history(ch, { compact: true });
        expect(h.publications.map((p) => p.id)).toEqual(['q2', 'q3']);
        expect(h.earliestOffset).toBe(52);
        expect(offsets((await broker.history(ch, {})).publications)).toEqual([52, 53]);
        // The trimmed message can no longer be appended to.
        await expect(publishTo(broker, ch, { text: 'late' }, { ...as(agent, 'ans.late', 'ans'), history }))
          .rejects.toMatchObject({ code: 'APPEND_TARGET_NOT_FOUND' });
      });

      it('appends interleaved with other messages: trimming the oldest message keeps the stream starting at a message', async () => {
        const ch = uniqueChannel('size-interleaved');
        const history = { size: 2, ttlMs: 60_000 };
        await publishTo(broker, ch, 'A', { ...as(agent, 'a'), history });
        await publishTo(broker, ch, 'B', { ...as(agent, 'b'), history });
        await publishTo(broker, ch, 'a1', { ...as(agent, 'a.1', 'a'), history });
        await publishTo(broker, ch, 'b1', { ...as(agent, 'b.1', 'b'), history });
        await publishTo(broker, ch, 'C', { ...as(agent, 'c'), history });
        const h = await broker.history(ch, { compact: true });
        expect(h.publications.map((p) => [p.id, p.data, p.through])).toEqual([['b', 'Bb1', 4], ['c', 'C', undefined]]);
        expect(h.earliestOffset).toBe(2);
        // The raw stream from the oldest retained message on is contiguous (a1 stays: exact resume from offset 2).
        expect(offsets((await broker.history(ch, { since: { epoch: h.position.epoch, offset: 1 } })).publications)).toEqual([2, 3, 4, 5]);
      });

      it('refuses a target that is missing, an append, another publisher\u2019s, or on another channel; nothing is published', async () => {
        const ch = uniqueChannel('append-refused');
        await publishTo(broker, ch, 'mine', as(agent, 'm1'));
        await publishTo(broker, ch, '+', as(agent, 'm1.1', 'm1'));
        await publishTo(broker, ch, 'theirs', as(viewer, 'v1'));
        const refused = async (extra: Partial<PublishRequest>, code: string, channel = ch) => {
          await expect(publishTo(broker, channel, 'x', extra)).rejects.toMatchObject({ code, details: { appendTo: extra.appendTo, channel } });
        };
        await refused(as(agent, 'x1', 'nope'), 'APPEND_TARGET_NOT_FOUND');
        await refused(as(agent, 'x2', 'm1.1'), 'APPEND_TARGET_NOT_FOUND');
        await refused(as(agent, 'x3', 'v1'), 'APPEND_NOT_ALLOWED');
        await refused(as(viewer, 'x4', 'm1'), 'APPEND_NOT_ALLOWED');
        await refused(as({ via: 'http', key: 'default' }, 'x5', 'm1'), 'APPEND_NOT_ALLOWED');
        await refused(as(agent, 'x6', 'm1'), 'APPEND_TARGET_NOT_FOUND', uniqueChannel('other'));
        const h = await broker.history(ch, {});
        expect(h.position.offset).toBe(3);
        // A namespace keeping no history has nothing to append to.
        const none = uniqueChannel('append-nohist');
        await publishTo(broker, none, 'root', { ...as(agent, 'r'), history: { size: 0, ttlMs: 0 } });
        await expect(publishTo(broker, none, '+', { ...as(agent, 'r.1', 'r'), history: { size: 0, ttlMs: 0 } })).rejects.toMatchObject({ code: 'APPEND_TARGET_NOT_FOUND' });
      });

      it('the same id from two publishers: each appends to its own message', async () => {
        const ch = uniqueChannel('append-same-id');
        await publishTo(broker, ch, 'agent:', as(agent, 'same'));
        await publishTo(broker, ch, 'viewer:', as(viewer, 'same'));
        await publishTo(broker, ch, 'A', as(agent, 'a1', 'same'));
        await publishTo(broker, ch, 'V', as(viewer, 'v1', 'same'));
        const h = await broker.history(ch, { compact: true });
        expect(h.publications.map((p) => [p.offset, p.data, p.through])).toEqual([[1, 'agent:A', 3], [2, 'viewer:V', 4]]);
      });

      it('idempotency keys work for appends: a repeat returns the first result and folds once', async () => {
        const ch = uniqueChannel('append-idem');
        await publishTo(broker, ch, 'a', as(agent, 'm'));
        const first = await publishTo(broker, ch, 'b', as(agent, 'm.1', 'm'));
        const again = await publishTo(broker, ch, 'b', as(agent, 'm.1', 'm'));
        expect(again).toEqual({ publication: first.publication, duplicate: true });
        const h = await broker.history(ch, { compact: true });
        expect(h.publications.map((p) => [p.data, p.through])).toEqual([['ab', 2]]);
        expect(h.position.offset).toBe(2);
      });

      it('round-trips binary data in appends (replaces: bytes are not strings)', async () => {
        const ch = uniqueChannel('append-bin');
        const bytes = new Bytes(randomBytes(32));
        await publishTo(broker, ch, { text: 'x', blob: new Bytes([1]) }, as(agent, 'm'));
        await publishTo(broker, ch, { text: 'y', blob: bytes }, as(agent, 'm.1', 'm'));
        await publishTo(broker, ch, new Bytes([7, 8]), as(agent, 'b'));
        await publishTo(broker, ch, bytes, as(agent, 'b.1', 'b'));
        const [m, b] = (await broker.history(ch, { compact: true })).publications;
        const d = m!.data as { text: string; blob: Uint8Array };
        expect(d.text).toBe('xy');
        expect(d.blob).toBeInstanceOf(Bytes);
        expect(Buffer.from(d.blob).equals(Buffer.from(bytes))).toBe(true);
        expect(b!.data).toBeInstanceOf(Bytes);
        expect(Buffer.from(b!.data as Uint8Array).equals(Buffer.from(bytes))).toBe(true);
      });

      if (caps.sharedEngine) it('two nodes appending to one message fold in offset order, and both read the same compacted history', async () => {
        const ch = uniqueChannel('append-nodes');
        const other = await fixture.peer!();
        await other.start(new Recorder());
        await publishTo(broker, ch, '', as(agent, 'm'));
        const parts = Array.from({ length: 40 }, (_, i) => `${i},`);
        const results = await Promise.all(parts.map((t, i) => publishTo(i % 2 ? broker : other, ch, t, as(agent, `m.${i}`, 'm'))));
        const inOrder = results.map((r) => r.publication).sort((a, b) => a.offset - b.offset).map((p) => p.data).join('');
        const a = await broker.history(ch, { compact: true });
        const b = await other.history(ch, { compact: true });
        expect(a.publications).toEqual(b.publications);
        expect(a.publications.map((p) => [p.data, p.through])).toEqual([[inOrder, 41]]);
      });
    });

    describe('payloads', () => {
      it('round-trips 64 KiB of random bytes through publish, history and delivery', async () => {
        const ch = uniqueChannel('binary');
        await broker.subscribe(ch);
        const blob = new Bytes(randomBytes(64 * 1024));
        const data = { blob, nested: [{ more: blob.subarray(0, 3) }], text: 'héllo ✓', n: 1.5, nil: null, flag: true };
        const r = await publishTo(broker, ch, data);
        const [delivered] = await rec.publicationsOf(ch, 1);
        const stored = (await broker.history(ch, {})).publications[0]!;
        for (const got of [r.publication, delivered!, stored]) {
          const d = got.data as typeof data;
          expect(d.blob).toBeInstanceOf(Bytes);
          expect(Buffer.from(d.blob).equals(Buffer.from(blob))).toBe(true);
          expect(Buffer.from(d.nested[0]!.more).equals(Buffer.from([blob[0]!, blob[1]!, blob[2]!]))).toBe(true);
          expect({ ...d, blob: null, nested: null }).toEqual({ ...data, blob: null, nested: null });
        }
      });

      it('round-trips JSON values of every kind', async () => {
        const ch = uniqueChannel('json');
        const values: unknown[] = ['s', 0, -7, 2 ** 40, 0.25, true, false, null, [], {}, [1, 'a', { b: [null] }], { deep: { er: { est: 'x' } } }];
        for (const v of values) await publishTo(broker, ch, v);
        expect((await broker.history(ch, {})).publications.map((p) => p.data)).toEqual(values);
      });
    });

    describe('delivery', () => {
      it('delivers the publications of subscribed channels, in order', async () => {
        const a = uniqueChannel('deliver-a');
        const b = uniqueChannel('deliver-b');
        await broker.subscribe(a);
        await broker.subscribe(b);
        const sent: PublishResult[] = [];
        for (let i = 0; i < 30; i++) sent.push(await publishTo(broker, i % 2 ? a : b, { i }));
        const gotA = await rec.publicationsOf(a, 15);
        const gotB = await rec.publicationsOf(b, 15);
        expect(gotA).toEqual(sent.filter((r) => r.publication.channel === a).map((r) => r.publication));
        expect(offsets(gotA)).toEqual(range(1, 15));
        expect(offsets(gotB)).toEqual(range(1, 15));
      });

      it('delivers concurrent publishes of one channel in offset order', async () => {
        const ch = uniqueChannel('deliver-par');
        await broker.subscribe(ch);
        await Promise.all(Array.from({ length: 200 }, (_, i) => publishTo(broker, ch, i)));
        expect(offsets(await rec.publicationsOf(ch, 200))).toEqual(range(1, 200));
      });

      // Capability-gated tests are only declared for the engines that have the capability, so an
      // engine without it reports nothing rather than a skipped test.
      if (caps.selectiveDelivery) it('does not deliver channels never subscribed, or unsubscribed', async () => {
        const on = uniqueChannel('on');
        const off = uniqueChannel('off');
        const later = uniqueChannel('later');
        await broker.subscribe(on);
        // Published before the subscribed channel's messages: had it been delivered, it would have arrived first.
        await publishTo(broker, off, 'not for us');
        await publishTo(broker, on, 1);
        await rec.publicationsOf(on, 1);
        expect(rec.of(off)).toEqual([]);

        await broker.unsubscribe(on);
        await broker.subscribe(later);
        await publishTo(broker, on, 2);
        await publishTo(broker, later, 'sentinel');
        await rec.publicationsOf(later, 1);
        expect(offsets(rec.of(on))).toEqual([1]);

        // Subscribing again resumes delivery.
        await broker.subscribe(on);
        await publishTo(broker, on, 3);
        expect(offsets(await rec.publicationsOf(on, 2))).toEqual([1, 3]);
      });
    });

    if (caps.sharedEngine) describe('two nodes on one engine', () => {
      let other: Broker;
      let otherRec: Recorder;
      beforeEach(async () => {
        other = await fixture.peer!();
        otherRec = new Recorder();
        await other.start(otherRec);
      });

      it('a second node receives the first node\u2019s publications with the same offsets', async () => {
        const ch = uniqueChannel('nodes');
        await other.subscribe(ch);
        await broker.subscribe(ch);
        const sent: Publication[] = [];
        for (let i = 0; i < 10; i++) sent.push((await publishTo(broker, ch, { i })).publication);
        expect(await otherRec.publicationsOf(ch, 10)).toEqual(sent);
        expect(await rec.publicationsOf(ch, 10)).toEqual(sent);
        const fromOther = await other.history(ch, {});
        expect(fromOther.publications).toEqual(sent);
        expect(fromOther.position).toEqual({ epoch: sent[0]!.epoch, offset: 10 });
      });

      it('both nodes publishing concurrently share one offset sequence and one idempotency space', async () => {
        const ch = uniqueChannel('nodes-par');
        const results = await Promise.all(
          Array.from({ length: 200 }, (_, i) => publishTo(i % 2 ? broker : other, ch, i)),
        );
        expect(results.map((r) => r.publication.offset).sort((x, y) => x - y)).toEqual(range(1, 200));
        const first = await publishTo(broker, ch, 'a', { idempotencyKey: 'shared' });
        const dup = await publishTo(other, ch, 'b', { idempotencyKey: 'shared' });
        expect(dup).toEqual({ publication: first.publication, duplicate: true });
      });
    });
  });
}
