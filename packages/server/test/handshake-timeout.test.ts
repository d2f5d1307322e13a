/**
 * SIGNALBOX_HANDSHAKE_TIMEOUT holds for a request that never finishes: a partial upgrade request
 * trickled in slowly is cut within about the timeout, not after Node's 30 s check interval.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers/gateway.js';

describe('handshake timeout', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ handshakeTimeoutMs: 1000 });
  });
  afterAll(() => gw.close());

  it('a partial upgrade request that keeps trickling is closed within a few timeouts', { timeout: 20_000 }, async () => {
    const socket = connect(gw.port, '127.0.0.1');
    socket.on('error', () => {});
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const started = Date.now();
    socket.write('GET /v1/ws/prps HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    // One header byte every 200 ms: the request is never complete.
    const trickle = setInterval(() => socket.writable && socket.write('X'), 200);
    const closedAfter = await new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - started)));
    clearInterval(trickle);
    // Before: ~30 s (Node's connectionsCheckingInterval). Now: the 1 s timeout plus one check (250 ms), with slack for a busy machine.
    expect(closedAfter).toBeLessThan(8000);
    expect(closedAfter).toBeGreaterThanOrEqual(900);
  });
});
