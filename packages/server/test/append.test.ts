/**
 * Appends over real sockets: both WebSocket dialects and the HTTP API, on one in-process gateway
 * (memory broker) and on two gateway processes sharing one Redis. One scenario, run on both: a
 * producer streams an answer as appends (reconnecting once, to the other node and dialect),
 * subscribers live on both nodes and dialects (and MessagePack) get every append once and in
 * order, a subscriber that drops in the middle of the answer recovers exactly the appends it
 * missed, a late joiner reads the answer so far as one message with `through` and goes on live,
 * and appends to another publisher's message, to an append or to nothing are refused with the
 * request named, the connection kept.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { applyAppend, ErrorCode, type StreamPosition } from '@signalbox/protocol';
import { mintToken } from '../src/auth/jwt.js';
import { CLUSTER_API_KEY, CLUSTER_SECRET, startNodes, type GatewayProcess } from './helpers/cluster.js';
import { isPublication, namespace, namespacesWith } from './helpers/delivery-kit.js';
import { startGateway, TEST_API_KEY, TEST_SECRET, testGrants, TestClient, type Msg, type TestGateway } from './helpers/gateway.js';
import { deleteKeys, describeWithRedis, probeRedis, uniquePrefix } from './helpers/redis.js';

/** One gateway node as the scenario reaches it. */
interface Node {
  /** ws://127.0.0.1:port */
  ws: string;
  http: string;
  apiKey: string;
  secret: string;
}

const nodeOf = (gw: TestGateway): Node => ({ ws: gw.ws, http: gw.http, apiKey: TEST_API_KEY, secret: TEST_SECRET });
const nodeOfProcess = (p: GatewayProcess): Node => ({ ws: `ws://127.0.0.1:${p.port}`, http: p.http, apiKey: CLUSTER_API_KEY, secret: CLUSTER_SECRET });

const open: TestClient[] = [];

async function prp(node: Node, sub: string, msgpack = false): Promise<TestClient> {
  const token = await mintToken(node.secret, testGrants({ sub }));
  const c = new TestClient(`${node.ws}/v1/ws/prps${msgpack ? '?format=msgpack' : ''}`, { headers: { authorization: `Bearer ${token}` } });
  open.push(c);
  const est = await c.nextType('connection.established');
  expect(est.data.features).toContain('append');
  return c;
}

async function prd(node: Node, sub: string): Promise<TestClient> {
  const token = await mintToken(node.secret, testGrants({ sub }));
  const c = new TestClient(`${node.ws}/ws?token=${encodeURIComponent(token)}`);
  open.push(c);
  await c.next((m) => m.type === 'ack' && m.data?.action === 'connect');
  return c;
}

function isPrd(c: TestClient): boolean {
  return c.ws.url.includes('/ws?');
}

/** Publishes over either dialect (`appendTo` where each dialect carries it) and awaits the reply (ack or error). */
function publish(c: TestClient, channel: string, data: unknown, id: string, appendTo?: string): Promise<Msg> {
  const from = c.messages.length;
  const extra = appendTo !== undefined ? { appendTo } : {};
  if (isPrd(c)) c.send({ type: 'message', channel, event: 'chat.message', data, id, ...extra });
  else c.send({ id, action: 'publish', payload: { channel, type: 'chat.message', data, ...extra } });
  return c.next((m) => m.replyTo === id, 5000, from);
}

let seq = 0;
/** Subscribes (with a position to recover from, or none) and returns the confirmation's outcome for the channel. */
async function subscribe(c: TestClient, channel: string, since?: StreamPosition): Promise<{ position: StreamPosition; recovered?: boolean; missed?: number; from: number }> {
  const id = `s${++seq}`;
  const from = c.messages.length;
  if (isPrd(c)) c.send({ type: 'subscribe', channel, id, data: since ? { since } : {} });
  else c.send({ id, action: 'subscribe', payload: { channels: [since ? { channel, since } : channel] } });
  const reply = await c.next((m) => m.replyTo === id, 5000, from);
  const outcome = isPrd(c) ? reply.data : reply.data.channels[0];
  expect(outcome, JSON.stringify(reply)).toHaveProperty('position');
  return { ...outcome, from };
}

