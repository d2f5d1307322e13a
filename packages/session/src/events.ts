/**
 * The event schema of a `session:{id}` channel: what the in-page SDK ({@link startSession}) and the
 * CDP bridge (`attachBridge`) publish, one publication per event, its `type` the event type below.
 * Every type is one of the `session` namespace's producer types (`console.*`, `network.*`,
 * `page.*`, `error.*`, `debug.command`, `debug.result`): only a connection with a `handle` grant
 * on the session may publish them, so a viewer can never speak as the page.
 *
 * docs/session-debugging.md documents the same schema for readers outside TypeScript.
 */

/** Console levels captured. */
export const CONSOLE_LEVELS = ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const;
export type ConsoleLevel = (typeof CONSOLE_LEVELS)[number];

/** Which source published an event. */
export type SessionSource = 'page' | 'cdp';

/** Fields every event carries. */
export interface BaseEvent {
  /** Wall-clock ms (Date.now()) when the page saw it. */
  ts: number;
  /** Per-source sequence number, from 1; a gap means events were dropped (see `page.dropped`). */
  seq: number;
  source: SessionSource;
}

/** `console.{level}`: one console call. */
export interface ConsoleEvent extends BaseEvent {
  level: ConsoleLevel;
  /** Each argument, serialized safely (see `serialize.ts` for the `$type` markers). */
  args: unknown[];
  /** True when the arguments were cut to the size bound. */
  truncated: boolean;
}

/** `error.uncaught` (a thrown error nobody caught) and `error.unhandledrejection`. */
export interface ErrorEvent extends BaseEvent {
  message: string;
  name: string | null;
  stack: string | null;
  /** Script URL, line and column, when the browser tells. */
  url: string | null;
  line: number | null;
  column: number | null;
}

/** `network.request`: one request, reported when it finished or failed. */
export interface NetworkEvent extends BaseEvent {
  /** `fetch`, `xhr`, or for the bridge the CDP resource type (`Document`, `Fetch`, `Image`…). */
  api: string;
  method: string;
  /** After URL redaction. */
  url: string;
  /** HTTP status; 0 when the request failed (network error, CORS, abort). */
  status: number;
  ok: boolean;
  durationMs: number;
  /** Request body bytes when known, else null. */
  requestSize: number | null;
  /** Response body bytes when known, else null. */
  responseSize: number | null;
  /** Header names lower-cased; sensitive ones' values replaced by `[redacted]`. */
  requestHeaders: Record<string, string>;
  responseHeaders: Record<string, string>;
  /** Why it failed (`TypeError: Failed to fetch`, `net::ERR_CONNECTION_REFUSED`), else null. */
  error: string | null;
  /** Bodies, only with `capture.network.bodies`, cut to `maxBodyBytes`. */
  requestBody?: string | null;
  responseBody?: string | null;
}

/** How a navigation happened. */
export type NavigationKind = 'start' | 'load' | 'pushState' | 'replaceState' | 'popstate' | 'hashchange' | 'navigated' | 'same-document';

/** `page.navigation`. */
export interface NavigationEvent extends BaseEvent {
  kind: NavigationKind;
  url: string;
  title: string | null;
}

/** `page.visibility`. */
export interface VisibilityEvent extends BaseEvent {
  state: 'visible' | 'hidden';
}

/** `page.started`: the source is live on the channel; what it captures and which commands it serves. */
export interface StartedEvent extends BaseEvent {
  url: string;
  title: string | null;
  userAgent: string | null;
  capture: string[];
  commands: string[];
}

/** `page.dropped`: events not published because of the per-second cap or a full buffer. */
export interface DroppedEvent extends BaseEvent {
  count: number;
  reason: 'rate' | 'buffer' | 'publish';
}

/** `page.frame` (bridge only): one screencast frame, a JPEG. */
export interface FrameEvent extends BaseEvent {
  /**
   * The JPEG. Raw bytes when the bridge publishes over MessagePack (its default) and the viewer
   * reads MessagePack; `{"$base64": "…"}` for a JSON viewer. {@link frameBytes} reads both.
   */
  jpeg: Uint8Array | { $base64: string };
  /** Image size, px (read from the JPEG itself). */
  width: number;
  height: number;
  /** The viewport in CSS px the image shows: a click at image (x, y) is at (x * deviceWidth / width, …). */
  deviceWidth: number;
  deviceHeight: number;
  scrollX: number;
  scrollY: number;
}

