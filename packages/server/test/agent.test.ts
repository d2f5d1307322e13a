/**
 * Agent runs over channels (issue 17), end to end over real sockets: the producer runtime
 * (`serveAgent`) and the user side (`Conversation`) of @signalbox/client against a real gateway,
 * on the memory engine (one node) and on Redis (two nodes, REDIS_URL, a unique key prefix): the
 * producer on node A, users spread over both, so inputs, cancels and deltas cross the nodes.
 *
 * A "cut" is the user's socket terminated under it (no close handshake, as a network change does);
 * the SDK reconnects and its subscription recovers from its last position.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  Conversation, SignalboxClient, serveAgent, type AgentHandler, type AgentRun, type AgentServer, type PublicationMessage, type RunView,
  type ServerMessage, type TurnPolicy, type WebSocketConstructor,
} from '../../client/src/node.js';
import { mintToken, type MintOptions } from '../src/index.js';
import { CHROMIUM_ARGS, describeWithChromium } from './helpers/chromium.js';
import { CLUSTER_SECRET } from './helpers/cluster.js';
import { startGateway, uniqueChannel, type TestGateway } from './helpers/gateway.js';
import { deleteKeys, describeWithRedis, probeRedis, uniquePrefix } from './helpers/redis.js';
import { quietPeriod, until } from './helpers/wait.js';

const probe = await probeRedis();

/** One deployment under test: its nodes' WebSocket URLs and a token minter. */
interface Deployment {
  /** Node i's `/v1/ws/prps` URL (one node on memory: every index is that node). */
  url(node: number): string;
  token(sub: string, grants: Omit<MintOptions, 'sub'>): Promise<string>;
}

/**
 * A WebSocket whose instances the test can terminate (a network cut): now (`cut`), or right after
 * the next frame containing `marker` has been written to the socket (`cutAfterFrame`).
 */
function cuttable(): { WebSocket: WebSocketConstructor; cut: () => void; cutAfterFrame: (marker: string) => void } {
  const sockets: WebSocket[] = [];
  let armed: string | undefined;
  class Tracked extends WebSocket {
    constructor(...args: ConstructorParameters<typeof WebSocket>) {
      super(...args);
      sockets.push(this);
    }

    override send(data: unknown, ...rest: unknown[]): void {
      if (armed !== undefined && typeof data === 'string' && data.includes(armed)) {
        armed = undefined;
        super.send(data, () => this.terminate());
        return;
      }
      (super.send as (...a: unknown[]) => void)(data, ...rest);
    }
  }
  return {
    WebSocket: Tracked as unknown as WebSocketConstructor,
    cut: () => { for (const s of sockets) if (s.readyState === WebSocket.OPEN) s.terminate(); },
    cutAfterFrame: (marker) => { armed = marker; },
  };
}

/** `n` deterministic tokens ("w0 w1 …"), one every `1000 / perSecond` ms, until the signal fires. */
async function* tokens(n: number, perSecond: number, signal?: AbortSignal): AsyncGenerator<string> {
  const start = Date.now();
  for (let i = 0; i < n; i++) {
    if (signal?.aborted) return;
    const due = start + (i * 1000) / perSecond;
    const wait = due - Date.now();
    // Pacing the producer (a model's token rate), not waiting for a condition.
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    yield `w${i} `;
  }
}

function expected(n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += `w${i} `;
  return s;
}

interface Watched {
  client: SignalboxClient;
  conv: Conversation;
  /** Every delta's text, in order. */
  deltas: string[];
  refusals: ServerMessage[];
  cut: () => void;
  cutAfterFrame: (marker: string) => void;
}

