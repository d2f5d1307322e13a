/**
 * The PRD-035 dialect (`/ws`): `{type, channel?, data, id?, timestamp}` in both directions, with
 * types `subscribe`, `unsubscribe`, `message`, `ack`, `ping`, `pong`, `error`.
 *
 * A client `message` on a channel is a publish (answered by `ack`); a server `message` delivers a
 * publication, its event type in `event`. Every reply carries `replyTo` (the request's `id`).
 * Extensions, with the same shape: `history`, `presence` and `refresh` request types.
 */
import { ErrorCode } from './errors.js';
import type { Publication, Publisher, ServerEvent, StreamPosition } from './model.js';
import { isStreamPosition, isValidMessageId } from './model.js';
import { type DecodeResult, decodeError, isPlainObject, readChannelList, readHistoryLimit, readRequestId, readRpcRequest } from './decode-util.js';

export interface PrdServerMessage {
  type: 'subscribe' | 'unsubscribe' | 'message' | 'ack' | 'ping' | 'pong' | 'error';
  channel?: string;
  data: unknown;
  id: string;
  timestamp: string;
  replyTo?: string;
  /** For `message`: the publication's event type (e.g. `prp.created`). */
  event?: string;
  offset?: number;
  epoch?: string;
  /** For `message`: who published (see `Publisher`). */
  publisher?: Publisher;
  /** For `message`: on an append, the id of the message it appends to. */
  appendTo?: string;
  /** For `message` in a compacted history: the offset of the last append folded into `data`. */
  through?: number;
}

export function decodePrdCommand(msg: unknown): DecodeResult {
  if (!isPlainObject(msg)) return decodeError(ErrorCode.INVALID_MESSAGE, 'A message must be a JSON object {type, channel?, data, id?}');
  const requestId = readRequestId(msg);
  if (typeof requestId === 'object') return requestId;
  const type = msg.type;
  if (typeof type !== 'string') return decodeError(ErrorCode.INVALID_MESSAGE, 'Missing `type` (a string)', requestId);
  const bad = (message: string) => decodeError(ErrorCode.INVALID_MESSAGE, message, requestId, type);
  const data = isPlainObject(msg.data) ? msg.data : undefined;

  switch (type) {
    case 'subscribe': {
      const list = readChannelList(msg.channel ?? data?.channels, '`channel`');
      if (typeof list === 'string') return bad(list);
      const since = data?.since;
      if (since !== undefined && since !== null && !isStreamPosition(since)) return bad('`data.since` must be {epoch, offset}');
      if (since && list.length > 1) return bad('`data.since` applies to a single `channel`');
      const channels = list.map((channel) => (since ? { channel, since: { epoch: since.epoch, offset: since.offset } } : { channel }));
      return { kind: 'subscribe', requestId, channels };
    }
    case 'unsubscribe': {
      const list = readChannelList(msg.channel ?? data?.channels, '`channel`');
      if (typeof list === 'string') return bad(list);
      return { kind: 'unsubscribe', requestId, channels: list };
    }
    case 'message': {
      if (typeof msg.channel !== 'string') return bad('`channel` must be a string');
      if (!('data' in msg)) return bad('`data` is required');
      const event = msg.event ?? 'message';
      if (typeof event !== 'string') return bad('`event` must be a string');
      if (msg.appendTo !== undefined && !isValidMessageId(msg.appendTo)) return bad('`appendTo` must be a publication id (1-128 printable ASCII characters)');
      return { kind: 'publish', requestId, channel: msg.channel, type: event, data: msg.data, ...(msg.appendTo !== undefined ? { appendTo: msg.appendTo } : {}) };
    }
    case 'history': {
      if (typeof msg.channel !== 'string') return bad('`channel` must be a string');
      if (data?.since !== undefined && data.since !== null && !isStreamPosition(data.since)) return bad('`data.since` must be {epoch, offset}');
      const limit = readHistoryLimit(data?.limit);
      if (typeof limit === 'string') return bad(limit);
      return {
        kind: 'history', requestId, channel: msg.channel, limit,
        ...(isStreamPosition(data?.since) ? { since: { epoch: data.since.epoch, offset: data.since.offset } } : {}),
      };
    }
    case 'presence':
      if (typeof msg.channel !== 'string') return bad('`channel` must be a string');
      return { kind: 'presence', requestId, channel: msg.channel };
    case 'refresh':
      if (typeof data?.token !== 'string' || data.token.length === 0) return bad('`data.token` must be a non-empty string');
      return { kind: 'refresh', requestId, token: data.token };
    case 'ping':
      return { kind: 'ping', requestId };
    case 'rpc.handle':
    case 'rpc.unhandle':
    case 'rpc.call':
    case 'rpc.reply': {
      const r = readRpcRequest(type, requestId, msg.channel, data ?? {}, (f) => (f === 'channel' ? 'channel' : `data.${f}`));
      return typeof r === 'string' ? bad(r) : r;
    }
    case 'pong':
      return { kind: 'pong', requestId };
    default:
      return decodeError(ErrorCode.INVALID_ACTION, `Unknown message type '${type.slice(0, 64)}'`, requestId, type.slice(0, 64));
  }
}

