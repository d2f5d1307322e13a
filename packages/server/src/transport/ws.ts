/**
 * `ws` in noServer mode. Everything that can be refused before the handshake is refused here
 * with a plain HTTP status (unknown path 404, Origin 403, per-IP cap 429, draining 503); the
 * token is verified after the upgrade so the client can be told why in a message.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { SUBPROTOCOL_BEARER_PREFIX, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK, type Dialect, type Encoding } from '@signalbox/protocol';
import type { Transport } from './types.js';

export const ENDPOINTS: Record<string, Dialect> = { '/v1/ws/prps': 'prp', '/ws': 'prd' };

export interface UpgradeRequest {
  dialect: Dialect;
  encoding: Encoding;
  token: string | null;
  ip: string;
}

export class WsTransport implements Transport {
  constructor(private readonly ws: WebSocket) {}

  send(data: string | Uint8Array, binary: boolean): void {
    this.ws.send(data, { binary });
  }

  ping(): void {
    try {
      this.ws.ping();
    } catch {
      // socket already closing
    }
  }

  close(code: number, reason: string): void {
    this.ws.close(code, reason.slice(0, 120));
  }

  terminate(): void {
    this.ws.terminate();
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }
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

/**
 * Chooses the subprotocol to echo. Browsers fail the handshake unless the server selects one of
 * the offered protocols, so a lone `bearer.<jwt>` is echoed; otherwise the encoding protocol wins.
 */
export function selectProtocol(protocols: Set<string>): string | false {
  if (protocols.has(SUBPROTOCOL_MSGPACK)) return SUBPROTOCOL_MSGPACK;
  if (protocols.has(SUBPROTOCOL_JSON)) return SUBPROTOCOL_JSON;
  for (const p of protocols) if (!p.startsWith(SUBPROTOCOL_BEARER_PREFIX)) return p;
  for (const p of protocols) return p;
  return false;
}

export function createWebSocketServer(maxPayload: number): WebSocketServer {
  return new WebSocketServer({
    noServer: true,
    maxPayload,
    perMessageDeflate: false,
    clientTracking: false,
    handleProtocols: (protocols) => selectProtocol(protocols),
  });
}

/** Ends an upgrade request with a plain HTTP response. */
export function rejectUpgrade(socket: Duplex, status: number, message: string, headers: Record<string, string> = {}): void {
  const reason = { 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found', 429: 'Too Many Requests', 503: 'Service Unavailable' }[status] ?? 'Error';
  const body = JSON.stringify({ error: { code: status === 429 ? 'RATE_LIMITED' : status === 403 ? 'PERMISSION_DENIED' : status === 503 ? 'UNAVAILABLE' : 'INVALID_MESSAGE', message } });
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  if (socket.writable) {
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`);
  }
  socket.destroy();
}
