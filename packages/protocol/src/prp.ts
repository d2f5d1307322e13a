/**
 * The PRP WebSocket API dialect (`/v1/ws/prps`), exactly as the PRP API document prints it:
 * client `{id?, action, payload?}`, server `{id, type, timestamp, data, metadata?}`.
 * Additions: every reply carries `replyTo` (the request's id); channel events carry
 * `channel`, `offset` and `epoch`.
 */
import { ErrorCode } from './errors.js';
import type { Command, Publication, Publisher, ServerEvent, StreamPosition } from './model.js';
import { isStreamPosition, isValidMessageId } from './model.js';
import {
  type DecodeResult, decodeError, isPlainObject, readChannelList, readChannelRequest, readHistoryLimit, readRequestId, readRpcRequest,
  MAX_CHANNELS_PER_REQUEST,
} from './decode-util.js';

/** Server message of the PRP dialect. */
export interface PrpServerMessage {
  id: string;
  type: string;
  timestamp: string;
  data?: unknown;
  replyTo?: string;
  channel?: string;
  offset?: number;
  epoch?: string;
  /** On channel events: who published (see `Publisher`). */
  publisher?: Publisher;
  /** On channel events: on an append, the id of the message it appends to. */
  appendTo?: string;
  /** On a message of a compacted history: the offset of the last append folded into `data`. */
  through?: number;
  metadata?: { version: string; source: string };
}

export function decodePrpCommand(msg: unknown): DecodeResult {
  if (!isPlainObject(msg)) return decodeError(ErrorCode.INVALID_MESSAGE, 'A message must be a JSON object {id?, action, payload?}');
  const requestId = readRequestId(msg);
  if (typeof requestId === 'object') return requestId;
  const action = msg.action;
  if (typeof action !== 'string') {
    return decodeError(ErrorCode.INVALID_MESSAGE, 'Missing `action` (a string)', requestId);
  }
  const payload = msg.payload;
  if (payload !== undefined && payload !== null && !isPlainObject(payload)) {
    return decodeError(ErrorCode.INVALID_MESSAGE, '`payload` must be an object', requestId, action);
  }
  const p = (payload ?? {}) as Record<string, unknown>;
  const bad = (message: string) => decodeError(ErrorCode.INVALID_MESSAGE, message, requestId, action);

  switch (action) {
    case 'subscribe': {
      const list = p.channels ?? p.channel;
      const entries = typeof list === 'string' || isPlainObject(list) ? [list] : list;
      if (!Array.isArray(entries) || entries.length === 0) return bad('`payload.channels` must be a non-empty array');
      if (entries.length > MAX_CHANNELS_PER_REQUEST) return bad(`\`payload.channels\` may list at most ${MAX_CHANNELS_PER_REQUEST} channels`);
      const channels = [];
      for (const e of entries) {
        const r = readChannelRequest(e);
        if (typeof r === 'string') return bad(r);
        channels.push(r);
      }
      // Also accept positions as a map: payload.since = { "project:p1": {epoch, offset} }.
      if (isPlainObject(p.since)) {
        for (const c of channels) {
          const pos = p.since[c.channel];
          if (pos === undefined) continue;
          if (!isStreamPosition(pos)) return bad(`\`payload.since["${c.channel}"]\` must be {epoch, offset}`);
          c.since = { epoch: pos.epoch, offset: pos.offset };
        }
      }
      return { kind: 'subscribe', requestId, channels };
    }
    case 'unsubscribe': {
      const list = readChannelList(p.channels ?? p.channel, '`payload.channels`');
      if (typeof list === 'string') return bad(list);
      return { kind: 'unsubscribe', requestId, channels: list };
    }
    case 'publish': {
      if (typeof p.channel !== 'string') return bad('`payload.channel` must be a string');
      const type = p.type ?? 'message';
      if (typeof type !== 'string') return bad('`payload.type` must be a string');
      if (!('data' in p)) return bad('`payload.data` is required');
      if (p.appendTo !== undefined && !isValidMessageId(p.appendTo)) return bad('`payload.appendTo` must be a publication id (1-128 printable ASCII characters)');
      return { kind: 'publish', requestId, channel: p.channel, type, data: p.data, ...(p.appendTo !== undefined ? { appendTo: p.appendTo } : {}) };
    }
    case 'history': {
      if (typeof p.channel !== 'string') return bad('`payload.channel` must be a string');
      if (p.since !== undefined && p.since !== null && !isStreamPosition(p.since)) return bad('`payload.since` must be {epoch, offset}');
      const limit = readHistoryLimit(p.limit);
      if (typeof limit === 'string') return bad(limit);
      const cmd: Command = { kind: 'history', requestId, channel: p.channel, limit };
      if (isStreamPosition(p.since)) cmd.since = { epoch: p.since.epoch, offset: p.since.offset };
      return cmd;
    }
    case 'presence': {
      if (typeof p.channel !== 'string') return bad('`payload.channel` must be a string');
      return { kind: 'presence', requestId, channel: p.channel };
    }
    case 'refresh': {
      if (typeof p.token !== 'string' || p.token.length === 0) return bad('`payload.token` must be a non-empty string');
      return { kind: 'refresh', requestId, token: p.token };
    }
    case 'ping':
      return { kind: 'ping', requestId };
    case 'rpc.handle':
    case 'rpc.unhandle':
    case 'rpc.call':
    case 'rpc.reply': {
      const r = readRpcRequest(action, requestId, p.channel, p, (f) => `payload.${f}`);
      return typeof r === 'string' ? bad(r) : r;
    }
    default:
      return decodeError(ErrorCode.INVALID_ACTION, `Unknown action '${action.slice(0, 64)}'`, requestId, action.slice(0, 64));
  }
}

