import type { ErrorCode } from '@signalbox/protocol';

/**
 * Codes for failures the client detects itself (server errors keep the server's {@link ErrorCode}).
 */
export const ClientErrorCode = {
  /** The socket reported an error (connection refused, DNS failure, TLS...). A close follows. */
  TRANSPORT_ERROR: 'TRANSPORT_ERROR',
  /** A frame could not be decoded, or is not a message of the connection's dialect. */
  INVALID_FRAME: 'INVALID_FRAME',
  /** A publish (or other request) got no answer in time. */
  TIMEOUT: 'TIMEOUT',
  /** The offline queue is full; see `maxQueueSize` and `queueOverflow`. */
  QUEUE_FULL: 'QUEUE_FULL',
  /** `disconnect()` was called while the operation was pending. */
  DISCONNECTED: 'DISCONNECTED',
  /** The client stopped for good (auth failure, attempts exhausted...); the operation was abandoned. */
  CLOSED: 'CLOSED',
  /** `getToken()` threw or returned something that is not a non-empty string. */
  TOKEN_UNAVAILABLE: 'TOKEN_UNAVAILABLE',
  /** The server refused the WebSocket upgrade with an HTTP status (`details.status`): 403 or 404 stop the client, 429 and 503 are retried. */
  UPGRADE_REFUSED: 'UPGRADE_REFUSED',
  /**
   * A publish's data (or a call's params) holds bytes (a Uint8Array, ArrayBuffer or other view)
   * and the client's format is JSON, which cannot carry them: use `format: msgpack`.
   */
  BYTES_NEED_MSGPACK: 'BYTES_NEED_MSGPACK',
  /** An event handler threw; `cause` holds what it threw. */
  HANDLER_ERROR: 'HANDLER_ERROR',
} as const;
export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

/**
 * The gateway's outcomes of a `client.call` other than its result (docs/protocol.md, RPC):
 * `RPC_NO_HANDLER` (no live handler for the channel and method), `RPC_TIMEOUT` (no answer within
 * the call's timeout), `RPC_FAILED` (the handler answered with an error: its message, and its code in
 * `details.handlerCode`), `RPC_HANDLER_GONE` (the serving handler went away mid-call).
 */
export type RpcErrorCode = Extract<ErrorCode, `RPC_${string}`>;

/** Details carried by an error: the server's `details`, plus `channel`/`requestId` when known. */
export interface SignalboxErrorDetails {
  requestId?: string;
  action?: string;
  channel?: string;
  /** For an RPC: the method called. */
  method?: string;
  /** For `RPC_FAILED`: the code the handler gave its error, if it gave one. */
  handlerCode?: string;
  [key: string]: unknown;
}

/**
 * Every error the client reports or rejects with: the server's errors (`code` from the protocol's
 * catalog, e.g. `INVALID_CHANNEL`) and the client's own ({@link ClientErrorCode}).
 */
export class SignalboxError extends Error {
  override readonly name = 'SignalboxError';
  /** Stable code: a server {@link ErrorCode} (RPC outcomes: {@link RpcErrorCode}) or a {@link ClientErrorCode}. */
  readonly code: ErrorCode | ClientErrorCode;
  readonly details: SignalboxErrorDetails;
  /** The id of the request this error answers, when it answers one. */
  readonly replyTo: string | undefined;

  constructor(code: ErrorCode | ClientErrorCode, message: string, details: SignalboxErrorDetails = {}, replyTo?: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.details = details;
    this.replyTo = replyTo;
  }
}
