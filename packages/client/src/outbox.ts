/**
 * The outbox: every request waiting for the gateway's answer, whatever its kind, in call order,
 * each with its timeout and its resend policy.
 *
 * - `resend: 'always'` (publish, history, presence): the request outlives its transport and is
 *   written again after a reconnect. Publishes carry their id, the gateway's idempotency key, so a
 *   resent one is stored once; reads are idempotent.
 * - `resend: 'transport'` (subscribe, refresh): the request belongs to the transport that carried
 *   it and is dropped with it; the client re-derives it (resubscribe, refresh) on the next one.
 *
 * A timeout counts from each write (`from: 'send'`: a publish waiting offline has no deadline, one
 * written has `publishTimeout` to be acked) or from the call (`from: 'call'`: a read's deadline
 * holds across reconnects). Settling an entry clears its timer.
 *
 * Publishes are written in order per channel (a *lane*): at most `window` of one channel are on
 * the wire at once (default 1, so a refused publish can never be overtaken by a later one of its
 * channel: the gateway only sees the next after this one's ack). A publish refused with a
 * retryable code (`RATE_LIMITED`, `UNAVAILABLE`) stays at the head of its lane and is written
 * again after a full-jitter backoff (at least the error's `retryAfterMs`); meanwhile every write
 * of a publish, on any channel, is paced (the gateway's publish bucket is per connection): the
 * pace halves its rate on each refusal and speeds up by 1% on each ack, until it is off again.
 * A publish that cannot be delivered in the end (attempts or deadline exhausted, a non-retryable
 * error, a timeout, the client stopping) rejects its promise and is reported to `onUndelivered`.
 */
import type { ClientRequest } from './dialect.js';
import { ClientErrorCode, SignalboxError, type SignalboxErrorDetails } from './errors.js';
import type { AckData } from './events.js';
import type { HistoryResult, PresenceResult } from './options.js';

/** The request kinds that wait for an answer. */
export type OutboxKind = 'publish' | 'history' | 'presence' | 'subscribe' | 'refresh';
/** The request of one kind. */
export type OutboxRequest<K extends OutboxKind = OutboxKind> = Extract<ClientRequest, { kind: K }>;

/** What each kind's promise resolves with. Subscribe and refresh answers are handled by their owner, not awaited. */
export interface OutboxReplies {
  publish: AckData;
  history: HistoryResult;
  presence: PresenceResult;
  subscribe: undefined;
  refresh: undefined;
}

/** How long an entry may wait, and from when. */
export interface OutboxTimeout {
  ms: number;
  from: 'call' | 'send';
}

export interface TrackOptions {
  resend: 'always' | 'transport';
  timeout?: OutboxTimeout;
}

/** One pending request, as the owner sees it. */
export interface OutboxEntry<K extends OutboxKind = OutboxKind> {
  readonly request: OutboxRequest<K>;
  readonly promise: Promise<OutboxReplies[K]>;
}

/** How refused publishes are retried, and how many of one channel may be on the wire at once. Read live. */
export interface PublishRetryPolicy {
  /** Writes of one refused publish, the first included, before it is given up. */
  maxAttempts: number;
  /** How long after its first refusal a publish may still be retried, ms. */
  deadline: number;
  /** Backoff base, ms: attempt n waits uniformly in [0, min(maxDelay, base * 2^n)] (full jitter). */
  baseDelay: number;
  maxDelay: number;
  /** Publishes of one channel on the wire at once. 1 (the default) keeps order even under refusals. */
  window: number;
}

/** Error codes after which a publish is retried rather than rejected. */
export const RETRYABLE_PUBLISH_ERRORS: ReadonlySet<string> = new Set(['RATE_LIMITED', 'UNAVAILABLE']);

export const DEFAULT_PUBLISH_POLICY: Readonly<PublishRetryPolicy> = Object.freeze({
  maxAttempts: 12, deadline: 30_000, baseDelay: 50, maxDelay: 2_000, window: 1,
});

/** Where a publish is: waiting its turn, on the wire, or waiting to be retried. */
type PublishPhase = 'queued' | 'paced' | 'inflight' | 'backoff';

interface Entry {
  request: OutboxRequest;
  options: TrackOptions;
  promise: Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: SignalboxError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Publishes only. */
  phase: PublishPhase;
  attempts: number;
  firstRefusal: number | undefined;
  retryTimer: ReturnType<typeof setTimeout> | undefined;
}

/** The hooks of an {@link Outbox} besides writing. */
export interface OutboxHooks {
  /** A publish was given up (its promise rejects with `error`). */
  onUndelivered?: (request: OutboxRequest<'publish'>, error: SignalboxError) => void;
  /** The retry policy, read at each decision. */
  publishPolicy?: () => PublishRetryPolicy;
  random?: () => number;
}

