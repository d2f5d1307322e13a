/**
 * In-memory broker: the embedded default for a single node. Publishing is synchronous, so
 * offsets, history order and delivery order are one and the same. All history is lost when the
 * process exits; a new process starts every stream in a new epoch.
 */
import { randomBytes } from 'node:crypto';
import { totalmem } from 'node:os';
import type { Publication } from '@signalbox/protocol';
import type { Broker, BrokerHandler, HistoryQuery, HistoryResult, PublishRequest, PublishResult } from './types.js';

interface Stream {
  /** The channel name: every publication of the stream shares this one string. */
  name: string;
  epoch: string;
  offset: number;
  /** Ring buffer of retained publications. */
  ring: (Publication | undefined)[];
  /** What each retained publication counts against the history budget, parallel to `ring`. */
  sizes: number[];
  head: number;
  count: number;
  /** Sum of `sizes` of the retained publications. */
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
 * stream just appended to keeps at least that publication). A stream remembers the newest offset
 * evicted, so a recovery that needed it is told `recovered: false` with reason `history_evicted`,
 * never left with a gap. The position (epoch, offset) of every stream is kept.
 */
export class MemoryBroker implements Broker {
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
    this.resize(stream, 0);
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
    const stream = this.liveStream(req.channel, now, true)!;
    stream.offset += 1;
    const pub: Publication = {
      id: req.id ?? req.idempotencyKey ?? generatePublicationId(),
      channel: stream.name,
      type: req.type,
      data: req.data,
      offset: stream.offset,
      epoch: stream.epoch,
      time: now,
      publisher: req.publisher,
    };
    const size = req.history.size;
    if (size > 0) {
      if (stream.ring.length !== size) this.resize(stream, size);
      const bytes = (req.size ?? DEFAULT_SIZE) + PUBLICATION_OVERHEAD;
      const slot = (stream.head + stream.count) % size;
      if (stream.count < size) stream.count++;
      else {
        // Full: the oldest goes to make room (the namespace's size, not the budget).
        stream.bytes -= stream.sizes[slot]!;
        this.retainedBytes -= stream.sizes[slot]!;
        stream.head = (stream.head + 1) % size;
      }
      stream.ring[slot] = pub;
      stream.sizes[slot] = bytes;
      stream.bytes += bytes;
      this.retainedBytes += bytes;
      stream.historyExpiresAt = now + req.history.ttlMs;
      stream.lastAppend = now;
      if (this.retainedBytes > this.maxHistoryBytes) this.evict(stream);
    } else if (stream.count > 0) {
      this.resize(stream, 0);
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
    const retained: Publication[] = [];
    const size = stream.ring.length;
    for (let i = 0; i < stream.count; i++) retained.push(stream.ring[(stream.head + i) % size]!);
    const earliestOffset = retained.length > 0 ? retained[0]!.offset : stream.offset + 1;
    let publications: Publication[];
    if (query.since) {
      const from = query.since.offset;
      publications = retained.filter((p) => p.offset > from);
      if (query.limit !== undefined) publications = publications.slice(0, query.limit);
    } else {
      publications = query.limit === undefined ? retained : query.limit === 0 ? [] : retained.slice(-query.limit);
    }
    const result: HistoryResult = { publications, position: { epoch: stream.epoch, offset: stream.offset }, earliestOffset };
    if (stream.evictedThrough > 0) result.evictedThrough = stream.evictedThrough;
    return Promise.resolve(result);
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
    if (stream && stream.count > 0 && stream.historyExpiresAt <= now) this.resize(stream, 0);
    if (!stream && create) {
      stream = {
        name: channel, epoch: newEpoch(), offset: 0, ring: [], sizes: [], head: 0, count: 0, bytes: 0,
        lastAppend: 0, evictedThrough: 0, historyExpiresAt: 0, metaExpiresAt: now + this.metaTtlMs,
      };
      this.streams.set(channel, stream);
    }
    return stream;
  }

  private sweep(): void {
    const now = this.now();
    for (const [channel, stream] of this.streams) {
      if (stream.metaExpiresAt <= now) this.forget(channel, stream);
      else if (stream.count > 0 && stream.historyExpiresAt <= now) this.resize(stream, 0);
    }
    this.evictKeys(now);
  }

  private forget(channel: string, stream: Stream): void {
    this.retainedBytes -= stream.bytes;
    this.streams.delete(channel);
  }

  /**
   * Over budget: the streams appended to least recently give up their oldest publications until the
   * total is under 90 % of the budget, so that one eviction pays for many publishes. One sort of
   * the streams that retain anything, only when over budget.
   */
  private evict(current: Stream): void {
    const target = this.maxHistoryBytes * 0.9;
    const holders = [...this.streams.values()].filter((s) => s.count > 0).sort((a, b) => a.lastAppend - b.lastAppend);
    let publications = 0;
    let bytes = 0;
    for (const s of holders) {
      const size = s.ring.length;
      while (this.retainedBytes > target && s.count > (s === current ? 1 : 0)) {
        const b = s.sizes[s.head]!;
        s.evictedThrough = s.ring[s.head]!.offset;
        s.ring[s.head] = undefined;
        s.head = (s.head + 1) % size;
        s.count--;
        s.bytes -= b;
        this.retainedBytes -= b;
        publications++;
        bytes += b;
      }
      if (this.retainedBytes <= target) break;
    }
    if (publications > 0) this.onEvicted?.(publications, bytes);
  }

  /** Keeps the newest `size` publications of the stream (in a ring of that size), accounting for the rest. */
  private resize(stream: Stream, size: number): void {
    const old = stream.ring.length;
    const drop = Math.max(0, stream.count - size);
    const ring: (Publication | undefined)[] = new Array(size);
    const sizes: number[] = new Array(size);
    let bytes = 0;
    for (let i = drop; i < stream.count; i++) {
      const from = (stream.head + i) % old;
      ring[i - drop] = stream.ring[from];
      sizes[i - drop] = stream.sizes[from]!;
      bytes += stream.sizes[from]!;
    }
    this.retainedBytes += bytes - stream.bytes;
    stream.ring = ring;
    stream.sizes = sizes;
    stream.bytes = bytes;
    stream.head = 0;
    stream.count = stream.count - drop;
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
