/**
 * The one way the gateway opens a Redis connection: one options block for the broker's command
 * and pub/sub connections and the presence store's, and their status changes logged here, one
 * line per change (ioredis' `setStatus` idea).
 *
 * The options are failure semantics, not tuning:
 * - Fail fast while disconnected (`enableOfflineQueue: false`): a queued publish would resolve
 *   minutes later, or never.
 * - In-flight commands fail when the socket drops instead of being re-sent after reconnect
 *   (`maxRetriesPerRequest: 0`, `autoResendUnfulfilledCommands: false`): a re-sent publish could
 *   append twice (the first may have run before the drop).
 * - A hung server (TCP up, no replies): the command fails after `commandTimeoutMs`, and the socket
 *   is declared dead after the same time without a reply, so readiness drops and later calls fail
 *   fast until a reconnect succeeds.
 * - Reconnect forever: exponential with equal jitter, capped, so nodes that lost one Redis do not
 *   come back in lockstep.
 */
import { Redis, type RedisOptions } from 'ioredis';

/** Structured logger (pino-compatible subset). */
export interface RedisLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export const NOOP_LOGGER: RedisLogger = { info() {}, warn() {}, error() {} };

/** Defaults shared by every Redis connection of the gateway. */
export const REDIS_DEFAULTS = {
  commandTimeoutMs: 2000,
  reconnectBaseMs: 50,
  reconnectMaxMs: 2000,
} as const;

export interface RedisConnectionOptions {
  /** `redis://[user:pass@]host:port[/db]` or `rediss://...`. Never logged (it may hold a password). */
  url: string;
  /** `CLIENT SETNAME` and the `redis` field of the log lines, e.g. `signalbox-broker`. */
  name: string;
  /** A command without a reply for this long fails, and the socket is dropped. Default 2000. */
  commandTimeoutMs?: number;
  /** Reconnect backoff: first delay and cap, ms (exponential, equal jitter, forever). Default 50 / 2000. */
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  /** A pub/sub connection: its owner re-subscribes itself (to know when that is done), ioredis does not. */
  subscriber?: boolean;
  logger?: RedisLogger;
  /** Says what losing this connection means, in the log line ("publish/history unavailable"). */
  impact?: string;
}

/** Delay before reconnect attempt `times` (1, 2, ...): exponential from `baseMs`, capped at `maxMs`, equal jitter. */
export function reconnectDelay(times: number, baseMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(times, 1) - 1, 20));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

export function positive(value: number | undefined, fallback: number, name: string, owner: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${owner}: ${name} must be a positive number, got ${value}`);
  return value;
}

/** The ioredis options every gateway connection uses (see the file comment for why each). */
export function redisOptions(opts: RedisConnectionOptions): RedisOptions {
  const owner = `redis connection ${opts.name}`;
  const commandTimeoutMs = positive(opts.commandTimeoutMs, REDIS_DEFAULTS.commandTimeoutMs, 'commandTimeoutMs', owner);
  const baseMs = positive(opts.reconnectBaseMs, REDIS_DEFAULTS.reconnectBaseMs, 'reconnectBaseMs', owner);
  const maxMs = positive(opts.reconnectMaxMs, REDIS_DEFAULTS.reconnectMaxMs, 'reconnectMaxMs', owner);
  return {
    lazyConnect: true,
    connectionName: opts.name,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: commandTimeoutMs,
    socketTimeout: commandTimeoutMs,
    connectTimeout: Math.max(1000, commandTimeoutMs),
    retryStrategy: (times: number) => reconnectDelay(times, baseMs, maxMs),
    ...(opts.subscriber ? { autoResubscribe: false } : {}),
  };
}

/** One ioredis client with the gateway's options, its last error, and its status changes logged. */
export class RedisConnection {
  readonly client: Redis;
  readonly name: string;
  /** The last error the connection reported (for messages and log lines). */
  lastError: Error | null = null;
  private up = false;
  private closing = false;
  private readonly log: RedisLogger;

  constructor(opts: RedisConnectionOptions) {
    this.name = opts.name;
    this.log = opts.logger ?? NOOP_LOGGER;
    this.client = new Redis(opts.url, redisOptions(opts));
    // An 'error' listener is mandatory (ioredis re-emits connection errors); it reconnects by itself.
    this.client.on('error', (err: Error) => {
      this.lastError = err;
    });
    this.client.on('ready', () => {
      if (this.up) return;
      this.up = true;
      this.log.info({ redis: this.name }, `redis: ${this.name} ready`);
    });
    this.client.on('close', () => {
      if (!this.up) return;
      this.up = false;
      if (this.closing) return;
      const impact = opts.impact ? `; ${opts.impact}` : '';
      this.log.warn({ redis: this.name, err: this.lastError?.message }, `redis: ${this.name} connection lost${impact}`);
    });
  }

  get ready(): boolean {
    return this.client.status === 'ready';
  }

  /**
   * Starts connecting. Resolves on the first successful connection; on a failed first attempt it
   * resolves too (reconnecting goes on in the background; `lastError` says why).
   */
  async connect(): Promise<void> {
    await this.client.connect().catch(() => {});
  }

  /** Disconnects for good; resolves once the client has ended (at most `timeoutMs`). */
  close(timeoutMs = 1000): Promise<void> {
    this.closing = true;
    const client = this.client;
    // Only a live socket emits 'end' after disconnect(); one that is between reconnects just stops.
    const live = ['connecting', 'connect', 'ready'].includes(client.status);
    const ended = live ? endedWithin(client, timeoutMs) : Promise.resolve();
    client.disconnect();
    return ended;
  }
}

/** Resolves once the client reached status `end` (or after `timeoutMs`). */
function endedWithin(client: Redis, timeoutMs: number): Promise<void> {
  if (client.status === 'end') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    function done(): void {
      clearTimeout(timer);
      client.off('end', done);
      resolve();
    }
    client.once('end', done);
  });
}