/** Paces publish writes after a refusal: one write per `interval` ms, adapted to the gateway's answers. */
class Pacer {
  interval = 0;
  #next = 0;
  readonly #waiting: Entry[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #write: (entry: Entry) => void;

  constructor(write: (entry: Entry) => void) {
    this.#write = write;
  }

  /** Writes `entry` now if the pace allows, else when its turn comes. */
  submit(entry: Entry): void {
    if (this.interval === 0 && this.#waiting.length === 0) {
      this.#write(entry);
      return;
    }
    entry.phase = 'paced';
    this.#waiting.push(entry);
    this.#drain();
  }

  refused(retryAfterMs: number | undefined): void {
    this.interval = Math.min(1000, Math.max(this.interval * 2, retryAfterMs ?? 0, 5));
    this.#next = Math.max(this.#next, Date.now() + (retryAfterMs ?? 0));
  }

  accepted(): void {
    if (this.interval === 0) return;
    this.interval *= 0.99;
    if (this.interval < 0.5) this.interval = 0;
  }

  /** Forgets `entry` if it waits for its turn. */
  withdraw(entry: Entry): void {
    const i = this.#waiting.indexOf(entry);
    if (i >= 0) this.#waiting.splice(i, 1);
  }

  /** Every waiting write is dropped (the transport is gone; lanes write them again). */
  reset(): void {
    for (const e of this.#waiting) if (e.phase === 'paced') e.phase = 'queued';
    this.#waiting.length = 0;
    this.#timer = clear(this.#timer);
  }

  #drain(): void {
    if (this.#timer !== undefined) return;
    while (this.#waiting.length > 0) {
      const now = Date.now();
      if (now < this.#next) {
        this.#timer = setTimeout(() => { this.#timer = undefined; this.#drain(); }, this.#next - now);
        return;
      }
      const entry = this.#waiting.shift()!;
      this.#next = now + this.interval;
      this.#write(entry);
    }
  }
}

export class Outbox {
  readonly #entries = new Map<string, Entry>();
  readonly #counts: Record<OutboxKind, number> = { publish: 0, history: 0, presence: 0, subscribe: 0, refresh: 0 };
  readonly #send: (req: ClientRequest) => boolean;
  readonly #hooks: OutboxHooks;
  /** Unsettled publishes per channel, in call order. */
  readonly #lanes = new Map<string, Entry[]>();
  readonly #pacer = new Pacer((entry) => this.#writePublish(entry));
  /** False once the transport is gone, until {@link resendAll}: lanes hold their writes meanwhile. */
  #online = true;

  /** `send` writes a request on the current transport and says whether it could. */
  constructor(send: (req: ClientRequest) => boolean, hooks: OutboxHooks = {}) {
    this.#send = send;
    this.#hooks = hooks;
  }

  /** The current pace of publish writes, ms between two (0: not paced). */
  get publishPace(): number {
    return this.#pacer.interval;
  }

  /**
   * Tracks `request` under its id and, when `write` is true, writes it now. The promise settles
   * with {@link settle}, {@link reject}, the timeout or {@link failAll}; an entry dropped with its
   * transport never settles (nobody awaits those).
   */
  track<K extends OutboxKind>(request: OutboxRequest<K>, options: TrackOptions, write: boolean): Promise<OutboxReplies[K]> {
    let resolve!: (value: unknown) => void;
    let reject!: (err: SignalboxError) => void;
    const promise = new Promise<unknown>((res, rej) => { resolve = res; reject = rej; });
    // The generic K only types the promise; the entry holds the request as the union.
    const req: OutboxRequest = request as OutboxRequest;
    const entry: Entry = { request: req, options, promise, resolve, reject, timer: undefined, phase: 'queued', attempts: 0, firstRefusal: undefined, retryTimer: undefined };
    this.#entries.set(req.id, entry);
    this.#counts[req.kind]++;
    // Nobody awaits a transport-scoped request; a rejection must not surface as an unhandled one.
    if (options.resend === 'transport') promise.catch(noop);
    if (options.timeout?.from === 'call') this.#arm(entry, options.timeout);
    if (req.kind === 'publish') {
      let lane = this.#lanes.get(req.channel);
      if (!lane) this.#lanes.set(req.channel, (lane = []));
      lane.push(entry);
      if (write) {
        this.#online = true;
        this.#pump(req.channel);
      }
    } else if (write) {
      this.#write(entry);
    }
    return promise as Promise<OutboxReplies[K]>;
  }

