/**
 * RPC across nodes on Redis.
 *
 * - Registry: per channel a hash `{prefix}:{<channel>}:rpc` of handler id -> `{node, methods}`.
 * - Liveness: each node keeps `{prefix}:rpc:node:<node>` alive (PX `livenessMs`, refreshed three
 *   times per period). A handler whose node key is gone is not listed, and is deleted when seen:
 *   a node killed with SIGKILL drops out within `livenessMs`.
 * - Inbox: each node subscribes to `{prefix}:rpc:inbox:<node>`; calls and outcomes are
 *   MessagePack `[kind, body]` published there. PUBLISH answers how many received it: 0 means the
 *   node is not listening (dead), and the caller picks another handler at once.
 *
 * Pub/sub is at most once: a call lost with a dropped connection ends in RPC_TIMEOUT, never in
 * two executions.
 */
import type { Redis } from 'ioredis';
import { decodeMsgpack, encodeMsgpack } from '@signalbox/protocol';
import { RedisConnection, type RedisLogger } from '../redis/connection.js';
import { redisCall } from '../redis/errors.js';
import { checkPrefix, redisRpcKeys, type RedisRpcKeys } from '../redis/keys.js';
import type { HandlerEntry, RoutedCall, RoutedOutcome, RpcEngine, RpcInbox } from './types.js';

export interface RedisRpcEngineOptions {
  url: string;
  prefix?: string;
  commandTimeoutMs?: number;
  /** How long a node's registrations outlive its last sign of life. */
  livenessMs?: number;
  logger?: RedisLogger;
}

const CALL = 1;
const OUTCOME = 2;

export class RedisRpcEngine implements RpcEngine {
  readonly kind = 'redis';
  private readonly cmdConn: RedisConnection;
  private readonly subConn: RedisConnection;
  private readonly cmd: Redis;
  private readonly sub: Redis;
  private readonly keys: RedisRpcKeys;
  private readonly livenessMs: number;
  private readonly timeoutMs: number;
  private nodeId = '';
  private inbox: RpcInbox | null = null;
  private aliveTimer: NodeJS.Timeout | null = null;
  /** This node's registrations, re-made after a reconnect (Redis may have restarted empty). */
  private readonly mine = new Map<string, Map<string, HandlerEntry>>();

  constructor(opts: RedisRpcEngineOptions) {
    this.keys = redisRpcKeys(checkPrefix(opts.prefix, 'RedisRpcEngine'));
    this.timeoutMs = opts.commandTimeoutMs ?? 2000;
    this.livenessMs = opts.livenessMs ?? 5000;
    const common = { url: opts.url, commandTimeoutMs: this.timeoutMs, logger: opts.logger };
    this.cmdConn = new RedisConnection({ ...common, name: 'signalbox-rpc', impact: 'RPC calls unavailable' });
    // ioredis re-subscribes the inbox by itself after a reconnect: nothing to resync.
    this.subConn = new RedisConnection({ ...common, name: 'signalbox-rpc-sub', impact: 'RPC calls to this node unavailable' });
    this.cmd = this.cmdConn.client;
    this.sub = this.subConn.client;
    this.cmd.on('ready', () => void this.remake());
    this.sub.on('messageBuffer', (_topic: Buffer, message: Buffer) => this.onMessage(message));
  }

  async start(nodeId: string, inbox: RpcInbox): Promise<void> {
    this.nodeId = nodeId;
    this.inbox = inbox;
    const settle = <T>(p: Promise<T>) => Promise.race([p.catch(() => {}), new Promise((r) => setTimeout(r, this.timeoutMs).unref())]);
    await settle(Promise.all([this.cmdConn.connect(), this.subConn.connect()]));
    await settle(this.sub.subscribe(this.keys.inbox(nodeId)));
    await settle(this.beat());
    this.aliveTimer = setInterval(() => void this.beat().catch(() => {}), Math.max(100, Math.floor(this.livenessMs / 3)));
    this.aliveTimer.unref();
  }

  private async beat(): Promise<void> {
    await this.cmd.set(this.keys.node(this.nodeId), '1', 'PX', this.livenessMs);
  }

