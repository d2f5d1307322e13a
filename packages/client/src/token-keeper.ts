/**
 * The token keeper: which token the connection authenticated with, which one the server refused,
 * and the in-band refresh ahead of `exp` (one in flight at most, one timer at most).
 *
 * It decides when to ask `getToken` and what to do with the answer; the client owns the wire (the
 * refresh request and its reply) and tells the keeper the outcome.
 */
import { ClientErrorCode, SignalboxError } from './errors.js';
import type { TransitionReason } from './events.js';
import type { ClientConfig, TokenRequestReason } from './options.js';
import { jwtExpiry } from './token.js';

/** setTimeout's ceiling; longer delays fire at once. */
const MAX_TIMER_DELAY = 2 ** 31 - 1;

/** What the keeper asks of its owner. */
export interface TokenKeeperHost {
  /** True while an in-band refresh can be sent (state `connected`). */
  canRefresh(): boolean;
  /** The current transport's id: a `getToken` answer that arrives after its transport is gone is dropped. */
  transportId(): number | undefined;
  /** Send `token` as an in-band refresh (the owner calls {@link TokenKeeper.markInFlight}). */
  sendRefresh(token: string): void;
  /** `getToken` failed during a refresh. */
  onError(err: SignalboxError): void;
}

/** A token the server refused (close 4001/4002): reconnecting with it again cannot succeed. */
export interface RefusedToken {
  token: string | undefined;
  reason: TransitionReason;
  code: number;
}

export class TokenKeeper {
  readonly #config: Pick<ClientConfig, 'getToken' | 'refreshMargin' | 'reconnectInterval'>;
  readonly #host: TokenKeeperHost;
  #current: string | undefined;
  #refused: RefusedToken | undefined;
  #inFlight = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(config: Pick<ClientConfig, 'getToken' | 'refreshMargin' | 'reconnectInterval'>, host: TokenKeeperHost) {
    this.#config = config;
    this.#host = host;
  }

  /** The token the current connection authenticated (or last refreshed) with. */
  get current(): string | undefined {
    return this.#current;
  }

  /** A connection is being opened with `token`. */
  markCurrent(token: string | undefined): void {
    this.#current = token;
  }

  /** The token the server refused, if any, until {@link clearRefused}. */
  get refused(): RefusedToken | undefined {
    return this.#refused;
  }

  refuse(refused: RefusedToken): void {
    this.#refused = refused;
  }

  /** A connection was established (or `connect()` starts afresh): no token is known bad any more. */
  clearRefused(): void {
    this.#refused = undefined;
  }

  /** True from sending a refresh (or calling `getToken` for one) until its outcome. */
  get inFlight(): boolean {
    return this.#inFlight;
  }

  /** A refresh request was written. */
  markInFlight(): void {
    this.#inFlight = true;
  }

  /** The gateway refused the refresh: a later one may be tried. */
  refreshRefused(): void {
    this.#inFlight = false;
  }

  /** The gateway accepted `token`: it is current, and the next refresh is scheduled from its `exp`. */
  refreshed(token: string, expiresAt: number | undefined): void {
    this.#inFlight = false;
    this.#current = token;
    this.scheduleRefresh(token, expiresAt);
  }

  /**
   * Schedules an in-band refresh ahead of the token's expiry (needs `getToken`): `refreshMargin`
   * before `exp`, at most half the remaining life. The JWT's own `exp` wins over `expiresAt`.
   */
  scheduleRefresh(token: string | undefined, expiresAt: number | undefined): void {
    this.#clearTimer();
    if (!this.#config.getToken) return;
    const exp = jwtExpiry(token) ?? expiresAt;
    if (exp === undefined || !Number.isFinite(exp)) return;
    const remaining = exp - Date.now();
    const margin = Math.min(this.#config.refreshMargin, Math.max(0, remaining) / 2);
    const delay = Math.min(MAX_TIMER_DELAY, Math.max(0, remaining - margin));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.refresh('refresh');
    }, delay);
  }

  /** Gets a fresh token and has it sent in-band; the connection stays up. No-op while one is in flight. */
  refresh(reason: TokenRequestReason): void {
    const getToken = this.#config.getToken;
    if (!getToken || !this.#host.canRefresh() || this.#inFlight) return;
    this.#inFlight = true;
    const transportId = this.#host.transportId();
    const fail = (err: unknown): void => {
      if (transportId !== this.#host.transportId()) return;
      this.#inFlight = false;
      this.#host.onError(new SignalboxError(ClientErrorCode.TOKEN_UNAVAILABLE, `getToken() failed: ${errorMessage(err)}`, {}, undefined, err));
      // Try again soon; if the token expires first, the gateway closes with 4002 and the reconnect asks again.
      this.#clearTimer();
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.refresh(reason);
      }, Math.max(1000, this.#config.reconnectInterval));
    };
    const use = (token: unknown): void => {
      if (transportId !== this.#host.transportId()) return;
      this.#inFlight = false;
      if (typeof token !== 'string' || token.length === 0) return fail(new TypeError('getToken() must return a non-empty string'));
      if (token === this.#current) return;
      this.#host.sendRefresh(token);
    };
    try {
      const source = getToken({ reason });
      if (isPromiseLike<string>(source)) source.then(use, fail);
      else use(source);
    } catch (err) {
      fail(err);
    }
  }

  /** The connection is gone: no refresh timer, nothing in flight. The current and refused tokens are kept. */
  stop(): void {
    this.#clearTimer();
    this.#inFlight = false;
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

export function isPromiseLike<T>(v: unknown): v is PromiseLike<T> {
  return typeof v === 'object' && v !== null && typeof (v as PromiseLike<T>).then === 'function';
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
