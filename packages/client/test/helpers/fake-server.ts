/**
 * A scriptable gateway on a real socket (`ws` on 127.0.0.1, port 0): the test accepts connections,
 * reads what the client sent, sends scripted frames, closes with codes, or goes silent.
 * Everything is awaited on events; nothing sleeps.
 */
import { WebSocketServer, type WebSocket } from 'ws';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { encodeMsgpack } from '@signalbox/protocol';

type Frame = Record<string, unknown>;

/** A queue whose consumers await the next item matching a predicate. */
class Inbox<T> {
  readonly #items: T[] = [];
  readonly #waiters: { match: (v: T) => boolean; resolve: (v: T) => void }[] = [];

  push(item: T): void {
    const i = this.#waiters.findIndex((w) => w.match(item));
    if (i >= 0) this.#waiters.splice(i, 1)[0]!.resolve(item);
    else this.#items.push(item);
  }

  next(match: (v: T) => boolean = () => true): Promise<T> {
    const i = this.#items.findIndex(match);
    if (i >= 0) return Promise.resolve(this.#items.splice(i, 1)[0]!);
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }
}

export class FakeConnection {
  readonly inbox = new Inbox<Frame>();
  readonly closed: Promise<{ code: number; reason: string }>;
  #seq = 0;
  binary = false;

  constructor(readonly socket: WebSocket, readonly request: IncomingMessage) {
    socket.on('message', (data, isBinary) => {
      if (!isBinary) this.inbox.push(JSON.parse(String(data)) as Frame);
    });
    this.closed = new Promise((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  }

  get url(): URL {
    return new URL(this.request.url ?? '/', 'http://localhost');
  }

  get authorization(): string | undefined {
    return this.request.headers.authorization;
  }

  /** The next frame the client sent with this action (PRP) or type (PRD). */
  next(action: string): Promise<Frame> {
    return this.inbox.next((f) => f.action === action || (f.action === undefined && f.type === action));
  }

  send(message: Frame): void {
    if (this.binary) this.socket.send(encodeMsgpack(message), { binary: true });
    else this.socket.send(JSON.stringify(message));
  }

  /** A PRP server event. */
  event(type: string, data: unknown, extra: Frame = {}): void {
    this.send({ id: `srv_${++this.#seq}`, type, timestamp: new Date().toISOString(), data, ...extra });
  }

  establish(connectionId = 'conn_1'): void {
    this.event('connection.established', { connectionId, serverVersion: '1.0.0', features: ['subscribe', 'unsubscribe', 'heartbeat'] });
  }

  /** A PRP publication. */
  publication(channel: string, epoch: string, offset: number, type: string, data: unknown): void {
    this.event(type, data, { id: `pub_${channel}_${offset}`, channel, epoch, offset });
  }

  close(code: number, reason = ''): Promise<{ code: number; reason: string }> {
    this.socket.close(code, reason);
    return this.closed;
  }
}

export class FakeServer {
  readonly connections = new Inbox<FakeConnection>();
  readonly #wss: WebSocketServer;

  private constructor(wss: WebSocketServer) {
    this.#wss = wss;
    wss.on('connection', (socket, request) => this.connections.push(new FakeConnection(socket, request)));
  }

  /** Listens on 127.0.0.1, port 0. Selects the non-bearer subprotocol, as the gateway does. */
  static async start(): Promise<FakeServer> {
    const wss = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      handleProtocols: (protocols) => [...protocols].find((p) => !p.startsWith('bearer.')) ?? false,
    });
    await new Promise<void>((resolve) => wss.once('listening', resolve));
    return new FakeServer(wss);
  }

  url(path = '/v1/ws/prps'): string {
    const { port } = this.#wss.address() as AddressInfo;
    return `ws://127.0.0.1:${port}${path}`;
  }

  /** The next connection accepted. */
  accept(): Promise<FakeConnection> {
    return this.connections.next();
  }

  async close(): Promise<void> {
    for (const client of this.#wss.clients) client.terminate();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }
}

/** Anything with on/off (the client, a subscription). */
type Listenable = { on(type: never, handler: never): unknown; off(type: never, handler: never): unknown };

/** Resolves with the first event of `type` (matching `match`) an emitter-like object reports. */
export function once<T>(target: Listenable, type: string, match: (e: T) => boolean = () => true): Promise<T> {
  const emitter = target as unknown as { on(type: string, h: (e: T) => void): unknown; off(type: string, h: (e: T) => void): unknown };
  return new Promise((resolve) => {
    const handler = (e: T): void => {
      if (!match(e)) return;
      emitter.off(type, handler);
      resolve(e);
    };
    emitter.on(type, handler);
  });
}
