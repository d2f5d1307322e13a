/**
 * Yjs documents on Redis with two gateway nodes (REDIS_URL, a unique key prefix, deleted
 * afterwards): editors on different nodes converge; a node SIGKILLed mid-session loses no
 * acknowledged update; compaction runs through the Redis script (snapshot parts + tail for a
 * joiner, bounded history, the stream's TTL kept, recovery from inside a compacted range); two
 * nodes compacting one document at once never lose an update.
 *
 * Nodes A and B run in this process; the node that is killed runs as a child process (needs a
 * build of the server, like cluster.ts).
 */
import WebSocket from 'ws';
import * as Y from 'yjs';
import { Awareness } from 'y-protocols/awareness';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SignalboxClient, type SubscribedEvent, type WebSocketConstructor } from '../../client/src/node.js';
import { msgpack } from '../../client/src/msgpack.js';
import { SignalboxProvider, type ProviderClient } from '../../yjs/src/index.js';
import type { Broker, CompactingBroker, CompactionRequest, HistoryQuery } from '../src/broker/types.js';
import { redisChannelKeys } from '../src/redis/keys.js';
import { YjsCompactor, collectUpdates, mergeTree } from '../src/yjs/compactor.js';
import { CLUSTER_SECRET, GatewayProcess, delay } from './helpers/cluster.js';
import { startGateway, uniqueChannel, type TestGateway } from './helpers/gateway.js';
import { deleteKeys, describeWithRedis, probeRedis, rawClient, uniquePrefix } from './helpers/redis.js';
import { until } from './helpers/wait.js';
import { random, randomEdit } from './helpers/yjs.js';

const probe = await probeRedis();

/** Limits high enough that the editors here are never rate limited (the provider retries a refused publish). */
const LIMITS = { publishRate: 5000, publishBurst: 10_000, messageRate: 10_000, messageBurst: 20_000, newChannelRate: 100, maxMessageBytes: 1024 * 1024 };
const CHILD_ENV = {
  SIGNALBOX_PUBLISH_RATE: '5000', SIGNALBOX_PUBLISH_BURST: '10000', SIGNALBOX_MESSAGE_RATE: '10000', SIGNALBOX_MESSAGE_BURST: '20000',
  SIGNALBOX_NEW_CHANNEL_RATE: '100', SIGNALBOX_MAX_MESSAGE_SIZE: String(1024 * 1024),
  // The doomed node compacts often, so it is likely to be compacting when it is killed.
  SIGNALBOX_YJS_COMPACT_UPDATES: '20',
};
const TOKEN = /<[a-z0-9]+:\d+>/g;

/** The unique tokens a Yjs update inserts (its strings, decoded without a document). */
function tokensOf(update: Uint8Array): string[] {
  const out: string[] = [];
  for (const s of Y.decodeUpdate(update).structs) {
    if (s instanceof Y.Item && s.content instanceof Y.ContentString) out.push(...(s.content.str.match(TOKEN) ?? []));
  }
  return out;
}

/** Inserts a unique token `<name:n>` between two tokens (never inside one, so every token stays whole). */
function insertToken(text: Y.Text, token: string, rnd: () => number): void {
  const s = text.toString();
  const at = [0];
  for (let i = 0; i < s.length; i++) if (s[i] === '>') at.push(i + 1);
  text.insert(at[Math.floor(rnd() * at.length)]!, token);
}

/** Tokens of `want` not found exactly once in `text`. */
function notExactlyOnce(text: string, want: Iterable<string>): string[] {
  const counts = new Map<string, number>();
  for (const t of text.match(TOKEN) ?? []) counts.set(t, (counts.get(t) ?? 0) + 1);
  return [...want].filter((t) => counts.get(t) !== 1);
}

interface Editor {
  name: string;
  client: SignalboxClient;
  doc: Y.Doc;
  text: Y.Text;
  provider: SignalboxProvider;
  awareness: Awareness;
  /** Tokens inserted by this editor. */
  inserted: string[];
  /** Tokens of the updates the gateway acknowledged (publish resolved). */
  acked: Set<string>;
  /** The document subscription's `subscribed` events. */
  subscribed: SubscribedEvent[];
  /** History reads by the provider (a resync reads the document again). */
  historyReads: number;
  cut(): void;
}

