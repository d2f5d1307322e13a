/**
 * What a channel can be asked to do, whoever asks: publish, read history, list presence, announce
 * a presence change. The WebSocket connection and the HTTP API both call these, after they have
 * parsed a request and authorized it; neither builds a broker request of its own. This is the
 * one place that applies a namespace's history policy, scopes idempotency keys to their
 * publisher, decides whether a history position can be served, and counts publications.
 *
 * Failures come out as {@link GatewayError}s (see errors.ts): a refusal with its code, a broker
 * outage as `UNAVAILABLE`, anything else as `INTERNAL_ERROR` with its cause.
 */
import { ErrorCode, type PresenceMember, type Publication, type Publisher, type StreamPosition, type UnrecoverableReason } from '@signalbox/protocol';
import { appendsDisabled } from '../broker/append.js';
import { generatePublicationId } from '../broker/memory.js';
import type { Broker, HistoryResult, PublishResult } from '../broker/types.js';
import { GatewayError, toGatewayError } from '../errors.js';
import { classifyRecovery } from '../hub/recovery.js';
import type { Metrics } from '../metrics.js';
import type { PresenceStore } from '../presence/types.js';
import { checkDocumentPublication } from '../yjs/wire.js';
import type { ResolvedChannel } from './namespaces.js';

/**
 * Who asks for a publish, as the caller authenticated it: a client connection (`ws`), the HTTP API
 * (`http`, with its key's name), or the gateway itself. It is stored with the publication as its
 * publisher: subscribers, recovery and history all see it.
 */
export type PublishOrigin = Publisher;

/** The gateway's own presence announcements. */
const PRESENCE_PUBLISHER: Publisher = Object.freeze({ via: 'gateway', service: 'presence' });

/** A publication as a caller hands it over: already validated (type, id, size and depth). */
export interface PublishMessage {
  type: string;
  data: unknown;
  /** The caller's id for it: the publication id subscribers see, and (scoped to the origin) its idempotency key. */
  id?: string;
  /** About how many bytes it came in (frame or body): what it counts against the memory history budget. */
  size?: number;
  /** Appends to the message with this id (see docs/protocol.md, "Appends"). */
  appendTo?: string;
}

export interface HistoryRequest {
  since?: StreamPosition;
  /** At most this many (messages without `since`, publications after it); default min(100, the namespace's history size) without `since`, 100 with it. */
  limit?: number;
  /**
   * At most about this many bytes of publications (their JSON): a longer page is cut after the
   * last publication that fits (at least one is always returned) and says where to go on (`next`).
   */
  maxBytes?: number;
  /**
   * Whether the reply's encoding can carry a publication (default: its data is JSON). A page stops
   * before the first one it cannot (with `next` just before it); when that is the first of the
   * page, the read is refused with `UNRECOVERABLE_POSITION`, reason `unencodable` and its `offset`,
   * so the reader knows exactly what it cannot have and may read on past it.
   */
  encodable?: (p: Publication) => boolean;
}

/** A history read: a contiguous run of publications; `next` when it was cut short by size. */
export interface HistoryPage extends HistoryResult {
  /** Present when publications were left out for size: ask again with `since: next`. */
  next?: StreamPosition;
}

/**
 * The leading publications of `hist` that fit in `maxBytes` (by the length of their JSON) and that
 * the reply can encode, oldest first; `next` when some were left out.
 */
function page(hist: HistoryResult, maxBytes: number, encodable: (p: Publication) => boolean): HistoryPage {
  let bytes = 0;
  let n = 0;
  for (const p of hist.publications) {
    if (!encodable(p)) {
      if (n > 0) break;
      throw new GatewayError(ErrorCode.UNRECOVERABLE_POSITION, `The publication at offset ${p.offset} cannot be encoded for this reply; read on with since.offset = ${p.offset} to skip it`, {
        reason: 'unencodable', offset: p.offset, position: hist.position, earliestOffset: hist.earliestOffset,
      });
    }
    bytes += publicationBytes(p);
    if (bytes > maxBytes && n > 0) break;
    n++;
  }
  if (n === hist.publications.length) return hist;
  const last = hist.publications[n - 1]!;
  return { ...hist, publications: hist.publications.slice(0, n), next: { epoch: last.epoch, offset: last.offset } };
}

