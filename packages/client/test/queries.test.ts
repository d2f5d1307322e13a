/**
 * `history()` and `presence()`: against the real gateway in both dialects, and against a
 * scriptable server for what a gateway cannot be made to do on cue (drop a query's connection,
 * never answer).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_NAMESPACES } from '@signalbox/server';
import { SignalboxClient, type SignalboxClientOptions, type Subscription } from '../src/node.js';
import { FakeServer, once, type FakeConnection } from './helpers/fake-server.js';
import { startGateway, type RunningGateway } from './helpers/gateway.js';

const clients: SignalboxClient[] = [];
const closers: (() => Promise<void>)[] = [];

function makeClient(options: SignalboxClientOptions): SignalboxClient {
  const client = new SignalboxClient({ reconnectInterval: 20, maxReconnectInterval: 100, ...options });
  client.on('error', () => {});
  clients.push(client);
  return client;
}

async function gateway(opts: Parameters<typeof startGateway>[0] = {}): Promise<RunningGateway> {
  const gw = await startGateway(opts);
  closers.push(() => gw.close());
  return gw;
}

/** A client connected to a scriptable server (established), and that server's end of the connection. */
async function connectedToFake(): Promise<{ server: FakeServer; client: SignalboxClient; conn: FakeConnection }> {
  const server = await FakeServer.start();
  closers.push(() => server.close());
  const client = makeClient({ url: server.url(), token: 't' });
  const accepted = server.accept();
  const connecting = client.connect();
  const conn = await accepted;
  conn.establish();
  await connecting;
  return { server, client, conn };
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  for (const close of closers.splice(0)) await close();
});

const DIALECTS = [
  { name: 'PRP', path: '/v1/ws/prps' },
  { name: 'PRD-035', path: '/ws' },
];

describe.each(DIALECTS)('against the real gateway ($name)', ({ path }) => {
  it('history(): the last retained, a limit, and a page after a position', async () => {
    const gw = await gateway();
    for (let n = 1; n <= 5; n++) await gw.publish('project:p1', n % 2 ? 'prp.created' : 'prp.updated', { n });
    const client = makeClient({ url: gw.url(path), token: await gw.token() });
    await client.connect();

    const all = await client.history('project:p1');
    expect(all.channel).toBe('project:p1');
    expect(all.publications.map((p) => p.offset)).toEqual([1, 2, 3, 4, 5]);
    expect(all.publications.map((p) => p.type)).toEqual(['prp.created', 'prp.updated', 'prp.created', 'prp.updated', 'prp.created']);
    expect(all.publications[2]).toMatchObject({ channel: 'project:p1', data: { n: 3 }, epoch: all.position?.epoch });
    expect(all.position).toMatchObject({ offset: 5 });

    const last = await client.history('project:p1', { limit: 2 });
    expect(last.publications.map((p) => (p.data as { n: number }).n)).toEqual([4, 5]);

    const page = await client.history('project:p1', { since: { epoch: all.position!.epoch, offset: 2 }, limit: 2 });
    expect(page.publications.map((p) => p.offset)).toEqual([3, 4]);

    const none = await client.history('project:empty');
    expect(none.publications).toEqual([]);
    expect(none.position).toMatchObject({ offset: 0 });
  });

  it('history() rejects with the gateway error naming the request: not granted, unrecoverable position', async () => {
    const gw = await gateway();
    await gw.publish('project:mine', 'prp.created', { n: 1 });
    const client = makeClient({ url: gw.url(path), token: await gw.token({ channels: ['project:mine'] }) });
    await client.connect();

    const denied = await client.history('project:other').catch((e: unknown) => e);
    expect(denied).toMatchObject({ code: 'PERMISSION_DENIED', details: { channel: 'project:other' } });

    const gone = await client.history('project:mine', { since: { epoch: 'not-this-epoch', offset: 1 } }).catch((e: unknown) => e);
    expect(gone).toMatchObject({ code: 'UNRECOVERABLE_POSITION' });

    // The connection is still usable.
    expect((await client.history('project:mine')).publications).toHaveLength(1);
  });

  it('presence(): every member of a presence channel; a namespace without presence is refused', async () => {
    const gw = await gateway({ overrides: { namespaces: [...DEFAULT_NAMESPACES, { ...DEFAULT_NAMESPACES[0]!, name: 'doc', type: 'presence', presence: true }] } });
    const subscribed = async (sub: string): Promise<SignalboxClient> => {
      const c = makeClient({ url: gw.url(path), token: await gw.token({ sub }) });
      await c.connect();
      await once(c.subscribe('doc:readme') as Subscription, 'subscribed');
      return c;
    };
    const alice = await subscribed('usr_alice');
    await subscribed('usr_bob');

    const { channel, members } = await alice.presence('doc:readme');
    expect(channel).toBe('doc:readme');
    expect(members.map((m) => m.userId).sort()).toEqual(['usr_alice', 'usr_bob']);
    expect(new Set(members.map((m) => m.clientId)).size).toBe(2);

    await expect(alice.presence('project:p1')).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  });
});

describe('queries and the connection', () => {
  it('before connect() a query is refused; while connecting it waits for the connection', async () => {
    const gw = await gateway();
    await gw.publish('project:p1', 'prp.created', { n: 1 });
    const client = makeClient({ url: gw.url(), token: await gw.token() });
    await expect(client.history('project:p1')).rejects.toMatchObject({ code: 'DISCONNECTED' });
    const connected = client.connect();
    const answer = client.history('project:p1');
    await connected;
    expect((await answer).publications.map((p) => p.offset)).toEqual([1]);
  });

  it('a query whose connection drops is sent again after the reconnect, and answered', async () => {
    const { server, client, conn: conn1 } = await connectedToFake();

    const answer = client.history('project:p1', { limit: 1 });
    const sent = await conn1.next('history');
    expect(sent).toMatchObject({ action: 'history', payload: { channel: 'project:p1', limit: 1 } });
    const second = server.accept();
    await conn1.close(1012, 'restarting');

    const conn2 = await second;
    conn2.establish('conn_2');
    const resent = await conn2.next('history');
    expect(resent.id).toBe(sent.id);
    conn2.event('history', {
      channel: 'project:p1',
      publications: [{ id: 'pub_9', type: 'prp.updated', timestamp: new Date().toISOString(), channel: 'project:p1', offset: 9, epoch: 'e1', data: { n: 9 } }],
      position: { epoch: 'e1', offset: 9 },
    }, { replyTo: sent.id });
    const result = await answer;
    expect(result.publications).toEqual([expect.objectContaining({ type: 'prp.updated', offset: 9, epoch: 'e1', data: { n: 9 } })]);
    expect(result.position).toEqual({ epoch: 'e1', offset: 9 });
  });

  it('no answer within the timeout rejects with TIMEOUT; disconnect() rejects what is pending with DISCONNECTED', async () => {
    const { client, conn } = await connectedToFake();

    await expect(client.presence('doc:x', { timeout: 30 })).rejects.toMatchObject({ code: 'TIMEOUT', details: { channel: 'doc:x' } });
    const pending = client.history('project:p1');
    await conn.next('history');
    client.disconnect();
    await expect(pending).rejects.toMatchObject({ code: 'DISCONNECTED' });
  });
});
