/**
 * A refused upgrade against the real gateway (issue 13, defect 7, SDK half): a refusal no retry can
 * fix (403 from an Origin rule that requires one, 404 from a wrong path) stops the client with a
 * clear error instead of retrying forever; a refusal that may pass (503: the node is full) is retried.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SignalboxClient, type SignalboxError, type StateChange } from '../src/node.js';
import { until } from '../../server/test/helpers/wait.js';
import { startGateway, type RunningGateway } from './helpers/gateway.js';

const gateways: RunningGateway[] = [];
const clients: SignalboxClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  await Promise.all(gateways.splice(0).map((g) => g.close()));
});

function client(url: string | string[], token: string): { c: SignalboxClient; errors: SignalboxError[]; states: StateChange[] } {
  const c = new SignalboxClient({ url, token, reconnectInterval: 20, maxReconnectInterval: 50 });
  const errors: SignalboxError[] = [];
  const states: StateChange[] = [];
  c.on('error', (e) => { errors.push(e); });
  c.on('$state', (s) => { states.push(s); });
  clients.push(c);
  return { c, errors, states };
}

describe('a refused WebSocket upgrade', () => {
  it('403 (Origin required, none sent): the client stops with upgrade_refused and says why', async () => {
    const gw = await startGateway({ overrides: { allowedOrigins: ['https://app.example'], requireOrigin: true } });
    gateways.push(gw);
    const { c, errors, states } = client(gw.url(), await gw.token());
    await expect(c.connect()).rejects.toMatchObject({ code: 'CLOSED' });
    expect(c.state).toBe('closed');
    expect(states.at(-1)).toMatchObject({ to: 'closed', reason: 'upgrade_refused' });
    expect(errors.map((e) => [e.code, e.details.status])).toEqual([['UPGRADE_REFUSED', 403]]);
  });

  it('404 on every URL stops; a 404 on one URL of several moves on to the next', async () => {
    const gw = await startGateway();
    gateways.push(gw);
    const token = await gw.token();
    const bad = gw.url('/nope');
    const both = client([bad, gw.url()], token);
    await both.c.connect();
    expect(both.c.state).toBe('connected');
    expect(both.errors.map((e) => e.details.status)).toEqual([404]);
    const only = client(bad, token);
    await expect(only.c.connect()).rejects.toMatchObject({ code: 'CLOSED' });
    expect(only.states.at(-1)).toMatchObject({ reason: 'upgrade_refused' });
  });

  it('503 (node full) is retried until a slot frees', async () => {
    const gw = await startGateway({ overrides: { maxConnections: 1 } });
    gateways.push(gw);
    const first = client(gw.url(), await gw.token());
    await first.c.connect();
    const second = client(gw.url(), await gw.token());
    const connected = second.c.connect();
    await until(() => second.errors.filter((e) => e.code === 'UPGRADE_REFUSED' && e.details.status === 503).length >= 2, { label: 'two 503 refusals', timeoutMs: 10_000 });
    expect(second.c.state).not.toBe('closed');
    first.c.disconnect();
    await connected;
    expect(second.c.state).toBe('connected');
  });
});
