/**
 * Local registry of channel streams and their subscribers on this node, and the fan-out.
 *
 * Per channel the hub keeps the stream's epoch and the last offset it passed on, so it sees every
 * gap (an offset jump, a lost pub/sub connection) and repairs it from history before delivering
 * anything newer. A subscriber that asks to recover is "catching up": it is sent the missed
 * publications, then whatever arrived live meanwhile (buffered), with no gap and no duplicate at
 * the seam, and only then joins the live set.
 */
import type { NamespaceConfig } from './config.js';
import type { Broker, BrokerHandler, HistoryResult } from './broker/types.js';
import type { Publication, StreamPosition, SubscribeOutcome, UnrecoverableReason } from '@signalbox/protocol';
import { publicationFrame, releaseFrames, type EncIndex } from './frames.js';
import type { Metrics } from './metrics.js';
import type { Logger } from './logger.js';

/** What the hub needs from a connection. */
export interface Subscriber {
  readonly encIdx: EncIndex;
  /**
   * Sends a complete pre-built publication frame (shared by every subscriber of the same encoding).
   * `catchUp` marks the burst of a recovery: bounded by the namespace's history, it is not held
   * against the outbound buffer limit (the live stream after it is).
   */
  deliver(frame: Buffer, catchUp?: boolean): void;
  /** The hub can no longer guarantee this subscriber's stream on `channel`: the connection must reconnect and recover. */
  lose(channel: string, why: 'resync' | 'overflow'): void;
}

interface LiveEntry {
  sub: Subscriber;
  /** Publications at or below this offset were already sent to the subscriber (at activation). */
  watermark: number;
}

class ChannelStream {
  readonly live = new Map<Subscriber, LiveEntry>();
  readonly catching = new Map<Subscriber, Publication[]>();
  epoch: string | null = null;
  lastOffset = 0;
  /**
   * Publications that arrived while the stream was being re-read after a gap, or (a new stream)
   * before its first position read: with no known offset yet, a gap could not be seen.
   */
  resyncQueue: Publication[] | null = [];
  /** A re-read is waiting for a slot or running. */
  resyncScheduled = false;
  /** Consecutive failed re-reads (broker unavailable), for the retry backoff. */
  resyncAttempts = 0;
  /** The broker reported a possible loss while a re-read was under way. */
  resyncAgain = false;
  ready: Promise<void>;

  constructor(readonly name: string, readonly ns: NamespaceConfig, ready: Promise<void>) {
    this.ready = ready;
  }

  get size(): number {
    return this.live.size + this.catching.size;
  }
}

/** The result of the asynchronous half of a subscribe; {@link Hub.activate} completes it synchronously. */
export interface PreparedSubscription {
  stream: ChannelStream;
  outcome: SubscribeOutcome;
  missed: Publication[];
}

/** Stream re-reads in flight at once (each is one history read). */
const MAX_CONCURRENT_RESYNCS = 64;

export interface HubOptions {
  /** Most publications buffered for one catching-up subscriber before it is treated as a slow consumer. */
  maxCatchUpBuffer: number;
}

export class Hub implements BrokerHandler {
  private readonly streams = new Map<string, ChannelStream>();
  private readonly resyncWaiting: ChannelStream[] = [];
  private resyncHead = 0;
  private resyncRunning = 0;
  /** Broker unsubscribes still in flight, so a re-subscribe to the channel is sent after them. */
  private readonly unsubscribing = new Map<string, Promise<void>>();

  constructor(
    private readonly broker: Broker,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly opts: HubOptions,
  ) {}

  get channelCount(): number {
    return this.streams.size;
  }

  subscriberCount(channel: string): number {
    return this.streams.get(channel)?.size ?? 0;
  }

  /** Channels with local subscribers, and how many (for the admin API / console). */
  channelStats(): { channel: string; subscribers: number; epoch: string | null; offset: number }[] {
    return [...this.streams.values()].map((s) => ({ channel: s.name, subscribers: s.size, epoch: s.epoch, offset: s.lastOffset }));
  }

