/**
 * The two endpoint dialects, seen from the client: how to write each request, and how to read
 * each server message into the one {@link ServerMessage} shape handlers receive, classified as a
 * typed {@link Inbound} so the client's handlers read typed fields. Every check of an untrusted
 * frame's shape is here; nothing past `normalize` sees `unknown`.
 *
 * Shapes mirror `@signalbox/protocol`'s prp.ts and prd.ts (the source of truth); only types are
 * imported from it, so the browser bundle does not carry the protocol's server-side decoders.
 */
import type { ErrorCode, PresenceMember, Publisher, StreamPosition, UnrecoverableReason } from '@signalbox/protocol';
import type { SignalboxErrorDetails } from './errors.js';
import type { PublicationMessage, RpcRequestData, ServerMessage } from './events.js';

export type DialectName = 'prp' | 'prd';

export interface SubscribeEntry {
  channel: string;
  since?: StreamPosition;
}

/** A request, before a dialect shapes it. */
export type ClientRequest =
  | { kind: 'subscribe'; id: string; channels: SubscribeEntry[] }
  | { kind: 'unsubscribe'; id: string; channels: string[] }
  /** `appendTo`: the id of an earlier message of the channel, by the same publisher, this one appends to. */
  | { kind: 'publish'; id: string; channel: string; type?: string; data: unknown; appendTo?: string }
  | { kind: 'history'; id: string; channel: string; since?: StreamPosition; limit?: number }
  | { kind: 'presence'; id: string; channel: string }
  | { kind: 'refresh'; id: string; token: string }
  | { kind: 'ping'; id: string }
  | { kind: 'pong' }
  /** Register as the channel's handler; `methods` null for every method. */
  | { kind: 'rpc.handle'; id: string; channel: string; methods: string[] | null }
  | { kind: 'rpc.unhandle'; id: string; channel: string }
  /** `params` undefined is left out of the frame. */
  | { kind: 'rpc.call'; id: string; channel: string; method: string; params?: unknown; timeoutMs: number }
  /** A handler's answer: exactly one of `result` and `error`. */
  | { kind: 'rpc.reply'; callId: string; outcome: RpcOutcome };

/** What a handler answers a call with. */
export type RpcOutcome = { result: unknown } | { error: { code: string; message: string } };

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
  normalize(frame: unknown): Inbound | null;
}

/** One channel of a subscription confirmation, with its position and recovery outcome when the gateway gave them. */
export interface ConfirmedChannel {
  channel: string;
  position?: StreamPosition;
  recovered?: boolean;
  reason?: UnrecoverableReason;
  missed?: number;
  /** `latest`: a latest-wins channel (offsets may skip while this client is behind). */
  delivery?: 'latest';
}

/**
 * A server message, classified. `message` is what handlers receive (`'*'` and by type); the other
 * fields are the same content, read and type-checked once. Checked in the order the client has
 * always dispatched them: a system type wins over a publication that happens to share its name.
 */
