/**
 * Network failures between the client and the real gateway, through a TCP proxy the test breaks:
 * abrupt resets while a publisher keeps going (nothing lost, nothing twice, in order), and a
 * half-open connection that only the heartbeat watchdog can notice.
 */
import { afterEach, beforeEach, expect, it } from 'vitest';
import { SignalboxClient, type StateChange } from '../src/node.js';
import { once } from './helpers/fake-server.js';
import { startGateway, type RunningGateway } from './helpers/gateway.js';
import { TcpProxy } from './helpers/tcp-proxy.js';

let gw: RunningGateway;
let proxy: TcpProxy;
let client: SignalboxClient | undefined;

beforeEach(async () => {
  gw = await startGateway();
  proxy = await TcpProxy.start(gw.port);
});

afterEach(async () => {
  client?.disconnect();
  await proxy.close();
  await gw.close();
});

it('never loses or duplicates a publication across repeated connection resets', async () => {
  const TOTAL = 240;
  client = new SignalboxClient({ url: `ws://127.0.0.1:${proxy.port}/v1/ws/prps`, getToken: () => gw.token(), reconnectInterval: 10, maxReconnectInterval: 40 });
  client.on('error', () => {});
  await client.connect();
  const sub = client.subscribe('project:stream');
  await once(sub, 'subscribed');
  const seen: number[] = [];
  const all = new Promise<void>((resolve) => {
    sub.on('publication', (m) => {
      seen.push((m.data as { n: number }).n);
      if (m.offset === TOTAL) resolve();
    });
  });
  let drops = 0;
  for (let n = 1; n <= TOTAL; n++) {
    await gw.publish('project:stream', 'prp.updated', { n });
    if (n % 40 === 0) {
      proxy.drop();
      drops++;
    }
  }
  await all;
  expect(drops).toBe(6);
  expect(proxy.accepted).toBeGreaterThan(1);
  expect(seen).toEqual(Array.from({ length: TOTAL }, (_, i) => i + 1));
});

it('detects a half-open connection with the watchdog, reconnects and recovers', async () => {
  client = new SignalboxClient({
    url: `ws://127.0.0.1:${proxy.port}/v1/ws/prps`, getToken: () => gw.token(), pingInterval: 200, pongTimeout: 200, reconnectInterval: 10, maxReconnectInterval: 40,
  });
  client.on('error', () => {});
  await client.connect();
  const sub = client.subscribe('project:quiet');
  await once(sub, 'subscribed');
  const seen: number[] = [];
  sub.on('publication', (m) => { seen.push(m.offset); });

  const dead = once<StateChange>(client, '$state', (c) => c.to === 'reconnecting');
  proxy.blackhole();
  // Published while the line is dead: the gateway thinks it delivered it.
  await gw.publish('project:quiet', 'prp.updated', { n: 1 });
  expect(await dead).toMatchObject({ reason: 'heartbeat_timeout' });
  const resumed = once<{ recovered?: boolean }>(sub, 'subscribed');
  expect(await resumed).toMatchObject({ recovered: true });
  await gw.publish('project:quiet', 'prp.updated', { n: 2 });
  await once(sub, 'publication', (m: { offset: number }) => m.offset === 2);
  expect(seen).toEqual([1, 2]);
});
