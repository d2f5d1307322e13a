/**
 * Token expiry during a connection, over real sockets: `token_expired`, then close 4002 after the
 * grace period, unless an in-band `refresh` with a new token for the same subject arrives first.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode, ErrorCode } from '@signalbox/protocol';
import { connectPrp, startGateway, type TestGateway } from './helpers/gateway.js';
import { claims, expectPrpEnvelope, nowSeconds, signHmac } from './helpers/core-util.js';

/** A token that expires 1-2 s from now (JWT `exp` has one-second resolution). */
function shortLived(extra: Record<string, unknown> = {}, seconds = 2): Promise<string> {
  return signHmac(claims({ exp: nowSeconds() + seconds, ...extra }));
}

// Tests wait on real timers (JWT `exp` has one-second resolution): run them concurrently.
describe.concurrent('token expiry', () => {
  describe('without refresh', () => {
    let gw: TestGateway;
    beforeAll(async () => {
      gw = await startGateway({ tokenExpiryGraceMs: 300 });
    });
    afterAll(() => gw.close());

    it('sends token_expired, then closes with 4002 after the grace period', async () => {
      const exp = nowSeconds() + 2;
      const client = await connectPrp(gw, { token: await signHmac(claims({ exp })) });
      const expired = await client.nextType('token_expired', 10_000);
      expectPrpEnvelope(expired);
      expect(expired.data).toEqual({ expiredAt: new Date(exp * 1000).toISOString(), graceMs: 300 });
      const closed = await client.closed;
      expect(closed.code).toBe(CloseCode.TOKEN_EXPIRED);
      expect(client.messages.map((m) => m.type)).toEqual(['connection.established', 'token_expired']);
    });

    it('a refresh with an already expired token does not save the connection', async () => {
      const client = await connectPrp(gw, { token: await shortLived() });
      await client.nextType('token_expired', 10_000);
      const from = client.messages.length;
      client.send({ id: 'late_1', action: 'refresh', payload: { token: await signHmac(claims({ iat: nowSeconds() - 100, exp: nowSeconds() - 1 })) } });
      const err = await client.next((m) => m.replyTo === 'late_1', 5000, from);
      expect(err.data).toMatchObject({ code: ErrorCode.TOKEN_EXPIRED, details: { requestId: 'late_1', action: 'refresh' } });
      expect((await client.closed).code).toBe(CloseCode.TOKEN_EXPIRED);
    });
  });

  describe('with refresh', () => {
    let gw: TestGateway;
    beforeAll(async () => {
      gw = await startGateway({ tokenExpiryGraceMs: 1000 });
    });
    afterAll(() => gw.close());

    it('a refresh within the grace period keeps the connection; the new token then expires on its own schedule', async () => {
      const client = await connectPrp(gw, { token: await shortLived() });
      const channel = 'project:exp_1';
      await client.request('subscribe', { channels: [channel] });
      const first = await client.nextType('token_expired', 10_000);
      // The second token lives 2-3 s: its expiry comes well after the first grace period (1 s) would have ended.
      const refreshed = await client.request('refresh', { token: await shortLived({}, 3) });
      expect(refreshed.type).toBe('token.refreshed');
      const second = await client.next((m) => m.type === 'token_expired' && m.id !== first.id, 10_000);
      expect(Date.parse(second.data.expiredAt)).toBeGreaterThan(Date.parse(first.data.expiredAt));
      // Still the same connection, subscription intact, until the second grace period ends.
      const types = client.messages.map((m) => m.type);
      expect(types).toEqual(['connection.established', 'subscription.confirmed', 'token_expired', 'token.refreshed', 'token_expired']);
      expect((await client.closed).code).toBe(CloseCode.TOKEN_EXPIRED);
    });

    it('a token without exp never expires during the connection', async () => {
      const client = await connectPrp(gw, { token: await signHmac({ sub: 'usr_1', channels: ['*'] }) });
      const refreshed = await client.request('refresh', { token: await signHmac({ sub: 'usr_1', channels: ['*'] }) });
      expect(refreshed).toMatchObject({ type: 'token.refreshed', data: { expiresAt: null } });
      await client.close();
    });
  });
});