export type Inbound =
  | { kind: 'connection.established'; message: ServerMessage; connectionId: string | undefined }
  | { kind: 'heartbeat'; message: ServerMessage }
  | { kind: 'pong'; message: ServerMessage }
  | {
    kind: 'subscription.confirmed'; message: ServerMessage; replyTo: string | undefined;
    /** The confirmed channels, each with its outcome (`subscribedChannels`, or the outcomes' channels). */
    confirmed: ConfirmedChannel[];
  }
  | { kind: 'ack'; message: ServerMessage; replyTo: string | undefined; ack: { id?: string; channel?: string; offset: number; epoch: string; duplicate: boolean } }
  | { kind: 'history'; message: ServerMessage; replyTo: string | undefined; publications: PublicationMessage[]; position: StreamPosition | undefined; next: StreamPosition | undefined }
  | { kind: 'presence'; message: ServerMessage; replyTo: string | undefined; members: PresenceMember[] }
  | { kind: 'token.refreshed'; message: ServerMessage; replyTo: string | undefined; expiresAt: number | undefined }
  | { kind: 'subscription.removed'; message: ServerMessage; channel: string | undefined; code?: string; reason?: string }
  | {
    kind: 'error'; message: ServerMessage; code: ErrorCode; text: string; details: SignalboxErrorDetails;
    /** The request this error answers: `replyTo`, else `details.requestId`. */
    answers: string | undefined;
  }
  | { kind: 'token_expired'; message: ServerMessage; expiredAt: string; graceMs: number }
  | { kind: 'publication'; message: PublicationMessage }
  | { kind: 'rpc.handling'; message: ServerMessage; replyTo: string | undefined; channel: string | undefined; methods: string[] | null }
  | { kind: 'rpc.unhandled'; message: ServerMessage; replyTo: string | undefined; channel: string | undefined }
  | { kind: 'rpc.result'; message: ServerMessage; replyTo: string | undefined; result: unknown }
  /** A call for this client as a handler. Never a publication: one with an offset is classified as a publication. */
  | { kind: 'rpc.request'; message: ServerMessage; request: RpcRequestData }
  | { kind: 'other'; message: ServerMessage };

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

function readPosition(v: unknown): StreamPosition | undefined {
  if (!isObject(v) || typeof v.epoch !== 'string' || typeof v.offset !== 'number') return undefined;
  return { epoch: v.epoch, offset: v.offset };
}

function isPublication(msg: ServerMessage): msg is PublicationMessage {
  return typeof msg.channel === 'string' && typeof msg.offset === 'number' && typeof msg.epoch === 'string';
}

/** `data` when it is an object, else an empty one: the fields below are then simply absent. */
function fields(msg: ServerMessage): Record<string, unknown> {
  return isObject(msg.data) ? msg.data : {};
}

/**
 * Classifies a message read by a dialect. `read` is that dialect's reader, for the publications a
 * history reply carries.
 */
