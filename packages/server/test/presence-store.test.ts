import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe } from 'vitest';
import { MemoryPresenceStore } from '../src/presence/memory.js';
import { RedisPresenceStore } from '../src/presence/redis.js';
import { presenceContract } from './contract/presence.contract.js';
import { describeWithRedis, probeRedis } from './helpers/redis.js';

describe('MemoryPresenceStore', () => {
  presenceContract(async () => ({ store: new MemoryPresenceStore(), cleanup: async () => {} }));
});

const probe = await probeRedis();
describeWithRedis('RedisPresenceStore', probe, () => {
  presenceContract(async () => {
    const prefix = `sbtest-presence-${randomBytes(4).toString('hex')}`;
    const store = new RedisPresenceStore({ url: probe.url, prefix });
    await store.start();
    return {
      store,
      async cleanup() {
        const r = new Redis(probe.url);
        const keys = await r.keys(`${prefix}:*`);
        if (keys.length) await r.del(...keys);
        r.disconnect();
      },
    };
  });
});
