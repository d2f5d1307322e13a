/**
 * Upgrade admission: everything that can be refused before the WebSocket handshake is refused here
 * with a plain HTTP status, and everything the handshake needs is read here.
 *
 * - 503 while draining, 404 for an unknown path, 403 for an Origin outside the allow-list, 429 over
 *   the per-IP cap, 503 at node capacity. The token is only extracted here; it is verified after
 *   the upgrade, so the client can be told why in a message.
 * - The client IP: the socket address, or behind a trusted proxy the rightmost X-Forwarded-For
 *   entry (the one the proxy appended).
 * - Per-IP socket accounting from TCP accept to close (issue 13, defect 6). Per IP, at most
 *   `maxConnectionsPerIp` WebSocket connections (429 at the upgrade) and at most as many sockets
 *   that have not delivered a complete request head yet ("pre-request": a request still arriving,
 *   however slowly, or nothing sent at all). A socket beyond that is answered 429 and closed as
 *   it is accepted, so a client trickling partial requests holds at most that many sockets, each
 *   for at most the handshake timeout (Node's headers timeout, which the node sets to it). A
 *   socket that completed a plain HTTP request is an HTTP client (the API's keep-alive pools): it
 *   leaves the pre-request count, so a backend is never refused for the sockets its pool keeps
 *   open. Behind a trusted proxy every socket comes from the proxy, so the pre-request count is
 *   off there (the proxy bounds its clients' sockets; the WebSocket count still applies per
 *   X-Forwarded-For address). Rule and reasons: docs/configuration.md#per-ip-limits.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { SUBPROTOCOL_BEARER_PREFIX, SUBPROTOCOL_MSGPACK, type Dialect, type Encoding } from '@signalbox/protocol';
import type { GatewayConfig } from '../config.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';

export const ENDPOINTS: Record<string, Dialect> = { '/v1/ws/prps': 'prp', '/ws': 'prd' };

/** What an admitted upgrade carries into the connection. */
export interface UpgradeRequest {
  dialect: Dialect;
  encoding: Encoding;
  token: string | null;
  ip: string;
  /** `/yjs/{doc}` (the y-websocket endpoint, src/yjs/endpoint.ts): the document id. */
  yjsDoc?: string;
}

/** The settings admission reads. */
export type AdmissionConfig = Pick<GatewayConfig, 'allowedOrigins' | 'requireOrigin' | 'trustProxy' | 'maxConnectionsPerIp' | 'maxConnections'>;

/** What admission needs from the node that owns it. */
export interface AdmissionHost {
  metrics: Metrics;
  log: Logger;
  /** True once the node drains: every upgrade is refused with 503. */
  draining(): boolean;
  /** WebSocket connections open on this node (SIGNALBOX_MAX_CONNECTIONS). */
  connectionCount(): number;
  /** Completes an admitted upgrade (the WebSocket handshake). */
  accept(req: IncomingMessage, socket: Duplex, head: Buffer, upgrade: UpgradeRequest): void;
}

/** A refusal: the status, the metric reason, the message and any extra headers. */
export interface Refusal {
  status: 403 | 404 | 429 | 503;
  reason: 'draining' | 'path' | 'origin' | 'ip_limit' | 'capacity';
  message: string;
  headers?: Record<string, string>;
}

/** Where a socket is in its life, for the per-IP counts. */
type SocketPhase = 'pre-request' | 'http' | 'websocket' | 'closed';
const PHASE = Symbol('signalbox.admission.phase');
type TrackedSocket = Socket & { [PHASE]?: { phase: SocketPhase; ip: string } };

export class UpgradeAdmission {
  /** Open WebSocket connections per client IP. */
  private readonly wsPerIp = new Map<string, number>();
  /** Sockets per socket address that have not delivered a complete request head. */
  private readonly preRequestPerIp = new Map<string, number>();

  constructor(
    private readonly config: AdmissionConfig,
    private readonly host: AdmissionHost,
  ) {}

