/**
 * The y-websocket-compatible endpoint `/yjs/{doc}` (src/yjs/endpoint.ts), over real sockets: the
 * unmodified `y-websocket` WebsocketProvider from npm and @signalbox/yjs's SignalboxProvider edit
 * one document, see each other's awareness, with the same tokens and grants.
 */
import WebSocket from 'ws';
import * as Y from 'yjs';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { Awareness } from 'y-protocols/awareness';
import { WebsocketProvider } from 'y-websocket';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SignalboxClient, type WebSocketConstructor } from '../../client/src/node.js';
import { msgpack } from '../../client/src/msgpack.js';
import { SignalboxProvider } from '../../yjs/src/index.js';
import { connectPrp, startGateway, uniqueChannel, type TestGateway } from './helpers/gateway.js';
import { deleteKeys, describeWithRedis, probeRedis, uniquePrefix } from './helpers/redis.js';
import { until } from './helpers/wait.js';

interface SbEditor {
  kind: 'signalbox';
  client: SignalboxClient;
  doc: Y.Doc;
  text: Y.Text;
  provider: SignalboxProvider;
  awareness: Awareness;
}

interface YwsEditor {
  kind: 'y-websocket';
  doc: Y.Doc;
  text: Y.Text;
  provider: WebsocketProvider;
  awareness: Awareness;
  /** Close events the provider saw (code, reason). */
  closes: { code: number; reason: string }[];
  /** Cuts the current socket without a close handshake (a lost network); y-websocket reconnects. */
  cut(): void;
}

type Editor = SbEditor | YwsEditor;

/** A `ws` WebSocket class whose current socket a test can cut. */
function cuttable(): { ctor: unknown; cut(): void } {
  let current: WebSocket | null = null;
  class Cuttable extends WebSocket {
    constructor(address: string, protocols?: string | string[], options?: WebSocket.ClientOptions) {
      super(address, protocols, options);
      current = this; // eslint-disable-line @typescript-eslint/no-this-alias
    }
  }
  return { ctor: Cuttable, cut: () => current?.terminate() };
}

function docId(channel: string): string {
  return channel.slice('doc:'.length);
}

function ready(e: Editor): boolean {
  return e.kind === 'signalbox' ? e.provider.synced && e.provider.pendingUpdates === 0 : e.provider.synced;
}

async function converged(editors: Editor[], timeoutMs = 15_000): Promise<void> {
  await until(() => editors.every(ready), { label: 'every editor synced', timeoutMs });
  await until(() => editors.every((e) => e.text.toString() === editors[0]!.text.toString()), {
    label: 'identical documents', timeoutMs, detail: () => editors.map((e) => `${e.kind}: ${JSON.stringify(e.text.toString().slice(0, 80))}`).join(' | '),
  });
}

function closeAll(open: Editor[]): void {
  for (const e of open.splice(0)) {
    e.provider.destroy();
    if (e.kind === 'signalbox') e.client.disconnect();
    e.awareness.destroy();
    e.doc.destroy();
  }
}

/** Editors of both kinds on a gateway; what they open is closed by `open`'s owner. */
function kit(gwOf: () => TestGateway, open: Editor[]) {
  function grants(channel: string, o: { publish?: boolean } = {}): { channels: string[]; publish: string[] } {
    return { channels: [channel], publish: o.publish === false ? [] : [channel] };
  }

  async function signalbox(channel: string, o: { publish?: boolean; at?: TestGateway } = {}): Promise<SbEditor> {
    const gw = o.at ?? gwOf();
    const token = await gw.token(grants(channel, o));
    const client = new SignalboxClient({ url: `${gw.ws}/v1/ws/prps`, token, format: msgpack, WebSocket: WebSocket as unknown as WebSocketConstructor, reconnectInterval: 20, maxReconnectInterval: 100 });
    const doc = new Y.Doc();
    const awareness = new Awareness(doc);
    const provider = new SignalboxProvider(client, channel, doc, { awareness });
    const e: SbEditor = { kind: 'signalbox', client, doc, text: doc.getText('t'), provider, awareness };
    open.push(e);
    await client.connect();
    await provider.whenSynced();
    return e;
  }

  /** The unmodified y-websocket provider: serverUrl `ws://host:port/yjs`, room name the document id. */
  async function ywebsocket(channel: string, o: { publish?: boolean; token?: string; wait?: boolean; at?: TestGateway } = {}): Promise<YwsEditor> {
    const gw = o.at ?? gwOf();
    const token = o.token ?? (await gw.token(grants(channel, o)));
    const sockets = cuttable();
    const doc = new Y.Doc();
    const awareness = new Awareness(doc);
    const provider = new WebsocketProvider(`${gw.ws}/yjs`, docId(channel), doc, {
      // Node: `ws` as the WebSocket; no BroadcastChannel, so editors in this process only meet through the gateway.
      WebSocketPolyfill: sockets.ctor as unknown as typeof globalThis.WebSocket, params: { token }, awareness, disableBc: true, maxBackoffTime: 100,
    });
    const e: YwsEditor = { kind: 'y-websocket', doc, text: doc.getText('t'), provider, awareness, closes: [], cut: sockets.cut };
    provider.on('connection-close', (ev) => { if (ev) e.closes.push({ code: ev.code, reason: ev.reason }); });
    open.push(e);
    if (o.wait !== false) await until(() => provider.synced, { label: 'the y-websocket provider synced' });
    return e;
  }

  return { signalbox, ywebsocket, grants };
}

