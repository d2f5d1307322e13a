/**
 * The CDP bridge: attaches to a tab of a Chromium the platform runs (headless, driven by an agent
 * or a test) through the Chrome DevTools Protocol (playwright-core's `connectOverCDP` and a
 * `CDPSession` on the tab), and relays on `session:{id}`:
 *
 * - console calls, exceptions, network requests and navigations, as the same event types as the
 *   in-page source (`source: 'cdp'`);
 * - the screen, as `page.frame` publications (JPEG bytes) from `Page.startScreencast`, only while
 *   someone watches (the channel's presence), at most `maxFps`: a frame is acked to Chromium only
 *   once the gateway acked its publication and the frame interval has passed, so a slow path never
 *   piles frames up (Chromium sends the next frame after the ack);
 *
 * and answers commands: `evaluate`, `dom.query`, `click` and `type` (at a point or a selector),
 * `key`, `scroll`, `navigate`, `screenshot`. The CDP session is the tab's, so it survives the page
 * navigating, also to another site (a new renderer process: the screencast goes on, as the
 * bridge tests check); the SDK reconnects to the gateway by itself and registers the handler again.
 */
import { chromium, type Browser, type CDPSession, type Page } from 'playwright-core';
import type { PresenceMember, RpcRegistration } from '@signalbox/client';
import { Bytes, fromBase64 } from '@signalbox/protocol';
import { CommandError, CommandErrorCode, jpegSize, sessionChannel, type ConsoleLevel } from './events.js';
import { Redactor, type RedactOptions } from './redact.js';
import { DEFAULT_SERIALIZE_LIMITS, clip, serialize, serializeAll } from './serialize.js';
import { EventStream, Watchers, numberParam, serveCommands, stringParam, type Command, type SessionClient, type StreamOptions } from './stream.js';

export interface ScreencastOptions {
  /** Frames per second at most (default 5). */
  maxFps?: number;
  /** JPEG quality 0-100 (default 60). */
  quality?: number;
  /** Largest frame, px (default 1024 x 768; Chromium scales the viewport down to fit). */
  maxWidth?: number;
  maxHeight?: number;
}

export interface BridgeCommandOptions {
  /** `evaluate` (default true: the operator attaching the bridge owns the browser). */
  evaluate?: boolean;
  /** `click`, `type`, `key`, `scroll` (default true). */
  input?: boolean;
  /** `navigate` (default true). */
  navigate?: boolean;
  /** `screenshot` (default true). */
  screenshot?: boolean;
}

export interface AttachBridgeOptions extends StreamOptions {
  /** A SignalboxClient (Node: `@signalbox/client/node`; with `WebSocket: BinaryPublishWebSocket` frames travel as bytes). Token: `channels` + `handle` on the session. */
  client: SessionClient;
  /** The browser's CDP endpoint: `ws://127.0.0.1:9222/devtools/browser/…` or `http://127.0.0.1:9222`. */
  cdp: string;
  /** The tab: its CDP target id, or a substring of its URL (the first tab that matches). */
  target: string;
  /** The session's id: the channel is `session:{id}`. */
  session: string;
  /** `false` for no screen. */
  screencast?: false | ScreencastOptions;
  commands?: BridgeCommandOptions;
  redact?: RedactOptions;
  /** How often presence is read, ms (default 1000). */
  watchIntervalMs?: number;
  onWatched?: (viewers: PresenceMember[]) => void;
  /** How long to wait for the target to appear, ms (default 10000). */
  targetTimeoutMs?: number;
}

/** Counters of a running bridge. */
export interface BridgeStats {
  framesPublished: number;
  /** Frames acked without publishing (nobody watching, too large, publish refused). */
  framesSkipped: number;
  screencasting: boolean;
}

