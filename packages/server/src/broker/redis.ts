/**
 * Redis broker: the distributed engine. Every node talks to one Redis; nodes share nothing else.
 *
 * - Publish is ONE Lua script per channel (redis-scripts.ts): idempotency check, next offset,
 *   append to a capped stream, TTLs, PUBLISH. Redis runs scripts atomically, so offsets are
 *   consecutive and history order is offset order across all nodes.
 * - Time comes from Redis `TIME`: one clock for every node.
 * - Fan-out: a dedicated subscriber connection SUBSCRIBEs each channel's exact topic.
 * - When the subscriber connection comes back after a loss, `onResync(null)` tells the hub to
 *   re-read streams: pub/sub is at-most-once, streams are the source of truth.
 * - While the command connection is down, publish/history fail fast with BrokerUnavailableError;
 *   a hung Redis (TCP up, no replies) fails them after `commandTimeoutMs` and drops the socket.
 *
 * Connections, key layout, scripts and error mapping are the shared Redis layer (src/redis/),
 * which the presence store uses too. Key layout and failure behaviour: docs/redis.md.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { decodeMsgpack, encodeMsgpack, isPublisher, type Publication, type Publisher } from '@signalbox/protocol';
import { appendRefused, appendsDisabled, publisherScope } from './append.js';
import { generatePublicationId } from './memory.js';
import { NOOP_LOGGER, REDIS_DEFAULTS, RedisConnection, positive as positiveOption, type RedisLogger } from '../redis/connection.js';
import { errMessage, redisCall } from '../redis/errors.js';
import { checkPrefix, redisChannelKeys } from '../redis/keys.js';
import { SCRIPTS } from '../redis/scripts.js';
import {
  BrokerUnavailableError,
  type Broker,
  type BrokerHandler,
  type HistoryQuery,
  type HistoryResult,
  type PublishRequest,
  type PublishResult,
  type CompactingBroker,
  type CompactionRequest,
} from './types.js';

/** Structured logger (pino-compatible subset). */
export type BrokerLogger = RedisLogger;

// The key layout moved to src/redis/keys.ts; re-exported for existing importers.
export { escapeChannelTag, redisChannelKeys, type RedisChannelKeys } from '../redis/keys.js';

export interface RedisBrokerOptions {
  /** `redis://[user:pass@]host:port[/db]` or `rediss://...`. */
  url: string;
  /** Prefix of every key and pub/sub topic, so several deployments can share one Redis. Default `signalbox`. */
  prefix?: string;
  /** A command without a reply for this long fails with BrokerUnavailableError and drops the socket. Default 2000. */
  commandTimeoutMs?: number;
  /** How long a stream's position (epoch, offset) outlives its last publication. Default 24 h. */
  streamMetaTtlMs?: number;
  /** How long `start` waits for Redis before resolving anyway (not ready; reconnects in the background). Default 10 s. */
  startTimeoutMs?: number;
  /**
   * Both connections are PINGed this often, so a silent Redis or a dead network path is noticed
   * within `heartbeatMs + commandTimeoutMs` even when idle (an idle subscriber connection would
   * otherwise miss publications until TCP keepalive gives up, minutes later). Default 5000.
   */
  heartbeatMs?: number;
  /** Reconnect backoff: first delay and cap, ms (exponential, jittered, forever). Default 50 / 2000. */
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  logger?: BrokerLogger;
}

/** Channels at most this many per SUBSCRIBE when re-subscribing after a reconnect. */
const SUBSCRIBE_CHUNK = 500;

const publishScript = SCRIPTS.publish;
const historyScript = SCRIPTS.history;
const compactScript = SCRIPTS.compact;