/**
 * An editor as in yjs.test.ts (SignalboxProvider over a MessagePack client), on a list of node
 * URLs (the client moves to the next when one fails), seen through a wrapper that records what the
 * gateway acknowledged.
 */
async function openEditor(name: string, urls: string[], token: string, channel: string, opts: { connect?: boolean } = {}): Promise<Editor> {
  let current: WebSocket | null = null;
  class Cuttable extends WebSocket {
    constructor(address: string, protocols?: string | string[], options?: WebSocket.ClientOptions) {
      super(address, protocols, options);
      current = this; // eslint-disable-line @typescript-eslint/no-this-alias
    }
  }
  const client = new SignalboxClient({ url: urls, token, format: msgpack, WebSocket: Cuttable as unknown as WebSocketConstructor, reconnectInterval: 20, maxReconnectInterval: 200 });
  const doc = new Y.Doc();
  const awareness = new Awareness(doc);
  const e = { name, client, doc, text: doc.getText('t'), awareness, inserted: [], acked: new Set(), subscribed: [], historyReads: 0, cut: () => current?.terminate() } as unknown as Editor;
  const via: ProviderClient = {
    get isConnected() { return client.isConnected; },
    subscribe(ch) {
      const sub = client.subscribe(ch);
      if (ch === channel) sub.on('subscribed', (ev) => void e.subscribed.push(ev));
      return sub;
    },
    unsubscribe: (chs) => client.unsubscribe(chs),
    async publish(ch, data, options) {
      const ack = await client.publish(ch, data, options);
      if (ch === channel && data instanceof Uint8Array) for (const t of tokensOf(data)) e.acked.add(t);
      return ack;
    },
    history(ch, options) {
      if (ch === channel) e.historyReads++;
      return client.history(ch, options);
    },
    on: (type, handler) => client.on(type, handler),
    off: (type, handler) => client.off(type, handler),
  };
  e.provider = new SignalboxProvider(via, channel, doc, { awareness });
  if (opts.connect !== false) {
    await client.connect();
    await e.provider.whenSynced();
  }
  return e;
}

function closeEditor(e: Editor): void {
  e.provider.destroy();
  e.client.disconnect();
  e.awareness.destroy();
  e.doc.destroy();
}

async function converged(editors: Editor[], timeout = 30_000): Promise<void> {
  await until(() => editors.every((e) => e.provider.synced && e.provider.pendingUpdates === 0), {
    label: 'every editor synced with nothing pending', timeoutMs: timeout,
    detail: () => editors.map((e) => `${e.name}: synced ${e.provider.synced} pending ${e.provider.pendingUpdates} state ${e.client.state}`).join('; '),
  });
  await until(() => editors.every((e) => e.text.toString() === editors[0]!.text.toString()), {
    label: 'identical documents', timeoutMs: timeout,
    detail: () => `documents differ: ${editors.map((e) => `${e.name} ${e.text.length} ${JSON.stringify(e.text.toString().slice(0, 40))}`).join(' | ')}`,
  });
}

/** The document a stream's retained history stands for, read as the compactor reads it. */
async function documentOf(broker: Broker, channel: string): Promise<string> {
  const doc = new Y.Doc();
  Y.applyUpdate(doc, mergeTree(collectUpdates((await broker.history(channel, {})).publications)));
  return doc.getText('t').toString();
}

const LOADER = { via: 'ws' as const, sub: 'usr_loader', client: 'conn_loader' };
/** Publishes updates straight into the stream (as publishes of `yjs.update` would), concurrently. */
function load(broker: Broker, channel: string, updates: Uint8Array[]): Promise<unknown> {
  return Promise.all(updates.map((u) => broker.publish({ channel, type: 'yjs.update', data: u, publisher: LOADER, history: { size: 100_000, ttlMs: 30 * 24 * 3600_000 }, idempotencyWindowMs: 0 })));
}

/**
 * Node A's compaction reads offsets 1-100 and is held before it writes; meanwhile 5 more updates
 * come and node B compacts through 105 in parts that cover offset 100. A's compaction, released,
 * must change nothing: applied, it would keep only the tail of B's parts, and updates 101-105
 * (which only B's snapshot holds) would be lost. On Redis: two nodes; on memory: one node, twice.
 */
