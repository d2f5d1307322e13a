/**
 * One channel stream as this node carries it: its phase (where it stands in the channel's
 * offsets, and whether it is repairing a gap), its subscribers, and the one transition function
 * that moves the phase on.
 *
 *   positioning --positioned--> live --gap / maybe_lost--> repairing --repair_read--> live
 *                                                            |  ^
 *                                          repair_failed     v  |  retry_due / maybe_lost
 *                                                          (backoff)
 *
 * A repair read that shows the gap can no longer be filled, an epoch change, and a failing repair
 * with too much queued all end in `live` at the broker's position, with every subscriber told to
 * reconnect and recover (the `lost` effect).
 *
 * Only `live` passes publications on. In the other two phases they wait in the phase's queue:
 * before the first position read no offset is known, so a gap could not be seen; during a repair
 * anything newer than the gap must wait until the gap is filled.
 */
import type { Publication, StreamPosition } from '@signalbox/protocol';
import type { HistoryResult } from '../broker/types.js';
import type { NamespaceConfig } from '../channels/namespaces.js';
import type { Subscriber } from './hub.js';
import { classifyRecovery } from './recovery.js';

export type StreamPhase =
  /** Subscribed at the broker, first position read not back yet. */
  | { readonly kind: 'positioning'; readonly queue: Publication[] }
  /** Passing publications on; `lastOffset` is the last one passed on in `epoch`. */
  | { readonly kind: 'live'; readonly epoch: string; readonly lastOffset: number }
  /**
   * Re-reading history from `lastOffset` (`read: 'pending'`: waiting for a slot or in flight), or
   * waiting to retry after `attempts` failed reads (`read: 'backoff'`). `again`: the broker
   * reported a possible loss after the pending read may have started, so read once more after it.
   */
  | {
    readonly kind: 'repairing'; readonly epoch: string; readonly lastOffset: number; readonly queue: Publication[];
    readonly attempts: number; readonly again: boolean; readonly read: 'pending' | 'backoff';
  };

export type StreamEvent =
  /** A publication from the broker (or from history, during a repair). */
  | { readonly type: 'publication'; readonly pub: Publication }
  /** A subscribe's position read came back. */
  | { readonly type: 'positioned'; readonly position: StreamPosition }
  /** The broker may have missed publications (its pub/sub connection dropped). */
  | { readonly type: 'maybe_lost' }
  /** The repair's history read (from the phase's position) came back. */
  | { readonly type: 'repair_read'; readonly hist: HistoryResult }
  /** The repair's history read failed (broker unavailable). */
  | { readonly type: 'repair_failed' }
  /** The backoff after a failed repair read is over. */
  | { readonly type: 'retry_due' };

/** What a transition asks the hub to do, in the order it must happen. */
export interface StreamEffects {
  /** Pass the publication on to the subscribers (it is the next in the stream). */
  deliver(pub: Publication): void;
  /** The stream's past cannot be served: every subscriber must reconnect and recover. */
  lost(why: string): void;
  /** Start a history read forward from `from` (then report `repair_read` or `repair_failed`). */
  readGap(from: StreamPosition): void;
  /** Report `retry_due` after the backoff for retry number `attempt`. */
  retryLater(attempt: number): void;
  /** A repair ended one way or the other (for the metrics). */
  repairOutcome(outcome: 'repaired' | 'lost' | 'failed'): void;
}

export interface StreamLimits {
  /** The namespace's history size: how far a repair read looks ahead. */
  historySize: number;
  /** Most publications held during a failing repair before the subscribers are told to recover instead. */
  maxQueue: number;
}

/** A new stream's first phase (each stream its own queue). */
export function positioning(): StreamPhase {
  return { kind: 'positioning', queue: [] };
}

/**
 * The one transition function: the phase after `ev`, with the effects it requires emitted on `fx`
 * in order. The only state it mutates is the phase's own queue (appending to it), so a stream in
 * positioning or repairing does not copy its queue per publication.
 */
