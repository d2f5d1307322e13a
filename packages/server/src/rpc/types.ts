/**
 * The RPC seam: where a channel's handlers are registered, and how a call and its outcome travel
 * between the caller's node and the handler's. `MemoryRpcEngine` serves one node;
 * `RedisRpcEngine` several (a handler registry that expires with its node, and a per-node inbox
 * on Redis pub/sub). Both pass one contract suite (test/contract/rpc.contract.ts).
 */
import type { Publisher } from '@signalbox/protocol';

/** A registered handler: a connection on some node, for some methods of a channel (null: all). */
export interface HandlerEntry {
  /** The handling connection's id (unique across nodes). */
  handlerId: string;
  /** The node the connection is on. */
  node: string;
  methods: string[] | null;
}

/** A call on its way to the handler's node. */
export interface RoutedCall {
  callId: string;
  /** Where the outcome goes back to. */
  callerNode: string;
  handlerId: string;
  channel: string;
  method: string;
  params: unknown;
  caller: Publisher;
  /** What is left of the caller's timeout when the call was sent (a duration: node clocks differ). */
  timeoutMs: number;
}

/** How a call ended, as the handler's node reports it. */
export type RpcOutcome =
  | { ok: true; result: unknown }
  | { ok: false; code: 'RPC_FAILED' | 'RPC_HANDLER_GONE' | 'RPC_NO_HANDLER' | 'RPC_TIMEOUT'; message: string; handlerCode?: string };

export interface RoutedOutcome {
  callId: string;
  outcome: RpcOutcome;
}

export interface RpcInbox {
  onCall(call: RoutedCall): void;
  onOutcome(o: RoutedOutcome): void;
}

/**
 * Contract:
 * - `handlers` lists only handlers whose node is alive: a node that stopped (even by SIGKILL)
 *   drops out within the engine's liveness bound, and its entries are removed.
 * - `sendCall` / `sendOutcome` deliver to the named node's inbox at most once; `sendCall`
 *   resolves false when the node is known not to be listening (it died), so the caller can pick
 *   another handler at once.
 * - Registrations of one node survive its engine's reconnects (they are re-made).
 */
export interface RpcEngine {
  readonly kind: string;
  start(nodeId: string, inbox: RpcInbox): Promise<void>;
  register(channel: string, entry: HandlerEntry): Promise<void>;
  unregister(channel: string, handlerId: string): Promise<void>;
  /** The live handlers of a channel. */
  handlers(channel: string): Promise<HandlerEntry[]>;
  /** False when the node is not listening (gone): nothing was delivered. */
  sendCall(node: string, call: RoutedCall): Promise<boolean>;
  sendOutcome(node: string, o: RoutedOutcome): Promise<void>;
  close(): Promise<void>;
}