  /** Listens on the node's HTTP server: every accepted socket, every request head, every upgrade. */
  attach(server: Server): void {
    server.on('connection', (socket: Socket) => this.onSocket(socket));
    server.on('request', (req: IncomingMessage) => this.onRequestHead(req.socket));
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
  }

  /** A WebSocket from `ip` is open on `socket`: counted against the per-IP cap until {@link closed}. */
  opened(ip: string, socket: Duplex): void {
    this.wsPerIp.set(ip, (this.wsPerIp.get(ip) ?? 0) + 1);
    this.leavePreRequest(socket as TrackedSocket, 'websocket');
  }

  /** The WebSocket from `ip` counted by {@link opened} closed. */
  closed(ip: string): void {
    decrement(this.wsPerIp, ip);
  }

  /** Sockets from `ip` not yet past their first request head (for tests and stats). */
  preRequestSockets(ip: string): number {
    return this.preRequestPerIp.get(ip) ?? 0;
  }

  /** The decision for one upgrade request: admitted with what the connection needs, or refused. */
  decide(req: IncomingMessage): { ok: true; upgrade: UpgradeRequest } | { ok: false; refusal: Refusal } {
    const refuse = (refusal: Refusal): { ok: false; refusal: Refusal } => ({ ok: false, refusal });
    if (this.host.draining()) return refuse({ status: 503, reason: 'draining', message: 'Server is restarting; reconnect to another node', headers: { 'Retry-After': '1' } });
    const url = new URL(req.url ?? '/', 'http://localhost');
    const yjsDoc = yjsDocument(url.pathname);
    const dialect = yjsDoc !== undefined ? 'prp' : ENDPOINTS[url.pathname];
    if (!dialect) return refuse({ status: 404, reason: 'path', message: `No WebSocket endpoint at ${url.pathname}; use /v1/ws/prps, /ws or /yjs/{doc}` });
    const origins = this.config.allowedOrigins;
    if (origins.length > 0 && !origins.includes('*')) {
      // The allow-list protects browsers' users (cross-site WebSocket hijacking). Browsers always send
      // Origin; a client without one is not a browser and could send any Origin it liked.
      const origin = req.headers.origin;
      if (typeof origin !== 'string') {
        if (this.config.requireOrigin) return refuse({ status: 403, reason: 'origin', message: 'Origin header required (SIGNALBOX_REQUIRE_ORIGIN)' });
      } else if (!origins.includes(origin)) return refuse({ status: 403, reason: 'origin', message: `Origin ${origin.slice(0, 200)} not allowed (SIGNALBOX_ALLOWED_ORIGINS)` });
    }
    const ip = clientIp(req, this.config.trustProxy);
    const maxPerIp = this.config.maxConnectionsPerIp;
    if (maxPerIp > 0 && (this.wsPerIp.get(ip) ?? 0) >= maxPerIp) return refuse({ status: 429, reason: 'ip_limit', message: 'Too many connections from this address' });
    if (this.config.maxConnections > 0 && this.host.connectionCount() >= this.config.maxConnections) {
      return refuse({ status: 503, reason: 'capacity', message: 'Node at connection capacity', headers: { 'Retry-After': '5' } });
    }
    const token = extractToken(req, url);
    if (yjsDoc !== undefined) return { ok: true, upgrade: { ip, dialect, encoding: 'msgpack', token, yjsDoc } };
    return { ok: true, upgrade: { ip, dialect, encoding: requestedEncoding(req, url), token } };
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {});
    try {
      const decision = this.decide(req);
      if (!decision.ok) {
        const { status, reason, message, headers } = decision.refusal;
        this.host.metrics.upgradesRejected.labels(reason).inc();
        rejectUpgrade(socket, status, message, headers);
        return;
      }
      this.host.accept(req, socket, head, decision.upgrade);
    } catch (err) {
      this.host.log.error({ err }, 'upgrade failed');
      socket.destroy();
    }
  }

  /**
   * TCP accept: refuse the socket over its address's pre-request cap, else count it until its
   * first request head (or its close). How long it may take to send that head is Node's headers
   * timeout (SIGNALBOX_HANDSHAKE_TIMEOUT, set on the server by the node).
   */
  private onSocket(socket: TrackedSocket): void {
    const max = this.config.maxConnectionsPerIp;
    // Behind a trusted proxy every socket has the proxy's address: see the file comment.
    if (max <= 0 || this.config.trustProxy) return;
    const ip = socket.remoteAddress;
    if (ip === undefined) return; // Already gone.
    const held = this.preRequestPerIp.get(ip) ?? 0;
    if (held >= max) {
      this.host.metrics.upgradesRejected.labels('ip_sockets').inc();
      socket.on('error', () => {});
      rejectUpgrade(socket, 429, 'Too many sockets from this address waiting for a request to complete (SIGNALBOX_MAX_CONNECTIONS_PER_IP)');
      return;
    }
    this.preRequestPerIp.set(ip, held + 1);
    socket[PHASE] = { phase: 'pre-request', ip };
    socket.once('close', () => this.leavePreRequest(socket, 'closed'));
  }

  private onRequestHead(socket: Socket): void {
    this.leavePreRequest(socket as TrackedSocket, 'http');
  }

  private leavePreRequest(socket: TrackedSocket, next: SocketPhase): void {
    const state = socket[PHASE];
    if (state === undefined || state.phase !== 'pre-request') return;
    state.phase = next;
    decrement(this.preRequestPerIp, state.ip);
  }
}

