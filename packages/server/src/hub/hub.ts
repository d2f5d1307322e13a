/**
 * Local registry of channel streams and their subscribers on this node, and the fan-out.
 *
 * Per channel the hub keeps the stream's phase (channel-stream.ts): the epoch and last offset it
 * passed on, so it sees every gap (an offset jump, a lost pub/sub connection) and repairs it from
 * history before delivering anything newer. A subscriber that asks to recover is "catching up":
 * it is sent the missed publications, then whatever arrived live meanwhile (buffered), with no gap
 * and no duplicate at the seam, and only then joins the live set.
 *
 * A publication the gateway cannot encode for some subscriber (its data cannot be serialized in
 * that encoding) never stalls the stream and never leaves a silent gap: the stream moves past it,
 * and each subscriber that could not be sent it is told to reconnect and recover (`lose`, close
 * 4011). Its recovery then answers `recovered: false, reason: "unencodable"` instead of delivering
 * the stream with a hole.
 */
import type { Publication, StreamPosition, SubscribeOutcome } from '@signalbox/protocol';
import type { Broker, BrokerHandler, HistoryResult } from '../broker/types.js';
import type { NamespaceConfig } from '../channels/namespaces.js';
import { publicationFrame, type EncIndex } from '../frames.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { ChannelStream, phasePosition, type StreamEffects } from './channel-stream.js';
import { recoveryOutcome } from './recovery.js';
import { ResyncScheduler } from './resync-scheduler.js';

/** What the hub needs from a connection. */
export interface Subscriber {
  readonly encIdx: EncIndex;
  /**
   * Sends a complete pre-built publication frame (shared by every subscriber of the same encoding).
   * `catchUp` marks the burst of a recovery: bounded by the namespace's history, it is not held
   * against the outbound buffer limit (the live stream after it is).
   */
  deliver(frame: Buffer, catchUp?: boolean): void;
  /**
   * Sends a publication of a latest-wins channel (`delivery: latest`): while the subscriber is
   * behind, only the newest frame per `key` is kept for it, and sent once it has drained.
   */
  deliverLatest(channel: string, key: string, frame: Buffer): void;
  /** The hub can no longer guarantee this subscriber's stream on `channel`: the connection must reconnect and recover. */
  lose(channel: string, why: 'resync' | 'overflow'): void;
}

/** The result of the asynchronous half of a subscribe; {@link Hub.activate} completes it synchronously. */
export interface PreparedSubscription {
  stream: ChannelStream;
  outcome: SubscribeOutcome;
  /** The missed publications' frames for this subscriber, in order: built before the confirmation says `recovered`. */
  frames: Buffer[];
}

/** A repair's history read: the stream, and the position it reads forward from. */
interface GapRead {
  stream: ChannelStream;
  from: StreamPosition;
}

export interface HubOptions {
  /** Most publications buffered for one catching-up subscriber before it is treated as a slow consumer. */
  maxCatchUpBuffer: number;
  /** Stream re-reads in flight at once (default 64). */
  maxConcurrentResyncs?: number;
}

export class Hub implements BrokerHandler {
  private readonly streams = new Map<string, ChannelStream>();
  /** Broker unsubscribes still in flight, so a re-subscribe to the channel is sent after them. */
  private readonly unsubscribing = new Map<string, Promise<void>>();
  private readonly resyncs: ResyncScheduler<GapRead>;
  /** Publications already logged as unencodable (the memory broker hands out the same object to every reader). */
  private readonly reported = new WeakSet<Publication>();

  constructor(
    private readonly broker: Broker,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly opts: HubOptions,
  ) {
    this.resyncs = new ResyncScheduler({
      run: (read) => this.readGap(read).catch((err: unknown) => this.log.error({ err, channel: read.stream.name }, 'stream resync failed unexpectedly')),
      wanted: (read) => this.carries(read.stream),
      maxConcurrent: opts.maxConcurrentResyncs,
    });
  }

  get channelCount(): number {
    return this.streams.size;
  }

  subscriberCount(channel: string): number {
    return this.streams.get(channel)?.size ?? 0;
  }

  /** Channels with local subscribers, and how many (for the admin API / console). */
  channelStats(): { channel: string; subscribers: number; epoch: string | null; offset: number }[] {
    return [...this.streams.values()].map((s) => {
      const pos = phasePosition(s.phase);
      return { channel: s.name, subscribers: s.size, epoch: pos?.epoch ?? null, offset: pos?.offset ?? 0 };
    });
  }

  /** Current position of a channel this node carries, if known. */
  position(channel: string): StreamPosition | null {
    const s = this.streams.get(channel);
    return s ? phasePosition(s.phase) : null;
  }