function suite(label: string, deploy: () => Deployment, nodes: number): void {
  describe(label, () => {
    let d: Deployment;
    beforeAll(() => { d = deploy(); });
    const clients: SignalboxClient[] = [];
    afterAll(() => { for (const c of clients) c.disconnect(); });

    const other = nodes > 1 ? 1 : 0;

    async function connect(sub: string, grants: Omit<MintOptions, 'sub'>, node = 0, WS?: WebSocketConstructor): Promise<{ client: SignalboxClient; refusals: ServerMessage[] }> {
      const client = new SignalboxClient({
        url: d.url(node), token: await d.token(sub, grants), reconnectInterval: 50, maxReconnectInterval: 200, ...(WS ? { WebSocket: WS } : {}),
      });
      clients.push(client);
      const refusals: ServerMessage[] = [];
      client.on('*', (m) => { if (m.type === 'error' && (m.data as { code?: string }).code === 'RATE_LIMITED') refusals.push(m); });
      client.on('error', () => {});
      await client.connect();
      return { client, refusals };
    }

    async function producer(channel: string, handler: AgentHandler, turnPolicy?: TurnPolicy): Promise<{ agent: AgentServer; client: SignalboxClient; refusals: ServerMessage[] }> {
      const { client, refusals } = await connect(`agent_${channel.slice(-6)}`, { channels: [channel], handle: [channel] }, 0);
      const agent = serveAgent(client, { channel, handler, ...(turnPolicy ? { turnPolicy } : {}) });
      await agent.ready;
      return { agent, client, refusals };
    }

    /**
     * A user's client and Conversation. `holdHistoryFor`: the conversation's history read waits
     * until that many deltas have arrived live on its subscription, so the compacted read's
     * `through` covers deltas the live stream also delivered (the overlap a join must resolve).
     */
    async function user(channel: string, sub: string, node: number, opts: { holdHistoryFor?: number } = {}): Promise<Watched> {
      const net = cuttable();
      const { client, refusals } = await connect(sub, { channels: [channel], call: [channel] }, node, net.WebSocket);
      const hold = opts.holdHistoryFor;
      if (hold !== undefined) {
        let live = 0;
        client.on('agent.delta', () => { live++; });
        const read = client.history.bind(client);
        client.history = async (ch, o) => {
          await until(() => live >= hold, { label: `${hold} live deltas before the history read` });
          return read(ch, o);
        };
      }
      const conv = new Conversation(client, channel);
      const deltas: string[] = [];
      conv.on('delta', (e) => { deltas.push(e.text); });
      await conv.ready;
      return { client, conv, deltas, refusals, cut: net.cut, cutAfterFrame: net.cutAfterFrame };
    }

    /** A raw subscriber recording every publication of the channel, in order. */
    async function recorder(channel: string, node: number): Promise<PublicationMessage[]> {
      const { client } = await connect('usr_recorder', { channels: [channel] }, node);
      const got: PublicationMessage[] = [];
      const sub = client.subscribe(channel);
      sub.on('publication', (m) => { got.push(m); });
      await until(() => sub.state === 'subscribed', { label: 'the recorder subscribed' });
      return got;
    }

    it('a 2,000-token answer at 300 tokens/s reaches 3 users complete and in order, with zero RATE_LIMITED', async () => {
      const channel = uniqueChannel('agent');
      const N = 2000;
      const p = await producer(channel, (_input, run) => run.stream(tokens(N, 300, run.signal)));
      const users = await Promise.all([user(channel, 'usr_a', 0), user(channel, 'usr_b', other), user(channel, 'usr_c', other)]);
      const started = Date.now();
      const run = await users[0]!.conv.send('write me a long answer');
      const done = await Promise.all(users.map((u) => finished(u.conv, run.runId, 20_000)));
      const seconds = (Date.now() - started) / 1000;
      for (const [i, u] of users.entries()) {
        expect(done[i]!.status).toBe('completed');
        expect(done[i]!.text).toBe(expected(N));
        // Every delta once, in order: their concatenation is the answer.
        expect(u.deltas.join('')).toBe(expected(N));
        expect(u.refusals).toEqual([]);
      }
      expect(p.refusals).toEqual([]);
      // Batched: far fewer appends than tokens (40 ms windows at 300 tokens/s: ~12 tokens each).
      expect(users[0]!.deltas.length).toBeLessThan(N / 5);
      expect(seconds).toBeGreaterThan(N / 300 - 1);
    }, 40_000);

    it('a user whose connection is cut 3 times mid-answer ends with exactly the producer\'s text', async () => {
      const channel = uniqueChannel('agent');
      const N = 600;
      let produced = '';
      const p = await producer(channel, async (_input, run) => {
        await run.stream(tokens(N, 300, run.signal));
        produced = run.text;
      });
      const u = await user(channel, 'usr_cut', other);
      const states: string[] = [];
      u.client.on('$state', (s) => { states.push(s.to); });
      const resubscribes: unknown[] = [];
      u.client.getSubscription(channel)!.on('subscribed', (e) => { resubscribes.push({ recovered: e.recovered, reason: e.reason, missed: e.missed }); });
      const syncs: string[] = [];
      u.conv.on('synced', (e) => { syncs.push(e.reason); });
      const run = await u.conv.send('go');
      for (const share of [0.2, 0.45, 0.7]) {
        await until(() => u.deltas.join('').length >= expected(N * share).length, { label: `${share * 100}% of the answer`, timeoutMs: 10_000 });
        const before = states.filter((s) => s === 'reconnecting').length;
        u.cut();
        // The client noticed the cut (a new `reconnecting`), then came back.
        await until(() => states.filter((s) => s === 'reconnecting').length > before && u.client.state === 'connected', { label: 'reconnected after the cut', timeoutMs: 10_000 });
      }
      const end = await finished(u.conv, run.runId, 15_000);
      const why = `states ${states.join(',')}; resubscribes ${JSON.stringify(resubscribes)}; syncs ${syncs.join(',')}`;
      expect(states.filter((s) => s === 'reconnecting').length, why).toBeGreaterThanOrEqual(3);
      expect(produced, why).toBe(expected(N));
      expect(end.text, why).toBe(produced);
      // No token missing or twice: the deltas as delivered, concatenated.
      expect(u.deltas.join(''), why).toBe(produced);
      expect((await p.agent.finished(run.runId)).text).toBe(produced);
    }, 40_000);

    it('a user who sends and drops before the first token gets the whole answer on return', async () => {
      const channel = uniqueChannel('agent');
      const N = 300;
      let release!: () => void;
      const gate = new Promise<void>((r) => { release = r; });
      let invoked = false;
      await producer(channel, async (_input, run) => {
        invoked = true;
        await gate;
        await run.stream(tokens(N, 600, run.signal));
      });
      const u = await user(channel, 'usr_drop', other);
      const sent = u.conv.send('answer me while I am away');
      // The input reached the agent (its run exists); the user drops before any token.
      await until(() => invoked, { label: 'the agent received the input' });
      u.cut();
      expect(u.deltas).toEqual([]);
      release();
      const run = await sent;
      const end = await finished(u.conv, run.runId, 15_000);
      expect(end.status).toBe('completed');
      expect(end.text).toBe(expected(N));
      expect(u.deltas.join('')).toBe(expected(N));
    }, 30_000);

    it('a user cut the instant it sends: the input is sent again with its inputId, and there is one run, answered whole', async () => {
      const channel = uniqueChannel('agent');
      const N = 200;
      let runs = 0;
      await producer(channel, async (_input, run) => {
        runs++;
        await run.stream(tokens(N, 1000, run.signal));
      });
      const raw = await recorder(channel, 0);
      const u = await user(channel, 'usr_instant', other);
      let calls = 0;
      const call = u.client.call.bind(u.client);
      u.client.call = ((...args: Parameters<typeof call>) => { calls++; return call(...args); }) as typeof call;
      // The call is written; the socket dies before its answer can come back.
      u.cutAfterFrame('in-instant-1');
      const sent = u.conv.send('are you there?', { inputId: 'in-instant-1' });
      const run = await sent;
      const end = await finished(u.conv, run.runId, 10_000);
      expect(end).toMatchObject({ status: 'completed', text: expected(N), inputId: 'in-instant-1' });
      expect(calls).toBeGreaterThanOrEqual(2);
      await until(() => raw.some((m) => m.type === 'agent.run.completed'), { label: 'the recorder saw the end' });
      expect(raw.filter((m) => m.type === 'agent.input')).toHaveLength(1);
      expect(runs).toBe(1);
    });

    it('a late joiner gets the answer so far as one message, then the live deltas; its text equals the producer\'s at the end', async () => {
      const channel = uniqueChannel('agent');
      const N = 900;
      const p = await producer(channel, (_input, run) => run.stream(tokens(N, 300, run.signal)));
      const first = await user(channel, 'usr_first', 0);
      const run = await first.conv.send('go');
      await until(() => first.deltas.join('').length >= expected(N / 3).length, { label: 'a third of the answer' });
      // What a joiner reads: the compacted history, one message for the answer so far.
      const { client: reader } = await connect('usr_reader', { channels: [channel] }, other);
      const h = await reader.history(channel);
      const answers = h.publications.filter((m) => m.type === 'agent.answer');
      expect(answers).toHaveLength(1);
      expect(h.publications.filter((m) => m.type === 'agent.delta')).toEqual([]);
      const sofar = (answers[0]!.data as { text: string }).text;
      expect(sofar.length).toBeGreaterThan(0);
      expect(expected(N).startsWith(sofar)).toBe(true);
      expect(answers[0]!.through).toBeGreaterThan(answers[0]!.offset);

      const late = await user(channel, 'usr_late', other, { holdHistoryFor: 3 });
      const joined = late.conv.run(run.runId)!;
      expect(joined.status).toBe('running');
      expect(joined.text.length).toBeGreaterThanOrEqual(sofar.length);
      expect(late.deltas.length).toBeLessThan(first.deltas.length);
      const end = await finished(late.conv, run.runId, 15_000);
      expect(end.text).toBe(expected(N));
      // The answer so far from the one message, then the live deltas: together, exactly the text.
      expect(joined.text + late.deltas.join('')).toBe(expected(N));
      expect((await p.agent.finished(run.runId)).text).toBe(expected(N));
    }, 30_000);

    it('history of a finished run is compacted: the answer is one message with the whole text, no delta on its own', async () => {
      const channel = uniqueChannel('agent');
      const N = 200;
      await producer(channel, (_input, run) => run.stream(tokens(N, 1000, run.signal)));
      const u = await user(channel, 'usr_h', 0);
      const run = await u.conv.send('short one');
      await finished(u.conv, run.runId, 10_000);
      const { client: reader } = await connect('usr_reader2', { channels: [channel] }, other);
      const h = await reader.history(channel);
      const types = h.publications.map((m) => m.type).filter((t) => t !== 'agent.state');
      expect(types).toEqual(['agent.input', 'agent.run.started', 'agent.answer', 'agent.run.completed']);
      const answer = h.publications.find((m) => m.type === 'agent.answer')!;
      expect(answer.data).toEqual({ runId: run.runId, text: expected(N) });
      expect(answer.through).toBeGreaterThan(answer.offset);
      expect(u.deltas.length).toBeGreaterThan(1);
      // A late Conversation rebuilds the run from it alone.
      const late = await user(channel, 'usr_h2', other);
      expect(late.conv.run(run.runId)).toMatchObject({ status: 'completed', text: expected(N), input: 'short one', from: 'usr_h' });
      expect(late.deltas).toEqual([]);
    });

    it(`cancel stops the producer within 200 ms${nodes > 1 ? ' (user on the other node)' : ''}: the AbortSignal fires, no delta after cancelled`, async () => {
      const channel = uniqueChannel('agent');
      let abortedAt = 0;
      let writesAfterAbort = 0;
      let sawSignal = false;
      const p = await producer(channel, async (_input, run: AgentRun) => {
        run.signal.addEventListener('abort', () => { abortedAt = Date.now(); sawSignal = true; });
        // A producer that keeps writing a little after the abort: the runtime must drop it.
        for await (const t of tokens(5000, 300)) {
          if (run.signal.aborted && ++writesAfterAbort > 20) break;
          run.write(t);
        }
      });
      const raw = await recorder(channel, other);
      const u = await user(channel, 'usr_cancel', other);
      const run = await u.conv.send('a long one');
      await until(() => u.deltas.length >= 5, { label: 'a few deltas' });
      const asked = Date.now();
      const result = await u.conv.cancel(run.runId);
      expect(sawSignal).toBe(true);
      expect(abortedAt - asked).toBeLessThanOrEqual(200);
      expect(result).toMatchObject({ runId: run.runId, cancelled: true, status: 'cancelled' });
      const end = await finished(u.conv, run.runId, 5000);
      expect(end).toMatchObject({ status: 'cancelled', cancelReason: 'cancel', cancelledBy: 'usr_cancel' });
      // The text so far is exactly what readers have.
      expect(end.text).toBe(result.text);
      expect(u.deltas.join('')).toBe(result.text);
      expect(expected(5000).startsWith(result.text)).toBe(true);
      // The raw stream: nothing of the run after its cancelled event.
      await until(() => raw.some((m) => m.type === 'agent.run.cancelled'), { label: 'the recorder saw cancelled' });
      await quietPeriod(300);
      const at = raw.findIndex((m) => m.type === 'agent.run.cancelled');
      expect(raw.slice(at + 1).filter((m) => m.type === 'agent.delta')).toEqual([]);
      expect(writesAfterAbort).toBeGreaterThan(0);
      // Cancelling a run that has ended: a clear answer, nothing changes.
      expect(await u.conv.cancel(run.runId)).toEqual({ runId: run.runId, cancelled: false, status: 'cancelled', text: result.text });
      expect((await p.agent.finished(run.runId)).status).toBe('cancelled');
    }, 30_000);

    it('cancel of a completed run, of an unknown run, and with nothing running: documented answers', async () => {
      const channel = uniqueChannel('agent');
      await producer(channel, (input) => `echo: ${input.text}`);
      const u = await user(channel, 'usr_c2', other);
      const run = await u.conv.send('hi');
      await finished(u.conv, run.runId, 5000);
      expect(await u.conv.cancel(run.runId)).toEqual({ runId: run.runId, cancelled: false, status: 'completed', text: 'echo: hi' });
      await expect(u.conv.cancel('run_nope')).rejects.toMatchObject({ code: 'RPC_FAILED', details: { handlerCode: 'RUN_NOT_FOUND' } });
      await expect(u.client.call(channel, 'agent.cancel', {})).rejects.toMatchObject({ code: 'RPC_FAILED', details: { handlerCode: 'NO_ACTIVE_RUN' } });
    });

    describe('turn policies under two concurrent inputs', () => {
      async function twoInputs(policy: TurnPolicy) {
        const channel = uniqueChannel('agent');
        const aborted: string[] = [];
        const p = await producer(channel, async (input, run) => {
          run.signal.addEventListener('abort', () => { aborted.push(input.text); });
          await run.stream(tokens(90, 300, run.signal));
        }, policy);
        const raw = await recorder(channel, 0);
        const a = await user(channel, 'usr_one', 0);
        const b = await user(channel, 'usr_two', other);
        const results = await Promise.allSettled([a.conv.send('first'), b.conv.send('second')]);
        return { p, raw, a, b, results, aborted, channel };
      }

      it('reject: one input runs, the other is refused AGENT_BUSY', async () => {
        const { results, a, raw } = await twoInputs('reject');
        const ok = results.filter((r): r is PromiseFulfilledResult<RunView> => r.status === 'fulfilled');
        const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
        expect(ok).toHaveLength(1);
        expect(refused).toHaveLength(1);
        expect(refused[0]!.reason).toMatchObject({ code: 'RPC_FAILED', details: { handlerCode: 'AGENT_BUSY' } });
        const end = await finished(a.conv, ok[0]!.value.runId, 10_000);
        expect(end).toMatchObject({ status: 'completed', text: expected(90) });
        // The refused input left no trace in the stream: one input, one run.
        await until(() => raw.some((m) => m.type === 'agent.run.completed'), { label: 'the recorder saw the end' });
        expect(raw.filter((m) => m.type === 'agent.input')).toHaveLength(1);
        expect(raw.filter((m) => m.type === 'agent.run.started')).toHaveLength(1);
      });

      it('queue: both run, one after the other, each complete', async () => {
        const { results, a, raw } = await twoInputs('queue');
        const runs = results.map((r) => (r as PromiseFulfilledResult<RunView>).value);
        expect(runs.map((r) => r.runId)).toHaveLength(2);
        expect(runs.map((r) => r.status).sort()).toEqual(['queued', 'running']);
        const ends = await Promise.all(runs.map((r) => finished(a.conv, r.runId, 10_000)));
        for (const e of ends) expect(e).toMatchObject({ status: 'completed', text: expected(90) });
        // In the stream: the second starts only after the first completed.
        const [firstRun, secondRun] = runs[0]!.status === 'running' ? runs : [runs[1]!, runs[0]!];
        await until(() => raw.filter((m) => m.type === 'agent.run.completed').length === 2, { label: 'both completed at the recorder' });
        const offsetOf = (type: string, runId: string) => raw.find((m) => m.type === type && (m.data as { runId: string }).runId === runId)!.offset;
        expect(offsetOf('agent.run.completed', firstRun!.runId)).toBeLessThan(offsetOf('agent.run.started', secondRun!.runId));
      });

      it('interrupt: the newer input cancels the running one (interrupted) and runs', async () => {
        const { results, a, aborted } = await twoInputs('interrupt');
        const runs = results.map((r) => (r as PromiseFulfilledResult<RunView>).value);
        expect(runs).toHaveLength(2);
        const ends = await Promise.all(runs.map((r) => finished(a.conv, r.runId, 10_000)));
        const cancelled = ends.filter((e) => e.status === 'cancelled');
        const completed = ends.filter((e) => e.status === 'completed');
        expect(cancelled).toHaveLength(1);
        expect(completed).toHaveLength(1);
        expect(cancelled[0]).toMatchObject({ cancelReason: 'interrupted' });
        expect(completed[0]!.text).toBe(expected(90));
        expect(aborted).toEqual([cancelled[0]!.input]);
      });
    });

    it('a viewer without the producer\'s grant cannot publish deltas or progress as the agent, nor serve it', async () => {
      const channel = uniqueChannel('agent');
      await producer(channel, (_input, run) => run.stream(tokens(30, 1000)));
      const u = await user(channel, 'usr_owner', 0);
      const run = await u.conv.send('hi');
      await finished(u.conv, run.runId, 5000);
      const { client: viewer } = await connect('usr_viewer', { channels: [channel], publish: [channel], call: [channel] }, other);
      const answerId = `${run.runId}.answer`;
      await expect(viewer.publish(channel, { text: ' forged' }, { type: 'agent.delta', appendTo: answerId })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
      await expect(viewer.publish(channel, { agentId: 'a', prpId: 'p', progress: 99 }, { type: 'agent.progress' })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
      await expect(viewer.publish(channel, { text: 'done' }, { type: 'agent.run.completed' })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
      // Not even an append of another type: the answer is the agent's message.
      await expect(viewer.publish(channel, { text: ' forged' }, { type: 'chat.message', appendTo: answerId })).rejects.toMatchObject({ code: 'APPEND_NOT_ALLOWED' });
      await expect(serveAgent(viewer, { channel, handler: () => 'fake' }).ready).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
      // A reader without the call grant cannot send input.
      const { client: reader } = await connect('usr_readonly', { channels: [channel] }, other);
      await expect(new Conversation(reader, channel).send('let me in')).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
      const h = await viewer.history(channel);
      expect(h.publications.find((m) => m.type === 'agent.answer')!.data).toEqual({ runId: run.runId, text: expected(30) });
      // Without even the read grant, the conversation does not join.
      const { client: stranger } = await connect('usr_stranger', { channels: ['agent:elsewhere'] }, other);
      await expect(new Conversation(stranger, channel).ready).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    });

    it('human in the loop: the agent asks, waits (state waiting), and goes on with the answer; progress reaches the user with the PRP fields', async () => {
      const channel = uniqueChannel('agent');
      const progress = { agentId: 'agent_001', prpId: 'prp_789012', progress: 45, currentTask: 'Implementing JWT middleware', completedTasks: ['Setup authentication routes'], remainingTasks: ['Add tests'] };
      await producer(channel, async (_input, run) => {
        run.write('Plan ready. ');
        const verdict = await run.ask('Deploy to production?', { kind: 'approval' });
        await run.progress(progress);
        run.write(verdict === 'approve' ? 'Deploying.' : 'Stopped.');
      });
      const u = await user(channel, 'usr_hitl', other);
      const states: string[] = [];
      const got: unknown[] = [];
      u.conv.on('state', (s) => { states.push(s.state); });
      u.conv.on('progress', (p) => { got.push(p); });
      const asked = new Promise<{ askId: string; kind: string; options?: string[] }>((resolve) => u.conv.on('ask', (a) => { resolve(a); }));
      const run = await u.conv.send('ship it');
      const ask = await asked;
      expect(ask).toMatchObject({ kind: 'approval', options: ['approve', 'reject'] });
      await until(() => u.conv.agentState === 'waiting', { label: 'state waiting' });
      await u.conv.answer(ask.askId, 'approve');
      const end = await finished(u.conv, run.runId, 5000);
      expect(end.text).toBe('Plan ready. Deploying.');
      await until(() => u.conv.agentState === 'idle', { label: 'state idle' });
      expect(states).toEqual(['thinking', 'streaming', 'waiting', 'streaming', 'idle']);
      expect(got).toEqual([progress]);
      await expect(u.conv.answer(ask.askId, 'again')).rejects.toMatchObject({ code: 'RPC_FAILED', details: { handlerCode: 'ASK_NOT_FOUND' } });
    });
  });
}

/** The run's end, as the conversation sees it. */
function finished(conv: Conversation, runId: string, timeoutMs: number): Promise<RunView> {
  return Promise.race([
    conv.finished(runId),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`run ${runId} did not end within ${timeoutMs} ms: ${JSON.stringify(conv.run(runId))?.slice(0, 300)}`)), timeoutMs)),
  ]);
}

