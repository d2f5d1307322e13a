/**
 * The engine: the broker, the presence store and the RPC engine a node runs on, chosen in one place from
 * `config.broker` (SIGNALBOX_BROKER). `memory` is the embedded single-node engine; a Redis URL is
 * the distributed one, whose broker and presence store share the Redis layer in src/redis/.
 */
import { MemoryBroker } from './broker/memory.js';
import type { Broker } from './broker/types.js';
import type { GatewayConfig } from './config.js';
import type { Logger } from './logger.js';
import { MemoryPresenceStore } from './presence/memory.js';
import type { PresenceStore } from './presence/types.js';
import { MemoryRpcEngine } from './rpc/memory.js';
import type { RpcEngine } from './rpc/types.js';

export interface Engine {
  broker: Broker;
  presence: PresenceStore;
  rpc: RpcEngine;
}

/** The settings the engine reads. */
export type EngineConfig = Pick<GatewayConfig, 'broker' | 'redisPrefix' | 'redisTimeoutMs'> & Partial<Pick<GatewayConfig, 'historyMemoryBytes'>>;

/**
 * Builds (does not start) the broker and the presence store `config.broker` names. A part given in
 * `given` (tests, embedding) is used as it is; only the missing part is built. The Redis modules
 * (and ioredis) are loaded only when a Redis URL is configured.
 */
export async function createEngine(config: EngineConfig, log: Logger, given: Partial<Engine> = {}): Promise<Engine> {
  return {
    broker: given.broker ?? (await createBroker(config, log)),
    presence: given.presence ?? (await createPresenceStore(config, log)),
    rpc: given.rpc ?? (await createRpcEngine(config, log)),
  };
}

/** The RPC engine `config.broker` names: in memory for one node, on Redis for several. */
export async function createRpcEngine(config: EngineConfig, log: Logger): Promise<RpcEngine> {
  if (config.broker === 'memory') return new MemoryRpcEngine();
  const { RedisRpcEngine } = await import('./rpc/redis.js');
  return new RedisRpcEngine(redisSettings(config, log));
}

/** The broker `config.broker` names: the memory broker, or Redis (the broker half of {@link createEngine}). */
export async function createBroker(config: EngineConfig, log: Logger): Promise<Broker> {
  if (config.broker === 'memory') return new MemoryBroker({ maxHistoryBytes: config.historyMemoryBytes, onEvicted: evictionLog(log) });
  const { RedisBroker } = await import('./broker/redis.js');
  return new RedisBroker(redisSettings(config, log));
}

/** The presence store `config.broker` names (the presence half of {@link createEngine}). */
export async function createPresenceStore(config: EngineConfig, log: Logger): Promise<PresenceStore> {
  if (config.broker === 'memory') return new MemoryPresenceStore();
  const { RedisPresenceStore } = await import('./presence/redis.js');
  return new RedisPresenceStore(redisSettings(config, log));
}

/** Logs the history budget's evictions: at most one warning per 10 s, with what was evicted since the last one. */
function evictionLog(log: Logger): (publications: number, bytes: number) => void {
  let last = 0;
  let pubs = 0;
  let bytes = 0;
  return (p, b) => {
    pubs += p;
    bytes += b;
    const now = Date.now();
    if (now - last < 10_000) return;
    log.warn({ publications: pubs, bytes }, 'history budget (SIGNALBOX_HISTORY_MEMORY) reached: oldest publications of the least recent channels evicted');
    last = now;
    pubs = 0;
    bytes = 0;
  };
}

/** What both Redis halves take from the configuration: the same Redis, prefix and timeout. */
function redisSettings(config: EngineConfig, log: Logger): { url: string; prefix: string; commandTimeoutMs: number; logger: Logger } {
  return { url: config.broker, prefix: config.redisPrefix, commandTimeoutMs: config.redisTimeoutMs, logger: log };
}
