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

const METHOD_NAME = 'a method name (1-64 characters [A-Za-z0-9_.:-], letter first)';

export type RpcAction = 'rpc.handle' | 'rpc.unhandle' | 'rpc.call' | 'rpc.reply';

/**
 * The four RPC requests, the same in both dialects: `channel` is where the dialect carries it
 * (PRP: in the payload; PRD-035: beside `data`), `body` holds the other fields, and `at(field)`
 * names a field in an error message as the dialect spells it. Returns the error message of the
 * first bad field.
 */
export function readRpcRequest(action: RpcAction, requestId: string | undefined, channel: unknown, body: Record<string, unknown>, at: (field: string) => string): Command | string {
  if (action !== 'rpc.reply' && typeof channel !== 'string') return `\`${at('channel')}\` must be a string`;
  const ch = channel as string;
  switch (action) {
    case 'rpc.handle': {
      const m = body.methods;
      if (m === undefined || m === null) return { kind: 'rpc_handle', requestId, channel: ch, methods: null };
      if (!Array.isArray(m) || m.length === 0 || m.length > MAX_RPC_METHODS || !m.every(isValidMethodName)) {
        return `\`${at('methods')}\` must be a list of 1-${MAX_RPC_METHODS} method names (1-64 characters [A-Za-z0-9_.:-], letter first)`;
      }
      return { kind: 'rpc_handle', requestId, channel: ch, methods: [...new Set(m as string[])] };
    }
    case 'rpc.unhandle':
      return { kind: 'rpc_unhandle', requestId, channel: ch };
    case 'rpc.call': {
      if (!isValidMethodName(body.method)) return `\`${at('method')}\` must be ${METHOD_NAME}`;
      const t = body.timeoutMs;
      if (t !== undefined && t !== null && (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 1)) return `\`${at('timeoutMs')}\` must be a positive integer`;
      return { kind: 'rpc_call', requestId, channel: ch, method: body.method, params: body.params ?? null, ...(typeof t === 'number' ? { timeoutMs: t } : {}) };
    }
    case 'rpc.reply': {
      const { callId, error } = body;
      if (typeof callId !== 'string' || callId.length === 0 || callId.length > 128) return `\`${at('callId')}\` must be the id of the request answered`;
      if (error === undefined || error === null) return { kind: 'rpc_reply', requestId, callId, result: body.result ?? null };
      if (!isPlainObject(error) || typeof error.message !== 'string') return `\`${at('error')}\` must be {code?, message}`;
      if (error.code !== undefined && (typeof error.code !== 'string' || !/^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/.test(error.code))) {
        return `\`${at('error.code')}\` must be 1-64 characters [A-Za-z0-9_.:-], letter first`;
      }
      return { kind: 'rpc_reply', requestId, callId, error: { ...(typeof error.code === 'string' ? { code: error.code } : {}), message: error.message.slice(0, 1024) } };
    }
  }
}
