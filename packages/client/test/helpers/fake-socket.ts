/**
 * An in-memory WebSocket for tests with fake timers: no network, every step driven by the test.
 * It satisfies the client's `WebSocketConstructor`, which is the point of making it injectable.
 */
import type { WebSocketConstructor, WebSocketLike, WebSocketOptions } from '../../src/index.js';

type Fn = ((event: never) => unknown) | null;

export class FakeSocket implements WebSocketLike {
  /** Every socket created, in order. */
  static instances: FakeSocket[] = [];
  static reset(): void {
    FakeSocket.instances = [];
  }
  static get last(): FakeSocket {
    const s = FakeSocket.instances[FakeSocket.instances.length - 1];
    if (!s) throw new Error('no socket created');
    return s;
  }

  readyState = 0;
  protocol = '';
  binaryType = 'blob';
  onopen: Fn = null;
  onmessage: Fn = null;
  onclose: Fn = null;
  onerror: Fn = null;
  /** Frames the client sent, parsed. */
  readonly sent: Record<string, unknown>[] = [];
  closedByClient: { code?: number; reason?: string } | undefined;

  constructor(
    readonly url: string,
    readonly protocols?: string | string[],
    readonly options?: WebSocketOptions,
  ) {
    FakeSocket.instances.push(this);
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }

  close(code?: number, reason?: string): void {
    this.closedByClient = { code, reason };
    this.readyState = 3;
  }

  /** True when the client left no handler attached (the no-op error guard aside). */
  get detached(): boolean {
    return this.onopen === null && this.onmessage === null && this.onclose === null;
  }

  // ---- Driven by the test -------------------------------------------------------------------

  open(): void {
    this.readyState = 1;
    call(this.onopen, {});
  }

  /** Opens and sends `connection.established` (PRP dialect). */
  establish(connectionId = 'conn_1'): void {
    this.open();
    this.receive({ id: 'm0', type: 'connection.established', timestamp: new Date().toISOString(), data: { connectionId, serverVersion: '1.0.0', features: [] } });
  }

  receive(message: unknown): void {
    call(this.onmessage, { data: JSON.stringify(message) });
  }

  /** The server (or the network) closes the connection. */
  serverClose(code = 1006, reason = ''): void {
    this.readyState = 3;
    call(this.onerror, { message: 'closed' });
    call(this.onclose, { code, reason });
  }

  /** Frames of one action (PRP) or type (PRD). */
  frames(action: string): Record<string, unknown>[] {
    return this.sent.filter((f) => f.action === action || (f.action === undefined && f.type === action));
  }
}

function call(fn: Fn, event: unknown): void {
  if (fn) (fn as (e: unknown) => unknown)(event);
}

export const FakeWebSocket: WebSocketConstructor = FakeSocket;