  /**
   * Asynchronous half of a subscribe: join the stream as catching-up, read the position (and the
   * missed publications when `since` is given, framed for this subscriber). Throws if the broker
   * fails; the caller then calls {@link abandon}.
   */
  async prepare(sub: Subscriber, channel: string, ns: NamespaceConfig, since?: StreamPosition): Promise<PreparedSubscription> {
    let stream = this.streams.get(channel);
    if (!stream) {
      const prior = this.unsubscribing.get(channel);
      const ready = prior ? prior.then(() => this.broker.subscribe(channel)) : this.broker.subscribe(channel);
      stream = new ChannelStream(channel, ns, ready, (s) => this.effects(s), this.opts.maxCatchUpBuffer);
      this.streams.set(channel, stream);
      this.metrics.channels.set(this.streams.size);
    }
    stream.catching.set(sub, []);
    try {
      await stream.ready;
      const wantMissed = since !== undefined && ns.historySize > 0;
      // Everything retained after `since`: `historySize` counts messages, and their appends follow them.
      const hist = await this.broker.history(channel, wantMissed ? { since } : { limit: 0 });
      stream.handle({ type: 'positioned', position: hist.position });
      const r = recoveryOutcome(channel, ns, hist, since);
      let outcome: SubscribeOutcome = ns.delivery === 'latest' ? { ...r.outcome, delivery: 'latest' } : r.outcome;
      // Framed now, before the confirmation: a missed publication this subscriber cannot be sent
      // makes the recovery inexact, and the confirmation must say so.
      let frames: Buffer[] = [];
      for (const pub of r.missed) {
        const f = this.frameOf(stream, pub, sub.encIdx);
        if (f === null) {
          outcome = { channel, position: hist.position, recovered: false, reason: 'unencodable', ...(ns.delivery === 'latest' ? { delivery: 'latest' as const } : {}) };
          frames = [];
          break;
        }
        frames.push(f);
      }
      if (since) this.metrics.recoveries.labels(ns.name, outcome.recovered ? 'recovered' : outcome.reason ?? 'unrecovered').inc();
      return { stream, outcome, frames };
    } catch (err) {
      this.abandon(sub, channel);
      throw err;
    }
  }

  /**
   * Synchronous half: send the missed publications, then the ones buffered during catch-up
   * (skipping any already sent), then go live. Call right after the confirmation was sent.
   */
  activate(sub: Subscriber, p: PreparedSubscription): void {
    const stream = p.stream;
    const buffered = stream.catching.get(sub);
    if (buffered === undefined) return; // unsubscribed meanwhile
    for (const f of p.frames) sub.deliver(f, true);
    const epoch = p.outcome.position.epoch;
    let last = p.outcome.position.offset;
    for (const pub of buffered) {
      if (pub.epoch !== epoch) {
        // The stream lost its past while this subscriber was catching up.
        sub.lose(stream.name, 'resync');
        return;
      }
      if (pub.offset <= last) continue;
      const f = this.frameOf(stream, pub, sub.encIdx);
      if (f === null) {
        sub.lose(stream.name, 'resync');
        return;
      }
      sub.deliver(f, true);
      last = pub.offset;
    }
    // A delivery can close the connection (slow consumer), which abandons this subscription.
    if (stream.catching.get(sub) !== buffered) return;
    stream.catching.delete(sub);
    if (phasePosition(stream.phase)?.epoch !== epoch) {
      sub.lose(stream.name, 'resync');
      return;
    }
    stream.live.set(sub, { sub, watermark: last });
    this.metrics.subscriptions.labels(stream.ns.name).inc();
  }

  /** Removes a subscriber from a channel (catching-up or live). */
  abandon(sub: Subscriber, channel: string): void {
    const stream = this.streams.get(channel);
    if (!stream) return;
    if (stream.live.delete(sub)) this.metrics.subscriptions.labels(stream.ns.name).dec();
    stream.catching.delete(sub);
    if (stream.size === 0) this.drop(stream);
  }

  private drop(stream: ChannelStream): void {
    this.streams.delete(stream.name);
    this.metrics.channels.set(this.streams.size);
    // Wait for the subscribe to settle so the broker sees subscribe/unsubscribe in order.
    const name = stream.name;
    const done: Promise<void> = stream.ready
      .then(() => this.broker.unsubscribe(name))
      .catch((err: unknown) => this.log.warn({ err, channel: name }, 'broker unsubscribe failed'))
      .finally(() => {
        if (this.unsubscribing.get(name) === done) this.unsubscribing.delete(name);
      });
    this.unsubscribing.set(name, done);
  }

  /** Is this the stream the hub carries for its channel (not one dropped meanwhile)? */
  private carries(stream: ChannelStream): boolean {
    return this.streams.get(stream.name) === stream;
  }

  // ---- BrokerHandler ----

  onPublication(pub: Publication): void {
    this.streams.get(pub.channel)?.handle({ type: 'publication', pub });
  }

  onResync(channels: string[] | null): void {
    const targets = channels === null ? [...this.streams.values()] : channels.map((c) => this.streams.get(c)).filter((s) => s !== undefined);
    for (const stream of targets) stream.handle({ type: 'maybe_lost' });
  }

