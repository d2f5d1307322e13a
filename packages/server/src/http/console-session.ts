/**
 * Console sign-in: an admin-scoped API key, an admin token or a dev one-time code is exchanged for
 * a short-lived session held in an HttpOnly, SameSite=Strict cookie, so no server key ever lives
 * in the page. The session is a signed value, not a server-side record: every node of a cluster
 * that shares SIGNALBOX_CONSOLE_SECRET (or SIGNALBOX_JWT_SECRET) accepts a session any of them
 * issued (auth/console-keys.ts derives the key); without either each node has its own random key.
 *
 * A cookie alone never authorizes anything (see {@link ConsoleAuth.check}): a request also needs
 * the console's custom header, which a cross-site page cannot send without a CORS preflight the
 * gateway never answers, and a state-changing request needs an Origin (and Sec-Fetch-Site) of
 * this very site. WebSocket upgrades never read cookies at all; the console's own WebSocket uses a
 * short-lived console token minted for the session (auth/console-keys.ts), whatever the
 * application's token algorithm.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { API_SCOPES, type ApiPrincipal, type ApiScope } from '../auth/api-keys.js';
import { consoleKeys } from '../auth/console-keys.js';
import type { GatewayConfig } from '../config.js';

/** The session cookie's name. */
export const SESSION_COOKIE = 'sb_console';
/** The header every session-authorized request must carry (any non-empty value; the console sends `1`). */
export const CONSOLE_HEADER = 'x-signalbox-console';

/** A signed-in console: who signed in and with which scopes, until when. */
export interface ConsoleSession {
  /** The API key's name, or `token:<sub>` for an admin token, or `dev` for a one-time code. */
  name: string;
  scopes: ApiScope[];
  /** Milliseconds since the epoch. */
  expiresAt: number;
  /** For a key session: a fingerprint of the key, so a rotated key ends its sessions. */
  keyPrint: string | null;
}

/** Why a request is not authorized by a session. */
export type SessionRefusal =
  | { status: 401; reason: 'no_session' | 'bad_session' | 'expired' | 'key_revoked' }
  | { status: 403; reason: 'header' | 'origin' };

/** How long a one-time code printed by `signalbox serve` in dev mode stays valid. */
export const ONE_TIME_CODE_TTL_MS = 10 * 60_000;
/** Outstanding one-time codes kept at most (a dev process prints one). */
const MAX_CODES = 64;

const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/** Per config: the consoles registered for it (so `signalbox serve` can issue a one-time code for its own gateway). */
const registry = new WeakMap<GatewayConfig, ConsoleAuth>();

/**
 * Issues a one-time sign-in code for the console of the gateway started with `config` (dev mode:
 * `signalbox serve` prints `/console#code=<code>`). The code signs in once, within
 * {@link ONE_TIME_CODE_TTL_MS}. Throws if no gateway with this config has started.
 */
export function issueConsoleCode(config: GatewayConfig): string {
  const auth = registry.get(config);
  if (!auth) throw new Error('No console registered for this config: start the gateway first');
  return auth.issueCode();
}

/** The console's session keeper for one node. */
export class ConsoleAuth {
  private readonly key: Buffer;
  /** code -> expiry (ms): consumed on first use. */
  private readonly codes = new Map<string, number>();
  /** API keys by name, to re-check a session's key on every request. */
  private readonly keysByName = new Map<string, { key: string; scopes: ApiScope[] }>();

  constructor(private readonly config: GatewayConfig) {
    // Derived, never the secret itself: a session cookie cannot be used as (or to forge) a client token.
    this.key = consoleKeys(config).cookie;
    if (config.apiKey) this.keysByName.set('default', { key: config.apiKey, scopes: [...API_SCOPES] });
    for (const k of config.apiKeys) this.keysByName.set(k.name, { key: k.key, scopes: k.scopes });
    registry.set(config, this);
  }

  private mac(text: string): Buffer {
    return createHmac('sha256', this.key).update(text).digest();
  }

  private keyPrint(key: string): string {
    return this.mac(`key:${key}`).subarray(0, 12).toString('base64url');
  }

  /** A session for API key `name` (already authenticated, with the admin scope). */
  forKey(name: string, key: string, scopes: readonly ApiScope[], ttlMs: number): ConsoleSession {
    return { name, scopes: [...scopes], expiresAt: Date.now() + ttlMs, keyPrint: this.keyPrint(key) };
  }

  /** A session for an admin token's subject, or a dev code: every scope, no key to re-check. */
  forSubject(name: string, ttlMs: number): ConsoleSession {
    return { name, scopes: [...API_SCOPES], expiresAt: Date.now() + ttlMs, keyPrint: null };
  }

