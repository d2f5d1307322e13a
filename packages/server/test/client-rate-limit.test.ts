/**
 * The SDK never leaves holes (issue 17): against a real gateway with a low publish rate limit, a
 * burst of publishes on one channel is refused in part with RATE_LIMITED, and the client retries
 * every refused one with backoff, in order, never overtaken by a later publish of its channel;
 * what it gives up on rejects its promise AND is reported on `undelivered`, never dropped silently.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignalboxClient, type PublicationMessage, type ServerMessage, type UndeliveredPublish } from '../../client/src/node.js';
import { DEFAULT_NAMESPACES } from '../src/channels/namespaces.js';
import { connectPrp, startGateway, uniqueChannel, type TestGateway } from './helpers/gateway.js';
import { until } from './helpers/wait.js';

const BURST = 600;

describe('client publishes under the rate limit', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    // 150 publishes/s with a bucket of 20: a burst of 600 is mostly over the limit.
    gw = await startGateway({
      publishRate: 150, publishBurst: 20,
      namespaces: [...DEFAULT_NAMESPACES, { name: 'chat', type: 'public', historySize: 1000, historyTtlMs: 3600_000, clientPublish: true, presence: false, maxSubscribers: 0, allowBare: false, allowIds: true, appends: true }],
    });
  });
  afterAll(() => gw.close());

  async function sdk(path: '/v1/ws/prps' | '/ws', options: ConstructorParameters<typeof SignalboxClient>[0] = {}) {
    const client = new SignalboxClient({ url: `${gw.ws}${path}`, token: await gw.token(), ...options });
    const refusals: ServerMessage[] = [];
    const undelivered: UndeliveredPublish[] = [];
    const states: string[] = [];
    client.on('*', (m) => { if (m.type === 'error' && (m.data as { code?: string }).code === 'RATE_LIMITED') refusals.push(m); });
    client.on('undelivered', (u) => { undelivered.push(u); });
    client.on('$state', (s) => { states.push(s.to); });
    client.on('error', () => {});
    await client.connect();
    states.length = 0;
    return { client, refusals, undelivered, states };
  }

  async function subscriber(path: '/v1/ws/prps' | '/ws', channel: string) {
    const client = new SignalboxClient({ url: `${gw.ws}${path}`, token: await gw.token({ sub: 'usr_reader' }) });
    const got: PublicationMessage[] = [];
    await client.connect();
    const sub = client.subscribe(channel);
    sub.on('publication', (m) => { got.push(m); });
    await until(() => sub.state === 'subscribed', { label: `the reader subscribed to ${channel}` });
    return { client, got };
  }

  for (const path of ['/v1/ws/prps', '/ws'] as const) {
    it(`${path}: ${BURST} publishes in a burst all arrive, in order, none lost, none twice`, async () => {
      const channel = uniqueChannel('chat');
      const reader = await subscriber(path, channel);
      const { client, refusals, undelivered, states } = await sdk(path);
      const acks = await Promise.all(Array.from({ length: BURST }, (_, i) => client.publish(channel, { i })));
      // The limit was really hit, and every refused publish was written again.
      expect(refusals.length).toBeGreaterThan(0);
      expect(undelivered).toEqual([]);
      // Acked in call order: offsets ascend with the call.
      const offsets = acks.map((a) => a.offset);
      expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
      expect(new Set(offsets).size).toBe(BURST);
      await until(() => reader.got.length >= BURST, { label: `${BURST} publications at the reader`, timeoutMs: 20_000, detail: () => `${reader.got.length}` });
      expect(reader.got.map((m) => (m.data as { i: number }).i)).toEqual(Array.from({ length: BURST }, (_, i) => i));
      // Paced, not hammered: the gateway never closed the connection for repeated refusals (4029).
      expect(states).toEqual([]);
      client.disconnect();
      reader.client.disconnect();
    });
  }

  it('publishes made while an earlier one waits for its retry never overtake it (a stream at 3x the limit)', async () => {
    const channel = uniqueChannel('chat');
    const reader = await subscriber('/v1/ws/prps', channel);
    const { client, refusals, undelivered } = await sdk('/v1/ws/prps');
    const n = 300;
    const acks: Promise<unknown>[] = [];
    // A producer that does not wait for acks: one publish every 2 ms, as a token stream would.
    await new Promise<void>((resolve) => {
      let i = 0;
      const tick = setInterval(() => {
        acks.push(client.publish(channel, i++));
        if (i === n) { clearInterval(tick); resolve(); }
      }, 2);
    });
    await Promise.all(acks);
    expect(refusals.length).toBeGreaterThan(0);
    expect(undelivered).toEqual([]);
    await until(() => reader.got.length >= n, { label: `${n} publications`, timeoutMs: 20_000 });
    expect(reader.got.map((m) => m.data)).toEqual(Array.from({ length: n }, (_, i) => i));
    client.disconnect();
    reader.client.disconnect();
  });

  it('two channels published in a burst each keep their order', async () => {
    const a = uniqueChannel('chat');
    const b = uniqueChannel('chat');
    const ra = await subscriber('/v1/ws/prps', a);
    const rb = await subscriber('/v1/ws/prps', b);
    const { client, refusals, undelivered } = await sdk('/v1/ws/prps');
    const n = 150;
    const all: Promise<unknown>[] = [];
    for (let i = 0; i < n; i++) all.push(client.publish(a, i), client.publish(b, i));
    await Promise.all(all);
    expect(refusals.length).toBeGreaterThan(0);
    expect(undelivered).toEqual([]);
    await until(() => ra.got.length >= n && rb.got.length >= n, { label: 'both channels complete', timeoutMs: 20_000 });
    const seq = Array.from({ length: n }, (_, i) => i);
    expect(ra.got.map((m) => m.data)).toEqual(seq);
    expect(rb.got.map((m) => m.data)).toEqual(seq);
    client.disconnect();
    ra.client.disconnect();
    rb.client.disconnect();
  });

  it('what cannot be delivered rejects its promise and is reported on `undelivered`, and later publishes still go out in order', async () => {
    const channel = uniqueChannel('chat');
    const reader = await subscriber('/v1/ws/prps', channel);
    // One attempt only: a refused publish is given up at once.
    const { client, undelivered } = await sdk('/v1/ws/prps', { publishRetryAttempts: 1 });
    const results = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => client.publish(channel, i, { id: `p${i}` })));
    const rejected = results.flatMap((r, i) => (r.status === 'rejected' ? [i] : []));
    const delivered = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
    expect(rejected.length).toBeGreaterThan(0);
    // Every rejection is reported, with its channel, id, data and the error; nothing else is.
    expect(undelivered.map((u) => u.id)).toEqual(rejected.map((i) => `p${i}`));
    for (const u of undelivered) {
      expect(u.channel).toBe(channel);
      expect(u.error.code).toBe('RATE_LIMITED');
      expect(u.error.message).toMatch(/given up after 1 attempt/);
      expect(u.data).toBe(Number(u.id.slice(1)));
    }
    for (const r of results) if (r.status === 'rejected') expect((r.reason as { code: string }).code).toBe('RATE_LIMITED');
    await until(() => reader.got.length >= delivered.length, { label: 'the delivered ones', timeoutMs: 10_000 });
    expect(reader.got.map((m) => m.data)).toEqual(delivered);

    // A non-retryable refusal: rejected and reported at once, never retried.
    const denied = await sdk('/v1/ws/prps', { token: await gw.token({ sub: 'usr_ro', publish: [] }) });
    await expect(denied.client.publish(channel, 'nope', { id: 'ro-1' })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    expect(denied.undelivered).toMatchObject([{ channel, id: 'ro-1', data: 'nope', error: { code: 'PERMISSION_DENIED' } }]);

    // A publish queued while disconnected waits; disconnect() then rejects and reports it.
    denied.client.disconnect();
    const queued = denied.client.publish(channel, 'offline', { id: 'off-1' });
    expect(denied.client.pendingPublishes).toBe(1);
    denied.client.disconnect();
    await expect(queued).rejects.toMatchObject({ code: 'DISCONNECTED' });
    expect(denied.undelivered.map((u) => [u.id, u.error.code])).toEqual([['ro-1', 'PERMISSION_DENIED'], ['off-1', 'DISCONNECTED']]);
    client.disconnect();
    reader.client.disconnect();
  });

  it('publish(channel, data, {appendTo}) appends, in both dialects; readers see `appendTo`, history `through`', async () => {
    for (const path of ['/v1/ws/prps', '/ws'] as const) {
      const channel = uniqueChannel('chat');
      const reader = await subscriber(path, channel);
      const { client } = await sdk(path);
      await client.publish(channel, { text: 'Hel' }, { id: 'root' });
      await client.publish(channel, { text: 'lo' }, { id: 'a1', appendTo: 'root' });
      const last = await client.publish(channel, { text: ', world' }, { id: 'a2', appendTo: 'root' });
      await until(() => reader.got.length >= 3, { label: 'three publications' });
      expect(reader.got.map((m) => [m.id, m.appendTo])).toEqual([['root', undefined], ['a1', 'root'], ['a2', 'root']]);
      const h = await client.history(channel);
      expect(h.publications).toHaveLength(1);
      expect(h.publications[0]).toMatchObject({ id: 'root', data: { text: 'Hello, world' }, through: last.offset });
      // An append to nothing is refused, not retried, and reported.
      await expect(client.publish(channel, { text: '!' }, { appendTo: 'missing' })).rejects.toMatchObject({ code: 'APPEND_TARGET_NOT_FOUND' });
      client.disconnect();
      reader.client.disconnect();
    }
  });

  it('the raw protocol confirms the limit is per connection: the same burst without the SDK loses publications', async () => {
    // The control: what the SDK fixes. A raw client writing 100 publishes at once gets refusals it would have to handle itself.
    const channel = uniqueChannel('chat');
    const raw = await connectPrp(gw);
    for (let i = 0; i < 100; i++) raw.send({ id: `r${i}`, action: 'publish', payload: { channel, data: i } });
    const answers = await raw.collect((m) => typeof m.replyTo === 'string' && m.replyTo.startsWith('r'), 100);
    expect(answers.filter((m) => m.type === 'error' && m.data.code === 'RATE_LIMITED').length).toBeGreaterThan(0);
    await raw.close();
  });
});
