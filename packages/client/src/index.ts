/**
 * `@signalbox/client`: the Signalbox client for browsers and Node.
 *
 * Browser-safe: nothing here imports Node built-ins or `ws`. In Node, import from
 * `@signalbox/client/node`, which injects `ws` (and lets the token travel in a header).
 */
export {
  SignalboxClient,
  /** The PRP API document's reference client name, kept so its examples work unchanged. */
  SignalboxClient as PRPWebSocketClient,
  closePolicy,
} from './client.js';
export type {
  ClientConfig, FrameFormat, HistoryOptions, HistoryResult, PresenceOptions, PresenceResult, PublishAck, PublishOptions, QueueOverflow,
  SignalboxClientOptions, SubscribeOptions, TokenRequestReason,
  TokenTransport, WebSocketConfig,
} from './client.js';
export { Subscription } from './subscription.js';
export type { SubscriptionState } from './subscription.js';
export { SignalboxError, ClientErrorCode } from './errors.js';
export type { SignalboxErrorDetails } from './errors.js';
export { backoffBounds, backoffDelay } from './backoff.js';
export type { WebSocketConstructor, WebSocketLike, WebSocketOptions } from './transport.js';
export type { DialectName } from './dialect.js';
export type { Handler } from './emitter.js';
export type * from './events.js';
export type { PresenceMember, StreamPosition, UnrecoverableReason } from '@signalbox/protocol';
