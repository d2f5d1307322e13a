/**
 * In-memory broker: the embedded default for a single node. Publishing is synchronous, so
 * offsets, history order and delivery order are one and the same. All history is lost when the
 * process exits; a new process starts every stream in a new epoch.
 */
import { randomBytes } from 'node:crypto';
import { totalmem } from 'node:os';
import { applyAppend, type Publication } from '@signalbox/protocol';
import { appendRefused, appendsDisabled, publisherScope } from './append.js';
import type { Broker, BrokerHandler, CompactingBroker, CompactionRequest, HistoryQuery, HistoryResult, PublishRequest, PublishResult } from './types.js';

/** A retained message (a publication that is not an append): its data with its appends folded in. */
interface MessageState {
  pub: Publication;
  /** `${publisherScope}\u0000${id}`: the key it is found by for an append. */
  key: string;
  /** `pub.data` with every append so far applied. */
  data: unknown;
  /** Offset of the last append folded into `data`; undefined while it has none. */
  through?: number;
}

interface Stream {
  /** The channel name: every publication of the stream shares this one string. */
  name: string;
  epoch: string;
  offset: number;
  /**
   * Retained publications in offset order: the i-th oldest is `pubs[(head + i) % pubs.length]`,
   * for i < `count`. Without appends a ring of the history size (the slot of the oldest is reused:
   * no growth, no copying); with appends a list that grows at the end and is cut at the front
   * (messages and their appends, whose number the size does not bound).
   */
  pubs: (Publication | undefined)[];
  /** What each retained publication counts against the history budget, parallel to `pubs`. */
  sizes: number[];
  head: number;
  count: number;
  /**
   * Whether the channel's publications come with `appends` (its namespace allows them). Only then
   * are the three maps below kept: without, every publication is a message, `history.size` counts
   * publications, and a publish costs no index entry.
   */
  appends: boolean;
  /** Retained messages by offset (insertion order is offset order); their count is what `history.size` bounds. */
  messages: Map<number, MessageState>;
  /** Newest retained message per (publisher scope, id): where an append finds its message. */
  byKey: Map<string, number>;
  /** Newest retained message per id, whoever published it: tells "another's" from "none". */
  byId: Map<string, number>;
  /** Sum of the retained entries' bytes. */
  bytes: number;
  /** When the last publication was appended (ms): the budget evicts the least recent streams first. */
  lastAppend: number;
  /** Offset of the newest publication evicted for the history budget (0: none). */
  evictedThrough: number;
  /** When the retained history expires (ms); 0 = no history. */
  historyExpiresAt: number;
  /** When the stream's position itself is forgotten (ms). */
  metaExpiresAt: number;
}

/**
 * The index of a channel without appends: one shared, always empty map (a channel costs no maps of
 * its own until its namespace has appends). Writing to it is a bug, and throws.
 */
class NoIndex<K, V> extends Map<K, V> {
  override set(): this {
    throw new Error('memory broker: append index written on a channel without appends');
  }
}
const NO_MESSAGES: Map<number, MessageState> = new NoIndex();
const NO_IDS: Map<string, number> = new NoIndex();

export interface MemoryBrokerOptions {
  /** How long a stream's position is remembered after its last publication. Default 24 h. */
  streamMetaTtlMs?: number;
  /** Most idempotency keys remembered at once. Default 100,000. */
  maxIdempotencyKeys?: number;
  /** How often expired streams and keys are swept. Default 60 s. */
  sweepIntervalMs?: number;
  /**
   * Most bytes all streams' retained history may take together (see {@link MemoryBroker}).
   * Default: 1/8 of the machine's memory, at most 4 GiB.
   */
  maxHistoryBytes?: number;
  /** Called after the history budget evicted publications (for a log line or a metric). */
  onEvicted?: (publications: number, bytes: number) => void;
  /** Clock, for tests. */
  now?: () => number;
}

/** What a publication counts against the history budget beyond its `size`: the object, its strings. */
const PUBLICATION_OVERHEAD = 200;
/** `size` of a publication whose publisher gave none (the gateway's own: presence, metrics). */
const DEFAULT_SIZE = 512;

/** The default history budget: 1/8 of the machine's memory, at most 4 GiB. */
export function defaultHistoryBudget(): number {
  return Math.min(Math.floor(totalmem() / 8), 4 * 1024 ** 3);
}

/**
 * History is bounded per channel (the namespace's size and TTL) and in total: when all retained
 * publications together count more than `maxHistoryBytes`, the streams appended to least recently
 * lose their oldest publications first, until the total is back under 90 % of the budget (the
 * stream just appended to keeps at least the message just published or appended to, with its
 * appends). An append counts twice its size: it is held as itself and folded into its message. A stream remembers the newest offset
 * evicted, so a recovery that needed it is told `recovered: false` with reason `history_evicted`,
 * never left with a gap. The position (epoch, offset) of every stream is kept.
 */
