/**
 * End to end against the real gateway (`@signalbox/server`, memory broker): both dialects, both
 * token transports, publish acks and idempotent resends, recovery across a disconnect and across a
 * node restart (1012), refused tokens, in-band token refresh before `exp`, MessagePack, RPC.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mintToken } from '@signalbox/server';
import { Bytes } from '@signalbox/protocol';
import { SignalboxClient, type PublicationMessage, type SignalboxClientOptions, type StateChange, type Subscription } from '../src/node.js';
import type { PrpEventData } from '../src/prp.js';
import { msgpack } from '../src/msgpack.js';
import { once } from './helpers/fake-server.js';
import { SECRET, startGateway, survivingBroker, type RunningGateway } from './helpers/gateway.js';

let gw: RunningGateway;
const clients: SignalboxClient<PrpEventData>[] = [];

function makeClient(options: SignalboxClientOptions = {}): SignalboxClient<PrpEventData> {
  const client = new SignalboxClient<PrpEventData>({ url: gw.url(), reconnectInterval: 20, maxReconnectInterval: 100, ...options });
  client.on('error', () => {});
  clients.push(client);
  return client;
}

/** Collects a subscription's publications; resolves when `count` have arrived. */
function collect(sub: Subscription, count: number): { offsets: number[]; done: Promise<PublicationMessage[]> } {
  const got: PublicationMessage[] = [];
  const offsets: number[] = [];
  const done = new Promise<PublicationMessage[]>((resolve) => {
    sub.on('publication', (m) => {
      got.push(m);
      offsets.push(m.offset);
      if (got.length === count) resolve(got);
    });
  });
  return { offsets, done };
}

beforeEach(async () => {
  gw = await startGateway();
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  await gw.close();
});

