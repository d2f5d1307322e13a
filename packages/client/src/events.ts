/**
 * The typed event map: the gateway's system events, the client's own (`error`, `token_expired`,
 * `$state`), and publications typed by an application's own map (the PRP API document's is in
 * `prp.ts`, entry `@signalbox/client/prp`). Every server message is normalized to one
 * shape, {@link ServerMessage}, whichever endpoint dialect it came from.
 */
import type { ErrorInfo, PresenceMember, Publisher, StreamPosition, SubscribeOutcome, UnrecoverableReason } from '@signalbox/protocol';

export type { Publisher } from '@signalbox/protocol';
import type { SignalboxError } from './errors.js';

/** A message from the server, in the PRP API document's shape (PRD-035 messages are normalized to it). */
export interface ServerMessage<T = unknown> {
  id: string;
  /** Event type, e.g. `prp.created` or `heartbeat`. */
  type: string;
  /** ISO 8601. */
  timestamp: string;
  data: T;
  /** For channel events. */
  channel?: string;
  /** For publications: position in the channel's stream. */
  offset?: number;
  epoch?: string;
  /** For replies: the id of the request answered. */
  replyTo?: string;
  /**
   * For publications: who published, as the gateway authenticated it (never the payload's claim):
   * a client (`via: 'ws'`, its `sub` and connection), the HTTP API (`via: 'http'`, the key's name,
   * and `sub` when a backend published on someone's behalf), or the gateway itself.
   */
  publisher?: Publisher;
  /** For publications: on an append, the id of the message it appends to (docs/protocol.md, "Appends"). */
  appendTo?: string;
  /** For a message of a compacted history read: the offset of the last append folded into `data`. */
  through?: number;
  metadata?: { version: string; source: string };
}

/** A publication on a channel: a {@link ServerMessage} with its stream position. */
export interface PublicationMessage<T = unknown> extends ServerMessage<T> {
  channel: string;
  offset: number;
  epoch: string;
}

// ---- System events -----------------------------------------------------------------------------

/** `connection.established`: sent once authenticated. */
export interface ConnectionEstablishedData { connectionId: string; serverVersion: string; features: string[] }
/** `heartbeat`: the gateway's periodic sign of life. */
export interface HeartbeatData { serverTime: string }
/** `subscription.confirmed`: the channels now live, with their positions and recovery outcome. */
export interface SubscriptionConfirmedData { subscribedChannels: string[]; channels?: SubscribeOutcome[] }
/** `unsubscription.confirmed`. */
export interface UnsubscriptionConfirmedData { unsubscribedChannels: string[] }
/** `ack` of a publish: where the publication landed; `duplicate` when its id was seen before. */
export interface AckData { id: string; channel: string; offset: number; epoch: string; duplicate: boolean }
/** `token.refreshed`: the in-band refresh was accepted. */
export interface TokenRefreshedData { expiresAt: string | null }
/** `token_expired`: refresh within `graceMs` or be closed with 4002. */
export interface TokenExpiredData { expiredAt: string; graceMs: number }
/** `presence.joined` / `presence.left`. */
export interface PresenceChangeData { channel: string; member: PresenceMember }
/** `subscription.removed`: the gateway ended a subscription (e.g. access revoked). */
export interface SubscriptionRemovedData { channel: string; code: string; message: string }

// ---- RPC ---------------------------------------------------------------------------------------

/** The identity of an RPC's caller, as the gateway authenticated it (Publisher-shaped: a client over `ws`, or an HTTP key). */
export type RpcCaller = Publisher;

/** `rpc.request`: a call routed to this client as a channel's handler. Not a publication (no offset). */
export interface RpcRequestData {
  /** The gateway's id of the call; the reply names it. */
  callId: string;
  channel: string;
  method: string;
  params: unknown;
  caller: RpcCaller;
  /** Time left, ms, before the gateway answers the caller `RPC_TIMEOUT`. */
  timeoutMs: number;
}

/** What a method handler learns about the call besides its params. */
export type RpcContext = Omit<RpcRequestData, 'params'>;

/** `rpc.handling`: a registration accepted; `methods` null when every method of the channel is handled. */
export interface RpcHandlingData { channel: string; methods: string[] | null }
/** `rpc.unhandled`: a registration withdrawn. */
export interface RpcUnhandledData { channel: string }
/** `rpc.result`: the handler's answer to a call. */
export interface RpcResultData { channel: string; method: string; result: unknown }

/** Messages the gateway sends on its own account, by type. */
export interface SystemMessages {
  'connection.established': ServerMessage<ConnectionEstablishedData>;
  heartbeat: ServerMessage<HeartbeatData>;
  pong: ServerMessage<undefined>;
  'subscription.confirmed': ServerMessage<SubscriptionConfirmedData>;
  'unsubscription.confirmed': ServerMessage<UnsubscriptionConfirmedData>;
  ack: ServerMessage<AckData>;
  'token.refreshed': ServerMessage<TokenRefreshedData>;
  'presence.joined': ServerMessage<PresenceChangeData>;
  'presence.left': ServerMessage<PresenceChangeData>;
  'subscription.removed': ServerMessage<SubscriptionRemovedData>;
  'rpc.handling': ServerMessage<RpcHandlingData>;
  'rpc.unhandled': ServerMessage<RpcUnhandledData>;
  'rpc.result': ServerMessage<RpcResultData>;
  'rpc.request': ServerMessage<RpcRequestData>;
}

