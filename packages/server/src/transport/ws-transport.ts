/**
 * `ws` in noServer mode: the WebSocket transport (frames straight to the upgraded socket, batched
 * per turn by batcher.ts), the subprotocol choice and the server. What can be refused before the
 * handshake is refused by the upgrade admission (upgrade.ts).
 */
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { SUBPROTOCOL_BEARER_PREFIX, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK } from '@signalbox/protocol';
import { frame } from '../frames.js';
import type { BatchedTransport, WriteBatcher } from './batcher.js';
import type { Transport, TransportHandler } from './types.js';
import { ARENA_BYTES as POOL_ARENA_BYTES, type WritePool } from './write-pool.js';

/** The handler of a socket hangs off it: the listeners are shared by every socket (no closures per connection). */
const HANDLER = Symbol('signalbox.transportHandler');
type SocketWithHandler = WebSocket & { [HANDLER]: TransportHandler };
const handlerOf = (ws: WebSocket): TransportHandler => (ws as SocketWithHandler)[HANDLER];
function onSocketMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
  handlerOf(this).onFrame(data, isBinary);
}
function onSocketPong(this: WebSocket): void {
  handlerOf(this).onPong();
}
function onSocketError(this: WebSocket, err: Error): void {
  handlerOf(this).onSocketError(err);
}
function onSocketClose(this: WebSocket, code: number): void {
  handlerOf(this).onTransportClosed(code);
}

/**
 * A transport's frame list when it has none. A list is made when a turn's first frame comes and
 * dropped when the turn's round writes it, so it dies young; one made at flush time instead would
 * wait, on an idle connection, for the next heartbeat, get promoted to the old generation, and
 * then be garbage there: ~170 bytes per connection per heartbeat (RSS grew 0.6 MiB/s with 19k
 * idle connections). Never pushed to.
 */
const NO_FRAMES: Buffer[] = [];

/**
 * Data frames are written straight to the socket `ws` upgraded (server frames are unmasked and we
 * run without compression, so the bytes are final), pings included (they go out with the heartbeat
 * frames); `ws` keeps the receiving side (pongs too) and the closing handshake. Queued frames are
 * flushed before a close frame, so order is kept.
 */
export class WsTransport implements Transport, BatchedTransport {
  private pending: Buffer[] = NO_FRAMES;
  private pendingBytes = 0;
  /** What the socket still held after the last flush: only less since, until the next flush. */
  private socketBacklog = 0;

  constructor(private readonly ws: WebSocket, private readonly socket: Duplex, private readonly batcher: WriteBatcher) {}

  /** Starts reporting the socket's frames, pongs, errors and close to `handler`. */
  attach(handler: TransportHandler): void {
    const ws = this.ws;
    (ws as SocketWithHandler)[HANDLER] = handler;
    ws.on('message', onSocketMessage);
    ws.on('pong', onSocketPong);
    ws.on('error', onSocketError);
    ws.on('close', onSocketClose);
  }

  sendFrame(f: Buffer): void {
    if (this.pending.length === 0) {
      this.batcher.mark(this);
      this.pending = [f];
    } else this.pending.push(f);
    this.pendingBytes += f.length;
    this.batcher.queue(f.length);
  }

  inputHandled(): void {
    this.batcher.holdInputIfOverBudget(this.ws);
  }

  send(payload: string | Uint8Array, binary: boolean): void {
    this.sendFrame(frame(payload, binary));
  }

  flush(): void {
    const n = this.pending.length;
    if (n === 0) return;
    const socket = this.socket;
    if (socket.writable) {
      const pending = this.pending;
      if (n === 1) socket.write(pending[0]!);
      else {
        // A socket already backed up would only queue the joined copy: give it the frames as they are.
        const joined = socket.writableLength > 0 ? null : this.batcher.join(pending, this.pendingBytes);
        if (joined !== null) {
          socket.write(joined);
          this.batcher.written(joined, socket);
        } else {
          socket.cork();
          for (let i = 0; i < n; i++) socket.write(pending[i]!);
          socket.uncork();
        }
      }
      this.socketBacklog = socket.writableLength;
    }
    // Dropped rather than emptied: `length = 0` is a V8 runtime call (see NO_FRAMES).
    this.pending = NO_FRAMES;
    this.pendingBytes = 0;
  }

  /**
   * Lists this turn's frames in the pool's round: 1 listed, 0 not eligible (flushed now, on this
   * thread), -1 the pool's round is full. Eligible: a plain TCP socket with nothing queued in
   * Node or libuv, so that a direct write of its fd cannot overtake earlier bytes.
   */
  stage(pool: WritePool): number {
    if (this.pending.length === 0) return 0;
    const socket = this.socket;
    const fd = (socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd ?? -1;
    if (fd < 0 || !socket.writable || socket.writableLength > 0 || this.pendingBytes > POOL_ARENA_BYTES) {
      this.flush();
      return 0;
    }
    if (!pool.add(fd, this.pending, this.pendingBytes)) {
      if (pool.size > 0) return -1;
      this.flush();
      return 0;
    }
    this.pending = NO_FRAMES;
    this.pendingBytes = 0;
    return 1;
  }

  /** After the pool wrote job k (this transport's bytes): queues what the kernel did not take. */
  afterParallel(pool: WritePool, k: number): void {
    const len = pool.length(k);
    const took = pool.result(k);
    if (took < len) {
      pool.stats.incomplete++;
      // A copy: the arena is reused by the next round. A failed write (-1) goes whole to the
      // socket, which then meets the same error through libuv and closes as usual.
      const at = pool.offset(k);
      this.socket.write(Buffer.from(pool.arena.subarray(at + Math.max(0, took), at + len)));
    }
    this.socketBacklog = this.socket.writableLength;
  }

  whenDrained(cb: () => void): void {
    if (this.socket.writableLength > 0) this.socket.once('drain', cb);
    else setImmediate(cb);
  }

  close(code: number, reason: string): void {
    this.flush();
    this.ws.close(code, reason.slice(0, 120));
  }

  terminate(): void {
    this.pending = NO_FRAMES;
    this.pendingBytes = 0;
    this.ws.terminate();
  }

  /** Frames queued this turn, plus what the socket (and ws, for its control frames) still holds. */
  get bufferedAmount(): number {
    return this.pendingBytes + this.ws.bufferedAmount;
  }

  /** Frames queued this turn, plus what the socket held after the last flush (it only drains since). */
  get bufferedUpperBound(): number {
    return this.pendingBytes + this.socketBacklog;
  }
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
