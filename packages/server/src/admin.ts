/**
 * Cluster-wide administration: every node answers for its own connections and channels, and the
 * node that serves an admin request asks all of them at once. The questions travel as RPC calls
 * to each node's own handler on the reserved channel `$admin` (a name no client can register or
 * call: it is outside the channel grammar), so they use the RPC routing, node liveness and
 * timeouts: a node that does not answer in time is reported by id, never silently left out.
 */
import type { Publisher } from '@signalbox/protocol';
import { CloseCode } from '@signalbox/protocol';
import type { Connection } from './connection.js';
import type { Hub } from './hub/hub.js';
import type { RpcEndpoint, RpcRouter } from './rpc/router.js';

/** The channel every node handles for admin questions. */
export const ADMIN_CHANNEL = '$admin';
const ADMIN_CALLER: Publisher = Object.freeze({ via: 'gateway', service: 'admin' });

export interface ConnectionSummary {
  id: string;
  subject: string | null;
  node: string;
  remoteAddress: string;
  dialect: string;
  encoding: string;
  channels: string[];
  connectedSince: string;
  bytesBuffered: number;
}

export interface ChannelSummary {
  channel: string;
  subscribers: number;
  /** Connections registered as the channel's RPC handler (a page or bridge of `session:{id}`, an agent). */
  handlers: number;
  /** The stream's position as a node that carries the channel knows it; null and 0 where no node subscribes. */
  epoch: string | null;
  offset: number;
  nodes: { node: string; subscribers: number; handlers: number }[];
}

/** One node's part of the channel list. */
interface NodeChannel {
  channel: string;
  subscribers: number;
  handlers?: number;
  epoch: string | null;
  offset: number;
}

/** A node that did not answer (timeout, gone mid-question, engine down). */
export interface NodeFailure {
  node: string;
  code: string;
  message: string;
}

export interface ConnectionFilter {
  subject?: string;
  channel?: string;
}

export interface AdminServiceDeps {
  nodeId: string;
  rpc: RpcRouter;
  hub: () => Hub;
  connections: () => Iterable<Connection>;
  /** How long a node has to answer. */
  timeoutMs?: number;
}

export class AdminService {
  private readonly endpoint: RpcEndpoint;
  private readonly timeoutMs: number;

  constructor(private readonly deps: AdminServiceDeps) {
    this.timeoutMs = deps.timeoutMs ?? 3000;
    this.endpoint = {
      id: `admin_${deps.nodeId}`,
      deliverCall: (call) => {
        let outcome: { result?: unknown; error?: { code?: string; message: string } };
        try {
          outcome = { result: this.answer(call.method, (call.params ?? {}) as Record<string, unknown>) };
        } catch (err) {
          outcome = { error: { code: 'ADMIN_ERROR', message: (err as Error).message } };
        }
        deps.rpc.reply(this.endpoint, call.callId, outcome);
      },
    };
  }

  /** Registers this node as one of the admin handlers. */
  async start(): Promise<void> {
    await this.deps.rpc.register(this.endpoint, ADMIN_CHANNEL, null);
  }

  // ---- this node's part ------------------------------------------------------------------------

  private find(id: unknown): Connection | undefined {
    for (const c of this.deps.connections()) if (c.id === id) return c;
    return undefined;
  }

  private answer(method: string, p: Record<string, unknown>): unknown {
    switch (method) {
      case 'connections': {
        const out: ConnectionSummary[] = [];
        for (const c of this.deps.connections()) {
          if (!c.isOpen) continue;
          if (typeof p.subject === 'string' && c.subject !== p.subject) continue;
          const channels = c.channels;
          if (typeof p.channel === 'string' && !channels.includes(p.channel)) continue;
          out.push({
            id: c.id, subject: c.subject, node: this.deps.nodeId, remoteAddress: c.ip, dialect: c.dialect, encoding: c.encoding,
            channels, connectedSince: new Date(c.connectedAt).toISOString(), bytesBuffered: c.bytesBuffered,
          });
        }
        return out;
      }
      case 'disconnect': {
        const c = this.find(p.id);
        if (!c) return { found: false };
        c.close(CloseCode.DISCONNECTED, typeof p.reason === 'string' ? p.reason.slice(0, 100) : 'disconnected by an administrator');
        return { found: true };
      }
      case 'unsubscribe': {
        const c = this.find(p.id);
        if (!c) return { found: false, removed: false };
        return { found: true, removed: typeof p.channel === 'string' && c.removeSubscription(p.channel) };
      }
      case 'channels': {
        const handlers = this.deps.rpc.handlerCounts();
        const out: NodeChannel[] = this.deps.hub().channelStats().map((c) => ({ ...c, handlers: handlers.get(c.channel) ?? 0 }));
        for (const c of out) handlers.delete(c.channel);
        for (const [channel, n] of handlers) out.push({ channel, subscribers: 0, handlers: n, epoch: null, offset: 0 });
        return out;
      }
      default:
        throw new Error(`Unknown admin method '${method}'`);
    }
  }

