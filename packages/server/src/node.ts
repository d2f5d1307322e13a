/**
 * A gateway node: wires broker, hub, auth, namespaces, metrics, HTTP API and the WebSocket
 * endpoint, and owns the lifecycle (start, drain, stop).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import type { WebSocket, WebSocketServer } from 'ws';
import { CloseCode } from '@signalbox/protocol';
import { Authenticator } from './auth/jwt.js';
import { MemoryBroker } from './broker/memory.js';
import type { Broker } from './broker/types.js';
import { NamespaceTable } from './channels/namespaces.js';
import { ChannelOperations } from './channels/operations.js';
import type { GatewayConfig } from './config.js';
import { Connection, type ConnectionContext } from './connection.js';
import { PING_FRAME, frameEventForAll } from './frames.js';
import { registerApi } from './http/api.js';
import { Hub } from './hub/hub.js';
import { LiveMetrics } from './live-metrics.js';
import { createLogger, type Logger } from './logger.js';
import { Metrics } from './metrics.js';
import { MemoryPresenceStore } from './presence/memory.js';
import { RedisPresenceStore } from './presence/redis.js';
import type { PresenceStore } from './presence/types.js';
import { WritePool } from './transport/write-pool.js';
import { ENDPOINTS, WriteBatcher, WsTransport, createWebSocketServer, extractToken, rejectUpgrade, requestedEncoding } from './transport/ws.js';
import { SERVER_VERSION } from './version.js';

const CONNECTION = Symbol('signalbox.connection');
type SocketWithConnection = WebSocket & { [CONNECTION]: Connection };

const connectionOf = (ws: WebSocket): Connection => (ws as SocketWithConnection)[CONNECTION];
function onSocketMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
  connectionOf(this).onFrame(data, isBinary);
}
function onSocketPong(this: WebSocket): void {
  connectionOf(this).onPong();
}
function onSocketError(this: WebSocket, err: Error): void {
  connectionOf(this).onSocketError(err);
}
function onSocketClose(this: WebSocket, code: number): void {
  connectionOf(this).onTransportClosed(code);
}

/** The heartbeat interval is split into this many ticks, each visiting a slice of the connections. */
const HEARTBEAT_SLICES = 8;

export interface GatewayOptions {
  logger?: Logger;
  /** Use this broker instead of the one `config.broker` names (tests, embedding). */
  broker?: Broker;
  /** Use this presence store instead of the default for `config.broker`. */
  presence?: PresenceStore;
}

/** Creates the broker `config.broker` names: the memory broker, or Redis. */
export async function createBroker(config: GatewayConfig, log: Logger): Promise<Broker> {
  if (config.broker === 'memory') return new MemoryBroker();
  const { RedisBroker } = await import('./broker/redis.js');
  return new RedisBroker({ url: config.broker, prefix: config.redisPrefix, commandTimeoutMs: config.redisTimeoutMs, logger: log });
}

export class Gateway {
  readonly log: Logger;
  readonly metrics = new Metrics();
  readonly namespaces: NamespaceTable;
  readonly auth: Authenticator;
  broker!: Broker;
  presence!: PresenceStore;
  hub!: Hub;
  private app!: FastifyInstance;
  private wss!: WebSocketServer;
  private readonly conns = new Set<Connection>();
  /** Connections split into slices; each heartbeat tick visits one slice (spreads pings over the interval). */
  private readonly hbSlices: Set<Connection>[] = Array.from({ length: HEARTBEAT_SLICES }, () => new Set());
  private hbTick = 0;
  private hbNext = 0;
  private readonly pool: WritePool | null;
  private readonly batcher: WriteBatcher;
  private readonly perIp = new Map<string, number>();
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private liveMetrics: LiveMetrics | null = null;
  /** This node's id in the cluster (live metrics, logs). */
  readonly nodeId = `node_${randomBytes(6).toString('base64url')}`;
  private draining = false;
  private drainPromise: Promise<void> | null = null;
  private allClosed: (() => void) | null = null;
  private readonly startedAt = Date.now();
  private ctx!: ConnectionContext;

