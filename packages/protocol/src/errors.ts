/**
 * The one catalog of error codes and WebSocket close codes.
 *
 * Every `error` event a client receives carries one of {@link ErrorCode}; every close the
 * gateway initiates uses one of {@link CloseCode}. `docs/errors.md` mirrors both tables and
 * a test keeps them in sync.
 */

export const ErrorCode = {
  /** The token is missing, malformed, badly signed, of a refused algorithm, or its claims are invalid. */
  AUTH_FAILED: 'AUTH_FAILED',
  /** The token's `exp` has passed. */
  TOKEN_EXPIRED: 'TOKEN_EXPIRED',
  /** The `action` (or PRD-035 `type`) is not one the endpoint knows. */
  INVALID_ACTION: 'INVALID_ACTION',
  /** The channel name is malformed or belongs to no configured namespace. */
  INVALID_CHANNEL: 'INVALID_CHANNEL',
  /** Too many requests of this kind in a short time; the request was not processed. */
  RATE_LIMITED: 'RATE_LIMITED',
  /** The connection already holds the maximum number of subscriptions, or the channel is full. */
  SUBSCRIPTION_LIMIT: 'SUBSCRIPTION_LIMIT',
  /** The frame is not valid JSON/MessagePack, too deeply nested, or a field has the wrong shape. */
  INVALID_MESSAGE: 'INVALID_MESSAGE',
  /** The token does not grant this channel, or the namespace does not allow this operation. */
  PERMISSION_DENIED: 'PERMISSION_DENIED',
  /** The frame is larger than the configured maximum message size. */
  MESSAGE_TOO_LARGE: 'MESSAGE_TOO_LARGE',
  /** The request asked to recover from a position the stream cannot serve; see `reason`. */
  UNRECOVERABLE_POSITION: 'UNRECOVERABLE_POSITION',
  /** The broker (e.g. Redis) is unreachable or did not answer in time; retry later. */
  UNAVAILABLE: 'UNAVAILABLE',
  /** An unexpected server-side failure; the request may be retried. */
  INTERNAL_ERROR: 'INTERNAL_ERROR',
  /** The connection (or other resource) an admin request names does not exist. */
  NOT_FOUND: 'NOT_FOUND',
  /** No live handler is registered for the channel (and method) called. */
  RPC_NO_HANDLER: 'RPC_NO_HANDLER',
  /** The handler did not answer within the call's timeout. */
  RPC_TIMEOUT: 'RPC_TIMEOUT',
  /** The handler answered with an error: its message, and its code in `details.handlerCode`. */
  RPC_FAILED: 'RPC_FAILED',
  /** The handler serving the call disconnected or stopped handling before it answered. */
  RPC_HANDLER_GONE: 'RPC_HANDLER_GONE',
  /**
   * A publish's `appendTo` names no message this publisher may append to: none with that id is
   * retained in the channel's history (never published, trimmed, expired, or the id is an append's).
   */
  APPEND_TARGET_NOT_FOUND: 'APPEND_TARGET_NOT_FOUND',
  /** A publish's `appendTo` names a message another publisher published: only its own publisher may append to it. */
  APPEND_NOT_ALLOWED: 'APPEND_NOT_ALLOWED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Human-readable description of each error code (used in docs and default messages). */
export const ERROR_DESCRIPTIONS: Record<ErrorCode, { description: string; action: string }> = {
  AUTH_FAILED: { description: 'Authentication failed', action: 'Reconnect with a valid token' },
  TOKEN_EXPIRED: { description: 'JWT token expired', action: 'Refresh the token (in-band `refresh`, or reconnect with a new one)' },
  INVALID_ACTION: { description: 'Unknown action requested', action: 'Check the action name' },
  INVALID_CHANNEL: { description: "Channel name is malformed or its namespace doesn't exist", action: 'Verify the channel name' },
  RATE_LIMITED: { description: 'Too many messages', action: 'Back off and retry later' },
  SUBSCRIPTION_LIMIT: { description: 'Too many subscriptions', action: 'Unsubscribe from unused channels' },
  INVALID_MESSAGE: { description: 'Malformed message', action: 'Fix the message shape (see docs/protocol.md)' },
  PERMISSION_DENIED: { description: 'Not allowed on this channel', action: 'Use a token that grants the channel' },
  MESSAGE_TOO_LARGE: { description: 'Message exceeds the size limit', action: 'Send smaller messages' },
  UNRECOVERABLE_POSITION: { description: 'Stream position cannot be recovered', action: 'Reload state, then subscribe without a position' },
  UNAVAILABLE: { description: 'Broker unavailable', action: 'Retry with backoff' },
  INTERNAL_ERROR: { description: 'Internal server error', action: 'Retry; report if it persists' },
  NOT_FOUND: { description: 'No such connection or subscription', action: 'Refresh the list: it may have closed already' },
  RPC_NO_HANDLER: { description: 'No handler for this channel and method', action: 'Retry once a handler has registered (e.g. when its presence shows)' },
  RPC_TIMEOUT: { description: 'The handler did not answer in time', action: 'Retry if the method is safe to repeat; raise timeoutMs' },
  RPC_FAILED: { description: "The handler answered with an error", action: "See the handler's message and details.handlerCode" },
  RPC_HANDLER_GONE: { description: 'The handler went away mid-call', action: 'Retry if the method is safe to repeat: another handler may serve it' },
  APPEND_TARGET_NOT_FOUND: { description: 'No retained message with the `appendTo` id on this channel', action: 'Publish a new message (without appendTo) and append to that' },
  APPEND_NOT_ALLOWED: { description: "The `appendTo` message is another publisher's", action: 'Append only to your own messages' },
};

/**
 * Close codes the gateway sends. 1000-1015 are RFC 6455; 4000-4999 are Signalbox's own.
 * `reconnect` tells a client whether reconnecting (with backoff) can succeed as things are.
 */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  /** A frame broke the WebSocket protocol (reserved opcode or bits, an unmasked client frame, a bad close code). */
  PROTOCOL_ERROR: 1002,
  /** Never sent: what a client sees when the connection was cut without a close frame. */
  ABNORMAL_CLOSURE: 1006,
  /** A text frame (or close reason) that is not valid UTF-8. */
  INVALID_PAYLOAD: 1007,
  /** A message in too many fragments, or too many buffered chunks (the WebSocket layer's own bounds). */
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  /** The node is shutting down or restarting: reconnect (to any node) and recover. */
  SERVICE_RESTART: 1012,
  /** The token was refused: do not reconnect with the same token. */
  AUTH_FAILED: 4001,
  /** The token expired and was not refreshed in time: get a new token, then reconnect. */
  TOKEN_EXPIRED: 4002,
  /** An administrator disconnected the connection (admin API): do not reconnect by yourself. */
  DISCONNECTED: 4003,
  /** Token verification could not complete (timed out, or the key set was unavailable): the token was not judged; reconnect. */
  AUTH_TIMEOUT: 4004,
  /** Too many malformed or invalid messages: the client is misbehaving. */
  PROTOCOL_VIOLATION: 4008,
  /** The client could not keep up: its outbound buffer overflowed. Reconnect and recover. */
  SLOW_CONSUMER: 4010,
  /** The node lost track of a channel stream and cannot resync it in place. Reconnect and recover. */
  RESYNC_REQUIRED: 4011,
  /** Sustained rate-limit violations. Reconnect after a backoff. */
  RATE_LIMITED: 4029,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

export const CLOSE_CODE_DESCRIPTIONS: Record<number, { name: string; reason: string; reconnect: 'yes' | 'no' | 'after-refresh' }> = {
  1000: { name: 'NORMAL', reason: 'Normal closure (client or server asked to close)', reconnect: 'no' },
  1001: { name: 'GOING_AWAY', reason: 'Peer going away', reconnect: 'yes' },
  1002: { name: 'PROTOCOL_ERROR', reason: 'A frame broke the WebSocket protocol (reserved opcode or bits, unmasked client frame)', reconnect: 'yes' },
  1006: { name: 'ABNORMAL_CLOSURE', reason: 'Not sent: the connection was cut without a close frame (heartbeat timeout, end of a drain, network loss)', reconnect: 'yes' },
  1007: { name: 'INVALID_PAYLOAD', reason: 'A text frame or close reason that is not valid UTF-8', reconnect: 'yes' },
  1008: { name: 'POLICY_VIOLATION', reason: 'A message in more than 16,384 fragments, or too many buffered chunks', reconnect: 'yes' },
  1009: { name: 'MESSAGE_TOO_BIG', reason: 'A frame exceeded the hard frame limit (4x the message size limit)', reconnect: 'yes' },
  1011: { name: 'INTERNAL_ERROR', reason: 'Unexpected server failure', reconnect: 'yes' },
  1012: { name: 'SERVICE_RESTART', reason: 'Server restarting or draining; reconnect and recover', reconnect: 'yes' },
  4001: { name: 'AUTH_FAILED', reason: 'Token missing or invalid', reconnect: 'no' },
  4002: { name: 'TOKEN_EXPIRED', reason: 'Token expired and was not refreshed within the grace period', reconnect: 'after-refresh' },
  4003: { name: 'DISCONNECTED', reason: 'Disconnected by an administrator (DELETE /v1/connections/{id})', reconnect: 'no' },
  4004: { name: 'AUTH_TIMEOUT', reason: 'Token verification could not complete (timeout, or key set unavailable)', reconnect: 'yes' },
  4008: { name: 'PROTOCOL_VIOLATION', reason: 'Too many invalid messages', reconnect: 'no' },
  4010: { name: 'SLOW_CONSUMER', reason: 'Outbound buffer overflow; reconnect and recover', reconnect: 'yes' },
  4011: { name: 'RESYNC_REQUIRED', reason: 'Channel stream lost on this node; reconnect and recover', reconnect: 'yes' },
  4029: { name: 'RATE_LIMITED', reason: 'Sustained rate-limit violations', reconnect: 'yes' },
};
