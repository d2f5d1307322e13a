/**
 * `SignalboxClient`: the reconnecting client. It keeps the PRP API document's reference client's
 * shape (`connect`, `disconnect`, `subscribe`, `unsubscribe`, `on`, `off`, `config`) and fixes what
 * that client gets wrong: backoff has jitter and no attempt limit by default; publications missed
 * while away are recovered, exactly once and in order; tokens are refreshed before they expire; the
 * offline queue is bounded; a half-open connection is detected.
 *
 * This file is the state machine (changed only in `#setState`, which reports every transition with
 * its reason), the connection-lost policy and the dispatch of inbound messages. Its collaborators:
 * `options.ts` (config and defaults), `outbox.ts` (every request awaiting an answer),
 * `token-keeper.ts` (tokens and in-band refresh), `watchdog.ts` (half-open detection), `rpc.ts` (calls and handlers),
 * `transport.ts` (the socket) and `dialect.ts` (wire shapes, and the typed {@link Inbound}).
 */
import type { CloseCode, ErrorCode, UnrecoverableReason } from '@signalbox/protocol';
import { backoffDelay } from './backoff.js';
import { dialectFor, type ClientRequest, type Dialect, type Inbound } from './dialect.js';
import { Emitter, type Handler } from './emitter.js';
import { bytesPath } from './bytes.js';
import { ClientErrorCode, SignalboxError } from './errors.js';
import type { ClientEvents, ClientState, PublicationMessage, ServerMessage, StateChange, TransitionReason } from './events.js';
import {
  defaultUrl, resolveConfig, type ClientConfig, type HistoryOptions, type HistoryResult, type PresenceOptions, type PresenceResult,
  type PublishAck, type PublishOptions, type SignalboxClientOptions, type SubscribeOptions, type TokenRequestReason,
} from './options.js';
import { Outbox, type OutboxReplies, type OutboxRequest } from './outbox.js';
import { Rpc, type CallOptions, type HandleOptions, type RpcMethods, type RpcRegistration } from './rpc.js';
import { Subscription } from './subscription.js';
import { TokenKeeper, errorMessage, isPromiseLike } from './token-keeper.js';
import { openOptions, Transport, type TransportListener, type WebSocketConstructor } from './transport.js';
import { Watchdog } from './watchdog.js';

export type {
  ClientConfig, FrameFormat, HistoryOptions, HistoryResult, PresenceOptions, PresenceResult, PublishAck, PublishOptions, QueueOverflow,
  SignalboxClientOptions, SubscribeOptions, TokenRequestReason, TokenTransport, WebSocketConfig,
} from './options.js';

/** Close codes and what the client does about them: every code the gateway documents is decided here. */
type ClosePolicy = 'reconnect' | 'stop' | 'new-token';
const CLOSE_POLICY: Record<CloseCode, ClosePolicy> = {
  1000: 'stop',
  1001: 'reconnect',
  1002: 'reconnect',
  1006: 'reconnect',
  1007: 'reconnect',
  1008: 'reconnect',
  1009: 'reconnect',
  1011: 'reconnect',
  1012: 'reconnect',
  4001: 'new-token',
  4002: 'new-token',
  4003: 'stop',
  4004: 'reconnect',
  4008: 'stop',
  4010: 'reconnect',
  4011: 'reconnect',
  4029: 'reconnect',
};

/**
 * The client's decision for a close code: `reconnect` (with backoff, recovering subscriptions),
 * `stop` (state `closed`), or `new-token` (reconnect only with a token different from the refused one).
 * Codes the gateway does not document (1006 abnormal closure, proxies' codes) reconnect.
 */
export function closePolicy(code: number): ClosePolicy {
  return (CLOSE_POLICY as Record<number, ClosePolicy | undefined>)[code] ?? 'reconnect';
}

/** Close code the client uses when it abandons a socket itself (heartbeat/connect timeout, gap). 3000-3999: allowed in browsers. */
const CLIENT_ABANDON_CODE = 3000;
/** Error codes after which a refused subscription is retried rather than dropped. */
const TRANSIENT_ERRORS: ReadonlySet<string> = new Set<ErrorCode>(['UNAVAILABLE', 'INTERNAL_ERROR', 'RATE_LIMITED']);

function randomId(length: number): string {
  let s = '';
  while (s.length < length) s += Math.random().toString(36).slice(2);
  return s.slice(0, length);
}

/**
 * The Signalbox client. `E` maps publication event types to their data, for typed handlers
 * (default: none, every publication's `data` is `unknown`; the PRP API document's map is
 * `PrpEventData` from `@signalbox/client/prp`).
 *
 * @example
 * const client = new SignalboxClient<PrpEventData>({ url: 'wss://rt.example.com/v1/ws/prps', getToken: fetchToken });
 * client.on('prp.created', (message) => console.log(message.data.name));
 * await client.connect();
 * const sub = client.subscribe('project:proj_123456');
 * sub.on('recovery_failed', () => reloadProject());
 */
export class SignalboxClient<E extends object = Record<never, never>> {
  /** The resolved configuration; fields are read live (e.g. `client.config.token = next`). */
  readonly config: ClientConfig;

