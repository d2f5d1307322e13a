/**
 * The embedded RPC engine: one node, its handlers in a map, its inbox a function call (on the
 * next microtask, as a message from another node would arrive).
 */
import type { HandlerEntry, RoutedCall, RoutedOutcome, RpcEngine, RpcInbox } from './types.js';

export class MemoryRpcEngine implements RpcEngine {
  readonly kind = 'memory';
  private nodeId = '';
  private inbox: RpcInbox | null = null;
  private readonly byChannel = new Map<string, Map<string, HandlerEntry>>();

  async start(nodeId: string, inbox: RpcInbox): Promise<void> {
    this.nodeId = nodeId;
    this.inbox = inbox;
  }

  async register(channel: string, entry: HandlerEntry): Promise<void> {
    let m = this.byChannel.get(channel);
    if (!m) this.byChannel.set(channel, (m = new Map()));
    m.set(entry.handlerId, { ...entry, methods: entry.methods ? [...entry.methods] : null });
  }

  async unregister(channel: string, handlerId: string): Promise<void> {
    const m = this.byChannel.get(channel);
    if (!m) return;
    m.delete(handlerId);
    if (m.size === 0) this.byChannel.delete(channel);
  }

  async handlers(channel: string): Promise<HandlerEntry[]> {
    return [...(this.byChannel.get(channel)?.values() ?? [])].map((e) => ({ ...e }));
  }

  async sendCall(node: string, call: RoutedCall): Promise<boolean> {
    const inbox = this.inbox;
    if (node !== this.nodeId || !inbox) return false;
    queueMicrotask(() => inbox.onCall(call));
    return true;
  }

  async sendOutcome(node: string, o: RoutedOutcome): Promise<void> {
    const inbox = this.inbox;
    if (node !== this.nodeId || !inbox) return;
    queueMicrotask(() => inbox.onOutcome(o));
  }

  async close(): Promise<void> {
    this.inbox = null;
    this.byChannel.clear();
  }
}