/** About what a publication costs on the wire: its data's JSON plus the envelope. */
function publicationBytes(p: Publication): number {
  let data = 16;
  try {
    data = Buffer.byteLength(JSON.stringify(p.data) ?? 'null');
  } catch {
    // Not JSON: counted small; `encodable` decides whether it can be sent.
  }
  return data + 200;
}

/** The default `encodable`: the publication's data serializes as JSON. */
export function jsonEncodable(p: Publication): boolean {
  try {
    JSON.stringify(p.data);
    return true;
  } catch {
    return false;
  }
}

export interface ChannelOperationsDeps {
  broker: Broker;
  presence: PresenceStore;
  metrics: Metrics;
  /** How long a publish id is remembered for de-duplication. */
  idempotencyWindowMs: number;
  /** Called with every publish's result, once stored (Yjs compaction counts document updates here). */
  onPublished?: (ch: ResolvedChannel, result: PublishResult) => void;
}

/** The default number of publications a history read returns. */
const DEFAULT_HISTORY_LIMIT = 100;

export class ChannelOperations {
  constructor(private readonly deps: ChannelOperationsDeps) {}

  /** Publishes one message to one channel; resolves once it has its offset (and is in history). */
  async publish(ch: ResolvedChannel, msg: PublishMessage, origin: PublishOrigin): Promise<PublishResult> {
    const [r] = await this.publishTo([ch], msg, origin);
    return r!;
  }

  /**
   * Publishes one message to several channels with one id (generated when the caller gave none and
   * there is more than one channel), so a retry of the whole request is de-duplicated everywhere.
   */
  async publishTo(channels: ResolvedChannel[], msg: PublishMessage, origin: PublishOrigin): Promise<PublishResult[]> {
    const { broker, metrics, idempotencyWindowMs } = this.deps;
    if (msg.appendTo !== undefined) {
      // Appends are a namespace option: the others skip their bookkeeping on every publication.
      const off = channels.find((ch) => ch.namespace.appends !== true);
      if (off) throw appendsDisabled(off.name, msg.appendTo, off.namespace.name);
      // A subscriber that is behind on a latest-wins channel skips publications: it would skip appends and fold wrong.
      const latest = channels.find((ch) => ch.namespace.delivery === 'latest');
      if (latest) {
        throw new GatewayError(ErrorCode.PERMISSION_DENIED, `Appends are not available on namespace '${latest.namespace.name}': its delivery is latest-wins`, {
          channel: latest.name, appendTo: msg.appendTo,
        });
      }
    }
    for (const ch of channels) checkDocumentPublication(ch, msg.type, msg.data, origin);
    const id = msg.id ?? (channels.length > 1 ? generatePublicationId() : undefined);
    const publisher = origin;
    const source = origin.via === 'ws' ? 'client' : origin.via === 'http' ? 'api' : 'gateway';
    const idempotencyKey = id === undefined || origin.via === 'gateway' ? undefined : scopedIdempotencyKey(origin, id);
    const started = performance.now();
    let results: PublishResult[];
    try {
      results = await Promise.all(channels.map((ch) => broker.publish({
        channel: ch.name, type: msg.type, data: msg.data, id, idempotencyKey, publisher, size: msg.size,
        ...(msg.appendTo !== undefined ? { appendTo: msg.appendTo } : {}),
        appends: ch.namespace.appends === true,
        history: { size: ch.namespace.historySize, ttlMs: ch.namespace.historyTtlMs }, idempotencyWindowMs,
      })));
    } catch (err) {
      throw toGatewayError(err);
    }
    // The gateway's own publications (one per node per second) are not the traffic the metrics describe.
    if (this.deps.onPublished) results.forEach((r, i) => this.deps.onPublished!(channels[i]!, r));
    if (source === 'gateway') return results;
    metrics.publishDuration.observe(source, (performance.now() - started) / 1000);
    results.forEach((r, i) => { if (!r.duplicate) metrics.publications.inc(1, channels[i]!.namespace.name, source); });
    return results;
  }

