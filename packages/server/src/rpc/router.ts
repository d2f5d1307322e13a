/**
 * Request/reply to a channel's handler, for one node: the handlers connected here, the calls
 * this node's callers are waiting on, and the calls this node's handlers are serving. The
 * engine (memory or Redis) carries registrations, calls and outcomes between nodes.
 *
 * One call, exactly one outcome: the handler's result, its error (`RPC_FAILED`), `RPC_NO_HANDLER`
 * (none registered for the channel and method, answered at once), `RPC_TIMEOUT` (the caller's
 * own timer, on the caller's node, so a dead handler node cannot hold a call), or
 * `RPC_HANDLER_GONE` (the serving handler disconnected or stopped handling mid-call). Whichever
 * comes first settles the call; anything later for it is dropped.
 *
 * Which handler serves: one on the caller's node if there is one (no hop), else one at random
 * among the live handlers of the channel that handle the method. If the chosen node turns out not
 * to be listening (it died before its registrations expired), the next one is tried at once.
 */
import { randomBytes } from 'node:crypto';
import { ErrorCode, type Publisher } from '@signalbox/protocol';
import { GatewayError, toGatewayError } from '../errors.js';
import type { HandlerEntry, RoutedCall, RoutedOutcome, RpcEngine, RpcOutcome } from './types.js';

/** What the router needs of a handling connection. */
export interface RpcEndpoint {
  readonly id: string;
  /** Delivers a call to the handler (an `rpc.request` frame). */
  deliverCall(call: { callId: string; channel: string; method: string; params: unknown; caller: Publisher; timeoutMs: number }): void;
}

interface LocalHandler {
  endpoint: RpcEndpoint;
  /** Channel -> methods (null: all). */
  channels: Map<string, string[] | null>;
}

interface Serving {
  handlerId: string;
  channel: string;
  callerNode: string;
  timer: NodeJS.Timeout;
}

interface Waiting {
  settle(o: RpcOutcome): void;
  timer: NodeJS.Timeout;
}

export interface RpcRouterOptions {
  nodeId: string;
  engine: RpcEngine;
}

export class RpcRouter {
  private readonly engine: RpcEngine;
  private readonly nodeId: string;
  private readonly local = new Map<string, LocalHandler>();
  private readonly serving = new Map<string, Serving>();
  private readonly waiting = new Map<string, Waiting>();
  private seq = 0;
  private readonly prefix = randomBytes(6).toString('base64url');

  constructor(opts: RpcRouterOptions) {
    this.engine = opts.engine;
    this.nodeId = opts.nodeId;
  }

  async start(): Promise<void> {
    await this.engine.start(this.nodeId, { onCall: (c) => this.onCall(c), onOutcome: (o) => this.onOutcome(o) });
  }

  get kind(): string {
    return this.engine.kind;
  }

  /** Calls waiting for an outcome on this node, and calls this node's handlers are serving. */
  stats(): { waiting: number; serving: number; handlers: number } {
    return { waiting: this.waiting.size, serving: this.serving.size, handlers: this.local.size };
  }

  // ---- handlers -------------------------------------------------------------------------------

  /** Registers (or re-registers with new methods) `endpoint` as a handler of `channel`. */
  async register(endpoint: RpcEndpoint, channel: string, methods: string[] | null): Promise<void> {
    let h = this.local.get(endpoint.id);
    if (!h) this.local.set(endpoint.id, (h = { endpoint, channels: new Map() }));
    h.channels.set(channel, methods);
    try {
      await this.engine.register(channel, { handlerId: endpoint.id, node: this.nodeId, methods });
    } catch (err) {
      h.channels.delete(channel);
      if (h.channels.size === 0) this.local.delete(endpoint.id);
      throw toGatewayError(err);
    }
  }

  /** Stops `endpoint` handling `channel`; calls it was serving there end in RPC_HANDLER_GONE. */
  async unregister(endpoint: RpcEndpoint, channel: string): Promise<boolean> {
    const h = this.local.get(endpoint.id);
    if (!h?.channels.delete(channel)) return false;
    if (h.channels.size === 0) this.local.delete(endpoint.id);
    this.abandonServed(endpoint.id, channel, 'The handler stopped handling the channel');
    try {
      await this.engine.unregister(channel, endpoint.id);
    } catch (err) {
      throw toGatewayError(err);
    }
    return true;
  }