function pos(p: StreamPosition): StreamPosition {
  return { epoch: p.epoch, offset: p.offset };
}

export function prdPublication(pub: Publication): PrdServerMessage {
  return {
    type: 'message',
    channel: pub.channel,
    data: pub.data,
    id: pub.id,
    timestamp: new Date(pub.time).toISOString(),
    event: pub.type,
    offset: pub.offset,
    epoch: pub.epoch,
    ...(pub.publisher ? { publisher: pub.publisher } : {}),
    ...(pub.appendTo !== undefined ? { appendTo: pub.appendTo } : {}),
    ...(pub.through !== undefined ? { through: pub.through } : {}),
  };
}

export function prdEvent(ev: ServerEvent, id: string, timestamp: string): PrdServerMessage {
  switch (ev.kind) {
    case 'established':
      return { type: 'ack', data: { action: 'connect', connectionId: ev.connectionId, serverVersion: ev.serverVersion, features: ev.features }, id, timestamp };
    case 'heartbeat':
      return { type: 'ping', data: { serverTime: ev.serverTime }, id, timestamp };
    case 'pong':
      return { type: 'pong', data: {}, id, timestamp, replyTo: ev.replyTo };
    case 'subscribed': {
      const only = ev.channels.length === 1 ? ev.channels[0] : undefined;
      return {
        type: 'ack', channel: only?.channel, id, timestamp, replyTo: ev.replyTo,
        data: {
          action: 'subscribe',
          subscribedChannels: ev.channels.map((c) => c.channel),
          channels: ev.channels.map((c) => ({ ...c, position: pos(c.position) })),
          ...(only ? { position: pos(only.position), recovered: only.recovered, reason: only.reason, missed: only.missed } : {}),
        },
      };
    }
    case 'unsubscribed':
      return {
        type: 'ack', channel: ev.channels.length === 1 ? ev.channels[0] : undefined, id, timestamp, replyTo: ev.replyTo,
        data: { action: 'unsubscribe', unsubscribedChannels: ev.channels },
      };
    case 'ack':
      return {
        type: 'ack', channel: ev.publication.channel, id, timestamp, replyTo: ev.replyTo,
        data: { action: 'message', ...ev.publication, duplicate: ev.duplicate },
      };
    case 'error':
      return { type: 'error', channel: ev.error.details.channel, data: ev.error, id, timestamp, replyTo: ev.replyTo };
    case 'token_expired':
      return {
        type: 'error', id, timestamp,
        data: { code: ErrorCode.TOKEN_EXPIRED, message: 'Token expired; send `refresh` with a new token', details: { expiredAt: ev.expiredAt, graceMs: ev.graceMs } },
      };
    case 'refreshed':
      return { type: 'ack', id, timestamp, replyTo: ev.replyTo, data: { action: 'refresh', expiresAt: ev.expiresAt } };
    case 'history':
      return {
        type: 'ack', channel: ev.channel, id, timestamp, replyTo: ev.replyTo,
        data: { action: 'history', publications: ev.publications.map(prdPublication), position: pos(ev.position), ...(ev.next ? { next: pos(ev.next) } : {}) },
      };
    case 'presence':
      return { type: 'ack', channel: ev.channel, id, timestamp, replyTo: ev.replyTo, data: { action: 'presence', members: ev.members } };
    case 'presence_change':
      return {
        type: 'message', channel: ev.channel, id, timestamp,
        event: ev.joined ? 'presence.joined' : 'presence.left',
        data: { member: ev.joined ?? ev.left },
      };
    case 'unsubscribed_by_server':
      return { type: 'unsubscribe', channel: ev.channel, id, timestamp, data: { code: ev.code, message: ev.message } };
    case 'rpc_handling':
      return { type: 'ack', channel: ev.channel, id, timestamp, replyTo: ev.replyTo, data: { action: 'rpc.handle', methods: ev.methods } };
    case 'rpc_unhandled':
      return { type: 'ack', channel: ev.channel, id, timestamp, replyTo: ev.replyTo, data: { action: 'rpc.unhandle' } };
    case 'rpc_result':
      return { type: 'ack', channel: ev.channel, id, timestamp, replyTo: ev.replyTo, data: { action: 'rpc.call', method: ev.method, result: ev.result } };
    case 'rpc_request':
      return {
        type: 'message', channel: ev.channel, id, timestamp, event: 'rpc.request',
        data: { callId: ev.callId, channel: ev.channel, method: ev.method, params: ev.params, caller: ev.caller, timeoutMs: ev.timeoutMs },
      };
  }
}
