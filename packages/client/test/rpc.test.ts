/**
 * RPC (issue 14), the SDK half: `client.call` and `client.handle` against a scriptable server on real
 * sockets, in both dialects (PRP and PRD-035) and both encodings (JSON, MessagePack), following
 * docs/protocol.md's wire format; then the timers (the local safety net, what a call waiting for the
 * connection sends, no timer left behind) with fake timers and an in-memory socket.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SignalboxClient, SignalboxError, type RpcContext, type SignalboxClientOptions, type StateChange } from '../src/node.js';
import { SignalboxClient as BrowserClient } from '../src/index.js';
import { msgpack } from '../src/msgpack.js';
import { FakeServer, once, type FakeConnection } from './helpers/fake-server.js';
import { FakeSocket, FakeWebSocket } from './helpers/fake-socket.js';

type Frame = Record<string, unknown>;

/** The server side of one dialect: what the client's requests look like, and how the gateway answers. */
interface Wire {
  name: string;
  path: string;
  binary: boolean;
  establish(conn: FakeConnection): void;
  /** A request's fields, wherever the dialect puts them (`payload`; `channel` + `data`). */
  body(frame: Frame): Frame;
  handling(conn: FakeConnection, replyTo: unknown, channel: string, methods: string[] | null): void;
  result(conn: FakeConnection, replyTo: unknown, channel: string, method: string, result: unknown): void;
  error(conn: FakeConnection, replyTo: unknown, code: string, message: string, details: Frame): void;
  request(conn: FakeConnection, data: Frame): void;
  confirm(conn: FakeConnection, replyTo: unknown, channel: string): void;
  publication(conn: FakeConnection, channel: string, offset: number, type: string, data: unknown): void;
}

const prp = (binary: boolean): Wire => ({
  name: `PRP${binary ? ' + MessagePack' : ''}`,
  path: '/v1/ws/prps',
  binary,
  establish: (conn) => conn.establish(),
  body: (frame) => frame.payload as Frame,
  handling: (conn, replyTo, channel, methods) => conn.event('rpc.handling', { channel, methods }, { replyTo }),
  result: (conn, replyTo, channel, method, result) => conn.event('rpc.result', { channel, method, result }, { replyTo }),
  error: (conn, replyTo, code, message, details) => conn.event('error', { code, message, details }, { replyTo }),
  request: (conn, data) => conn.event('rpc.request', data, { channel: data.channel }),
  confirm: (conn, replyTo, channel) => conn.event('subscription.confirmed', { subscribedChannels: [channel], channels: [{ channel, position: { epoch: 'e', offset: 0 } }] }, { replyTo }),
  publication: (conn, channel, offset, type, data) => conn.publication(channel, 'e', offset, type, data),
});

const prd = (binary: boolean): Wire => ({
  name: `PRD-035${binary ? ' + MessagePack' : ''}`,
  path: '/ws',
  binary,
  establish: (conn) => conn.send({ type: 'ack', id: 's0', timestamp: '', data: { action: 'connect', connectionId: 'conn_1', serverVersion: '1.0.0', features: [] } }),
  body: (frame) => ({ channel: frame.channel, ...(frame.data as Frame) }),
  handling: (conn, replyTo, channel, methods) => conn.send({ type: 'ack', id: 's1', timestamp: '', replyTo, channel, data: { action: 'rpc.handle', methods } }),
  result: (conn, replyTo, channel, method, result) => conn.send({ type: 'ack', id: 's2', timestamp: '', replyTo, channel, data: { action: 'rpc.call', method, result } }),
  error: (conn, replyTo, code, message, details) => conn.send({ type: 'error', id: 's3', timestamp: '', replyTo, data: { code, message, details } }),
  request: (conn, data) => conn.send({ type: 'message', id: 'msg_r', timestamp: '', channel: data.channel, event: 'rpc.request', data }),
  confirm: (conn, replyTo, channel) => conn.send({ type: 'ack', id: 's4', timestamp: '', replyTo, channel, data: { action: 'subscribe', subscribedChannels: [channel], channels: [{ channel, position: { epoch: 'e', offset: 0 } }] } }),
  publication: (conn, channel, offset, type, data) => conn.send({ type: 'message', id: `p${offset}`, timestamp: '', channel, event: type, offset, epoch: 'e', data }),
});