function wirePosition(p: StreamPosition): StreamPosition {
  return { epoch: p.epoch, offset: p.offset };
}

/** The PRP wire object of a publication (channel event). */
export function prpPublication(pub: Publication): PrpServerMessage {
  return {
    id: pub.id,
    type: pub.type,
    timestamp: new Date(pub.time).toISOString(),
    channel: pub.channel,
    offset: pub.offset,
    epoch: pub.epoch,
    data: pub.data,
    ...(pub.publisher ? { publisher: pub.publisher } : {}),
    ...(pub.appendTo !== undefined ? { appendTo: pub.appendTo } : {}),
    ...(pub.through !== undefined ? { through: pub.through } : {}),
  };
}

/** The PRP wire object of a non-publication event. `id` and `timestamp` are the message's own. */
export function prpEvent(ev: ServerEvent, id: string, timestamp: string): PrpServerMessage {
  switch (ev.kind) {
    case 'established':
      return { id, type: 'connection.established', timestamp, data: { connectionId: ev.connectionId, serverVersion: ev.serverVersion, features: ev.features } };
    case 'heartbeat':
      return { id, type: 'heartbeat', timestamp, data: { serverTime: ev.serverTime } };
    case 'pong':
      return { id, type: 'pong', timestamp, replyTo: ev.replyTo };
    case 'subscribed':
      return {
        id, type: 'subscription.confirmed', timestamp, replyTo: ev.replyTo,
        data: {
          subscribedChannels: ev.channels.map((c) => c.channel),
          channels: ev.channels.map((c) => ({ ...c, position: wirePosition(c.position) })),
        },
      };
    case 'unsubscribed':
      return { id, type: 'unsubscription.confirmed', timestamp, replyTo: ev.replyTo, data: { unsubscribedChannels: ev.channels } };
    case 'ack':
      return { id, type: 'ack', timestamp, replyTo: ev.replyTo, data: { ...ev.publication, duplicate: ev.duplicate } };
    case 'error':
      return { id, type: 'error', timestamp, replyTo: ev.replyTo, data: ev.error };
    case 'token_expired':
      return { id, type: 'token_expired', timestamp, data: { expiredAt: ev.expiredAt, graceMs: ev.graceMs } };
    case 'refreshed':
      return { id, type: 'token.refreshed', timestamp, replyTo: ev.replyTo, data: { expiresAt: ev.expiresAt } };
    case 'history':
      return {
        id, type: 'history', timestamp, replyTo: ev.replyTo,
        data: { channel: ev.channel, publications: ev.publications.map(prpPublication), position: wirePosition(ev.position), ...(ev.next ? { next: wirePosition(ev.next) } : {}) },
      };
    case 'presence':
      return { id, type: 'presence', timestamp, replyTo: ev.replyTo, data: { channel: ev.channel, members: ev.members } };
    case 'presence_change':
      return ev.joined
        ? { id, type: 'presence.joined', timestamp, channel: ev.channel, data: { channel: ev.channel, member: ev.joined } }
        : { id, type: 'presence.left', timestamp, channel: ev.channel, data: { channel: ev.channel, member: ev.left } };
    case 'unsubscribed_by_server':
      return { id, type: 'subscription.removed', timestamp, channel: ev.channel, data: { channel: ev.channel, code: ev.code, message: ev.message } };
    case 'rpc_handling':
      return { id, type: 'rpc.handling', timestamp, replyTo: ev.replyTo, data: { channel: ev.channel, methods: ev.methods } };
    case 'rpc_unhandled':
      return { id, type: 'rpc.unhandled', timestamp, replyTo: ev.replyTo, data: { channel: ev.channel } };
    case 'rpc_result':
      return { id, type: 'rpc.result', timestamp, replyTo: ev.replyTo, data: { channel: ev.channel, method: ev.method, result: ev.result } };
    case 'rpc_request':
      return {
        id, type: 'rpc.request', timestamp, channel: ev.channel,
        data: { callId: ev.callId, channel: ev.channel, method: ev.method, params: ev.params, caller: ev.caller, timeoutMs: ev.timeoutMs },
      };
  }
}
