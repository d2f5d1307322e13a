/**
 * The HTTP API over a real socket: publish (single and multi-channel, idempotency, every kind of
 * bad input, API-key auth), history, stats, health, readiness and Prometheus metrics.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ErrorCode } from '@signalbox/protocol';
import { connectPrp, startGateway, uniqueChannel, type TestGateway } from './helpers/gateway.js';
import { http, metricValue, scrapeMetrics } from './helpers/core-util.js';
import { eventually } from './helpers/wait.js';

// Starting gateways can take long on a starved CI machine; a hang still fails, just later.
vi.setConfig({ hookTimeout: 120_000 });

describe('HTTP API', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  describe('POST /v1/publish', () => {
    it('publishes to one channel: 200 with id, channel, offset, epoch; subscribers get the same id', async () => {
      const client = await connectPrp(gw);
      const channel = uniqueChannel('project');
      await client.request('subscribe', { channels: [channel] });
      const res = await http(gw, '/v1/publish', { body: { channel, type: 'prp.created', data: { id: 'prp_789012', name: 'Implement Authentication' } } });
      expect(res.status).toBe(200);
      expect(res.contentType).toMatch(/^application\/json/);
      expect(res.body).toMatchObject({ id: expect.any(String), channel, offset: 1, epoch: expect.any(String), duplicate: false });
      expect(res.body.publications).toEqual([{ id: res.body.id, channel, offset: 1, epoch: res.body.epoch, duplicate: false }]);
      const ev = await client.nextType('prp.created');
      expect(ev).toMatchObject({ id: res.body.id, channel, offset: 1, epoch: res.body.epoch, data: { id: 'prp_789012' } });
      await client.close();
    });

    it('a given id is the idempotency key: a repeat is not appended again', async () => {
      const channel = uniqueChannel('project');
      const first = await http(gw, '/v1/publish', { body: { channel, id: 'evt_0001', type: 'prp.updated', data: { v: 1 } } });
      const again = await http(gw, '/v1/publish', { body: { channel, id: 'evt_0001', type: 'prp.updated', data: { v: 1 } } });
      expect(first.body).toMatchObject({ id: 'evt_0001', offset: 1, duplicate: false });
      expect(again.status).toBe(200);
      expect(again.body).toMatchObject({ id: 'evt_0001', offset: 1, duplicate: true });
      const next = await http(gw, '/v1/publish', { body: { channel, type: 'prp.updated', data: { v: 2 } } });
      expect(next.body.offset).toBe(2);
    });

    it('publishes to several channels with one id; each subscriber gets it once', async () => {
      const a = await connectPrp(gw);
      const b = await connectPrp(gw);
      const project = uniqueChannel('project');
      const agent = uniqueChannel('agent');
      await a.request('subscribe', { channels: [project] });
      await b.request('subscribe', { channels: [agent] });
      const res = await http(gw, '/v1/publish', { body: { channels: [project, agent, project], type: 'agent.assigned', data: { agentId: 'agent_001', prpId: 'prp_789012' } } });
      expect(res.status).toBe(200);
      expect(typeof res.body.id).toBe('string');
      expect(res.body.publications).toHaveLength(2);
      expect(res.body.publications.map((p: { channel: string }) => p.channel)).toEqual([project, agent]);
      for (const p of res.body.publications) expect(p).toMatchObject({ id: res.body.id, offset: 1, duplicate: false });
      expect(await a.nextType('agent.assigned')).toMatchObject({ id: res.body.id, channel: project });
      expect(await b.nextType('agent.assigned')).toMatchObject({ id: res.body.id, channel: agent });
      await a.close();
      await b.close();
    });

    it('publishes to any namespace, even those closed to client publishing', async () => {
      for (const channel of ['prp:prp_1', 'user:usr_1', 'metrics', 'session:s1']) {
        const res = await http(gw, '/v1/publish', { body: { channel, type: 'x.y', data: null } });
        expect(res.status, channel).toBe(200);
      }
    });

    const bad: [string, unknown, string, Record<string, unknown>?][] = [
      ['an array body', [1], ErrorCode.INVALID_MESSAGE],
      ['no channel', { type: 'x', data: 1 }, ErrorCode.INVALID_MESSAGE],
      ['an empty channels list', { channels: [], type: 'x', data: 1 }, ErrorCode.INVALID_MESSAGE],
      ['a non-string channel', { channels: ['project:p', 5], type: 'x', data: 1 }, ErrorCode.INVALID_MESSAGE],
      ['more than 100 channels', { channels: Array.from({ length: 101 }, (_, i) => `project:p${i}`), type: 'x', data: 1 }, ErrorCode.INVALID_MESSAGE],
      ['an invalid type', { channel: 'project:p', type: 'bad type', data: 1 }, ErrorCode.INVALID_MESSAGE, { type: 'bad type' }],
      ['a reserved type', { channel: 'project:p', type: 'heartbeat', data: 1 }, ErrorCode.INVALID_MESSAGE, { type: 'heartbeat' }],
      ['no data', { channel: 'project:p', type: 'x' }, ErrorCode.INVALID_MESSAGE],
      ['an invalid id', { channel: 'project:p', type: 'x', data: 1, id: 'has space' }, ErrorCode.INVALID_MESSAGE],
      ['a malformed channel', { channel: 'project:a b', type: 'x', data: 1 }, ErrorCode.INVALID_CHANNEL, { channel: 'project:a b' }],
      ['a wildcard channel', { channel: 'project:*', type: 'x', data: 1 }, ErrorCode.INVALID_CHANNEL, { channel: 'project:*' }],
      ['an unknown namespace', { channel: 'invalid:channel', type: 'x', data: 1 }, ErrorCode.INVALID_CHANNEL, { channel: 'invalid:channel' }],
      ['one bad channel among good ones', { channels: ['project:ok', 'nope:x'], type: 'x', data: 1 }, ErrorCode.INVALID_CHANNEL, { channel: 'nope:x' }],
    ];

    it.each(bad)('400 for %s', async (_what, body, code, details) => {
      const res = await http(gw, '/v1/publish', { body });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe(code);
      expect(typeof res.body.error.message).toBe('string');
      if (details) expect(res.body.error.details).toEqual(details);
    });

    it('400 for a body that is not JSON', async () => {
      const res = await http(gw, '/v1/publish', { rawBody: '{"channel":' });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe(ErrorCode.INVALID_MESSAGE);
    });

    it('nothing was appended by a refused multi-channel publish', async () => {
      const channel = uniqueChannel('project');
      await http(gw, '/v1/publish', { body: { channels: [channel, 'nope:x'], type: 'x', data: 1 } });
      const ok = await http(gw, '/v1/publish', { body: { channel, type: 'x', data: 1 } });
      expect(ok.body.offset).toBe(1);
    });

    it('413 for a body over the limit', async () => {
      const res = await http(gw, '/v1/publish', { body: { channel: 'project:p', type: 'x', data: 'x'.repeat(1024 * 1024 + 1) } });
      expect(res.status).toBe(413);
      expect(res.body.error.code).toBe(ErrorCode.MESSAGE_TOO_LARGE);
    });

    it('401 without a key, with a wrong key, or with another scheme', async () => {
      const body = { channel: 'project:p', type: 'x', data: 1 };
      const variants: Record<string, string>[] = [{}, { authorization: 'Bearer wrong-key-0123456789' }, { authorization: 'Bearer ' }, { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }, { authorization: 'Bearer test-api-key-012345678' }];
      for (const headers of variants) {
        const res = await http(gw, '/v1/publish', { body, apiKey: null, headers });
        expect(res.status, JSON.stringify(headers)).toBe(401);
        expect(res.body.error.code).toBe(ErrorCode.AUTH_FAILED);
      }
      // A client JWT is not an API key.
      expect((await http(gw, '/v1/publish', { body, apiKey: await gw.token() })).status).toBe(401);
    });
  });

  describe('read endpoints', () => {
    it('GET /v1/channels/:channel/history returns publications; a stale position is 409', async () => {
      const channel = uniqueChannel('project');
      for (let i = 1; i <= 3; i++) await http(gw, '/v1/publish', { body: { channel, type: 'prp.updated', data: { i } } });
      const res = await http(gw, `/v1/channels/${encodeURIComponent(channel)}/history`);
      expect(res.status).toBe(200);
      expect(res.body.publications.map((p: { data: { i: number } }) => p.data.i)).toEqual([1, 2, 3]);
      for (const p of res.body.publications) expect(p).toMatchObject({ id: expect.any(String), type: 'prp.updated', timestamp: expect.any(String), channel });
      const epoch = res.body.position.epoch as string;
      const since = await http(gw, `/v1/channels/${encodeURIComponent(channel)}/history?since_epoch=${epoch}&since_offset=2`);
      expect(since.body.publications.map((p: { offset: number }) => p.offset)).toEqual([3]);
      const stale = await http(gw, `/v1/channels/${encodeURIComponent(channel)}/history?since_epoch=other&since_offset=1`);
      expect(stale.status).toBe(409);
      expect(stale.body.error).toMatchObject({ code: ErrorCode.UNRECOVERABLE_POSITION, details: { reason: 'epoch_changed' } });
      expect((await http(gw, '/v1/channels/nope%3Ax/history')).status).toBe(400);
      expect((await http(gw, `/v1/channels/${encodeURIComponent(channel)}/history?limit=5000`)).status).toBe(400);
      expect((await http(gw, `/v1/channels/${encodeURIComponent(channel)}/history`, { apiKey: null })).status).toBe(401);
    });

    it('GET /v1/stats and /v1/channels need the key and report this node', async () => {
      expect((await http(gw, '/v1/stats', { apiKey: null })).status).toBe(401);
      expect((await http(gw, '/v1/channels', { apiKey: 'wrong-key-0123456789' })).status).toBe(401);
      const client = await connectPrp(gw);
      const channel = uniqueChannel('project');
      await client.request('subscribe', { channels: [channel] });
      const stats = await http(gw, '/v1/stats');
      expect(stats.status).toBe(200);
      expect(stats.body).toMatchObject({ version: expect.any(String), broker: 'memory', brokerReady: true, draining: false });
      expect(stats.body.connections).toBeGreaterThanOrEqual(1);
      const channels = await http(gw, '/v1/channels');
      expect(channels.body.channels).toContainEqual(expect.objectContaining({ channel, subscribers: 1 }));
      await client.close();
    });

    it('GET /healthz and /readyz answer without a key', async () => {
      const health = await http(gw, '/healthz', { apiKey: null });
      expect(health.status).toBe(200);
      expect(health.body).toEqual({ status: 'ok' });
      const ready = await http(gw, '/readyz', { apiKey: null });
      expect(ready.status).toBe(200);
      expect(ready.body).toMatchObject({ ready: true });
    });

    it('an unknown route is a JSON 404', async () => {
      const res = await http(gw, '/v1/nope', { apiKey: null });
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe(ErrorCode.INVALID_ACTION);
      expect(res.body.error.message).toContain('/v1/nope');
    });
  });
});

describe('GET /metrics', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  it('is Prometheus text, labelled by namespace and never by channel name', async () => {
    const client = await connectPrp(gw);
    const project = 'project:secret_proj_4f2a';
    const agent = 'agent:secret_agent_9c1b';
    await client.request('subscribe', { channels: [project, agent] });
    await http(gw, '/v1/publish', { body: { channel: project, type: 'prp.created', data: {} } });
    await client.nextType('prp.created');
    await client.request('publish', { channel: agent, type: 'agent.progress', data: {} });
    await client.request('subscribe', { channels: ['nope:x'] });
    const res = await http(gw, '/metrics', { apiKey: null });
    expect(res.status).toBe(200);
    expect(res.contentType).toMatch(/^text\/plain/);
    const text = res.text;
    expect(text).toMatch(/^# HELP signalbox_/m);
    expect(text).toMatch(/^# TYPE signalbox_connections gauge$/m);
    expect(metricValue(text, 'signalbox_connections', { dialect: 'prp', encoding: 'json' })).toBe(1);
    expect(metricValue(text, 'signalbox_subscriptions', { namespace: 'project' })).toBe(1);
    expect(metricValue(text, 'signalbox_subscriptions', { namespace: 'agent' })).toBe(1);
    expect(metricValue(text, 'signalbox_publications_total', { namespace: 'project', source: 'api' })).toBe(1);
    expect(metricValue(text, 'signalbox_publications_total', { namespace: 'agent', source: 'client' })).toBe(1);
    expect(metricValue(text, 'signalbox_errors_total', { code: 'INVALID_CHANNEL' })).toBe(1);
    expect(metricValue(text, 'signalbox_broker_ready')).toBe(1);
    // No channel ids anywhere, and no label named channel.
    expect(text).not.toContain('secret_proj_4f2a');
    expect(text).not.toContain('secret_agent_9c1b');
    expect(text).not.toMatch(/[{,]channel="/);
    await client.close();
    // Every sample line parses as `name{labels} value`. Prometheus reads NaN and Inf in any case
    // (prom-client prints `Nan` for a gauge with no samples yet, e.g. event-loop lag just after start).
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      expect(line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? ([-+0-9.eE]+|[Nn][Aa][Nn]|[+-]?[Ii][Nn][Ff])$/);
    }
  });

  it('counts closed connections by close code', async () => {
    const client = await connectPrp(gw);
    await client.close(1000);
    // The server records the close when its side of the socket is done; scrape until it shows.
    const v = await eventually(async () => metricValue(await scrapeMetrics(gw), 'signalbox_connections_closed_total', { code: '1000' }), {
      label: 'signalbox_connections_closed_total{code="1000"}',
      timeoutMs: 10_000,
    });
    expect(v).toBeGreaterThanOrEqual(1);
  });
});

describe('HTTP API without an API key configured', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ apiKey: undefined });
  });
  afterAll(() => gw.close());

  it('answers 401 to every key-protected route, whatever key is sent', async () => {
    for (const [path, body] of [['/v1/publish', { channel: 'project:p', type: 'x', data: 1 }], ['/v1/stats', undefined]] as const) {
      const res = await http(gw, path, { body });
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe(ErrorCode.AUTH_FAILED);
      expect(res.body.error.message).toContain('SIGNALBOX_API_KEY');
    }
    expect((await http(gw, '/healthz', { apiKey: null })).status).toBe(200);
  });
});
