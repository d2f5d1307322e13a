/**
 * A gateway node: wires broker, hub, auth, namespaces, metrics, HTTP API and the WebSocket
 * endpoint, and owns the lifecycle (start, drain, stop).
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import type { WebSocket, WebSocketServer } from 'ws';
import { CloseCode } from '@signalbox/protocol';
import { Authenticator } from './auth/jwt.js';
import type { Broker } from './broker/types.js';
import { NamespaceTable } from './channels/namespaces.js';
import { ChannelOperations } from './channels/operations.js';
import { consoleKeys } from './auth/console-keys.js';
import { YjsCompactor } from './yjs/compactor.js';
import { YjsEndpoint } from './yjs/endpoint.js';
import { apiKeyring, type GatewayConfig } from './config.js';
import { RpcRouter } from './rpc/router.js';
import { AdminService } from './admin.js';
import type { RpcEngine } from './rpc/types.js';
import { Connection, type ConnectionContext } from './connection.js';
import { createEngine } from './engine.js';
import { PING_FRAME, frameEventForAll } from './frames.js';
import { registerApi } from './http/api.js';
import { Hub } from './hub/hub.js';
import { LiveMetrics } from './live-metrics.js';
import { createLogger, type Logger } from './logger.js';
import { Metrics } from './metrics.js';
import type { PresenceStore } from './presence/types.js';
import { WritePool } from './transport/write-pool.js';
import { UpgradeAdmission, type UpgradeRequest } from './transport/upgrade.js';
import { WriteBatcher } from './transport/batcher.js';
import { WsTransport, createWebSocketServer } from './transport/ws-transport.js';
import { SERVER_VERSION } from './version.js';

/** The heartbeat interval is split into this many ticks, each visiting a slice of the connections. */
const HEARTBEAT_SLICES = 8;

export interface GatewayOptions {
  logger?: Logger;
  /** Use this broker instead of the one `config.broker` names (tests, embedding). */
  broker?: Broker;
  /** Use this presence store instead of the default for `config.broker`. */
  presence?: PresenceStore;
  /** Use this RPC engine instead of the default for `config.broker`. */
  rpc?: RpcEngine;
}


