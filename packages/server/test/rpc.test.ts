/**
 * RPC to a channel's handler on one node (memory engine), over real sockets: every outcome a call
 * can have, the grants, both dialects and MessagePack, the HTTP API, and the limits.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '@signalbox/protocol';
import { serve } from './helpers/rpc.js';
import { until } from './helpers/wait.js';
import { TestClient, connectPrd, connectPrp, startGateway, uniqueChannel, type Msg, type TestGateway } from './helpers/gateway.js';

async function rpc(gw: TestGateway, body: unknown, key = gw.config.apiKey!): Promise<{ status: number; body: Msg }> {
  const res = await fetch(`${gw.http}/v1/rpc`, {
    method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Msg };
}

describe('RPC on one node', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({
      rpcMaxCallsInFlight: 4,
      apiKeys: [{ name: 'backend', key: 'sk_backend_rpc_0123456789', scopes: ['rpc'] }, { name: 'pub', key: 'sk_pub_rpc_0123456789ab', scopes: ['publish'] }],
    });
  });
  afterAll(() => gw.close());

  async function handlerOn(channel: string, methods?: string[], sub = 'page_1'): Promise<TestClient> {
    const h = await connectPrp(gw, { token: await gw.token({ sub, channels: [], publish: [], handle: [channel] }) });
    const r = await h.request('rpc.handle', { channel, ...(methods ? { methods } : {}) });
    expect(r).toMatchObject({ type: 'rpc.handling', data: { channel, methods: methods ?? null } });
    return h;
  }

  async function caller(channel: string, sub = 'usr_support'): Promise<TestClient> {
    return connectPrp(gw, { token: await gw.token({ sub, channels: [], publish: [], handle: [], call: [channel] }) });
  }

  it('a call reaches the handler with the caller\'s identity, and its result comes back to the caller', async () => {
    const channel = uniqueChannel('session');
    const h = await handlerOn(channel, ['dom.query']);
    let seen: Msg | undefined;
    serve(h, (d) => {
      seen = d;
      return { result: { text: `<${d.params.selector}>` } };
    });
    const c = await caller(channel);
    const r = await c.request('rpc.call', { channel, method: 'dom.query', params: { selector: 'h1' }, timeoutMs: 5000 });
    expect(r).toMatchObject({ type: 'rpc.result', data: { channel, method: 'dom.query', result: { text: '<h1>' } } });
    expect(seen).toMatchObject({ channel, method: 'dom.query', params: { selector: 'h1' }, caller: { via: 'ws', sub: 'usr_support', client: c.messages[0]!.data.connectionId } });
    expect(seen!.timeoutMs).toBeGreaterThan(0);
    expect(seen!.timeoutMs).toBeLessThanOrEqual(5000);
    await Promise.all([h.close(), c.close()]);
  });

  it('no handler, or none for the method: RPC_NO_HANDLER at once, naming the request', async () => {
    const channel = uniqueChannel('session');
    const c = await caller(channel);
    const none = await c.request('rpc.call', { channel, method: 'dom.query', timeoutMs: 30_000 }, 2000);
    expect(none).toMatchObject({ type: 'error', data: { code: ErrorCode.RPC_NO_HANDLER, details: { action: 'rpc.call', channel, method: 'dom.query' } } });
    expect(none.replyTo).toBe(none.data.details.requestId);
    const h = await handlerOn(channel, ['dom.query']);
    expect((await c.request('rpc.call', { channel, method: 'eval', timeoutMs: 30_000 }, 2000)).data.code).toBe(ErrorCode.RPC_NO_HANDLER);
    await Promise.all([h.close(), c.close()]);
  });

  it('a handler that never answers: RPC_TIMEOUT after the call\'s timeout, and a late answer is dropped', async () => {
    const channel = uniqueChannel('session');
    const h = await handlerOn(channel);
    const requests: Msg[] = [];
    serve(h, (d) => {
      requests.push(d);
      return undefined;
    });
    const c = await caller(channel);
    const started = Date.now();
    const r = await c.request('rpc.call', { channel, method: 'slow', timeoutMs: 300 }, 5000);
    expect(r.data).toMatchObject({ code: ErrorCode.RPC_TIMEOUT, details: { channel, method: 'slow' } });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    // The answer, too late: nothing reaches the caller, the handler is not disconnected.
    h.send({ action: 'rpc.reply', payload: { callId: requests[0]!.callId, result: 'late' } });
    expect((await h.request('ping')).type).toBe('pong');
    expect((await c.request('ping')).type).toBe('pong');
    expect(c.messages.filter((m) => m.type === 'rpc.result')).toEqual([]);
    await Promise.all([h.close(), c.close()]);
  });

  it('a handler\'s error reaches the caller as RPC_FAILED with its message and code', async () => {
    const channel = uniqueChannel('session');
    const h = await handlerOn(channel);
    serve(h, () => ({ error: { code: 'NOT_FOUND', message: 'no element matches #x' } }));
    const c = await caller(channel);
    const r = await c.request('rpc.call', { channel, method: 'dom.query', params: { selector: '#x' } });
    expect(r.data).toMatchObject({ code: ErrorCode.RPC_FAILED, message: 'no element matches #x', details: { handlerCode: 'NOT_FOUND', channel, method: 'dom.query' } });
    await Promise.all([h.close(), c.close()]);
  });

  it('a handler that disconnects or stops handling mid-call: the caller hears RPC_HANDLER_GONE at once', async () => {
    const channel = uniqueChannel('session');
    const c = await caller(channel);
    for (const leave of ['close', 'unhandle'] as const) {
      const h = await handlerOn(channel);
      const got = h.next((m) => m.type === 'rpc.request');
      const reply = c.request('rpc.call', { channel, method: 'x', timeoutMs: 30_000 }, 5000);
      await got;
      if (leave === 'close') await h.close();
      else expect((await h.request('rpc.unhandle', { channel })).type).toBe('rpc.unhandled');
      expect((await reply).data, leave).toMatchObject({ code: ErrorCode.RPC_HANDLER_GONE, details: { channel } });
      await h.close();
    }
    // Nobody handles it any more.
    expect((await c.request('rpc.call', { channel, method: 'x' })).data.code).toBe(ErrorCode.RPC_NO_HANDLER);
    await c.close();
  });

  it('without a `call` grant a caller is refused; without `handle` a would-be handler is refused', async () => {
    const channel = uniqueChannel('session');
    const reader = await connectPrp(gw, { token: await gw.token({ channels: [channel], publish: [channel], handle: [], call: [] }) });
    const call = await reader.request('rpc.call', { channel, method: 'eval', params: {} });
    expect(call.data).toMatchObject({ code: ErrorCode.PERMISSION_DENIED, details: { channel, action: 'rpc.call' } });
    expect(call.data.message).toContain('`call` claim');
    const handle = await reader.request('rpc.handle', { channel });
    expect(handle.data).toMatchObject({ code: ErrorCode.PERMISSION_DENIED, details: { channel, action: 'rpc.handle' } });
    expect(handle.data.message).toContain('`handle` claim');
    await reader.close();
  });

  it('PRD-035 handler, MessagePack caller: the same call and outcome in each shape', async () => {
    const channel = uniqueChannel('agent');
    const h = await connectPrd(gw, { token: await gw.token({ sub: 'agent_1', handle: [channel] }) });
    h.send({ type: 'rpc.handle', id: 'h1', channel, data: { methods: ['cancel'] } });
    expect(await h.next((m) => m.replyTo === 'h1')).toMatchObject({ type: 'ack', channel, data: { action: 'rpc.handle', methods: ['cancel'] } });
    h.ws.on('message', (raw) => {
      const m = JSON.parse(raw.toString()) as Msg;
      if (m.type === 'message' && m.event === 'rpc.request') {
        expect(m.offset).toBeUndefined();
        h.send({ type: 'rpc.reply', data: { callId: m.data.callId, result: { cancelled: m.data.params.run } } });
      }
    });
    const c = new TestClient(`${gw.ws}/v1/ws/prps?format=msgpack`, { headers: { authorization: `Bearer ${await gw.token({ call: [channel] })}` } });
    await c.nextType('connection.established');
    c.sendMsgpack({ id: 'c1', action: 'rpc.call', payload: { channel, method: 'cancel', params: { run: 'run_7' } } });
    expect(await c.next((m) => m.replyTo === 'c1')).toMatchObject({ type: 'rpc.result', data: { result: { cancelled: 'run_7' } } });
    // And a PRD caller gets an ack with the result.
    const prdCaller = await connectPrd(gw, { token: await gw.token({ call: [channel] }) });
    prdCaller.send({ type: 'rpc.call', id: 'c2', channel, data: { method: 'cancel', params: { run: 'run_8' } } });
    expect(await prdCaller.next((m) => m.replyTo === 'c2')).toMatchObject({ type: 'ack', channel, data: { action: 'rpc.call', method: 'cancel', result: { cancelled: 'run_8' } } });
    await Promise.all([h.close(), c.close(), prdCaller.close()]);
  });

  it('bad requests get INVALID_MESSAGE naming the request; limits on timeout and calls in flight', async () => {
    const channel = uniqueChannel('session');
    const c = await caller(channel);
    for (const payload of [{ channel, method: '' }, { channel, method: 'x', timeoutMs: -1 }, { channel, method: 'x', timeoutMs: 60_001 }, { channel: 'nope:x', method: 'x' }]) {
      const r = await c.request('rpc.call', payload);
      expect(r.type, JSON.stringify(payload)).toBe('error');
      expect([ErrorCode.INVALID_MESSAGE, ErrorCode.INVALID_CHANNEL]).toContain(r.data.code);
      expect(r.data.details.action).toBe('rpc.call');
    }
    const h = await handlerOn(channel);
    serve(h, () => undefined); // never answers: calls stay in flight
    const pending = [1, 2, 3, 4].map(() => c.request('rpc.call', { channel, method: 'x', timeoutMs: 500 }, 5000));
    await until(() => h.messages.filter((m) => m.type === 'rpc.request').length === 4, { label: 'four calls at the handler', timeoutMs: 5000 });
    const fifth = await c.request('rpc.call', { channel, method: 'x', timeoutMs: 500 });
    expect(fifth.data).toMatchObject({ code: ErrorCode.RATE_LIMITED, details: { channel } });
    expect((await Promise.all(pending)).map((r) => r.data.code)).toEqual(Array(4).fill(ErrorCode.RPC_TIMEOUT));
    // A malformed reply is answered with INVALID_MESSAGE; the handler stays connected.
    h.send({ id: 'bad_reply', action: 'rpc.reply', payload: { result: 1 } });
    expect((await h.next((m) => m.replyTo === 'bad_reply')).data.code).toBe(ErrorCode.INVALID_MESSAGE);
    await Promise.all([h.close(), c.close()]);
  });

  it('HTTP: 200 with the result, 404 no handler, 504 timeout, 502 handler error, 403 without the rpc scope', async () => {
    const channel = uniqueChannel('agent');
    const key = 'sk_backend_rpc_0123456789';
    expect(await rpc(gw, { channel, method: 'status' }, key)).toMatchObject({ status: 404, body: { error: { code: ErrorCode.RPC_NO_HANDLER, details: { channel, method: 'status' } } } });
    const h = await handlerOn(channel, ['status', 'fail', 'hang'], 'agent_9');
    let caller: Msg | undefined;
    serve(h, (d) => {
      caller = d.caller;
      if (d.method === 'status') return { result: { state: 'running' } };
      if (d.method === 'fail') return { error: { message: 'model overloaded' } };
      return undefined;
    });
    expect(await rpc(gw, { channel, method: 'status' }, key)).toEqual({ status: 200, body: { channel, method: 'status', result: { state: 'running' } } });
    expect(caller).toEqual({ via: 'http', key: 'backend' });
    expect(await rpc(gw, { channel, method: 'fail' }, key)).toMatchObject({ status: 502, body: { error: { code: ErrorCode.RPC_FAILED, message: 'model overloaded' } } });
    expect(await rpc(gw, { channel, method: 'hang', timeoutMs: 200 }, key)).toMatchObject({ status: 504, body: { error: { code: ErrorCode.RPC_TIMEOUT } } });
    expect(await rpc(gw, { channel, method: 'status' }, 'sk_pub_rpc_0123456789ab')).toMatchObject({ status: 403, body: { error: { code: ErrorCode.PERMISSION_DENIED, details: { scope: 'rpc' } } } });
    expect((await rpc(gw, { channel, method: 'status', timeoutMs: 10 ** 9 }, key)).status).toBe(400);
    expect((await rpc(gw, { channel, method: 'bad name' }, key)).status).toBe(400);
    await h.close();
  });
});
