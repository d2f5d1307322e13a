/**
 * The in-page source: `startSession({client, session, ...})` hooks the page's console, errors,
 * fetch/XMLHttpRequest, navigations and visibility, publishes them on `session:{id}` (schema in
 * events.ts), and answers the session's commands (`dom.query` by default; `storage.get`,
 * `location.reload`, `location.navigate` and `eval` only when enabled).
 *
 * Every hook is removed by `stop()`. A hook never throws into the page: capture failures are
 * swallowed, the page's own call always runs as if nothing were there.
 */
import type { PresenceMember, RpcRegistration } from '@signalbox/client';
import { CONSOLE_LEVELS, CommandError, CommandErrorCode, sessionChannel, type ConsoleLevel, type NavigationKind } from './events.js';
import { Redactor, type RedactOptions } from './redact.js';
import { DEFAULT_SERIALIZE_LIMITS, clip, serialize, serializeAll, type SerializeLimits } from './serialize.js';
import { EventStream, Watchers, serveCommands, stringParam, type Command, type SessionClient, type StreamOptions } from './stream.js';
import { showBadge, type BadgeOptions } from './badge.js';

/** What to capture (all on by default except bodies). */
export interface CaptureOptions {
  /** Console levels to capture; `true` = all, `false` = none. */
  console?: boolean | ConsoleLevel[];
  /** Uncaught errors and unhandled rejections. */
  errors?: boolean;
  /** fetch and XMLHttpRequest; `{bodies: true}` adds request/response bodies (text, cut to `maxBodyBytes`). */
  network?: boolean | { bodies?: boolean; maxBodyBytes?: number };
  navigation?: boolean;
  visibility?: boolean;
  /** Capture nothing while nobody watches (viewers from the channel's presence). Default false. */
  onlyWhileWatched?: boolean;
  /** Bounds of serialized console arguments and results. */
  limits?: Partial<SerializeLimits>;
}

/** Commands to enable beyond `dom.query` (each off unless set). */
export interface CommandOptions {
  /** `dom.query` ({selector} -> text and html of the first match). Default true. */
  domQuery?: boolean;
  /** `storage.get` ({area: 'local'|'session', key?}). */
  storage?: boolean;
  /** `location.reload`. */
  reload?: boolean;
  /** `location.navigate` ({url}); http(s) only, and with an array only to these origins. */
  navigate?: boolean | string[];
  /** `eval` ({expression}): runs code in the page. Only when set to exactly `true`. */
  eval?: boolean;
}

export interface StartSessionOptions extends StreamOptions {
  /** A connected (or connecting) SignalboxClient whose token has `channels` + `handle` on the session. */
  client: SessionClient;
  /** The session's id: the channel is `session:{id}`. */
  session: string;
  capture?: CaptureOptions;
  commands?: CommandOptions;
  redact?: RedactOptions;
  /** Called with the viewers whenever the set changes (empty: nobody watches any more). */
  onWatched?: (viewers: PresenceMember[]) => void;
  /** Show a small fixed badge while watched (`true`, or its text and position). */
  badge?: boolean | BadgeOptions;
  /** How often presence is read, ms (default 2000). */
  watchIntervalMs?: number;
}

/** A running session. */
export interface PageSession {
  readonly channel: string;
  /** True while at least one viewer is on the channel (or presence cannot tell). */
  readonly watched: boolean;
  readonly viewers: readonly PresenceMember[];
  /** The RPC registration (await `commands.ready`). */
  readonly commands: RpcRegistration;
  /** Publishes what is buffered now. */
  flush(): void;
  /** Removes every hook and the command handler. */
  stop(): void;
}