export class Gateway {
  readonly log: Logger;
  readonly metrics = new Metrics();
  readonly namespaces: NamespaceTable;
  readonly auth: Authenticator;
  broker!: Broker;
  /** Compaction of Yjs documents (`doc:{id}`). */
  yjs!: YjsCompactor;
  /** The y-websocket-compatible endpoint, `/yjs/{doc}`. */
  yws!: YjsEndpoint;
  presence!: PresenceStore;
  hub!: Hub;
  rpc!: RpcRouter;
  private admin!: AdminService;
  private app!: FastifyInstance;
  private wss!: WebSocketServer;
  private readonly conns = new Set<Connection>();
  /** Connections split into slices; each heartbeat tick visits one slice (spreads pings over the interval). */
  private readonly hbSlices: Set<Connection>[] = Array.from({ length: HEARTBEAT_SLICES }, () => new Set());
  private hbTick = 0;
  private hbNext = 0;
  private readonly pool: WritePool | null;
  private readonly batcher: WriteBatcher;
  private admission!: UpgradeAdmission;
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
    this.batcher = new WriteBatcher(this.pool, config.turnBudgetBytes, this.metrics.writeLatency);
    const batcher = this.batcher;
    this.metrics.watchInputHolds(() => batcher.holds);
    this.metrics.watchBytesOut(() => batcher.bytesOut);
    const pool = this.pool;
    if (pool !== null) this.metrics.watchWriteThreads(() => ({ writes: pool.stats.threadJobs, stalls: pool.stats.stalls, pauses: pool.stats.pauses }));
    // The console's own WebSocket tokens are accepted only while the console is served.
    this.auth = new Authenticator(config, config.console ? consoleKeys(config).token : undefined);
  }

  /** Starts listening; resolves with the bound address. */
  async start(): Promise<{ host: string; port: number }> {
    const config = this.config;
    const engine = await createEngine(config, this.log, { broker: this.opts.broker, presence: this.opts.presence, rpc: this.opts.rpc });
    this.broker = engine.broker;
    this.presence = engine.presence;
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
    await this.presence.start?.();
    this.rpc = new RpcRouter({ nodeId: this.nodeId, engine: engine.rpc });
    await this.rpc.start();
    this.admin = new AdminService({ nodeId: this.nodeId, rpc: this.rpc, hub: () => this.hub, connections: () => this.conns });
    await this.admin.start();
    this.yjs = new YjsCompactor(this.broker, { updates: config.yjsCompactUpdates, bytes: config.yjsCompactBytes, chunkBytes: Math.min(256 * 1024, Math.floor(config.maxReplyBytes / 4)) }, this.log);
    const ops = new ChannelOperations({
      broker: this.broker, presence: this.presence, metrics: this.metrics, idempotencyWindowMs: config.idempotencyWindowMs,
      onPublished: (ch, r) => this.yjs.published(ch, r),
    });
    this.ctx = {
      config, hub: this.hub, ops, namespaces: this.namespaces, auth: this.auth, rpc: this.rpc, metrics: this.metrics, log: this.log,
      onClosed: (conn) => this.onConnectionClosed(conn),
    };
    this.yws = new YjsEndpoint({
      config, hub: this.hub, ops, broker: this.broker, namespaces: this.namespaces, auth: this.auth, metrics: this.metrics, log: this.log, batcher: this.batcher,
      opened: (ip, socket) => this.admission.opened(ip, socket),
      closed: (ip) => this.admission.closed(ip),
      onClosed: () => this.checkAllClosed(),
      merger: this.yjs.merger,
    });
    this.wss = createWebSocketServer(config.maxMessageBytes * 4);
    this.app = Fastify({
      logger: false, bodyLimit: Math.max(1024 * 1024, config.maxMessageBytes), trustProxy: config.trustProxy, forceCloseConnections: true,
      // Node checks the headers timeout only this often (default 30 s): without it a request trickled
      // in byte by byte outlives SIGNALBOX_HANDSHAKE_TIMEOUT many times over.
      http: { headersTimeout: config.handshakeTimeoutMs, connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(config.handshakeTimeoutMs / 4))) },
    });
    registerApi(this.app, {
      config, keys: apiKeyring(config), broker: this.broker, hub: this.hub, ops, rpc: this.rpc, admin: this.admin, namespaces: this.namespaces, metrics: this.metrics, log: this.log,
      readiness: () => this.readiness(),
      stats: () => this.stats(),
    });
    const server = this.app.server;
    server.headersTimeout = config.handshakeTimeoutMs;
    server.requestTimeout = Math.max(config.handshakeTimeoutMs, 30_000);
    this.admission = new UpgradeAdmission(config, {
      metrics: this.metrics, log: this.log,
      draining: () => this.draining,
      connectionCount: () => this.conns.size + this.yws.size,
      accept: (req, socket, head, upgrade) => this.wss.handleUpgrade(req, socket, head, (ws) => this.onOpen(ws, socket, upgrade)),
    });
    this.admission.attach(server);
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
        bytesOut: () => this.batcher.bytesOut,
        counts: () => {
          const s = this.stats();
          return { connections: s.connections as number, subscriptions: s.subscriptions as number, channels: s.channels as number };
        },
        publish: (data) => ops.publish(ch, { type: 'metrics.node', data }, { via: 'gateway', service: 'metrics' }),
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

  private onOpen(ws: WebSocket, socket: Duplex, info: UpgradeRequest): void {
    if (this.draining) {
      ws.close(CloseCode.SERVICE_RESTART, 'server restarting, reconnect');
      return;
    }
    if (info.yjsDoc !== undefined) {
      this.yws.open(ws, socket, { ip: info.ip, token: info.token, doc: info.yjsDoc });
      return;
    }
    const transport = new WsTransport(ws, socket, this.batcher);
    const conn = new Connection(this.ctx, transport, { id: `conn_${randomBytes(9).toString('base64url')}`, ip: info.ip, dialect: info.dialect, encoding: info.encoding });
    this.conns.add(conn);
    this.hbSlices[this.hbNext++ % HEARTBEAT_SLICES]!.add(conn);
    this.admission.opened(info.ip, socket);
    this.metrics.connections.labels(info.dialect, info.encoding).inc();
    this.metrics.connectionsOpened.labels(info.dialect).inc();
    transport.attach(conn);
    conn.authenticate(info.token);
  }

  private onConnectionClosed(conn: Connection): void {
    if (!this.conns.delete(conn)) return;
    for (const slice of this.hbSlices) if (slice.delete(conn)) break;
    this.admission.closed(conn.ip);
    this.metrics.connections.labels(conn.dialect, conn.encoding).dec();
    this.checkAllClosed();
  }

  private checkAllClosed(): void {
    if (this.conns.size === 0 && this.yws.size === 0 && this.allClosed) this.allClosed();
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
    if (this.conns.size + this.yws.size > 0) {
      const closed = new Promise<void>((resolve) => (this.allClosed = resolve));
      for (const conn of this.conns) conn.close(CloseCode.SERVICE_RESTART, 'server restarting, reconnect');
      this.yws.closeAll(CloseCode.SERVICE_RESTART, 'server restarting, reconnect');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
      for (const conn of [...this.conns]) conn.terminate();
    }
    this.yws.terminateAll();
    await this.app.close().catch((err: unknown) => this.log.warn({ err }, 'http close failed'));
    this.wss.close();
    // Let presence leaves and other in-flight publishes settle before the broker goes.
    await new Promise((resolve) => setImmediate(resolve));
    await this.rpc.close().catch((err: unknown) => this.log.warn({ err }, 'rpc close failed'));
    await this.presence.close().catch((err: unknown) => this.log.warn({ err }, 'presence close failed'));
    await this.broker.close().catch((err: unknown) => this.log.warn({ err }, 'broker close failed'));
    await this.pool?.close();
    await this.yjs.merger.close();
    this.log.info('stopped');
  }
}