/** `debug.command`: a command is about to run; the caller as the gateway authenticated it. */
export interface CommandEvent extends BaseEvent {
  callId: string;
  method: string;
  /** The params, serialized and bounded like console arguments. */
  params: unknown;
  caller: { via: string; sub?: string; connectionId?: string; key?: string } & Record<string, unknown>;
}

/** `debug.result`: how that command ended. */
export interface CommandResultEvent extends BaseEvent {
  callId: string;
  method: string;
  ok: boolean;
  /** The error code and message when refused or failed. */
  error: { code: string; message: string } | null;
  durationMs: number;
}

/** Every event type, with its data. */
export interface SessionEvents {
  'console.log': ConsoleEvent;
  'console.info': ConsoleEvent;
  'console.warn': ConsoleEvent;
  'console.error': ConsoleEvent;
  'console.debug': ConsoleEvent;
  'console.trace': ConsoleEvent;
  'error.uncaught': ErrorEvent;
  'error.unhandledrejection': ErrorEvent;
  'network.request': NetworkEvent;
  'page.navigation': NavigationEvent;
  'page.visibility': VisibilityEvent;
  'page.started': StartedEvent;
  'page.dropped': DroppedEvent;
  'page.frame': FrameEvent;
  'debug.command': CommandEvent;
  'debug.result': CommandResultEvent;
}

export type SessionEventType = keyof SessionEvents;

/** The channel of session `id`. */
export function sessionChannel(id: string): string {
  if (typeof id !== 'string' || !/^[A-Za-z0-9_-]{1,128}$/.test(id)) {
    throw new TypeError(`A session id must be 1-128 characters of [A-Za-z0-9_-], got ${JSON.stringify(id)}`);
  }
  return `session:${id}`;
}

/** The bytes of a `page.frame`'s `jpeg`, whichever way it arrived (MessagePack bytes or JSON `$base64`). */
export function frameBytes(jpeg: unknown): Uint8Array {
  if (jpeg instanceof Uint8Array) return jpeg;
  const b64 = (jpeg as { $base64?: unknown } | null)?.$base64;
  if (typeof b64 !== 'string') throw new TypeError('not a frame: expected bytes or {"$base64": "..."}');
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * Width and height of a JPEG from its SOF marker, or null when `bytes` is not a complete JPEG
 * (SOI first, EOI last, a SOF segment in between).
 */
export function jpegSize(bytes: Uint8Array): { width: number; height: number } | null {
  const n = bytes.length;
  if (n < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8 || bytes[n - 2] !== 0xff || bytes[n - 1] !== 0xd9) return null;
  let i = 2;
  while (i + 9 < n) {
    if (bytes[i] !== 0xff) return null;
    const marker = bytes[i + 1]!;
    const len = (bytes[i + 2]! << 8) | bytes[i + 3]!;
    // SOF0..SOF15 except DHT (c4), JPG (c8) and DAC (cc).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: (bytes[i + 5]! << 8) | bytes[i + 6]!, width: (bytes[i + 7]! << 8) | bytes[i + 8]! };
    }
    i += 2 + len;
  }
  return null;
}

/** The error codes a session's command handler answers (the caller sees `RPC_FAILED` with `details.handlerCode`). */
export const CommandErrorCode = {
  /** The command exists but this page or bridge did not enable it (e.g. `eval`). */
  COMMAND_DISABLED: 'COMMAND_DISABLED',
  /** Not a command of this source. */
  UNKNOWN_COMMAND: 'UNKNOWN_COMMAND',
  /** Params missing or of the wrong type. */
  INVALID_PARAMS: 'INVALID_PARAMS',
  /** A selector the browser cannot parse. */
  INVALID_SELECTOR: 'INVALID_SELECTOR',
  /** The selector matched nothing (click/type by selector). */
  NOT_FOUND: 'NOT_FOUND',
  /** The evaluated code threw, or the browser refused the action. */
  COMMAND_FAILED: 'COMMAND_FAILED',
} as const;
export type CommandErrorCode = (typeof CommandErrorCode)[keyof typeof CommandErrorCode];

/** An error a command handler throws: its `code` reaches the caller as `details.handlerCode`. */
export class CommandError extends Error {
  constructor(readonly code: CommandErrorCode, message: string) {
    super(message);
    this.name = 'CommandError';
  }
}
