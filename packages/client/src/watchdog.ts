/**
 * The heartbeat watchdog: detects a half-open connection (the peer vanished without a close)
 * within `pingInterval + pongTimeout` of the last frame. Browsers cannot see WebSocket pings, so
 * the client pings at the application level when the line has been quiet.
 */
import type { ClientConfig } from './options.js';

/** What the watchdog asks of its owner. */
export interface WatchdogHost {
  /** Send an application-level ping on the current connection. */
  ping(): void;
  /** Nothing arrived within `pongTimeout` of a ping: the connection is dead. Called once per {@link Watchdog.start}. */
  onDead(message: string): void;
}

/** One timer at most; `pingInterval` and `pongTimeout` are read live from the config. */
export class Watchdog {
  readonly #config: Pick<ClientConfig, 'pingInterval' | 'pongTimeout'>;
  readonly #host: WatchdogHost;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastFrameAt = 0;
  #pingSentAt: number | undefined;

  constructor(config: Pick<ClientConfig, 'pingInterval' | 'pongTimeout'>, host: WatchdogHost) {
    this.#config = config;
    this.#host = host;
  }

  /** Starts watching a connection that just opened (`pingInterval` 0: never pings, never fires). */
  start(): void {
    this.#lastFrameAt = Date.now();
    this.#pingSentAt = undefined;
    if (this.#config.pingInterval > 0) this.#arm(this.#config.pingInterval);
  }

  /** A frame arrived (any frame is a sign of life). After a ping, the quiet time is counted afresh. */
  seen(): void {
    this.#lastFrameAt = Date.now();
    if (this.#pingSentAt !== undefined) {
      this.#pingSentAt = undefined;
      this.#arm(this.#config.pingInterval);
    }
  }

  /** Stops watching; leaves no timer. */
  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pingSentAt = undefined;
  }

  #arm(delay: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, delay));
  }

  #fire(): void {
    this.#timer = undefined;
    const now = Date.now();
    if (this.#pingSentAt !== undefined) {
      if (this.#lastFrameAt < this.#pingSentAt) {
        this.#pingSentAt = undefined;
        this.#host.onDead(`Nothing received within ${this.#config.pongTimeout} ms of a ping`);
        return;
      }
      this.#pingSentAt = undefined;
    }
    const idle = now - this.#lastFrameAt;
    if (idle < this.#config.pingInterval) {
      this.#arm(this.#config.pingInterval - idle);
      return;
    }
    this.#pingSentAt = now;
    this.#host.ping();
    // ping() may have stopped the watchdog (e.g. the send found the socket gone): stay stopped.
    if (this.#pingSentAt === now) this.#arm(this.#config.pongTimeout);
  }
}