export class MemoryBroker implements Broker, CompactingBroker {
  readonly kind = 'memory';
  private handler: BrokerHandler | null = null;
  private readonly streams = new Map<string, Stream>();
  private readonly idempotency = new Map<string, { pub: Publication; expiresAt: number }>();
  private readonly metaTtlMs: number;
  private readonly maxKeys: number;
  private readonly now: () => number;
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly sweepIntervalMs: number;
  private readonly maxHistoryBytes: number;
  private readonly onEvicted: ((publications: number, bytes: number) => void) | undefined;
  /** Bytes of all streams' retained publications (the sum of their `bytes`). */
  private retainedBytes = 0;

  constructor(opts: MemoryBrokerOptions = {}) {
    this.maxHistoryBytes = opts.maxHistoryBytes ?? defaultHistoryBudget();
    this.onEvicted = opts.onEvicted;
    this.metaTtlMs = opts.streamMetaTtlMs ?? 24 * 3600_000;
    this.maxKeys = opts.maxIdempotencyKeys ?? 100_000;
    this.sweepIntervalMs = opts.sweepIntervalMs ?? 60_000;
    this.now = opts.now ?? Date.now;
  }

  async start(handler: BrokerHandler): Promise<void> {
    this.handler = handler;
    this.sweepTimer = setInterval(() => this.sweep(), this.sweepIntervalMs);
    this.sweepTimer.unref();
  }

  isReady(): boolean {
    return this.handler !== null;
  }

  async subscribe(): Promise<void> {
    // Every publication of this process reaches the handler; the hub ignores channels it does not carry.
  }

  async unsubscribe(): Promise<void> {}

  async clearHistory(channel: string): Promise<void> {
    const stream = this.streams.get(channel);
    if (!stream) return;
    this.clear(stream);
  }

  /** Bytes the retained history of every stream counts against the budget (for tests and metrics). */
  historyBytes(): number {
    return this.retainedBytes;
  }

  publish(req: PublishRequest): Promise<PublishResult> {
    const now = this.now();
    const key = req.idempotencyKey === undefined ? undefined : idemKey(req.channel, req.idempotencyKey);
    if (key !== undefined) {
      const seen = this.idempotency.get(key);
      if (seen && seen.expiresAt > now) return Promise.resolve({ publication: seen.pub, duplicate: true });
    }
    const appends = req.appends === true;
    if (req.appendTo !== undefined && !appends) return Promise.reject(appendsDisabled(req.channel, req.appendTo));
    const stream = this.liveStream(req.channel, now, true)!;
    if (stream.appends !== appends) this.setAppends(stream, appends);
    const id = req.id ?? req.idempotencyKey ?? generatePublicationId();
    // An append's message: retained, not an append, the same publisher's. Checked before the offset moves.
    let target: MessageState | undefined;
    if (req.appendTo !== undefined) {
      const scope = publisherScope(req.publisher);
      const at = stream.byKey.get(`${scope}\u0000${req.appendTo}`);
      target = at === undefined ? undefined : stream.messages.get(at);
      if (!target) {
        const other = stream.byId.get(req.appendTo);
        const why = other !== undefined && stream.messages.has(other) ? 'other_publisher' : 'not_found';
        return Promise.reject(appendRefused(why, req.channel, req.appendTo));
      }
    }
    stream.offset += 1;
    const pub: Publication = {
      id,
      channel: stream.name,
      type: req.type,
      data: req.data,
      offset: stream.offset,
      epoch: stream.epoch,
      time: now,
      publisher: req.publisher,
    };
    if (req.appendTo !== undefined) pub.appendTo = req.appendTo;
    const size = req.history.size;
    if (size > 0 && !appends) {
      // The plain path: no index; a ring of the namespace's size, which counts publications.
      if (stream.pubs.length !== size) this.resizeRing(stream, size);
      const bytes = (req.size ?? DEFAULT_SIZE) + PUBLICATION_OVERHEAD;
      const slot = (stream.head + stream.count) % size;
      if (stream.count < size) stream.count++;
      else {
        // Full: the oldest goes to make room.
        stream.bytes -= stream.sizes[slot]!;
        this.retainedBytes -= stream.sizes[slot]!;
        stream.head = (stream.head + 1) % size;
      }
      stream.pubs[slot] = pub;
      stream.sizes[slot] = bytes;
      stream.bytes += bytes;
      this.retainedBytes += bytes;
      stream.historyExpiresAt = now + req.history.ttlMs;
      stream.lastAppend = now;
      if (this.retainedBytes > this.maxHistoryBytes) this.evict(stream, pub.offset);
    } else if (size > 0) {
      const given = req.size ?? DEFAULT_SIZE;
      // An append is held twice: as itself (for exact recovery) and folded into its message.
      const bytes = (target ? 2 * given : given) + PUBLICATION_OVERHEAD;
      stream.pubs.push(pub);
      stream.sizes.push(bytes);
      stream.count++;
      stream.bytes += bytes;
      this.retainedBytes += bytes;
      if (target) {
        target.data = applyAppend(target.data, pub.data);
        target.through = pub.offset;
      } else {
        const k = `${publisherScope(req.publisher)}\u0000${id}`;
        stream.messages.set(pub.offset, { pub, key: k, data: pub.data });
        stream.byKey.set(k, pub.offset);
        stream.byId.set(id, pub.offset);
      }
      // The namespace's size counts messages: the oldest goes with its appends.
      while (stream.messages.size > size) this.dropHead(stream);
      this.dropOrphans(stream);
      stream.historyExpiresAt = now + req.history.ttlMs;
      stream.lastAppend = now;
      if (this.retainedBytes > this.maxHistoryBytes) this.evict(stream, target ? target.pub.offset : pub.offset);
    } else if (this.retained(stream) > 0) {
      this.clear(stream);
    }
    stream.metaExpiresAt = now + Math.max(this.metaTtlMs, req.history.ttlMs);
    if (key !== undefined && req.idempotencyWindowMs > 0) {
      if (this.idempotency.size >= this.maxKeys) this.evictKeys(now);
      this.idempotency.set(key, { pub, expiresAt: now + req.idempotencyWindowMs });
    }
    this.handler?.onPublication(pub);
    return Promise.resolve({ publication: pub, duplicate: false });
  }