const caller = { via: 'ws', sub: 'usr_support', client: 'conn_debugger' };
const rpcRequest = (callId: string, method: string, params: unknown = {}, channel = 'session:s1'): Frame =>
  ({ callId, channel, method, params, caller, timeoutMs: 4987 });

let server: FakeServer;
const clients: SignalboxClient[] = [];

beforeEach(async () => {
  server = await FakeServer.start();
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  await server.close();
});

describe.each([prp(false), prd(false), prp(true), prd(true)])('$name', (wire) => {
  function makeClient(options: SignalboxClientOptions = {}): SignalboxClient {
    const client = new SignalboxClient({
      url: server.url(wire.path), token: 'tok', reconnectInterval: 10, maxReconnectInterval: 20, ...(wire.binary ? { format: msgpack } : {}), ...options,
    });
    client.on('error', () => {});
    clients.push(client);
    return client;
  }

  async function accept(): Promise<FakeConnection> {
    const conn = await server.accept();
    conn.binary = wire.binary;
    wire.establish(conn);
    return conn;
  }

  async function connected(client: SignalboxClient): Promise<FakeConnection> {
    const done = client.connect();
    const conn = await accept();
    await done;
    return conn;
  }

  /** Drops the connection (a node restart) and completes the next handshake. */
  async function reconnect(client: SignalboxClient, conn: FakeConnection): Promise<FakeConnection> {
    const back = once<StateChange>(client, '$state', (c) => c.to === 'connected');
    void conn.close(1012, 'restarting');
    const conn2 = await accept();
    await back;
    return conn2;
  }

  describe('call', () => {
    it('sends channel, method, params and timeoutMs, and resolves with the result', async () => {
      const client = makeClient();
      const conn = await connected(client);
      const result = client.call<{ count: number }>('session:s1', 'dom.query', { selector: 'h1' }, { timeout: 5000 });
      const frame = await conn.next('rpc.call');
      expect(wire.body(frame)).toEqual({ channel: 'session:s1', method: 'dom.query', params: { selector: 'h1' }, timeoutMs: 5000 });
      wire.result(conn, frame.id, 'session:s1', 'dom.query', { count: 2 });
      expect(await result).toEqual({ count: 2 });
    });

    it('matches answers to calls by request id: two in flight, answered in reverse order, an unrelated error ignored', async () => {
      const client = makeClient();
      const conn = await connected(client);
      const first = client.call('session:s1', 'dom.query', { selector: 'h1' });
      const second = client.call('session:s1', 'dom.query', { selector: 'h2' });
      const f1 = await conn.next('rpc.call');
      const f2 = await conn.next('rpc.call');
      expect(f1.id).not.toBe(f2.id);
      // An error answering some other request is not a call's.
      wire.error(conn, 'other-request', 'INVALID_MESSAGE', 'bad frame', { requestId: 'other-request' });
      wire.error(conn, f2.id, 'RPC_FAILED', 'no h2', { requestId: f2.id, handlerCode: 'NOT_FOUND' });
      await expect(second).rejects.toMatchObject({ code: 'RPC_FAILED', details: { handlerCode: 'NOT_FOUND' } });
      wire.result(conn, f1.id, 'session:s1', 'dom.query', ['Checkout']);
      expect(await first).toEqual(['Checkout']);
    });

    it('leaves params out when there are none, and sends the default timeout (10000)', async () => {
      const client = makeClient();
      const conn = await connected(client);
      const result = client.call('session:s1', 'ping');
      const frame = await conn.next('rpc.call');
      expect(wire.body(frame)).toEqual({ channel: 'session:s1', method: 'ping', timeoutMs: 10_000 });
      wire.result(conn, frame.id, 'session:s1', 'ping', null);
      expect(await result).toBeNull();
    });

    it.each([
      ['RPC_NO_HANDLER', 'No handler for dom.query on session:s1', {}],
      ['RPC_TIMEOUT', 'No answer within 5000 ms', {}],
      ['RPC_FAILED', 'no such element', { handlerCode: 'NOT_FOUND' }],
      ['RPC_HANDLER_GONE', 'The handler disconnected', {}],
      ['PERMISSION_DENIED', 'No call grant for session:s1', {}],
      ['RATE_LIMITED', 'Too many calls in flight', {}],
    ])('rejects with the gateway\'s %s, its message and details', async (code, message, extra) => {
      const client = makeClient();
      const conn = await connected(client);
      const result = client.call('session:s1', 'dom.query', { selector: '#x' });
      const frame = await conn.next('rpc.call');
      const details = { requestId: frame.id, action: 'rpc.call', channel: 'session:s1', method: 'dom.query', ...extra };
      wire.error(conn, frame.id, code, message, details);
      const err = await result.then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(SignalboxError);
      expect(err).toMatchObject({ code, message, details, replyTo: frame.id });
    });

    it('a call in flight when the connection drops is rejected DISCONNECTED and never resent', async () => {
      const client = makeClient();
      const conn = await connected(client);
      const lost = client.call('session:s1', 'eval', { code: 'location.reload()' });
      await conn.next('rpc.call');
      const rejected = expect(lost).rejects.toMatchObject({ code: 'DISCONNECTED', details: { channel: 'session:s1', method: 'eval' } });
      const conn2 = await reconnect(client, conn);
      await rejected;
      // Frames arrive in order: had the lost call been resent on the new connection, it would come first.
      const next = client.call('session:s1', 'dom.query');
      const frame = await conn2.next('rpc.call');
      expect(wire.body(frame)).toMatchObject({ method: 'dom.query' });
      wire.result(conn2, frame.id, 'session:s1', 'dom.query', 'ok');
      expect(await next).toBe('ok');
    });

    it('a call made while reconnecting waits for the connection and is sent once', async () => {
      const client = makeClient();
      const conn = await connected(client);
      const reconnecting = once<StateChange>(client, '$state', (c) => c.to === 'reconnecting');
      void conn.close(1012);
      await reconnecting;
      const result = client.call('session:s1', 'dom.query', { selector: 'h1' }, { timeout: 5000 });
      const conn2 = await accept();
      const frame = await conn2.next('rpc.call');
      const body = wire.body(frame);
      expect(body).toMatchObject({ channel: 'session:s1', method: 'dom.query', params: { selector: 'h1' } });
      expect(body.timeoutMs).toBeGreaterThan(0);
      expect(body.timeoutMs).toBeLessThanOrEqual(5000);
      wire.result(conn2, frame.id, 'session:s1', 'dom.query', 1);
      expect(await result).toBe(1);
    });

    it('rejects at once while disconnected (DISCONNECTED) or closed (CLOSED)', async () => {
      const client = makeClient();
      await expect(client.call('session:s1', 'x')).rejects.toMatchObject({ code: 'DISCONNECTED' });
      const done = client.connect();
      const conn = await server.accept();
      void conn.close(1000, 'bye');
      await expect(done).rejects.toMatchObject({ code: 'CLOSED' });
      await expect(client.call('session:s1', 'x')).rejects.toMatchObject({ code: 'CLOSED' });
    });
  });

  describe('handle', () => {
    it('registers the listed methods and answers each request: result, thrown error (its code, or HANDLER_ERROR), unknown method', async () => {
      const client = makeClient();
      const conn = await connected(client);
      const contexts: RpcContext[] = [];
      const reg = client.handle('session:s1', {
        'dom.query': async (params: { selector: string }, ctx) => {
          contexts.push(ctx);
          return { selector: params.selector, count: 3 };
        },
        eval: () => {
          throw Object.assign(new Error('no such element'), { code: 'NOT_FOUND' });
        },
        crash: async () => {
          throw new TypeError('boom');
        },
        quiet: () => undefined,
        // The gateway refuses a reply whose code is not 1-64 characters [A-Za-z0-9_.:-], letter first.
        odd: () => {
          throw Object.assign(new Error('odd code'), { code: 'not a code!' });
        },
      });
      const handle = await conn.next('rpc.handle');
      expect(wire.body(handle)).toEqual({ channel: 'session:s1', methods: ['dom.query', 'eval', 'crash', 'quiet', 'odd'] });
      wire.handling(conn, handle.id, 'session:s1', ['dom.query', 'eval', 'crash', 'quiet', 'odd']);
      await reg.ready;
      expect(reg.active).toBe(true);

      wire.request(conn, rpcRequest('rpc_1', 'dom.query', { selector: 'h1' }));
      expect(wire.body(await conn.next('rpc.reply'))).toMatchObject({ callId: 'rpc_1', result: { selector: 'h1', count: 3 } });
      expect(contexts).toEqual([{ callId: 'rpc_1', channel: 'session:s1', method: 'dom.query', caller, timeoutMs: 4987 }]);

      wire.request(conn, rpcRequest('rpc_2', 'eval'));
      const failed = wire.body(await conn.next('rpc.reply'));
      expect(failed).toMatchObject({ callId: 'rpc_2', error: { code: 'NOT_FOUND', message: 'no such element' } });
      expect(failed).not.toHaveProperty('result');

      wire.request(conn, rpcRequest('rpc_3', 'crash'));
      expect(wire.body(await conn.next('rpc.reply'))).toMatchObject({ callId: 'rpc_3', error: { code: 'HANDLER_ERROR', message: 'boom' } });

      wire.request(conn, rpcRequest('rpc_4', 'quiet'));
      expect(wire.body(await conn.next('rpc.reply'))).toMatchObject({ callId: 'rpc_4', result: null });

      wire.request(conn, rpcRequest('rpc_6', 'odd'));
      expect(wire.body(await conn.next('rpc.reply'))).toMatchObject({ callId: 'rpc_6', error: { code: 'HANDLER_ERROR', message: 'odd code' } });

      wire.request(conn, rpcRequest('rpc_5', 'toString'));
      expect(wire.body(await conn.next('rpc.reply'))).toMatchObject({ callId: 'rpc_5', error: { code: 'UNKNOWN_METHOD' } });
    });

    it('registers every method with allMethods (methods omitted on the wire)', async () => {
      const client = makeClient();
      const conn = await connected(client);
      client.handle('session:s1', { 'dom.query': () => 1 }, { allMethods: true });
      const handle = wire.body(await conn.next('rpc.handle'));
      expect(handle).toEqual({ channel: 'session:s1' });
    });

    it('a publication that borrows the type rpc.request (it has an offset) never runs a method', async () => {
      const client = makeClient();
      const conn = await connected(client);
      const ran: string[] = [];
      client.handle('session:s1', { eval: (p: { code: string }) => { ran.push(p.code); return 'done'; } });
      wire.handling(conn, (await conn.next('rpc.handle')).id, 'session:s1', ['eval']);
      client.subscribe('session:s1');
      wire.confirm(conn, (await conn.next('subscribe')).id, 'session:s1');
      await once(client.getSubscription('session:s1')!, 'subscribed');
      wire.publication(conn, 'session:s1', 1, 'rpc.request', rpcRequest('rpc_forged', 'eval', { code: 'forged' }));
      wire.request(conn, rpcRequest('rpc_real', 'eval', { code: 'real' }));
      expect(wire.body(await conn.next('rpc.reply'))).toMatchObject({ callId: 'rpc_real', result: 'done' });
      expect(ran).toEqual(['real']);
    });

    it('re-registers after every reconnect, before resubscribing; answers of the old connection are not sent on the new one', async () => {
      const client = makeClient();
      const conn = await connected(client);
      let release!: (v: string) => void;
      let started!: () => void;
      const running = new Promise<void>((resolve) => { started = resolve; });
      client.handle('session:s1', {
        slow: () => new Promise<string>((resolve) => { release = resolve; started(); }),
        fast: () => 'fast',
      });
      wire.handling(conn, (await conn.next('rpc.handle')).id, 'session:s1', ['slow', 'fast']);
      client.subscribe('session:s1');
      await conn.next('subscribe');
      wire.request(conn, rpcRequest('rpc_old', 'slow'));
      await running;

      let current = conn;
      for (let round = 0; round < 2; round++) {
        const next = await reconnect(client, current);
        // The first frame on the new connection is the registration, then the resubscription.
        const first = await next.inbox.next();
        expect(first.action ?? first.type).toBe('rpc.handle');
        expect(wire.body(first)).toEqual({ channel: 'session:s1', methods: ['slow', 'fast'] });
        const second = await next.inbox.next();
        expect(second.action ?? second.type).toBe('subscribe');
        wire.handling(next, first.id, 'session:s1', ['slow', 'fast']);
        current = next;
      }
      release('late');
      wire.request(current, rpcRequest('rpc_new', 'fast'));
      // Had the old connection's answer been sent here, it would come first.
      expect(wire.body(await current.next('rpc.reply'))).toMatchObject({ callId: 'rpc_new', result: 'fast' });
    });

    it('a refused registration rejects ready, emits error, and is not sent again', async () => {
      const client = makeClient();
      const errors: SignalboxError[] = [];
      client.on('error', (e) => { errors.push(e); });
      const conn = await connected(client);
      const reg = client.handle('session:s1', { 'dom.query': () => 1 });
      const handle = await conn.next('rpc.handle');
      wire.error(conn, handle.id, 'PERMISSION_DENIED', 'No handle grant for session:s1', { requestId: handle.id, action: 'rpc.handle', channel: 'session:s1' });
      await expect(reg.ready).rejects.toMatchObject({ code: 'PERMISSION_DENIED', details: { channel: 'session:s1' } });
      expect(reg.active).toBe(false);
      expect(errors.map((e) => e.code)).toEqual(['PERMISSION_DENIED']);

      const conn2 = await reconnect(client, conn);
      // Not retried: the first frame on the new connection is the next call, not a registration.
      void client.call('session:s1', 'x').catch(() => {});
      const first = await conn2.inbox.next();
      expect(first.action ?? first.type).toBe('rpc.call');
    });

    it('a transient refusal (UNAVAILABLE) is reported and the registration sent again with backoff; ready waits for it', async () => {
      const client = makeClient();
      const errors: string[] = [];
      client.on('error', (e) => { errors.push(e.code); });
      const conn = await connected(client);
      const reg = client.handle('session:s1', { 'dom.query': () => 1 });
      let settled = false;
      void reg.ready.then(() => { settled = true; });
      const first = await conn.next('rpc.handle');
      wire.error(conn, first.id, 'UNAVAILABLE', 'The broker is unreachable', { requestId: first.id, action: 'rpc.handle', channel: 'session:s1' });
      const again = await conn.next('rpc.handle');
      expect(again.id).not.toBe(first.id);
      expect(wire.body(again)).toEqual({ channel: 'session:s1', methods: ['dom.query'] });
      expect(errors).toEqual(['UNAVAILABLE']);
      expect(settled).toBe(false);
      expect(reg.active).toBe(true);
      wire.handling(conn, again.id, 'session:s1', ['dom.query']);
      await reg.ready;
      wire.request(conn, rpcRequest('rpc_1', 'dom.query'));
      expect(wire.body(await conn.next('rpc.reply'))).toMatchObject({ callId: 'rpc_1', result: 1 });
    });

    it('stop() sends rpc.unhandle; the channel is not registered again, and its requests are answered UNKNOWN_METHOD', async () => {
      const client = makeClient();
      const conn = await connected(client);
      const reg = client.handle('session:s1', { 'dom.query': () => 1 });
      wire.handling(conn, (await conn.next('rpc.handle')).id, 'session:s1', ['dom.query']);
      reg.stop();
      expect(reg.active).toBe(false);
      expect(wire.body(await conn.next('rpc.unhandle'))).toEqual({ channel: 'session:s1' });
      wire.request(conn, rpcRequest('rpc_1', 'dom.query'));
      expect(wire.body(await conn.next('rpc.reply'))).toMatchObject({ callId: 'rpc_1', error: { code: 'UNKNOWN_METHOD' } });

      const conn2 = await reconnect(client, conn);
      void client.call('session:s1', 'x').catch(() => {});
      const first = await conn2.inbox.next();
      expect(first.action ?? first.type).toBe('rpc.call');
    });

    it('a handle() made before connecting is registered once connected', async () => {
      const client = makeClient();
      const reg = client.handle('session:s1', { 'dom.query': () => 1 });
      const conn = await connected(client);
      const handle = await conn.next('rpc.handle');
      expect(wire.body(handle)).toEqual({ channel: 'session:s1', methods: ['dom.query'] });
      wire.handling(conn, handle.id, 'session:s1', ['dom.query']);
      await expect(reg.ready).resolves.toBeUndefined();
    });
  });
});

