/**
 * Heartbeats over real sockets: the `heartbeat` event, and termination of a peer that stops
 * answering WebSocket pings (a `ws` client with autoPong disabled) within two intervals, even
 * while it keeps sending frames of its own.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { TestClient, connectPrp, startGateway, type TestGateway } from './helpers/gateway.js';
import { expectPrpEnvelope, http } from './helpers/core-util.js';
import { until } from './helpers/wait.js';

// Starting gateways can take long on a starved CI machine; a hang still fails, just later.
vi.setConfig({ hookTimeout: 120_000 });

/**
 * Short enough to keep the tests quick, long enough that a healthy peer in this same process
 * still answers each ping before the next tick when the machine is starved (the whole process,
 * gateway and client, can stall for a second or more under load). Each test has its own gateway
 * so they can run side by side.
 */
const INTERVAL = 2000;

describe.concurrent('heartbeat', { timeout: 60_000 }, () => {
  const gateways: TestGateway[] = [];
  const gateway = async () => {
    const gw = await startGateway({ heartbeatIntervalMs: INTERVAL });
    gateways.push(gw);
    return gw;
  };
  afterAll(() => Promise.all(gateways.map((gw) => gw.close())));

  it('sends a heartbeat event with serverTime every interval', async () => {
    const gw = await gateway();
    const client = await connectPrp(gw);
    const beats = await client.collect((m) => m.type === 'heartbeat', 3, 30_000);
    for (const hb of beats) {
      expectPrpEnvelope(hb);
      expect(typeof hb.data.serverTime).toBe('string');
      expect(new Date(hb.data.serverTime).toISOString()).toBe(hb.data.serverTime);
    }
    expect(new Set(beats.map((b) => b.id)).size).toBe(3);
    expect(Date.parse(beats[2]!.data.serverTime)).toBeGreaterThan(Date.parse(beats[0]!.data.serverTime));
    await client.close();
  });

  it('terminates a client that stops answering pings within two intervals', async () => {
    const gw = await gateway();
    const token = await gw.token();
    const silent = new TestClient(`${gw.ws}/v1/ws/prps`, { headers: { authorization: `Bearer ${token}` }, autoPong: false });
    let pings = 0;
    silent.ws.on('ping', () => pings++);
    await silent.nextType('connection.established');
    const closed = await silent.closed;
    // Terminated (no closing handshake), after exactly one unanswered ping: tick 1 pings, tick 2 terminates.
    // (That a healthy peer is kept is shown by the other two tests: 3 heartbeats = 2 liveness checks passed.)
    expect(closed.code).toBe(1006);
    expect(pings).toBe(1);
    expect(silent.messages.filter((m) => m.type === 'heartbeat').length).toBeLessThanOrEqual(1);
    // The node has dropped it.
    await until(async () => (await http(gw, '/v1/stats')).body.connections === 0, { label: 'the node to drop the silent client', timeoutMs: 30_000 });
    expect((await http(gw, '/v1/stats')).body.connections).toBe(0);
  });

  it('a client that sends frames but never pongs is terminated: only a pong proves it is alive', async () => {
    const gw = await gateway();
    const token = await gw.token();
    const chatty = new TestClient(`${gw.ws}/v1/ws/prps`, { headers: { authorization: `Bearer ${token}` }, autoPong: false });
    await chatty.nextType('connection.established');
    let n = 0;
    chatty.ws.on('message', (raw) => {
      // Answer each heartbeat event with a ping action instead of a pong frame.
      if ((JSON.parse(raw.toString()) as { type?: string }).type === 'heartbeat') chatty.send({ id: `hb${++n}`, action: 'ping' });
    });
    // Its own traffic does not keep it: tick 1 pings, tick 2 finds no pong and cuts it.
    expect((await chatty.closed).code).toBe(1006);
    expect(n).toBeGreaterThanOrEqual(1);
  });

  it('a client that answers pings is kept, whatever it sends', async () => {
    const gw = await gateway();
    const client = await connectPrp(gw);
    // Three heartbeats: ticks 2 and 3 both found the pong to the previous ping.
    await client.collect((m) => m.type === 'heartbeat', 3, 30_000);
    expect(client.ws.readyState).toBe(WebSocket.OPEN);
    await client.close();
  });
});