export function transition(ph: StreamPhase, ev: StreamEvent, limits: StreamLimits, fx: StreamEffects): StreamPhase {
  switch (ev.type) {
    case 'publication': {
      const pub = ev.pub;
      if (ph.kind !== 'live') {
        ph.queue.push(pub);
        return ph;
      }
      if (pub.epoch !== ph.epoch) {
        fx.lost(`epoch changed from ${ph.epoch} to ${pub.epoch}`);
        fx.deliver(pub);
        return { kind: 'live', epoch: pub.epoch, lastOffset: pub.offset };
      }
      if (pub.offset <= ph.lastOffset) return ph; // already passed on (e.g. also read from history)
      if (pub.offset !== ph.lastOffset + 1) {
        fx.readGap({ epoch: ph.epoch, offset: ph.lastOffset });
        return { kind: 'repairing', epoch: ph.epoch, lastOffset: ph.lastOffset, queue: [pub], attempts: 0, again: false, read: 'pending' };
      }
      fx.deliver(pub);
      return { kind: 'live', epoch: ph.epoch, lastOffset: pub.offset };
    }

    case 'positioned': {
      if (ph.kind !== 'positioning') return ph;
      // What arrived before this first position read is checked against it now (gaps included).
      return replay({ kind: 'live', epoch: ev.position.epoch, lastOffset: ev.position.offset }, ph.queue, limits, fx);
    }

    case 'maybe_lost': {
      // Before the first position read there is nothing to repair: that read is after the loss.
      if (ph.kind === 'positioning') return ph;
      if (ph.kind === 'live') {
        fx.readGap({ epoch: ph.epoch, offset: ph.lastOffset });
        return { kind: 'repairing', epoch: ph.epoch, lastOffset: ph.lastOffset, queue: [], attempts: 0, again: false, read: 'pending' };
      }
      // A read already under way may have started before the loss: read again after it.
      if (ph.read === 'pending') return ph.again ? ph : { ...ph, again: true };
      fx.readGap({ epoch: ph.epoch, offset: ph.lastOffset });
      return { ...ph, read: 'pending' };
    }

    case 'repair_read': {
      if (ph.kind !== 'repairing' || ph.read !== 'pending') return ph;
      const from = { epoch: ph.epoch, offset: ph.lastOffset };
      const c = classifyRecovery(limits, ev.hist, from, limits.historySize);
      let next: StreamPhase;
      if (c.recovered) {
        fx.repairOutcome('repaired');
        next = replay({ kind: 'live', epoch: ph.epoch, lastOffset: ph.lastOffset }, c.missed, limits, fx);
      } else {
        fx.repairOutcome('lost');
        fx.lost(`cannot re-read from offset ${from.offset}: ${c.reason}`);
        next = { kind: 'live', epoch: ev.hist.position.epoch, lastOffset: ev.hist.position.offset };
      }
      // The queue may open another gap (a repair read that stopped at the history size): it queues the rest.
      next = replay(next, ph.queue, limits, fx);
      // A repair started by the replay begins after the loss report and covers it.
      if (ph.again && next.kind === 'live') next = transition(next, { type: 'maybe_lost' }, limits, fx);
      return next;
    }

    case 'repair_failed': {
      if (ph.kind !== 'repairing' || ph.read !== 'pending') return ph;
      fx.repairOutcome('failed');
      const last = ph.queue[ph.queue.length - 1];
      if (last !== undefined && ph.queue.length >= limits.maxQueue) {
        // Too much arrived meanwhile to hold on to: the subscribers recover from history instead.
        fx.lost('history unavailable during resync, and too much arrived meanwhile');
        return { kind: 'live', epoch: last.epoch, lastOffset: last.offset };
      }
      fx.retryLater(ph.attempts + 1);
      return { ...ph, attempts: ph.attempts + 1, read: 'backoff' };
    }

    case 'retry_due': {
      if (ph.kind !== 'repairing' || ph.read !== 'backoff') return ph;
      fx.readGap({ epoch: ph.epoch, offset: ph.lastOffset });
      return { ...ph, read: 'pending' };
    }
  }
}

/** Feeds `pubs` in order through the transition, starting from `ph`. */
function replay(ph: StreamPhase, pubs: readonly Publication[], limits: StreamLimits, fx: StreamEffects): StreamPhase {
  for (const pub of pubs) ph = transition(ph, { type: 'publication', pub }, limits, fx);
  return ph;
}

/** The position a phase stands at, or null before the first position read. */
export function phasePosition(ph: StreamPhase): StreamPosition | null {
  return ph.kind === 'positioning' ? null : { epoch: ph.epoch, offset: ph.lastOffset };
}

export interface LiveEntry {
  sub: Subscriber;
  /** Publications at or below this offset were already sent to the subscriber (at activation). */
  watermark: number;
}

/** A channel this node carries: its phase and its subscribers (live, and catching up with their buffers). */
export class ChannelStream {
  phase: StreamPhase = positioning();
  readonly live = new Map<Subscriber, LiveEntry>();
  readonly catching = new Map<Subscriber, Publication[]>();
  private readonly fx: StreamEffects;
  private readonly limits: StreamLimits;

  /**
   * @param ready the broker subscribe for this channel (after any unsubscribe still in flight).
   * @param effects carries out what the stream's transitions ask for (the hub's fan-out, repair reads, …).
   * @param maxQueue see {@link StreamLimits.maxQueue}.
   */
  constructor(readonly name: string, readonly ns: NamespaceConfig, readonly ready: Promise<void>, effects: (s: ChannelStream) => StreamEffects, maxQueue: number) {
    this.fx = effects(this);
    this.limits = { historySize: ns.historySize, maxQueue };
  }

  get size(): number {
    return this.live.size + this.catching.size;
  }

  /**
   * Moves the phase on by one event, carrying out its effects in order. The effects run during the
   * transition, before the new phase is stored: an effect is handed what it needs (`readGap` its
   * position) and must not read `phase`.
   */
  handle(ev: StreamEvent): void {
    this.phase = transition(this.phase, ev, this.limits, this.fx);
  }
}
