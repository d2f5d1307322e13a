/**
 * In-memory broker: the embedded default for a single node. Publishing is synchronous, so
 * offsets, history order and delivery order are one and the same. All history is lost when the
 * process exits; a new process starts every stream in a new epoch.
 */
import { randomBytes } from 'node:crypto';
import type { Publication } from '@signalbox/protocol';
import type { Broker, BrokerHandler, HistoryQuery, HistoryResult, PublishRequest, PublishResult } from './types.js';

interface Stream {
  /** The channel name: every publication of the stream shares this one string. */
  name: string;
  epoch: string;
  offset: number;
  /** Ring buffer of retained publications. */
  ring: (Publication | undefined)[];
  head: number;
  count: number;
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
  /** Clock, for tests. */
  now?: () => number;
}

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

  constructor(opts: MemoryBrokerOptions = {}) {
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
    stream.ring.fill(undefined);
    stream.head = 0;
    stream.count = 0;
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
      if (stream.ring.length !== size) resizeRing(stream, size);
      stream.ring[(stream.head + stream.count) % size] = pub;
      if (stream.count < size) stream.count++;
      else stream.head = (stream.head + 1) % size;
      stream.historyExpiresAt = now + req.history.ttlMs;
    } else if (stream.count > 0) {
      resizeRing(stream, 0);
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
    return Promise.resolve({ publications, position: { epoch: stream.epoch, offset: stream.offset }, earliestOffset });
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
      this.streams.delete(channel);
      stream = undefined;
    }
    if (stream && stream.count > 0 && stream.historyExpiresAt <= now) resizeRing(stream, 0);
    if (!stream && create) {
      stream = { name: channel, epoch: newEpoch(), offset: 0, ring: [], head: 0, count: 0, historyExpiresAt: 0, metaExpiresAt: now + this.metaTtlMs };
      this.streams.set(channel, stream);
    }
    return stream;
  }

  private sweep(): void {
    const now = this.now();
    for (const [channel, stream] of this.streams) {
      if (stream.metaExpiresAt <= now) this.streams.delete(channel);
      else if (stream.count > 0 && stream.historyExpiresAt <= now) resizeRing(stream, 0);
    }
    this.evictKeys(now);
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

function resizeRing(stream: Stream, size: number): void {
  const kept: Publication[] = [];
  const old = stream.ring.length;
  for (let i = 0; i < stream.count; i++) kept.push(stream.ring[(stream.head + i) % old]!);
  const keep = size === 0 ? [] : kept.slice(-size);
  stream.ring = new Array(size);
  for (let i = 0; i < keep.length; i++) stream.ring[i] = keep[i];
  stream.head = 0;
  stream.count = keep.length;
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