export interface Bridge {
  readonly channel: string;
  readonly targetId: string;
  /** The playwright Page of the tab. */
  readonly page: Page;
  readonly watched: boolean;
  readonly viewers: readonly PresenceMember[];
  readonly commands: RpcRegistration;
  readonly stats: Readonly<BridgeStats>;
  /** Resolves when the bridge stopped (stop(), the tab closed or the browser went away). */
  readonly closed: Promise<void>;
  /** Detaches from the tab (the browser and the tab stay) and stops answering commands. */
  stop(): Promise<void>;
}

interface RemoteObject {
  type: string;
  subtype?: string;
  value?: unknown;
  unserializableValue?: string;
  description?: string;
  className?: string;
  preview?: { properties: { name: string; type: string; value?: string; subtype?: string }[]; overflow: boolean };
}

interface PendingRequest {
  method: string;
  url: string;
  type: string;
  started: number;
  headers: Record<string, string>;
  requestSize: number | null;
  status: number;
  responseHeaders: Record<string, string>;
}

const CONSOLE_TYPE: Record<string, ConsoleLevel> = { log: 'log', info: 'info', warning: 'warn', error: 'error', debug: 'debug', trace: 'trace', assert: 'error' };
const MAX_PENDING_REQUESTS = 1000;

/** Finds the tab: by target id, else the first whose URL contains `target`. */
async function findTarget(browser: Browser, target: string, timeoutMs: number): Promise<{ page: Page; cdp: CDPSession; targetId: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const context of browser.contexts()) {
      for (const page of context.pages()) {
        const cdp = await context.newCDPSession(page);
        const { targetInfo } = (await cdp.send('Target.getTargetInfo')) as { targetInfo: { targetId: string; url: string } };
        if (targetInfo.targetId === target || page.url().includes(target)) return { page, cdp, targetId: targetInfo.targetId };
        await cdp.detach().catch(() => {});
      }
    }
    if (Date.now() > deadline) throw new Error(`No tab matches --target ${JSON.stringify(target)} (a target id or a URL substring)`);
    // The tab may not exist yet: wait for one to open, or poll (a page navigating to the URL fires nothing here).
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Attaches the bridge. Rejects when the browser cannot be reached or no tab matches in time. */
export async function attachBridge(options: AttachBridgeOptions): Promise<Bridge> {
  const channel = sessionChannel(options.session);
  const client = options.client;
  const redactor = new Redactor(options.redact);
  const limits = DEFAULT_SERIALIZE_LIMITS;
  const stream = new EventStream(client, channel, 'cdp', options);
  const browser = await chromium.connectOverCDP(options.cdp);
  let found: { page: Page; cdp: CDPSession; targetId: string };
  try {
    found = await findTarget(browser, options.target, options.targetTimeoutMs ?? 10_000);
  } catch (err) {
    await browser.close().catch(() => {});
    throw err;
  }
  const { page, cdp, targetId } = found;
  const stats: BridgeStats = { framesPublished: 0, framesSkipped: 0, screencasting: false };
  let stopped = false;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => { resolveClosed = r; });
  let mainFrameId: string | undefined;

  // ---- events ----------------------------------------------------------------------------------
  cdp.on('Runtime.consoleAPICalled', (e: { type: string; args: RemoteObject[]; timestamp: number }) => {
    const level = CONSOLE_TYPE[e.type] ?? 'log';
    const { values, truncated } = serializeAll(e.args.map(remoteValue), limits, redactor.text);
    stream.emit(`console.${level}`, { level, args: values, truncated, ts: Math.round(e.timestamp) });
  });
  cdp.on('Runtime.exceptionThrown', (e: { timestamp: number; exceptionDetails: { text: string; url?: string; lineNumber?: number; columnNumber?: number; exception?: RemoteObject } }) => {
    const d = e.exceptionDetails;
    const desc = d.exception?.description ?? (d.exception ? String(remoteValue(d.exception)) : null);
    const rejection = /in promise/i.test(d.text);
    const firstLine = desc?.split('\n')[0] ?? d.text;
    stream.emit(rejection ? 'error.unhandledrejection' : 'error.uncaught', {
      message: redactor.text(clip(firstLine.replace(/^[A-Za-z]*Error: /, ''), limits.maxString)),
      name: d.exception?.className ?? null,
      stack: desc ? redactor.text(clip(desc, limits.maxString * 2)) : null,
      url: d.url ? redactor.url(d.url) : null,
      line: d.lineNumber !== undefined ? d.lineNumber + 1 : null,
      column: d.columnNumber !== undefined ? d.columnNumber + 1 : null,
      ts: Math.round(e.timestamp),
    });
  });

  const requests = new Map<string, PendingRequest>();
  cdp.on('Network.requestWillBeSent', (e: { requestId: string; type?: string; request: { url: string; method: string; headers: Record<string, string>; postData?: string }; wallTime: number }) => {
    if (e.request.url.startsWith('data:')) return;
    // Bounded: requests that never finish (a long poll, an EventSource) must not grow this forever.
    if (requests.size >= MAX_PENDING_REQUESTS) requests.delete(requests.keys().next().value as string);
    requests.set(e.requestId, {
      method: e.request.method, url: redactor.url(e.request.url), type: e.type ?? 'Other', started: Date.now(),
      headers: redactor.headers(Object.entries(e.request.headers)), requestSize: e.request.postData !== undefined ? Buffer.byteLength(e.request.postData) : 0,
      status: 0, responseHeaders: {},
    });
  });
  cdp.on('Network.responseReceived', (e: { requestId: string; response: { status: number; headers: Record<string, string> } }) => {
    const r = requests.get(e.requestId);
    if (!r) return;
    r.status = e.response.status;
    r.responseHeaders = redactor.headers(Object.entries(e.response.headers));
  });
  const finish = (id: string, error: string | null, size: number | null): void => {
    const r = requests.get(id);
    if (!r) return;
    requests.delete(id);
    stream.emit('network.request', {
      api: r.type, method: r.method, url: r.url, status: error ? 0 : r.status, ok: !error && r.status >= 200 && r.status < 400,
      durationMs: Date.now() - r.started, requestSize: r.requestSize, responseSize: size, requestHeaders: r.headers, responseHeaders: r.responseHeaders, error,
    });
  };
  cdp.on('Network.loadingFinished', (e: { requestId: string; encodedDataLength: number }) => finish(e.requestId, null, Math.round(e.encodedDataLength)));
  cdp.on('Network.loadingFailed', (e: { requestId: string; errorText: string; canceled?: boolean }) => finish(e.requestId, e.canceled ? 'canceled' : e.errorText, null));

  cdp.on('Page.frameNavigated', (e: { frame: { id: string; parentId?: string; url: string } }) => {
    if (e.frame.parentId) return;
    mainFrameId = e.frame.id;
    stream.emit('page.navigation', { kind: 'navigated', url: redactor.url(e.frame.url), title: null });
  });
  cdp.on('Page.navigatedWithinDocument', (e: { frameId: string; url: string }) => {
    if (mainFrameId !== undefined && e.frameId !== mainFrameId) return;
    stream.emit('page.navigation', { kind: 'same-document', url: redactor.url(e.url), title: null });
  });
  cdp.on('Page.loadEventFired', () => {
    stream.emit('page.navigation', { kind: 'load', url: redactor.url(page.url()), title: null });
  });

  // ---- screencast ------------------------------------------------------------------------------
  const sc = options.screencast === false ? null : { maxFps: 5, quality: 60, maxWidth: 1024, maxHeight: 768, ...options.screencast };
  const minInterval = sc ? 1000 / Math.max(0.1, sc.maxFps) : 0;
  let lastFrameAt = 0;
  interface Frame { data: string; sessionId: number; metadata: { deviceWidth: number; deviceHeight: number; scrollOffsetX: number; scrollOffsetY: number } }
  /** The newest frame not yet published (older ones are conflated away: a viewer wants the screen now). */
  let latest: Frame | null = null;
  /** Frames conflated away: acked only when the publish in progress is acked, so Chromium never runs ahead of the gateway. */
  let deferredAcks: number[] = [];
  let pumping = false;
  const ack = (sessionId: number): void => {
    cdp.send('Page.screencastFrameAck', { sessionId }).catch(() => {});
  };
  const pump = async (): Promise<void> => {
    pumping = true;
    try {
      while (latest) {
        // The frame rate cap: the next publication waits for the rest of the interval (and then takes the newest frame).
        const wait = lastFrameAt + minInterval - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const frame: Frame = latest;
        latest = null;
        const acks = [...deferredAcks, frame.sessionId];
        deferredAcks = [];
        // Not watched, or not connected (a frame queued now would only arrive stale after the reconnect).
        if (!watchers.watched || stopped || !client.isConnected) {
          stats.framesSkipped += acks.length;
          for (const id of acks) ack(id);
          continue;
        }
        lastFrameAt = Date.now();
        const bytes = fromBase64(frame.data);
        const size = jpegSize(bytes) ?? { width: 0, height: 0 };
        const ok = await stream.publishNow('page.frame', {
          jpeg: new Bytes(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength), width: size.width, height: size.height,
          deviceWidth: Math.round(frame.metadata.deviceWidth), deviceHeight: Math.round(frame.metadata.deviceHeight),
          scrollX: Math.round(frame.metadata.scrollOffsetX), scrollY: Math.round(frame.metadata.scrollOffsetY), ts: lastFrameAt,
        });
        if (ok) stats.framesPublished++;
        else stats.framesSkipped++;
        stats.framesSkipped += acks.length - 1;
        for (const id of acks) ack(id);
      }
    } finally {
      pumping = false;
    }
  };
  cdp.on('Page.screencastFrame', (e: Frame) => {
    if (latest) deferredAcks.push(latest.sessionId);
    latest = e;
    if (!pumping) void pump();
  });
  const startScreencast = async (): Promise<void> => {
    if (!sc || stats.screencasting || stopped) return;
    stats.screencasting = true;
    await cdp.send('Page.startScreencast', { format: 'jpeg', quality: sc.quality, maxWidth: sc.maxWidth, maxHeight: sc.maxHeight, everyNthFrame: 1 }).catch(() => { stats.screencasting = false; });
  };
  const stopScreencast = async (): Promise<void> => {
    if (!stats.screencasting) return;
    stats.screencasting = false;
    await cdp.send('Page.stopScreencast').catch(() => {});
  };

  const watchers = new Watchers(client, channel, options.watchIntervalMs ?? 1000, (viewers) => {
    if (watchers.watched) void startScreencast();
    else void stopScreencast();
    try {
      options.onWatched?.(viewers);
    } catch {
      // The operator's callback must not stop the polling.
    }
  });

  await Promise.all([cdp.send('Runtime.enable'), cdp.send('Network.enable'), cdp.send('Page.enable')]);
  try {
    const tree = (await cdp.send('Page.getFrameTree')) as { frameTree: { frame: { id: string } } };
    mainFrameId = tree.frameTree.frame.id;
  } catch {
    // Learned from the next navigation instead.
  }

  // ---- commands --------------------------------------------------------------------------------
  const cmd = { evaluate: true, input: true, navigate: true, screenshot: true, ...options.commands };
  const enabled = new Map<string, Command>();
  const evaluate = async (expression: string): Promise<unknown> => {
    const r = (await cdp.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true, userGesture: true })) as { result: RemoteObject; exceptionDetails?: { text: string; exception?: RemoteObject } };
    if (r.exceptionDetails) throw new CommandError(CommandErrorCode.COMMAND_FAILED, redactor.text(r.exceptionDetails.exception?.description?.split('\n')[0] ?? r.exceptionDetails.text));
    return remoteValue(r.result);
  };
  enabled.set('dom.query', async (p) => {
    const selector = stringParam(p, 'selector', 1000);
    const out = (await evaluate(`(${DOM_QUERY_SOURCE})(${JSON.stringify(selector)})`)) as { error?: string; text?: string; html?: string };
    if (out?.error) throw new CommandError(CommandErrorCode.INVALID_SELECTOR, `Not a valid selector: ${clip(selector, 100)}`);
    return { ...out, text: typeof out.text === 'string' ? redactor.text(out.text) : null, html: typeof out.html === 'string' ? redactor.text(out.html) : null };
  });
  if (cmd.evaluate) enabled.set('evaluate', async (p) => serialize(await evaluate(stringParam(p, 'expression', 100_000)), limits, redactor.text));
  if (cmd.input) {
    const mouse = async (x: number, y: number, button: 'left' | 'right' | 'middle', clickCount: number): Promise<void> => {
      await cdp.send('Input.dispatchMouseEvent', { type: 'mouseMoved', x, y });
      await cdp.send('Input.dispatchMouseEvent', { type: 'mousePressed', x, y, button, clickCount });
      await cdp.send('Input.dispatchMouseEvent', { type: 'mouseReleased', x, y, button, clickCount });
    };
    const locate = async (selector: string) => {
      const loc = page.locator(selector).first();
      let count: number;
      try {
        count = await page.locator(selector).count();
      } catch {
        throw new CommandError(CommandErrorCode.INVALID_SELECTOR, `Not a valid selector: ${clip(selector, 100)}`);
      }
      if (count === 0) throw new CommandError(CommandErrorCode.NOT_FOUND, `Nothing matches ${clip(selector, 100)}`);
      return loc;
    };
    enabled.set('click', async (p) => {
      const button = p.button === 'right' || p.button === 'middle' ? p.button : 'left';
      const clickCount = p.double === true ? 2 : 1;
      if (typeof p.selector === 'string') {
        await (await locate(stringParam(p, 'selector', 1000))).click({ button, clickCount, timeout: 5000 });
        return { clicked: p.selector };
      }
      const x = numberParam(p, 'x', true)!;
      const y = numberParam(p, 'y', true)!;
      await mouse(x, y, button, clickCount);
      return { clicked: { x, y } };
    });
    enabled.set('type', async (p) => {
      const text = stringParam(p, 'text', 10_000);
      if (typeof p.selector === 'string') await (await locate(stringParam(p, 'selector', 1000))).focus({ timeout: 5000 });
      else if (p.x !== undefined) await mouse(numberParam(p, 'x', true)!, numberParam(p, 'y', true)!, 'left', 1);
      await cdp.send('Input.insertText', { text });
      return { typed: text.length };
    });
    enabled.set('key', async (p) => {
      const key = stringParam(p, 'key', 64);
      try {
        await page.keyboard.press(key);
      } catch (err) {
        throw new CommandError(CommandErrorCode.INVALID_PARAMS, `Unknown key ${JSON.stringify(key)}: ${(err as Error).message.split('\n')[0]}`);
      }
      return { pressed: key };
    });
    enabled.set('scroll', async (p) => {
      const vp = page.viewportSize() ?? { width: 800, height: 600 };
      const x = numberParam(p, 'x', false) ?? vp.width / 2;
      const y = numberParam(p, 'y', false) ?? vp.height / 2;
      const deltaX = numberParam(p, 'deltaX', false) ?? 0;
      const deltaY = numberParam(p, 'deltaY', false) ?? 0;
      await cdp.send('Input.dispatchMouseEvent', { type: 'mouseWheel', x, y, deltaX, deltaY });
      return { scrolled: { deltaX, deltaY } };
    });
  }
  if (cmd.navigate) {
    enabled.set('navigate', async (p) => {
      const raw = stringParam(p, 'url', 4096);
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        throw new CommandError(CommandErrorCode.INVALID_PARAMS, `"url" is not an absolute URL: ${clip(raw, 100)}`);
      }
      if (!['http:', 'https:', 'about:'].includes(url.protocol)) throw new CommandError(CommandErrorCode.INVALID_PARAMS, 'Only http(s) and about: URLs may be navigated to');
      const r = (await cdp.send('Page.navigate', { url: url.href })) as { errorText?: string };
      if (r.errorText) throw new CommandError(CommandErrorCode.COMMAND_FAILED, `Navigation failed: ${r.errorText}`);
      return { url: redactor.url(url.href) };
    });
  }
  if (cmd.screenshot) {
    enabled.set('screenshot', async (p) => {
      const format = p.format === 'png' ? 'png' : 'jpeg';
      const quality = numberParam(p, 'quality', false) ?? 70;
      const r = (await cdp.send('Page.captureScreenshot', format === 'png' ? { format } : { format, quality: Math.max(0, Math.min(100, Math.round(quality))) })) as { data: string };
      const size = format === 'jpeg' ? jpegSize(fromBase64(r.data)) : null;
      return { format, data: r.data, width: size?.width ?? null, height: size?.height ?? null };
    });
  }
  const registration = serveCommands(client, stream, enabled, ['dom.query', 'evaluate', 'click', 'type', 'key', 'scroll', 'navigate', 'screenshot'], () => watchers.refresh());

  stream.emit('page.started', { url: redactor.url(page.url()), title: (await page.title().catch(() => '')) || null, userAgent: null, capture: ['console', 'errors', 'network', 'navigation', ...(sc ? ['screencast'] : [])], commands: [...enabled.keys()] });

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    watchers.stop();
    registration.stop();
    stream.stop();
    await stopScreencast();
    await cdp.detach().catch(() => {});
    // For a connectOverCDP browser, close() only disconnects: the browser and its tabs stay.
    await browser.close().catch(() => {});
    resolveClosed();
  };
  page.on('close', () => void stop());
  browser.on('disconnected', () => void stop());

  return {
    channel, targetId, page, commands: registration, stats, closed, stop,
    get watched() {
      return watchers.watched;
    },
    get viewers() {
      return watchers.viewers;
    },
  };
}

