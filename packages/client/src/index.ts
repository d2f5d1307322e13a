/**
 * `@signalbox/client`: the Signalbox client for browsers and Node.
 *
 * Browser-safe: nothing here imports Node built-ins or `ws`. In Node, import from
 * `@signalbox/client/node`, which injects `ws` (and lets the token travel in a header).
 */
import { SignalboxClient } from './client.js';
import type { SignalboxClientOptions } from './options.js';
import type { PrpEventData } from './prp.js';

export { SignalboxClient, closePolicy } from './client.js';
/**
 * The PRP API document's reference client name, kept so its examples work unchanged: the same
 * class as `SignalboxClient`, typed for the document's events (`PrpEventData`), which are not the
 * general client's default.
 */
export const PRPWebSocketClient: new (options?: SignalboxClientOptions) => SignalboxClient<PrpEventData> = SignalboxClient;
/** An instance of {@link PRPWebSocketClient}. */
export type PRPWebSocketClient = SignalboxClient<PrpEventData>;
export type {
  ClientConfig, FrameFormat, HistoryOptions, HistoryResult, PresenceOptions, PresenceResult, PublishAck, PublishOptions, QueueOverflow,
  SignalboxClientOptions, SubscribeOptions, TokenRequestReason,
  TokenTransport, WebSocketConfig,
} from './options.js';
export { Subscription } from './subscription.js';
export type { SubscriptionState } from './subscription.js';
export { SignalboxError, ClientErrorCode } from './errors.js';
export type { RpcErrorCode, SignalboxErrorDetails } from './errors.js';
export type { CallOptions, HandleOptions, RpcMethod, RpcMethods, RpcRegistration } from './rpc.js';
export { backoffBounds, backoffDelay } from './backoff.js';
export type { WebSocketConstructor, WebSocketLike, WebSocketOptions } from './transport.js';
export type { DialectName } from './dialect.js';
export {
  AGENT_EVENT_SCHEMAS, AgentErrorCode, AgentMethod, AnswerWriter, Conversation, agentEventProblem, answerIdOf, isAgentEventType, serveAgent,
} from './agent/index.js';
export type {
  AgentAnswerData, AgentAskAnsweredData, AgentAskData, AgentDeltaData, AgentEventData, AgentEventType, AgentHandler, AgentInput, AgentInputData,
  AgentRun, AgentRunCancelledData, AgentRunCompletedData, AgentRunFailedData, AgentRunStartedData, AgentServer, AgentState, AgentStateData,
  AnswerWriterOptions, AskOptions, CancelResult, ConversationEvents, ConversationOptions, DeltaEvent, InputResult, JsonSchema, RunStatus, RunView,
  ServeAgentOptions, TurnPolicy,
} from './agent/index.js';
export type { Handler } from './emitter.js';
export type * from './events.js';
/**
 * The PRP API document's event types, still exported here so existing imports keep working; they
 * live in `@signalbox/client/prp` and are no longer the default of `SignalboxClient`'s type parameter.
 */
export type * from './prp.js';
export type { PresenceMember, StreamPosition, UnrecoverableReason } from '@signalbox/protocol';