let memory: TestGateway;
beforeAll(async () => { memory = await startGateway(); });
afterAll(() => memory?.close());
suite('agent runs, memory engine', () => ({
  url: () => `${memory.ws}/v1/ws/prps`,
  token: (sub, grants) => memory.token({ sub, ...grants, publish: grants.publish ?? [], handle: grants.handle ?? [], call: grants.call ?? [] }),
}), 1);

describeWithRedis('agent runs, two nodes on Redis', probe, () => {
  const prefix = uniquePrefix('agent');
  let a: TestGateway;
  let b: TestGateway;
  beforeAll(async () => {
    const common = { broker: probe.url, redisPrefix: prefix, jwtSecret: CLUSTER_SECRET };
    [a, b] = await Promise.all([startGateway(common), startGateway(common)]);
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await deleteKeys(probe.url, prefix);
  });
  suite('A producer, users on both', () => ({
    url: (node) => `${(node === 0 ? a : b).ws}/v1/ws/prps`,
    token: (sub, grants) => mintToken(CLUSTER_SECRET, { sub, ttlSeconds: 3600, ...grants, publish: grants.publish ?? [], handle: grants.handle ?? [], call: grants.call ?? [] }),
  }), 2);
});

/**
 * The same runtime in a real browser (Chromium through playwright-core), from the browser bundle
 * of @signalbox/client (built here as `npm run build:bundle` does: anything Node-only fails it):
 * a page's Conversation talks to an agent in Node, and a page serves as the agent for a Node user.
 */
