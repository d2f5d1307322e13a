/**
 * History reads: the WebSocket `history` action and GET /v1/channels/{channel}/history, in offset
 * order, with `since` and `limit`, and an explicit UNRECOVERABLE_POSITION (HTTP 409) with a reason
 * for a position the stream cannot serve.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '@signalbox/protocol';
import { TEST_API_KEY, connectPrp, startGateway, uniqueChannel, type Msg, type TestClient, type TestGateway } from './helpers/gateway.js';
import { historyHttp, namespace, namespacesWith, publishManyHttp, type Position } from './helpers/delivery-kit.js';
import { until } from './helpers/wait.js';

describe('history', () => {
  let gw: TestGateway;
  let client: TestClient;
  let channel: string;
  let epoch: string;
  let ids: string[];

  beforeAll(async () => {
    gw = await startGateway({
      namespaces: namespacesWith(namespace('short', { historySize: 5 }), namespace('brief', { historySize: 50, historyTtlMs: 250 })),
    });
    client = await connectPrp(gw);
    channel = uniqueChannel('project');
    const published = await publishManyHttp(gw, channel, 20, 1);
    epoch = published[0]!.epoch as string;
    ids = published.map((p) => p.id as string);
  });
  afterAll(async () => {
    await client.close();
    await gw.close();
  });

  const offsets = (pubs: Msg[]) => pubs.map((p) => p.offset as number);
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

  describe('WebSocket history action', () => {
    it('without since: the latest publications (default limit), ascending, with channel/offset/epoch', async () => {
      const r = await client.request('history', { channel });
      expect(r.type).toBe('history');
      expect(r.data.channel).toBe(channel);
      expect(r.data.position).toEqual({ epoch, offset: 20 });
      expect(offsets(r.data.publications)).toEqual(range(1, 20));
      expect(r.data.publications.map((p: Msg) => p.id)).toEqual(ids);
      for (const p of r.data.publications) expect(p).toMatchObject({ channel, epoch, type: 'test.event', timestamp: expect.any(String) });
    });

    it('limit without since: the last `limit`', async () => {
      const r = await client.request('history', { channel, limit: 3 });
      expect(offsets(r.data.publications)).toEqual([18, 19, 20]);
    });

    it('since: everything after it; since + limit: the first `limit` after it', async () => {
      expect(offsets((await client.request('history', { channel, since: { epoch, offset: 15 } })).data.publications)).toEqual(range(16, 20));
      expect(offsets((await client.request('history', { channel, since: { epoch, offset: 4 }, limit: 3 })).data.publications)).toEqual([5, 6, 7]);
      expect(offsets((await client.request('history', { channel, since: { epoch, offset: 0 }, limit: 2 })).data.publications)).toEqual([1, 2]);
      expect((await client.request('history', { channel, since: { epoch, offset: 20 } })).data.publications).toEqual([]);
      expect((await client.request('history', { channel, limit: 0 })).data).toMatchObject({ publications: [], position: { epoch, offset: 20 } });
    });

    it('a bad position: UNRECOVERABLE_POSITION with the reason and the current position', async () => {
      const short = uniqueChannel('short');
      const sp = await publishManyHttp(gw, short, 9, 1);
      const shortEpoch = sp[0]!.epoch as string;
      const cases: { ch: string; since: Position; reason: string }[] = [
        { ch: channel, since: { epoch: 'other-epoch', offset: 3 }, reason: 'epoch_changed' },
        { ch: channel, since: { epoch, offset: 21 }, reason: 'position_ahead' },
        { ch: short, since: { epoch: shortEpoch, offset: 2 }, reason: 'too_far_behind' },
      ];
      for (const c of cases) {
        const r = await client.request('history', { channel: c.ch, since: c.since });
        expect(r.type).toBe('error');
        expect(r.data).toMatchObject({ code: ErrorCode.UNRECOVERABLE_POSITION, details: { channel: c.ch, action: 'history', reason: c.reason } });
        expect(r.data.details.position).toEqual(c.ch === channel ? { epoch, offset: 20 } : { epoch: shortEpoch, offset: 9 });
      }
      // The oldest retained being since+1 is fine.
      const ok = await client.request('history', { channel: short, since: { epoch: shortEpoch, offset: 4 } });
      expect(offsets(ok.data.publications)).toEqual([5, 6, 7, 8, 9]);
    });

    it('a malformed request: INVALID_MESSAGE', async () => {
      for (const payload of [{ channel, limit: -1 }, { channel, limit: 1001 }, { channel, since: { epoch, offset: -1 } }, { channel, since: 'x' }, {}]) {
        const r = await client.request('history', payload);
        expect(r.type).toBe('error');
        expect(r.data.code).toBe(ErrorCode.INVALID_MESSAGE);
      }
      const r = await client.request('history', { channel: 'nope:x' });
      expect(r.data.code).toBe(ErrorCode.INVALID_CHANNEL);
    });
  });

  describe('GET /v1/channels/{channel}/history', () => {
    it('in order, PRP-shaped, with position and earliestOffset', async () => {
      const r = await historyHttp(gw, channel);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ channel, position: { epoch, offset: 20 }, earliestOffset: 1 });
      expect(offsets(r.body.publications)).toEqual(range(1, 20));
      expect(r.body.publications.map((p: Msg) => p.id)).toEqual(ids);
      for (const p of r.body.publications) expect(p).toMatchObject({ channel, epoch, type: 'test.event', data: { tag: 'm' } });
    });

    it('since_epoch/since_offset and limit', async () => {
      expect(offsets((await historyHttp(gw, channel, { since: { epoch, offset: 17 } })).body.publications)).toEqual([18, 19, 20]);
      expect(offsets((await historyHttp(gw, channel, { since: { epoch, offset: 5 }, limit: 4 })).body.publications)).toEqual([6, 7, 8, 9]);
      expect(offsets((await historyHttp(gw, channel, { limit: 2 })).body.publications)).toEqual([19, 20]);
      expect((await historyHttp(gw, channel, { since: { epoch, offset: 20 } })).body.publications).toEqual([]);
    });

    it('409 UNRECOVERABLE_POSITION with a reason for a position the stream cannot serve', async () => {
      const short = uniqueChannel('short');
      const sp = await publishManyHttp(gw, short, 8, 1);
      const shortEpoch = sp[0]!.epoch as string;
      const cases: { ch: string; since: Position; reason: string }[] = [
        { ch: channel, since: { epoch: 'other-epoch', offset: 3 }, reason: 'epoch_changed' },
        { ch: channel, since: { epoch, offset: 99 }, reason: 'position_ahead' },
        { ch: short, since: { epoch: shortEpoch, offset: 1 }, reason: 'too_far_behind' },
      ];
      for (const c of cases) {
        const r = await historyHttp(gw, c.ch, { since: c.since });
        expect(r.status).toBe(409);
        expect(r.body.error).toMatchObject({ code: ErrorCode.UNRECOVERABLE_POSITION, message: expect.stringContaining(c.reason), details: { channel: c.ch, reason: c.reason } });
        expect(r.body.error.details.position.epoch).toBe(c.ch === channel ? epoch : shortEpoch);
      }
    });

    it('409 history_expired once the namespace TTL has passed', async () => {
      const brief = uniqueChannel('brief');
      const bp = await publishManyHttp(gw, brief, 4, 1);
      const since = { epoch: bp[0]!.epoch as string, offset: 1 };
      // Wait for the TTL by watching the endpoint (until nothing is retained), not by sleeping blindly.
      await until(async () => (await historyHttp(gw, brief)).body.publications.length === 0, { label: 'history to expire', timeoutMs: 20_000 });
      const r = await historyHttp(gw, brief, { since });
      expect(r.status).toBe(409);
      expect(r.body.error).toMatchObject({ code: ErrorCode.UNRECOVERABLE_POSITION, details: { reason: 'history_expired', position: { offset: 4 } } });
      const all = await historyHttp(gw, brief);
      expect(all.body).toMatchObject({ publications: [], position: { epoch: since.epoch, offset: 4 }, earliestOffset: 5 });
    });

    it('400 for malformed parameters, 401 without the API key, 400 for an unknown channel', async () => {
      const base = `${gw.http}/v1/channels/${encodeURIComponent(channel)}/history`;
      const auth = { authorization: `Bearer ${TEST_API_KEY}` };
      for (const qs of ['since_offset=3', `since_epoch=${epoch}`, `since_epoch=${epoch}&since_offset=-1`, `since_epoch=${epoch}&since_offset=x`, 'limit=1001', 'limit=-2', 'limit=1.5']) {
        const res = await fetch(`${base}?${qs}`, { headers: auth });
        expect(res.status, qs).toBe(400);
        expect(((await res.json()) as Msg).error.code).toBe(ErrorCode.INVALID_MESSAGE);
      }
      expect((await fetch(base)).status).toBe(401);
      expect((await fetch(base, { headers: { authorization: 'Bearer wrong-key-0123456789' } })).status).toBe(401);
      const unknown = await historyHttp(gw, 'nope:x');
      expect(unknown.status).toBe(400);
      expect(unknown.body.error.code).toBe(ErrorCode.INVALID_CHANNEL);
    });
  });

  describe('a namespace without history (metrics)', () => {
    it('reads return no publications; a position behind the top is refused with reason no_history', async () => {
      const pubs = await publishManyHttp(gw, 'metrics', 3, 1);
      const top = pubs.at(-1)!;
      const since = { epoch: top.epoch as string, offset: (top.offset as number) - 2 };
      const ws = await client.request('history', { channel: 'metrics', since });
      expect(ws.type).toBe('error');
      expect(ws.data).toMatchObject({ code: ErrorCode.UNRECOVERABLE_POSITION, details: { reason: 'no_history' } });
      const http = await historyHttp(gw, 'metrics', { since });
      expect(http.status).toBe(409);
      expect(http.body.error.details.reason).toBe('no_history');
      // At the top there is nothing to miss.
      const atTop = await client.request('history', { channel: 'metrics', since: { epoch: top.epoch, offset: top.offset } });
      expect(atTop.type).toBe('history');
      expect(atTop.data.publications).toEqual([]);
    });
  });
});