  // ---- the stream's effects ----

  private effects(stream: ChannelStream): StreamEffects {
    return {
      deliver: (pub) => this.fanout(stream, pub),
      lost: (why) => this.lost(stream, why),
      readGap: (from) => this.resyncs.schedule({ stream, from }),
      retryLater: (attempt) => this.resyncs.retryLater(attempt, () => {
        if (this.carries(stream)) stream.handle({ type: 'retry_due' });
      }),
      repairOutcome: (outcome) => this.metrics.resyncs.labels(outcome).inc(),
    };
  }

  /**
   * Passes the next publication of the stream on. Exception-safe per publication: a frame that
   * cannot be built, or a subscriber whose delivery throws, costs that subscriber its stream (told
   * to recover), never the other subscribers theirs, and never the stream its progress.
   */
  private fanout(stream: ChannelStream, pub: Publication): void {
    if (stream.live.size > 0) {
      let sent = 0;
      let failed: Subscriber[] | undefined;
      const offset = pub.offset;
      // The frame of each encoding, looked up once per publication rather than once per subscriber
      // (null: it cannot be built).
      const frames: (Buffer | null | undefined)[] = [undefined, undefined, undefined, undefined];
      const key = stream.ns.delivery === 'latest' ? latestKey(pub, stream.ns.latestBy ?? 'key') : null;
      for (const entry of stream.live.values()) {
        if (offset <= entry.watermark) continue;
        const sub = entry.sub;
        const idx = sub.encIdx;
        let f = frames[idx];
        if (f === undefined) f = frames[idx] = this.frameOf(stream, pub, idx);
        if (f === null) {
          (failed ??= []).push(sub);
          continue;
        }
        try {
          if (key === null) sub.deliver(f);
          else sub.deliverLatest(stream.name, key, f);
          sent++;
        } catch (err) {
          this.log.error({ err, channel: stream.name, offset }, 'delivery failed; subscriber told to recover');
          (failed ??= []).push(sub);
        }
      }
      this.metrics.deliveries.inc(sent, stream.ns.name);
      if (sent > 0) this.metrics.writeLatency.published(pub.time);
      if (failed) for (const sub of failed) sub.lose(stream.name, 'resync');
    }
    if (stream.catching.size > 0) {
      for (const [sub, buffer] of stream.catching) {
        if (buffer.length >= this.opts.maxCatchUpBuffer) {
          stream.catching.delete(sub);
          sub.lose(stream.name, 'overflow');
        } else buffer.push(pub);
      }
    }
  }

  /** The frame of `pub` in encoding `idx`, or null (logged once per publication) when it cannot be built. */
  private frameOf(stream: ChannelStream, pub: Publication, idx: EncIndex): Buffer | null {
    try {
      return publicationFrame(pub, idx);
    } catch (err) {
      if (!this.reported.has(pub)) {
        this.reported.add(pub);
        this.log.error(
          { err, channel: stream.name, epoch: pub.epoch, offset: pub.offset, encoding: idx },
          'publication cannot be encoded; its subscribers are told to reconnect and recover',
        );
      }
      return null;
    }
  }

  /**
   * Re-reads the stream from the last offset passed on; the stream's phase decides what follows
   * (deliver what was missed, tell the subscribers it is lost, or retry after a backoff). Run by
   * the scheduler, at most a few at a time.
   */
  private async readGap({ stream, from }: GapRead): Promise<void> {
    const limit = stream.ns.historySize > 0 ? stream.ns.historySize : 0;
    let hist: HistoryResult;
    try {
      hist = await this.broker.history(stream.name, { since: from, limit });
    } catch (err) {
      if (!this.carries(stream)) {
        this.metrics.resyncs.labels('failed').inc();
        return;
      }
      stream.handle({ type: 'repair_failed' });
      const now = stream.phase;
      if (now.kind === 'repairing' && now.attempts === 1) this.log.warn({ err, channel: stream.name }, 'stream resync failed; retrying');
      return;
    }
    if (this.carries(stream)) stream.handle({ type: 'repair_read', hist });
  }

  /** Every subscriber of the stream must reconnect and recover: this node lost track of it. */
  private lost(stream: ChannelStream, why: string): void {
    this.log.warn({ channel: stream.name, subscribers: stream.size, why }, 'channel stream lost; subscribers told to reconnect and recover');
    const subs = [...stream.live.keys(), ...stream.catching.keys()];
    for (const sub of subs) sub.lose(stream.name, 'resync');
  }
}

/** The latest-wins key of a publication: its event type and the value of `data[field]`, if any. */
export function latestKey(pub: Publication, field: string): string {
  const d = pub.data;
  const v = typeof d === 'object' && d !== null && !Array.isArray(d) ? (d as Record<string, unknown>)[field] : undefined;
  return typeof v === 'string' || typeof v === 'number' ? `${pub.type}\u0000${v}` : pub.type;
}