/** Starts capturing this page on `session:{id}`. */
export function startSession(options: StartSessionOptions): PageSession {
  const channel = sessionChannel(options.session);
  const client = options.client;
  const capture = options.capture ?? {};
  const redactor = new Redactor(options.redact);
  const limits: SerializeLimits = { ...DEFAULT_SERIALIZE_LIMITS, ...capture.limits };
  const stream = new EventStream(client, channel, 'page', options);
  const undo: (() => void)[] = [];
  let watchers: Watchers | undefined;
  let badge: { remove(): void; update(n: number): void } | undefined;

  const active = (): boolean => !stream.busy && (!capture.onlyWhileWatched || (watchers?.watched ?? false));

  // ---- console ---------------------------------------------------------------------------------
  const levels: readonly ConsoleLevel[] = capture.console === false ? [] : Array.isArray(capture.console) ? capture.console : CONSOLE_LEVELS;
  for (const level of levels) {
    const original = console[level] as (...args: unknown[]) => void;
    if (typeof original !== 'function') continue;
    const hook = function (this: unknown, ...args: unknown[]): void {
      if (active()) {
        try {
          stream.emitLazy(`console.${level}`, () => {
            const { values, truncated } = serializeAll(args, limits, redactor.text);
            return { level, args: values, truncated };
          });
        } catch {
          // Never let capture break the page's own logging.
        }
      }
      original.apply(this, args);
    };
    console[level] = hook;
    undo.push(() => {
      if (console[level] === hook) console[level] = original;
    });
  }

  // ---- errors ----------------------------------------------------------------------------------
  if (capture.errors !== false && typeof window !== 'undefined') {
    const onError = (e: globalThis.ErrorEvent): void => {
      if (!active()) return;
      const err = e.error as { name?: unknown; stack?: unknown } | undefined;
      stream.emit('error.uncaught', {
        message: redactor.text(clip(String(e.message ?? ''), limits.maxString)),
        name: typeof err?.name === 'string' ? err.name : null,
        stack: typeof err?.stack === 'string' ? redactor.text(clip(err.stack, limits.maxString * 2)) : null,
        url: e.filename ? redactor.url(e.filename) : null,
        line: e.lineno || null,
        column: e.colno || null,
      });
    };
    const onRejection = (e: PromiseRejectionEvent): void => {
      if (!active()) return;
      const r = e.reason as { name?: unknown; message?: unknown; stack?: unknown } | null | undefined;
      const isErr = typeof r === 'object' && r !== null && typeof r.message === 'string';
      stream.emit('error.unhandledrejection', {
        message: redactor.text(clip(isErr ? String(r.message) : JSON.stringify(serialize(r, limits).value) ?? String(r), limits.maxString)),
        name: isErr && typeof r.name === 'string' ? r.name : null,
        stack: isErr && typeof r.stack === 'string' ? redactor.text(clip(r.stack, limits.maxString * 2)) : null,
        url: null, line: null, column: null,
      });
    };
    window.addEventListener('error', onError);
    window.addEventListener('unhandledrejection', onRejection);
    undo.push(() => {
      window.removeEventListener('error', onError);
      window.removeEventListener('unhandledrejection', onRejection);
    });
  }

  // ---- network ---------------------------------------------------------------------------------
  if (capture.network !== false && typeof window !== 'undefined') {
    const net = typeof capture.network === 'object' ? capture.network : {};
    const bodies = net.bodies === true;
    const maxBody = net.maxBodyBytes ?? 2048;
    undo.push(hookFetch(stream, redactor, active, bodies, maxBody));
    undo.push(hookXhr(stream, redactor, active, bodies, maxBody));
  }

  // ---- navigation, visibility ------------------------------------------------------------------
  if (capture.navigation !== false && typeof window !== 'undefined') {
    const report = (kind: NavigationKind): void => {
      if (active()) stream.emit('page.navigation', { kind, url: redactor.url(location.href), title: document.title || null });
    };
    const hist = history;
    const push = hist.pushState;
    const replace = hist.replaceState;
    hist.pushState = function (this: History, ...args: Parameters<History['pushState']>) {
      push.apply(this, args);
      report('pushState');
    };
    hist.replaceState = function (this: History, ...args: Parameters<History['replaceState']>) {
      replace.apply(this, args);
      report('replaceState');
    };
    const onPop = (): void => report('popstate');
    const onHash = (): void => report('hashchange');
    const onLoad = (): void => report('load');
    window.addEventListener('popstate', onPop);
    window.addEventListener('hashchange', onHash);
    window.addEventListener('load', onLoad);
    undo.push(() => {
      hist.pushState = push;
      hist.replaceState = replace;
      window.removeEventListener('popstate', onPop);
      window.removeEventListener('hashchange', onHash);
      window.removeEventListener('load', onLoad);
    });
  }
  if (capture.visibility !== false && typeof document !== 'undefined') {
    const onVis = (): void => {
      if (active()) stream.emit('page.visibility', { state: document.visibilityState === 'hidden' ? 'hidden' : 'visible' });
    };
    document.addEventListener('visibilitychange', onVis);
    undo.push(() => document.removeEventListener('visibilitychange', onVis));
  }

  // ---- commands --------------------------------------------------------------------------------
  const cmd = options.commands ?? {};
  const enabled = new Map<string, Command>();
  if (cmd.domQuery !== false) enabled.set('dom.query', (p) => domQuery(p, redactor));
  if (cmd.storage === true) enabled.set('storage.get', (p) => storageGet(p, redactor));
  if (cmd.reload === true) {
    enabled.set('location.reload', () => {
      // After the reply is on its way: the reload ends this page and its connection.
      setTimeout(() => location.reload(), 50);
      return { reloading: true };
    });
  }
  if (cmd.navigate === true || Array.isArray(cmd.navigate)) {
    const origins = Array.isArray(cmd.navigate) ? cmd.navigate : null;
    enabled.set('location.navigate', (p) => {
      const raw = stringParam(p, 'url', 4096);
      let url: URL;
      try {
        url = new URL(raw, location.href);
      } catch {
        throw new CommandError(CommandErrorCode.INVALID_PARAMS, `"url" is not a URL: ${clip(raw, 100)}`);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CommandError(CommandErrorCode.INVALID_PARAMS, 'Only http(s) URLs may be navigated to');
      if (origins && !origins.includes(url.origin)) throw new CommandError(CommandErrorCode.COMMAND_DISABLED, `Navigating to ${url.origin} is not allowed on this page`);
      setTimeout(() => location.assign(url.href), 50);
      return { navigating: redactor.url(url.href) };
    });
  }
  // `eval` runs arbitrary code: enabled by an explicit `true` only, never by a truthy value.
  if (cmd.eval === true) {
    enabled.set('eval', async (p) => {
      const expression = stringParam(p, 'expression', 100_000);
      let value: unknown;
      try {
        // Indirect eval: global scope, not this module's.
        value = await (0, eval)(expression);
      } catch (err) {
        throw new CommandError(CommandErrorCode.COMMAND_FAILED, `The expression threw: ${redactor.text(String((err as Error)?.message ?? err))}`);
      }
      return serialize(value, limits, redactor.text);
    });
  }
  const registration = serveCommands(client, stream, enabled, ['dom.query', 'storage.get', 'location.reload', 'location.navigate', 'eval'], () => watchers?.refresh());

  // ---- watched ---------------------------------------------------------------------------------
  const wantsWatch = capture.onlyWhileWatched === true || options.onWatched !== undefined || (options.badge ?? false) !== false;
  if (wantsWatch) {
    watchers = new Watchers(client, channel, options.watchIntervalMs ?? 2000, (viewers) => {
      const n = watchers?.unknown ? -1 : viewers.length;
      if (options.badge && typeof document !== 'undefined') {
        if (n !== 0 && !badge) badge = showBadge(options.badge === true ? {} : options.badge);
        if (n === 0 && badge) {
          badge.remove();
          badge = undefined;
        }
        badge?.update(n);
      }
      try {
        options.onWatched?.(viewers);
      } catch {
        // The page's callback must not stop the polling.
      }
    });
    undo.push(() => {
      watchers?.stop();
      badge?.remove();
    });
  }

  stream.emit('page.started', {
    url: typeof location !== 'undefined' ? redactor.url(location.href) : '',
    title: typeof document !== 'undefined' ? document.title || null : null,
    userAgent: typeof navigator !== 'undefined' ? navigator.userAgent : null,
    capture: [levels.length ? 'console' : '', capture.errors !== false ? 'errors' : '', capture.network !== false ? 'network' : '', capture.navigation !== false ? 'navigation' : '', capture.visibility !== false ? 'visibility' : ''].filter(Boolean),
    commands: [...enabled.keys()],
  });

  let stopped = false;
  return {
    channel,
    get watched() {
      return watchers ? watchers.watched : false;
    },
    get viewers() {
      return watchers?.viewers ?? [];
    },
    commands: registration,
    flush: () => stream.flush(),
    stop() {
      if (stopped) return;
      stopped = true;
      for (const f of undo.reverse()) f();
      registration.stop();
      stream.stop();
    },
  };
}

// ---- commands ----------------------------------------------------------------------------------

const MAX_TEXT = 4000;
const MAX_HTML = 8000;

function domQuery(p: Record<string, unknown>, redactor: Redactor): unknown {
  const selector = stringParam(p, 'selector', 1000);
  let el: Element | null;
  let count: number;
  try {
    const all = document.querySelectorAll(selector);
    count = all.length;
    el = all[0] ?? null;
  } catch {
    throw new CommandError(CommandErrorCode.INVALID_SELECTOR, `Not a valid selector: ${clip(selector, 100)}`);
  }
  if (!el) return { found: false, count: 0, text: null, html: null, tag: null };
  const text = (el as HTMLElement).innerText ?? el.textContent ?? '';
  return {
    found: true,
    count,
    tag: el.tagName.toLowerCase(),
    text: redactor.text(clip(text, MAX_TEXT)),
    html: redactor.text(clip(el.outerHTML, MAX_HTML)),
    value: el instanceof HTMLInputElement || el instanceof HTMLTextAreaElement || el instanceof HTMLSelectElement
      ? (el instanceof HTMLInputElement && el.type === 'password' ? '[redacted]' : redactor.text(clip(el.value, MAX_TEXT)))
      : null,
  };
}

function storageGet(p: Record<string, unknown>, redactor: Redactor): unknown {
  const area = p.area ?? 'local';
  if (area !== 'local' && area !== 'session') throw new CommandError(CommandErrorCode.INVALID_PARAMS, '"area" must be "local" or "session"');
  const store = area === 'local' ? localStorage : sessionStorage;
  if (p.key === undefined) {
    const keys: string[] = [];
    for (let i = 0; i < store.length && keys.length < 200; i++) keys.push(store.key(i) ?? '');
    return { area, length: store.length, keys };
  }
  const key = stringParam(p, 'key', 1000);
  const v = store.getItem(key);
  return { area, key, value: v === null ? null : redactor.text(clip(v, MAX_TEXT)) };
}

// ---- network hooks -----------------------------------------------------------------------------

function bodySize(body: unknown): number | null {
  if (body === undefined || body === null) return 0;
  if (typeof body === 'string') return new TextEncoder().encode(body).length;
  if (body instanceof Blob) return body.size;
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return body.byteLength;
  if (body instanceof URLSearchParams) return body.toString().length;
  return null;
}

function bodyText(body: unknown, max: number): string | null {
  if (typeof body === 'string') return clip(body, max);
  if (body instanceof URLSearchParams) return clip(body.toString(), max);
  return null;
}

function hookFetch(stream: EventStream, redactor: Redactor, active: () => boolean, bodies: boolean, maxBody: number): () => void {
  const original = window.fetch;
  if (typeof original !== 'function') return () => {};
  const hooked = async function (this: unknown, input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    if (!active()) return original.call(this, input, init);
    const started = performance.now();
    let method = 'GET';
    let url = '';
    let reqHeaders: Record<string, string> = {};
    let reqBody: unknown;
    try {
      const req = input instanceof Request ? input : null;
      method = (init?.method ?? req?.method ?? 'GET').toUpperCase();
      url = redactor.url(req ? req.url : String(input), location.href);
      reqHeaders = redactor.headers(new Headers(init?.headers ?? req?.headers ?? undefined).entries());
      reqBody = init?.body;
    } catch {
      // A shape we cannot read: the request still goes out untouched.
    }
    const base = { api: 'fetch', method, url, requestHeaders: reqHeaders, requestSize: bodySize(reqBody), ...(bodies ? { requestBody: bodyText(reqBody, maxBody) } : {}) };
    let res: Response;
    try {
      res = await original.call(this, input, init);
    } catch (err) {
      stream.emit('network.request', { ...base, status: 0, ok: false, durationMs: round(performance.now() - started), responseSize: null, responseHeaders: {}, error: redactor.text(`${(err as Error)?.name ?? 'Error'}: ${(err as Error)?.message ?? String(err)}`) });
      throw err;
    }
    try {
      const len = res.headers.get('content-length');
      const done = (responseBody?: string | null): void => stream.emit('network.request', {
        ...base, status: res.status, ok: res.ok, durationMs: round(performance.now() - started),
        responseSize: len !== null && /^\d+$/.test(len) ? Number(len) : null,
        responseHeaders: redactor.headers(res.headers.entries()), error: null,
        ...(bodies ? { responseBody: responseBody ?? null } : {}),
      });
      if (bodies) res.clone().text().then((t) => done(redactor.text(clip(t, maxBody))), () => done(null));
      else done();
    } catch {
      // Capture only.
    }
    return res;
  };
  window.fetch = hooked as typeof window.fetch;
  return () => {
    if (window.fetch === hooked) window.fetch = original;
  };
}

interface XhrState {
  method: string;
  url: string;
  headers: [string, string][];
  started: number;
}

function hookXhr(stream: EventStream, redactor: Redactor, active: () => boolean, bodies: boolean, maxBody: number): () => void {
  if (typeof XMLHttpRequest === 'undefined') return () => {};
  const proto = XMLHttpRequest.prototype;
  const open = proto.open;
  const send = proto.send;
  const setHeader = proto.setRequestHeader;
  const state = new WeakMap<XMLHttpRequest, XhrState>();
  proto.open = function (this: XMLHttpRequest, method: string, url: string | URL, ...rest: unknown[]) {
    try {
      state.set(this, { method: String(method).toUpperCase(), url: String(url), headers: [], started: 0 });
    } catch {
      // Capture only.
    }
    return (open as (...a: unknown[]) => void).call(this, method, url, ...rest);
  } as typeof proto.open;
  proto.setRequestHeader = function (this: XMLHttpRequest, name: string, value: string) {
    state.get(this)?.headers.push([name, value]);
    return setHeader.call(this, name, value);
  };
  proto.send = function (this: XMLHttpRequest, body?: Document | XMLHttpRequestBodyInit | null) {
    const s = state.get(this);
    if (s && active()) {
      s.started = performance.now();
      const onEnd = (ev: ProgressEvent): void => {
        const xhr = ev.currentTarget as XMLHttpRequest;
        xhr.removeEventListener('loadend', onEnd);
        try {
          const status = xhr.status;
          const headers: [string, string][] = xhr.getAllResponseHeaders().trim().split(/[\r\n]+/).filter(Boolean).map((line) => {
            const i = line.indexOf(':');
            return [line.slice(0, i).trim(), line.slice(i + 1).trim()];
          });
          const text = xhr.responseType === '' || xhr.responseType === 'text' ? xhr.responseText : null;
          const resp = xhr.response as unknown;
          stream.emit('network.request', {
            api: 'xhr', method: s.method, url: redactor.url(s.url, location.href), status, ok: status >= 200 && status < 300,
            durationMs: round(performance.now() - s.started), requestSize: bodySize(body), responseSize: text !== null ? new TextEncoder().encode(text).length : bodySize(resp),
            requestHeaders: redactor.headers(s.headers), responseHeaders: redactor.headers(headers), error: status === 0 ? 'XMLHttpRequest failed (network error, CORS, abort or timeout)' : null,
            ...(bodies ? { requestBody: bodyText(body, maxBody), responseBody: text !== null ? redactor.text(clip(text, maxBody)) : null } : {}),
          });
        } catch {
          // Capture only.
        }
      };
      this.addEventListener('loadend', onEnd);
    }
    return send.call(this, body);
  };
  return () => {
    proto.open = open;
    proto.send = send;
    proto.setRequestHeader = setHeader;
  };
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