describe('y-websocket endpoint /yjs/{doc} (memory broker)', () => {
  let gw: TestGateway;
  const open: Editor[] = [];
  beforeAll(async () => {
    gw = await startGateway({ maxMessageBytes: 256 * 1024 });
  });
  afterEach(() => closeAll(open));
  afterAll(() => gw.close());

  const { signalbox, ywebsocket, grants } = kit(() => gw, open);

  it('y-websocket and SignalboxProvider converge on one document: both directions, concurrent edits, joiners from history and from a snapshot', async () => {
    const channel = uniqueChannel('doc');
    const sb = await signalbox(channel);
    const yw = await ywebsocket(channel);
    sb.text.insert(0, 'hello world');
    await until(() => yw.text.toString() === 'hello world', { label: 'y-websocket sees the SignalboxProvider edit' });
    yw.text.insert(11, '!');
    await until(() => sb.text.toString() === 'hello world!', { label: 'SignalboxProvider sees the y-websocket edit' });

    // Concurrent: each edits while away from the other, then both come back.
    sb.client.disconnect();
    yw.provider.disconnect();
    sb.text.insert(5, ',');
    yw.text.insert(6, 'big ');
    await sb.client.connect();
    yw.provider.connect();
    await converged([sb, yw]);
    expect(sb.text.toString()).toBe('hello, big world!');
    expect(yw.text.toString()).toBe('hello, big world!');

    // Concurrent while both are connected: bursts from both sides at once.
    for (let i = 0; i < 50; i++) {
      sb.text.insert(0, 's');
      yw.text.insert(yw.text.length, 'y');
    }
    await converged([sb, yw]);
    expect(sb.text.toString()).toBe(`${'s'.repeat(50)}hello, big world!${'y'.repeat(50)}`);

    // A y-websocket joiner reads the stream (tail only), and again after the gateway compacted it.
    const late = await ywebsocket(channel);
    expect(late.text.toString()).toBe(sb.text.toString());
    const out = await gw.gateway.yjs.compact(channel);
    expect(out.compacted).toBe(true);
    const afterCompaction = await ywebsocket(channel);
    expect(afterCompaction.text.toString()).toBe(sb.text.toString());
    // And a SignalboxProvider joiner reads what y-websocket wrote.
    const sbLate = await signalbox(channel);
    expect(sbLate.text.toString()).toBe(sb.text.toString());
  });

  it('awareness is visible both ways, and a y-websocket client that leaves is removed', async () => {
    const channel = uniqueChannel('doc');
    const sb = await signalbox(channel);
    sb.awareness.setLocalStateField('user', { name: 'alice' });
    const yw = await ywebsocket(channel);
    yw.awareness.setLocalStateField('user', { name: 'bob' });
    const ywId = yw.doc.clientID;
    const sbId = sb.doc.clientID;
    // Alice's state was set before bob came: the gateway's join announcement makes her provider send it again.
    await until(() => (yw.awareness.getStates().get(sbId) as { user?: { name?: string } } | undefined)?.user?.name === 'alice', { label: "y-websocket sees alice's awareness" });
    await until(() => (sb.awareness.getStates().get(ywId) as { user?: { name?: string } } | undefined)?.user?.name === 'bob', { label: "SignalboxProvider sees bob's awareness" });
    // Changes travel too.
    yw.awareness.setLocalStateField('cursor', 7);
    await until(() => (sb.awareness.getStates().get(ywId) as { cursor?: number } | undefined)?.cursor === 7, { label: "bob's cursor" });
    sb.awareness.setLocalStateField('cursor', 3);
    await until(() => (yw.awareness.getStates().get(sbId) as { cursor?: number } | undefined)?.cursor === 3, { label: "alice's cursor" });
    // A second y-websocket client sees both, and only one state per Yjs client (bob's relay of alice's is not republished as bob's).
    const carol = await ywebsocket(channel);
    carol.awareness.setLocalStateField('user', { name: 'carol' });
    await until(() => carol.awareness.getStates().has(sbId) && carol.awareness.getStates().has(ywId), { label: 'carol sees alice and bob' });
    await until(() => sb.awareness.getStates().has(carol.doc.clientID), { label: 'alice sees carol' });
    // A plain subscriber of the awareness channel sees what the gateway publishes for bob.
    const watcher = await connectPrp(gw, { token: await gw.token(grants(channel)), msgpack: true });
    watcher.sendMsgpack({ id: 'w1', action: 'subscribe', payload: { channels: [`awareness:${docId(channel)}`] } });
    await watcher.next((m) => m.replyTo === 'w1');
    // Bob's socket is cut (no goodbye from the client): the gateway removes his state for everyone.
    yw.provider.shouldConnect = false;
    yw.cut();
    // Published as removed (state null, next clock), in SignalboxProvider's format, by the gateway on bob's behalf.
    const removal = await watcher.next((m) => m.type === 'yjs.awareness' && m.data?.client === ywId && awarenessStates(m.data.update as Uint8Array).get(ywId) === 'null');
    expect(removal.publisher).toMatchObject({ via: 'ws' });
    watcher.ws.close();
    await until(() => !sb.awareness.getStates().has(ywId), { label: "bob's awareness removed at alice's" });
    await until(() => !carol.awareness.getStates().has(ywId), { label: "bob's awareness removed at carol's" });
    // Only bob's own state went with him: the states he relayed (alice's, carol's) were never his,
    // so alice's next change (published after bob left) is applied at carol's as usual.
    sb.awareness.setLocalStateField('cursor', 9);
    await until(() => (carol.awareness.getStates().get(sbId) as { cursor?: number } | undefined)?.cursor === 9, { label: "carol sees alice's next change" });
    expect(carol.awareness.getStates().has(sbId)).toBe(true);
    expect(sb.awareness.getStates().has(carol.doc.clientID)).toBe(true);
    // Alice's connection goes without a goodbye from her provider: the gateway's presence.left removes her state at y-websocket clients.
    sb.client.disconnect();
    await until(() => !carol.awareness.getStates().has(sbId), { label: "alice's awareness removed at carol's" });
  });

  it("a read-only token's edits do not spread; the client is not disconnected", async () => {
    const channel = uniqueChannel('doc');
    const writer = await signalbox(channel);
    writer.text.insert(0, 'shared');
    const reader = await ywebsocket(channel, { publish: false });
    expect(reader.text.toString()).toBe('shared');
    reader.text.insert(0, 'VANDAL ');
    reader.awareness.setLocalStateField('user', { name: 'mallory' });
    // A reconnect makes it offer its edit again (its SyncStep2 answer to the gateway's SyncStep1).
    reader.provider.disconnect();
    reader.provider.connect();
    await until(() => reader.provider.synced, { label: 'the reader synced again' });
    writer.text.insert(6, '!');
    await until(() => reader.text.toString().includes('!'), { label: "the reader sees the writer's edit" });
    expect(writer.text.toString()).toBe('shared!');
    expect(writer.awareness.getStates().has(reader.doc.clientID)).toBe(false);
    const fresh = await signalbox(channel);
    expect(fresh.text.toString()).toBe('shared!');
    const freshYws = await ywebsocket(channel);
    expect(freshYws.text.toString()).toBe('shared!');
    // Only the reader's own disconnect closed it: the gateway never did.
    expect(reader.closes.every((c) => c.code !== 4403 && c.code < 4400)).toBe(true);
    expect(reader.provider.wsconnected).toBe(true);
  });

  it('a bad or missing token, no read grant, or an invalid document id is refused with a 44xx close (y-websocket stops reconnecting)', async () => {
    const channel = uniqueChannel('doc');
    const refused = async (token: string): Promise<{ code: number; reason: string }> => {
      const e = await ywebsocket(channel, { token, wait: false });
      const closed = await new Promise<{ code: number; reason: string }>((resolve) => e.provider.on('closed', (ev) => resolve(ev)));
      expect(e.provider.synced).toBe(false);
      expect(e.provider.shouldConnect).toBe(false);
      return closed;
    };
    const bad = await refused('not-a-jwt');
    expect(bad.code).toBe(4401);
    expect(bad.reason).toMatch(/auth failed/);
    const forged = await refused(`${(await gw.token(grants(channel))).slice(0, -4)}AAAA`);
    expect(forged.code).toBe(4401);
    const other = await refused(await gw.token(grants(uniqueChannel('doc'))));
    expect(other.code).toBe(4403);
    expect(other.reason).toMatch(/does not grant/);
    // No token at all: a raw socket, so the provider's params are not involved.
    const raw = new WebSocket(`${gw.ws}/yjs/${docId(channel)}`);
    const rawClose = await new Promise<{ code: number; reason: string }>((resolve) => raw.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    expect(rawClose.code).toBe(4401);
    expect(rawClose.reason).toMatch(/missing token/);
    // A document id that is not a valid channel id: 4404.
    const star = await gw.token({ channels: ['*'] });
    const badId = new WebSocket(`${gw.ws}/yjs/${encodeURIComponent('no such doc')}?token=${encodeURIComponent(star)}`);
    const badIdClose = await new Promise<{ code: number; reason: string }>((resolve) => badId.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    expect(badIdClose.code).toBe(4404);
    expect(badIdClose.reason).toMatch(/not a valid channel name/);
    // Nothing of the refused clients reached the document.
    const e = await signalbox(channel);
    expect(e.text.toString()).toBe('');
  });

  it('an expiring token closes the y-websocket connection with 4401 "token expired" (no automatic reconnect)', async () => {
    const channel = uniqueChannel('doc');
    const e = await ywebsocket(channel, { token: await gw.token({ ...grants(channel), ttlSeconds: 2 }) });
    const closed = await new Promise<{ code: number; reason: string }>((resolve) => e.provider.on('closed', (ev) => resolve(ev)));
    expect(closed).toEqual({ code: 4401, reason: 'token expired' });
  });

  it('a reconnecting y-websocket client catches up (edits by others while it was cut, and its own offline edits are sent)', async () => {
    const channel = uniqueChannel('doc');
    const sb = await signalbox(channel);
    const yw = await ywebsocket(channel);
    sb.text.insert(0, 'base');
    await converged([sb, yw]);
    // Cut without a close handshake; y-websocket reconnects with backoff on its own.
    yw.cut();
    await until(() => !yw.provider.wsconnected, { label: 'y-websocket noticed the cut' });
    for (let i = 0; i < 300; i++) sb.text.insert(sb.text.length, String.fromCharCode(97 + (i % 26)));
    for (let i = 0; i < 50; i++) yw.text.insert(0, 'Y');
    await converged([sb, yw]);
    expect(sb.text.toString()).toContain('Y'.repeat(50));
    expect(yw.text.length).toBe(4 + 300 + 50);
    // Cut again in the middle of a burst from both sides.
    for (let i = 0; i < 100; i++) {
      sb.text.insert(0, 's');
      yw.text.insert(yw.text.length, 'y');
      if (i === 40) yw.cut();
    }
    await converged([sb, yw]);
    expect(yw.text.length).toBe(4 + 300 + 50 + 200);
    expect(yw.closes.length).toBeGreaterThanOrEqual(2);
  });

  it('a burst of 1,000 one-character transactions from y-websocket (1,000 messages, over the message rate) is slowed down, not closed, and stored merged', async () => {
    // No compaction by count here, so that the stream shows how many publications the burst became.
    const at = await startGateway({ yjsCompactUpdates: 0 });
    try {
      const channel = uniqueChannel('doc');
      const sb = await signalbox(channel, { at });
      const yw = await ywebsocket(channel, { at });
      for (let i = 0; i < 1000; i++) yw.text.insert(yw.text.length, String.fromCharCode(97 + (i % 26)));
      await converged([sb, yw]);
      expect(sb.text.length).toBe(1000);
      expect(yw.closes).toEqual([]);
      const hist = await at.gateway.broker.history(channel, {});
      // One publish in flight per connection, what arrives meanwhile merged into the next.
      expect(hist.publications.filter((p) => p.type === 'yjs.update').length).toBeLessThan(100);
    } finally {
      closeAll(open);
      await at.close();
    }
  });

  it('malformed input closes the socket with a 4400/4413 reason, never the gateway', async () => {
    const channel = uniqueChannel('doc');
    const token = await gw.token(grants(channel));
    const url = `${gw.ws}/yjs/${docId(channel)}?token=${encodeURIComponent(token)}`;
    const closeOf = async (send: (ws: WebSocket) => void): Promise<{ code: number; reason: string }> => {
      const ws = new WebSocket(url);
      await new Promise((resolve) => ws.once('open', resolve));
      const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
      send(ws);
      return closed;
    };
    const msg = (write: (e: encoding.Encoder) => void): Uint8Array => {
      const e = encoding.createEncoder();
      write(e);
      return encoding.toUint8Array(e);
    };
    const cases: [string, (ws: WebSocket) => void, number, RegExp][] = [
      ['unknown message type', (ws) => ws.send(msg((e) => encoding.writeVarUint(e, 9))), 4400, /unknown message type 9/],
      ['truncated sync message', (ws) => ws.send(new Uint8Array([0, 2, 50, 1])), 4400, /malformed message/],
      ['an update that is not Yjs', (ws) => ws.send(msg((e) => { encoding.writeVarUint(e, 0); encoding.writeVarUint(e, 2); encoding.writeVarUint8Array(e, new Uint8Array([200, 200, 200, 1, 2, 3])); })), 4400, /malformed message/],
      ['an awareness state that is not JSON', (ws) => ws.send(msg((e) => {
        encoding.writeVarUint(e, 1);
        encoding.writeVarUint8Array(e, msg((a) => { encoding.writeVarUint(a, 1); encoding.writeVarUint(a, 5); encoding.writeVarUint(a, 1); encoding.writeVarString(a, '{nope'); }));
      })), 4400, /malformed message/],
      ['a text frame', (ws) => ws.send('hello'), 4400, /text frame/],
      ['a message over the size limit', (ws) => ws.send(new Uint8Array(256 * 1024 + 1)), 4413, /exceeds the limit/],
    ];
    for (const [what, send, code, reason] of cases) {
      const c = await closeOf(send);
      expect({ what, code: c.code }).toEqual({ what, code });
      expect(c.reason).toMatch(reason);
    }
    // The gateway is fine, and nothing reached the document.
    const yw = await ywebsocket(channel);
    const sb = await signalbox(channel);
    yw.text.insert(0, 'ok');
    await until(() => sb.text.toString() === 'ok', { label: 'the document still works' });
    const hist = await gw.gateway.broker.history(channel, {});
    expect(hist.publications.filter((p) => p.type === 'yjs.update')).toHaveLength(1);
  });

  it('a draining node closes y-websocket connections with 1012 (y-websocket reconnects, to another node) and counts them until they are gone', async () => {
    const other = await startGateway();
    const channel = uniqueChannel('doc');
    const e = await ywebsocket(channel, { at: other });
    expect(other.gateway.yws.size).toBe(1);
    const closed = new Promise<number>((resolve) => e.provider.on('connection-close', (ev) => resolve(ev?.code ?? 0)));
    await other.close();
    expect(await closed).toBe(1012);
    expect(other.gateway.yws.size).toBe(0);
    // Transient: the provider keeps trying (the node is gone, so it does not get in).
    expect(e.provider.shouldConnect).toBe(true);
  });

  it('speaks y-protocols on the wire: SyncStep2 for the state vector, our SyncStep1, and a messageQueryAwareness answer', async () => {
    const channel = uniqueChannel('doc');
    const sb = await signalbox(channel);
    sb.text.insert(0, 'abc');
    sb.awareness.setLocalStateField('user', { name: 'alice' });
    await until(() => sb.provider.pendingUpdates === 0, { label: 'sent' });
    const token = await gw.token(grants(channel));
    const ws = new WebSocket(`${gw.ws}/yjs/${docId(channel)}?token=${encodeURIComponent(token)}`);
    const received: Uint8Array[] = [];
    ws.on('message', (d: Buffer) => received.push(new Uint8Array(d)));
    await new Promise((resolve) => ws.once('open', resolve));
    const local = new Y.Doc();
    ws.send(msg0(0, Y.encodeStateVector(local)));
    const parsed = (): { type: number; step?: number; payload: Uint8Array }[] => received.map((m) => {
      const d = decoding.createDecoder(m);
      const type = decoding.readVarUint(d);
      if (type === 0) { const step = decoding.readVarUint(d); return { type, step, payload: decoding.readVarUint8Array(d) }; }
      return { type, payload: type === 1 ? decoding.readVarUint8Array(d) : new Uint8Array() };
    });
    await until(() => parsed().some((m) => m.type === 0 && m.step === 1) && parsed().some((m) => m.type === 0 && m.step === 0), { label: 'step 2 and step 1' });
    const step2 = parsed().find((m) => m.type === 0 && m.step === 1)!;
    Y.applyUpdate(local, step2.payload);
    expect(local.getText('t').toString()).toBe('abc');
    const step1 = parsed().find((m) => m.type === 0 && m.step === 0)!;
    expect(Y.decodeStateVector(step1.payload).get(sb.doc.clientID)).toBe(3);
    // Alice republished her awareness when this socket joined; a query is answered with what the endpoint knows.
    await until(() => parsed().some((m) => m.type === 1 && m.payload.length > 1), { label: "alice's awareness" });
    const before = received.length;
    ws.send(new Uint8Array([3]));
    await until(() => received.length > before && parsed().slice(before).some((m) => m.type === 1 && m.payload.length > 1), { label: 'the query answer' });
    const answer = parsed().slice(before).find((m) => m.type === 1 && m.payload.length > 1)!;
    const peer = new Awareness(new Y.Doc());
    const { applyAwarenessUpdate } = await import('y-protocols/awareness');
    applyAwarenessUpdate(peer, answer.payload, 'test');
    expect((peer.getStates().get(sb.doc.clientID) as { user?: { name?: string } }).user?.name).toBe('alice');
    peer.destroy();
    ws.close();
  });
});

const probe = await probeRedis();

describeWithRedis('y-websocket endpoint on two gateway nodes sharing one Redis', probe, () => {
  const prefix = uniquePrefix('yws');
  let a: TestGateway;
  let b: TestGateway;
  const open: Editor[] = [];
  beforeAll(async () => {
    a = await startGateway({ broker: probe.url, redisPrefix: prefix });
    b = await startGateway({ broker: probe.url, redisPrefix: prefix });
  });
  afterEach(() => closeAll(open));
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await deleteKeys(probe.url, prefix);
  });
  const { signalbox, ywebsocket } = kit(() => a, open);

  it('y-websocket on one node and SignalboxProvider and y-websocket on the other converge, awareness included; a late joiner reads Redis history', async () => {
    const channel = uniqueChannel('doc');
    const ywA = await ywebsocket(channel, { at: a });
    const sbB = await signalbox(channel, { at: b });
    const ywB = await ywebsocket(channel, { at: b });
    ywA.text.insert(0, 'from a');
    await until(() => sbB.text.toString() === 'from a' && ywB.text.toString() === 'from a', { label: 'node b sees node a' });
    for (let i = 0; i < 30; i++) {
      ywA.text.insert(0, 'a');
      sbB.text.insert(sbB.text.length, 'b');
      ywB.text.insert(ywB.text.length, 'c');
    }
    await converged([ywA, sbB, ywB]);
    expect(ywA.text.length).toBe(6 + 90);
    ywA.awareness.setLocalStateField('user', { name: 'on-a' });
    await until(() => sbB.awareness.getStates().has(ywA.doc.clientID) && ywB.awareness.getStates().has(ywA.doc.clientID), { label: "node b sees a's awareness" });
    ywA.cut();
    ywA.provider.shouldConnect = false;
    await until(() => !ywB.awareness.getStates().has(ywA.doc.clientID), { label: "a's awareness removed on node b" });
    const late = await ywebsocket(channel, { at: a });
    expect(late.text.toString()).toBe(sbB.text.toString());
  });
});

/** The states (JSON text) of an awareness update, by Yjs client id. */
function awarenessStates(update: Uint8Array): Map<number, string> {
  const d = decoding.createDecoder(update);
  const out = new Map<number, string>();
  for (let n = decoding.readVarUint(d); n > 0; n--) {
    const client = decoding.readVarUint(d);
    decoding.readVarUint(d);
    out.set(client, decoding.readVarString(d));
  }
  return out;
}

function msg0(step: number, payload: Uint8Array): Uint8Array {
  const e = encoding.createEncoder();
  encoding.writeVarUint(e, 0);
  encoding.writeVarUint(e, step);
  encoding.writeVarUint8Array(e, payload);
  return encoding.toUint8Array(e);
}
