/**
 * `ws` in noServer mode. Everything that can be refused before the handshake is refused here
 * with a plain HTTP status (unknown path 404, Origin 403, per-IP cap 429, draining 503); the
 * token is verified after the upgrade so the client can be told why in a message.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { SUBPROTOCOL_BEARER_PREFIX, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK, type Dialect, type Encoding } from '@signalbox/protocol';
import { frame } from '../frames.js';
import type { Transport } from './types.js';

export const ENDPOINTS: Record<string, Dialect> = { '/v1/ws/prps': 'prp', '/ws': 'prd' };

export interface UpgradeRequest {
  dialect: Dialect;
  encoding: Encoding;
  token: string | null;
  ip: string;
}

/** The batcher's join arena starts at this size and grows to what one turn needs, up to the cap. */
const ARENA_MIN_BYTES = 1024 * 1024;
const ARENA_MAX_BYTES = 16 * 1024 * 1024;

/**
 * Coalesces every frame bound for one socket within an event-loop turn into one write: frames
 * queue on their transport, and one `setImmediate` per turn (not per socket) flushes every socket
 * that has something queued.
 *
 * Joining several frames for one socket needs a buffer. A fresh `Buffer.concat` per socket per
 * turn is tens of megabytes per second of new ArrayBuffers under load, and V8 answers that
 * external memory with a full mark-compact every few hundred milliseconds. Instead the joins of
 * one turn are laid side by side in one arena that is reused turn after turn: once the kernel has
 * taken a write, nothing refers to its bytes. A write that had to be queued (the socket is backed
 * up) still refers to its slice, so the arena is then left to that write, the rest of the turn
 * joins with `Buffer.concat`, and the next turn makes a new arena. A socket already backed up
 * never joins into the arena: its write is sure to be queued.
 * A turn that needed more than the arena holds (joins beyond it fall back to `Buffer.concat`)
 * makes the next arena big enough, up to ARENA_MAX_BYTES.
 */
export class WriteBatcher {
  private dirty: WsTransport[] = [];
  private scheduled = false;
  private arena: Buffer | null = null;
  private arenaSize = ARENA_MIN_BYTES;
  private used = 0;
  /** Bytes the joins of this turn asked for, whether or not they fitted. */
  private demand = 0;
  /** This turn's arena was left to a queued write. */
  private abandoned = false;

  mark(t: WsTransport): void {
    this.dirty.push(t);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushAll);
    }
  }

  /** `frames` joined: a slice of the arena when it fits, else a buffer of its own. */
  join(frames: readonly Buffer[], total: number): Buffer {
    this.demand += total;
    if (this.abandoned || total > this.arenaSize - this.used) return Buffer.concat(frames, total);
    const arena = (this.arena ??= Buffer.allocUnsafeSlow(this.arenaSize));
    const start = this.used;
    let at = start;
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i]!;
      f.copy(arena, at);
      at += f.length;
    }
    this.used = at;
    return arena.subarray(start, at);
  }

  /**
   * Called after writing `buf` (from `join`) to `socket`: if the write was queued rather than
   * taken by the kernel and `buf` is an arena slice, the arena now belongs to that write.
   */
  written(buf: Buffer, socket: Duplex): void {
    if (socket.writableLength > 0 && this.arena !== null && buf.buffer === this.arena.buffer) {
      this.arena = null;
      this.abandoned = true;
    }
  }

  private readonly flushAll = (): void => {
    this.scheduled = false;
    const dirty = this.dirty;
    this.dirty = [];
    for (let i = 0; i < dirty.length; i++) dirty[i]!.flush();
    if (this.demand > this.arenaSize && this.arenaSize < ARENA_MAX_BYTES) {
      while (this.arenaSize < this.demand && this.arenaSize < ARENA_MAX_BYTES) this.arenaSize *= 2;
      this.arena = null;
    }
    this.used = 0;
    this.demand = 0;
    this.abandoned = false;
  };
}

/**
 * Data frames are written straight to the socket `ws` upgraded (server frames are unmasked and we
 * run without compression, so the bytes are final), pings included (they go out with the heartbeat
 * frames); `ws` keeps the receiving side (pongs too) and the closing handshake. Queued frames are
 * flushed before a close frame, so order is kept.
 */
export class WsTransport implements Transport {
  // Reused, not replaced, after each flush: it lives as long as the connection.
  private readonly pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly ws: WebSocket, private readonly socket: Duplex, private readonly batcher: WriteBatcher) {}

  sendFrame(f: Buffer): void {
    if (this.pending.length === 0) this.batcher.mark(this);
    this.pending.push(f);
    this.pendingBytes += f.length;
  }

  send(payload: string | Uint8Array, binary: boolean): void {
    this.sendFrame(frame(payload, binary));
  }

  flush(): void {
    const n = this.pending.length;
    if (n === 0) return;
    const socket = this.socket;
    if (socket.writable) {
      if (n === 1) socket.write(this.pending[0]!);
      else if (socket.writableLength > 0) socket.write(Buffer.concat(this.pending, this.pendingBytes));
      else {
        const buf = this.batcher.join(this.pending, this.pendingBytes);
        socket.write(buf);
        this.batcher.written(buf, socket);
      }
    }
    this.pending.length = 0;
    this.pendingBytes = 0;
  }

  close(code: number, reason: string): void {
    this.flush();
    this.ws.close(code, reason.slice(0, 120));
  }

  terminate(): void {
    this.pending.length = 0;
    this.pendingBytes = 0;
    this.ws.terminate();
  }

  /** Frames queued this turn, plus what the socket (and ws, for its control frames) still holds. */
  get bufferedAmount(): number {
    return this.pendingBytes + this.ws.bufferedAmount;
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
