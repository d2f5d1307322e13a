/**
 * The Redis key layout is a storage format: data already in Redis and nodes of an older version
 * read and write these exact names. Every name is pinned here as a literal, byte for byte; if one
 * of these tests fails, a change broke compatibility with existing deployments (docs/redis.md).
 */
import { describe, expect, it } from 'vitest';
import { MemoryBroker } from '../src/broker/memory.js';
import { createEngine } from '../src/engine.js';
import { createLogger } from '../src/logger.js';
import { MemoryPresenceStore } from '../src/presence/memory.js';
import { escapeChannelTag, redisChannelKeys, redisPresenceKeys, redisRpcKeys } from '../src/redis/keys.js';
import { Recorder, publishTo } from './contract/broker.contract.js';
import { deleteKeys, describeWithRedis, listKeys, probeRedis, rawClient, uniquePrefix } from './helpers/redis.js';

describe('Redis key names (pinned)', () => {
  it('channel keys and topic, for a plain channel name', () => {
    expect(redisChannelKeys('signalbox', 'chat:room-1')).toEqual({
      meta: 'signalbox:{chat:room-1}:meta',
      stream: 'signalbox:{chat:room-1}:stream',
      idem: 'signalbox:{chat:room-1}:idem:',
      msgs: 'signalbox:{chat:room-1}:msgs',
      order: 'signalbox:{chat:room-1}:order',
      topic: 'signalbox:{chat:room-1}:pub',
    });
  });

  it('presence keys', () => {
    expect(redisPresenceKeys('signalbox', 'room:r_1.a@b=c')).toEqual({
      expiries: 'signalbox:{room:r_1.a@b=c}:presence:z',
      members: 'signalbox:{room:r_1.a@b=c}:presence:h',
    });
  });

  it('RPC keys and topic: registry per channel, liveness key and inbox per node', () => {
    const k = redisRpcKeys('signalbox');
    expect(k.registry('session:s 1')).toBe('signalbox:{session:s%00201}:rpc');
    expect(k.node('node_Ab-9')).toBe('signalbox:rpc:node:node_Ab-9');
    expect(k.inbox('node_Ab-9')).toBe('signalbox:rpc:inbox:node_Ab-9');
  });

  it('escaping: every character outside [A-Za-z0-9_.@=:-] as %xxxx (UTF-16 code unit)', () => {
    expect(escapeChannelTag('a{b}*?[c] %')).toBe('a%007bb%007d%002a%003f%005bc%005d%0020%0025');
    expect(escapeChannelTag('user:é/x')).toBe('user:%00e9%002fx');
    expect(escapeChannelTag('emoji:\u{1F600}')).toBe('emoji:%d83d%de00');
    expect(escapeChannelTag('AZaz09_.@=:-')).toBe('AZaz09_.@=:-');
    expect(redisChannelKeys('p/q', 'x y').meta).toBe('p/q:{x%0020y}:meta');
    expect(redisPresenceKeys('p', 'x y').members).toBe('p:{x%0020y}:presence:h');
  });
});

const redis = await probeRedis();
const prefix = uniquePrefix('keys');

describe('createEngine', () => {
  it('memory: the memory broker and presence store; a part given is used as it is', async () => {
    const log = createLogger('silent');
    const engine = await createEngine({ broker: 'memory', redisPrefix: 'signalbox', redisTimeoutMs: 5000 }, log);
    expect(engine.broker).toBeInstanceOf(MemoryBroker);
    expect(engine.presence).toBeInstanceOf(MemoryPresenceStore);
    const presence = new MemoryPresenceStore();
    expect((await createEngine({ broker: 'memory', redisPrefix: 'signalbox', redisTimeoutMs: 5000 }, log, { presence })).presence).toBe(presence);
  });
});

describeWithRedis('Redis key names written by the engine createEngine builds (pinned)', redis, () => {
  it('a publish with an idempotency key, a presence member, and the live topic use exactly these names', async () => {
    // Through createEngine, so the names also prove that broker and presence got the configured prefix.
    const { broker, presence } = await createEngine({ broker: redis.url, redisPrefix: prefix, redisTimeoutMs: 2000 }, createLogger('silent'));
    expect(broker.kind).toBe('redis');
    const listener = rawClient(redis.url);
    try {
      await broker.start(new Recorder());
      await presence.start?.();
      // The topic, subscribed by its literal name from outside the broker.
      const heard = new Promise<string>((resolve, reject) => {
        listener.on('message', (topic: string) => resolve(topic));
        setTimeout(() => reject(new Error('no message on the pinned topic name within 5 s')), 5000).unref();
      });
      await listener.subscribe(`${prefix}:{room:k%0020%00e9}:pub`);
      await publishTo(broker, 'room:k é', 1, { idempotencyKey: 'id-1' });
      await presence.add('room:k é', { clientId: 'c1', userId: 'u1' }, 60_000);
      expect(await heard).toBe(`${prefix}:{room:k%0020%00e9}:pub`);
      expect(await listKeys(redis.url, prefix)).toEqual([
        `${prefix}:{room:k%0020%00e9}:idem:id-1`,
        `${prefix}:{room:k%0020%00e9}:meta`,
        `${prefix}:{room:k%0020%00e9}:msgs`,
        `${prefix}:{room:k%0020%00e9}:order`,
        `${prefix}:{room:k%0020%00e9}:presence:h`,
        `${prefix}:{room:k%0020%00e9}:presence:z`,
        `${prefix}:{room:k%0020%00e9}:stream`,
      ]);
    } finally {
      listener.disconnect();
      await presence.close();
      await broker.close();
      await deleteKeys(redis.url, prefix);
    }
  });
});
