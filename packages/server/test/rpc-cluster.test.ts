/**
 * RPC across gateway nodes on one Redis (REDIS_URL, a unique key prefix, deleted afterwards):
 * caller and handler on different nodes, 1,000 concurrent calls each answered exactly once,
 * every failure outcome across the hop, and a handler's node killed with SIGKILL (its calls
 * fail within their timeout, new calls reach a handler on a live node, its registrations go).
 *
 * The SIGKILL part runs the handler's node as a child process: needs a build of the server.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ErrorCode } from '@signalbox/protocol';
import { RedisRpcEngine } from '../src/rpc/redis.js';
import { CLUSTER_SECRET, GatewayProcess, clusterToken } from './helpers/cluster.js';
import { TestClient, connectPrp, startGateway, uniqueChannel, type Msg, type TestGateway } from './helpers/gateway.js';
import { deleteKeys, describeWithRedis, probeRedis, uniquePrefix } from './helpers/redis.js';
import { serve } from './helpers/rpc.js';
import { eventually } from './helpers/wait.js';

const probe = await probeRedis();

describeWithRedis('RPC across nodes on Redis', probe, () => {
  const prefix = uniquePrefix('rpc');
  let a: TestGateway;
  let b: TestGateway;
  beforeAll(async () => {
    const common = { broker: probe.url, redisPrefix: prefix, jwtSecret: CLUSTER_SECRET, rpcMaxCallsInFlight: 1000, rpcCallRate: 1000, messageRate: 5000, messageBurst: 5000, maxPendingRequests: 2000 };
    [a, b] = await Promise.all([startGateway(common), startGateway(common)]);
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await deleteKeys(probe.url, prefix);
  });

  it('1,000 concurrent calls from node A to a handler on node B: each answered once, with its own result', async () => {
    const channel = uniqueChannel('agent');
    const h = await connectPrp(b, { token: await b.token({ sub: 'agent_b', handle: [channel] }) });
    expect((await h.request('rpc.handle', { channel, methods: ['double'] })).type).toBe('rpc.handling');
    const callers = new Set<string>();
    serve(h, (d) => {
      callers.add(d.caller.client as string);
      return { result: { n: d.params.n * 2 } };
    });
    const c = await connectPrp(a, { token: await a.token({ sub: 'usr_a', call: [channel] }) });
    for (let i = 0; i < 1000; i++) c.send({ id: `call_${i}`, action: 'rpc.call', payload: { channel, method: 'double', params: { n: i }, timeoutMs: 20_000 } });
    const replies = await c.collect((m) => typeof m.replyTo === 'string' && m.replyTo.startsWith('call_'), 1000, 30_000);
    const byId = new Map<string, Msg[]>();
    for (const r of replies) byId.set(r.replyTo as string, [...(byId.get(r.replyTo as string) ?? []), r]);
    expect(byId.size).toBe(1000);
    for (let i = 0; i < 1000; i++) {
      const got = byId.get(`call_${i}`)!;
      expect(got).toHaveLength(1);
      expect(got[0]).toMatchObject({ type: 'rpc.result', data: { result: { n: i * 2 } } });
    }
    // Nothing more arrives for them.
    expect((await c.request('ping')).type).toBe('pong');
    expect(c.messages.filter((m) => typeof m.replyTo === 'string' && m.replyTo.startsWith('call_'))).toHaveLength(1000);
    expect([...callers]).toEqual([c.messages[0]!.data.connectionId]);
    await Promise.all([h.close(), c.close()]);
  });

  it('across the hop: no handler at once, a handler\'s error, a timeout, a handler that leaves mid-call', async () => {
    const channel = uniqueChannel('session');
    const c = await connectPrp(a, { token: await a.token({ call: [channel] }) });
    expect((await c.request('rpc.call', { channel, method: 'x', timeoutMs: 30_000 }, 3000)).data.code).toBe(ErrorCode.RPC_NO_HANDLER);
    const h = await connectPrp(b, { token: await b.token({ handle: [channel] }) });
    await h.request('rpc.handle', { channel });
    serve(h, (d) => (d.method === 'fail' ? { error: { code: 'E_PAGE', message: 'page crashed' } } : undefined));
    expect((await c.request('rpc.call', { channel, method: 'fail' })).data).toMatchObject({ code: ErrorCode.RPC_FAILED, message: 'page crashed', details: { handlerCode: 'E_PAGE' } });
    expect((await c.request('rpc.call', { channel, method: 'hang', timeoutMs: 300 })).data.code).toBe(ErrorCode.RPC_TIMEOUT);
    const reached = h.next((m) => m.type === 'rpc.request' && m.data.method === 'leave', 5000, h.messages.length);
    const pending = c.request('rpc.call', { channel, method: 'leave', timeoutMs: 30_000 }, 5000);
    await reached;
    await h.close();
    expect((await pending).data.code).toBe(ErrorCode.RPC_HANDLER_GONE);
    await c.close();
  });

  it('a handler\'s node SIGKILLed: its call fails within its timeout, new calls reach a live node, its registration goes', async () => {
    const channel = uniqueChannel('agent');
    const doomed = await GatewayProcess.start('rpc-doomed', { broker: probe.url, prefix });
    const inspect = new RedisRpcEngine({ url: probe.url, prefix });
    await inspect.start('node_inspector', { onCall: () => {}, onOutcome: () => {} });
    try {
      const h1 = new TestClient(doomed.wsUrl(), { headers: { authorization: `Bearer ${await clusterToken('agent_doomed')}` } });
      await h1.nextType('connection.established');
      await h1.request('rpc.handle', { channel });
      // Only the doomed node handles the channel: the call goes there, and is never answered.
      const c = await connectPrp(a, { token: await a.token({ call: [channel] }) });
      const reached = h1.next((m) => m.type === 'rpc.request');
      const started = Date.now();
      const inFlight = c.request('rpc.call', { channel, method: 'run', timeoutMs: 1500 }, 10_000);
      await reached;
      await doomed.kill('SIGKILL');
      const lost = await inFlight;
      expect(lost.data.code).toBe(ErrorCode.RPC_TIMEOUT);
      expect(Date.now() - started).toBeLessThan(1500 + 2000);

      // A live handler on node B: the stale registration of the dead node is skipped at once.
      const h2 = await connectPrp(b, { token: await b.token({ handle: [channel] }) });
      await h2.request('rpc.handle', { channel });
      serve(h2, () => ({ result: 'alive' }));
      for (let i = 0; i < 5; i++) {
        expect((await c.request('rpc.call', { channel, method: 'run', timeoutMs: 3000 })).data).toMatchObject({ result: 'alive' });
      }
      // And the dead node's registration is gone within its liveness period (5 s).
      const entries = await eventually(async () => {
        const list = await inspect.handlers(channel);
        return list.length === 1 ? list : undefined;
      }, { label: 'the dead node\'s registration expires', timeoutMs: 10_000, intervalMs: 250 });
      expect(entries[0]!.handlerId).toBe(h2.messages[0]!.data.connectionId);
      await Promise.all([h1.close(), h2.close(), c.close()]);
    } finally {
      await doomed.kill();
      await inspect.close();
    }
  });
});