function classify(message: ServerMessage, read: (frame: unknown) => ServerMessage | null): Inbound {
  const replyTo = message.replyTo;
  switch (message.type) {
    case 'connection.established': {
      // A payload that is not an object still establishes the connection, with an empty id as before.
      const connectionId = isObject(message.data) ? str(message.data.connectionId) : '';
      return { kind: 'connection.established', message, connectionId };
    }
    case 'heartbeat':
      return { kind: 'heartbeat', message };
    case 'pong':
      return { kind: 'pong', message };
    case 'subscription.confirmed': {
      const d = fields(message);
      const outcomes = new Map<string, Record<string, unknown>>();
      if (Array.isArray(d.channels)) {
        for (const o of d.channels) if (isObject(o) && typeof o.channel === 'string') outcomes.set(o.channel, o);
      }
      const names = Array.isArray(d.subscribedChannels) ? d.subscribedChannels.filter((c): c is string => typeof c === 'string') : [...outcomes.keys()];
      const confirmed = names.map((channel): ConfirmedChannel => {
        const o = outcomes.get(channel);
        const c: ConfirmedChannel = { channel };
        const position = readPosition(o?.position);
        if (position) c.position = position;
        if (typeof o?.recovered === 'boolean') c.recovered = o.recovered;
        if (typeof o?.reason === 'string') c.reason = o.reason as UnrecoverableReason;
        if (typeof o?.missed === 'number') c.missed = o.missed;
        if (o?.delivery === 'latest') c.delivery = 'latest';
        return c;
      });
      return { kind: 'subscription.confirmed', message, replyTo, confirmed };
    }
    case 'ack': {
      const d = fields(message);
      const ack: Extract<Inbound, { kind: 'ack' }>['ack'] = {
        offset: typeof d.offset === 'number' ? d.offset : -1,
        epoch: str(d.epoch) ?? '',
        duplicate: d.duplicate === true,
      };
      if (typeof d.id === 'string') ack.id = d.id;
      if (typeof d.channel === 'string') ack.channel = d.channel;
      return { kind: 'ack', message, replyTo, ack };
    }
    case 'history': {
      const d = fields(message);
      const publications: PublicationMessage[] = [];
      for (const frame of Array.isArray(d.publications) ? d.publications : []) {
        const pub = read(frame);
        if (pub && isPublication(pub)) publications.push(pub);
      }
      return { kind: 'history', message, replyTo, publications, position: readPosition(d.position), next: readPosition(d.next) };
    }
    case 'presence': {
      const d = fields(message);
      const members = Array.isArray(d.members) ? d.members.filter((m): m is PresenceMember => isObject(m) && typeof m.clientId === 'string') : [];
      return { kind: 'presence', message, replyTo, members };
    }
    case 'token.refreshed': {
      const expiresAt = str(fields(message).expiresAt);
      return { kind: 'token.refreshed', message, replyTo, expiresAt: expiresAt === undefined ? undefined : Date.parse(expiresAt) };
    }
    case 'subscription.removed': {
      const d = fields(message);
      const removed: Extract<Inbound, { kind: 'subscription.removed' }> = { kind: 'subscription.removed', message, channel: str(d.channel) ?? message.channel };
      if (typeof d.code === 'string') removed.code = d.code;
      if (typeof d.message === 'string') removed.reason = d.message;
      return removed;
    }
    case 'error': {
      const d = fields(message);
      const details = (isObject(d.details) ? d.details : {}) as SignalboxErrorDetails;
      const code = (str(d.code) ?? 'INTERNAL_ERROR') as ErrorCode;
      return { kind: 'error', message, code, text: str(d.message) ?? code, details, answers: replyTo ?? str(details.requestId) };
    }
    case 'token_expired': {
      const d = fields(message);
      return { kind: 'token_expired', message, expiredAt: str(d.expiredAt) ?? '', graceMs: typeof d.graceMs === 'number' ? d.graceMs : 0 };
    }
    case 'rpc.handling':
    case 'rpc.unhandled':
    case 'rpc.result':
    case 'rpc.request': {
      // The gateway's RPC messages carry no offset; a publication that borrows the name stays a publication.
      const rpc = message.offset === undefined ? classifyRpc(message) : null;
      if (rpc) return rpc;
    }
  }
  return isPublication(message) ? { kind: 'publication', message } : { kind: 'other', message };
}

/** An RPC message of the gateway, or null when its fields are not what the protocol says. */
function classifyRpc(message: ServerMessage): Inbound | null {
  const replyTo = message.replyTo;
  const d = fields(message);
  const channel = str(d.channel) ?? message.channel;
  switch (message.type) {
    case 'rpc.handling': {
      const methods = Array.isArray(d.methods) ? d.methods.filter((m): m is string => typeof m === 'string') : null;
      return { kind: 'rpc.handling', message, replyTo, channel, methods };
    }
    case 'rpc.unhandled':
      return { kind: 'rpc.unhandled', message, replyTo, channel };
    case 'rpc.result':
      return { kind: 'rpc.result', message, replyTo, result: d.result };
    default: {
      const { callId, method, caller, timeoutMs } = d;
      if (typeof callId !== 'string' || typeof method !== 'string' || channel === undefined || !isPublisher(caller) || typeof timeoutMs !== 'number') return null;
      return { kind: 'rpc.request', message, request: { callId, channel, method, params: d.params, caller, timeoutMs } };
    }
  }
}

/** The fields of a call, the same in both dialects. */
function callParams(req: Extract<ClientRequest, { kind: 'rpc.call' }>): { method: string; params?: unknown; timeoutMs: number } {
  return req.params === undefined ? { method: req.method, timeoutMs: req.timeoutMs } : { method: req.method, params: req.params, timeoutMs: req.timeoutMs };
}

