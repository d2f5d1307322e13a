/**
 * Presence shared by every node on one Redis. Per channel: a sorted set of client ids scored by
 * expiry, and a hash of member records; both under the channel's hash tag. Members are refreshed
 * at every heartbeat, so a dead node's members vanish within their TTL.
 *
 * Built on the shared Redis layer (src/redis/): the gateway's connection options, key layout,
 * script loader (EVALSHA) and error mapping, the same as the broker's.
 */
import type { PresenceMember } from '@signalbox/protocol';
import { RedisConnection, type RedisLogger } from '../redis/connection.js';
import { redisCall } from '../redis/errors.js';
import { checkPrefix, redisPresenceKeys } from '../redis/keys.js';
import { SCRIPTS } from '../redis/scripts.js';
import type { PresenceStore } from './types.js';

export interface RedisPresenceStoreOptions {
  url: string;
  /** Prefix of every key (the broker's: SIGNALBOX_REDIS_PREFIX). Default `signalbox`. */
  prefix?: string;
  /** A command without a reply for this long fails with BrokerUnavailableError. Default 2000. */
  commandTimeoutMs?: number;
  /** Reconnect backoff: first delay and cap, ms. Default 50 / 2000. */
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  logger?: RedisLogger;
}

export class RedisPresenceStore implements PresenceStore {
  private readonly conn: RedisConnection;
  private readonly prefix: string;
  private readonly timeoutMs: number;

  constructor(opts: RedisPresenceStoreOptions) {
    this.prefix = checkPrefix(opts.prefix, 'RedisPresenceStore');
    this.conn = new RedisConnection({
      url: opts.url,
      name: 'signalbox-presence',
      commandTimeoutMs: opts.commandTimeoutMs,
      reconnectBaseMs: opts.reconnectBaseMs,
      reconnectMaxMs: opts.reconnectMaxMs,
      logger: opts.logger,
      impact: 'presence unavailable',
    });
    this.timeoutMs = opts.commandTimeoutMs ?? 2000;
  }

  /** Connects; resolves when ready or after the command timeout (calls then fail fast until Redis answers). */
  async start(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.conn.connect(), new Promise((r) => (timer = setTimeout(r, this.timeoutMs)).unref())]);
    clearTimeout(timer);
  }

  async add(channel: string, member: PresenceMember, ttlMs: number): Promise<void> {
    const k = redisPresenceKeys(this.prefix, channel);
    await redisCall('presence add', () =>
      SCRIPTS.presenceAdd.runText(this.conn.client, [k.expiries, k.members], [Date.now() + ttlMs, member.clientId, JSON.stringify(member), ttlMs * 2]),
    );
  }

  async remove(channel: string, clientId: string): Promise<void> {
    const k = redisPresenceKeys(this.prefix, channel);
    await redisCall('presence remove', () => this.conn.client.multi().zrem(k.expiries, clientId).hdel(k.members, clientId).exec());
  }

  async list(channel: string): Promise<PresenceMember[]> {
    const k = redisPresenceKeys(this.prefix, channel);
    const raw = (await redisCall('presence list', () => SCRIPTS.presenceList.runText(this.conn.client, [k.expiries, k.members], [Date.now()]))) as (string | null)[];
    return raw.filter((r): r is string => r !== null).map((r) => JSON.parse(r) as PresenceMember);
  }

  async close(): Promise<void> {
    await this.conn.close();
  }
}