  /** After a reconnect: prove this node alive and put its registrations back. */
  private async remake(): Promise<void> {
    if (!this.nodeId) return;
    try {
      await this.beat();
      for (const [channel, entries] of this.mine) {
        for (const e of entries.values()) await this.write(channel, e);
      }
    } catch {
      // The next reconnect (or the next beat) tries again.
    }
  }

  private run<T>(what: string, op: () => Promise<T>): Promise<T> {
    return redisCall(`rpc ${what}`, op);
  }

  private write(channel: string, e: HandlerEntry): Promise<unknown> {
    return this.cmd.hset(this.keys.registry(channel), e.handlerId, JSON.stringify({ node: e.node, methods: e.methods }));
  }

  async register(channel: string, entry: HandlerEntry): Promise<void> {
    let m = this.mine.get(channel);
    if (!m) this.mine.set(channel, (m = new Map()));
    m.set(entry.handlerId, entry);
    await this.run('register', () => this.write(channel, entry));
  }

  async unregister(channel: string, handlerId: string): Promise<void> {
    const m = this.mine.get(channel);
    m?.delete(handlerId);
    if (m?.size === 0) this.mine.delete(channel);
    await this.run('unregister', () => this.cmd.hdel(this.keys.registry(channel), handlerId));
  }

  async handlers(channel: string): Promise<HandlerEntry[]> {
    const key = this.keys.registry(channel);
    const raw = await this.run('handlers', () => this.cmd.hgetall(key));
    const entries: HandlerEntry[] = [];
    for (const [handlerId, v] of Object.entries(raw)) {
      try {
        const e = JSON.parse(v) as { node: unknown; methods: unknown };
        if (typeof e.node === 'string') entries.push({ handlerId, node: e.node, methods: Array.isArray(e.methods) ? (e.methods as string[]) : null });
      } catch {
        // Not ours: ignored.
      }
    }
    const nodes = [...new Set(entries.map((e) => e.node))];
    if (nodes.length === 0) return [];
    const alive = await this.run('handlers', () => this.cmd.mget(...nodes.map((n) => this.keys.node(n))));
    const dead = new Set(nodes.filter((_, i) => alive[i] === null));
    if (dead.size === 0) return entries;
    const gone = entries.filter((e) => dead.has(e.node)).map((e) => e.handlerId);
    this.cmd.hdel(key, ...gone).catch(() => {});
    return entries.filter((e) => !dead.has(e.node));
  }

  async sendCall(node: string, call: RoutedCall): Promise<boolean> {
    const n = await this.run('call', () => this.cmd.publish(this.keys.inbox(node), Buffer.from(encodeMsgpack([CALL, call]))));
    return n > 0;
  }

  async sendOutcome(node: string, o: RoutedOutcome): Promise<void> {
    await this.run('outcome', () => this.cmd.publish(this.keys.inbox(node), Buffer.from(encodeMsgpack([OUTCOME, o]))));
  }

  private onMessage(message: Buffer): void {
    const inbox = this.inbox;
    if (!inbox) return;
    let value: unknown;
    try {
      value = decodeMsgpack(message);
    } catch {
      return;
    }
    if (!Array.isArray(value) || value.length !== 2 || typeof value[1] !== 'object' || value[1] === null) return;
    if (value[0] === CALL) inbox.onCall(value[1] as RoutedCall);
    else if (value[0] === OUTCOME) inbox.onOutcome(value[1] as RoutedOutcome);
  }

  async close(): Promise<void> {
    if (this.aliveTimer) clearInterval(this.aliveTimer);
    this.inbox = null;
    // Leave no registration behind: the node key goes first, so nothing lists this node meanwhile.
    try {
      if (this.cmd.status === 'ready') {
        await this.cmd.del(this.keys.node(this.nodeId));
        for (const [channel, entries] of this.mine) await this.cmd.hdel(this.keys.registry(channel), ...entries.keys());
      }
    } catch {
      // Expires by itself within livenessMs.
    }
    this.mine.clear();
    await Promise.all([this.cmdConn.close(), this.subConn.close()]);
  }
}