function decrement(counts: Map<string, number>, key: string): void {
  const n = (counts.get(key) ?? 1) - 1;
  if (n <= 0) counts.delete(key);
  else counts.set(key, n);
}

/** The document id of a `/yjs/{doc}` path (percent-decoded; validated as `doc:{id}` after the upgrade), else undefined. */
export function yjsDocument(pathname: string): string | undefined {
  if (!pathname.startsWith('/yjs/') || pathname.length === 5) return undefined;
  try {
    return decodeURIComponent(pathname.slice(5));
  } catch {
    return undefined;
  }
}

/** The client's address: the socket's, or behind a trusted proxy the rightmost X-Forwarded-For entry. */
export function clientIp(req: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    // The rightmost entry is the one our proxy appended; anything left of it the client could forge.
    const xff = req.headers['x-forwarded-for'];
    const last = (Array.isArray(xff) ? xff.join(',') : xff)?.split(',').pop()?.trim();
    if (last) return last;
  }
  return req.socket.remoteAddress ?? 'unknown';
}

/** Reads the token from `Authorization: Bearer`, `?token=`, or a `bearer.<jwt>` subprotocol (in that order). */
export function extractToken(req: IncomingMessage, url: URL): string | null {
  const auth = req.headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1]!;
  }
  const q = url.searchParams.get('token');
  if (q) return q;
  for (const p of offeredProtocols(req)) if (p.startsWith(SUBPROTOCOL_BEARER_PREFIX)) return p.slice(SUBPROTOCOL_BEARER_PREFIX.length);
  return null;
}

export function offeredProtocols(req: IncomingMessage): string[] {
  const h = req.headers['sec-websocket-protocol'];
  if (typeof h !== 'string') return [];
  return h.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

export function requestedEncoding(req: IncomingMessage, url: URL): Encoding {
  if (url.searchParams.get('format') === 'msgpack') return 'msgpack';
  return offeredProtocols(req).includes(SUBPROTOCOL_MSGPACK) ? 'msgpack' : 'json';
}

/** Ends an upgrade request (or a socket refused at accept) with a plain HTTP response. */
export function rejectUpgrade(socket: Duplex, status: number, message: string, headers: Record<string, string> = {}): void {
  const reason = { 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found', 429: 'Too Many Requests', 503: 'Service Unavailable' }[status] ?? 'Error';
  const body = JSON.stringify({ error: { code: status === 429 ? 'RATE_LIMITED' : status === 403 ? 'PERMISSION_DENIED' : status === 503 ? 'UNAVAILABLE' : 'INVALID_MESSAGE', message } });
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  if (socket.writable) {
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`);
  }
  socket.destroy();
}
