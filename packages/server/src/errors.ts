/**
 * The one map from a failure to what a client is told. Every refusal the gateway makes, over
 * WebSocket or HTTP, is a {@link GatewayError}: a catalog code, the HTTP status that goes with it,
 * a message for people and details that name the request. {@link toGatewayError} is the only
 * place that decides what an error thrown by a broker or a presence store means: an outage is
 * `UNAVAILABLE`/503, anything unexpected `INTERNAL_ERROR`/500 with its cause kept out of the reply.
 */
import { ErrorCode } from '@signalbox/protocol';
import { BrokerUnavailableError } from './broker/types.js';

/** The HTTP status of each error code, when the HTTP API (or an upgrade refusal) reports it. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  AUTH_FAILED: 401,
  TOKEN_EXPIRED: 401,
  INVALID_ACTION: 404,
  INVALID_CHANNEL: 400,
  RATE_LIMITED: 429,
  SUBSCRIPTION_LIMIT: 429,
  INVALID_MESSAGE: 400,
  PERMISSION_DENIED: 403,
  MESSAGE_TOO_LARGE: 413,
  UNRECOVERABLE_POSITION: 409,
  UNAVAILABLE: 503,
  INTERNAL_ERROR: 500,
  NOT_FOUND: 404,
  RPC_NO_HANDLER: 404,
  RPC_TIMEOUT: 504,
  RPC_FAILED: 502,
  RPC_HANDLER_GONE: 502,
  APPEND_TARGET_NOT_FOUND: 404,
  APPEND_NOT_ALLOWED: 403,
};

export type ErrorDetails = Record<string, unknown>;

/** A refusal with its catalog code; what the WebSocket `error` event and the HTTP error body carry. */
export class GatewayError extends Error {
  readonly httpStatus: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: ErrorDetails = {},
    httpStatus?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'GatewayError';
    this.httpStatus = httpStatus ?? HTTP_STATUS[code];
  }

  /** True for a failure of ours (a bug), which is logged with its cause; false for a refusal or an outage. */
  get unexpected(): boolean {
    return this.code === ErrorCode.INTERNAL_ERROR;
  }

  /** The same error naming (more of) the request it answers. */
  withDetails(details: ErrorDetails): GatewayError {
    return new GatewayError(this.code, this.message, { ...details, ...this.details }, this.httpStatus, { cause: this.cause });
  }
}

/**
 * What any thrown value means to a client. A GatewayError is kept as it is; a broker or presence
 * store that cannot be reached is `UNAVAILABLE`; anything else is `INTERNAL_ERROR`, with the
 * original error as `cause` (for the log, never for the reply).
 */
export function toGatewayError(err: unknown, details: ErrorDetails = {}): GatewayError {
  if (err instanceof GatewayError) return Object.keys(details).length === 0 ? err : err.withDetails(details);
  if (err instanceof BrokerUnavailableError) return new GatewayError(ErrorCode.UNAVAILABLE, `Broker unavailable: ${err.message}`, details, undefined, { cause: err });
  return new GatewayError(ErrorCode.INTERNAL_ERROR, 'Internal error', details, undefined, { cause: err });
}
