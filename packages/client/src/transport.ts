/**
 * The one place that touches a WebSocket. The constructor is injected (browsers: the native one;
 * Node: `ws`, via `@signalbox/client/node`), so nothing here depends on Node.
 *
 * Each {@link Transport} has an id. The client ignores callbacks whose id is not the current
 * transport's: a late `close` or `message` from a socket it already abandoned (heartbeat timeout,
 * connect timeout) must not tear down, or feed, its successor.
 */
import type { ClientConfig } from './options.js';

/**
 * The subset of the WHATWG WebSocket the client uses; the browser's WebSocket and `ws` both satisfy it.
 * Handler parameters are `never` on purpose: the browser and `ws` declare different event classes,
 * and this is the one seam where the client states what it reads from them (see {@link Transport}).
 */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol: string;
  binaryType: string;
  onopen: ((event: never) => unknown) | null;
  onmessage: ((event: never) => unknown) | null;
  onclose: ((event: never) => unknown) | null;
  onerror: ((event: never) => unknown) | null;
  send(data: string | Uint8Array<ArrayBuffer>): void;
  close(code?: number, reason?: string): void;
}

/** Options only `ws` understands (browsers cannot set headers; use the `bearer.<jwt>` subprotocol there). */
export interface WebSocketOptions {
  headers?: Record<string, string>;
}

/** A WebSocket constructor: `globalThis.WebSocket` in browsers, `ws`'s `WebSocket` in Node. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[], options?: WebSocketOptions) => WebSocketLike;

/** What the client learns from a transport. */
export interface TransportListener {
  onOpen(transportId: number): void;
  onMessage(transportId: number, data: string | Uint8Array): void;
  onClose(transportId: number, code: number, reason: string): void;
  onError(transportId: number, message: string): void;
}

export interface TransportOptions {
  url: string;
  protocols: string[];
  headers?: Record<string, string>;
}

/**
 * What to open for one attempt: the URL (with `format=msgpack` and, for `query`, the token), the
 * subprotocols (`signalbox.json`/`signalbox.msgpack`, then `bearer.<jwt>`) and, for `header`,
 * `Authorization: Bearer`. Browsers cannot set headers, hence three ways to carry the token.
 */
export function openOptions(config: Pick<ClientConfig, 'tokenTransport' | 'format'>, baseUrl: string, token: string | undefined): TransportOptions {
  const binary = config.format !== 'json';
  let url = baseUrl;
  try {
    const u = new URL(baseUrl);
    if (binary) u.searchParams.set('format', 'msgpack');
    if (token && config.tokenTransport === 'query') u.searchParams.set('token', token);
    url = u.toString();
  } catch {
    // Leave the URL as given: the WebSocket constructor reports what is wrong with it.
  }
  const protocols: string[] = [];
  if (config.tokenTransport === 'subprotocol') {
    protocols.push(binary ? 'signalbox.msgpack' : 'signalbox.json');
    if (token) protocols.push(`bearer.${token}`);
  } else if (config.tokenTransport === 'header' && token) {
    return { url, protocols, headers: { Authorization: `Bearer ${token}` } };
  }
  return { url, protocols };
}

const OPEN = 1;

interface MessageEventLike { data: unknown }
interface CloseEventLike { code?: number; reason?: string }
interface ErrorEventLike { message?: string; error?: unknown }

/** One WebSocket connection attempt and its lifetime. */
export class Transport {
  readonly id: number;
  #socket: WebSocketLike | null;

  /** Throws what the constructor throws (e.g. SyntaxError for a malformed URL). */
  constructor(id: number, Ctor: WebSocketConstructor, options: TransportOptions, listener: TransportListener) {
    this.id = id;
    const protocols = options.protocols.length > 0 ? options.protocols : undefined;
    const socket = options.headers ? new Ctor(options.url, protocols, { headers: options.headers }) : new Ctor(options.url, protocols);
    socket.binaryType = 'arraybuffer';
    socket.onopen = () => listener.onOpen(id);
    socket.onmessage = ((ev: MessageEventLike) => {
      const data = toFrame(ev.data);
      if (data !== undefined) listener.onMessage(id, data);
    }) as (event: never) => void;
    socket.onclose = ((ev: CloseEventLike) => {
      this.#detach();
      listener.onClose(id, typeof ev.code === 'number' ? ev.code : 1006, typeof ev.reason === 'string' ? ev.reason : '');
    }) as (event: never) => void;
    socket.onerror = ((ev: ErrorEventLike) => {
      const message = typeof ev.message === 'string' && ev.message ? ev.message
        : ev.error instanceof Error ? ev.error.message : 'WebSocket error';
      listener.onError(id, message);
    }) as (event: never) => void;
    this.#socket = socket;
  }

  get isOpen(): boolean {
    return this.#socket !== null && this.#socket.readyState === OPEN;
  }

  /** The subprotocol the server selected ('' if none). */
  get protocol(): string {
    return this.#socket?.protocol ?? '';
  }

  /** Writes a text frame (a binary one for bytes); false when the socket is not open (the caller keeps the message). */
  send(text: string | Uint8Array<ArrayBuffer>): boolean {
    const s = this.#socket;
    if (!s || s.readyState !== OPEN) return false;
    s.send(text);
    return true;
  }

  /**
   * Closes the socket and detaches every handler first, so this socket reports nothing more.
   * A half-open socket may never deliver its close event; the caller does not wait for it.
   */
  close(code = 1000, reason = ''): void {
    const s = this.#socket;
    if (!s) return;
    this.#detach();
    try {
      const terminate = (s as { terminate?: () => void }).terminate;
      // `ws` offers terminate(): drop the TCP connection at once instead of waiting for a close
      // handshake that a dead peer will never answer. Browsers only have close().
      if (code !== 1000 && typeof terminate === 'function') terminate.call(s);
      else s.close(code, reason);
    } catch {
      // close() throws on a socket still CONNECTING in some runtimes, or on an invalid code; either way it is gone to us.
    }
  }

  #detach(): void {
    const s = this.#socket;
    if (!s) return;
    s.onopen = null;
    s.onmessage = null;
    s.onclose = null;
    // Keep a no-op error handler: `ws` throws on an 'error' event nobody listens to.
    s.onerror = noop;
    this.#socket = null;
  }
}

function noop(): void {}

function toFrame(data: unknown): string | Uint8Array | undefined {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return undefined;
}
