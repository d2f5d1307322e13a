/**
 * Presence shared by every node on one Redis. Per channel: a sorted set of client ids scored by
 * expiry, and a hash of member records; both under the channel's hash tag. Members are refreshed
 * at every heartbeat, so a dead node's members vanish within their TTL.
 */
import { Redis } from 'ioredis';
import type { PresenceMember } from '@signalbox/protocol';
import { BrokerUnavailableError } from '../broker/types.js';
import { escapeChannelTag } from '../broker/redis.js';
import type { PresenceStore } from './types.js';

export interface RedisPresenceStoreOptions {
  url: string;
  prefix?: string;
  commandTimeoutMs?: number;
}

const ADD = `
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1`;

const LIST = `
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if #gone > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
  redis.call('HDEL', KEYS[2], unpack(gone))
end
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
if #ids == 0 then return {} end
return redis.call('HMGET', KEYS[2], unpack(ids))`;

export class RedisPresenceStore implements PresenceStore {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly timeoutMs: number;

  constructor(opts: RedisPresenceStoreOptions) {
    this.prefix = opts.prefix ?? 'signalbox';
    const timeout = opts.commandTimeoutMs ?? 2000;
    this.timeoutMs = timeout;
    this.redis = new Redis(opts.url, {
      lazyConnect: true,
      connectionName: 'signalbox-presence',
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: timeout,
      connectTimeout: Math.max(1000, timeout),
      retryStrategy: (times) => Math.min(2000, 50 * 2 ** Math.min(times, 10)),
    });
    this.redis.on('error', () => {
      // Reconnects by itself; calls fail fast meanwhile (BrokerUnavailableError).
    });
  }

  /** Connects; resolves when ready or after the command timeout (calls then fail fast until Redis answers). */
  async start(): Promise<void> {
    await Promise.race([this.redis.connect().catch(() => {}), new Promise((r) => setTimeout(r, this.timeoutMs).unref())]);
  }

  private keys(channel: string): [string, string] {
    const base = `${this.prefix}:{${escapeChannelTag(channel)}}:presence`;
    return [`${base}:z`, `${base}:h`];
  }

  private async run(script: string, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await this.redis.eval(script, keys.length, ...keys, ...args);
    } catch (err) {
      throw new BrokerUnavailableError(`presence: ${(err as Error).message}`, { cause: err });
    }
  }

  async add(channel: string, member: PresenceMember, ttlMs: number): Promise<void> {
    await this.run(ADD, this.keys(channel), [Date.now() + ttlMs, member.clientId, JSON.stringify(member), ttlMs * 2]);
  }

  async remove(channel: string, clientId: string): Promise<void> {
    const [z, h] = this.keys(channel);
    try {
      await this.redis.multi().zrem(z, clientId).hdel(h, clientId).exec();
    } catch (err) {
      throw new BrokerUnavailableError(`presence: ${(err as Error).message}`, { cause: err });
    }
  }

  async list(channel: string): Promise<PresenceMember[]> {
    const raw = (await this.run(LIST, this.keys(channel), [Date.now()])) as (string | null)[];
    return raw.filter((r): r is string => r !== null).map((r) => JSON.parse(r) as PresenceMember);
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
