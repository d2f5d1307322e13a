/**
 * The Broker seam: where publications get their stream position, are kept as history, and are
 * fanned out between nodes. `MemoryBroker` is the embedded default; `RedisBroker` is the
 * distributed engine. Both pass the same contract suite (test/contract/broker.contract.ts).
 */
import type { Publication, Publisher, StreamPosition } from '@signalbox/protocol';

export interface HistoryPolicy {
  /** How many publications to retain per channel; 0 keeps none (offsets still advance). */
  size: number;
  /** How long the history is kept after the channel's last publication. */
  ttlMs: number;
}

export interface PublishRequest {
  channel: string;
  type: string;
  data: unknown;
  /** Publication id subscribers see; defaults to `idempotencyKey`, else one is generated. */
  id?: string;
  /** Idempotency key: a publish repeated with the same key within `idempotencyWindowMs` publishes nothing new. */
  idempotencyKey?: string;
  /** Who published, as the gateway authenticated it; stored with the publication. */
  publisher?: Publisher;
  history: HistoryPolicy;
  idempotencyWindowMs: number;
  /**
   * About how many bytes the publication takes (the frame or body it came in); the memory broker
   * counts it against its total history budget. Absent: a small default.
   */
  size?: number;
  /**
   * Makes the publication an append to the message with this id: a retained, non-append
   * publication of the same channel by the same publisher ({@link publisherScope}); otherwise the
   * publish is refused (`APPEND_TARGET_NOT_FOUND`, `APPEND_NOT_ALLOWED`) and nothing is published.
   * The idempotency key is checked first: a repeated append resolves with the first one's result.
   * Needs `appends`.
   */
  appendTo?: string;
  /**
   * The channel's namespace allows appends (`appends: true`): the broker keeps the bookkeeping they
   * need for every publication of the channel (message index, message order, fold state). Absent or
   * false: the plain path, as cheap as before appends existed (history counts publications, no
   * index), and an `appendTo` is refused (`PERMISSION_DENIED`). Every publication of a channel must
   * pass the same value (its namespace's), or the index misses messages.
   */
  appends?: boolean;
}

export interface PublishResult {
  publication: Publication;
  /** True when the idempotency key was seen before: `publication` is the first publish's result. */
  duplicate: boolean;
}

export interface HistoryQuery {
  /** Return publications with offset > since.offset (epoch is not interpreted: compare it to `position.epoch`). */
  since?: StreamPosition;
  /**
   * At most this many. With `since`: the first `limit` after it (raw publications, appends
   * included). Without: the last `limit` retained (messages when `compact`).
   * Undefined: all retained. 0: none (just the position).
   */
  limit?: number;
  /**
   * Only without `since`, and only for a channel whose publications were published with `appends`
   * (without them every publication is a message: the plain read is the same, and cheaper).
   * Returns messages, not raw publications. Each retained message comes once,
   * with every retained append folded into its data (`applyAppend`) and `through` set to the last
   * append's offset (absent when it has none); appends are not returned by themselves.
   */
  compact?: boolean;
}

export interface HistoryResult {
  /** Ascending by offset. */
  publications: Publication[];
  /** The stream's current top: epoch and offset of the latest publication (0 when none yet). */
  position: StreamPosition;
  /** Offset of the oldest retained publication; `position.offset + 1` when none is retained. */
  earliestOffset: number;
  /**
   * Offset of the newest publication the engine dropped to keep its total history budget (the
   * memory broker's); absent when none was. A recovery that needs it is told `history_evicted`.
   */
  evictedThrough?: number;
}

export interface BrokerHandler {
  /**
   * A publication on a channel this node subscribed to. Per channel, calls come in offset order
   * as far as the broker can guarantee; the hub detects and repairs gaps and duplicates.
   */
  onPublication(pub: Publication): void;
  /**
   * The broker may have missed publications (e.g. its pub/sub connection dropped): the hub must
   * re-read these channels' streams. `null` means every channel this node subscribed to.
   */
  onResync(channels: string[] | null): void;
  /** Readiness changed (connection to the engine lost or regained). */
  onReadyChange?(ready: boolean): void;
}

/**
 * Contract:
 * - `publish` assigns the channel's next offset and appends to history atomically: two publishes
 *   to one channel never get the same offset, and history order is offset order.
 * - The epoch changes whenever the stream's past was lost; an offset is never reused within an epoch.
 * - A publish resolves only once the publication is in history (when the channel keeps history).
 * - Publications reach `BrokerHandler.onPublication` of every node subscribed to the channel.
 */
export interface Broker {
  // History holds messages and their appends: `history.size` counts messages (publications
  // without `appendTo`); dropping a message drops its appends with it, and the retained stream
  // always starts at a message. Appends get offsets like any publication.
  readonly kind: string;
  start(handler: BrokerHandler): Promise<void>;
  publish(req: PublishRequest): Promise<PublishResult>;
  history(channel: string, query: HistoryQuery): Promise<HistoryResult>;
  /**
   * Drops the channel's retained publications. The position stays (an offset is never reused), so
   * a later recovery from before it is told it cannot be served (`history_expired`), never a gap.
   */
  clearHistory(channel: string): Promise<void>;
  /** Begin receiving the channel's publications on this node. The hub reference-counts its calls. */
  subscribe(channel: string): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  /** True while the broker can serve publish/history. */
  isReady(): boolean;
  close(): Promise<void>;
}

/**
 * Compaction (Yjs documents, src/yjs/compactor.ts): the retained publications with offsets up to
 * `through` are replaced by `parts`, which take the offsets `through - parts.length + 1 … through`.
 */
export interface CompactionRequest {
  channel: string;
  /** The epoch the parts were computed in; another epoch compacts nothing. */
  epoch: string;
  /** The newest offset the parts stand for. */
  through: number;
  /**
   * The id of the publication at `through` the parts were computed from. Another there (another
   * compaction's part, since) compacts nothing: its snapshot may stand for offsets after `through`.
   */
  throughId: string;
  parts: { id: string; type: string; data: unknown }[];
  publisher: Publisher;
}

/**
 * A broker that can compact a stream. Contract: atomic with the trim (a reader sees the stream
 * before or after, never between), publications after `through` untouched, offsets never reused.
 * Resolves false, changing nothing, when the epoch differs, `through` is no longer retained or holds
 * another publication than `throughId`, or the parts would need offsets older than the oldest retained.
 */
export interface CompactingBroker {
  compact(req: CompactionRequest): Promise<boolean>;
}

/** Thrown by brokers when the engine is unreachable or too slow; mapped to UNAVAILABLE / HTTP 503. */
export class BrokerUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BrokerUnavailableError';
  }
}
