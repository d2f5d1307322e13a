/**
 * `SignalboxClient`: the reconnecting client. It keeps the PRP API document's reference client's
 * shape (`connect`, `disconnect`, `subscribe`, `unsubscribe`, `on`, `off`, `config`) and fixes what
 * that client gets wrong: backoff has jitter and no attempt limit by default; publications missed
 * while away are recovered, exactly once and in order; tokens are refreshed before they expire; the
 * offline queue is bounded; a half-open connection is detected.
 *
 * One state machine, changed only in `#setState`, which reports every transition with its reason.
 */
import type { CloseCode, ErrorCode, PresenceMember, StreamPosition, UnrecoverableReason } from '@signalbox/protocol';
import { backoffDelay } from './backoff.js';
import { dialectFor, type ClientRequest, type Dialect, type DialectName } from './dialect.js';
import { Emitter, type Handler } from './emitter.js';
import { ClientErrorCode, SignalboxError, type SignalboxErrorDetails } from './errors.js';
import type {
  AckData, ClientEvents, ClientState, ConnectionEstablishedData, PrpEventData, PublicationMessage, ServerMessage, StateChange,
  TokenExpiredData, TransitionReason,
} from './events.js';
import { Subscription } from './subscription.js';
import { jwtExpiry } from './token.js';
import { Transport, type TransportListener, type WebSocketConstructor } from './transport.js';

/** Decodes binary frames; pass `msgpack` from `@signalbox/client/msgpack` to receive MessagePack. */
export interface FrameFormat {
  readonly name: 'msgpack';
  decode(bytes: Uint8Array): unknown;
}

/** Why `getToken` is being called. */
export type TokenRequestReason =
  /** First attempt after `connect()`. */
  | 'connect'
  /** A reconnect after the connection was lost. */
  | 'reconnect'
  /** Ahead of the current token's `exp`, for an in-band refresh. */
  | 'refresh'
  /** The server said the token expired (event or close 4002). Return a fresh one. */
  | 'token_expired'
  /** The server refused the token (close 4001). Return a different one, or the same to give up. */
  | 'auth_failed';

/** How the token reaches the gateway. */
export type TokenTransport =
  /** `Authorization: Bearer` header: Node with `ws` only (browsers cannot set headers). */
  | 'header'
  /** `?token=` in the URL: works everywhere, but URLs end up in logs. */
  | 'query'
  /** `Sec-WebSocket-Protocol: signalbox.json, bearer.<jwt>`: the browser way. */
  | 'subprotocol';

/** What happens to a publish when the offline queue is full. */
export type QueueOverflow =
  /** The new publish is rejected with `QUEUE_FULL`; queued ones keep their order. */
  | 'reject-new'
  /** The oldest unacknowledged publish is rejected with `QUEUE_FULL` and the new one is queued. */
  | 'drop-oldest';

/**
 * The reference client's `WebSocketConfig` (url, token, reconnect, reconnectInterval,
 * maxReconnectAttempts), plus Signalbox's options. All resolved, and read live: changing
 * `client.config.token` is picked up on the next (re)connect, as the reference example expects.
 */
export interface ClientConfig {
  /** Endpoint URL, or several tried in turn. Default: same origin `/v1/ws/prps` in browsers, `ws://localhost:8080/v1/ws/prps` elsewhere. */
  url: string | string[];
  /** Static token; used when `getToken` is not given. */
  token: string;
  /** Called before every (re)connect and before the token's `exp`; its result wins over `token`. */
  getToken: ((request: { reason: TokenRequestReason }) => string | Promise<string>) | undefined;
  /** Reconnect after a lost connection. Default true. */
  reconnect: boolean;
  /** Minimum reconnect delay, ms (the backoff floor). Default 500. */
  reconnectInterval: number;
  /** Maximum reconnect delay, ms (the backoff ceiling). Default 20000. */
  maxReconnectInterval: number;
  /** Consecutive failed attempts before giving up (state `closed`). Default Infinity (never give up). */
  maxReconnectAttempts: number;
  /** The attempt counter resets only once a connection has stayed up this long, ms. Default 10000. */
  stableConnectionAfter: number;
  /** getToken + open + authenticate within this, ms, or the attempt is abandoned. Default 10000. */
  connectTimeout: number;
  /** After this long without any frame, ms, send a `ping`. 0 disables the watchdog. Default 30000 (the gateway's heartbeat is 25000). */
  pingInterval: number;
  /** After a `ping`, wait this long for any frame, ms, before declaring the connection dead. Default 10000. */
  pongTimeout: number;
  /** How long a written publish waits for its ack, ms. Default 10000. */
  publishTimeout: number;
  /** Unacknowledged publishes held while not connected. Default 1000. */
  maxQueueSize: number;
  /** What a publish does when the queue is full. Default `reject-new`. */
  queueOverflow: QueueOverflow;
  /** Refresh the token this long before its `exp`, ms (at most half its remaining life). Default 30000. */
  refreshMargin: number;
  /** Endpoint dialect. `auto` (default): PRD-035 when the URL path ends in `/ws`, else PRP. */
  dialect: DialectName | 'auto';
  /** How the token is sent. Default `subprotocol`; `header` with `@signalbox/client/node`. */
  tokenTransport: TokenTransport;
  /** `json` (default) or a binary format such as `msgpack` from `@signalbox/client/msgpack`. */
  format: 'json' | FrameFormat;
  /** The WebSocket constructor. Default `globalThis.WebSocket`. */
  WebSocket: WebSocketConstructor | undefined;
}