  /**
   * A publish was refused with `err`: retried after a backoff when the code is retryable and its
   * attempts and deadline allow, else rejected (and reported undelivered). False when there is no
   * such publish.
   */
  refused(id: string, err: SignalboxError): 'retrying' | 'rejected' | false {
    const entry = this.#entries.get(id);
    if (!entry || entry.request.kind !== 'publish') return this.reject(id, err) ? 'rejected' : false;
    const policy = this.#policy();
    const now = Date.now();
    entry.firstRefusal ??= now;
    const retryAfter = retryAfterOf(err);
    const retryable = RETRYABLE_PUBLISH_ERRORS.has(err.code)
      && entry.attempts < policy.maxAttempts
      && now - entry.firstRefusal + (retryAfter ?? 0) <= policy.deadline;
    if (!retryable) {
      const why = RETRYABLE_PUBLISH_ERRORS.has(err.code)
        ? new SignalboxError(err.code, `${err.message} (given up after ${entry.attempts} attempt${entry.attempts === 1 ? '' : 's'} in ${now - entry.firstRefusal} ms)`, { ...err.details, attempts: entry.attempts }, err.replyTo, err)
        : err;
      return this.reject(id, why) ? 'rejected' : false;
    }
    if (err.code === 'RATE_LIMITED') this.#pacer.refused(retryAfter);
    entry.timer = clear(entry.timer);
    entry.phase = 'backoff';
    const cap = Math.min(policy.maxDelay, policy.baseDelay * 2 ** Math.min(entry.attempts - 1, 30));
    const delay = Math.max(retryAfter ?? 0, Math.round((this.#hooks.random ?? Math.random)() * cap));
    const channel = entry.request.channel;
    entry.retryTimer = setTimeout(() => {
      entry.retryTimer = undefined;
      if (this.#entries.get(id) !== entry) return;
      entry.phase = 'queued';
      this.#pump(channel);
    }, delay);
    return 'retrying';
  }

  /** The pending request of `kind` with this id. */
  get<K extends OutboxKind>(id: string, kind: K): OutboxEntry<K> | undefined {
    const entry = this.#entries.get(id);
    return entry?.request.kind === kind ? (entry as unknown as OutboxEntry<K>) : undefined;
  }

  /** The pending request with this id, whatever its kind. */
  request(id: string): OutboxRequest | undefined {
    return this.#entries.get(id)?.request;
  }

  /** Pending requests of `kind`, in call order. */
  *requests<K extends OutboxKind>(kind: K): IterableIterator<OutboxRequest<K>> {
    for (const entry of this.#entries.values()) if (entry.request.kind === kind) yield entry.request as OutboxRequest<K>;
  }

  /** How many requests of `kind` are pending. */
  count(kind: OutboxKind): number {
    return this.#counts[kind];
  }

  /** Resolves the request of `kind` with this id; false when there is none (late, duplicate or foreign answer). */
  settle<K extends OutboxKind>(id: string, kind: K, value: OutboxReplies[K]): boolean {
    const entry = this.#entries.get(id);
    if (!entry || entry.request.kind !== kind) return false;
    this.#remove(id, entry);
    if (entry.request.kind === 'publish') this.#pacer.accepted();
    entry.resolve(value);
    if (entry.request.kind === 'publish') this.#pump(entry.request.channel);
    return true;
  }

  /** Rejects the request with this id, whatever its kind (a publish: reported undelivered); false when there is none. */
  reject(id: string, err: SignalboxError): boolean {
    const entry = this.#entries.get(id);
    if (!entry) return false;
    this.#remove(id, entry);
    this.#fail(entry, err);
    if (entry.request.kind === 'publish') this.#pump(entry.request.channel);
    return true;
  }

  /** Forgets the request with this id without settling it (a subscribe or refresh answered). */
  remove(id: string): void {
    const entry = this.#entries.get(id);
    if (entry) this.#remove(id, entry);
  }

  /**
   * After a reconnect: writes every `resend: 'always'` request again: first the head of every
   * channel's publish lane (the rest of a lane follows as acks come back, in order), then reads.
   * So a read sent offline sees the first pending publish of each channel, not necessarily the later ones.
   */
  resendAll(): void {
    this.#online = true;
    for (const channel of [...this.#lanes.keys()]) this.#pump(channel);
    const always = [...this.#entries.values()].filter((e) => e.options.resend === 'always');
    for (const entry of always) if (entry.request.kind !== 'publish') this.#write(entry);
  }

  /**
   * The transport is gone: drops the transport-scoped requests and stops the per-write timers (a
   * publish waits without a deadline until it is written again). Deadlines from the call go on.
   */
  dropTransportScoped(): void {
    this.#online = false;
    this.#pacer.reset();
    for (const [id, entry] of [...this.#entries]) {
      if (entry.options.resend === 'transport') this.#remove(id, entry);
      else if (entry.options.timeout?.from === 'send') entry.timer = clear(entry.timer);
      if (entry.phase === 'inflight') entry.phase = 'queued';
    }
  }

  /** The client stops: rejects everything pending with `code`, publishes first. Leaves no timer. */
  failAll(code: ClientErrorCode, message: string): void {
    const all = [...this.#entries];
    this.#online = false;
    this.#pacer.reset();
    const fail = ([id, entry]: [string, Entry]): void => {
      if (this.#entries.get(id) !== entry) return;
      this.#remove(id, entry);
      this.#fail(entry, new SignalboxError(code, message, details(entry.request, false)));
    };
    for (const pair of all) if (pair[1].request.kind === 'publish') fail(pair);
    for (const pair of all) if (pair[1].request.kind !== 'publish') fail(pair);
  }

  #policy(): PublishRetryPolicy {
    return this.#hooks.publishPolicy?.() ?? DEFAULT_PUBLISH_POLICY;
  }

  #fail(entry: Entry, err: SignalboxError): void {
    entry.reject(err);
    if (entry.request.kind === 'publish') this.#hooks.onUndelivered?.(entry.request, err);
  }

  /** Writes the next publishes of `channel`'s lane, as many as its window allows. */
  #pump(channel: string): void {
    if (!this.#online) return;
    const lane = this.#lanes.get(channel);
    if (!lane) return;
    const window = Math.max(1, this.#policy().window);
    let busy = 0;
    for (const entry of lane) {
      if (busy >= window) return;
      // A publish waiting for its retry blocks its lane: nothing of this channel overtakes it.
      if (entry.phase === 'backoff') return;
      if (entry.phase === 'queued') this.#pacer.submit(entry);
      if (!this.#online) return;
      busy++;
    }
  }

  #writePublish(entry: Entry): void {
    if (this.#entries.get(entry.request.id) !== entry) return;
    if (!this.#send(entry.request)) {
      entry.phase = 'queued';
      return;
    }
    entry.phase = 'inflight';
    entry.attempts++;
    const timeout = entry.options.timeout;
    if (timeout?.from === 'send') this.#arm(entry, timeout);
  }

  #write(entry: Entry): void {
    if (!this.#send(entry.request)) return;
    const timeout = entry.options.timeout;
    if (timeout?.from === 'send') this.#arm(entry, timeout);
  }

  #arm(entry: Entry, timeout: OutboxTimeout): void {
    entry.timer = clear(entry.timer);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      const id = entry.request.id;
      if (this.#entries.get(id) !== entry) return;
      const what = entry.request.kind === 'publish' ? 'ack' : 'answer';
      this.#remove(id, entry);
      this.#fail(entry, new SignalboxError(ClientErrorCode.TIMEOUT, `No ${what} within ${timeout.ms} ms`, details(entry.request, true)));
      if (entry.request.kind === 'publish') this.#pump(entry.request.channel);
    }, timeout.ms);
  }

  #remove(id: string, entry: Entry): void {
    this.#entries.delete(id);
    this.#counts[entry.request.kind]--;
    entry.timer = clear(entry.timer);
    entry.retryTimer = clear(entry.retryTimer);
    if (entry.request.kind === 'publish') {
      this.#pacer.withdraw(entry);
      const channel = entry.request.channel;
      const lane = this.#lanes.get(channel);
      const i = lane ? lane.indexOf(entry) : -1;
      if (lane && i >= 0) lane.splice(i, 1);
      if (lane && lane.length === 0) this.#lanes.delete(channel);
    }
  }
}

/** Error details: the channel and, except for a publish that fails with the client, the request id. */
function details(request: OutboxRequest, timedOut: boolean): SignalboxErrorDetails {
  const channel = 'channel' in request ? { channel: request.channel } : {};
  return timedOut || request.kind !== 'publish' ? { ...channel, requestId: request.id } : channel;
}

/** The wait an error asks for before a retry, ms: `details.retryAfterMs`, or `details.retryAfter` in seconds. */
function retryAfterOf(err: SignalboxError): number | undefined {
  const ms = err.details.retryAfterMs;
  if (typeof ms === 'number' && Number.isFinite(ms) && ms >= 0) return Math.min(ms, 60_000);
  const s = err.details.retryAfter;
  if (typeof s === 'number' && Number.isFinite(s) && s >= 0) return Math.min(s * 1000, 60_000);
  return undefined;
}

function clear(timer: ReturnType<typeof setTimeout> | undefined): undefined {
  if (timer !== undefined) clearTimeout(timer);
  return undefined;
}

function noop(): void {}