/** A publisher as the gateway writes it (see `Publisher`); the SDK keeps no runtime dependency on @signalbox/protocol. */
function isPublisher(v: unknown): v is Publisher {
  if (!isObject(v)) return false;
  switch (v.via) {
    case 'ws': return typeof v.sub === 'string' && typeof v.client === 'string';
    case 'http': return typeof v.key === 'string' && (v.sub === undefined || typeof v.sub === 'string');
    case 'gateway': return typeof v.service === 'string';
    default: return false;
  }
}

/** Copies the optional fields a message may carry, only when they have the right type. */
function withOptional(msg: ServerMessage, raw: Record<string, unknown>): ServerMessage {
  if (typeof raw.channel === 'string') msg.channel = raw.channel;
  if (typeof raw.offset === 'number') msg.offset = raw.offset;
  if (typeof raw.epoch === 'string') msg.epoch = raw.epoch;
  if (typeof raw.replyTo === 'string') msg.replyTo = raw.replyTo;
  if (isPublisher(raw.publisher)) msg.publisher = raw.publisher;
  if (typeof raw.appendTo === 'string') msg.appendTo = raw.appendTo;
  if (typeof raw.through === 'number') msg.through = raw.through;
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
        return {
          id: req.id, action: 'publish',
          payload: { channel: req.channel, ...(req.type === undefined ? {} : { type: req.type }), data: req.data, ...(req.appendTo === undefined ? {} : { appendTo: req.appendTo }) },
        };
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
      case 'rpc.handle':
        return { id: req.id, action: 'rpc.handle', payload: req.methods ? { channel: req.channel, methods: req.methods } : { channel: req.channel } };
      case 'rpc.unhandle':
        return { id: req.id, action: 'rpc.unhandle', payload: { channel: req.channel } };
      case 'rpc.call':
        return { id: req.id, action: 'rpc.call', payload: { channel: req.channel, ...callParams(req) } };
      case 'rpc.reply':
        return { action: 'rpc.reply', payload: { callId: req.callId, ...req.outcome } };
    }
  },
  normalize: (frame) => classifyWith(readPrp, frame),
};

/** Reads a PRP frame into the message handlers receive. */
function readPrp(frame: unknown): ServerMessage | null {
  if (!isObject(frame) || typeof frame.type !== 'string') return null;
  const msg: ServerMessage = {
    id: str(frame.id) ?? '',
    type: frame.type,
    timestamp: str(frame.timestamp) ?? '',
    data: frame.data,
  };
  if (isObject(frame.metadata)) msg.metadata = frame.metadata as ServerMessage['metadata'];
  return withOptional(msg, frame);
}

function classifyWith(read: (frame: unknown) => ServerMessage | null, frame: unknown): Inbound | null {
  const message = read(frame);
  return message ? classify(message, read) : null;
}

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
        return {
          type: 'message', id: req.id, channel: req.channel, ...(req.type === undefined ? {} : { event: req.type }), data: req.data,
          ...(req.appendTo === undefined ? {} : { appendTo: req.appendTo }),
        };
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
      case 'rpc.handle':
        return { type: 'rpc.handle', id: req.id, channel: req.channel, data: req.methods ? { methods: req.methods } : {} };
      case 'rpc.unhandle':
        return { type: 'rpc.unhandle', id: req.id, channel: req.channel, data: {} };
      case 'rpc.call':
        return { type: 'rpc.call', id: req.id, channel: req.channel, data: callParams(req) };
      case 'rpc.reply':
        return { type: 'rpc.reply', data: { callId: req.callId, ...req.outcome } };
    }
  },
  normalize: (frame) => classifyWith(readPrd, frame),
};

/** Reads a PRD-035 frame into the PRP-shaped message handlers receive. */
function readPrd(frame: unknown): ServerMessage | null {
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
        case 'rpc.handle':
          return make('rpc.handling', { channel: str(frame.channel), methods: rest.methods ?? null });
        case 'rpc.unhandle':
          return make('rpc.unhandled', { channel: str(frame.channel) });
        case 'rpc.call':
          return make('rpc.result', { channel: str(frame.channel), method: rest.method, result: rest.result });
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
}

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
