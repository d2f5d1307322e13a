import { ErrorCode } from './errors.js';
import { MAX_RPC_METHODS, isStreamPosition, isValidMessageId, isValidMethodName, type ChannelRequest, type Command } from './model.js';

/** A request that could not be turned into a command; answered with an `error` event. */
export interface DecodeError {
  error: true;
  code: ErrorCode;
  message: string;
  requestId?: string;
  action?: string;
}

export type DecodeResult = Command | DecodeError;

export const MAX_CHANNELS_PER_REQUEST = 1000;
export const MAX_HISTORY_LIMIT = 1000;

export function decodeError(code: ErrorCode, message: string, requestId?: string, action?: string): DecodeError {
  return { error: true, code, message, requestId, action };
}

export function isDecodeError(r: DecodeResult): r is DecodeError {
  return (r as DecodeError).error === true;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** Reads the optional request id; `undefined` when absent, an error when present but malformed. */
export function readRequestId(msg: Record<string, unknown>): string | undefined | DecodeError {
  const id = msg.id;
  if (id === undefined || id === null) return undefined;
  if (typeof id === 'number' && Number.isSafeInteger(id)) return String(id);
  if (!isValidMessageId(id)) return decodeError(ErrorCode.INVALID_MESSAGE, '`id` must be a string of 1-128 printable ASCII characters');
  return id;
}

/** Parses one entry of a subscribe list: `"name"` or `{channel, since?}`. */
export function readChannelRequest(entry: unknown): ChannelRequest | string {
  if (typeof entry === 'string') return { channel: entry };
  if (!isPlainObject(entry)) return 'each channel must be a string or {channel, since}';
  const channel = entry.channel ?? entry.name;
  if (typeof channel !== 'string') return '`channel` must be a string';
  if (entry.since === undefined || entry.since === null) return { channel };
  if (!isStreamPosition(entry.since)) return '`since` must be {epoch: string, offset: non-negative integer}';
  return { channel, since: { epoch: entry.since.epoch, offset: entry.since.offset } };
}

export function readChannelList(value: unknown, what: string): string[] | string {
  if (typeof value === 'string') return [value];
  if (!Array.isArray(value) || value.length === 0) return `${what} must be a non-empty array of channel names`;
  if (value.length > MAX_CHANNELS_PER_REQUEST) return `${what} may list at most ${MAX_CHANNELS_PER_REQUEST} channels`;
  for (const c of value) if (typeof c !== 'string') return `${what} must contain only strings`;
  return value as string[];
}

export function readHistoryLimit(value: unknown): number | undefined | string {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > MAX_HISTORY_LIMIT) {
    return `\`limit\` must be an integer from 0 to ${MAX_HISTORY_LIMIT}`;
  }
  return value;
}

/** `methods` of an `rpc.handle`: absent/null (every method) or a list of method names. */
export function readMethods(value: unknown): string[] | null | string {
  if (value === undefined || value === null) return null;
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_RPC_METHODS || !value.every(isValidMethodName)) {
    return `\`methods\` must be a list of 1-${MAX_RPC_METHODS} method names (1-64 characters [A-Za-z0-9_.:-], letter first)`;
  }
  return [...new Set(value as string[])];
}

/** The fields of an `rpc.call` after its channel; an error message for the first bad one. */
export function readCall(requestId: string | undefined, channel: string, v: Record<string, unknown>): Extract<Command, { kind: 'rpc_call' }> | string {
  if (!isValidMethodName(v.method)) return '`method` must be a method name (1-64 characters [A-Za-z0-9_.:-], letter first)';
  const t = v.timeoutMs;
  if (t !== undefined && t !== null && (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 1)) return '`timeoutMs` must be a positive integer';
  return { kind: 'rpc_call', requestId, channel, method: v.method, params: v.params ?? null, ...(typeof t === 'number' ? { timeoutMs: t } : {}) };
}

/** The body of an `rpc.reply`: `{callId, result}` or `{callId, error: {code?, message}}`. */
export function readReply(requestId: string | undefined, v: Record<string, unknown>): Extract<Command, { kind: 'rpc_reply' }> | string {
  if (typeof v.callId !== 'string' || v.callId.length === 0 || v.callId.length > 128) return '`callId` must be the id of the request answered';
  if (v.error !== undefined && v.error !== null) {
    const e = v.error;
    if (!isPlainObject(e) || typeof e.message !== 'string') return '`error` must be {code?, message}';
    if (e.code !== undefined && (typeof e.code !== 'string' || !/^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/.test(e.code))) return '`error.code` must be 1-64 characters [A-Za-z0-9_.:-], letter first';
    return { kind: 'rpc_reply', requestId, callId: v.callId, error: { ...(typeof e.code === 'string' ? { code: e.code } : {}), message: e.message.slice(0, 1024) } };
  }
  return { kind: 'rpc_reply', requestId, callId: v.callId, result: v.result ?? null };
}