/** A CDP RemoteObject as a plain value (objects from their preview). */
function remoteValue(o: RemoteObject): unknown {
  if ('value' in o) return o.value;
  if (o.unserializableValue !== undefined) return { $type: 'number', value: o.unserializableValue };
  if (o.type === 'undefined') return undefined;
  if (o.subtype === 'error') return { $type: 'error', name: o.className ?? 'Error', message: o.description?.split('\n')[0] ?? '', stack: o.description ?? null };
  if (o.subtype === 'node') return { $type: 'node', value: o.description ?? 'node' };
  if (o.type === 'function') return { $type: 'function', name: o.description?.slice(0, 80) ?? '' };
  if (o.preview) {
    const entries = o.preview.properties.map((p) => [p.name, p.type === 'number' ? Number(p.value) : p.type === 'boolean' ? p.value === 'true' : p.value] as const);
    if (o.subtype === 'array') return entries.map(([, v]) => v);
    return Object.fromEntries(o.preview.overflow ? [...entries, ['$more', true]] : entries);
  }
  return { $type: 'object', value: o.description ?? o.type };
}

/** Runs in the page: the same answer as the in-page `dom.query`. */
const DOM_QUERY_SOURCE = `function (selector) {
  var all;
  try { all = document.querySelectorAll(selector); } catch (e) { return { error: 'selector' }; }
  var el = all[0];
  if (!el) return { found: false, count: 0, text: null, html: null, tag: null, value: null };
  var clip = function (s, n) { return s.length <= n ? s : s.slice(0, n) + '\u2026[' + (s.length - n) + ' more]'; };
  var value = ('value' in el && typeof el.value === 'string') ? (el.type === 'password' ? '[redacted]' : clip(el.value, 4000)) : null;
  return { found: true, count: all.length, tag: el.tagName.toLowerCase(), text: clip(el.innerText || el.textContent || '', 4000), html: clip(el.outerHTML, 8000), value: value };
}`;