async function overtakenCompactionIsRefused(a: TestGateway, b: TestGateway): Promise<void> {
  const channel = uniqueChannel('doc');
  const src = new Y.Doc();
  const tokens: string[] = [];
  const rnd = random(7);
  const add = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const token = `<t:${tokens.length}>`;
      tokens.push(token);
      const before = Y.encodeStateVector(src);
      insertToken(src.getText('t'), token, rnd);
      await load(a.gateway.broker, channel, [Y.encodeStateAsUpdate(src, before)]);
    }
  };
  await add(100);
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  let held: () => void = () => {};
  const reached = new Promise<void>((r) => (held = r));
  const inner = a.gateway.broker as Broker & CompactingBroker;
  const gated = {
    history: (ch: string, q: HistoryQuery) => inner.history(ch, q),
    compact: async (req: CompactionRequest) => { held(); await gate; return inner.compact(req); },
  } as unknown as Broker;
  const slow = new YjsCompactor(gated, { updates: 0, bytes: 0, chunkBytes: 1024 * 1024 }, a.gateway.log);
  const pending = slow.compact(channel);
  await reached;
  await add(5);
  const fast = new YjsCompactor(b.gateway.broker, { updates: 0, bytes: 0, chunkBytes: 64 }, b.gateway.log);
  const out = await fast.compact(channel);
  expect(out).toMatchObject({ compacted: true, through: 105 });
  expect(105 - out.parts! + 1).toBeLessThanOrEqual(100);
  release();
  expect((await pending).compacted).toBe(false);
  expect(notExactlyOnce(await documentOf(b.gateway.broker, channel), tokens)).toEqual([]);
}

