/**
 * The internal model both dialects decode into (commands) and encode from (events).
 * Endpoint-specific shapes live in prp.ts and prd.ts only.
 */
import type { ErrorCode } from './errors.js';

/** A point in a channel's stream: `offset` is the last publication seen; `epoch` names the stream's lifetime. */
export interface StreamPosition {
  epoch: string;
  offset: number;
}

/** A publication on a channel, as stored in history and delivered to subscribers. */
export interface Publication {
  /** Publication id: the publisher's idempotency key, or one the gateway generated. */
  id: string;
  channel: string;
  /** Event type, e.g. `prp.created`; `message` when the publisher gave none. */
  type: string;
  /** JSON value; may contain `Uint8Array` when published over MessagePack. */
  data: unknown;
  offset: number;
  epoch: string;
  /** Milliseconds since the Unix epoch, set by the broker when the publication was appended. */
  time: number;
  /** Who published, as the gateway authenticated it (never taken from the payload). */
  publisher?: Publisher;
  /**
   * Present on an append: the id of the message (an earlier publication of the same channel and
   * publisher) whose data this one is applied to with {@link applyAppend}. See docs/protocol.md, "Appends".
   */
  appendTo?: string;
  /**
   * Present on a message of a compacted history read (history without `since`) that had appends:
   * the offset of the last append folded into `data`. The reader goes on with live publications
   * whose offset is greater.
   */
  through?: number;
}

/**
 * The fold rule of appends: the data of a message after `append` (an append's data) is applied to
 * `base` (its data so far). Both strings: concatenated. Both plain objects: for each field of the
 * append, a string onto a string is concatenated, anything else sets (replaces) the field; fields
 * the append does not name are kept. Any other combination: the append's data replaces the whole.
 * Never mutates either argument.
 */
export function applyAppend(base: unknown, append: unknown): unknown {
  if (typeof base === 'string' && typeof append === 'string') return base + append;
  if (isPlainRecord(base) && isPlainRecord(append)) {
    const out: Record<string, unknown> = { ...base };
    for (const [k, v] of Object.entries(append)) {
      const prev = Object.prototype.hasOwnProperty.call(out, k) ? out[k] : undefined;
      // defineProperty, not assignment: a field named `__proto__` is data, never the prototype.
      Object.defineProperty(out, k, { value: typeof prev === 'string' && typeof v === 'string' ? prev + v : v, writable: true, enumerable: true, configurable: true });
    }
    return out;
  }
  return append;
}

function isPlainRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/**
 * Who published a publication, set by the gateway from what it authenticated:
 * - `ws`: a client connection, its token's subject and the connection's id;
 * - `http`: the HTTP API, the name of the key used and, when the backend published on someone's
 *   behalf (`as`), that subject in `sub`;
 * - `gateway`: the gateway itself (`service`: `presence` for joins and leaves, `metrics` for live metrics).
 */
export type Publisher =
  | { via: 'ws'; sub: string; client: string }
  | { via: 'http'; key: string; sub?: string }
  | { via: 'gateway'; service: string };

/** A publisher read back from storage or the wire; anything else is not one. */
export function isPublisher(v: unknown): v is Publisher {
  if (typeof v !== 'object' || v === null) return false;
  const p = v as Record<string, unknown>;
  const str = (x: unknown) => typeof x === 'string' && x.length > 0 && x.length <= 256;
  switch (p.via) {
    case 'ws': return str(p.sub) && str(p.client);
    case 'http': return str(p.key) && (p.sub === undefined || str(p.sub));
    case 'gateway': return str(p.service);
    default: return false;
  }
}

export type Dialect = 'prp' | 'prd';
export type Encoding = 'json' | 'msgpack';

export interface ChannelRequest {
  channel: string;
  /** Last position the client saw, to recover what it missed. */
  since?: StreamPosition;
}

export type Command =
  | { kind: 'subscribe'; requestId?: string; channels: ChannelRequest[] }
  | { kind: 'unsubscribe'; requestId?: string; channels: string[] }
  /** `appendTo`: the id of an earlier message of the same channel and publisher this publication appends to. */
  | { kind: 'publish'; requestId?: string; channel: string; type: string; data: unknown; appendTo?: string }
  | { kind: 'history'; requestId?: string; channel: string; since?: StreamPosition; limit?: number }
  | { kind: 'presence'; requestId?: string; channel: string }
  | { kind: 'refresh'; requestId?: string; token: string }
  | { kind: 'ping'; requestId?: string }
  /** A PRD-035 client answering a server `ping`; nothing to do. */
  | { kind: 'pong'; requestId?: string }
  /** Register as the channel's RPC handler, for these methods (null: every method). */
  | { kind: 'rpc_handle'; requestId?: string; channel: string; methods: string[] | null }
  | { kind: 'rpc_unhandle'; requestId?: string; channel: string }
  | { kind: 'rpc_call'; requestId?: string; channel: string; method: string; params: unknown; timeoutMs?: number }
  /** A handler's answer to an `rpc_request`: a result, or an error of its own. */
  | { kind: 'rpc_reply'; requestId?: string; callId: string; result?: unknown; error?: { code?: string; message: string } };