  /** The connection is gone: every registration goes, every call it was serving ends in RPC_HANDLER_GONE. */
  connectionClosed(endpoint: RpcEndpoint): void {
    const h = this.local.get(endpoint.id);
    if (!h) return;
    this.local.delete(endpoint.id);
    this.abandonServed(endpoint.id, null, 'The handler disconnected');
    for (const channel of h.channels.keys()) this.engine.unregister(channel, endpoint.id).catch(() => {});
  }

  /** Handlers on this node per channel (the gateway's own `$` channels left out): for the admin channel list. */
  handlerCounts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const h of this.local.values()) {
      for (const channel of h.channels.keys()) if (!channel.startsWith('$')) counts.set(channel, (counts.get(channel) ?? 0) + 1);
    }
    return counts;
  }

  /** The channels `endpoint` handles. */
  handled(endpoint: RpcEndpoint): string[] {
    return [...(this.local.get(endpoint.id)?.channels.keys() ?? [])];
  }

  /**
   * A handler's answer. Only the handler a call was routed to may answer it, once, before the
   * caller's timeout; anything else (late, unknown, another connection's) is dropped: false.
   */
  reply(endpoint: RpcEndpoint, callId: string, outcome: { result?: unknown; error?: { code?: string; message: string } }): boolean {
    const s = this.serving.get(callId);
    if (!s || s.handlerId !== endpoint.id) return false;
    this.serving.delete(callId);
    clearTimeout(s.timer);
    const o: RpcOutcome = outcome.error
      ? { ok: false, code: 'RPC_FAILED', message: outcome.error.message, ...(outcome.error.code ? { handlerCode: outcome.error.code } : {}) }
      : { ok: true, result: outcome.result ?? null };
    this.sendOutcome(s.callerNode, { callId, outcome: o });
    return true;
  }

  private abandonServed(handlerId: string, channel: string | null, message: string): void {
    for (const [callId, s] of this.serving) {
      if (s.handlerId !== handlerId || (channel !== null && s.channel !== channel)) continue;
      this.serving.delete(callId);
      clearTimeout(s.timer);
      this.sendOutcome(s.callerNode, { callId, outcome: { ok: false, code: 'RPC_HANDLER_GONE', message } });
    }
  }

  private sendOutcome(node: string, o: RoutedOutcome): void {
    if (node === this.nodeId) queueMicrotask(() => this.onOutcome(o));
    else this.engine.sendOutcome(node, o).catch(() => {}); // lost: the caller's timer answers
  }

  /** A call routed to a handler of this node. */
  private onCall(call: RoutedCall): void {
    const h = this.local.get(call.handlerId);
    const methods = h?.channels.get(call.channel);
    if (!h || methods === undefined) {
      this.sendOutcome(call.callerNode, { callId: call.callId, outcome: { ok: false, code: 'RPC_HANDLER_GONE', message: 'The handler went away before the call reached it' } });
      return;
    }
    const timeoutMs = Math.max(1, Math.floor(call.timeoutMs));
    // Past the caller's timeout the caller has its answer (RPC_TIMEOUT): forget the call.
    const timer = setTimeout(() => this.serving.delete(call.callId), timeoutMs);
    timer.unref();
    this.serving.set(call.callId, { handlerId: call.handlerId, channel: call.channel, callerNode: call.callerNode, timer });
    h.endpoint.deliverCall({ callId: call.callId, channel: call.channel, method: call.method, params: call.params, caller: call.caller, timeoutMs });
  }

  // ---- callers --------------------------------------------------------------------------------

  /**
   * Calls `method` on `channel`'s handler; resolves with its result. Rejects with a
   * {@link GatewayError}: RPC_NO_HANDLER, RPC_TIMEOUT, RPC_FAILED (the handler's message, its
   * code in `details.handlerCode`), RPC_HANDLER_GONE, or UNAVAILABLE when the engine is down.
   */
  async call(channel: string, method: string, params: unknown, caller: Publisher, timeoutMs: number): Promise<unknown> {
    const started = performance.now();
    const candidates = await this.handlersFor(channel, method);
    const callId = `rpc_${this.prefix}${(++this.seq).toString(36)}`;
    const outcome = this.await(callId, timeoutMs);
    const routed = await this.route(candidates, { callId, callerNode: this.nodeId, handlerId: '', channel, method, params, caller, timeoutMs }, started);
    if (!routed) {
      this.waiting.get(callId)?.settle({ ok: false, code: 'RPC_NO_HANDLER', message: `No handler for '${method}' on channel '${channel}'` });
    }
    const o = await outcome;
    if (o.ok) return o.result;
    throw new GatewayError(ErrorCode[o.code], o.message, o.handlerCode !== undefined ? { handlerCode: o.handlerCode } : {});
  }

  /**
   * Calls `method` on every live handler of `channel` at once (e.g. one per node), and resolves
   * when each has answered or timed out: one outcome per handler, in no particular order.
   */
  async callEach(channel: string, method: string, params: unknown, caller: Publisher, timeoutMs: number): Promise<{ handler: HandlerEntry; outcome: RpcOutcome }[]> {
    const handlers = await this.handlersFor(channel, method);
    return Promise.all(handlers.map(async (handler) => {
      const started = performance.now();
      const callId = `rpc_${this.prefix}${(++this.seq).toString(36)}`;
      const outcome = this.await(callId, timeoutMs);
      const routed = await this.route([handler], { callId, callerNode: this.nodeId, handlerId: '', channel, method, params, caller, timeoutMs }, started);
      if (!routed) this.waiting.get(callId)?.settle({ ok: false, code: 'RPC_HANDLER_GONE', message: `Node ${handler.node} is not listening` });
      return { handler, outcome: await outcome };
    }));
  }

  /** The live handlers of `channel` that serve `method`. */
  private async handlersFor(channel: string, method: string): Promise<HandlerEntry[]> {
    try {
      return (await this.engine.handlers(channel)).filter((e) => e.methods === null || e.methods.includes(method));
    } catch (err) {
      throw toGatewayError(err);
    }
  }

  /** The outcome of call `callId`, or RPC_TIMEOUT after `timeoutMs`. */
  private await(callId: string, timeoutMs: number): Promise<RpcOutcome> {
    return new Promise<RpcOutcome>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(callId);
        resolve({ ok: false, code: 'RPC_TIMEOUT', message: `No answer within ${timeoutMs} ms` });
      }, timeoutMs);
      this.waiting.set(callId, {
        timer,
        settle: (o) => {
          clearTimeout(timer);
          this.waiting.delete(callId);
          resolve(o);
        },
      });
    });
  }

  /** Sends the call to a live handler, local first; false when none took it. */
  private async route(candidates: HandlerEntry[], call: RoutedCall, started: number): Promise<boolean> {
    const local = candidates.filter((e) => e.node === this.nodeId && this.local.has(e.handlerId));
    const remote = shuffle(candidates.filter((e) => e.node !== this.nodeId));
    const order = [...shuffle(local), ...remote];
    for (const e of order) {
      const left = call.timeoutMs - (performance.now() - started);
      if (left <= 0 || !this.waiting.has(call.callId)) return true; // the timer has answered
      const c = { ...call, handlerId: e.handlerId, timeoutMs: left };
      if (e.node === this.nodeId) {
        queueMicrotask(() => this.onCall(c));
        return true;
      }
      try {
        if (await this.engine.sendCall(e.node, c)) return true;
      } catch (err) {
        this.waiting.get(call.callId)?.settle({ ok: false, code: 'RPC_HANDLER_GONE', message: toGatewayError(err).message });
        return true;
      }
      // That node is not listening (it died): its registration is stale; try the next one.
    }
    return false;
  }

  private onOutcome(o: RoutedOutcome): void {
    this.waiting.get(o.callId)?.settle(o.outcome);
  }

  /** Shutdown: every local registration is removed; calls waiting here end as the connections close. */
  async close(): Promise<void> {
    for (const [handlerId, h] of this.local) {
      this.abandonServed(handlerId, null, 'The handler\'s node is shutting down');
      for (const channel of h.channels.keys()) await this.engine.unregister(channel, handlerId).catch(() => {});
    }
    this.local.clear();
    for (const w of this.waiting.values()) w.settle({ ok: false, code: 'RPC_HANDLER_GONE', message: 'The node is shutting down' });
    await this.engine.close();
  }
}

function shuffle<T>(a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}
