/**
 * The two endpoint dialects, seen from the client: how to write each request, and how to read
 * each server message into the one {@link ServerMessage} shape handlers receive.
 *
 * Shapes mirror `@signalbox/protocol`'s prp.ts and prd.ts (the source of truth); only types are
 * imported from it, so the browser bundle does not carry the protocol's server-side decoders.
 */
import type { StreamPosition } from '@signalbox/protocol';
import type { ServerMessage } from './events.js';

export type DialectName = 'prp' | 'prd';

export interface SubscribeEntry {
  channel: string;
  since?: StreamPosition;
}

/** A request, before a dialect shapes it. */
export type ClientRequest =
  | { kind: 'subscribe'; id: string; channels: SubscribeEntry[] }
  | { kind: 'unsubscribe'; id: string; channels: string[] }
  | { kind: 'publish'; id: string; channel: string; type?: string; data: unknown }
  | { kind: 'history'; id: string; channel: string; since?: StreamPosition; limit?: number }
  | { kind: 'presence'; id: string; channel: string }
  | { kind: 'refresh'; id: string; token: string }
  | { kind: 'ping'; id: string }
  | { kind: 'pong' };

export interface Dialect {
  readonly name: DialectName;
  /**
   * Splits subscribe entries into requests the endpoint accepts: PRD-035 carries `since` for a
   * single channel only; both cap a request at 1000 channels.
   */
  batchSubscribe(entries: SubscribeEntry[]): SubscribeEntry[][];
  /** The frame to send as JSON; undefined when the dialect has nothing to send for it. */
  encode(req: ClientRequest): unknown;
  /** Reads one decoded frame; null when it is not a message of this dialect. */
  normalize(frame: unknown): ServerMessage | null;
}

const MAX_CHANNELS_PER_REQUEST = 1000;