  /** The cookie value for a session: its claims and their HMAC. */
  seal(s: ConsoleSession): string {
    const body = b64(JSON.stringify({ v: 1, n: s.name, s: s.scopes, e: s.expiresAt, k: s.keyPrint }));
    return `${body}.${this.mac(body).toString('base64url')}`;
  }

  /** The session a cookie value holds, or why not. */
  open(value: string): ConsoleSession | SessionRefusal {
    const dot = value.indexOf('.');
    if (dot <= 0 || value.length > 2048) return { status: 401, reason: 'bad_session' };
    const body = value.slice(0, dot);
    const sig = Buffer.from(value.slice(dot + 1), 'base64url');
    const want = this.mac(body);
    if (sig.length !== want.length || !timingSafeEqual(sig, want)) return { status: 401, reason: 'bad_session' };
    let p: { v?: unknown; n?: unknown; s?: unknown; e?: unknown; k?: unknown };
    try {
      p = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as typeof p;
    } catch {
      return { status: 401, reason: 'bad_session' };
    }
    if (p.v !== 1 || typeof p.n !== 'string' || !Array.isArray(p.s) || typeof p.e !== 'number') return { status: 401, reason: 'bad_session' };
    if (p.e <= Date.now()) return { status: 401, reason: 'expired' };
    const scopes = (p.s as unknown[]).filter((x): x is ApiScope => (API_SCOPES as readonly unknown[]).includes(x));
    const keyPrint = typeof p.k === 'string' ? p.k : null;
    if (keyPrint !== null) {
      // The key it was made with must still be configured, with the admin scope.
      const k = this.keysByName.get(p.n);
      if (!k || !k.scopes.includes('admin') || this.keyPrint(k.key) !== keyPrint) return { status: 401, reason: 'key_revoked' };
    }
    return { name: p.n, scopes, expiresAt: p.e, keyPrint };
  }

  /** A fresh one-time code (dev mode). */
  issueCode(): string {
    const now = Date.now();
    for (const [c, exp] of this.codes) if (exp <= now) this.codes.delete(c);
    if (this.codes.size >= MAX_CODES) this.codes.delete(this.codes.keys().next().value!);
    const code = randomBytes(18).toString('base64url');
    this.codes.set(code, now + ONE_TIME_CODE_TTL_MS);
    return code;
  }

  /** Consumes a one-time code: true once, for a code issued here and not expired. */
  redeemCode(code: string): boolean {
    const exp = this.codes.get(code);
    if (exp === undefined) return false;
    this.codes.delete(code);
    return exp > Date.now();
  }

  /**
   * The CSRF defence, for every request a session would authorize: the console's custom header
   * (a cross-site form or image cannot send it, and a cross-site fetch that sets it needs a CORS
   * preflight, which the gateway never grants), and for anything but GET/HEAD an Origin of this
   * site and no cross-site Sec-Fetch-Site.
   */
  checkRequest(method: string, headers: IncomingHttpHeaders, secure: boolean): SessionRefusal | null {
    const marker = headers[CONSOLE_HEADER];
    if (typeof marker !== 'string' || marker.length === 0) return { status: 403, reason: 'header' };
    const site = headers['sec-fetch-site'];
    if (typeof site === 'string' && site !== 'same-origin' && site !== 'none') return { status: 403, reason: 'origin' };
    if (method === 'GET' || method === 'HEAD') return null;
    const origin = headers.origin;
    if (typeof origin !== 'string' || !this.sameSite(origin, headers.host, secure)) return { status: 403, reason: 'origin' };
    return null;
  }

  /** Is `origin` this gateway's own (its Host header), or one of SIGNALBOX_ALLOWED_ORIGINS (a proxy's public name)? */
  private sameSite(origin: string, host: string | undefined, secure: boolean): boolean {
    if (this.config.allowedOrigins.includes(origin)) return true;
    if (!host) return false;
    return origin === `${secure ? 'https' : 'http'}://${host}`;
  }

  /** The session of a request, checked: cookie, expiry, key, then the CSRF rules. */
  check(method: string, headers: IncomingHttpHeaders, secure: boolean): ConsoleSession | SessionRefusal {
    const value = readCookie(headers.cookie, SESSION_COOKIE);
    if (value === null) return { status: 401, reason: 'no_session' };
    const csrf = this.checkRequest(method, headers, secure);
    if (csrf) return csrf;
    return this.open(value);
  }

  /** The principal an admin API route sees for a session. */
  static principal(s: ConsoleSession): ApiPrincipal {
    return Object.freeze({ name: `console:${s.name}`, scopes: new Set(s.scopes) });
  }
}

/** One cookie's value from a Cookie header, or null. */
export function readCookie(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

export function isRefusal(x: ConsoleSession | SessionRefusal): x is SessionRefusal {
  return 'reason' in x;
}
