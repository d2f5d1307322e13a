/**
 * One channel subscription: its state, its last stream position, and its events.
 *
 * The position is what makes "never loses a message" work: it advances with the confirmation and
 * every publication, is sent as `since` on every resubscribe, and drops anything at or before it
 * (a publication replayed by recovery that the client had already seen).
 */
import type { StreamPosition, UnrecoverableReason } from '@signalbox/protocol';
import { Emitter, type Handler } from './emitter.js';
import type { PublicationMessage, SubscriptionEvents } from './events.js';
import type { SignalboxError } from './errors.js';

/** `subscribing`: wanted, not (yet, or any more) confirmed; `subscribed`: live; `unsubscribed`: over. */
export type SubscriptionState = 'subscribing' | 'subscribed' | 'unsubscribed';

/** What to do with a publication. */
export type Admission = 'deliver' | 'duplicate' | 'gap';

/** What the subscription needs from its client. */
export interface SubscriptionHost {
  unsubscribe(channel: string): void;
  reportHandlerError(err: unknown, where: string): void;
}

/**
 * A subscription to one channel, as returned by `client.subscribe(channel)`. Lives until
 * `unsubscribe()`: across reconnects it resubscribes by itself and recovers what it missed.
 */
export class Subscription<T = unknown> {
  /** The channel name. */
  readonly channel: string;
  #state: SubscriptionState = 'subscribing';
  #position: StreamPosition | undefined;
  /** A latest-wins channel: a skipped offset is a superseded value, not a hole. */
  #latest = false;
  /** Id of the subscribe request in flight for this subscription, if any. */
  #requestId: string | undefined;
  #everSubscribed = false;
  readonly #events: Emitter;
  readonly #host: SubscriptionHost;

  /** @internal Created by `SignalboxClient.subscribe()`. */
  constructor(host: SubscriptionHost, channel: string, since?: StreamPosition) {
    this.#host = host;
    this.channel = channel;
    this.#position = since ? { epoch: since.epoch, offset: since.offset } : undefined;
    this.#events = new Emitter((err, type) => host.reportHandlerError(err, `subscription ${channel} '${type}' handler`));
  }

  get state(): SubscriptionState {
    return this.#state;
  }

  /**
   * The last position seen on this channel: where a resubscribe resumes. Persist it to resume
   * after a page reload with `client.subscribe(channel, { since })`.
   */
  get position(): StreamPosition | undefined {
    return this.#position ? { ...this.#position } : undefined;
  }

  /** Listens to `publication`, `subscribed`, `recovery_failed`, `unsubscribed` or `error`. */
  on<K extends keyof SubscriptionEvents<T>>(type: K, handler: Handler<SubscriptionEvents<T>[K]>): this {
    this.#events.add(type, handler);
    return this;
  }

  off<K extends keyof SubscriptionEvents<T>>(type: K, handler: Handler<SubscriptionEvents<T>[K]>): this {
    this.#events.remove(type, handler);
    return this;
  }

  /** Same as `client.unsubscribe(this.channel)`. */
  unsubscribe(): void {
    this.#host.unsubscribe(this.channel);
  }

  // ---- Driven by the client (internal) ---------------------------------------------------------

  /** @internal */
  _requestId(): string | undefined {
    return this.#requestId;
  }

  /** @internal A subscribe request for this subscription was written. */
  _requested(requestId: string): void {
    this.#requestId = requestId;
  }

  /** @internal The connection was lost: wait for the resubscribe. */
  _reset(): void {
    if (this.#state === 'unsubscribed') return;
    this.#state = 'subscribing';
    this.#requestId = undefined;
  }

  /**
   * @internal The server confirmed. `position` is the stream's position when the subscription went
   * live; when recovery succeeded the missed publications up to it follow, so the last position seen
   * stays where it is until they arrive.
   */
  _confirmed(position: StreamPosition | undefined, recovered: boolean | undefined, reason: UnrecoverableReason | undefined, missed: number | undefined, latest = false): void {
    const resubscribed = this.#everSubscribed;
    this.#latest = latest;
    this.#state = 'subscribed';
    this.#requestId = undefined;
    this.#everSubscribed = true;
    if (recovered !== true && position) this.#position = { epoch: position.epoch, offset: position.offset };
    this.#events.emit('subscribed', {
      channel: this.channel, position: this.position, resubscribed,
      ...(recovered === undefined ? {} : { recovered }), ...(reason ? { reason } : {}), ...(missed === undefined ? {} : { missed }),
    });
    if (recovered === false) this._recoveryFailed(reason ?? 'unknown');
  }

  /** @internal */
  _recoveryFailed(reason: UnrecoverableReason | 'unknown'): void {
    this.#events.emit('recovery_failed', { channel: this.channel, reason, position: this.position });
  }

  /** @internal Forget the position (the server cannot recover from it): the next subscribe starts live. */
  _forgetPosition(): void {
    this.#position = undefined;
  }

  /** @internal Whether a publication is new, already seen, or leaves a hole. Advances the position when new. */
  _admit(pub: PublicationMessage): Admission {
    const pos = this.#position;
    if (pos) {
      // A new epoch mid-stream means the stream was reset under us: offsets cannot be compared, so
      // treat it as a gap. The resubscribe then reports it (recovered: false, epoch_changed).
      if (pos.epoch !== pub.epoch) return 'gap';
      if (pub.offset <= pos.offset) return 'duplicate';
      if (pub.offset > pos.offset + 1 && !this.#latest) return 'gap';
    }
    this.#position = { epoch: pub.epoch, offset: pub.offset };
    return 'deliver';
  }

  /** @internal */
  _deliver(pub: PublicationMessage): void {
    this.#events.emit('publication', pub);
  }

  /** @internal */
  _error(err: SignalboxError): void {
    this.#events.emit('error', err);
  }

  /** @internal The subscription is over; it will not come back. */
  _ended(reason: 'unsubscribe_called' | 'removed_by_server' | 'refused', code?: string, message?: string): void {
    if (this.#state === 'unsubscribed') return;
    this.#state = 'unsubscribed';
    this.#requestId = undefined;
    this.#events.emit('unsubscribed', { channel: this.channel, reason, ...(code ? { code } : {}), ...(message ? { message } : {}) });
  }
}