  /**
   * Reads a channel's history: the last `limit` messages, compacted (each with its appends folded
   * in and `through`), or the first `limit` raw publications after `since` (appends included).
   * A `since` the stream cannot serve exactly (epoch changed, ahead of the stream, or older than
   * what is retained) is refused with `UNRECOVERABLE_POSITION` and the reason, never answered
   * with a silent gap.
   */
  async history(ch: ResolvedChannel, req: HistoryRequest): Promise<HistoryPage> {
    let hist: HistoryResult;
    // The namespace's size counts messages; after a position, appends count too (raw), so only the default bounds a page.
    const limit = req.limit ?? (req.since ? DEFAULT_HISTORY_LIMIT : Math.min(DEFAULT_HISTORY_LIMIT, ch.namespace.historySize));
    try {
      hist = await this.deps.broker.history(ch.name, req.since ? { since: req.since, limit } : { limit, compact: ch.namespace.appends === true });
    } catch (err) {
      throw toGatewayError(err);
    }
    const served = req.since ? classifyRecovery(ch.namespace, hist, req.since, limit) : null;
    const reason: UnrecoverableReason | null = served && !served.recovered ? served.reason : null;
    if (reason) {
      throw new GatewayError(ErrorCode.UNRECOVERABLE_POSITION, `Cannot read history after this position: ${reason}`, {
        reason, position: hist.position, earliestOffset: hist.earliestOffset,
      });
    }
    return page(hist, req.maxBytes ?? Number.POSITIVE_INFINITY, req.encodable ?? jsonEncodable);
  }

  /** Drops a channel's retained publications (admin); its position stays. */
  async clearHistory(ch: ResolvedChannel): Promise<void> {
    try {
      await this.deps.broker.clearHistory(ch.name);
    } catch (err) {
      throw toGatewayError(err);
    }
  }

  /** The members present on a channel (every node's). Refused where the namespace tracks no presence. */
  async presence(ch: ResolvedChannel): Promise<PresenceMember[]> {
    if (!ch.namespace.presence) {
      throw new GatewayError(ErrorCode.PERMISSION_DENIED, `Presence is not enabled on namespace '${ch.namespace.name}'`);
    }
    try {
      return await this.deps.presence.list(ch.name);
    } catch (err) {
      throw toGatewayError(err);
    }
  }

  /**
   * Records a member joining (or refreshes it) or removes one leaving, then announces it on the
   * channel's own stream as `presence.joined` / `presence.left`, so the change is ordered with the
   * channel's publications and recoverable like them.
   */
  async announce(ch: ResolvedChannel, change: 'joined' | 'left', member: PresenceMember, ttlMs: number): Promise<void> {
    const { broker, presence } = this.deps;
    try {
      if (change === 'joined') await presence.add(ch.name, member, ttlMs);
      else await presence.remove(ch.name, member.clientId);
      const ns = ch.namespace;
      await broker.publish({
        channel: ch.name, type: `presence.${change}`, data: { member }, publisher: PRESENCE_PUBLISHER, appends: ns.appends === true,
        history: { size: ns.historySize, ttlMs: ns.historyTtlMs }, idempotencyWindowMs: 0,
      });
    } catch (err) {
      throw toGatewayError(err);
    }
  }

  /** Keeps a present member alive (heartbeat); failures are left to the TTL. */
  refreshPresence(ch: ResolvedChannel, member: PresenceMember, ttlMs: number): void {
    this.deps.presence.add(ch.name, member, ttlMs).catch(() => {});
  }
}

/**
 * An idempotency key is only ever compared within one publisher's scope: two clients may use the
 * same id. The scope's kind comes first and is never taken from a token, so no claim (a `sub` of
 * `api`, say) can reach the HTTP API's key space or another kind's.
 */
export function scopedIdempotencyKey(origin: Exclude<PublishOrigin, { via: 'gateway' }>, id: string): string {
  // Every API key shares one scope (they are the backend's); a client's is its token subject's, not its connection's, so a retry after a reconnect is still de-duplicated.
  return origin.via === 'http' ? `api|${id}` : `client|${origin.sub.length}:${origin.sub}:${id}`;
}
