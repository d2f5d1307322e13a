/**
 * The console's HTTP calls: same origin, the session cookie (the browser sends it; the page never
 * sees it) and the `X-Signalbox-Console` header every session-authorized request needs (the CSRF
 * defence, docs/console.md). No key or token is ever stored by the page.
 */

/** An HTTP API failure, with the gateway's error code. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Called on a 401: the session ended, the app shows the sign-in again. */
let onSignedOut: (() => void) | null = null;
export function whenSignedOut(fn: () => void): void {
  onSignedOut = fn;
}

export async function api<T = unknown>(path: string, init: { method?: string; body?: unknown; signal?: AbortSignal } = {}): Promise<T> {
  const headers: Record<string, string> = { 'x-signalbox-console': '1', accept: 'application/json' };
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, {
    method: init.method ?? 'GET',
    headers,
    credentials: 'same-origin',
    cache: 'no-store',
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
    ...(init.signal ? { signal: init.signal } : {}),
  });
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  if (!res.ok) {
    const err = (body as { error?: { code?: string; message?: string } } | null)?.error;
    if (res.status === 401 && !path.startsWith('/console/session')) onSignedOut?.();
    throw new ApiError(res.status, err?.code ?? `HTTP_${res.status}`, err?.message ?? `HTTP ${res.status}`);
  }
  return body as T;
}

/** A list kept fresh by {@link poll}. */
export interface Poller {
  /** Loads now (aborting a load in flight); the next one follows `everyMs` after it. */
  refresh(): void;
  /** Stops: aborts a load in flight, no more after it. */
  stop(): void;
}

/**
 * Runs `load` now and again `everyMs` after each one ends, one at a time: a refresh aborts the
 * load in flight (its `signal`), whose outcome is then ignored. What a load throws, unless it was
 * aborted, goes to `onError`; the polling goes on.
 */
export function poll(load: (signal: AbortSignal) => Promise<void>, everyMs: number, onError: (err: Error) => void): Poller {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let inFlight: AbortController | null = null;
  let stopped = false;
  const run = async (): Promise<void> => {
    clearTimeout(timer);
    inFlight?.abort();
    const ctrl = (inFlight = new AbortController());
    try {
      await load(ctrl.signal);
    } catch (err) {
      if (!ctrl.signal.aborted) onError(err instanceof Error ? err : new Error(String(err)));
    } finally {
      if (!stopped && inFlight === ctrl) timer = setTimeout(() => void run(), everyMs);
    }
  };
  void run();
  return {
    refresh: () => void run(),
    stop: () => {
      stopped = true;
      clearTimeout(timer);
      inFlight?.abort();
    },
  };
}

/** Path segment encoding for channel names and ids (`room:r1` -> `room%3Ar1`). */
export const seg = (s: string): string => encodeURIComponent(s);

export interface SessionInfo {
  name: string;
  scopes: string[];
  expiresAt: string;
}