  #state: ClientState = 'disconnected';
  readonly #events: Emitter;
  readonly #subs = new Map<string, Subscription>();
  /** Every request awaiting an answer: publishes (the offline queue too), reads, subscribes, refreshes. */
  readonly #outbox = new Outbox((req) => this.#send(req), {
    onUndelivered: (req, error) => this.#undelivered(req, error),
    publishPolicy: () => ({
      maxAttempts: this.config.publishRetryAttempts,
      deadline: this.config.publishRetryDeadline,
      baseDelay: this.config.publishRetryInterval,
      maxDelay: this.config.publishRetryMaxInterval,
      window: this.config.publishWindow,
    }),
  });
  /** Calls awaiting their answer, and the channels this client handles. */
  readonly #rpc = new Rpc({
    send: (req) => this.#send(req),
    nextId: () => this.#nextId(),
    isConnected: () => this.#state === 'connected',
    retryDelay: (attempt) => backoffDelay(attempt, this.config.reconnectInterval, this.config.maxReconnectInterval),
  });
  readonly #tokens: TokenKeeper;
  readonly #watchdog: Watchdog;
  #connectWaiters: { resolve: () => void; reject: (err: SignalboxError) => void }[] = [];

  #transport: Transport | null = null;
  #transportSeq = 0;
  #dialect: Dialect | null = null;
  /** Bumped to invalidate an attempt still waiting for `getToken`. */
  #attemptSeq = 0;
  /** Consecutive failed attempts since the last stable connection. */
  #attempts = 0;
  #urlIndex = 0;
  /** Consecutive attempts refused at the upgrade with 403/404 (see `upgrade_refused`). */
  #hardRefusals = 0;
  /** The HTTP status the current attempt's upgrade was refused with, if any. */
  #refusedStatus: number | undefined;
  #nextTokenReason: TokenRequestReason = 'connect';
  #connectionId: string | undefined;

  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  #stableTimer: ReturnType<typeof setTimeout> | undefined;
  #subRetryTimer: ReturnType<typeof setTimeout> | undefined;
  #subRetryAttempts = 0;

  readonly #idPrefix = `c${Date.now().toString(36)}${randomId(8)}-`;
  #idSeq = 0;

  constructor(options: SignalboxClientOptions = {}) {
    this.config = resolveConfig(options);
    if (this.config.tokenTransport === 'header' && !this.config.WebSocket) {
      throw new TypeError("tokenTransport 'header' needs a WebSocket that can send headers: import from '@signalbox/client/node', or pass `WebSocket` from 'ws'");
    }
    if (!this.config.WebSocket && typeof (globalThis as { WebSocket?: unknown }).WebSocket !== 'function') {
      throw new TypeError("No WebSocket implementation here: in Node, import from '@signalbox/client/node' (which uses 'ws'), or pass `WebSocket`");
    }
    this.#events = new Emitter((err, type) => this.#reportHandlerError(err, `'${type}' handler`));
    this.#tokens = new TokenKeeper(this.config, {
      canRefresh: () => this.#state === 'connected',
      transportId: () => this.#transport?.id,
      sendRefresh: (token) => this.#sendRefresh(token),
      onError: (err) => this.#emitError(err),
    });
    this.#watchdog = new Watchdog(this.config, {
      ping: () => { this.#send({ kind: 'ping', id: this.#nextId() }); },
      onDead: (message) => this.#abandon('heartbeat_timeout', message),
    });
  }

  // ---- Public API --------------------------------------------------------------------------------

  /** The connection state. */
  get state(): ClientState {
    return this.#state;
  }

  /** True while connected (the reference client's field). */
  get isConnected(): boolean {
    return this.#state === 'connected';
  }

  /** Consecutive failed attempts since the last stable connection (the reference client's field). */
  get reconnectAttempts(): number {
    return this.#attempts;
  }

  /** The gateway's id for the current connection. */
  get connectionId(): string | undefined {
    return this.#state === 'connected' ? this.#connectionId : undefined;
  }

  /**
   * Connects; resolves once the gateway has confirmed the connection. Failed attempts are retried
   * with backoff meanwhile. Rejects if the client stops first: `disconnect()`, a refused token,
   * `maxReconnectAttempts` exhausted, or `reconnect: false` and the attempt failed.
   *
   * Called while connected it resolves at once, and if `config.token` changed since the connection
   * authenticated, sends it as an in-band refresh (so the reference example's `token_expired`
   * handler, which sets `config.token` then calls `connect()`, keeps the connection). Called while
   * `reconnecting`, it skips the rest of the backoff wait and attempts at once.
   */
  connect(): Promise<void> {
    if (this.#state === 'connected') {
      const token = this.config.token;
      if (!this.config.getToken && token && token !== this.#tokens.current && !this.#refreshPendingWith(token)) this.#sendRefresh(token);
      return Promise.resolve();
    }
    const promise = new Promise<void>((resolve, reject) => this.#connectWaiters.push({ resolve, reject }));
    // A caller that does not await connect() learns of failures through 'error' and '$state';
    // the rejection must not also crash Node as an unhandled one.
    promise.catch(noop);
    if (this.#state === 'disconnected' || this.#state === 'closed') {
      this.#attempts = 0;
      this.#tokens.clearRefused();
      this.#nextTokenReason = 'connect';
      this.#emitState(this.#setState('connecting', { reason: 'connect_called' }));
      this.#attempt();
    } else if (this.#state === 'reconnecting' && this.#reconnectTimer !== undefined) {
      // Asked explicitly (a "retry now" button, the browser's `online` event): skip the rest of the backoff wait.
      this.#reconnectTimer = clear(this.#reconnectTimer);
      this.#attempt();
    }
    return promise;
  }

  /**
   * Closes the connection and stops reconnecting (state `disconnected`). Subscriptions and their
   * positions are kept: a later `connect()` resubscribes and recovers. Pending publishes and
   * `connect()` promises are rejected with `DISCONNECTED`. Leaves no timer and no socket listener.
   */
  disconnect(): void {
    const transport = this.#transport;
    this.#teardown();
    transport?.close(1000, 'client disconnect');
    this.#outbox.failAll(ClientErrorCode.DISCONNECTED, 'disconnect() was called');
    this.#rpc.failAll(ClientErrorCode.DISCONNECTED, 'disconnect() was called');
    if (this.#state !== 'disconnected') this.#emitState(this.#setState('disconnected', { reason: 'disconnect_called', code: 1000 }));
    this.#rejectWaiters(new SignalboxError(ClientErrorCode.DISCONNECTED, 'disconnect() was called'));
  }

  /**
   * Subscribes to one channel (returns its {@link Subscription}) or several (returns them in order).
   * Subscribing to a channel already subscribed returns the existing subscription. Works in any state:
   * the subscribe is sent once connected, and again, with the last position, after every reconnect.
   */
  subscribe<T = unknown>(channel: string, options?: SubscribeOptions): Subscription<T>;
  subscribe(channels: readonly string[]): Subscription[];
  subscribe(channels: string | readonly string[], options: SubscribeOptions = {}): Subscription | Subscription[] {
    const list = typeof channels === 'string' ? [channels] : channels;
    const result: Subscription[] = [];
    const fresh: Subscription[] = [];
    for (const channel of list) {
      if (typeof channel !== 'string' || channel.length === 0) throw new TypeError('A channel name must be a non-empty string');
      let sub = this.#subs.get(channel);
      if (!sub) {
        sub = new Subscription(this.#subscriptionHost, channel, typeof channels === 'string' ? options.since : undefined);
        this.#subs.set(channel, sub);
        fresh.push(sub);
      }
      result.push(sub);
    }
    if (this.#state === 'connected' && fresh.length > 0) this.#sendSubscribe(fresh);
    return typeof channels === 'string' ? result[0]! : result;
  }

  /** Unsubscribes from one or several channels; their subscriptions emit `unsubscribed` and are forgotten. */
  unsubscribe(channels: string | readonly string[]): void {
    const list = typeof channels === 'string' ? [channels] : channels;
    const removed: string[] = [];
    for (const channel of list) {
      const sub = this.#subs.get(channel);
      if (!sub) continue;
      this.#subs.delete(channel);
      removed.push(channel);
      sub._ended('unsubscribe_called');
    }
    if (removed.length > 0 && this.#state === 'connected') {
      for (let i = 0; i < removed.length; i += 1000) {
        this.#send({ kind: 'unsubscribe', id: this.#nextId(), channels: removed.slice(i, i + 1000) });
      }
    }
  }

  /** The subscription to `channel`, if subscribed. */
  getSubscription<T = unknown>(channel: string): Subscription<T> | undefined {
    return this.#subs.get(channel) as Subscription<T> | undefined;
  }

  /** Every current subscription. */
  subscriptions(): Subscription[] {
    return [...this.#subs.values()];
  }

  /**
   * Publishes `data` on `channel`. Resolves with the gateway's ack (the publication's offset and
   * epoch); rejects with the gateway's error (e.g. `PERMISSION_DENIED`), `TIMEOUT` when the ack does
   * not come within `publishTimeout` of sending, `QUEUE_FULL`, or `DISCONNECTED`/`CLOSED`.
   *
   * While not connected, publishes wait in a queue bounded by `maxQueueSize` (see `queueOverflow`).
   * Publishes sent but not acknowledged when the connection drops are resent, with the same id, after
   * the reconnect: the id is the gateway's idempotency key, so none is stored twice.
   *
   * Publishes of one channel are written in call order, `publishWindow` at a time (default 1). One
   * refused with `RATE_LIMITED` or `UNAVAILABLE` is retried with full-jitter backoff (at least the
   * error's `retryAfterMs`), later ones of its channel waiting behind it, and publish writes are
   * paced meanwhile; see `publishRetryAttempts` and `publishRetryDeadline`. Whatever ends a publish
   * without an ack also emits `undelivered` ({channel, id, data, error}): nothing is dropped silently.
   * `appendTo` makes the publish an append to an earlier message of this publisher on the channel.
   */
  publish(channel: string, data: unknown, options: PublishOptions = {}): Promise<PublishAck> {
    const id = options.id ?? this.#nextId();
    const req: OutboxRequest<'publish'> = { kind: 'publish', id, channel, data };
    if (options.type !== undefined) req.type = options.type;
    if (options.appendTo !== undefined) req.appendTo = options.appendTo;
    if (this.#state === 'closed') {
      return this.#refuse(req, new SignalboxError(ClientErrorCode.CLOSED, 'The client is closed; call connect() first', { channel }));
    }
    const bytes = this.#bytesRefused(data, 'data', channel);
    if (bytes) return this.#refuse(req, bytes);
    const existing = this.#outbox.get(id, 'publish');
    if (existing) return existing.promise;
    const online = this.#state === 'connected';
    const queued = this.#outbox.count('publish');
    if (!online && queued >= this.config.maxQueueSize) {
      const full = (): SignalboxError => new SignalboxError(ClientErrorCode.QUEUE_FULL, `Offline queue full (${this.config.maxQueueSize} publishes)`, { channel });
      const oldest = this.#outbox.requests('publish').next();
      if (this.config.queueOverflow !== 'drop-oldest' || oldest.done) return this.#refuse(req, full());
      // As before the split, the error names the channel of the publish that pushed the oldest out.
      this.#outbox.reject(oldest.value.id, full());
    }
    return this.#outbox.track(req, { resend: 'always', timeout: { ms: options.timeout ?? this.config.publishTimeout, from: 'send' } }, online);
  }

  /** JSON frames cannot carry bytes (they would arrive as an object of indices): refused, naming where they are. */
  #bytesRefused(value: unknown, root: string, channel: string): SignalboxError | undefined {
    if (this.config.format !== 'json') return undefined;
    const at = bytesPath(value, root, 0, true);
    if (at === undefined) return undefined;
    return new SignalboxError(ClientErrorCode.BYTES_NEED_MSGPACK, `${at} holds bytes, which JSON frames cannot carry: create the client with format: msgpack (from @signalbox/client/msgpack), or encode them (e.g. as base64) yourself`, { channel, path: at });
  }

  /** A publish refused before it was queued: reported undelivered, and rejected. */
  #refuse(req: OutboxRequest<'publish'>, err: SignalboxError): Promise<never> {
    this.#undelivered(req, err);
    return Promise.reject(err);
  }

  #undelivered(req: OutboxRequest<'publish'>, error: SignalboxError): void {
    this.#events.emit('undelivered', { channel: req.channel, id: req.id, ...(req.appendTo === undefined ? {} : { appendTo: req.appendTo }), data: req.data, error });
  }

  /**
   * Reads a channel's retained publications (see {@link HistoryOptions}), whether or not this
   * client is subscribed to it. Rejects with the gateway's error (`PERMISSION_DENIED`,
   * `INVALID_CHANNEL`, `UNRECOVERABLE_POSITION` when `since` cannot be continued from…), `TIMEOUT`
   * (no answer within the timeout of the call), or `DISCONNECTED`/`CLOSED`. Called while not
   * connected, the query waits for the connection; one in flight when the connection drops is sent
   * again after the reconnect.
   */
  history(channel: string, options: HistoryOptions = {}): Promise<HistoryResult> {
    const req: OutboxRequest<'history'> = { kind: 'history', id: this.#nextId(), channel };
    if (options.since) req.since = { epoch: options.since.epoch, offset: options.since.offset };
    if (options.limit !== undefined) req.limit = options.limit;
    return this.#query(req, options.timeout);
  }

  /**
   * Lists the members of a presence channel (a namespace with presence on): one entry per
   * subscribed connection, `{clientId, userId, info?}`. Rejects like {@link history}; a namespace
   * without presence is `PERMISSION_DENIED`.
   */
  presence(channel: string, options: PresenceOptions = {}): Promise<PresenceResult> {
    return this.#query({ kind: 'presence', id: this.#nextId(), channel }, options.timeout);
  }

  #query<K extends 'history' | 'presence'>(req: OutboxRequest<K>, timeout: number | undefined): Promise<OutboxReplies[K]> {
    const refused = this.#notConnecting((req as OutboxRequest<'history' | 'presence'>).channel);
    if (refused) return Promise.reject(refused);
    // The deadline counts from the call and holds across reconnects; reads are idempotent, so resent.
    return this.#outbox.track(req, { resend: 'always', timeout: { ms: timeout ?? this.config.publishTimeout, from: 'call' } }, this.#state === 'connected');
  }

  /** Why a query cannot wait for the connection (the client is `closed` or `disconnected`), if it cannot. */
  #notConnecting(channel: string): SignalboxError | undefined {
    if (this.#state === 'closed') return new SignalboxError(ClientErrorCode.CLOSED, 'The client is closed; call connect() first', { channel });
    if (this.#state === 'disconnected') return new SignalboxError(ClientErrorCode.DISCONNECTED, 'Not connected; call connect() first', { channel });
    return undefined;
  }

  /**
   * Calls `method` of `channel`'s handler (a connection registered with {@link handle}) and resolves
   * with its result. Rejects with the gateway's outcome (`RPC_NO_HANDLER`, `RPC_TIMEOUT`,
   * `RPC_FAILED` with the handler's message and `details.handlerCode`, `RPC_HANDLER_GONE`,
   * `PERMISSION_DENIED` without a `call` grant…), `TIMEOUT` if the gateway never answers, or
   * `DISCONNECTED`/`CLOSED`. Called while connecting or reconnecting, the call waits for the
   * connection; one in flight when the connection drops is rejected `DISCONNECTED`, never resent.
   */
  call<R = unknown>(channel: string, method: string, params?: unknown, options: CallOptions = {}): Promise<R> {
    const refused = this.#notConnecting(channel) ?? this.#bytesRefused(params, 'params', channel);
    if (refused) return Promise.reject(refused);
    return this.#rpc.call(channel, method, params, options, this.#state === 'connected') as Promise<R>;
  }

  /**
   * Serves calls to `channel` (needs a `handle` grant): each method of `methods` gets the call's
   * params and a context (`callId`, `channel`, `method`, `caller`, `timeoutMs`) and returns the
   * result; what it throws answers the caller `RPC_FAILED` (the thrown `code`, else `HANDLER_ERROR`,
   * and message). Works in any state: registered once connected, and again after every reconnect.
   */
  handle(channel: string, methods: RpcMethods, options: HandleOptions = {}): RpcRegistration {
    return this.#rpc.handle(channel, methods, options);
  }

  /** Number of publishes not yet acknowledged (queued or in flight). */
  get pendingPublishes(): number {
    return this.#outbox.count('publish');
  }

  /**
   * Listens to a server message type (typed for the documented events), `'*'` for every message,
   * `'error'`, `'token_expired'`, or `'$state'` for state transitions. Handlers see each publication
   * once, after deduplication.
   */
  on<K extends keyof ClientEvents<E> & string>(type: K, handler: Handler<ClientEvents<E>[K]>): this;
  on(type: string, handler: Handler<ServerMessage>): this;
  on(type: string, handler: Handler<never>): this {
    this.#events.add(type, handler);
    return this;
  }

  /** Removes a handler added with `on`. */
  off<K extends keyof ClientEvents<E> & string>(type: K, handler: Handler<ClientEvents<E>[K]>): this;
  off(type: string, handler: Handler<ServerMessage>): this;
  off(type: string, handler: Handler<never>): this {
    this.#events.remove(type, handler);
    return this;
  }

  // ---- State machine -----------------------------------------------------------------------------

  /**
   * The only place the state changes. Returns the change for {@link #emitState}: the caller may need
   * to finish work (resubscribe, flush the queue) before handlers run and observe the new state.
   */
  #setState(to: ClientState, info: Omit<StateChange, 'from' | 'to'>): StateChange | undefined {
    const from = this.#state;
    // Staying in `reconnecting` is reported too: each one announces a new attempt and its delay.
    if (from === to && to !== 'reconnecting') return undefined;
    this.#state = to;
    return { from, to, ...info };
  }

  #emitState(change: StateChange | undefined): void {
    if (change) this.#events.emit('$state', change);
  }

  /** The transport is gone (or about to be): every timer and every transport-scoped request with it. */
  #teardown(): void {
    this.#attemptSeq++;
    this.#connectTimer = clear(this.#connectTimer);
    this.#stableTimer = clear(this.#stableTimer);
    this.#reconnectTimer = clear(this.#reconnectTimer);
    this.#subRetryTimer = clear(this.#subRetryTimer);
    this.#watchdog.stop();
    this.#tokens.stop();
    this.#transport = null;
    this.#dialect = null;
    this.#connectionId = undefined;
    this.#outbox.dropTransportScoped();
    this.#rpc.transportLost();
    for (const sub of this.#subs.values()) sub._reset();
  }

  /** Stops for good (state `closed`): a refused token, a close code that forbids reconnecting, attempts exhausted. */
  #close(reason: TransitionReason, code?: number, message?: string): void {
    const transport = this.#transport;
    this.#teardown();
    transport?.close(1000, 'client closed');
    this.#outbox.failAll(ClientErrorCode.CLOSED, `The client closed: ${reason}${message ? ` (${message})` : ''}`);
    this.#rpc.failAll(ClientErrorCode.CLOSED, `The client closed: ${reason}${message ? ` (${message})` : ''}`);
    this.#emitState(this.#setState('closed', { reason, ...(code === undefined ? {} : { code }), ...(message ? { message } : {}) }));
    this.#rejectWaiters(new SignalboxError(ClientErrorCode.CLOSED, `Could not connect: ${reason}${message ? ` (${message})` : ''}`, { reason, code }));
  }

  #rejectWaiters(err: SignalboxError): void {
    const waiters = this.#connectWaiters;
    this.#connectWaiters = [];
    for (const w of waiters) w.reject(err);
  }

  // ---- Connecting --------------------------------------------------------------------------------

  /** One connection attempt: get a token (maybe asynchronously), then open a socket. */
  #attempt(): void {
    const seq = ++this.#attemptSeq;
    const reason = this.#nextTokenReason;
    // The timeout covers getToken() too: a token endpoint that hangs must not stall the client forever.
    this.#connectTimer = clear(this.#connectTimer);
    this.#connectTimer = setTimeout(() => {
      this.#connectTimer = undefined;
      this.#abandon('connect_timeout', `Not connected within ${this.config.connectTimeout} ms`);
    }, this.config.connectTimeout);
    let source: string | Promise<string> | undefined;
    try {
      source = this.config.getToken ? this.config.getToken({ reason }) : this.config.token;
    } catch (err) {
      this.#tokenFailed(err);
      return;
    }
    if (isPromiseLike<string>(source)) {
      source.then(
        (token) => { if (seq === this.#attemptSeq) this.#open(token); },
        (err: unknown) => { if (seq === this.#attemptSeq) this.#tokenFailed(err); },
      );
    } else {
      this.#open(source);
    }
  }

  #tokenFailed(err: unknown): void {
    this.#emitError(new SignalboxError(ClientErrorCode.TOKEN_UNAVAILABLE, `getToken() failed: ${errorMessage(err)}`, {}, undefined, err));
    this.#connectionLost(undefined, errorMessage(err), 'token_unavailable', false);
  }

  #open(token: unknown): void {
    if (this.config.getToken && (typeof token !== 'string' || token.length === 0)) {
      this.#tokenFailed(new TypeError('getToken() must return a non-empty string'));
      return;
    }
    const tok = typeof token === 'string' && token.length > 0 ? token : undefined;
    const refused = this.#tokens.refused;
    if (refused && refused.token === tok) {
      this.#close(refused.reason, refused.code, 'the server refused this token and no other is available');
      return;
    }
    const urls = typeof this.config.url === 'string' ? [this.config.url] : this.config.url;
    const baseUrl = urls[this.#urlIndex % Math.max(1, urls.length)] ?? defaultUrl();
    const dialect = dialectFor(this.config.dialect, baseUrl);
    // Checked in the constructor; read here so a replaced config.WebSocket applies to the next attempt.
    const Ctor = (this.config.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket)!;
    const id = ++this.#transportSeq;
    try {
      this.#transport = new Transport(id, Ctor, openOptions(this.config, baseUrl, tok), this.#listener);
    } catch (err) {
      this.#emitError(new SignalboxError(ClientErrorCode.TRANSPORT_ERROR, `Cannot open ${baseUrl}: ${errorMessage(err)}`, {}, undefined, err));
      this.#connectionLost(1006, errorMessage(err), 'transport_closed', false);
      return;
    }
    this.#dialect = dialect;
    this.#tokens.markCurrent(tok);
  }

  /** Callbacks from transports; anything from a transport that is not the current one is ignored. */
  readonly #listener: TransportListener = {
    onOpen: (id) => {
      if (id === this.#transport?.id) this.#watchdog.seen();
    },
    onMessage: (id, data) => {
      if (id === this.#transport?.id) this.#onFrame(data);
    },
    onClose: (id, code, reason) => {
      if (id !== this.#transport?.id) return;
      this.#transport = null;
      this.#connectionLost(code, reason, 'transport_closed', true);
    },
    onError: (id, message) => {
      if (id !== this.#transport?.id) return;
      // `ws` reports a refused upgrade as "Unexpected server response: 403".
      const status = /Unexpected server response: (\d{3})/.exec(message)?.[1];
      if (status !== undefined) {
        this.#refusedStatus = Number(status);
        this.#emitError(new SignalboxError(ClientErrorCode.UPGRADE_REFUSED, `The server refused the WebSocket upgrade: HTTP ${status}`, { status: Number(status) }));
        return;
      }
      this.#emitError(new SignalboxError(ClientErrorCode.TRANSPORT_ERROR, message));
    },
  };

  /** The client gives up on the current socket itself (timeouts, a gap) and reconnects. */
  #abandon(reason: TransitionReason, message: string): void {
    const transport = this.#transport;
    this.#transport = null;
    transport?.close(CLIENT_ABANDON_CODE, reason);
    this.#connectionLost(undefined, message, reason, true);
  }

  /**
   * A connection (or an attempt) ended. Decides, from the close code, whether to reconnect, to
   * reconnect only with a different token, or to stop.
   */
  #connectionLost(code: number | undefined, message: string, reason: TransitionReason, fromSocket: boolean): void {
    const wasConnected = this.#state === 'connected';
    const closedToken = this.#tokens.current;
    const refused = this.#refusedStatus;
    this.#refusedStatus = undefined;
    this.#teardown();
    // 403 (an Origin allow-list, say) or 404 (a wrong path) from every URL in a row: no retry can succeed.
    this.#hardRefusals = refused === 403 || refused === 404 ? this.#hardRefusals + 1 : 0;
    const urlCount = typeof this.config.url === 'string' ? 1 : Math.max(1, this.config.url.length);
    if (this.#hardRefusals >= urlCount) {
      this.#hardRefusals = 0;
      this.#close('upgrade_refused', code, `HTTP ${refused}: ${message || 'upgrade refused'}`);
      return;
    }
    // A failed attempt, or a node going away, moves on to the next URL (not a getToken failure: no URL was tried).
    if ((!wasConnected && reason !== 'token_unavailable') || code === 1001 || code === 1012) this.#urlIndex++;
    const info = { ...(code === undefined ? {} : { code }), ...(message ? { message } : {}) };
    const policy = fromSocket && code !== undefined && reason === 'transport_closed' ? closePolicy(code) : 'reconnect';
    if (policy === 'stop') {
      this.#close('server_closed', code, message);
      return;
    }
    this.#nextTokenReason = 'reconnect';
    if (policy === 'new-token') {
      const expired = code === 4002;
      const why: TransitionReason = expired ? 'token_expired' : 'auth_failed';
      this.#nextTokenReason = expired ? 'token_expired' : 'auth_failed';
      this.#tokens.refuse({ token: closedToken, reason: why, code: code ?? 4001 });
      // Without getToken the only other token can come from config.token: decide now.
      if (!this.config.getToken && (this.config.token || undefined) === closedToken) {
        this.#close(why, code, message);
        return;
      }
      reason = why;
    }
    if (!this.config.reconnect) {
      this.#close('reconnect_disabled', code, message);
      return;
    }
    if (this.#attempts >= this.config.maxReconnectAttempts) {
      this.#close('max_attempts', code, message);
      return;
    }
    const delay = backoffDelay(this.#attempts, this.config.reconnectInterval, this.config.maxReconnectInterval);
    this.#attempts++;
    this.#emitState(this.#setState('reconnecting', { reason, ...info, attempt: this.#attempts, delay }));
    // A handler may have called disconnect() or connect() meanwhile.
    if (this.#state !== 'reconnecting') return;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#attempt();
    }, delay);
  }

  #onEstablished(connectionId: string | undefined): void {
    if (this.#state !== 'connecting' && this.#state !== 'reconnecting') return;
    this.#connectTimer = clear(this.#connectTimer);
    this.#connectionId = connectionId;
    this.#tokens.clearRefused();
    const change = this.#setState('connected', { reason: 'established' });
    this.#stableTimer = setTimeout(() => {
      this.#stableTimer = undefined;
      this.#attempts = 0;
    }, this.config.stableConnectionAfter);
    this.#watchdog.start();
    this.#tokens.scheduleRefresh(this.#tokens.current, undefined);
    // Resubscribe and resend before anyone sees `connected`: a handler publishing on that event
    // must not overtake what was queued before it.
    this.#subRetryAttempts = 0;
    this.#rpc.connected();
    this.#sendSubscribe([...this.#subs.values()]);
    this.#outbox.resendAll();
    this.#rpc.flush();
    this.#emitState(change);
    const waiters = this.#connectWaiters;
    this.#connectWaiters = [];
    for (const w of waiters) w.resolve();
  }

  // ---- Token refresh (the keeper decides; the wire is here) --------------------------------------

  #refreshPendingWith(token: string): boolean {
    for (const r of this.#outbox.requests('refresh')) if (r.token === token) return true;
    return false;
  }

  #sendRefresh(token: string): void {
    const id = this.#nextId();
    this.#tokens.markInFlight();
    this.#outbox.track({ kind: 'refresh', id, token }, { resend: 'transport' }, true);
  }

  // ---- Incoming ----------------------------------------------------------------------------------

  #onFrame(frame: string | Uint8Array): void {
    // Any frame is a sign of life (and the answer to a watchdog ping).
    this.#watchdog.seen();
    let decoded: unknown;
    try {
      if (typeof frame === 'string') decoded = JSON.parse(frame);
      else if (this.config.format !== 'json') decoded = this.config.format.decode(frame);
      else throw new Error('binary frame received, but no binary format is configured (format: msgpack)');
    } catch (err) {
      this.#emitError(new SignalboxError(ClientErrorCode.INVALID_FRAME, `Cannot decode a frame: ${errorMessage(err)}`, {}, undefined, err));
      return;
    }
    const inbound = this.#dialect?.normalize(decoded);
    if (!inbound) {
      this.#emitError(new SignalboxError(ClientErrorCode.INVALID_FRAME, 'A frame is not a message of this endpoint'));
      return;
    }
    this.#onMessage(inbound);
  }

  #onMessage(inbound: Inbound): void {
    switch (inbound.kind) {
      case 'connection.established':
        this.#onEstablished(inbound.connectionId);
        break;
      case 'heartbeat':
        if (this.#dialect?.name === 'prd') this.#send({ kind: 'pong' });
        break;
      case 'subscription.confirmed':
        this.#onSubscribed(inbound);
        break;
      case 'ack':
        this.#onAck(inbound);
        break;
      case 'history':
        if (inbound.replyTo) {
          const req = this.#outbox.get(inbound.replyTo, 'history')?.request;
          if (req) this.#outbox.settle(inbound.replyTo, 'history', { channel: req.channel, publications: inbound.publications, position: inbound.position, ...(inbound.next ? { next: inbound.next } : {}) });
        }
        break;
      case 'presence':
        if (inbound.replyTo) {
          const req = this.#outbox.get(inbound.replyTo, 'presence')?.request;
          if (req) this.#outbox.settle(inbound.replyTo, 'presence', { channel: req.channel, members: inbound.members });
        }
        break;
      case 'token.refreshed':
        this.#onRefreshed(inbound);
        break;
      case 'subscription.removed':
        this.#onRemoved(inbound);
        break;
      case 'error':
        this.#onServerError(inbound);
        this.#events.emit('*', inbound.message);
        return;
      case 'token_expired':
        this.#tokens.refresh('token_expired');
        this.#events.emit('token_expired', { expiredAt: inbound.expiredAt, graceMs: inbound.graceMs });
        this.#events.emit('*', inbound.message);
        return;
      case 'publication':
        this.#onPublication(inbound.message);
        return;
      case 'rpc.handling':
      case 'rpc.unhandled':
      case 'rpc.result':
      case 'rpc.request':
        this.#rpc.onMessage(inbound);
        break;
      case 'pong':
      case 'other':
        break;
    }
    this.#dispatch(inbound.message);
  }

  /** Hands a message to its type's handlers, then to `'*'`. Types that could shadow client events are not dispatched by type. */
  #dispatch(msg: ServerMessage): void {
    if (msg.type !== '*' && msg.type !== 'error' && msg.type !== 'token_expired' && !msg.type.startsWith('$')) this.#events.emit(msg.type, msg);
    this.#events.emit('*', msg);
  }

  #onPublication(msg: PublicationMessage): void {
    const sub = this.#subs.get(msg.channel);
    // After unsubscribe() (or before the confirmation) a publication is not the app's any more.
    if (!sub || sub.state !== 'subscribed') return;
    const transportId = this.#transport?.id;
    switch (sub._admit(msg)) {
      case 'duplicate':
        return;
      case 'gap':
        // Never deliver past a hole: reconnecting resubscribes from the last position, and recovery fills it.
        this.#abandon('insufficient_state', `${msg.channel}: expected offset ${(sub.position?.offset ?? 0) + 1}, got ${msg.offset}`);
        return;
      case 'deliver':
        sub._deliver(msg);
        // A subscription handler may have disconnected; the rest of this message then belongs to nobody.
        if (transportId !== this.#transport?.id) return;
        this.#dispatch(msg);
    }
  }

  /** The subscription of `channel` if it is still the one request `id` asked for. */
  #requested(channel: string, id: string): Subscription | undefined {
    const sub = this.#subs.get(channel);
    return sub && sub._requestId() === id ? sub : undefined;
  }

  #onSubscribed(inbound: Extract<Inbound, { kind: 'subscription.confirmed' }>): void {
    const replyTo = inbound.replyTo;
    const request = replyTo ? this.#outbox.get(replyTo, 'subscribe')?.request : undefined;
    if (replyTo && request) this.#outbox.remove(replyTo);
    for (const c of inbound.confirmed) {
      const sub = this.#subs.get(c.channel);
      if (!sub) continue;
      // A confirmation answers one request; a subscription since re-requested (or a server that does
      // not echo request ids, as the PRP document's does not) is matched by state instead.
      if (request ? sub._requestId() !== replyTo : sub.state !== 'subscribing') continue;
      sub._confirmed(c.position, c.recovered, c.reason, c.missed, c.delivery === 'latest');
    }
    if (request && replyTo) {
      // Neither confirmed nor refused: ask again later rather than wait forever.
      const skipped = request.channels.map((e) => this.#requested(e.channel, replyTo)).filter((s): s is Subscription => s !== undefined);
      for (const s of skipped) s._reset();
      if (skipped.length > 0) this.#scheduleSubscribeRetry();
      else this.#subRetryAttempts = 0;
    }
  }

  #onAck(inbound: Extract<Inbound, { kind: 'ack' }>): void {
    const entry = inbound.replyTo ? this.#outbox.get(inbound.replyTo, 'publish') : undefined;
    if (!entry) return;
    const { request } = entry;
    const { ack } = inbound;
    this.#outbox.settle(request.id, 'publish', {
      id: ack.id ?? request.id, channel: ack.channel ?? request.channel, offset: ack.offset, epoch: ack.epoch, duplicate: ack.duplicate,
    });
  }

  #onRefreshed(inbound: Extract<Inbound, { kind: 'token.refreshed' }>): void {
    const request = inbound.replyTo ? this.#outbox.get(inbound.replyTo, 'refresh')?.request : undefined;
    if (!request) return;
    this.#outbox.remove(request.id);
    this.#tokens.refreshed(request.token, inbound.expiresAt);
  }

  #onRemoved(inbound: Extract<Inbound, { kind: 'subscription.removed' }>): void {
    const channel = inbound.channel;
    const sub = channel ? this.#subs.get(channel) : undefined;
    if (!sub || !channel) return;
    this.#subs.delete(channel);
    sub._ended('removed_by_server', inbound.code, inbound.reason);
  }

  #onServerError(inbound: Extract<Inbound, { kind: 'error' }>): void {
    const err = new SignalboxError(inbound.code, inbound.text, inbound.details, inbound.message.replyTo);
    const replyTo = inbound.answers;
    const request = replyTo ? this.#outbox.request(replyTo) : undefined;
    switch (request?.kind) {
      case 'publish':
        // A refusal being retried is not an error of the application's (yet): `undelivered` reports the end.
        if (this.#outbox.refused(request.id, err) === 'retrying') return;
        break;
      case 'history':
      case 'presence':
        this.#outbox.reject(request.id, err);
        break;
      case 'refresh':
        this.#outbox.remove(request.id);
        this.#tokens.refreshRefused();
        break;
      case 'subscribe':
        this.#onSubscribeRefused(request, err);
        break;
      case undefined:
        if (replyTo) this.#rpc.onError(replyTo, err);
        break;
    }
    this.#emitError(err);
  }

  /** A subscribe request (or one channel of it) was refused. */
  #onSubscribeRefused(request: OutboxRequest<'subscribe'>, err: SignalboxError): void {
    const channel = err.details.channel;
    // An error naming a channel precedes the request's confirmation; one that does not ends the request.
    const targets = typeof channel === 'string' ? request.channels.filter((e) => e.channel === channel) : request.channels;
    if (typeof channel !== 'string') this.#outbox.remove(request.id);
    let retry = false;
    for (const target of targets) {
      const sub = this.#requested(target.channel, request.id);
      if (!sub) continue;
      if (err.code === 'UNRECOVERABLE_POSITION') {
        sub._forgetPosition();
        sub._reset();
        sub._recoveryFailed(typeof err.details.reason === 'string' ? (err.details.reason as UnrecoverableReason) : 'unknown');
        retry = true;
      } else if (TRANSIENT_ERRORS.has(err.code)) {
        sub._reset();
        sub._error(err);
        retry = true;
      } else {
        this.#subs.delete(sub.channel);
        sub._error(err);
        sub._ended('refused', err.code, err.message);
      }
    }
    if (retry) this.#scheduleSubscribeRetry();
  }

  #scheduleSubscribeRetry(): void {
    if (this.#subRetryTimer !== undefined || this.#state !== 'connected') return;
    const delay = backoffDelay(this.#subRetryAttempts++, this.config.reconnectInterval, this.config.maxReconnectInterval);
    this.#subRetryTimer = setTimeout(() => {
      this.#subRetryTimer = undefined;
      this.#sendSubscribe([...this.#subs.values()].filter((s) => s.state === 'subscribing' && s._requestId() === undefined));
    }, delay);
  }

  // ---- Outgoing ----------------------------------------------------------------------------------

  #sendSubscribe(subs: Subscription[]): void {
    const dialect = this.#dialect;
    if (!dialect || subs.length === 0) return;
    const entries = subs.map((s) => {
      const since = s.position;
      return since ? { channel: s.channel, since } : { channel: s.channel };
    });
    for (const batch of dialect.batchSubscribe(entries)) {
      const id = this.#nextId();
      for (const e of batch) this.#subs.get(e.channel)?._requested(id);
      this.#outbox.track({ kind: 'subscribe', id, channels: batch }, { resend: 'transport' }, true);
    }
  }

  /** Writes a request on the current transport; false when there is none open. */
  #send(req: ClientRequest): boolean {
    const transport = this.#transport;
    const dialect = this.#dialect;
    if (!transport || !dialect) return false;
    const frame = dialect.encode(req);
    if (frame === undefined) return true;
    return transport.send((this.config.format !== 'json' && this.config.format.encode?.(frame)) || JSON.stringify(frame));
  }

  #nextId(): string {
    return `${this.#idPrefix}${++this.#idSeq}`;
  }

  // ---- Errors ------------------------------------------------------------------------------------

  #emitError(err: SignalboxError): void {
    this.#events.emit('error', err);
  }

  #reportHandlerError(err: unknown, where: string): void {
    // An 'error' handler that throws, or no 'error' handler at all: the console is the last resort,
    // so a bug in application code is never silent and never loops.
    if (where === "'error' handler" || !this.#events.has('error')) {
      console.error(`[signalbox] ${where} threw:`, err);
      return;
    }
    this.#emitError(new SignalboxError(ClientErrorCode.HANDLER_ERROR, `A ${where} threw: ${errorMessage(err)}`, {}, undefined, err));
  }

  readonly #subscriptionHost = {
    unsubscribe: (channel: string) => this.unsubscribe(channel),
    reportHandlerError: (err: unknown, where: string) => this.#reportHandlerError(err, where),
  };
}

function clear(timer: ReturnType<typeof setTimeout> | undefined): undefined {
  if (timer !== undefined) clearTimeout(timer);
  return undefined;
}

function noop(): void {}
