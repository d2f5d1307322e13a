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

interface Entry {
  request: OutboxRequest;
  options: TrackOptions;
  promise: Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: SignalboxError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

export class Outbox {
  readonly #entries = new Map<string, Entry>();
  readonly #counts: Record<OutboxKind, number> = { publish: 0, history: 0, presence: 0, subscribe: 0, refresh: 0 };
  readonly #send: (req: ClientRequest) => boolean;

  /** `send` writes a request on the current transport and says whether it could. */
  constructor(send: (req: ClientRequest) => boolean) {
    this.#send = send;
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
    const entry: Entry = { request: req, options, promise, resolve, reject, timer: undefined };
    this.#entries.set(req.id, entry);
    this.#counts[req.kind]++;
    // Nobody awaits a transport-scoped request; a rejection must not surface as an unhandled one.
    if (options.resend === 'transport') promise.catch(noop);
    if (options.timeout?.from === 'call') this.#arm(entry, options.timeout);
    if (write) this.#write(entry);
    return promise as Promise<OutboxReplies[K]>;
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
    entry.resolve(value);
    return true;
  }

  /** Rejects the request with this id, whatever its kind; false when there is none. */
  reject(id: string, err: SignalboxError): boolean {
    const entry = this.#entries.get(id);
    if (!entry) return false;
    this.#remove(id, entry);
    entry.reject(err);
    return true;
  }

  /** Forgets the request with this id without settling it (a subscribe or refresh answered). */
  remove(id: string): void {
    const entry = this.#entries.get(id);
    if (entry) this.#remove(id, entry);
  }

  /**
   * After a reconnect: writes every `resend: 'always'` request again, publishes first (in call
   * order), then reads, so a read sent offline after a publish sees it, as before this class.
   */
  resendAll(): void {
    const always = [...this.#entries.values()].filter((e) => e.options.resend === 'always');
    for (const entry of always) if (entry.request.kind === 'publish') this.#write(entry);
    for (const entry of always) if (entry.request.kind !== 'publish') this.#write(entry);
  }

  /**
   * The transport is gone: drops the transport-scoped requests and stops the per-write timers (a
   * publish waits without a deadline until it is written again). Deadlines from the call go on.
   */
  dropTransportScoped(): void {
    for (const [id, entry] of [...this.#entries]) {
      if (entry.options.resend === 'transport') this.#remove(id, entry);
      else if (entry.options.timeout?.from === 'send') entry.timer = clear(entry.timer);
    }
  }

  /** The client stops: rejects everything pending with `code`, publishes first. Leaves no timer. */
  failAll(code: ClientErrorCode, message: string): void {
    const all = [...this.#entries];
    const fail = ([id, entry]: [string, Entry]): void => {
      if (this.#entries.get(id) !== entry) return;
      this.#remove(id, entry);
      entry.reject(new SignalboxError(code, message, details(entry.request, false)));
    };
    for (const pair of all) if (pair[1].request.kind === 'publish') fail(pair);
    for (const pair of all) if (pair[1].request.kind !== 'publish') fail(pair);
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
      entry.reject(new SignalboxError(ClientErrorCode.TIMEOUT, `No ${what} within ${timeout.ms} ms`, details(entry.request, true)));
    }, timeout.ms);
  }

  #remove(id: string, entry: Entry): void {
    this.#entries.delete(id);
    this.#counts[entry.request.kind]--;
    entry.timer = clear(entry.timer);
  }
}

/** Error details: the channel and, except for a publish that fails with the client, the request id. */
function details(request: OutboxRequest, timedOut: boolean): SignalboxErrorDetails {
  const channel = 'channel' in request ? { channel: request.channel } : {};
  return timedOut || request.kind !== 'publish' ? { ...channel, requestId: request.id } : channel;
}

function clear(timer: ReturnType<typeof setTimeout> | undefined): undefined {
  if (timer !== undefined) clearTimeout(timer);
  return undefined;
}

function noop(): void {}