function chunk<T>(list: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** Copies the optional fields a message may carry, only when they have the right type. */
function withOptional(msg: ServerMessage, raw: Record<string, unknown>): ServerMessage {
  if (typeof raw.channel === 'string') msg.channel = raw.channel;
  if (typeof raw.offset === 'number') msg.offset = raw.offset;
  if (typeof raw.epoch === 'string') msg.epoch = raw.epoch;
  if (typeof raw.replyTo === 'string') msg.replyTo = raw.replyTo;
  return msg;
}

/** The optional fields of a history request, the same in both dialects. */
function historyParams(req: Extract<ClientRequest, { kind: 'history' }>): { since?: StreamPosition; limit?: number } {
  const out: { since?: StreamPosition; limit?: number } = {};
  if (req.since) out.since = { epoch: req.since.epoch, offset: req.since.offset };
  if (req.limit !== undefined) out.limit = req.limit;
  return out;
}

/** `/v1/ws/prps`: client `{id, action, payload}`, server `{id, type, timestamp, data}`. */
export const prpDialect: Dialect = {
  name: 'prp',
  batchSubscribe: (entries) => chunk(entries, MAX_CHANNELS_PER_REQUEST),
  encode(req) {
    switch (req.kind) {
      case 'subscribe':
        return {
          id: req.id, action: 'subscribe',
          payload: { channels: req.channels.map((c) => (c.since ? { channel: c.channel, since: { epoch: c.since.epoch, offset: c.since.offset } } : c.channel)) },
        };
      case 'unsubscribe':
        return { id: req.id, action: 'unsubscribe', payload: { channels: req.channels } };
      case 'publish':
        return { id: req.id, action: 'publish', payload: req.type === undefined ? { channel: req.channel, data: req.data } : { channel: req.channel, type: req.type, data: req.data } };
      case 'history':
        return { id: req.id, action: 'history', payload: { channel: req.channel, ...historyParams(req) } };
      case 'presence':
        return { id: req.id, action: 'presence', payload: { channel: req.channel } };
      case 'refresh':
        return { id: req.id, action: 'refresh', payload: { token: req.token } };
      case 'ping':
        return { id: req.id, action: 'ping' };
      case 'pong':
        // PRP heartbeats need no answer: nothing to send.
        return undefined;
    }
  },
  normalize(frame) {
    if (!isObject(frame) || typeof frame.type !== 'string') return null;
    const msg: ServerMessage = {
      id: str(frame.id) ?? '',
      type: frame.type,
      timestamp: str(frame.timestamp) ?? '',
      data: frame.data,
    };
    if (isObject(frame.metadata)) msg.metadata = frame.metadata as ServerMessage['metadata'];
    return withOptional(msg, frame);
  },
};

/** `/ws` (PRD-035): `{type, channel?, data, id?, timestamp}` both ways; server replies are mostly `ack`s. */
export const prdDialect: Dialect = {
  name: 'prd',
  batchSubscribe(entries) {
    const single = entries.filter((e) => e.since !== undefined).map((e) => [e]);
    const plain = entries.filter((e) => e.since === undefined);
    return [...chunk(plain, MAX_CHANNELS_PER_REQUEST), ...single];
  },
  encode(req) {
    switch (req.kind) {
      case 'subscribe': {
        const only = req.channels.length === 1 ? req.channels[0] : undefined;
        if (only) return { type: 'subscribe', id: req.id, channel: only.channel, data: only.since ? { since: { epoch: only.since.epoch, offset: only.since.offset } } : {} };
        return { type: 'subscribe', id: req.id, data: { channels: req.channels.map((c) => c.channel) } };
      }
      case 'unsubscribe':
        return req.channels.length === 1
          ? { type: 'unsubscribe', id: req.id, channel: req.channels[0], data: {} }
          : { type: 'unsubscribe', id: req.id, data: { channels: req.channels } };
      case 'publish':
        return req.type === undefined
          ? { type: 'message', id: req.id, channel: req.channel, data: req.data }
          : { type: 'message', id: req.id, channel: req.channel, event: req.type, data: req.data };
      case 'history':
        return { type: 'history', id: req.id, channel: req.channel, data: historyParams(req) };
      case 'presence':
        return { type: 'presence', id: req.id, channel: req.channel, data: {} };
      case 'refresh':
        return { type: 'refresh', id: req.id, data: { token: req.token } };
      case 'ping':
        return { type: 'ping', id: req.id, data: {} };
      case 'pong':
        return { type: 'pong', data: {} };
    }
  },
  normalize(frame) {
    if (!isObject(frame) || typeof frame.type !== 'string') return null;
    const id = str(frame.id) ?? '';
    const timestamp = str(frame.timestamp) ?? '';
    const data = isObject(frame.data) ? frame.data : {};
    const make = (type: string, d: unknown): ServerMessage => withOptional({ id, type, timestamp, data: d }, frame);
    switch (frame.type) {
      case 'message': {
        // A publication (event type in `event`), or a presence change (no offset).
        const event = str(frame.event) ?? 'message';
        if (event === 'presence.joined' || event === 'presence.left') {
          const channel = str(frame.channel) ?? '';
          return make(event, { channel, member: data.member });
        }
        return make(event, frame.data);
      }
      case 'ack': {
        const { action, ...rest } = data;
        switch (action) {
          case 'connect':
            return make('connection.established', rest);
          case 'subscribe':
            return make('subscription.confirmed', { subscribedChannels: rest.subscribedChannels ?? [], channels: rest.channels });
          case 'unsubscribe':
            return make('unsubscription.confirmed', { unsubscribedChannels: rest.unsubscribedChannels ?? [] });
          case 'message':
            return make('ack', rest);
          case 'refresh':
            return make('token.refreshed', { expiresAt: rest.expiresAt ?? null });
          case 'history':
            return make('history', { channel: str(frame.channel), ...rest });
          case 'presence':
            return make('presence', { channel: str(frame.channel), ...rest });
          default:
            return make('ack', rest);
        }
      }
      case 'ping':
        // The server's heartbeat.
        return make('heartbeat', { serverTime: str(data.serverTime) ?? timestamp });
      case 'pong':
        return make('pong', undefined);
      case 'error': {
        // PRD-035 has no token_expired type: the gateway sends an error with code TOKEN_EXPIRED and
        // the grace period in details, without replyTo. A handshake refusal has no graceMs.
        const details = isObject(data.details) ? data.details : {};
        if (data.code === 'TOKEN_EXPIRED' && typeof details.graceMs === 'number' && frame.replyTo === undefined) {
          return make('token_expired', { expiredAt: str(details.expiredAt) ?? '', graceMs: details.graceMs });
        }
        return make('error', frame.data);
      }
      case 'unsubscribe':
        // Server-initiated: the subscription was removed.
        return make('subscription.removed', { channel: str(frame.channel) ?? '', code: data.code, message: data.message });
      default:
        return make(frame.type, frame.data);
    }
  },
};

/** The dialect of an endpoint: explicit, or from the URL path (`/ws` is PRD-035; anything else PRP). */
export function dialectFor(option: DialectName | 'auto', url: string): Dialect {
  if (option === 'prp') return prpDialect;
  if (option === 'prd') return prdDialect;
  let path = '';
  try {
    path = new URL(url).pathname;
  } catch {
    // Malformed URL: the constructor will report it; the dialect does not matter.
  }
  return /\/ws\/?$/.test(path) ? prdDialect : prpDialect;
}
