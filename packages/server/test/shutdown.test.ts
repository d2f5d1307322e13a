/**
 * Graceful shutdown over real sockets: `gateway.drain()` turns readiness off, refuses new upgrades
 * with 503, closes every client with 1012, waits for them (up to the drain timeout), then stops.
 */
import { describe, expect, it, vi } from 'vitest';
import { CloseCode } from '@signalbox/protocol';
import { connectPrd, connectPrp, startGateway } from './helpers/gateway.js';
import { http, upgradeStatus } from './helpers/core-util.js';

// Starting gateways can take long on a starved CI machine; a hang still fails, just later.
vi.setConfig({ hookTimeout: 120_000 });

describe('drain', () => {
  it('readyz 503, new upgrades 503, every client closed with 1012, then the node stops', async () => {
    const gw = await startGateway();
    const a = await connectPrp(gw);
    const b = await connectPrp(gw);
    await b.request('subscribe', { channels: ['project:drain_1'] });
    const prd = await connectPrd(gw);
    const holder = await connectPrp(gw);
    // The holder stops reading: it cannot answer the close frame, so the drain stays open for it.
    holder.ws.pause();
    const token = await gw.token();
    const drained = gw.gateway.drain(20_000);
    const closes = await Promise.all([a.closed, b.closed, prd.closed]);
    expect(closes.map((c) => c.code)).toEqual([CloseCode.SERVICE_RESTART, CloseCode.SERVICE_RESTART, CloseCode.SERVICE_RESTART]);
    // While the drain waits for the holder:
    const ready = await http(gw, '/readyz', { apiKey: null });
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ ready: false, reason: 'draining' });
    const refused = await upgradeStatus(`${gw.ws}/v1/ws/prps?token=${token}`);
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBeDefined();
    expect((await http(gw, '/v1/stats')).body).toMatchObject({ draining: true, connections: 1 });
    holder.ws.resume();
    expect((await holder.closed).code).toBe(CloseCode.SERVICE_RESTART);
    await drained;
    // The node is gone: the HTTP port no longer answers.
    await expect(fetch(`${gw.http}/healthz`)).rejects.toThrow();
    // drain() is idempotent.
    await gw.gateway.drain();
  });

  it('clients that do not close within the drain timeout are cut off and the drain completes', async () => {
    const gw = await startGateway();
    const stuck = await connectPrp(gw);
    stuck.ws.pause();
    const started = Date.now();
    await gw.gateway.drain(300);
    // Bounded by the timeout, not by the stuck client (generous margin for a loaded machine).
    expect(Date.now() - started).toBeLessThan(10_000);
    stuck.ws.resume();
    // The close frame (1012) was sent before the socket was cut.
    expect((await stuck.closed).code).toBe(CloseCode.SERVICE_RESTART);
  });

  it('a drain with no clients completes at once and the node stops listening', async () => {
    const gw = await startGateway();
    await gw.gateway.drain(5000);
    await expect(upgradeStatus(`${gw.ws}/v1/ws/prps`)).rejects.toThrow();
  });
});