  constructor(readonly config: GatewayConfig, private readonly opts: GatewayOptions = {}) {
    this.log = opts.logger ?? createLogger(config.logLevel);
    this.namespaces = new NamespaceTable(config.namespaces);
    this.pool = config.writeThreads > 0 ? new WritePool(config.writeThreads) : null;
    this.batcher = new WriteBatcher(this.pool, config.turnBudgetBytes);
    const batcher = this.batcher;
    this.metrics.watchInputHolds(() => batcher.holds);
    const pool = this.pool;
    if (pool !== null) this.metrics.watchWriteThreads(() => ({ writes: pool.stats.threadJobs, stalls: pool.stats.stalls, pauses: pool.stats.pauses }));
    this.auth = new Authenticator(config);
  }

  /** Starts listening; resolves with the bound address. */
  async start(): Promise<{ host: string; port: number }> {
    const config = this.config;
    this.broker = this.opts.broker ?? (await createBroker(config, this.log));
    this.hub = new Hub(this.broker, this.metrics, this.log, { maxCatchUpBuffer: 10_000 });
    await this.broker.start({
      onPublication: (pub) => this.hub.onPublication(pub),
      onResync: (channels) => this.hub.onResync(channels),
      onReadyChange: (ready) => {
        this.metrics.brokerReady.set(ready ? 1 : 0);
        this.log.info({ broker: this.broker.kind, ready }, ready ? 'broker ready' : 'broker unavailable');
      },
    });
    this.metrics.brokerReady.set(this.broker.isReady() ? 1 : 0);
    this.presence = this.opts.presence
      ?? (config.broker === 'memory' ? new MemoryPresenceStore() : new RedisPresenceStore({ url: config.broker, prefix: config.redisPrefix, commandTimeoutMs: config.redisTimeoutMs }));
    await this.presence.start?.();
    const ops = new ChannelOperations({ broker: this.broker, presence: this.presence, metrics: this.metrics, idempotencyWindowMs: config.idempotencyWindowMs });
    this.ctx = {
      config, hub: this.hub, ops, namespaces: this.namespaces, auth: this.auth, metrics: this.metrics, log: this.log,
      onClosed: (conn) => this.onConnectionClosed(conn),
    };
    this.wss = createWebSocketServer(config.maxMessageBytes * 4);
    this.app = Fastify({
      logger: false, bodyLimit: Math.max(1024 * 1024, config.maxMessageBytes), trustProxy: config.trustProxy, forceCloseConnections: true,
      // Node checks the headers timeout only this often (default 30 s): without it a request trickled
      // in byte by byte outlives SIGNALBOX_HANDSHAKE_TIMEOUT many times over.
      http: { headersTimeout: config.handshakeTimeoutMs, connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(config.handshakeTimeoutMs / 4))) },
    });
    registerApi(this.app, {
      config, apiKey: config.apiKey, broker: this.broker, hub: this.hub, ops, namespaces: this.namespaces, metrics: this.metrics, log: this.log,
      readiness: () => this.readiness(),
      stats: () => this.stats(),
    });
    const server = this.app.server;
    server.headersTimeout = config.handshakeTimeoutMs;
    server.requestTimeout = Math.max(config.handshakeTimeoutMs, 30_000);
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    await this.app.listen({ host: config.host, port: config.port });
    this.heartbeatTimer = setInterval(() => this.heartbeat(), config.heartbeatIntervalMs / HEARTBEAT_SLICES);
    this.heartbeatTimer.unref();
    const metricsChannel = this.namespaces.resolve('metrics');
    if (config.metricsIntervalMs > 0 && metricsChannel.ok) {
      const ch = metricsChannel.channel;
      this.liveMetrics = new LiveMetrics(this.metrics, {
        nodeId: this.nodeId,
        brokerKind: this.broker.kind,
        brokerReady: () => this.broker.isReady(),
        counts: () => {
          const s = this.stats();
          return { connections: s.connections as number, subscriptions: s.subscriptions as number, channels: s.channels as number };
        },
        publish: (data) => ops.publish(ch, { type: 'metrics.node', data }, { via: 'gateway' }),
      }, config.metricsIntervalMs, this.log);
      this.liveMetrics.start();
    }
    const addr = this.address;
    this.log.info({ host: addr.host, port: addr.port, broker: this.broker.kind, version: SERVER_VERSION }, 'gateway listening');
    return addr;
  }

  get address(): { host: string; port: number } {
    const a = this.app.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  readiness(): { ready: boolean; reason?: string } {
    if (this.draining) return { ready: false, reason: 'draining' };
    if (!this.broker.isReady()) return { ready: false, reason: 'broker unavailable' };
    return { ready: true };
  }

  stats(): Record<string, unknown> {
    let subscriptions = 0;
    for (const c of this.conns) subscriptions += c.subscriptionCount;
    return {
      version: SERVER_VERSION, uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000), broker: this.broker.kind,
      brokerReady: this.broker.isReady(), connections: this.conns.size, channels: this.hub.channelCount, subscriptions, draining: this.draining,
    };
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {});
    try {
      if (this.draining) return this.refuse(socket, 503, 'draining', 'Server is restarting; reconnect to another node', { 'Retry-After': '1' });
      const url = new URL(req.url ?? '/', 'http://localhost');
      const dialect = ENDPOINTS[url.pathname];
      if (!dialect) return this.refuse(socket, 404, 'path', `No WebSocket endpoint at ${url.pathname}; use /v1/ws/prps or /ws`);
      const origins = this.config.allowedOrigins;
      if (origins.length > 0 && !origins.includes('*')) {
        // The allow-list protects browsers' users (cross-site WebSocket hijacking). Browsers always send
        // Origin; a client without one is not a browser and could send any Origin it liked.
        const origin = req.headers.origin;
        if (typeof origin !== 'string') {
          if (this.config.requireOrigin) return this.refuse(socket, 403, 'origin', 'Origin header required (SIGNALBOX_REQUIRE_ORIGIN)');
        } else if (!origins.includes(origin)) return this.refuse(socket, 403, 'origin', `Origin ${origin.slice(0, 200)} not allowed (SIGNALBOX_ALLOWED_ORIGINS)`);
      }
      const ip = this.clientIp(req);
      const maxPerIp = this.config.maxConnectionsPerIp;
      if (maxPerIp > 0 && (this.perIp.get(ip) ?? 0) >= maxPerIp) return this.refuse(socket, 429, 'ip_limit', 'Too many connections from this address');
      if (this.config.maxConnections > 0 && this.conns.size >= this.config.maxConnections) return this.refuse(socket, 503, 'capacity', 'Node at connection capacity', { 'Retry-After': '5' });
      const token = extractToken(req, url);
      const encoding = requestedEncoding(req, url);
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onOpen(ws, socket, { ip, dialect, encoding, token }));
    } catch (err) {
      this.log.error({ err }, 'upgrade failed');
      socket.destroy();
    }
  }

  private refuse(socket: Duplex, status: number, reason: string, message: string, headers?: Record<string, string>): void {
    this.metrics.upgradesRejected.labels(reason).inc();
    rejectUpgrade(socket, status, message, headers);
  }

  private clientIp(req: IncomingMessage): string {
    if (this.config.trustProxy) {
      // The rightmost entry is the one our proxy appended; anything left of it the client could forge.
      const xff = req.headers['x-forwarded-for'];
      const last = (Array.isArray(xff) ? xff.join(',') : xff)?.split(',').pop()?.trim();
      if (last) return last;
    }
    return req.socket.remoteAddress ?? 'unknown';
  }

  private onOpen(ws: WebSocket, socket: Duplex, info: { ip: string; dialect: 'prp' | 'prd'; encoding: 'json' | 'msgpack'; token: string | null }): void {
    if (this.draining) {
      ws.close(CloseCode.SERVICE_RESTART, 'server restarting, reconnect');
      return;
    }
    const conn = new Connection(this.ctx, new WsTransport(ws, socket, this.batcher), { id: `conn_${randomBytes(9).toString('base64url')}`, ip: info.ip, dialect: info.dialect, encoding: info.encoding });
    this.conns.add(conn);
    this.hbSlices[this.hbNext++ % HEARTBEAT_SLICES]!.add(conn);
    this.perIp.set(info.ip, (this.perIp.get(info.ip) ?? 0) + 1);
    this.metrics.connections.labels(info.dialect, info.encoding).inc();
    this.metrics.connectionsOpened.labels(info.dialect).inc();
    // Shared listeners (no closures per connection): the connection hangs off the socket.
    (ws as SocketWithConnection)[CONNECTION] = conn;
    ws.on('message', onSocketMessage);
    ws.on('pong', onSocketPong);
    ws.on('error', onSocketError);
    ws.on('close', onSocketClose);
    conn.authenticate(info.token);
  }

  private onConnectionClosed(conn: Connection): void {
    if (!this.conns.delete(conn)) return;
    for (const slice of this.hbSlices) if (slice.delete(conn)) break;
    const n = (this.perIp.get(conn.ip) ?? 1) - 1;
    if (n <= 0) this.perIp.delete(conn.ip);
    else this.perIp.set(conn.ip, n);
    this.metrics.connections.labels(conn.dialect, conn.encoding).dec();
    if (this.conns.size === 0 && this.allClosed) this.allClosed();
  }

  /** One slice per tick: every connection is visited once per heartbeat interval. */
  private heartbeat(): void {
    const slice = this.hbSlices[this.hbTick++ % HEARTBEAT_SLICES]!;
    if (slice.size === 0) return;
    // Ping + heartbeat event as one shared buffer per encoding: every socket writes the same bytes.
    const frames = frameEventForAll({ kind: 'heartbeat', serverTime: new Date().toISOString() }, PING_FRAME);
    for (const conn of slice) conn.heartbeat(frames[conn.encIdx]!);
  }

  /**
   * Graceful shutdown: readiness goes false, new upgrades are refused, every client is closed with
   * 1012 ("server restarting, reconnect"); after `timeoutMs` the rest are terminated, then the
   * HTTP server and the broker close.
   */
  drain(timeoutMs = this.config.drainTimeoutMs): Promise<void> {
    if (!this.drainPromise) this.drainPromise = this.doDrain(timeoutMs);
    return this.drainPromise;
  }

  /** Alias of {@link drain}. */
  stop(timeoutMs?: number): Promise<void> {
    return this.drain(timeoutMs);
  }

  private async doDrain(timeoutMs: number): Promise<void> {
    this.draining = true;
    this.log.info({ connections: this.conns.size, timeoutMs }, 'draining');
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.liveMetrics?.stop();
    if (this.conns.size > 0) {
      const closed = new Promise<void>((resolve) => (this.allClosed = resolve));
      for (const conn of this.conns) conn.close(CloseCode.SERVICE_RESTART, 'server restarting, reconnect');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
      for (const conn of [...this.conns]) conn.terminate();
    }
    await this.app.close().catch((err: unknown) => this.log.warn({ err }, 'http close failed'));
    this.wss.close();
    // Let presence leaves and other in-flight publishes settle before the broker goes.
    await new Promise((resolve) => setImmediate(resolve));
    await this.presence.close().catch((err: unknown) => this.log.warn({ err }, 'presence close failed'));
    await this.broker.close().catch((err: unknown) => this.log.warn({ err }, 'broker close failed'));
    await this.pool?.close();
    this.log.info('stopped');
  }
}