describeWithRedis('Yjs documents on Redis, two gateway nodes', probe, () => {
  const prefix = uniquePrefix('yjs');
  let a: TestGateway;
  let b: TestGateway;
  const editors: Editor[] = [];
  const children: GatewayProcess[] = [];
  beforeAll(async () => {
    // Both nodes compact every 40 updates published through them: during the edits, both compact the same documents.
    const common = { broker: probe.url, redisPrefix: prefix, jwtSecret: CLUSTER_SECRET, yjsCompactUpdates: 40, ...LIMITS };
    [a, b] = await Promise.all([startGateway(common), startGateway(common)]);
  });
  afterEach(async () => {
    for (const e of editors.splice(0)) closeEditor(e);
    await Promise.all(children.splice(0).map((c) => c.kill()));
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await deleteKeys(probe.url, prefix);
  });

  const wsOf = (gw: TestGateway): string => `${gw.ws}/v1/ws/prps`;
  async function editor(name: string, urls: string[], channel: string, opts: { connect?: boolean } = {}): Promise<Editor> {
    const e = await openEditor(name, urls, await a.token({ sub: `usr_${name}`, channels: [channel], publish: [channel] }), channel, opts);
    editors.push(e);
    return e;
  }

  it('editors on node A and node B make concurrent random edits, connections cut at random, and converge; joiners on both nodes agree', async () => {
    const channel = uniqueChannel('doc');
    const four = [
      await editor('a1', [wsOf(a)], channel), await editor('a2', [wsOf(a)], channel),
      await editor('b1', [wsOf(b)], channel), await editor('b2', [wsOf(b)], channel),
    ];
    const rnd = random(2);
    let cuts = 0;
    for (let round = 0; round < 60; round++) {
      for (const [i, e] of four.entries()) {
        for (let k = 0; k < 5; k++) randomEdit(e.text, rnd, 'abcd'[i]!);
        if (rnd() < 0.05) { e.cut(); cuts++; }
      }
      // Let the sockets and both nodes work between rounds, so edits cross while others are in flight.
      await new Promise<void>((r) => setImmediate(r));
      // An editor has one update publish in flight and merges what is typed meanwhile: every other
      // round, let the edits out, so that the document gets enough publications for both nodes to compact.
      if (round % 2 === 1) await until(() => four.every((e) => e.provider.pendingUpdates === 0 || !e.client.isConnected), { label: 'edits published' });
    }
    expect(cuts).toBeGreaterThan(3);
    await converged(four);
    const text = four[0]!.text.toString();
    expect(text.length).toBeGreaterThan(100);
    for (const ch of 'abcd') expect(text).toContain(ch);
    // Both nodes compacted the document meanwhile; history is far shorter than the updates published.
    const hist = await a.gateway.broker.history(channel, {});
    expect(hist.publications.some((p) => p.type === 'yjs.snapshot')).toBe(true);
    expect(hist.publications.length).toBeLessThan(hist.position.offset / 2);
    // Joiners read snapshot + tail from Redis, through either node.
    const joiners = [await editor('ja', [wsOf(a)], channel), await editor('jb', [wsOf(b)], channel)];
    await converged([four[0]!, ...joiners]);
    expect(await documentOf(b.gateway.broker, channel)).toBe(text);
  }, 60_000);

  it('a node SIGKILLed mid-session: its editors move to the other node, a restarted node serves a joiner, and every acknowledged update is in every document', async () => {
    const channel = uniqueChannel('doc');
    const doomed = await GatewayProcess.start('yjs-doomed', { broker: probe.url, prefix, env: CHILD_ENV });
    children.push(doomed);
    const onDoomed = [await editor('d1', [doomed.wsUrl(), wsOf(a)], channel), await editor('d2', [doomed.wsUrl(), wsOf(a)], channel)];
    const others = [await editor('a1', [wsOf(a)], channel), await editor('b1', [wsOf(b)], channel)];
    const typing = [...onDoomed, ...others];
    const rnd = random(9);
    let stop = false;
    // Everyone types unique tokens, paced, until told to stop: the kill lands mid-session.
    const typed = (async () => {
      for (let n = 0; !stop; n++) {
        for (const e of typing) {
          const token = `<${e.name}:${n}>`;
          e.inserted.push(token);
          insertToken(e.text, token, rnd);
        }
        await delay(5);
      }
    })();
    const ackedOnDoomed = (): number => onDoomed.reduce((n, e) => n + e.acked.size, 0);
    await until(() => ackedOnDoomed() >= 150, { label: '150 updates acknowledged by the doomed node', timeoutMs: 30_000, detail: () => `acked ${ackedOnDoomed()}` });
    const resubscribes = onDoomed.map((e) => e.subscribed.length);
    doomed.child.kill('SIGKILL');
    // Acknowledged before the kill: every ack received up to now.
    const ackedBeforeKill = new Set(typing.flatMap((e) => [...e.acked]));
    const doomedAcks = ackedOnDoomed();
    expect((await doomed.exited).signal).toBe('SIGKILL');
    // The dead node's editors reconnect to A (their other URL) and resubscribe there.
    await until(() => onDoomed.every((e, i) => e.subscribed.length > resubscribes[i]! && e.provider.synced), {
      label: "the dead node's editors resubscribed on node A", timeoutMs: 30_000,
      detail: () => onDoomed.map((e) => `${e.name}: ${e.client.state} synced ${e.provider.synced}`).join('; '),
    });
    await until(() => ackedOnDoomed() >= doomedAcks + 50, { label: 'their edits acknowledged again (by node A)', timeoutMs: 30_000 });
    // A node started again on the same Redis serves the whole document to a new editor.
    const restarted = await GatewayProcess.start('yjs-restarted', { broker: probe.url, prefix, env: CHILD_ENV });
    children.push(restarted);
    const late = await editor('r1', [restarted.wsUrl()], channel);
    typing.push(late);
    await until(() => late.acked.size >= 20, { label: 'the restarted node acknowledges', timeoutMs: 30_000 });
    stop = true;
    await typed;
    const all = [...typing, await editor('j1', [wsOf(b)], channel)];
    await converged(all);
    const inserted = typing.flatMap((e) => e.inserted);
    expect(ackedBeforeKill.size).toBeGreaterThanOrEqual(150);
    for (const e of all) {
      const text = e.text.toString();
      // The requirement: nothing acknowledged before the kill is lost.
      expect(notExactlyOnce(text, ackedBeforeKill), `${e.name} misses acknowledged tokens`).toEqual([]);
      // And since every editor lived on, nothing typed anywhere is lost (or doubled) either.
      expect(notExactlyOnce(text, inserted), `${e.name} misses typed tokens`).toEqual([]);
      expect(text.match(TOKEN)).toHaveLength(inserted.length);
    }
    // What Redis keeps is the same document.
    expect(await documentOf(a.gateway.broker, channel)).toBe(all[0]!.text.toString());
  }, 120_000);

  it('20,000 updates compact through the Redis script: snapshot parts + tail for a joiner, TTL kept, history bounded, recovery from inside the compacted range resyncs', async () => {
    const channel = uniqueChannel('doc');
    const source = new Y.Doc();
    const updates: Uint8Array[] = [];
    source.on('update', (u: Uint8Array) => updates.push(u));
    const text = source.getText('t');
    const rnd = random(20_000);
    for (let i = 0; i < 20_000; i++) text.insert(Math.floor(rnd() * (text.length + 1)), String.fromCharCode(97 + (i % 26)));
    // The updates go straight into the stream (as 20,000 publishes would), in batches.
    for (let i = 0; i < 19_990; i += 1000) await load(a.gateway.broker, channel, updates.slice(i, Math.min(i + 1000, 19_990)));
    // An editor on node B is synced at offset 19,990, then goes offline.
    const away = await editor('x', [wsOf(b)], channel);
    expect(away.subscribed[0]!.position?.offset).toBe(19_990);
    away.client.disconnect();
    await load(a.gateway.broker, channel, updates.slice(19_990));

    const redis = rawClient(probe.url);
    try {
      const { stream } = redisChannelKeys(prefix, channel);
      const ttlBefore = await redis.pttl(stream);
      const bytesBefore = (await redis.call('MEMORY', 'USAGE', stream, 'SAMPLES', '0')) as number;
      // The stream also holds the offline editor's presence.joined and .left (doc: is a presence namespace).
      const end = (await a.gateway.broker.history(channel, { limit: 0 })).position.offset;
      expect(end).toBe(20_002);
      const compactor = new YjsCompactor(a.gateway.broker, { updates: 0, bytes: 0, chunkBytes: 4096 }, a.gateway.log);
      const out = await compactor.compact(channel);
      expect(out).toMatchObject({ compacted: true, through: end, replaced: end });
      const parts = out.parts!;
      expect(out.snapshotBytes!).toBeLessThan(Y.encodeStateAsUpdate(source).byteLength * 1.5);
      // The offline editor's position is inside the range the parts now occupy (not at its start).
      expect(end - parts + 1).toBeLessThan(19_990);

      // Both nodes read the same compacted stream: the parts at the newest offsets of the range.
      for (const gw of [a, b]) {
        const hist = await gw.gateway.broker.history(channel, {});
        expect(hist.publications.map((p) => p.offset)).toEqual(Array.from({ length: parts }, (_, i) => end - parts + 1 + i));
        expect(hist.publications.every((p) => p.type === 'yjs.snapshot')).toBe(true);
        expect(hist.position.offset).toBe(end);
      }
      const ttlAfter = await redis.pttl(stream);
      expect(ttlAfter).toBeGreaterThan(0);
      expect(ttlBefore - ttlAfter).toBeGreaterThanOrEqual(0);
      expect(ttlBefore - ttlAfter).toBeLessThan(60_000);
      const bytesAfter = (await redis.call('MEMORY', 'USAGE', stream, 'SAMPLES', '0')) as number;
      console.log(`[yjs-cluster] 20,000 updates: stream ${bytesBefore} bytes before compaction, ${bytesAfter} after (${parts} parts, snapshot ${out.snapshotBytes} bytes, state ${Y.encodeStateAsUpdate(source).byteLength})`);
      expect(bytesAfter).toBeLessThan(bytesBefore / 2);

      // A writer on node B adds the tail: two updates after the snapshot.
      const writer = await editor('w', [wsOf(b)], channel);
      expect(writer.text.toString()).toBe(text.toString());
      writer.text.insert(0, '<');
      writer.text.insert(writer.text.length, '>');
      await until(() => writer.provider.pendingUpdates === 0, { label: 'the tail stored' });
      const tail = (await a.gateway.broker.history(channel, {})).publications.filter((p) => p.type === 'yjs.update');
      expect(tail).toHaveLength(2);
      expect(tail[0]!.offset).toBeGreaterThan(end);

      // A joiner on node A downloads the parts (with progress) and the tail.
      const joiner = await editor('j', [wsOf(a)], channel, { connect: false });
      const progress: number[] = [];
      joiner.provider.on('sync-progress', (p) => progress.push(p.part));
      await joiner.client.connect();
      await joiner.provider.whenSynced();
      expect(joiner.text.toString()).toBe(`<${text.toString()}>`);
      expect(progress).toEqual(Array.from({ length: parts }, (_, i) => i + 1));

      // The offline editor comes back: its recovery from 19,990 is served (parts from the middle of
      // the snapshot, then the tail), and the provider, seeing a snapshot it cannot assemble, reads
      // the document again.
      const reads = away.historyReads;
      const subscribes = away.subscribed.length;
      await away.client.connect();
      await until(() => away.subscribed.length > subscribes, { label: 'the offline editor resubscribed' });
      expect(away.subscribed[subscribes]).toMatchObject({ recovered: true, resubscribed: true });
      await converged([writer, joiner, away]);
      expect(away.historyReads).toBeGreaterThan(reads);
      expect(away.text.toString()).toBe(`<${text.toString()}>`);
    } finally {
      redis.disconnect();
    }
  }, 120_000);

  it("two nodes' compactions of one document at once, while updates are published through both, never lose an update", async () => {
    const channel = uniqueChannel('doc');
    // Different part sizes: one part on A, many on B, so B's snapshot, committed first, can straddle the `through` of A's read.
    const ca = new YjsCompactor(a.gateway.broker, { updates: 0, bytes: 0, chunkBytes: 1024 * 1024 }, a.gateway.log);
    const cb = new YjsCompactor(b.gateway.broker, { updates: 0, bytes: 0, chunkBytes: 256 }, b.gateway.log);
    const sources = [new Y.Doc(), new Y.Doc()];
    const tokens: string[] = [];
    const rnd = random(4);
    let stop = false;
    const published = (async () => {
      for (let n = 0; !stop; n++) {
        await Promise.all(sources.map((src, i) => {
          const token = `<s${i}:${n}>`;
          tokens.push(token);
          const before = Y.encodeStateVector(src);
          insertToken(src.getText('t'), token, rnd);
          return load(i === 0 ? a.gateway.broker : b.gateway.broker, channel, [Y.encodeStateAsUpdate(src, before)]);
        }));
      }
    })();
    let ok = { a: 0, b: 0 };
    for (let round = 0; round < 300; round++) {
      const [ra, rb] = await Promise.all([ca.compact(channel), cb.compact(channel)]);
      ok = { a: ok.a + (ra.compacted ? 1 : 0), b: ok.b + (rb.compacted ? 1 : 0) };
    }
    stop = true;
    await published;
    expect(ok.a).toBeGreaterThan(0);
    expect(ok.b).toBeGreaterThan(0);
    expect(tokens.length).toBeGreaterThan(100);
    const stored = await documentOf(a.gateway.broker, channel);
    expect(notExactlyOnce(stored, tokens)).toEqual([]);
    // And editors joining through either node get all of it.
    const joiners = [await editor('ja', [wsOf(a)], channel), await editor('jb', [wsOf(b)], channel)];
    await converged(joiners);
    expect(notExactlyOnce(joiners[0]!.text.toString(), tokens)).toEqual([]);
    // Bounded: one last compaction (the node's own, one part) leaves the snapshot only.
    const last = await a.gateway.yjs.compact(channel);
    expect(last.compacted).toBe(true);
    expect((await b.gateway.broker.history(channel, {})).publications).toHaveLength(last.parts!);
  }, 60_000);

  it("a compaction whose read is overtaken by another node's larger one (its parts cover this one's `through`) is refused, not applied", () =>
    overtakenCompactionIsRefused(a, b));
});

describe('Yjs compaction on the memory broker', () => {
  it('a compaction overtaken by a larger one (its parts cover this one\'s `through`) is refused, not applied', async () => {
    const gw = await startGateway({ yjsCompactUpdates: 0 });
    try {
      await overtakenCompactionIsRefused(gw, gw);
    } finally {
      await gw.close();
    }
  });
});
