/**
 * Token expiry during a connection, over real sockets: `token_expired`, then close 4002 after the
 * grace period, unless an in-band `refresh` with a new token for the same subject arrives first.
 *
 * JWT `exp` has one-second resolution and these tests wait on the gateway's real timers, so token
 * lifetimes are short; on a loaded machine a short token can expire before it is even verified,
 * in which case the connect is retried with a longer one (see connectExpiring).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CloseCode, ErrorCode } from '@signalbox/protocol';
import { TestClient, connectPrp, startGateway, type TestGateway } from './helpers/gateway.js';
import { claims, expectPrpEnvelope, nowSeconds, signHmac } from './helpers/core-util.js';

// Starting gateways can take long on a starved CI machine; a hang still fails, just later.
vi.setConfig({ hookTimeout: 120_000 });

/** Connects with a token that expires soon (2 s or a little more); returns the client and the token's `exp`. */
async function connectExpiring(gw: TestGateway): Promise<{ client: TestClient; exp: number }> {
  for (let seconds = 2; seconds <= 20; seconds += 3) {
    const exp = nowSeconds() + seconds;
    const client = new TestClient(`${gw.ws}/v1/ws/prps`, { headers: { authorization: `Bearer ${await signHmac(claims({ exp }))}` } });
    const first = await client.next(() => true, 30_000);
    if (first.type === 'connection.established') return { client, exp };
    // Too slow for this lifetime: the token expired before it was verified. Not what is under test here.
    expect(first.data.code).toBe(ErrorCode.TOKEN_EXPIRED);
    await client.closed;
  }
  throw new Error('could not connect with a short-lived token');
}

/** Message types received, leaving out heartbeats (the gateway's heartbeat timer runs from its start). */
function typesBesidesHeartbeats(client: TestClient): string[] {
  return client.messages.map((m) => m.type as string).filter((t) => t !== 'heartbeat');
}

// The tests wait on timers: run them side by side.
describe.concurrent('token expiry', { timeout: 60_000 }, () => {
  describe('without refresh', () => {
    let gw: TestGateway;
    beforeAll(async () => {
      gw = await startGateway({ tokenExpiryGraceMs: 300 });
    });
    afterAll(() => gw.close());

    it('sends token_expired, then closes with 4002 after the grace period', async () => {
      const { client, exp } = await connectExpiring(gw);
      const expired = await client.nextType('token_expired', 30_000);
      expectPrpEnvelope(expired);
      expect(expired.data).toEqual({ expiredAt: new Date(exp * 1000).toISOString(), graceMs: 300 });
      const closed = await client.closed;
      expect(closed.code).toBe(CloseCode.TOKEN_EXPIRED);
      expect(typesBesidesHeartbeats(client)).toEqual(['connection.established', 'token_expired']);
    });
  });

  describe('with refresh', () => {
    const GRACE = 3000;
    let gw: TestGateway;
    beforeAll(async () => {
      gw = await startGateway({ tokenExpiryGraceMs: GRACE });
    });
    afterAll(() => gw.close());

    it('a refresh within the grace period keeps the connection; the new token then expires on its own schedule', async () => {
      const { client } = await connectExpiring(gw);
      const channel = 'project:exp_1';
      await client.request('subscribe', { channels: [channel] });
      const first = await client.nextType('token_expired', 30_000);
      // The new token expires after the first grace period would have ended: if that grace timer
      // were still armed it would fire first (timers run in due order) and close the socket.
      const graceEnd = Date.parse(first.timestamp) + GRACE;
      const newExp = Math.ceil(graceEnd / 1000) + 1;
      const refreshed = await client.request('refresh', { token: await signHmac(claims({ exp: newExp })) }, 30_000);
      expect(refreshed).toMatchObject({ type: 'token.refreshed', data: { expiresAt: new Date(newExp * 1000).toISOString() } });
      const second = await client.next((m) => m.type === 'token_expired' && m.id !== first.id, 30_000);
      expect(second.data.expiredAt).toBe(new Date(newExp * 1000).toISOString());
      expect(typesBesidesHeartbeats(client)).toEqual(['connection.established', 'subscription.confirmed', 'token_expired', 'token.refreshed', 'token_expired']);
      // Same connection, subscription intact.
      expect((await client.request('ping')).type).toBe('pong');
      await client.close();
    });

    it('a refresh with an already expired token does not save the connection', async () => {
      const { client } = await connectExpiring(gw);
      await client.nextType('token_expired', 30_000);
      const from = client.messages.length;
      client.send({ id: 'late_1', action: 'refresh', payload: { token: await signHmac(claims({ iat: nowSeconds() - 100, exp: nowSeconds() - 1 })) } });
      const err = await client.next((m) => m.replyTo === 'late_1', 30_000, from);
      expect(err.data).toMatchObject({ code: ErrorCode.TOKEN_EXPIRED, details: { requestId: 'late_1', action: 'refresh' } });
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