  // ---- the cluster -----------------------------------------------------------------------------

  /** Asks every live node; answers and the nodes that did not answer. */
  private async ask<T>(method: string, params: unknown): Promise<{ answers: { node: string; result: T }[]; unavailable: NodeFailure[] }> {
    const outcomes = await this.deps.rpc.callEach(ADMIN_CHANNEL, method, params, ADMIN_CALLER, this.timeoutMs);
    const answers: { node: string; result: T }[] = [];
    const unavailable: NodeFailure[] = [];
    for (const { handler, outcome } of outcomes) {
      if (outcome.ok) answers.push({ node: handler.node, result: outcome.result as T });
      else unavailable.push({ node: handler.node, code: outcome.code, message: outcome.message });
    }
    return { answers, unavailable };
  }

  /** Every node's connections matching `filter`, by id; a page of `limit` after `cursor` (an id). */
  async connections(filter: ConnectionFilter, limit: number, cursor?: string): Promise<{ connections: ConnectionSummary[]; next: string | null; nodes: string[]; unavailable: NodeFailure[] }> {
    const { answers, unavailable } = await this.ask<ConnectionSummary[]>('connections', filter);
    const all = answers.flatMap((a) => a.result).sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
    const from = cursor === undefined ? 0 : all.findIndex((c) => c.id > cursor);
    const page = from < 0 ? [] : all.slice(from, from + limit);
    const next = from >= 0 && from + limit < all.length ? page[page.length - 1]!.id : null;
    return { connections: page, next, nodes: answers.map((a) => a.node).sort(), unavailable };
  }

  /** Closes connection `id` wherever it is (close code 4003). */
  async disconnect(id: string, reason?: string): Promise<{ found: boolean; node?: string; unavailable: NodeFailure[] }> {
    const { answers, unavailable } = await this.ask<{ found: boolean }>('disconnect', { id, reason });
    const hit = answers.find((a) => a.result.found);
    return { found: hit !== undefined, ...(hit ? { node: hit.node } : {}), unavailable };
  }

  /** Removes one subscription from connection `id` (it is told `subscription.removed`). */
  async unsubscribe(id: string, channel: string): Promise<{ found: boolean; removed: boolean; unavailable: NodeFailure[] }> {
    const { answers, unavailable } = await this.ask<{ found: boolean; removed: boolean }>('unsubscribe', { id, channel });
    const hit = answers.find((a) => a.result.found);
    return { found: hit !== undefined, removed: hit?.result.removed ?? false, unavailable };
  }

  /**
   * Channels with subscribers or RPC handlers anywhere in the cluster, summed over nodes; `search`
   * is a substring. A channel only handled (a watched page's session nobody watches yet) is listed too.
   */
  async channels(search: string | undefined, limit: number): Promise<{ channels: ChannelSummary[]; total: number; nodes: string[]; unavailable: NodeFailure[] }> {
    const { answers, unavailable } = await this.ask<NodeChannel[]>('channels', {});
    const byName = new Map<string, ChannelSummary>();
    for (const { node, result } of answers) {
      for (const s of result) {
        if (search && !s.channel.includes(search)) continue;
        let c = byName.get(s.channel);
        if (!c) byName.set(s.channel, (c = { channel: s.channel, subscribers: 0, handlers: 0, epoch: s.epoch, offset: s.offset, nodes: [] }));
        const handlers = s.handlers ?? 0; // a node of an earlier version does not count them
        c.subscribers += s.subscribers;
        c.handlers += handlers;
        if (s.offset > c.offset) Object.assign(c, { offset: s.offset, epoch: s.epoch });
        c.nodes.push({ node, subscribers: s.subscribers, handlers });
      }
    }
    const all = [...byName.values()].sort((x, y) => y.subscribers - x.subscribers || y.handlers - x.handlers || (x.channel < y.channel ? -1 : 1));
    return { channels: all.slice(0, limit), total: all.length, nodes: answers.map((a) => a.node).sort(), unavailable };
  }
}