  /** Current position of a channel this node carries, if known. */
  position(channel: string): StreamPosition | null {
    const s = this.streams.get(channel);
    return s && s.epoch !== null ? { epoch: s.epoch, offset: s.lastOffset } : null;
  }

  /**
   * Asynchronous half of a subscribe: join the stream as catching-up, read the position (and the
   * missed publications when `since` is given). Throws if the broker fails; the caller then
   * calls {@link abandon}.
   */
  async prepare(sub: Subscriber, channel: string, ns: NamespaceConfig, since?: StreamPosition): Promise<PreparedSubscription> {
    let stream = this.streams.get(channel);
    if (!stream) {
      const prior = this.unsubscribing.get(channel);
      stream = new ChannelStream(channel, ns, prior ? prior.then(() => this.broker.subscribe(channel)) : this.broker.subscribe(channel));
      this.streams.set(channel, stream);
      this.metrics.channels.set(this.streams.size);
    }
    stream.catching.set(sub, []);
    try {
      await stream.ready;
      const wantMissed = since !== undefined && ns.historySize > 0;
      const hist = await this.broker.history(channel, wantMissed ? { since, limit: ns.historySize } : { limit: 0 });
      if (stream.epoch === null) {
        stream.epoch = hist.position.epoch;
        stream.lastOffset = hist.position.offset;
        // What arrived before this first position read is checked against it now (gaps included).
        const queued = stream.resyncQueue ?? [];
        stream.resyncQueue = null;
        for (const p of queued) {
          const pending = stream.resyncQueue as Publication[] | null;
          if (pending !== null) pending.push(p);
          else this.accept(stream, p);
        }
      }
      const { outcome, missed } = recoveryOutcome(channel, ns, hist, since);
      if (since) this.metrics.recoveries.labels(ns.name, outcome.recovered ? 'recovered' : outcome.reason ?? 'unrecovered').inc();
      return { stream, outcome, missed };
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
    for (const pub of p.missed) sub.deliver(publicationFrame(pub, sub.encIdx), true);
    const epoch = p.outcome.position.epoch;
    let last = p.outcome.position.offset;
    for (const pub of buffered) {
      if (pub.epoch !== epoch) {
        // The stream lost its past while this subscriber was catching up.
        sub.lose(stream.name, 'resync');
        return;
      }
      if (pub.offset <= last) continue;
      sub.deliver(publicationFrame(pub, sub.encIdx), true);
      last = pub.offset;
    }
    // A delivery can close the connection (slow consumer), which abandons this subscription.
    if (stream.catching.get(sub) !== buffered) return;
    stream.catching.delete(sub);
    if (stream.epoch !== epoch) {
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

  // ---- BrokerHandler ----

  onPublication(pub: Publication): void {
    const stream = this.streams.get(pub.channel);
    if (stream === undefined) return;
    if (stream.resyncQueue !== null) {
      stream.resyncQueue.push(pub);
      return;
    }
    this.accept(stream, pub);
  }

  onResync(channels: string[] | null): void {
    const targets = channels === null ? [...this.streams.values()] : channels.map((c) => this.streams.get(c)).filter((s) => s !== undefined);
    for (const stream of targets) {
      if (stream.epoch === null) continue;
      // A re-read already under way may have started before the loss: read again after it.
      if (stream.resyncScheduled) stream.resyncAgain = true;
      else this.resync(stream);
    }
  }

  /** Passes a publication on if it is the next in the stream; detects duplicates, gaps and epoch changes. */
  private accept(stream: ChannelStream, pub: Publication): void {
    if (stream.epoch === null) {
      stream.epoch = pub.epoch;
    } else if (pub.epoch === stream.epoch) {
      if (pub.offset <= stream.lastOffset) return; // already passed on (e.g. also read from history)
      if (pub.offset !== stream.lastOffset + 1) {
        stream.resyncQueue = [pub];
        this.resync(stream);
        return;
      }
    } else {
      this.lost(stream, `epoch changed from ${stream.epoch} to ${pub.epoch}`);
      stream.epoch = pub.epoch;
    }
    stream.lastOffset = pub.offset;
    this.fanout(stream, pub);
  }

  private fanout(stream: ChannelStream, pub: Publication): void {
    let sent = 0;
    if (stream.live.size > 0) {
      const offset = pub.offset;
      // The frame of each encoding, looked up once per publication rather than once per subscriber.
      const frames: (Buffer | undefined)[] = [undefined, undefined, undefined, undefined];
      for (const entry of stream.live.values()) {
        if (offset <= entry.watermark) continue;
        const sub = entry.sub;
        const idx = sub.encIdx;
        sub.deliver(frames[idx] ?? (frames[idx] = publicationFrame(pub, idx)));
        sent++;
      }
      this.metrics.deliveries.inc(sent, stream.ns.name);
    }
    if (stream.catching.size > 0) {
      for (const [sub, buffer] of stream.catching) {
        if (buffer.length >= this.opts.maxCatchUpBuffer) {
          stream.catching.delete(sub);
          sub.lose(stream.name, 'overflow');
        } else buffer.push(pub);
      }
    } else releaseFrames(pub);
  }

  /**
   * Re-reads the stream from the last offset passed on and delivers what was missed, in order.
   * Publications arriving meanwhile wait in `resyncQueue`. Re-reads run at most
   * MAX_CONCURRENT_RESYNCS at a time (a broker reconnect asks for every channel at once), and one
   * that fails because the broker is unavailable is retried with backoff rather than giving up
   * on the subscribers: only a gap that history can no longer fill ends their streams.
   */
  private resync(stream: ChannelStream): void {
    if (stream.resyncQueue === null) stream.resyncQueue = [];
    if (stream.resyncScheduled) return;
    stream.resyncScheduled = true;
    this.resyncWaiting.push(stream);
    this.pumpResyncs();
  }

  private pumpResyncs(): void {
    while (this.resyncRunning < MAX_CONCURRENT_RESYNCS && this.resyncHead < this.resyncWaiting.length) {
      const stream = this.resyncWaiting[this.resyncHead++]!;
      if (this.streams.get(stream.name) !== stream) {
        stream.resyncScheduled = false;
        continue;
      }
      this.resyncRunning++;
      void this.readGap(stream).finally(() => {
        this.resyncRunning--;
        this.pumpResyncs();
      });
    }
    if (this.resyncHead === this.resyncWaiting.length) {
      this.resyncWaiting.length = 0;
      this.resyncHead = 0;
    } else if (this.resyncHead > 1024 && this.resyncHead * 2 > this.resyncWaiting.length) {
      this.resyncWaiting.splice(0, this.resyncHead);
      this.resyncHead = 0;
    }
  }

  private async readGap(stream: ChannelStream): Promise<void> {
    const from: StreamPosition = { epoch: stream.epoch!, offset: stream.lastOffset };
    const limit = stream.ns.historySize > 0 ? stream.ns.historySize : 0;
    let hist: HistoryResult;
    try {
      hist = await this.broker.history(stream.name, { since: from, limit });
    } catch (err) {
      stream.resyncScheduled = false;
      this.metrics.resyncs.labels('failed').inc();
      if (this.streams.get(stream.name) !== stream) return;
      const queued = stream.resyncQueue ?? [];
      if (queued.length >= this.opts.maxCatchUpBuffer) {
        // Too much arrived meanwhile to hold on to: the subscribers recover from history instead.
        stream.resyncQueue = null;
        this.lost(stream, 'history unavailable during resync, and too much arrived meanwhile');
        const last = queued[queued.length - 1]!;
        stream.epoch = last.epoch;
        stream.lastOffset = last.offset;
        return;
      }
      const attempt = ++stream.resyncAttempts;
      const delay = Math.round(Math.min(5000, 100 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random() / 2));
      if (attempt === 1) this.log.warn({ err, channel: stream.name }, 'stream resync failed; retrying');
      setTimeout(() => {
        if (this.streams.get(stream.name) === stream && stream.resyncQueue !== null) this.resync(stream);
      }, delay).unref();
      return;
    }
    stream.resyncScheduled = false;
    stream.resyncAttempts = 0;
    const queue = stream.resyncQueue ?? [];
    stream.resyncQueue = null;
    if (this.streams.get(stream.name) !== stream) return;
    const missing = hist.publications.filter((p) => p.offset > from.offset);
    const complete = hist.position.epoch === from.epoch && (hist.position.offset === from.offset || missing[0]?.offset === from.offset + 1);
    if (!complete) {
      this.metrics.resyncs.labels('lost').inc();
      this.lost(stream, `cannot re-read ${stream.name} from offset ${from.offset}`);
      stream.epoch = hist.position.epoch;
      stream.lastOffset = hist.position.offset;
    } else {
      this.metrics.resyncs.labels('repaired').inc();
      for (const p of missing) this.accept(stream, p);
    }
    // accept() may start another resync, which queues the rest.
    for (const p of queue) {
      const pending = stream.resyncQueue as Publication[] | null;
      if (pending !== null) pending.push(p);
      else this.accept(stream, p);
    }
    if (stream.resyncAgain) {
      stream.resyncAgain = false;
      this.resync(stream);
    }
  }

  /** Every subscriber of the stream must reconnect and recover: this node lost track of it. */
  private lost(stream: ChannelStream, why: string): void {
    this.log.warn({ channel: stream.name, subscribers: stream.size, why }, 'channel stream lost; subscribers told to reconnect and recover');
    const subs = [...stream.live.keys(), ...stream.catching.keys()];
    for (const sub of subs) sub.lose(stream.name, 'resync');
  }
}

/**
 * Why a history read forward from `since` cannot be served exactly, or null when it can (the
 * publication right after `since` is still retained, or there is none yet).
 */
export function historyGap(ns: NamespaceConfig, hist: HistoryResult, since: StreamPosition): UnrecoverableReason | null {
  if (since.epoch !== hist.position.epoch) return 'epoch_changed';
  if (since.offset > hist.position.offset) return 'position_ahead';
  if (since.offset < hist.position.offset && hist.earliestOffset > since.offset + 1) {
    return ns.historySize === 0 ? 'no_history' : hist.earliestOffset > hist.position.offset ? 'history_expired' : 'too_far_behind';
  }
  return null;
}

/** Decides what a subscribe with `since` can be given: exactly the missed publications, or an explicit reason why not. */
export function recoveryOutcome(
  channel: string,
  ns: NamespaceConfig,
  hist: HistoryResult,
  since: StreamPosition | undefined,
): { outcome: SubscribeOutcome; missed: Publication[] } {
  const position = hist.position;
  if (!since) return { outcome: { channel, position }, missed: [] };
  const fail = (reason: UnrecoverableReason) => ({ outcome: { channel, position, recovered: false, reason }, missed: [] });
  if (since.epoch !== position.epoch) return fail('epoch_changed');
  if (since.offset > position.offset) return fail('position_ahead');
  if (since.offset === position.offset) return { outcome: { channel, position, recovered: true, missed: 0 }, missed: [] };
  if (ns.historySize === 0) return fail('no_history');
  if (hist.earliestOffset > position.offset) return fail('history_expired');
  if (hist.earliestOffset > since.offset + 1) return fail('too_far_behind');
  const missed = hist.publications.filter((p) => p.offset > since.offset && p.offset <= position.offset);
  // Exact and contiguous, or nothing: never a silent partial recovery.
  for (let i = 0; i < missed.length; i++) if (missed[i]!.offset !== since.offset + 1 + i) return fail('too_far_behind');
  if (missed.length !== position.offset - since.offset) return fail('too_far_behind');
  return { outcome: { channel, position, recovered: true, missed: missed.length }, missed };
}
