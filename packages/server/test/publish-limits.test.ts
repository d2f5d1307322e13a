/**
 * What may take an offset. A publication the gateway could not frame must be refused before it
 * is stored (400 / INVALID_MESSAGE naming the limit), so one request can never stall a channel;
 * and a publish id is de-duplicated only within its own publisher's scope, which no token claim
 * can reach (a token whose `sub` is `api` cannot pre-empt the HTTP API's ids).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '@signalbox/protocol';
import { ConfigError, RedisBroker, loadConfig } from '../src/index.js';
import { deleteKeys, describeWithRedis, probeRedis, uniquePrefix } from './helpers/redis.js';
import { connectPrp, startGateway, uniqueChannel, type Msg, type TestClient, type TestGateway } from './helpers/gateway.js';
import { http } from './helpers/core-util.js';
import { awaitOffset, publications, subscribePrp } from './helpers/delivery-kit.js';

/** Sends a PRP publish with the given request id (the publish id) and awaits its reply. */
async function publishWithId(client: TestClient, id: string, channel: string, data: unknown): Promise<Msg> {
  const from = client.messages.length;
  client.send({ id, action: 'publish', payload: { channel, type: 'note', data } });
  return client.next((m) => m.replyTo === id, 5000, from);
}

function nestedText(depth: number): string {
  return '['.repeat(depth) + ']'.repeat(depth);
}

describe('HTTP publish: the nesting limit, before an offset is taken', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ maxJsonDepth: 32 });
  });
  afterAll(() => gw.close());

  it('data nested 6,000 deep is 400 INVALID_MESSAGE naming the limit; the channel goes on at the next offset', async () => {
    const channel = uniqueChannel('project');
    const sub = await connectPrp(gw);
    await subscribePrp(sub, channel);
    const deep = await http(gw, '/v1/publish', { rawBody: `{"channel":"${channel}","data":${nestedText(6000)}}` });
    expect(deep.status).toBe(400);
    expect(deep.body.error).toMatchObject({ code: ErrorCode.INVALID_MESSAGE });
    expect(deep.body.error.message).toMatch(/nesting deeper than 32/);
    const after = await gw.publish({ channel, type: 'note', data: 'after' });
    expect(after.status).toBe(200);
    expect(after.body.offset).toBe(1);
    await awaitOffset(sub, channel, 1);
    expect(publications(sub, channel).map((m) => m.data)).toEqual(['after']);
    const hist = await http(gw, `/v1/channels/${encodeURIComponent(channel)}/history`);
    expect(hist.status).toBe(200);
    expect(hist.body.publications.map((p: { data: unknown }) => p.data)).toEqual(['after']);
    await sub.close();
  });

  it('a body at the limit is accepted (the envelope counts as one level)', async () => {
    const channel = uniqueChannel('project');
    const ok = await http(gw, '/v1/publish', { rawBody: `{"channel":"${channel}","data":${nestedText(31)}}` });
    expect(ok.status).toBe(200);
    const over = await http(gw, '/v1/publish', { rawBody: `{"channel":"${channel}","data":${nestedText(32)}}` });
    expect(over.status).toBe(400);
    // Brackets inside strings do not count.
    const str = await http(gw, '/v1/publish', { body: { channel, data: '['.repeat(100) } });
    expect(str.status).toBe(200);
  });

  it('invalid JSON is still 400 INVALID_MESSAGE', async () => {
    const res = await http(gw, '/v1/publish', { rawBody: '{"channel":' });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: ErrorCode.INVALID_MESSAGE });
  });
});

describe('idempotency scopes', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  it("a token with sub 'api' cannot pre-empt an HTTP publish id", async () => {
    const channel = uniqueChannel('agent');
    const forger = await connectPrp(gw, { token: await gw.token({ sub: 'api' }) });
    const forged = await publishWithId(forger, 'backend-id-1', channel, 'forged');
    expect(forged.type).toBe('ack');
    const real = await gw.publish({ channel, type: 'note', data: 'real', id: 'backend-id-1' });
    expect(real.status).toBe(200);
    expect(real.body.duplicate).toBe(false);
    const hist = await http(gw, `/v1/channels/${encodeURIComponent(channel)}/history`);
    expect(hist.body.publications.map((p: { data: unknown }) => p.data)).toEqual(['forged', 'real']);
    await forger.close();
  });

  it('two clients may use the same id; one client repeating it is a duplicate', async () => {
    const channel = uniqueChannel('agent');
    const a = await connectPrp(gw, { token: await gw.token({ sub: 'usr_a' }) });
    const b = await connectPrp(gw, { token: await gw.token({ sub: 'usr_b' }) });
    expect((await publishWithId(a, 'same', channel, 1)).data.duplicate).toBe(false);
    expect((await publishWithId(b, 'same', channel, 2)).data.duplicate).toBe(false);
    expect((await publishWithId(a, 'same', channel, 3)).data.duplicate).toBe(true);
    await Promise.all([a.close(), b.close()]);
  });
});

/** `depth` nested arrays around a string, as a value. */
function nestedValue(depth: number): unknown {
  let v: unknown = 'core';
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

const redis = await probeRedis();

describe('the deepest data accepted is data every codec and broker can deliver', () => {
  it('SIGNALBOX_MAX_JSON_DEPTH is at most 96', () => {
    expect(() => loadConfig({ env: { SIGNALBOX_MAX_JSON_DEPTH: '97' } })).toThrow(ConfigError);
    expect(loadConfig({ env: { SIGNALBOX_MAX_JSON_DEPTH: '96' } }).maxJsonDepth).toBe(96);
  });

  async function deepestRoundTrip(gw: TestGateway): Promise<void> {
    const channel = uniqueChannel('project');
    const json = await connectPrp(gw);
    const packed = await connectPrp(gw, { msgpack: true });
    await subscribePrp(json, channel);
    await subscribePrp(packed, channel);
    const data = nestedValue(95); // the body adds one level: 96 in all, the limit
    const res = await gw.publish({ channel, type: 'deep', data });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    for (const c of [json, packed]) {
      const got = await awaitOffset(c, channel, 1);
      expect(got.data).toEqual(data);
    }
    const hist = await http(gw, `/v1/channels/${encodeURIComponent(channel)}/history`);
    expect(hist.status).toBe(200);
    expect(hist.body.publications[0].data).toEqual(data);
    await Promise.all([json.close(), packed.close()]);
  }

  it('memory broker: data at the deepest limit reaches JSON and MessagePack subscribers and history', async () => {
    const gw = await startGateway({ maxJsonDepth: 96 });
    try {
      await deepestRoundTrip(gw);
    } finally {
      await gw.close();
    }
  });

  describeWithRedis('Redis broker', redis, () => {
    it('data at the deepest limit is stored and delivered (Redis stores MessagePack)', async () => {
      const prefix = uniquePrefix('depth');
      const gw = await startGateway({ maxJsonDepth: 96 }, { broker: new RedisBroker({ url: redis.url, prefix }) });
      try {
        await deepestRoundTrip(gw);
      } finally {
        await gw.close();
        await deleteKeys(redis.url, prefix);
      }
    });
  });
});
