/**
 * The client's public option and result types, and the defaults every option falls back to.
 * Kept apart from the state machine so the config surface can be read (and documented) on its own.
 */
import type { PresenceMember, StreamPosition } from '@signalbox/protocol';
import type { DialectName } from './dialect.js';
import type { AckData, PublicationMessage } from './events.js';
import type { WebSocketConstructor } from './transport.js';

/** Decodes binary frames; pass `msgpack` from `@signalbox/client/msgpack` to receive MessagePack. */
export interface FrameFormat {
  readonly name: 'msgpack';
  decode(bytes: Uint8Array): unknown;
  /**
   * Encodes a request that carries bytes (a `Uint8Array` in `publish` data) as a binary frame, so the
   * bytes travel as bytes; `undefined` for a request without any (it goes as JSON text).
   */
  encode?(value: unknown): Uint8Array<ArrayBuffer> | undefined;
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
  /**
   * Writes of one publish refused with `RATE_LIMITED` or `UNAVAILABLE` (the first included) before
   * it is given up: its promise rejects and `undelivered` reports it. Default 12.
   */
  publishRetryAttempts: number;
  /** How long after its first refusal a publish may still be retried, ms. Default 30000. */
  publishRetryDeadline: number;
  /** Backoff base of those retries, ms: retry n waits uniformly in [0, min(max, base * 2^n)], at least the error's `retryAfterMs`. Default 50. */
  publishRetryInterval: number;
  /** Backoff ceiling of those retries, ms. Default 2000. */
  publishRetryMaxInterval: number;
  /**
   * Publishes of one channel on the wire at once (the next is written when one is acked).
   * Default 1: a refused publish is never overtaken by a later one of its channel. Larger values
   * pipeline (more throughput on a long round trip) but a refusal may then be overtaken.
   */
  publishWindow: number;
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
  /**
   * Append to an earlier message of this channel that this publisher (same token subject)
   * published, named by its publication id: see docs/protocol.md, "Appends". A string `data`
   * concatenates onto a string message; an object's string fields concatenate, other fields replace.
   */
  appendTo?: string;
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
  /**
   * Present when the gateway cut the page short for size (SIGNALBOX_MAX_REPLY_SIZE): the position
   * of its last publication; call `history(channel, {since: next})` for the rest.
   */
  next?: StreamPosition;
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

/**
 * Every option's default except `url`, which depends on where the client runs (see {@link defaultUrl}).
 * `docs/client.md` lists the same values.
 */
export const DEFAULTS: Readonly<Omit<ClientConfig, 'url'>> = Object.freeze({
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
  publishRetryAttempts: 12,
  publishRetryDeadline: 30_000,
  publishRetryInterval: 50,
  publishRetryMaxInterval: 2_000,
  publishWindow: 1,
  refreshMargin: 30_000,
  dialect: 'auto',
  tokenTransport: 'subprotocol',
  format: 'json',
  WebSocket: undefined,
});

/** Same origin `/v1/ws/prps` in a page served over http(s); `ws://localhost:8080/v1/ws/prps` elsewhere. */
export function defaultUrl(): string {
  const loc = (globalThis as { location?: { protocol?: string; host?: string } }).location;
  if (loc && (loc.protocol === 'https:' || loc.protocol === 'http:') && loc.host) {
    return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/v1/ws/prps`;
  }
  return 'ws://localhost:8080/v1/ws/prps';
}

/** The resolved config: the defaults, overridden by every option given that is not `undefined`. */
export function resolveConfig(options: SignalboxClientOptions): ClientConfig {
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as SignalboxClientOptions;
  return { url: defaultUrl(), ...DEFAULTS, ...defined };
}