  history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    const now = this.now();
    const stream = this.liveStream(channel, now, true)!;
    const earliestOffset = stream.count > 0 ? stream.pubs[stream.head]!.offset : stream.offset + 1;
    const len = stream.pubs.length;
    let publications: Publication[];
    if (query.since) {
      const from = query.since.offset;
      publications = [];
      const max = query.limit ?? Number.POSITIVE_INFINITY;
      for (let i = 0; i < stream.count && publications.length < max; i++) {
        const p = stream.pubs[(stream.head + i) % len]!;
        if (p.offset > from) publications.push(p);
      }
    } else if (query.limit === 0) {
      publications = [];
    } else if (query.compact && stream.appends) {
      publications = [];
      for (const m of stream.messages.values()) publications.push(m.through === undefined ? m.pub : { ...m.pub, data: m.data, through: m.through });
      if (query.limit !== undefined) publications = publications.slice(-query.limit);
    } else {
      // Also a compacted read of a channel without appends: every publication is a message.
      const from = query.limit === undefined ? 0 : Math.max(0, stream.count - query.limit);
      publications = [];
      for (let i = from; i < stream.count; i++) publications.push(stream.pubs[(stream.head + i) % len]!);
    }
    const result: HistoryResult = { publications, position: { epoch: stream.epoch, offset: stream.offset }, earliestOffset };
    if (stream.evictedThrough > 0) result.evictedThrough = stream.evictedThrough;
    return Promise.resolve(result);
  }

  /** Compaction (see {@link CompactingBroker}): synchronous, so atomic with every publish and read. */
  compact(req: CompactionRequest): Promise<boolean> {
    const stream = this.liveStream(req.channel, this.now(), false);
    // A channel with appends keeps a message index that parts would have to rebuild: not compacted.
    if (!stream || stream.appends || stream.epoch !== req.epoch || stream.count === 0) return Promise.resolve(false);
    const size = stream.pubs.length;
    const at = (i: number): number => (stream.head + i) % size;
    const earliest = stream.pubs[at(0)]!.offset;
    const idx = req.through - earliest;
    const start = req.through - req.parts.length + 1;
    const here = idx >= 0 && idx < stream.count ? stream.pubs[at(idx)]! : undefined;
    if (here?.offset !== req.through || here.id !== req.throughId || start < earliest || req.parts.length === 0) return Promise.resolve(false);
    const now = this.now();
    const pubs: (Publication | undefined)[] = new Array(size);
    const sizes: number[] = new Array(size);
    let n = 0;
    let bytes = 0;
    for (const [i, part] of req.parts.entries()) {
      pubs[n] = { id: part.id, channel: stream.name, type: part.type, data: part.data, offset: start + i, epoch: stream.epoch, time: now, publisher: req.publisher };
      sizes[n] = (part.data instanceof Uint8Array ? part.data.byteLength : DEFAULT_SIZE) + PUBLICATION_OVERHEAD;
      bytes += sizes[n++]!;
    }
    for (let i = idx + 1; i < stream.count; i++) {
      pubs[n] = stream.pubs[at(i)];
      sizes[n] = stream.sizes[at(i)]!;
      bytes += sizes[n++]!;
    }
    this.retainedBytes += bytes - stream.bytes;
    Object.assign(stream, { pubs, sizes, bytes, head: 0, count: n });
    return Promise.resolve(true);
  }

  async close(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    this.handler = null;
  }

  /** The channel's stream after applying expiry; created (new epoch) when absent and `create`. */
  private liveStream(channel: string, now: number, create: boolean): Stream | undefined {
    let stream = this.streams.get(channel);
    if (stream && stream.metaExpiresAt <= now) {
      this.forget(channel, stream);
      stream = undefined;
    }
    if (stream && this.retained(stream) > 0 && stream.historyExpiresAt <= now) this.clear(stream);
    if (!stream && create) {
      stream = {
        name: channel, epoch: newEpoch(), offset: 0, pubs: [], sizes: [], head: 0, count: 0, appends: false, messages: NO_MESSAGES, byKey: NO_IDS, byId: NO_IDS,
        bytes: 0, lastAppend: 0, evictedThrough: 0, historyExpiresAt: 0, metaExpiresAt: now + this.metaTtlMs,
      };
      this.streams.set(channel, stream);
    }
    return stream;
  }

  private sweep(): void {
    const now = this.now();
    for (const [channel, stream] of this.streams) {
      if (stream.metaExpiresAt <= now) this.forget(channel, stream);
      else if (this.retained(stream) > 0 && stream.historyExpiresAt <= now) this.clear(stream);
    }
    this.evictKeys(now);
  }

  private forget(channel: string, stream: Stream): void {
    this.retainedBytes -= stream.bytes;
    this.streams.delete(channel);
  }

  /** How many publications (messages and appends) the stream retains. */
  private retained(stream: Stream): number {
    return stream.count;
  }

  /** Makes the stream's publications a ring of `size` slots, keeping the newest `size` (accounting for the rest). */
  private resizeRing(stream: Stream, size: number): void {
    const len = stream.pubs.length;
    const drop = Math.max(0, stream.count - size);
    const pubs: (Publication | undefined)[] = new Array(size);
    const sizes: number[] = new Array(size);
    let bytes = 0;
    for (let i = drop; i < stream.count; i++) {
      const from = (stream.head + i) % len;
      pubs[i - drop] = stream.pubs[from];
      sizes[i - drop] = stream.sizes[from]!;
      bytes += stream.sizes[from]!;
    }
    this.retainedBytes += bytes - stream.bytes;
    stream.pubs = pubs;
    stream.sizes = sizes;
    stream.bytes = bytes;
    stream.head = 0;
    stream.count -= drop;
  }

  /** The retained publications as a list from index 0 (the appends layout). */
  private linearize(stream: Stream): void {
    const len = stream.pubs.length;
    const pubs: (Publication | undefined)[] = [];
    const sizes: number[] = [];
    for (let i = 0; i < stream.count; i++) {
      pubs.push(stream.pubs[(stream.head + i) % len]);
      sizes.push(stream.sizes[(stream.head + i) % len]!);
    }
    stream.pubs = pubs;
    stream.sizes = sizes;
    stream.head = 0;
  }

  /**
   * The channel's namespace turned appends on or off (a changed config). Off: the index goes.
   * On: it is rebuilt from what is retained (every publication a message, appends folded onto
   * theirs), so the next publish trims by messages again.
   */
  private setAppends(stream: Stream, on: boolean): void {
    stream.appends = on;
    this.linearize(stream);
    if (!on) {
      stream.messages = NO_MESSAGES;
      stream.byKey = NO_IDS;
      stream.byId = NO_IDS;
      return;
    }
    stream.messages = new Map();
    stream.byKey = new Map();
    stream.byId = new Map();
    for (let i = 0; i < stream.count; i++) {
      const p = stream.pubs[i]!;
      if (p.appendTo === undefined) {
        const k = `${publisherScope(p.publisher)}\u0000${p.id}`;
        stream.messages.set(p.offset, { pub: p, key: k, data: p.data });
        stream.byKey.set(k, p.offset);
        stream.byId.set(p.id, p.offset);
      } else {
        const at = stream.byKey.get(`${publisherScope(p.publisher)}\u0000${p.appendTo}`);
        const m = at === undefined ? undefined : stream.messages.get(at);
        if (m) {
          m.data = applyAppend(m.data, p.data);
          m.through = p.offset;
        }
      }
    }
  }

  /** Drops the stream's oldest retained publication (a message takes its lookup entries with it). */
  private dropHead(stream: Stream): Publication {
    const pub = stream.pubs[stream.head]!;
    const bytes = stream.sizes[stream.head]!;
    stream.pubs[stream.head] = undefined;
    stream.count--;
    stream.bytes -= bytes;
    this.retainedBytes -= bytes;
    if (stream.appends && pub.appendTo === undefined) {
      const m = stream.messages.get(pub.offset);
      stream.messages.delete(pub.offset);
      if (m && stream.byKey.get(m.key) === pub.offset) stream.byKey.delete(m.key);
      if (stream.byId.get(pub.id) === pub.offset) stream.byId.delete(pub.id);
    }
    if (!stream.appends) {
      // The ring keeps its slots.
      stream.head = stream.count === 0 ? 0 : (stream.head + 1) % stream.pubs.length;
      return pub;
    }
    stream.head++;
    if (stream.count === 0) {
      stream.pubs = [];
      stream.sizes = [];
      stream.head = 0;
    } else if (stream.head >= 1024 && stream.head * 2 >= stream.pubs.length) {
      stream.pubs = stream.pubs.slice(stream.head);
      stream.sizes = stream.sizes.slice(stream.head);
      stream.head = 0;
    }
    return pub;
  }

  /**
   * Drops appends at the head of the stream: their message is gone (an append always follows its
   * message), so the retained stream starts at a message. Returns the last offset dropped (0: none).
   */
  private dropOrphans(stream: Stream): number {
    let last = 0;
    while (stream.count > 0 && stream.pubs[stream.head]!.appendTo !== undefined) last = this.dropHead(stream).offset;
    return last;
  }

  /** Drops everything the stream retains; its position stays. */
  private clear(stream: Stream): void {
    this.retainedBytes -= stream.bytes;
    stream.pubs = [];
    stream.sizes = [];
    stream.head = 0;
    stream.count = 0;
    stream.bytes = 0;
    if (stream.appends) {
      stream.messages.clear();
      stream.byKey.clear();
      stream.byId.clear();
    }
  }

  /**
   * Over budget: the streams appended to least recently give up their oldest publications until the
   * total is under 90 % of the budget, so that one eviction pays for many publishes. The stream just
   * appended to keeps at least the message just published or appended to (from offset `keepFrom`).
   * One sort of the streams that retain anything, only when over budget.
   */
  private evict(current: Stream, keepFrom: number): void {
    const target = this.maxHistoryBytes * 0.9;
    const holders = [...this.streams.values()].filter((s) => this.retained(s) > 0).sort((a, b) => a.lastAppend - b.lastAppend);
    let publications = 0;
    let bytes = 0;
    for (const s of holders) {
      while (this.retainedBytes > target && this.retained(s) > 0 && (s !== current || s.pubs[s.head]!.offset < keepFrom)) {
        const before = this.retainedBytes;
        s.evictedThrough = this.dropHead(s).offset;
        publications++;
        const orphan = this.dropOrphans(s);
        if (orphan > 0) s.evictedThrough = orphan;
        bytes += before - this.retainedBytes;
      }
      if (this.retainedBytes <= target) break;
    }
    if (publications > 0) this.onEvicted?.(publications, bytes);
  }

  private evictKeys(now: number): void {
    // Map iteration is insertion order, which is expiry order for one window; stop at the first live
    // key. When full, the oldest 1/64 go at once: evicting one key per publish would walk the map
    // and churn its table on every publish once the cap is reached.
    const target = this.idempotency.size >= this.maxKeys ? this.maxKeys - Math.max(1, this.maxKeys >> 6) : Infinity;
    for (const [key, entry] of this.idempotency) {
      if (entry.expiresAt > now && this.idempotency.size <= target) break;
      this.idempotency.delete(key);
    }
  }
}

function idemKey(channel: string, key: string): string {
  return `${channel}\u0000${key}`;
}

export function newEpoch(): string {
  return randomBytes(6).toString('base64url');
}

let pubCounter = 0;
const pubPrefix = randomBytes(4).toString('hex');
/** A publication id unique across nodes: node-random prefix, time, counter. */
export function generatePublicationId(): string {
  pubCounter = (pubCounter + 1) % 0x7fffffff;
  return `pub_${pubPrefix}${Date.now().toString(36)}${pubCounter.toString(36)}`;
}