export class RedisBroker implements Broker, CompactingBroker {
  readonly kind = 'redis';
  private readonly prefix: string;
  private readonly commandTimeoutMs: number;
  private readonly metaTtlMs: number;
  private readonly startTimeoutMs: number;
  private readonly heartbeatMs: number;
  private heartbeat: NodeJS.Timeout | null = null;
  private readonly log: BrokerLogger;
  /** Commands: scripts, history. */
  private readonly cmdConn: RedisConnection;
  private readonly cmd: Redis;
  /** Pub/sub only (a subscribed RESP2 connection cannot run commands; keeping them apart also isolates failures). */
  private readonly subConn: RedisConnection;
  private readonly sub: Redis;
  private handler: BrokerHandler | null = null;
  private started = false;
  private closed = false;
  private ready = false;
  private subReady = false;
  /** Set when publications may have been missed (subscriber connection lost, or a deferred subscribe). */
  private needsResync = false;
  /** Bumped on every subscriber connection change, so a stale re-subscribe pass stops. */
  private subGeneration = 0;
  /** Pub/sub topic -> channel, for every channel the hub asked for. The truth the connection converges to. */
  private readonly wanted = new Map<string, string>();
  /** `waitFor` callbacks, re-checked on every readiness change. */
  private readonly stateListeners = new Set<() => void>();

  constructor(opts: RedisBrokerOptions) {
    this.prefix = checkPrefix(opts.prefix, 'RedisBroker');
    this.commandTimeoutMs = positive(opts.commandTimeoutMs, REDIS_DEFAULTS.commandTimeoutMs, 'commandTimeoutMs');
    this.metaTtlMs = positive(opts.streamMetaTtlMs, 24 * 3600_000, 'streamMetaTtlMs');
    this.startTimeoutMs = positive(opts.startTimeoutMs, 10_000, 'startTimeoutMs');
    this.heartbeatMs = positive(opts.heartbeatMs, 5000, 'heartbeatMs');
    const reconnectBaseMs = positive(opts.reconnectBaseMs, REDIS_DEFAULTS.reconnectBaseMs, 'reconnectBaseMs');
    const reconnectMaxMs = positive(opts.reconnectMaxMs, REDIS_DEFAULTS.reconnectMaxMs, 'reconnectMaxMs');
    this.log = opts.logger ?? NOOP_LOGGER;

    // One options block for every gateway connection (src/redis/connection.ts), which also logs
    // each connection's status changes.
    const common = { url: opts.url, commandTimeoutMs: this.commandTimeoutMs, reconnectBaseMs, reconnectMaxMs, logger: this.log };
    this.cmdConn = new RedisConnection({ ...common, name: 'signalbox-broker', impact: 'publish/history unavailable' });
    // We re-subscribe ourselves, to know when it is done and only then ask the hub to resync.
    this.subConn = new RedisConnection({ ...common, name: 'signalbox-broker-sub', subscriber: true, impact: 'live delivery paused until it is back' });
    this.cmd = this.cmdConn.client;
    this.sub = this.subConn.client;

    this.cmd.on('ready', () => this.setReady(true));
    this.cmd.on('close', () => this.setReady(false));
    this.sub.on('ready', () => void this.onSubReady());
    this.sub.on('close', () => this.onSubClose());
    this.sub.on('messageBuffer', (topic: Buffer, message: Buffer) => this.onMessage(topic, message));
  }

  /**
   * Connects and waits (at most `startTimeoutMs`) until both connections are ready. If Redis is
   * not reachable by then, resolves anyway with `isReady() === false` and keeps reconnecting: the
   * node reports not-ready and serves once Redis appears (`onReadyChange(true)`).
   */
  async start(handler: BrokerHandler): Promise<void> {
    if (this.closed) throw new BrokerUnavailableError('RedisBroker is closed');
    if (this.started) throw new Error('RedisBroker already started');
    this.started = true;
    this.handler = handler;
    this.heartbeat = setInterval(() => this.beat(), this.heartbeatMs);
    this.heartbeat.unref();
    // Resolve on the first attempt, failed or not; reconnecting goes on regardless.
    void this.cmdConn.connect();
    void this.subConn.connect();
    const inTime = await this.waitFor(() => this.closed || (this.ready && this.subReady), this.startTimeoutMs);
    if (!inTime && !this.closed) {
      this.log.warn(
        { err: (this.cmdConn.lastError ?? this.subConn.lastError)?.message, timeoutMs: this.startTimeoutMs },
        'redis broker: Redis not reachable at start; reconnecting in the background',
      );
    }
  }