/** Options of `new SignalboxClient(options)`: every {@link ClientConfig} field, all optional. */
export type SignalboxClientOptions = Partial<ClientConfig>;

/** The reference client's config shape, kept for users of the PRP API document. */
export interface WebSocketConfig {
  url: string;
  token: string;
  reconnect: boolean;
  reconnectInterval: number;
  maxReconnectAttempts: number;
}

/** Options of one publish. */
export interface PublishOptions {
  /** Event type (e.g. `prp.created`); the gateway uses `message` when omitted. */
  type?: string;
  /**
   * Idempotency key: a publish retried with the same id is stored once. Generated when omitted.
   * The client itself resends unacknowledged publishes with their id after a reconnect.
   */
  id?: string;
  /** Overrides `publishTimeout` for this publish. */
  timeout?: number;
}

/** The gateway's acknowledgement of a publish: where it landed in the channel's stream. */
export type PublishAck = AckData;

/** Options of one history query. */
export interface HistoryOptions {
  /**
   * At most this many publications: the last `limit` retained or, with `since`, the first `limit`
   * after it. Default: the gateway's (100, or the namespace's history size if smaller).
   */
  limit?: number;
  /** Only publications after this position (e.g. a persisted `subscription.position`). */
  since?: StreamPosition;
  /** Overrides `publishTimeout` for this query: how long it may wait for its answer, from the call. */
  timeout?: number;
}

/** The answer to `history()`: publications ascending by offset, and the channel's current position. */
export interface HistoryResult {
  channel: string;
  publications: PublicationMessage[];
  /** The channel's latest position (`offset` 0 when nothing was ever published). */
  position: StreamPosition | undefined;
}

/** The answer to `presence()`: who is subscribed to a presence channel, on every node. */
export interface PresenceResult {
  channel: string;
  members: PresenceMember[];
}

/** Options of one presence query. */
export interface PresenceOptions {
  /** Overrides `publishTimeout` for this query. */
  timeout?: number;
}

/** Options of one subscription. */
export interface SubscribeOptions {
  /** Resume from this position (e.g. persisted from `subscription.position`): missed publications are replayed. */
  since?: StreamPosition;
}

interface PendingPublish {
  id: string;
  channel: string;
  type: string | undefined;
  data: unknown;
  timeout: number;
  resolve: (ack: PublishAck) => void;
  reject: (err: SignalboxError) => void;
  promise: Promise<PublishAck>;
  timer: ReturnType<typeof setTimeout> | undefined;
}

type PendingRequest =
  | { kind: 'subscribe'; subs: Subscription[] }
  | { kind: 'refresh'; token: string };