/** A history read over either dialect: the publications of the reply. */
async function history(c: TestClient, channel: string, since?: StreamPosition): Promise<Msg[]> {
  const id = `h${++seq}`;
  const from = c.messages.length;
  if (isPrd(c)) c.send({ type: 'history', channel, id, data: since ? { since } : {} });
  else c.send({ id, action: 'history', payload: { channel, ...(since ? { since } : {}) } });
  const reply = await c.next((m) => m.replyTo === id, 5000, from);
  expect(reply.data?.publications, JSON.stringify(reply)).toBeDefined();
  return reply.data.publications as Msg[];
}

async function http(node: Node, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: Msg }> {
  const res = await fetch(`${node.http}${path}`, {
    method, headers: { authorization: `Bearer ${node.apiKey}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as Msg };
}

/** What a reader ends with, applying what it is handed by the rule of docs/protocol.md ("Appends"). */
class Reader {
  readonly messages = new Map<string, { data: unknown; applied: number }>();
  readonly problems: string[] = [];

  apply(p: Msg): void {
    if (p.appendTo === undefined) {
      this.messages.set(p.id, { data: p.data, applied: p.through ?? p.offset });
      return;
    }
    const m = this.messages.get(p.appendTo);
    if (!m) this.problems.push(`append ${p.offset} to unknown message ${p.appendTo}`);
    else if (p.offset > m.applied) {
      m.data = applyAppend(m.data, p.data);
      m.applied = p.offset;
    }
  }

  text(id: string): unknown {
    return (this.messages.get(id)?.data as { text?: unknown } | undefined)?.text;
  }
}

function pubsOf(c: TestClient, channel: string, from = 0): Msg[] {
  return c.messages.slice(from).filter((m) => isPublication(m, channel));
}

/** The fields every dialect carries for a publication, to compare across dialects and encodings. */
function core(p: Msg): unknown {
  return { id: p.id, offset: p.offset, appendTo: p.appendTo, data: p.data };
}

/**
 * The scenario, on two nodes (the same node twice for one gateway). Returns nothing: it asserts.
 */
async function scenario(a: Node, b: Node): Promise<void> {
  const ch = `agent:ans_${randomBytes(5).toString('hex')}`;
  const tokens = Array.from({ length: 30 }, (_, i) => `tok${i} `);

  const producer = await prp(a, 'agent_1');
  const liveB = await prp(b, 'usr_live');
  const livePrd = await prd(a, 'usr_live2');
  const livePack = await prp(b, 'usr_live3', true);
  const dropper = await prp(b, 'usr_rec');
  for (const c of [liveB, livePrd, livePack, dropper]) await subscribe(c, ch);

  const rootAck = await publish(producer, ch, { text: '', step: 'answer' }, 'ans');
  expect(rootAck.type).toBe('ack');
  const rootOffset = rootAck.data.offset as number;
  const epoch = rootAck.data.epoch as string;
  const appendOffsets: number[] = [];
  const stream = async (c: TestClient, from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const ack = await publish(c, ch, { text: tokens[i] }, `ans.${i}`, 'ans');
      expect(ack.type, JSON.stringify(ack)).toBe('ack');
      appendOffsets.push(ack.data.offset as number);
    }
  };
  await stream(producer, 0, 10);

  // A subscriber drops in the middle of the answer, after the 10th append.
  const lastSeen = appendOffsets[9]!;
  await dropper.next((m) => isPublication(m, ch) && m.offset === lastSeen);
  const seenBeforeDrop = pubsOf(dropper, ch);
  await dropper.close();

  // A late joiner (PRD, the other node): the answer so far is one message, with `through`.
  const late = await prd(b, 'usr_late');
  const lateSub = await subscribe(late, ch);
  const lateHist = await history(late, ch);
  expect(lateHist.map((p) => [p.id, p.through, p.appendTo, p.data])).toEqual([['ans', lastSeen, undefined, { text: tokens.slice(0, 10).join(''), step: 'answer' }]]);

  // The producer reconnects to the other node, over the other dialect, and goes on appending.
  await producer.close();
  const producerPrd = await prd(b, 'agent_1');
  await stream(producerPrd, 10, 20);

  // A backend message and an append to it, over HTTP, through both nodes.
  const note = await http(a, 'POST', '/v1/publish', { channel: ch, type: 'chat.message', data: 'note:', id: 'note' });
  expect(note.status, JSON.stringify(note.body)).toBe(200);
  const noteAppend = await http(b, 'POST', '/v1/publish', { channel: ch, type: 'chat.message', data: ' one', id: 'note.1', appendTo: 'note' });
  expect(noteAppend.status, JSON.stringify(noteAppend.body)).toBe(200);

  // Refusals: another publisher's message (both dialects, HTTP), an append, nothing; the request named, the connection kept.
  const viewer = await prp(a, 'usr_viewer');
  const viewerPrd = await prd(b, 'usr_viewer');
  for (const [c, id] of [[viewer, 'v1'], [viewerPrd, 'v2']] as const) {
    const e = await publish(c, ch, { text: 'not yours' }, id, 'ans');
    expect(e.type).toBe('error');
    expect(e.data).toMatchObject({ code: ErrorCode.APPEND_NOT_ALLOWED, details: { requestId: id, channel: ch, appendTo: 'ans' } });
    const ok = await publish(c, ch, { text: 'my own' }, `${id}.own`);
    expect(ok.type, 'the connection survives and still publishes').toBe('ack');
  }
  const missing = await publish(producerPrd, ch, { text: 'x' }, 'x1', 'no-such-message');
  expect(missing.data).toMatchObject({ code: ErrorCode.APPEND_TARGET_NOT_FOUND, details: { requestId: 'x1', appendTo: 'no-such-message' } });
  const toAppend = await publish(producerPrd, ch, { text: 'x' }, 'x2', 'ans.3');
  expect(toAppend.data).toMatchObject({ code: ErrorCode.APPEND_TARGET_NOT_FOUND, details: { requestId: 'x2', appendTo: 'ans.3' } });
  const httpOthers = await http(a, 'POST', '/v1/publish', { channel: ch, data: { text: 'x' }, id: 'h1', appendTo: 'ans' });
  expect(httpOthers.status).toBe(403);
  expect(httpOthers.body.error).toMatchObject({ code: ErrorCode.APPEND_NOT_ALLOWED, details: { channel: ch, appendTo: 'ans', id: 'h1' } });
  const httpMissing = await http(b, 'POST', '/v1/publish', { channel: ch, data: { text: 'x' }, id: 'h2', appendTo: 'gone' });
  expect(httpMissing.status).toBe(404);
  expect(httpMissing.body.error.code).toBe(ErrorCode.APPEND_TARGET_NOT_FOUND);
  // A retried append (same id) is a duplicate: acknowledged again, applied once.
  const again = await publish(producerPrd, ch, { text: tokens[19] }, 'ans.19', 'ans');
  expect(again.data).toMatchObject({ duplicate: true, offset: appendOffsets[19] });

  await stream(producerPrd, 20, 30);
  const top = appendOffsets[29]!;
  // 1 answer + 30 appends + note + its append + the viewers' two messages.
  expect(top).toBe(rootOffset + 34);

  // Live subscribers, on both nodes, dialects and encodings: every publication once, in order.
  const full = tokens.join('');
  let reference: Msg[] = [];
  for (const c of [liveB, livePrd, livePack]) {
    await c.next((m) => isPublication(m, ch) && m.offset === top, 10_000);
    const got = pubsOf(c, ch);
    expect(got.map((p) => p.offset)).toEqual(Array.from({ length: top - rootOffset + 1 }, (_, i) => rootOffset + i));
    expect(got.filter((p) => p.appendTo === 'ans').map((p) => p.offset)).toEqual(appendOffsets);
    if (reference.length === 0) reference = got;
    else expect(got.map(core)).toEqual(reference.map(core));
    const r = new Reader();
    got.forEach((p) => r.apply(p));
    expect(r.problems).toEqual([]);
    expect(r.text('ans')).toBe(full);
    expect(r.messages.get('note')?.data).toBe('note: one');
  }

  // The subscriber that dropped recovers exactly what it missed: the raw publications after its position.
  const back = await prp(a, 'usr_rec');
  const rec = await subscribe(back, ch, { epoch, offset: lastSeen });
  expect(rec).toMatchObject({ recovered: true, missed: top - lastSeen });
  await back.next((m) => isPublication(m, ch) && m.offset === top);
  const missed = pubsOf(back, ch, rec.from);
  expect(missed.map(core)).toEqual(reference.filter((p) => p.offset > lastSeen).map(core));
  const backReader = new Reader();
  [...seenBeforeDrop, ...missed].forEach((p) => backReader.apply(p));
  expect(backReader.text('ans')).toBe(full);

  // The late joiner: the compacted message, then the live appends after `through`: the same text.
  await late.next((m) => isPublication(m, ch) && m.offset === top);
  const lateReader = new Reader();
  lateHist.forEach((p) => lateReader.apply(p));
  const lateLive = pubsOf(late, ch, lateSub.from);
  expect(lateLive[0]!.offset).toBe(lateSub.position.offset + 1);
  lateLive.forEach((p) => lateReader.apply(p));
  expect(lateReader.problems).toEqual([]);
  expect(lateReader.text('ans')).toBe(full);

  // History without a position (WS both dialects, HTTP both nodes): messages, compacted; with one: raw.
  const noteOffset = note.body.offset as number;
  const compacted = [
    ['ans', rootOffset, top, { text: full, step: 'answer' }],
    ['note', noteOffset, noteAppend.body.offset, 'note: one'],
    ['v1.own', expect.any(Number), undefined, { text: 'my own' }],
    ['v2.own', expect.any(Number), undefined, { text: 'my own' }],
  ];
  const shape = (ps: Msg[]) => ps.map((p) => [p.id, p.offset, p.through, p.data]);
  expect(shape(await history(viewer, ch))).toEqual(compacted);
  expect(shape(await history(viewerPrd, ch))).toEqual(compacted);
  for (const n of [a, b]) {
    const h = await http(n, 'GET', `/v1/channels/${encodeURIComponent(ch)}/history`);
    expect(h.status).toBe(200);
    expect(shape(h.body.publications)).toEqual(compacted);
    expect(h.body.publications.some((p: Msg) => p.appendTo !== undefined)).toBe(false);
    const raw = await http(n, 'GET', `/v1/channels/${encodeURIComponent(ch)}/history?since_epoch=${epoch}&since_offset=${lastSeen}`);
    expect(raw.body.publications.map(core)).toEqual(reference.filter((p) => p.offset > lastSeen).map(core));
  }
  expect((await history(viewerPrd, ch, { epoch, offset: lastSeen })).map(core)).toEqual(reference.filter((p) => p.offset > lastSeen).map(core));
  // `limit` counts messages.
  const last2 = await http(a, 'GET', `/v1/channels/${encodeURIComponent(ch)}/history?limit=2`);
  expect(last2.body.publications.map((p: Msg) => p.id)).toEqual(['v1.own', 'v2.own']);
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

describe('appends on one gateway (memory broker)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ namespaces: namespacesWith(namespace('small', { historySize: 2 }), namespace('gauge', { delivery: 'latest', latestBy: 'key' })) });
  });
  afterAll(async () => {
    await gw.close();
  });

  it('live in order, exact recovery mid-answer, a late joiner reads one message with `through`, refusals keep the connection', async () => {
    await scenario(nodeOf(gw), nodeOf(gw));
  });

  it('history size counts messages: a 50-append answer is one message; recovery inside it is still exact', async () => {
    const node = nodeOf(gw);
    const ch = `small:t_${randomBytes(5).toString('hex')}`;
    const producer = await prp(node, 'agent_1');
    const root = await publish(producer, ch, { text: '' }, 'ans');
    const parts = Array.from({ length: 50 }, (_, i) => `${i},`);
    for (const [i, t] of parts.entries()) expect((await publish(producer, ch, { text: t }, `ans.${i}`, 'ans')).type).toBe('ack');
    expect((await publish(producer, ch, { text: 'q2' }, 'q2')).type).toBe('ack');
    const h = await http(node, 'GET', `/v1/channels/${encodeURIComponent(ch)}/history`);
    expect(h.body.publications.map((p: Msg) => [p.id, p.through, p.data])).toEqual([['ans', 51, { text: parts.join('') }], ['q2', undefined, { text: 'q2' }]]);
    const reader = await prp(node, 'usr_r');
    const rec = await subscribe(reader, ch, { epoch: root.data.epoch, offset: 25 });
    expect(rec).toMatchObject({ recovered: true, missed: 27 });
    await reader.next((m) => isPublication(m, ch) && m.offset === 52);
    expect(pubsOf(reader, ch, rec.from).map((p) => p.offset)).toEqual(Array.from({ length: 27 }, (_, i) => 26 + i));
    // A raw read after a position inside the answer is not bounded by the size in messages.
    const raw = await http(node, 'GET', `/v1/channels/${encodeURIComponent(ch)}/history?since_epoch=${root.data.epoch}&since_offset=25`);
    expect(raw.body.publications.map((p: Msg) => p.offset)).toEqual(Array.from({ length: 27 }, (_, i) => 26 + i));
    // A third message: the answer goes, with its appends, and can no longer be appended to.
    expect((await publish(producer, ch, { text: 'q3' }, 'q3')).type).toBe('ack');
    const after = await http(node, 'GET', `/v1/channels/${encodeURIComponent(ch)}/history`);
    expect(after.body.publications.map((p: Msg) => p.id)).toEqual(['q2', 'q3']);
    expect(after.body.earliestOffset).toBe(52);
    expect((await publish(producer, ch, { text: 'late' }, 'ans.late', 'ans')).data.code).toBe(ErrorCode.APPEND_TARGET_NOT_FOUND);
  });

  it('a malformed appendTo is INVALID_MESSAGE in both dialects and over HTTP; a latest-wins namespace refuses appends', async () => {
    const node = nodeOf(gw);
    const ch = `agent:t_${randomBytes(5).toString('hex')}`;
    const c = await prp(node, 'agent_1');
    const d = await prd(node, 'agent_1');
    for (const client of [c, d]) {
      const from = client.messages.length;
      const id = `bad${++seq}`;
      if (isPrd(client)) client.send({ type: 'message', channel: ch, data: 'x', id, appendTo: 42 });
      else client.send({ id, action: 'publish', payload: { channel: ch, data: 'x', appendTo: '' } });
      const e = await client.next((m) => m.replyTo === id, 5000, from);
      expect(e.data.code).toBe(ErrorCode.INVALID_MESSAGE);
    }
    expect((await http(node, 'POST', '/v1/publish', { channel: ch, data: 'x', appendTo: 'a b' })).status).toBe(400);
    // Latest-wins delivery skips publications for a subscriber that is behind: no appends there.
    const gauge = `gauge:t_${randomBytes(5).toString('hex')}`;
    expect((await publish(c, gauge, { key: 'k', text: 'a' }, 'g1')).type).toBe('ack');
    const refused = await publish(c, gauge, { key: 'k', text: 'b' }, 'g2', 'g1');
    expect(refused.data).toMatchObject({ code: ErrorCode.PERMISSION_DENIED, details: { requestId: 'g2', appendTo: 'g1' } });
    expect((await http(node, 'POST', '/v1/publish', { channel: gauge, data: 'x', appendTo: 'g1' })).status).toBe(403);
    expect((await http(node, 'POST', '/v1/publish', { channels: [ch], data: 'x', appendTo: 'a' })).status).toBe(400);
  });
});

const probe = await probeRedis();

describeWithRedis('appends on two gateway processes on one Redis', probe, () => {
  let nodes: GatewayProcess[] = [];
  const prefix = uniquePrefix('append');
  beforeAll(async () => {
    nodes = await startNodes(2, { broker: probe.url, prefix });
  }, 90_000);
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    await deleteKeys(probe.url, prefix);
  });

  it('the same scenario across nodes: live in order, exact recovery, one compacted message with `through`, refusals', async () => {
    await scenario(nodeOfProcess(nodes[0]!), nodeOfProcess(nodes[1]!));
  }, 60_000);
});