  isReady(): boolean {
    return this.ready && !this.closed;
  }

  async publish(req: PublishRequest): Promise<PublishResult> {
    this.assertUsable('publish');
    const appends = req.appends === true;
    if (req.appendTo !== undefined && !appends) throw appendsDisabled(req.channel, req.appendTo);
    const keys = redisChannelKeys(this.prefix, req.channel);
    const size = req.history.size;
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`history.size must be a non-negative integer, got ${size}`);
    const histTtl = ttlArg(req.history.ttlMs);
    const metaTtl = histTtl < 0 ? -1 : Math.max(this.metaTtlMs, histTtl);
    const windowMs = ttlArg(req.idempotencyWindowMs);
    const hasKey = req.idempotencyKey !== undefined;
    const id = req.id ?? req.idempotencyKey ?? generatePublicationId();
    const body = encodeMsgpack({
      id,
      channel: req.channel,
      type: req.type,
      data: req.data,
      publisher: req.publisher,
      ...(req.appendTo !== undefined ? { appendTo: req.appendTo } : {}),
    });
    const reply = await this.call('publish', () =>
      publishScript.run(
        this.cmd,
        [keys.meta, keys.stream, `${keys.idem}${req.idempotencyKey ?? ''}`, keys.msgs, keys.order],
        appends
          ? [
            keys.topic, size, histTtl, metaTtl, windowMs, newEpochSeed(), body, hasKey ? '1' : '0', '1',
            req.appendTo ?? '', publisherScope(req.publisher), id, ...foldArgs(req.data, req.appendTo !== undefined),
          ]
          // The plain path (no appends on this channel): no index, no fold arguments.
          : [keys.topic, size, histTtl, metaTtl, windowMs, newEpochSeed(), body, hasKey ? '1' : '0', '0'],
      ),
    );
    if (Array.isArray(reply) && reply.length === 1 && req.appendTo !== undefined) {
      const code = Number(reply[0]);
      if (code === 2) throw appendRefused('other_publisher', req.channel, req.appendTo);
      if (code === 3) throw appendRefused('not_found', req.channel, req.appendTo);
    }
    if (!Array.isArray(reply) || reply.length !== 2 || !Buffer.isBuffer(reply[1])) throw new Error('redis broker: unexpected publish reply');
    return { publication: decodeMessage(reply[1]), duplicate: Number(reply[0]) === 1 };
  }

  async clearHistory(channel: string): Promise<void> {
    this.assertUsable('clear history');
    const { stream, msgs, order } = redisChannelKeys(this.prefix, channel);
    await this.call('clear history', () => this.cmd.del(stream, msgs, order));
  }

  async history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    this.assertUsable('history');
    const keys = redisChannelKeys(this.prefix, channel);
    const limit = query.limit === undefined ? -1 : Math.max(0, Math.floor(query.limit));
    let mode: 'since' | 'last' | 'all' | 'none' | 'compact';
    let from = '0';
    if (limit === 0) mode = 'none';
    else if (query.since) {
      mode = 'since';
      // Offsets > since.offset, i.e. stream ids >= (floor(since)+1)-0.
      from = String(Math.max(0, Math.floor(query.since.offset)) + 1);
    } else if (query.compact) mode = 'compact';
    else mode = limit === -1 ? 'all' : 'last';
    const metaTtl = this.metaTtlMs;
    const reply = await this.call('history', () =>
      historyScript.run(this.cmd, [keys.meta, keys.stream, keys.msgs, keys.order], [metaTtl, newEpochSeed(), mode, from, limit]),
    );
    if (!Array.isArray(reply) || reply.length < 3) throw new Error('redis broker: unexpected history reply');
    const [epoch, offset, earliest, ...messages] = reply as [Buffer, number, number, ...unknown[]];
    const publications = mode === 'compact'
      ? messages.map((m) => foldedMessage(m)).filter((p) => p.appendTo === undefined)
      : messages.map((m) => decodeMessage(m as Buffer));
    return {
      publications,
      position: { epoch: epoch.toString(), offset: Number(offset) },
      earliestOffset: Number(earliest),
    };
  }

  /** Compaction (see {@link CompactingBroker}): one Lua script, atomic with the trim. */
  async compact(req: CompactionRequest): Promise<boolean> {
    this.assertUsable('compact');
    const keys = redisChannelKeys(this.prefix, req.channel);
    const bodies = req.parts.map((p) => encodeMsgpack({ id: p.id, channel: req.channel, type: p.type, data: p.data, publisher: req.publisher }));
    const reply = await this.call('compact', () => compactScript.run(this.cmd, [keys.meta, keys.stream, keys.order], [req.epoch, req.through, req.throughId, ...bodies]));
    return Number(reply) === 1;
  }

  /**
   * Adds the channel to the wanted set and, when the subscriber connection is up, waits for the
   * SUBSCRIBE confirmation. When it is down (or the SUBSCRIBE fails), resolves anyway: the
   * connection re-subscribes everything when it is back and then calls `onResync(null)`, so the
   * hub re-reads the stream and misses nothing.
   */
  async subscribe(channel: string): Promise<void> {
    if (this.closed) throw new BrokerUnavailableError('RedisBroker is closed');
    const { topic } = redisChannelKeys(this.prefix, channel);
    if (this.wanted.has(topic)) return;
    this.wanted.set(topic, channel);
    if (!this.subReady) {
      this.needsResync = true;
      return;
    }
    try {
      await this.sub.subscribe(topic);
    } catch (err) {
      if (!this.wanted.has(topic) || this.closed) return;
      this.log.warn({ err: errMessage(err), channel }, 'redis broker: SUBSCRIBE failed; reconnecting the subscriber connection');
      this.needsResync = true;
      // A fresh connection re-subscribes the whole wanted set, then resyncs.
      if (this.sub.status === 'ready') this.sub.disconnect(true);
    }
  }

  async unsubscribe(channel: string): Promise<void> {
    const { topic } = redisChannelKeys(this.prefix, channel);
    if (!this.wanted.delete(topic)) return;
    if (!this.subReady || this.closed) return;
    try {
      await this.sub.unsubscribe(topic);
    } catch (err) {
      // Harmless: messages of topics no longer wanted are dropped, and a reconnect forgets them.
      this.log.warn({ err: errMessage(err), channel }, 'redis broker: UNSUBSCRIBE failed');
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    this.handler = null;
    this.ready = false;
    this.subReady = false;
    this.wanted.clear();
    this.notifyState();
    await Promise.all([this.cmdConn.close(), this.subConn.close()]);
  }

  private beat(): void {
    // No reply within commandTimeoutMs makes ioredis drop the socket (socketTimeout): readiness
    // falls, the subscriber reconnects and resyncs. The PING's own error needs no handling.
    for (const client of [this.cmd, this.sub]) if (client.status === 'ready') client.ping().catch(() => {});
  }

  /** Resolves true once `cond()` holds (re-checked on every state change), false after `timeoutMs`. */
  private waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
    if (cond()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = (): void => {
        if (cond()) finish(true);
      };
      const finish = (ok: boolean): void => {
        clearTimeout(timer);
        this.stateListeners.delete(check);
        resolve(ok);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.stateListeners.add(check);
    });
  }

  private notifyState(): void {
    for (const listener of [...this.stateListeners]) listener();
  }

  private assertUsable(op: string): void {
    if (this.closed) throw new BrokerUnavailableError(`RedisBroker is closed (${op})`);
    if (!this.ready) {
      const cause = this.cmdConn.lastError;
      throw new BrokerUnavailableError(`Redis unavailable (${op}): ${cause?.message ?? 'not connected'}`, { cause: cause ?? undefined });
    }
  }

  /** Runs a command, turning connection loss, timeouts and transient server states into BrokerUnavailableError. */
  private call<T>(op: string, fn: () => Promise<T>): Promise<T> {
    return redisCall(op, fn);
  }

  private setReady(ready: boolean): void {
    if (this.closed || ready === this.ready) return;
    this.ready = ready;
    this.notifyState();
    // The status change itself is logged by the connection (src/redis/connection.ts).
    this.notifyHandler('onReadyChange', (h) => h.onReadyChange?.(ready));
  }

  private onSubClose(): void {
    this.subGeneration++;
    if (!this.subReady) return;
    this.subReady = false;
    this.notifyState();
    // Whatever was published while we were away never reaches us through pub/sub.
    this.needsResync = true;
  }

  private async onSubReady(): Promise<void> {
    if (this.closed) return;
    const generation = ++this.subGeneration;
    const done = new Set<string>();
    try {
      // Loop: channels wanted while this pass runs are picked up before we declare the connection live.
      while (true) {
        const pending = [...this.wanted.keys()].filter((t) => !done.has(t));
        if (pending.length === 0) break;
        for (let i = 0; i < pending.length; i += SUBSCRIBE_CHUNK) {
          const chunk = pending.slice(i, i + SUBSCRIBE_CHUNK);
          await this.sub.subscribe(...chunk);
          if (generation !== this.subGeneration || this.closed) return;
          for (const t of chunk) done.add(t);
        }
      }
      const unwanted = [...done].filter((t) => !this.wanted.has(t));
      if (unwanted.length > 0) await this.sub.unsubscribe(...unwanted);
    } catch (err) {
      if (generation !== this.subGeneration || this.closed) return;
      this.log.warn({ err: errMessage(err), channels: this.wanted.size }, 'redis broker: re-subscribe failed; reconnecting');
      if (this.sub.status === 'ready') this.sub.disconnect(true);
      return;
    }
    if (generation !== this.subGeneration || this.closed) return;
    this.subReady = true;
    if (this.needsResync) {
      this.needsResync = false;
      this.log.info({ channels: this.wanted.size }, 'redis broker: pub/sub connection live again; asking the hub to resync');
      this.notifyHandler('onResync', (h) => h.onResync(null));
    }
    this.notifyState();
  }

  /** Calls the hub from a connection event: a throwing handler must not become an uncaught exception. */
  private notifyHandler(what: string, call: (handler: BrokerHandler) => void): void {
    const handler = this.handler;
    if (!handler) return;
    try {
      call(handler);
    } catch (err) {
      this.log.error({ err: errMessage(err) }, `redis broker: ${what} threw`);
    }
  }

  private onMessage(topic: Buffer, message: Buffer): void {
    const channel = this.wanted.get(topic.toString());
    const handler = this.handler;
    if (channel === undefined || handler === null) return;
    let pub: Publication;
    try {
      pub = decodeMessage(message);
    } catch (err) {
      this.log.error({ err: errMessage(err), channel }, 'redis broker: undecodable pub/sub message dropped');
      return;
    }
    if (pub.channel !== channel) return;
    try {
      handler.onPublication(pub);
    } catch (err) {
      // A throwing handler must not break the connection's reply parser.
      this.log.error({ err: errMessage(err), channel }, 'redis broker: onPublication threw');
    }
  }
}

