/**
 * What the gateway does when Redis runs out of memory (issue 13, defect 3; docs/redis.md#memory),
 * against a private redis-server with a small `maxmemory`:
 * - `noeviction` (the recommended policy): a publish Redis refuses is answered 503 `UNAVAILABLE`,
 *   nothing acknowledged before is lost, and publishing resumes once memory is there again;
 * - an evicting policy (`allkeys-lru`): a channel whose keys Redis evicted is never recovered with a
 *   silent gap: a recovery from before the eviction is told `recovered: false`.
 */
import { afterEach, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { ErrorCode } from '@signalbox/protocol';
import { redisChannelKeys } from '../src/redis/keys.js';
import { connectPrp, startGateway, uniqueChannel, type TestGateway } from './helpers/gateway.js';
import { describeWithRedisServer, RedisServerProcess } from './helpers/redis-server.js';

const PAD = 'm'.repeat(20_000);

describeWithRedisServer('Redis out of memory (private redis-server)', () => {
  let server: RedisServerProcess | null = null;
  let gw: TestGateway | null = null;
  let admin: Redis | null = null;

  afterEach(async () => {
    await gw?.close();
    admin?.disconnect();
    await server?.stop();
    gw = null;
    admin = null;
    server = null;
  });

  async function setup(policy: string): Promise<{ gw: TestGateway; admin: Redis }> {
    server = await RedisServerProcess.start({ persistent: false });
    admin = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await admin.connect();
    gw = await startGateway({ broker: server.url, redisPrefix: 'oom', redisTimeoutMs: 2000 });
    const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))![1]);
    // Room for about 40 publications of 20 KB beyond what Redis and the gateway's connections use now.
    await admin.config('SET', 'maxmemory', String(used + 1024 * 1024));
    await admin.config('SET', 'maxmemory-policy', policy);
    return { gw, admin };
  }

  it('noeviction: a refused write is 503 UNAVAILABLE, what was acknowledged stays, publishing resumes with memory', async () => {
    const { gw, admin } = await setup('noeviction');
    const channel = uniqueChannel('project');
    const acked: number[] = [];
    let refused: { status: number; body: Record<string, unknown> } | null = null;
    for (let i = 0; i < 400 && !refused; i++) {
      const r = await gw.publish({ channel: i % 2 ? channel : uniqueChannel('project'), type: 'm', data: { i, pad: PAD } });
      if (r.status === 200) {
        if (i % 2) acked.push(r.body.offset as number);
      } else refused = r;
    }
    expect(refused).not.toBeNull();
    expect(refused!.status).toBe(503);
    expect((refused!.body.error as { code: string }).code).toBe(ErrorCode.UNAVAILABLE);

    // Reads still work; every acknowledged publication of the channel is there.
    const res = await fetch(`${gw.http}/v1/channels/${encodeURIComponent(channel)}/history?limit=1000`, { headers: { authorization: 'Bearer test-api-key-0123456789' } });
    expect(res.status).toBe(200);
    const hist = (await res.json()) as { publications: { offset: number }[] };
    expect(hist.publications.map((p) => p.offset)).toEqual(acked);

    await admin.config('SET', 'maxmemory', '0');
    const after = await gw.publish({ channel, type: 'm', data: 'after' });
    expect(after.status).toBe(200);
    expect(after.body.offset).toBe(acked.length + 1);
  });

  it('allkeys-lru: a channel Redis evicted is recovered with recovered:false, never a gap', async () => {
    const { gw, admin } = await setup('allkeys-lru');
    const channel = uniqueChannel('project');
    let pos = { epoch: '', offset: 0 };
    for (let i = 0; i < 5; i++) {
      const r = await gw.publish({ channel, type: 'm', data: { i, pad: PAD } });
      expect(r.status).toBe(200);
      pos = { epoch: r.body.epoch as string, offset: r.body.offset as number };
    }
    // Flood other channels until Redis has evicted some key of the first channel.
    const keys = redisChannelKeys('oom', channel);
    for (let i = 0; i < 2000; i++) {
      await gw.publish({ channel: uniqueChannel('project'), type: 'm', data: { i, pad: PAD } });
      if ((await admin.exists(keys.meta, keys.stream)) < 2) break;
    }
    expect(await admin.exists(keys.meta, keys.stream)).toBeLessThan(2);

    const c = await connectPrp(gw);
    const r = await c.request('subscribe', { channels: [{ channel, since: { epoch: pos.epoch, offset: 0 } }] });
    expect(r.type).toBe('subscription.confirmed');
    const outcome = r.data.channels[0] as { recovered: boolean; reason?: string };
    expect(outcome.recovered).toBe(false);
    expect(['epoch_changed', 'history_expired', 'too_far_behind']).toContain(outcome.reason);
    await c.close();
  });
});