/** A read (history or presence) waiting for its answer; sent again after a reconnect (reads are idempotent). */
interface PendingQuery {
  req: Extract<ClientRequest, { kind: 'history' | 'presence' }>;
  settle: (msg: ServerMessage | SignalboxError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

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
/** setTimeout's ceiling; longer delays fire at once. */
const MAX_TIMER_DELAY = 2 ** 31 - 1;
/** Error codes after which a refused subscription is retried rather than dropped. */
const TRANSIENT_ERRORS: ReadonlySet<string> = new Set<ErrorCode>(['UNAVAILABLE', 'INTERNAL_ERROR', 'RATE_LIMITED']);

function defaultUrl(): string {
  const loc = (globalThis as { location?: { protocol?: string; host?: string } }).location;
  if (loc && (loc.protocol === 'https:' || loc.protocol === 'http:') && loc.host) {
    return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/v1/ws/prps`;
  }
  return 'ws://localhost:8080/v1/ws/prps';
}

function isPromiseLike<T>(v: unknown): v is PromiseLike<T> {
  return typeof v === 'object' && v !== null && typeof (v as PromiseLike<T>).then === 'function';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readPosition(v: unknown): StreamPosition | undefined {
  if (!isObject(v) || typeof v.epoch !== 'string' || typeof v.offset !== 'number') return undefined;
  return { epoch: v.epoch, offset: v.offset };
}

function randomId(length: number): string {
  let s = '';
  while (s.length < length) s += Math.random().toString(36).slice(2);
  return s.slice(0, length);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The Signalbox client. `E` maps publication event types to their data, for typed handlers
 * (default: the PRP API document's events).
 *
 * @example
 * const client = new SignalboxClient({ url: 'wss://rt.example.com/v1/ws/prps', getToken: fetchToken });
 * client.on('prp.created', (message) => console.log(message.data.name));
 * await client.connect();
 * const sub = client.subscribe('project:proj_123456');
 * sub.on('recovery_failed', () => reloadProject());
 */
export class SignalboxClient<E extends object = PrpEventData> {
  /** The resolved configuration; fields are read live (e.g. `client.config.token = next`). */
  readonly config: ClientConfig;

  #state: ClientState = 'disconnected';
  readonly #events: Emitter;
  readonly #subs = new Map<string, Subscription>();
  /** Unacknowledged publishes, in call order: the offline queue and the in-flight ones. */
  readonly #pending = new Map<string, PendingPublish>();
  /** History and presence queries awaiting an answer, in call order; they outlive a transport. */
  readonly #queries = new Map<string, PendingQuery>();
  /** Requests awaiting a reply on the current transport; dropped with it. */
  readonly #requests = new Map<string, PendingRequest>();
  #connectWaiters: { resolve: () => void; reject: (err: SignalboxError) => void }[] = [];

  #transport: Transport | null = null;
  #transportSeq = 0;
  #dialect: Dialect | null = null;
  /** Bumped to invalidate an attempt still waiting for `getToken`. */
  #attemptSeq = 0;
  /** Consecutive failed attempts since the last stable connection. */
  #attempts = 0;
  #urlIndex = 0;
  #nextTokenReason: TokenRequestReason = 'connect';
  /** The token the current connection authenticated (or last refreshed) with. */
  #currentToken: string | undefined;
  /** A token the server refused (4001/4002): reconnecting with it again cannot succeed. */
  #refusedToken: { token: string | undefined; reason: TransitionReason; code: number } | undefined;
  #connectionId: string | undefined;
  #refreshInFlight = false;

  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  #heartbeatTimer: ReturnType<typeof setTimeout> | undefined;
  #stableTimer: ReturnType<typeof setTimeout> | undefined;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  #subRetryTimer: ReturnType<typeof setTimeout> | undefined;
  #subRetryAttempts = 0;
  #lastFrameAt = 0;
  #pingSentAt: number | undefined;

  readonly #idPrefix = `c${Date.now().toString(36)}${randomId(8)}-`;
  #idSeq = 0;

  constructor(options: SignalboxClientOptions = {}) {
    const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as SignalboxClientOptions;
    this.config = {
      url: defaultUrl(),
      token: '',
      getToken: undefined,
      reconnect: true,
      reconnectInterval: 500,
      maxReconnectInterval: 20_000,
      maxReconnectAttempts: Infinity,
      stableConnectionAfter: 10_000,
      connectTimeout: 10_000,
      pingInterval: 30_000,
      pongTimeout: 10_000,
      publishTimeout: 10_000,
      maxQueueSize: 1000,
      queueOverflow: 'reject-new',
      refreshMargin: 30_000,
      dialect: 'auto',
      tokenTransport: 'subprotocol',
      format: 'json',
      WebSocket: undefined,
      ...defined,
    };
    if (this.config.tokenTransport === 'header' && !this.config.WebSocket) {
      throw new TypeError("tokenTransport 'header' needs a WebSocket that can send headers: import from '@signalbox/client/node', or pass `WebSocket` from 'ws'");
    }
    if (!this.config.WebSocket && typeof (globalThis as { WebSocket?: unknown }).WebSocket !== 'function') {
      throw new TypeError("No WebSocket implementation here: in Node, import from '@signalbox/client/node' (which uses 'ws'), or pass `WebSocket`");
    }
    this.#events = new Emitter((err, type) => this.#reportHandlerError(err, `'${type}' handler`));
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
      if (!this.config.getToken && token && token !== this.#currentToken && !this.#refreshPendingWith(token)) this.#sendRefresh(token);
      return Promise.resolve();
    }
    const promise = new Promise<void>((resolve, reject) => this.#connectWaiters.push({ resolve, reject }));
    // A caller that does not await connect() learns of failures through 'error' and '$state';
    // the rejection must not also crash Node as an unhandled one.
    promise.catch(noop);
    if (this.#state === 'disconnected' || this.#state === 'closed') {
      this.#attempts = 0;
      this.#refusedToken = undefined;
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
    this.#failPending(ClientErrorCode.DISCONNECTED, 'disconnect() was called');
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
   */
  publish(channel: string, data: unknown, options: PublishOptions = {}): Promise<PublishAck> {
    if (this.#state === 'closed') {
      return Promise.reject(new SignalboxError(ClientErrorCode.CLOSED, 'The client is closed; call connect() first', { channel }));
    }
    const id = options.id ?? this.#nextId();
    const existing = this.#pending.get(id);
    if (existing) return existing.promise;
    const online = this.#state === 'connected';
    if (!online && this.#pending.size >= this.config.maxQueueSize) {
      const full = (): SignalboxError => new SignalboxError(ClientErrorCode.QUEUE_FULL, `Offline queue full (${this.config.maxQueueSize} publishes)`, { channel });
      if (this.config.queueOverflow !== 'drop-oldest' || this.#pending.size === 0) return Promise.reject(full());
      const oldest = this.#pending.values().next().value as PendingPublish;
      this.#settlePublish(oldest, full());
    }
    let resolve!: (ack: PublishAck) => void;
    let reject!: (err: SignalboxError) => void;
    const promise = new Promise<PublishAck>((res, rej) => { resolve = res; reject = rej; });
    const entry: PendingPublish = {
      id, channel, type: options.type, data, timeout: options.timeout ?? this.config.publishTimeout, resolve, reject, promise, timer: undefined,
    };
    this.#pending.set(id, entry);
    if (online) this.#writePublish(entry);
    return promise;
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
    const req: Extract<ClientRequest, { kind: 'history' }> = { kind: 'history', id: this.#nextId(), channel };
    if (options.since) req.since = { epoch: options.since.epoch, offset: options.since.offset };
    if (options.limit !== undefined) req.limit = options.limit;
    return this.#query(req, options.timeout, (msg) => {
      const d = isObject(msg.data) ? msg.data : {};
      const raw = Array.isArray(d.publications) ? d.publications : [];
      const publications: PublicationMessage[] = [];
      for (const frame of raw) {
        const pub = this.#dialect?.normalize(frame);
        if (pub && typeof pub.channel === 'string' && typeof pub.offset === 'number' && typeof pub.epoch === 'string') publications.push(pub as PublicationMessage);
      }
      return { channel, publications, position: readPosition(d.position) };
    });
  }

  /**
   * Lists the members of a presence channel (a namespace with presence on): one entry per
   * subscribed connection, `{clientId, userId, info?}`. Rejects like {@link history}; a namespace
   * without presence is `PERMISSION_DENIED`.
   */
  presence(channel: string, options: PresenceOptions = {}): Promise<PresenceResult> {
    return this.#query({ kind: 'presence', id: this.#nextId(), channel }, options.timeout, (msg) => {
      const d = isObject(msg.data) ? msg.data : {};
      const members = Array.isArray(d.members) ? d.members.filter((m): m is PresenceMember => isObject(m) && typeof m.clientId === 'string') : [];
      return { channel, members };
    });
  }

  #query<T>(req: PendingQuery['req'], timeout: number | undefined, read: (msg: ServerMessage) => T): Promise<T> {
    if (this.#state === 'closed') {
      return Promise.reject(new SignalboxError(ClientErrorCode.CLOSED, 'The client is closed; call connect() first', { channel: req.channel }));
    }
    if (this.#state === 'disconnected') {
      return Promise.reject(new SignalboxError(ClientErrorCode.DISCONNECTED, 'Not connected; call connect() first', { channel: req.channel }));
    }
    return new Promise<T>((resolve, reject) => {
      const ms = timeout ?? this.config.publishTimeout;
      const entry: PendingQuery = {
        req,
        timer: setTimeout(() => entry.settle(new SignalboxError(ClientErrorCode.TIMEOUT, `No answer within ${ms} ms`, { channel: req.channel, requestId: req.id })), ms),
        settle: (outcome) => {
          if (this.#queries.get(req.id) !== entry) return;
          this.#queries.delete(req.id);
          entry.timer = clear(entry.timer);
          if (outcome instanceof SignalboxError) reject(outcome);
          else resolve(read(outcome));
        },
      };
      this.#queries.set(req.id, entry);
      if (this.#state === 'connected') this.#send(req);
    });
  }

  /** Number of publishes not yet acknowledged (queued or in flight). */
  get pendingPublishes(): number {
    return this.#pending.size;
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

  #teardown(): void {
    this.#attemptSeq++;
    this.#clearConnectionTimers();
    this.#reconnectTimer = clear(this.#reconnectTimer);
    this.#subRetryTimer = clear(this.#subRetryTimer);
    this.#transport = null;
    this.#dialect = null;
    this.#connectionId = undefined;
    this.#requests.clear();
    this.#refreshInFlight = false;
    for (const sub of this.#subs.values()) sub._reset();
    for (const entry of this.#pending.values()) entry.timer = clear(entry.timer);
  }

  #clearConnectionTimers(): void {
    this.#connectTimer = clear(this.#connectTimer);
    this.#heartbeatTimer = clear(this.#heartbeatTimer);
    this.#stableTimer = clear(this.#stableTimer);
    this.#refreshTimer = clear(this.#refreshTimer);
    this.#pingSentAt = undefined;
  }

  /** Stops for good (state `closed`): a refused token, a close code that forbids reconnecting, attempts exhausted. */
  #close(reason: TransitionReason, code?: number, message?: string): void {
    const transport = this.#transport;
    this.#teardown();
    transport?.close(1000, 'client closed');
    this.#failPending(ClientErrorCode.CLOSED, `The client closed: ${reason}${message ? ` (${message})` : ''}`);
    this.#emitState(this.#setState('closed', { reason, ...(code === undefined ? {} : { code }), ...(message ? { message } : {}) }));
    this.#rejectWaiters(new SignalboxError(ClientErrorCode.CLOSED, `Could not connect: ${reason}${message ? ` (${message})` : ''}`, { reason, code }));
  }

  #rejectWaiters(err: SignalboxError): void {
    const waiters = this.#connectWaiters;
    this.#connectWaiters = [];
    for (const w of waiters) w.reject(err);
  }

  #failPending(code: ClientErrorCode, message: string): void {
    for (const entry of [...this.#pending.values()]) this.#settlePublish(entry, new SignalboxError(code, message, { channel: entry.channel }));
    for (const q of [...this.#queries.values()]) q.settle(new SignalboxError(code, message, { channel: q.req.channel, requestId: q.req.id }));
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
    const refused = this.#refusedToken;
    if (refused && refused.token === tok) {
      this.#close(refused.reason, refused.code, 'the server refused this token and no other is available');
      return;
    }
    const urls = typeof this.config.url === 'string' ? [this.config.url] : this.config.url;
    const baseUrl = urls[this.#urlIndex % Math.max(1, urls.length)] ?? defaultUrl();
    const dialect = dialectFor(this.config.dialect, baseUrl);
    const binary = this.config.format !== 'json';
    let url = baseUrl;
    const protocols: string[] = [];
    let headers: Record<string, string> | undefined;
    try {
      const u = new URL(baseUrl);
      if (binary) u.searchParams.set('format', 'msgpack');
      if (tok && this.config.tokenTransport === 'query') u.searchParams.set('token', tok);
      url = u.toString();
    } catch {
      // Leave the URL as given: the WebSocket constructor reports what is wrong with it.
    }
    if (this.config.tokenTransport === 'subprotocol') {
      protocols.push(binary ? 'signalbox.msgpack' : 'signalbox.json');
      if (tok) protocols.push(`bearer.${tok}`);
    } else if (this.config.tokenTransport === 'header' && tok) {
      headers = { Authorization: `Bearer ${tok}` };
    }
    // Checked in the constructor; read here so a replaced config.WebSocket applies to the next attempt.
    const Ctor = (this.config.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket)!;
    const id = ++this.#transportSeq;
    try {
      this.#transport = new Transport(id, Ctor, { url, protocols, ...(headers ? { headers } : {}) }, this.#listener);
    } catch (err) {
      this.#emitError(new SignalboxError(ClientErrorCode.TRANSPORT_ERROR, `Cannot open ${baseUrl}: ${errorMessage(err)}`, {}, undefined, err));
      this.#connectionLost(1006, errorMessage(err), 'transport_closed', false);
      return;
    }
    this.#dialect = dialect;
    this.#currentToken = tok;
  }

  /** Callbacks from transports; anything from a transport that is not the current one is ignored. */
  readonly #listener: TransportListener = {
    onOpen: (id) => {
      if (id === this.#transport?.id) this.#lastFrameAt = Date.now();
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
      if (id === this.#transport?.id) this.#emitError(new SignalboxError(ClientErrorCode.TRANSPORT_ERROR, message));
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
    const closedToken = this.#currentToken;
    this.#teardown();
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
      this.#refusedToken = { token: closedToken, reason: why, code: code ?? 4001 };
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

  #onEstablished(data: ConnectionEstablishedData): void {
    if (this.#state !== 'connecting' && this.#state !== 'reconnecting') return;
    this.#connectTimer = clear(this.#connectTimer);
    this.#connectionId = typeof data.connectionId === 'string' ? data.connectionId : undefined;
    this.#refusedToken = undefined;
    const change = this.#setState('connected', { reason: 'established' });
    this.#stableTimer = setTimeout(() => {
      this.#stableTimer = undefined;
      this.#attempts = 0;
    }, this.config.stableConnectionAfter);
    this.#startHeartbeat();
    this.#scheduleRefresh(this.#currentToken, undefined);
    // Resubscribe and resend before anyone sees `connected`: a handler publishing on that event
    // must not overtake what was queued before it.
    this.#subRetryAttempts = 0;
    this.#sendSubscribe([...this.#subs.values()]);
    for (const entry of this.#pending.values()) this.#writePublish(entry);
    for (const q of this.#queries.values()) this.#send(q.req);
    this.#emitState(change);
    const waiters = this.#connectWaiters;
    this.#connectWaiters = [];
    for (const w of waiters) w.resolve();
  }

  // ---- Heartbeat watchdog ------------------------------------------------------------------------

  /**
   * Detects a half-open connection (the peer vanished without a close) within
   * `pingInterval + pongTimeout` of the last frame: browsers cannot see WebSocket pings, so the
   * client pings at the application level when the line has been quiet.
   */
  #startHeartbeat(): void {
    this.#lastFrameAt = Date.now();
    this.#pingSentAt = undefined;
    if (this.config.pingInterval > 0) this.#armHeartbeat(this.config.pingInterval);
  }

  #armHeartbeat(delay: number): void {
    clear(this.#heartbeatTimer);
    this.#heartbeatTimer = setTimeout(() => this.#onHeartbeatTimer(), Math.max(0, delay));
  }

  #onHeartbeatTimer(): void {
    this.#heartbeatTimer = undefined;
    const now = Date.now();
    if (this.#pingSentAt !== undefined) {
      if (this.#lastFrameAt < this.#pingSentAt) {
        this.#abandon('heartbeat_timeout', `Nothing received within ${this.config.pongTimeout} ms of a ping`);
        return;
      }
      this.#pingSentAt = undefined;
    }
    const idle = now - this.#lastFrameAt;
    if (idle < this.config.pingInterval) {
      this.#armHeartbeat(this.config.pingInterval - idle);
      return;
    }
    this.#pingSentAt = now;
    this.#send({ kind: 'ping', id: this.#nextId() });
    this.#armHeartbeat(this.config.pongTimeout);
  }

  // ---- Token refresh -----------------------------------------------------------------------------

  /** Schedules an in-band refresh ahead of the token's expiry (needs `getToken`). */
  #scheduleRefresh(token: string | undefined, expiresAt: number | undefined): void {
    this.#refreshTimer = clear(this.#refreshTimer);
    if (!this.config.getToken) return;
    const exp = jwtExpiry(token) ?? expiresAt;
    if (exp === undefined || !Number.isFinite(exp)) return;
    const remaining = exp - Date.now();
    const margin = Math.min(this.config.refreshMargin, Math.max(0, remaining) / 2);
    const delay = Math.min(MAX_TIMER_DELAY, Math.max(0, remaining - margin));
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = undefined;
      this.#refresh('refresh');
    }, delay);
  }

  /** Gets a fresh token and sends it in-band; the connection stays up. */
  #refresh(reason: TokenRequestReason): void {
    const getToken = this.config.getToken;
    if (!getToken || this.#state !== 'connected' || this.#refreshInFlight) return;
    this.#refreshInFlight = true;
    const transportId = this.#transport?.id;
    const fail = (err: unknown): void => {
      if (transportId !== this.#transport?.id) return;
      this.#refreshInFlight = false;
      this.#emitError(new SignalboxError(ClientErrorCode.TOKEN_UNAVAILABLE, `getToken() failed: ${errorMessage(err)}`, {}, undefined, err));
      // Try again soon; if the token expires first, the gateway closes with 4002 and the reconnect asks again.
      this.#refreshTimer = clear(this.#refreshTimer);
      this.#refreshTimer = setTimeout(() => {
        this.#refreshTimer = undefined;
        this.#refresh(reason);
      }, Math.max(1000, this.config.reconnectInterval));
    };
    const use = (token: unknown): void => {
      if (transportId !== this.#transport?.id) return;
      this.#refreshInFlight = false;
      if (typeof token !== 'string' || token.length === 0) return fail(new TypeError('getToken() must return a non-empty string'));
      if (token === this.#currentToken) return;
      this.#sendRefresh(token);
    };
    try {
      const source = getToken({ reason });
      if (isPromiseLike<string>(source)) source.then(use, fail);
      else use(source);
    } catch (err) {
      fail(err);
    }
  }

  #refreshPendingWith(token: string): boolean {
    for (const r of this.#requests.values()) if (r.kind === 'refresh' && r.token === token) return true;
    return false;
  }

  #sendRefresh(token: string): void {
    const id = this.#nextId();
    this.#refreshInFlight = true;
    this.#requests.set(id, { kind: 'refresh', token });
    this.#send({ kind: 'refresh', id, token });
  }

  // ---- Incoming ----------------------------------------------------------------------------------

  #onFrame(frame: string | Uint8Array): void {
    this.#lastFrameAt = Date.now();
    // The answer to a watchdog ping (or any sign of life): count the quiet time afresh from now.
    if (this.#pingSentAt !== undefined) {
      this.#pingSentAt = undefined;
      this.#armHeartbeat(this.config.pingInterval);
    }
    let decoded: unknown;
    try {
      if (typeof frame === 'string') decoded = JSON.parse(frame);
      else if (this.config.format !== 'json') decoded = this.config.format.decode(frame);
      else throw new Error('binary frame received, but no binary format is configured (format: msgpack)');
    } catch (err) {
      this.#emitError(new SignalboxError(ClientErrorCode.INVALID_FRAME, `Cannot decode a frame: ${errorMessage(err)}`, {}, undefined, err));
      return;
    }
    const msg = this.#dialect?.normalize(decoded);
    if (!msg) {
      this.#emitError(new SignalboxError(ClientErrorCode.INVALID_FRAME, 'A frame is not a message of this endpoint'));
      return;
    }
    this.#onMessage(msg);
  }

  #onMessage(msg: ServerMessage): void {
    switch (msg.type) {
      case 'connection.established':
        this.#onEstablished(isObject(msg.data) ? (msg.data as unknown as ConnectionEstablishedData) : { connectionId: '', serverVersion: '', features: [] });
        break;
      case 'heartbeat':
        if (this.#dialect?.name === 'prd') this.#send({ kind: 'pong' });
        break;
      case 'subscription.confirmed':
        this.#onSubscribed(msg);
        break;
      case 'ack':
        this.#onAck(msg);
        break;
      case 'history':
      case 'presence':
        if (msg.replyTo) this.#queries.get(msg.replyTo)?.settle(msg);
        break;
      case 'token.refreshed':
        this.#onRefreshed(msg);
        break;
      case 'subscription.removed':
        this.#onRemoved(msg);
        break;
      case 'error':
        this.#onServerError(msg);
        this.#events.emit('*', msg);
        return;
      case 'token_expired': {
        const data = (isObject(msg.data) ? msg.data : {}) as Partial<TokenExpiredData>;
        this.#refresh('token_expired');
        this.#events.emit('token_expired', { expiredAt: data.expiredAt ?? '', graceMs: data.graceMs ?? 0 });
        this.#events.emit('*', msg);
        return;
      }
      default:
        if (typeof msg.channel === 'string' && typeof msg.offset === 'number' && typeof msg.epoch === 'string') {
          this.#onPublication(msg as PublicationMessage);
          return;
        }
    }
    this.#dispatch(msg);
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

  #onSubscribed(msg: ServerMessage): void {
    const data = isObject(msg.data) ? msg.data : {};
    const request = msg.replyTo ? this.#requests.get(msg.replyTo) : undefined;
    if (msg.replyTo && request?.kind === 'subscribe') this.#requests.delete(msg.replyTo);
    const outcomes = new Map<string, Record<string, unknown>>();
    if (Array.isArray(data.channels)) {
      for (const o of data.channels) if (isObject(o) && typeof o.channel === 'string') outcomes.set(o.channel, o);
    }
    const names = Array.isArray(data.subscribedChannels) ? data.subscribedChannels.filter((c): c is string => typeof c === 'string') : [...outcomes.keys()];
    for (const name of names) {
      const sub = this.#subs.get(name);
      if (!sub) continue;
      // A confirmation answers one request; a subscription since re-requested (or a server that does
      // not echo request ids, as the PRP document's does not) is matched by state instead.
      if (request ? sub._requestId() !== msg.replyTo : sub.state !== 'subscribing') continue;
      const o = outcomes.get(name);
      const recovered = typeof o?.recovered === 'boolean' ? o.recovered : undefined;
      const reason = typeof o?.reason === 'string' ? (o.reason as UnrecoverableReason) : undefined;
      const missed = typeof o?.missed === 'number' ? o.missed : undefined;
      sub._confirmed(readPosition(o?.position), recovered, reason, missed);
    }
    if (request?.kind === 'subscribe') {
      // Neither confirmed nor refused: ask again later rather than wait forever.
      const skipped = request.subs.filter((s) => s._requestId() === msg.replyTo && this.#subs.get(s.channel) === s);
      for (const s of skipped) s._reset();
      if (skipped.length > 0) this.#scheduleSubscribeRetry();
      else this.#subRetryAttempts = 0;
    }
  }

  #onAck(msg: ServerMessage): void {
    const entry = msg.replyTo ? this.#pending.get(msg.replyTo) : undefined;
    if (!entry) return;
    const d = isObject(msg.data) ? msg.data : {};
    const ack: PublishAck = {
      id: typeof d.id === 'string' ? d.id : entry.id,
      channel: typeof d.channel === 'string' ? d.channel : entry.channel,
      offset: typeof d.offset === 'number' ? d.offset : -1,
      epoch: typeof d.epoch === 'string' ? d.epoch : '',
      duplicate: d.duplicate === true,
    };
    this.#settlePublish(entry, ack);
  }

  #onRefreshed(msg: ServerMessage): void {
    const request = msg.replyTo ? this.#requests.get(msg.replyTo) : undefined;
    if (!request || request.kind !== 'refresh' || !msg.replyTo) return;
    this.#requests.delete(msg.replyTo);
    this.#refreshInFlight = false;
    this.#currentToken = request.token;
    const d = isObject(msg.data) ? msg.data : {};
    const expiresAt = typeof d.expiresAt === 'string' ? Date.parse(d.expiresAt) : undefined;
    this.#scheduleRefresh(request.token, expiresAt);
  }

  #onRemoved(msg: ServerMessage): void {
    const d = isObject(msg.data) ? msg.data : {};
    const channel = typeof d.channel === 'string' ? d.channel : msg.channel;
    const sub = channel ? this.#subs.get(channel) : undefined;
    if (!sub || !channel) return;
    this.#subs.delete(channel);
    sub._ended('removed_by_server', typeof d.code === 'string' ? d.code : undefined, typeof d.message === 'string' ? d.message : undefined);
  }

  #onServerError(msg: ServerMessage): void {
    const d = isObject(msg.data) ? msg.data : {};
    const details = (isObject(d.details) ? d.details : {}) as SignalboxErrorDetails;
    const code = (typeof d.code === 'string' ? d.code : 'INTERNAL_ERROR') as ErrorCode;
    const err = new SignalboxError(code, typeof d.message === 'string' ? d.message : code, details, msg.replyTo);
    const replyTo = msg.replyTo ?? (typeof details.requestId === 'string' ? details.requestId : undefined);
    if (replyTo) {
      const entry = this.#pending.get(replyTo);
      if (entry) this.#settlePublish(entry, err);
      this.#queries.get(replyTo)?.settle(err);
      const request = this.#requests.get(replyTo);
      if (request?.kind === 'refresh') {
        this.#requests.delete(replyTo);
        this.#refreshInFlight = false;
      } else if (request?.kind === 'subscribe') {
        this.#onSubscribeRefused(replyTo, request.subs, err);
      }
    }
    this.#emitError(err);
  }

  /** A subscribe request (or one channel of it) was refused. */
  #onSubscribeRefused(requestId: string, subs: Subscription[], err: SignalboxError): void {
    const channel = err.details.channel;
    // An error naming a channel precedes the request's confirmation; one that does not ends the request.
    const targets = typeof channel === 'string' ? subs.filter((s) => s.channel === channel) : subs;
    if (typeof channel !== 'string') this.#requests.delete(requestId);
    let retry = false;
    for (const sub of targets) {
      if (this.#subs.get(sub.channel) !== sub || sub._requestId() !== requestId) continue;
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
      const batchSubs = batch.map((e) => this.#subs.get(e.channel)).filter((s): s is Subscription => s !== undefined);
      this.#requests.set(id, { kind: 'subscribe', subs: batchSubs });
      for (const s of batchSubs) s._requested(id);
      this.#send({ kind: 'subscribe', id, channels: batch });
    }
  }

  #writePublish(entry: PendingPublish): void {
    const req: ClientRequest = { kind: 'publish', id: entry.id, channel: entry.channel, data: entry.data };
    if (entry.type !== undefined) req.type = entry.type;
    if (!this.#send(req)) return;
    entry.timer = clear(entry.timer);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      this.#settlePublish(entry, new SignalboxError(ClientErrorCode.TIMEOUT, `No ack within ${entry.timeout} ms`, { channel: entry.channel, requestId: entry.id }));
    }, entry.timeout);
  }

  #settlePublish(entry: PendingPublish, outcome: PublishAck | SignalboxError): void {
    if (this.#pending.get(entry.id) !== entry) return;
    this.#pending.delete(entry.id);
    entry.timer = clear(entry.timer);
    if (outcome instanceof SignalboxError) entry.reject(outcome);
    else entry.resolve(outcome);
  }

  /** Writes a request on the current transport; false when there is none open. */
  #send(req: ClientRequest): boolean {
    const transport = this.#transport;
    const dialect = this.#dialect;
    if (!transport || !dialect) return false;
    const frame = dialect.encode(req);
    if (frame === undefined) return true;
    return transport.send(JSON.stringify(frame));
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