describe('timers (fake timers, in-memory socket)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeSocket.reset();
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  function makeFake(): BrowserClient {
    const client = new BrowserClient({ url: 'ws://gw.test/v1/ws/prps', token: 't0', WebSocket: FakeWebSocket, pingInterval: 0 });
    client.on('error', () => {});
    return client;
  }

  it('a gateway that never answers: TIMEOUT a little after the call\'s timeout, not before; no timer left', async () => {
    const client = makeFake();
    void client.connect();
    FakeSocket.last.establish();
    const before = vi.getTimerCount();
    const result = client.call('session:s1', 'dom.query', undefined, { timeout: 5000 });
    let outcome: unknown;
    result.catch((e: unknown) => { outcome = e; });
    expect(FakeSocket.last.frames('rpc.call')[0]).toMatchObject({ payload: { timeoutMs: 5000 } });
    expect(vi.getTimerCount()).toBe(before + 1);
    await vi.advanceTimersByTimeAsync(5000);
    // The gateway's RPC_TIMEOUT is due now; the local net waits a little longer for it.
    expect(outcome).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1000);
    expect(outcome).toMatchObject({ code: 'TIMEOUT', details: { channel: 'session:s1', method: 'dom.query' } });
    expect(vi.getTimerCount()).toBe(before);
    client.disconnect();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('an answered call clears its timer; a late answer after a local TIMEOUT is ignored', async () => {
    const client = makeFake();
    void client.connect();
    FakeSocket.last.establish();
    const before = vi.getTimerCount();
    const answered = client.call('session:s1', 'a', 1, { timeout: 1000 });
    const id = FakeSocket.last.frames('rpc.call')[0]!.id;
    FakeSocket.last.receive({ id: 'r', type: 'rpc.result', timestamp: '', replyTo: id, data: { channel: 'session:s1', method: 'a', result: 'yes' } });
    await expect(answered).resolves.toBe('yes');
    expect(vi.getTimerCount()).toBe(before);

    const timedOut = client.call('session:s1', 'b', 1, { timeout: 1000 });
    const id2 = FakeSocket.last.frames('rpc.call')[1]!.id;
    const rejected = expect(timedOut).rejects.toMatchObject({ code: 'TIMEOUT' });
    await vi.advanceTimersByTimeAsync(2000);
    await rejected;
    FakeSocket.last.receive({ id: 'r2', type: 'rpc.result', timestamp: '', replyTo: id2, data: { channel: 'session:s1', method: 'b', result: 'late' } });
    expect(vi.getTimerCount()).toBe(before);
    client.disconnect();
  });

  it('a call that waited for the connection is sent with what is left of its timeout; one whose time ran out first is never sent', async () => {
    const client = makeFake();
    void client.connect();
    const waited = client.call('session:s1', 'a', undefined, { timeout: 5000 });
    const expired = client.call('session:s1', 'b', undefined, { timeout: 1000 });
    let outcome: unknown;
    expired.catch((e: unknown) => { outcome = e; });
    // Past b's timeout, before the local net would reject it: connected now, b has no time left to send.
    await vi.advanceTimersByTimeAsync(1500);
    expect(outcome).toBeUndefined();
    FakeSocket.last.establish();
    await expect(expired).rejects.toMatchObject({ code: 'TIMEOUT', details: { method: 'b' } });
    const frames = FakeSocket.last.frames('rpc.call');
    expect(frames.map((f) => (f.payload as Frame).method)).toEqual(['a']);
    expect(frames[0]).toMatchObject({ payload: { timeoutMs: 3500 } });
    FakeSocket.last.receive({ id: 'r', type: 'rpc.result', timestamp: '', replyTo: frames[0]!.id, data: { result: 7 } });
    await expect(waited).resolves.toBe(7);
    client.disconnect();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a transient refusal\'s retry timer goes with the connection', async () => {
    const client = makeFake();
    void client.connect();
    FakeSocket.last.establish();
    client.handle('session:s1', { a: () => 1 });
    const before = vi.getTimerCount();
    const id = FakeSocket.last.frames('rpc.handle')[0]!.id;
    FakeSocket.last.receive({ id: 'e', type: 'error', timestamp: '', replyTo: id, data: { code: 'RATE_LIMITED', message: 'slow down', details: {} } });
    expect(vi.getTimerCount()).toBe(before + 1);
    FakeSocket.last.serverClose(1012);
    expect(vi.getTimerCount()).toBe(1); // the reconnect's backoff only
    // Fire that backoff only: advancing a fixed time could also fire the new socket's connect timeout.
    const old = FakeSocket.last;
    await vi.runOnlyPendingTimersAsync();
    expect(FakeSocket.last).not.toBe(old);
    FakeSocket.last.establish();
    // Registered again on the new connection, once.
    expect(FakeSocket.last.frames('rpc.handle')).toHaveLength(1);
    client.disconnect();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('disconnect() rejects pending calls (DISCONNECTED) and a pending registration\'s ready, and leaves no timer', async () => {
    const client = makeFake();
    void client.connect();
    const queued = client.call('session:s1', 'a');
    const reg = client.handle('session:s1', { a: () => 1 });
    client.disconnect();
    await expect(queued).rejects.toMatchObject({ code: 'DISCONNECTED' });
    await expect(reg.ready).rejects.toMatchObject({ code: 'DISCONNECTED' });
    expect(vi.getTimerCount()).toBe(0);
  });
});