// ---- Client events -----------------------------------------------------------------------------

/** The client's connection states. */
export type ClientState = 'disconnected' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** Why the state changed. */
export type TransitionReason =
  /** `connect()` was called. */
  | 'connect_called'
  /** `disconnect()` was called. */
  | 'disconnect_called'
  /** The server confirmed the connection (`connection.established`). */
  | 'established'
  /** The socket closed; `code` is its close code (1006 when it never opened). */
  | 'transport_closed'
  /** The socket did not open and authenticate within `connectTimeout`. */
  | 'connect_timeout'
  /** Nothing arrived within `pingInterval + pongTimeout`: a half-open connection. */
  | 'heartbeat_timeout'
  /** A publication skipped offsets; reconnecting lets recovery fill the gap. */
  | 'insufficient_state'
  /** `getToken()` failed; retried with backoff. */
  | 'token_unavailable'
  /** The server refused the token (4001) and no different token is available. */
  | 'auth_failed'
  /** The token expired (4002) and no different token is available. */
  | 'token_expired'
  /** The close code says reconnecting cannot succeed (e.g. 1000, 4008). */
  | 'server_closed'
  /**
   * Every URL refused the WebSocket upgrade itself with HTTP 403 (e.g. an Origin allow-list) or
   * 404 (a wrong path): retrying cannot succeed. Seen in Node (`ws` reports the status); a browser
   * does not tell, and keeps retrying with backoff.
   */
  | 'upgrade_refused'
  /** `maxReconnectAttempts` consecutive attempts failed. */
  | 'max_attempts'
  /** `reconnect: false` and the connection was lost or could not be made. */
  | 'reconnect_disabled';

/** One state transition, emitted as `$state`. */
export interface StateChange {
  from: ClientState;
  to: ClientState;
  reason: TransitionReason;
  /** The WebSocket close code involved, if any. */
  code?: number;
  /** The close reason or error message involved, if any. */
  message?: string;
  /** When `to` is `reconnecting`: the attempt about to be made (1-based) and the delay before it, in ms. */
  attempt?: number;
  delay?: number;
}

/** Handlers receive this for `token_expired` (the server's notice that the token passed `exp`). */
export type TokenExpiredEvent = TokenExpiredData;

/** Events of a subscription: see `Subscription.on`. */
export interface SubscribedEvent {
  channel: string;
  /** The last position seen after this confirmation (undefined if the server reports none). */
  position?: StreamPosition;
  /** Present when the subscription asked to recover from a position. */
  recovered?: boolean;
  reason?: UnrecoverableReason;
  /** How many missed publications follow (when recovered). */
  missed?: number;
  /** True when this is a resubscription (after a reconnect or a retry). */
  resubscribed: boolean;
}

/** Emitted on a subscription when the server could not replay what was missed: reload state. */
export interface RecoveryFailedEvent {
  channel: string;
  reason: UnrecoverableReason | 'unknown';
  /** The position the stream continues from. */
  position?: StreamPosition;
}

/** Emitted on a subscription when it ends. */
export interface UnsubscribedEvent {
  channel: string;
  reason: 'unsubscribe_called' | 'removed_by_server' | 'refused';
  code?: string;
  message?: string;
}

/** Events of a `Subscription`, by name. */
export interface SubscriptionEvents<T = unknown> {
  publication: PublicationMessage<T>;
  subscribed: SubscribedEvent;
  recovery_failed: RecoveryFailedEvent;
  unsubscribed: UnsubscribedEvent;
  error: SignalboxError;
}

/**
 * Everything `client.on(type, handler)` can listen to, typed. `E` maps publication event types to
 * their data (default: none; e.g. `PrpEventData` from `@signalbox/client/prp`). Any other string is
 * accepted too, with an untyped {@link ServerMessage}.
 */
export type ClientEvents<E extends object = Record<never, never>> = { [K in keyof E]: PublicationMessage<E[K]> } & SystemMessages & {
  /** Every message from the server, after deduplication. */
  '*': ServerMessage;
  /** Server errors and the client's own; not called twice for one error. */
  error: SignalboxError;
  /** The server says the token expired; refresh within `graceMs` or be closed (4002). */
  token_expired: TokenExpiredEvent;
  /**
   * Every state transition. `$` keeps it apart from publication types, which must start with a
   * letter, so no publisher can impersonate it.
   */
  $state: StateChange;
  /**
   * A publish the client gave up on (its promise rejects with the same error): refused for good,
   * retries or their deadline exhausted, no ack in time, the queue full, or the client stopping.
   */
  undelivered: UndeliveredPublish;
};

/** What `undelivered` reports: which publish, and why. */
export interface UndeliveredPublish {
  channel: string;
  /** The publish's id (its idempotency key). */
  id: string;
  /** The message it would have appended to, for an append. */
  appendTo?: string;
  data: unknown;
  error: SignalboxError;
}

/** The error object of the server's `error` message, as the protocol defines it. */
export type ServerErrorInfo = ErrorInfo;