/** Why a requested recovery could not be served exactly. */
export type UnrecoverableReason =
  | 'epoch_changed'
  | 'position_ahead'
  | 'too_far_behind'
  | 'history_expired'
  | 'no_history'
  /** What follows the position was dropped to keep the gateway's total history budget (memory pressure). */
  | 'history_evicted'
  /** A missed publication cannot be encoded for this connection (its data does not serialize). */
  | 'unencodable';

export interface SubscribeOutcome {
  channel: string;
  /** Current stream position at the moment the subscription went live. */
  position: StreamPosition;
  /** Present when the request carried `since`. */
  recovered?: boolean;
  /** Present when `recovered` is false. */
  reason?: UnrecoverableReason;
  /** How many missed publications follow this confirmation (when recovered). */
  missed?: number;
  /**
   * `latest` on a latest-wins channel: while this subscriber is behind it gets only the newest
   * publication per key, so offsets may skip (never go back). Absent: every publication, in order.
   */
  delivery?: 'latest';
}

export interface ErrorInfo {
  code: ErrorCode;
  message: string;
  details: {
    requestId?: string;
    action?: string;
    channel?: string;
    [key: string]: unknown;
  };
}

export interface PresenceMember {
  clientId: string;
  userId: string;
  info?: unknown;
}

/** Everything a server sends, before a dialect shapes it. */
export type ServerEvent =
  /** `serverVersion` is the gateway's release (`SERVER_VERSION` in @signalbox/server), not a protocol version. */
  | { kind: 'established'; connectionId: string; serverVersion: string; features: string[] }
  | { kind: 'heartbeat'; serverTime: string }
  | { kind: 'pong'; replyTo?: string }
  | { kind: 'subscribed'; replyTo?: string; channels: SubscribeOutcome[] }
  | { kind: 'unsubscribed'; replyTo?: string; channels: string[] }
  | { kind: 'ack'; replyTo?: string; publication: { id: string; channel: string; offset: number; epoch: string }; duplicate: boolean }
  | { kind: 'error'; replyTo?: string; error: ErrorInfo }
  | { kind: 'token_expired'; expiredAt: string; graceMs: number }
  | { kind: 'refreshed'; replyTo?: string; expiresAt: string | null }
  /** `next`: the page was cut short by size; continue with `since: next`. */
  | { kind: 'history'; replyTo?: string; channel: string; publications: Publication[]; position: StreamPosition; next?: StreamPosition }
  | { kind: 'presence'; replyTo?: string; channel: string; members: PresenceMember[] }
  | { kind: 'presence_change'; channel: string; joined?: PresenceMember; left?: PresenceMember }
  | { kind: 'unsubscribed_by_server'; channel: string; code: ErrorCode; message: string }
  | { kind: 'rpc_handling'; replyTo?: string; channel: string; methods: string[] | null }
  | { kind: 'rpc_unhandled'; replyTo?: string; channel: string }
  | { kind: 'rpc_result'; replyTo?: string; channel: string; method: string; result: unknown }
  /** A call routed to this connection, its channel's handler. `timeoutMs`: what is left of the caller's timeout. */
  | { kind: 'rpc_request'; callId: string; channel: string; method: string; params: unknown; caller: Publisher; timeoutMs: number };

/** Event types a publisher may not use: they would impersonate system events. */
export const RESERVED_EVENT_TYPES: ReadonlySet<string> = new Set([
  'connection.established', 'heartbeat', 'pong', 'ping', 'subscription.confirmed', 'unsubscription.confirmed',
  'ack', 'error', 'token_expired', 'token.refreshed', 'history', 'presence', 'presence.joined', 'presence.left',
  'subscription.removed', 'subscribe', 'unsubscribe',
]);

const EVENT_TYPE_RE = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/;

/** A publication's event type: 1-64 chars, letter first, then letters, digits, `_ . : -`; not a reserved system type. */
export function isValidEventType(type: unknown): type is string {
  return typeof type === 'string' && EVENT_TYPE_RE.test(type) && !RESERVED_EVENT_TYPES.has(type);
}

/** A client-supplied message id: 1-128 printable ASCII characters. */
export function isValidMessageId(id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= 128 && /^[\x21-\x7e]+$/.test(id);
}

export function isStreamPosition(v: unknown): v is StreamPosition {
  if (typeof v !== 'object' || v === null) return false;
  const p = v as Record<string, unknown>;
  return typeof p.epoch === 'string' && p.epoch.length > 0 && p.epoch.length <= 64 &&
    typeof p.offset === 'number' && Number.isSafeInteger(p.offset) && p.offset >= 0;
}

/** An RPC method name: 1-64 characters, letter first, then letters, digits, `_ . : -`. */
export function isValidMethodName(m: unknown): m is string {
  return typeof m === 'string' && EVENT_TYPE_RE.test(m);
}

/** Most methods one registration may list. */
export const MAX_RPC_METHODS = 64;