/** Decodes `[epoch, offset, time, {id, channel, type, data, publisher?}]` (see redis-scripts.ts). */
function decodeMessage(buf: Buffer): Publication {
  const value = decodeMsgpack(buf);
  if (!Array.isArray(value) || value.length !== 4) throw new Error('malformed broker message');
  const [epoch, offset, time, body] = value as [unknown, unknown, unknown, unknown];
  if (typeof epoch !== 'string' || typeof offset !== 'number' || typeof time !== 'number' || typeof body !== 'object' || body === null) {
    throw new Error('malformed broker message');
  }
  const b = body as Record<string, unknown>;
  if (typeof b.id !== 'string' || typeof b.channel !== 'string' || typeof b.type !== 'string') throw new Error('malformed broker message body');
  return {
    id: b.id,
    channel: b.channel,
    type: b.type,
    data: b.data,
    offset,
    epoch,
    time,
    publisher: readPublisher(b.publisher),
    ...(typeof b.appendTo === 'string' ? { appendTo: b.appendTo } : {}),
  };
}

/** The kind of a publication's data, as the publish script folds it: string, plain object, or anything else. */
function dataKind(data: unknown): 's' | 'o' | 'v' {
  if (typeof data === 'string') return 's';
  return isPlainObject(data) ? 'o' : 'v';
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/**
 * The publish script's fold arguments: the data's kind and, for an append, its parts (strings as
 * UTF-8, anything else as MessagePack), so Lua folds without decoding a value (see scripts.ts).
 */
function foldArgs(data: unknown, append: boolean): (string | Uint8Array)[] {
  const kind = dataKind(data);
  if (!append) return [kind];
  if (kind === 's') return [kind, data as string];
  if (kind === 'v') return [kind, encodeMsgpack(data)];
  const args: (string | Uint8Array)[] = [kind];
  for (const [name, v] of Object.entries(data as Record<string, unknown>)) {
    if (typeof v === 'string') args.push(name, 's', v);
    else args.push(name, 'v', encodeMsgpack(v));
  }
  return args;
}

/** A message of a compacted read: `[message, state, through, data, [name, field, ...]]` (see scripts.ts). */
function foldedMessage(entry: unknown): Publication {
  if (!Array.isArray(entry) || entry.length !== 5 || !Buffer.isBuffer(entry[0])) throw new Error('redis broker: unexpected compacted history entry');
  const [message, state, through, d, fields] = entry as [Buffer, Buffer | null, Buffer | null, Buffer | null, Buffer[]];
  const pub = decodeMessage(message);
  if (state === null || through === null) return pub;
  const st = state.toString();
  const str = (b: Buffer | null) => (b === null ? '' : b.toString('utf8'));
  let data: unknown;
  if (st === 'rs') data = `${typeof pub.data === 'string' ? pub.data : ''}${str(d)}`;
  else if (st === 'ss') data = str(d);
  else if (st === 'sv') data = d === null ? null : decodeMsgpack(d);
  else if (st === 'ro' || st === 'so') {
    const base = st === 'ro' && isPlainObject(pub.data) ? pub.data : {};
    const out: Record<string, unknown> = { ...base };
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const name = fields[i]!.toString('utf8');
      const f = fields[i + 1]!;
      const tag = f[0];
      const rest = f.subarray(1);
      let value: unknown;
      if (tag === 0x63 /* c */) {
        const prev = Object.prototype.hasOwnProperty.call(base, name) ? base[name] : undefined;
        value = typeof prev === 'string' ? prev + rest.toString('utf8') : rest.toString('utf8');
      } else if (tag === 0x53 /* S */) value = rest.toString('utf8');
      else value = decodeMsgpack(rest);
      Object.defineProperty(out, name, { value, writable: true, enumerable: true, configurable: true });
    }
    data = out;
  } else throw new Error(`redis broker: unknown fold state '${st}'`);
  return { ...pub, data, through: Number(through.toString()) };
}

/**
 * The stored publisher. Before publisher identity, nodes stored a string (`api`, `presence`, or the
 * client's subject): a history written by such a node still says who published, as well as it can.
 */
function readPublisher(v: unknown): Publisher | undefined {
  if (isPublisher(v)) return v;
  if (typeof v !== 'string' || v.length === 0) return undefined;
  if (v === 'api') return { via: 'http', key: 'default' };
  if (v === 'presence' || v === 'gateway') return { via: 'gateway', service: v === 'gateway' ? 'metrics' : v };
  return { via: 'ws', sub: v, client: 'unknown' };
}

/** Random part of a new epoch; the script appends the server time (hex seconds). */
function newEpochSeed(): string {
  return randomBytes(6).toString('base64url');
}

/** A TTL for Lua: whole ms >= 0, or -1 for "never expires" (non-finite input). */
function ttlArg(ms: number): number {
  if (!Number.isFinite(ms)) return -1;
  return Math.max(0, Math.ceil(ms));
}

function positive(value: number | undefined, fallback: number, name: string): number {
  return positiveOption(value, fallback, name, 'RedisBroker');
}