describeWithChromium('agent runtime in a browser page', (executablePath) => {
  let gw: TestGateway;
  let http: Server;
  let browser: Browser;
  let page: Page;
  beforeAll(async () => {
    gw = await startGateway();
    const result = await build({
      entryPoints: [fileURLToPath(new URL('../../client/src/index.ts', import.meta.url))],
      bundle: true, minify: true, format: 'esm', platform: 'browser', target: 'es2022', write: false,
    });
    const bundle = result.outputFiles[0]!.contents;
    http = createServer((req, res) => {
      if (req.url === '/sb.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
      else res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><script type="module">import * as sb from "/sb.js"; window.sb = sb; window.ready = true;</script>');
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
    page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${(http.address() as AddressInfo).port}`);
    await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
  });
  afterAll(async () => {
    await browser?.close();
    await new Promise<void>((resolve) => (http ? http.close(() => resolve()) : resolve()));
    await gw?.close();
  });

  type Sb = typeof import('../../client/src/index.js');

  it('a page\'s Conversation: send, the whole answer, a cancel that stops the Node agent', async () => {
    const channel = uniqueChannel('agent');
    const agentClient = new SignalboxClient({ url: `${gw.ws}/v1/ws/prps`, token: await gw.token({ sub: 'agent_node', channels: [channel], publish: [], handle: [channel], call: [] }) });
    await agentClient.connect();
    let aborted = false;
    const agent = serveAgent(agentClient, {
      channel,
      handler: async (input, run) => {
        run.signal.addEventListener('abort', () => { aborted = true; });
        await run.stream(tokens(input.text === 'short' ? 150 : 5000, 600, run.signal));
      },
    });
    await agent.ready;
    const token = await gw.token({ sub: 'usr_page', channels: [channel], publish: [], handle: [], call: [channel] });
    const result = await page.evaluate(async ({ url, token, channel }) => {
      const { SignalboxClient, Conversation } = (window as unknown as { sb: Sb }).sb;
      const client = new SignalboxClient({ url, token });
      await client.connect();
      const conv = new Conversation(client, channel);
      await conv.ready;
      let deltas = '';
      conv.on('delta', (e) => { deltas += e.text; });
      const first = await conv.send('short');
      const done = await conv.finished(first.runId);
      const second = await conv.send('long');
      await new Promise<void>((resolve) => conv.on('delta', (e) => { if (e.runId === second.runId && e.answer.length > 200) resolve(); }));
      const cancelled = await conv.cancel(second.runId);
      const end = await conv.finished(second.runId);
      client.disconnect();
      return { first: done.text, deltas, cancelled, end: { status: end.status, text: end.text } };
    }, { url: `${gw.ws}/v1/ws/prps`, token, channel });
    expect(result.first).toBe(expected(150));
    expect(result.cancelled).toMatchObject({ cancelled: true, status: 'cancelled' });
    expect(result.end).toEqual({ status: 'cancelled', text: result.cancelled.text });
    expect(result.deltas).toBe(expected(150) + result.cancelled.text);
    expect(aborted).toBe(true);
    agentClient.disconnect();
  });

  it('a page serves as the agent (serveAgent in the browser) for a Node user', async () => {
    const channel = uniqueChannel('agent');
    const token = await gw.token({ sub: 'agent_page', channels: [channel], publish: [], handle: [channel], call: [] });
    await page.evaluate(async ({ url, token, channel }) => {
      const { SignalboxClient, serveAgent } = (window as unknown as { sb: Sb }).sb;
      const client = new SignalboxClient({ url, token });
      await client.connect();
      async function* words(text: string): AsyncGenerator<string> {
        for (const w of text.split(' ')) {
          await new Promise((r) => setTimeout(r, 2));
          yield `${w.toUpperCase()} `;
        }
      }
      const agent = serveAgent(client, { channel, handler: (input) => words(input.text) });
      await agent.ready;
    }, { url: `${gw.ws}/v1/ws/prps`, token, channel });
    const userClient = new SignalboxClient({ url: `${gw.ws}/v1/ws/prps`, token: await gw.token({ sub: 'usr_node', channels: [channel], publish: [], handle: [], call: [channel] }) });
    await userClient.connect();
    const conv = new Conversation(userClient, channel);
    await conv.ready;
    const run = await conv.send('hello from node');
    const end = await finished(conv, run.runId, 10_000);
    expect(end).toMatchObject({ status: 'completed', text: 'HELLO FROM NODE ', from: 'usr_node' });
    userClient.disconnect();
  });
});