describe('against the real gateway', () => {
  it('connects (Bearer header), subscribes, publishes and receives, typed', async () => {
    const client = makeClient({ token: await gw.token() });
    await client.connect();
    // `agent` accepts client publishes in the default namespace table.
    const sub = client.subscribe('agent:agent_001');
    await once(sub, 'subscribed');
    const progress: number[] = [];
    client.on('agent.progress', (m) => { progress.push(m.data.progress); });
    const got = collect(sub, 1);
    const ack = await client.publish('agent:agent_001', { agentId: 'agent_001', prpId: 'prp_1', progress: 45 }, { type: 'agent.progress' });
    expect(ack).toMatchObject({ channel: 'agent:agent_001', offset: 1, duplicate: false });
    const [pub] = await got.done;
    expect(pub).toMatchObject({ type: 'agent.progress', channel: 'agent:agent_001', offset: 1, epoch: ack.epoch });
    expect(progress).toEqual([45]);
  });

  it('connects with the browser way (subprotocol bearer.<jwt>)', async () => {
    const client = makeClient({ token: await gw.token(), tokenTransport: 'subprotocol' });
    await client.connect();
    expect(client.state).toBe('connected');
  });

  it('a refused token closes with 4001 and stops', async () => {
    const client = makeClient({ token: 'not-a-jwt' });
    const codes: string[] = [];
    client.on('error', (e) => { codes.push(e.code); });
    await expect(client.connect()).rejects.toMatchObject({ code: 'CLOSED' });
    expect(client.state).toBe('closed');
    expect(codes).toContain('AUTH_FAILED');
  });

  it('recovers what was published while disconnected: each once, in order', async () => {
    const client = makeClient({ token: await gw.token() });
    await client.connect();
    const sub = client.subscribe('project:proj_2');
    await once(sub, 'subscribed');
    const all = collect(sub, 9);
    const data: number[] = [];
    sub.on('publication', (m) => { data.push((m.data as { i: number }).i); });
    for (let i = 1; i <= 3; i++) await gw.publish('project:proj_2', 'prp.updated', { i });
    await once(sub, 'publication', (m: PublicationMessage) => m.offset === 3);
    client.disconnect();
    for (let i = 4; i <= 8; i++) await gw.publish('project:proj_2', 'prp.updated', { i });
    const resumed = once<{ recovered?: boolean; missed?: number }>(sub, 'subscribed');
    await client.connect();
    expect(await resumed).toMatchObject({ recovered: true, missed: 5 });
    await gw.publish('project:proj_2', 'prp.updated', { i: 9 });
    await all.done;
    expect(data).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(all.offsets).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('survives a node restart (1012): reconnects and recovers from the shared broker', async () => {
    await gw.close();
    const broker = survivingBroker();
    gw = await startGateway({ broker });
    const port = gw.port;
    const client = makeClient({ getToken: () => gw.token() });
    await client.connect();
    const sub = client.subscribe('agent:agent_001');
    await once(sub, 'subscribed');
    await gw.publish('agent:agent_001', 'agent.progress', { progress: 10 });
    const seen: number[] = [];
    sub.on('publication', (m) => { seen.push((m.data as { progress: number }).progress); });
    await once(sub, 'publication');

    const lost = once<StateChange>(client, '$state', (c) => c.to === 'reconnecting' && c.code === 1012);
    await gw.close();
    await lost;
    // Published while no node is up: straight into the broker, as another node would.
    for (const progress of [20, 30]) {
      await broker.publish({ channel: 'agent:agent_001', type: 'agent.progress', data: { progress }, history: { size: 1000, ttlMs: 3_600_000 }, idempotencyWindowMs: 60_000 });
    }
    gw = await startGateway({ broker, port });
    const resumed = once<{ recovered?: boolean; resubscribed: boolean }>(sub, 'subscribed', (e) => e.resubscribed);
    expect(await resumed).toMatchObject({ recovered: true });
    await gw.publish('agent:agent_001', 'agent.progress', { progress: 40 });
    await once(sub, 'publication', (m: PublicationMessage) => (m.data as { progress: number }).progress === 40);
    expect(seen).toEqual([10, 20, 30, 40]);
  });

  it('a publish retried with the same id is stored once', async () => {
    const client = makeClient({ token: await gw.token() });
    await client.connect();
    const a = await client.publish('agent:a1', { n: 1 }, { id: 'idem-1' });
    const b = await client.publish('agent:a1', { n: 1 }, { id: 'idem-1' });
    expect(b).toMatchObject({ offset: a.offset, duplicate: true });
  });

  it('a refused publish rejects with the gateway error', async () => {
    const client = makeClient({ token: await gw.token() });
    await client.connect();
    // `project` does not accept client publishes in the default namespace table.
    await expect(client.publish('project:p1', { n: 1 })).rejects.toMatchObject({ name: 'SignalboxError', code: 'PERMISSION_DENIED' });
    await expect(client.publish('nonexistent:x', 1)).rejects.toMatchObject({ code: 'INVALID_CHANNEL' });
  });

  it('refreshes the token in-band before exp; the connection stays up', async () => {
    let minted = 0;
    const client = makeClient({ getToken: () => { minted++; return gw.token({ ttlSeconds: 4 }); }, refreshMargin: 2000 });
    const refreshed = once(client, 'token.refreshed');
    const states: string[] = [];
    client.on('$state', (c) => { states.push(c.to); });
    await client.connect();
    await refreshed;
    expect(minted).toBe(2);
    expect(client.state).toBe('connected');
    expect(states).toEqual(['connecting', 'connected']);
  });

  it('speaks the PRD-035 dialect on /ws: subscribe, publish, receive, recover', async () => {
    const client = makeClient({ url: gw.url('/ws'), token: await gw.token() });
    await client.connect();
    const sub = client.subscribe('agent:123');
    await once(sub, 'subscribed');
    const got = collect(sub, 1);
    const ack = await client.publish('agent:123', { action: 'respond', content: 'Hello' }, { type: 'agent.reply' });
    expect(ack.offset).toBe(1);
    expect((await got.done)[0]).toMatchObject({ type: 'agent.reply', channel: 'agent:123', offset: 1, data: { content: 'Hello' } });
    client.disconnect();
    await gw.publish('agent:123', 'agent.progress', { progress: 50 });
    const resumed = once<{ recovered?: boolean }>(sub, 'subscribed');
    const next = once<PublicationMessage>(sub, 'publication');
    await client.connect();
    expect(await resumed).toMatchObject({ recovered: true });
    expect(await next).toMatchObject({ type: 'agent.progress', offset: 2 });
  });

  it('receives MessagePack frames when asked', async () => {
    const client = makeClient({ token: await gw.token(), format: msgpack });
    await client.connect();
    const sub = client.subscribe('project:bin');
    await once(sub, 'subscribed');
    const next = once<PublicationMessage>(sub, 'publication');
    await gw.publish('project:bin', 'prp.created', { name: 'binary' });
    expect(await next).toMatchObject({ type: 'prp.created', data: { name: 'binary' } });
  });

  it('every publication says who published it, live (each dialect and encoding) and in history', async () => {
    const urls = [{ url: gw.url() }, { url: gw.url('/ws') }, { url: gw.url(), format: msgpack }, { url: gw.url('/ws'), format: msgpack }] as const;
    const publisher = makeClient({ token: await gw.token({ sub: 'usr_pub' }) });
    await publisher.connect();
    for (const [i, opts] of urls.entries()) {
      const channel = `agent:who_${i}`;
      const reader = makeClient({ token: await gw.token({ sub: 'usr_reader' }), ...opts });
      await reader.connect();
      const sub = reader.subscribe(channel);
      await once(sub, 'subscribed');
      const got = collect(sub, 2);
      await publisher.publish(channel, { n: 1 }, { type: 'chat.message' });
      await gw.publish(channel, 'agent.progress', { n: 2 });
      const live = (await got.done).map((m) => m.publisher);
      const expected = [{ via: 'ws', sub: 'usr_pub', client: publisher.connectionId }, { via: 'http', key: 'default' }];
      expect(live, JSON.stringify(opts)).toEqual(expected);
      expect((await reader.history(channel)).publications.map((m) => m.publisher)).toEqual(expected);
    }
  });

  it('RPC: a debugger (PRD-035, MessagePack) calls dom.query on a page (PRP) that registers again after a reconnect; refusals are typed', async () => {
    const page = makeClient({ token: await gw.token({ sub: 'usr_page', channels: ['session:s1'] }) });
    const seen: unknown[] = [];
    const handling = page.handle('session:s1', {
      'dom.query': async ({ selector }: { selector: string }, ctx) => {
        seen.push(ctx.caller);
        if (selector === '#missing') throw Object.assign(new Error(`nothing matches ${selector}`), { code: 'NOT_FOUND' });
        return { texts: ['Checkout'], selector };
      },
    });
    await page.connect();
    await handling.ready;
    const debuggerClient = makeClient({ url: gw.url('/ws'), format: msgpack, token: await gw.token({ sub: 'usr_support', channels: ['session:s1'] }) });
    await debuggerClient.connect();

    expect(await debuggerClient.call('session:s1', 'dom.query', { selector: 'h1' }, { timeout: 5000 })).toEqual({ texts: ['Checkout'], selector: 'h1' });
    expect(seen).toEqual([{ via: 'ws', sub: 'usr_support', client: debuggerClient.connectionId }]);
    await expect(debuggerClient.call('session:s1', 'dom.query', { selector: '#missing' })).rejects.toMatchObject({
      code: 'RPC_FAILED', message: 'nothing matches #missing', details: { handlerCode: 'NOT_FOUND' },
    });
    await expect(debuggerClient.call('session:s1', 'eval', {})).rejects.toMatchObject({ code: 'RPC_NO_HANDLER' });

    // The page reconnects: it registers again by itself.
    page.disconnect();
    // Gone (the gateway routed it to the closing connection) or no handler (it had seen the close).
    const during = await debuggerClient.call('session:s1', 'dom.query', { selector: 'h1' }).catch((e: { code: string }) => e.code);
    expect(['RPC_HANDLER_GONE', 'RPC_NO_HANDLER']).toContain(during);
    const registered = once(page, 'rpc.handling');
    await page.connect();
    await registered;
    expect(await debuggerClient.call('session:s1', 'dom.query', { selector: 'h2' })).toMatchObject({ selector: 'h2' });

    // Without a call grant, or a handle grant: PERMISSION_DENIED.
    const reader = makeClient({ token: await mintToken(SECRET, { sub: 'usr_viewer', channels: ['session:s1'], ttlSeconds: 3600 }) });
    await reader.connect();
    await expect(reader.call('session:s1', 'dom.query', { selector: 'h1' })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    await expect(reader.handle('session:s2', { 'dom.query': () => null }).ready).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  });

  it('bytes: a MessagePack client publishes them as bytes; a JSON client refuses them with BYTES_NEED_MSGPACK, naming where, and stays usable', async () => {
    const channel = 'agent:bytes';
    const token = await gw.token({ channels: [channel] });
    const binReader = makeClient({ token, format: msgpack });
    const jsonReader = makeClient({ token });
    await Promise.all([binReader.connect(), jsonReader.connect()]);
    const [binSub, jsonSub] = [binReader.subscribe(channel), jsonReader.subscribe(channel)];
    await Promise.all([once(binSub, 'subscribed'), once(jsonSub, 'subscribed')]);
    const binGot = collect(binSub, 3);
    const jsonGot = collect(jsonSub, 3);

    const bytes = new Uint8Array([0, 1, 2, 250, 255]);
    const binWriter = makeClient({ token, format: msgpack });
    await binWriter.connect();
    await binWriter.publish(channel, { name: 'blob', update: bytes });

    const jsonWriter = makeClient({ token });
    await jsonWriter.connect();
    const undelivered: unknown[] = [];
    jsonWriter.on('undelivered', (e) => { undelivered.push(e); });
    await expect(jsonWriter.publish(channel, { parts: [{ update: bytes }] })).rejects.toMatchObject({ code: 'BYTES_NEED_MSGPACK', details: { channel, path: 'data.parts[0].update' } });
    await expect(jsonWriter.publish(channel, Buffer.from('hi'))).rejects.toMatchObject({ code: 'BYTES_NEED_MSGPACK', details: { path: 'data' } });
    await expect(jsonWriter.call(channel, 'm', { b: bytes.buffer })).rejects.toMatchObject({ code: 'BYTES_NEED_MSGPACK', details: { path: 'params.b' } });
    expect(undelivered).toHaveLength(2);
    // Nothing of the refused ones was sent; the connection is fine and its next publish goes through.
    // Bytes that render themselves in JSON (the protocol's Bytes: {"$base64"}) are the caller's choice: sent so.
    await jsonWriter.publish(channel, { name: 'framed', jpeg: new Bytes(bytes.buffer, 0, 2) });
    await jsonWriter.publish(channel, { name: 'after' });

    const [bin, jsonPubs] = await Promise.all([binGot.done, jsonGot.done]);
    expect(bin.map((m) => (m.data as { name: string }).name)).toEqual(['blob', 'framed', 'after']);
    expect(jsonPubs.map((m) => (m.data as { name: string }).name)).toEqual(['blob', 'framed', 'after']);
    expect((jsonPubs[1]!.data as { jpeg: unknown }).jpeg).toEqual({ $base64: Buffer.from([0, 1]).toString('base64') });
    const got = (bin[0]!.data as { update: Uint8Array }).update;
    expect(got).toBeInstanceOf(Uint8Array);
    expect([...got]).toEqual([...bytes]);
    expect((jsonPubs[0]!.data as { update: unknown }).update).toEqual({ $base64: Buffer.from(bytes).toString('base64') });
  });
});
