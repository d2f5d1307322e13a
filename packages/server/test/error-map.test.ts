/**
 * One error map for every channel operation, over both APIs: a broker or presence store that
 * cannot be reached is UNAVAILABLE (WebSocket) / 503 (HTTP); one that fails unexpectedly is
 * INTERNAL_ERROR / 500 with nothing of the cause in the reply. Each WebSocket error names the
 * request it answers, and the connection and the node's readiness survive.
 */
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ErrorCode } from '@signalbox/protocol';
import {
  GatewayError, MemoryBroker, MemoryPresenceStore, RedisBroker, RedisPresenceStore, toGatewayError, BrokerUnavailableError,
  type HistoryQuery, type PublishRequest,
} from '../src/index.js';
import { connectPrp, startGateway, type TestGateway } from './helpers/gateway.js';
import { http } from './helpers/core-util.js';
import { namespace, namespacesWith } from './helpers/delivery-kit.js';

vi.setConfig({ hookTimeout: 120_000 });

const ROOM = namespace('room', { type: 'presence', presence: true, clientPublish: true });

async function deadPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

type Op = 'publish' | 'history' | 'presence';
const OPS: Op[] = ['publish', 'history', 'presence'];

function httpRequest(op: Op, channel: string): { path: string; body?: unknown } {
  const c = encodeURIComponent(channel);
  if (op === 'publish') return { path: '/v1/publish', body: { channel, type: 'note', data: { n: 1 } } };
  return { path: `/v1/channels/${c}/${op}` };
}

function wsPayload(op: Op, channel: string): Record<string, unknown> {
  return op === 'publish' ? { channel, type: 'note', data: { n: 1 } } : { channel };
}

/** Runs every operation over both APIs against `gw` and checks the code, status and that the cause stays private. */
function matrix(get: () => TestGateway, channel: string, code: ErrorCode, status: number, secret?: string): void {
  for (const op of OPS) {
    it(`WebSocket ${op} -> ${code}, naming the request; the connection goes on`, async () => {
      const client = await connectPrp(get());
      const from = client.messages.length;
      const id = `req_${op}`;
      client.send({ id, action: op, payload: wsPayload(op, channel) });
      const err = await client.next((m) => m.replyTo === id, 5000, from);
      expect(err.type).toBe('error');
      expect(err.data).toMatchObject({ code, details: { requestId: id, action: op, channel } });
      if (secret) expect(JSON.stringify(err)).not.toContain(secret);
      expect((await client.request('ping')).type).toBe('pong');
      await client.close();
    });
    it(`HTTP ${op} -> ${status} ${code}`, async () => {
      const req = httpRequest(op, channel);
      const res = await http(get(), req.path, req.body === undefined ? {} : { body: req.body });
      expect(res.status).toBe(status);
      expect(res.body).toMatchObject({ error: { code } });
      if (secret) expect(res.text).not.toContain(secret);
    });
  }
}

describe('broker and presence store unreachable', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    const port = await deadPort();
    const url = `redis://127.0.0.1:${port}`;
    const broker = new RedisBroker({ url, startTimeoutMs: 200, reconnectBaseMs: 50, reconnectMaxMs: 200, commandTimeoutMs: 500 });
    const presence = new RedisPresenceStore({ url, commandTimeoutMs: 300 });
    gw = await startGateway({ namespaces: namespacesWith(ROOM) }, { broker, presence });
  });
  afterAll(() => gw.close());

  matrix(() => gw, 'room:r1', ErrorCode.UNAVAILABLE, 503);
});

describe('broker and presence store failing unexpectedly (a bug, not an outage)', () => {
  let gw: TestGateway;
  const BROKEN = 'room:broken';
  const SECRET = 'boom-7f3a';
  beforeAll(async () => {
    class BrokenBroker extends MemoryBroker {
      override publish(req: PublishRequest): ReturnType<MemoryBroker['publish']> {
        return req.channel === BROKEN && req.publisher?.via !== 'gateway' ? Promise.reject(new Error(SECRET)) : super.publish(req);
      }
      override history(channel: string, query: HistoryQuery): ReturnType<MemoryBroker['history']> {
        return channel === BROKEN ? Promise.reject(new Error(SECRET)) : super.history(channel, query);
      }
    }
    class BrokenPresence extends MemoryPresenceStore {
      override list(channel: string): ReturnType<MemoryPresenceStore['list']> {
        return channel === BROKEN ? Promise.reject(new TypeError(SECRET)) : super.list(channel);
      }
    }
    gw = await startGateway({ namespaces: namespacesWith(ROOM) }, { broker: new BrokenBroker(), presence: new BrokenPresence() });
  });
  afterAll(() => gw.close());

  matrix(() => gw, BROKEN, ErrorCode.INTERNAL_ERROR, 500, SECRET);

  it('the node stays ready, and the same operations on another channel succeed', async () => {
    expect((await http(gw, '/readyz', { apiKey: null })).status).toBe(200);
    for (const op of OPS) {
      const req = httpRequest(op, 'room:fine');
      const res = await http(gw, req.path, req.body === undefined ? {} : { body: req.body });
      expect(res.status, op).toBe(200);
    }
  });
});

describe('toGatewayError', () => {
  it('maps an outage, a bug and a refusal, and keeps the cause out of the message', () => {
    const outage = toGatewayError(new BrokerUnavailableError('connection refused'), { channel: 'a' });
    expect([outage.code, outage.httpStatus, outage.details]).toEqual([ErrorCode.UNAVAILABLE, 503, { channel: 'a' }]);
    const bug = toGatewayError(new RangeError('secret detail'));
    expect([bug.code, bug.httpStatus, bug.message, bug.unexpected]).toEqual([ErrorCode.INTERNAL_ERROR, 500, 'Internal error', true]);
    expect((bug.cause as Error).message).toBe('secret detail');
    const refusal = new GatewayError(ErrorCode.UNRECOVERABLE_POSITION, 'gone', { reason: 'epoch_changed' });
    const named = toGatewayError(refusal, { channel: 'b', reason: 'overwritten?' });
    expect([named.httpStatus, named.details]).toEqual([409, { channel: 'b', reason: 'epoch_changed' }]);
    expect(toGatewayError(refusal)).toBe(refusal);
  });
});
