/**
 * The producer side of agent runs: `serveAgent(client, {channel, handler, turnPolicy})` makes a
 * client the agent of one `agent:{id}` channel (its token needs the `handle` grant there).
 *
 * It registers as the channel's RPC handler for `agent.input`, `agent.cancel` and `agent.answer`
 * (so inputs and cancels reach it from any node), allocates a run id when it accepts an input and
 * publishes `agent.input` before answering (so a user who drops right after sending still finds
 * the run in the channel's stream), applies the turn policy, calls the handler with the input, the
 * caller's identity, an `AbortSignal` and a stream writer, and publishes the run's lifecycle:
 * docs/agents.md describes every event.
 */
import type { SignalboxClient } from '../client.js';
import type { RpcCaller, RpcContext } from '../events.js';
import type { RpcRegistration } from '../rpc.js';
import {
  AgentErrorCode, AgentMethod, answerIdOf, type AgentAskData, type AgentAssignedData, type AgentEventData, type AgentEventType, type AgentProgressData,
  type AgentState, type CancelResult, type InputResult, type RunStatus, type TurnPolicy,
} from './events.js';
import { AnswerWriter } from './writer.js';

/** What the handler is given about the input. */
export interface AgentInput {
  runId: string;
  inputId: string;
  text: string;
  /** Who sent it, as the gateway authenticated the call (never the payload's claim). */
  caller: RpcCaller;
}

/** Options of {@link AgentRun.ask}. */
export interface AskOptions {
  /** `input` (default): free text; `approval`: yes or no (`options` default `['approve', 'reject']`). */
  kind?: 'input' | 'approval';
  options?: string[];
}

/** The run the handler works on. */
export interface AgentRun {
  readonly runId: string;
  /** Fires when the run is cancelled (a user's cancel, or an interrupting input): stop producing. */
  readonly signal: AbortSignal;
  /** Appends text to the answer (batched into appends within `appendWindowMs`). False once the run is cancelled. */
  write(chunk: string): boolean;
  /** Writes every chunk of a text stream (e.g. an LLM SDK's `AsyncIterable<string>`) until it ends or the run is cancelled. */
  stream(source: AsyncIterable<string> | Iterable<string>): Promise<void>;
  /** Everything written so far. */
  readonly text: string;
  /** Publishes `agent.progress` (the PRP API document's fields). */
  progress(data: AgentProgressData): Promise<void>;
  /** Publishes `agent.assigned` (the PRP API document's fields). */
  assigned(data: AgentAssignedData): Promise<void>;
  /**
   * Asks the conversation for input or approval and waits for the answer (state `waiting`):
   * publishes `agent.ask`; resolves with the value a user sends with `conversation.answer(askId, value)`.
   * Rejects with an `AbortError` if the run is cancelled first.
   */
  ask(prompt: string, options?: AskOptions): Promise<unknown>;
}

/**
 * The agent itself: called once per run. It may write to `run` and/or return the answer: a string,
 * or an `AsyncIterable<string>` that is streamed. The run completes when it returns (and its
 * writes are delivered), fails if it throws, and is cancelled when `run.signal` fires (whatever it
 * does afterwards is ignored).
 */
export type AgentHandler = (input: AgentInput, run: AgentRun) => unknown;

export interface ServeAgentOptions {
  /** The agent's channel, e.g. `agent:agent_001`. */
  channel: string;
  handler: AgentHandler;
  /** Input that arrives while a run is in progress: `reject` (AGENT_BUSY), `queue` (default), `interrupt`. */
  turnPolicy?: TurnPolicy;
  /** Batching window of the answer's appends, ms. Default 40. */
  appendWindowMs?: number;
  /** Inputs that may wait behind the running one under `queue`; beyond, AGENT_BUSY. Default 16. */
  maxQueued?: number;
  /** Finished runs remembered (for a resent input's dedup and a late cancel's answer). Default 1000. */
  rememberRuns?: number;
}

/** What `serveAgent` returns. */
export interface AgentServer {
  readonly channel: string;
  /** Resolves once the gateway accepted the handler registration (rejects e.g. PERMISSION_DENIED without a `handle` grant). */
  readonly ready: Promise<void>;
  /** The agent's current state. */
  readonly state: AgentState;
  /** The status and text of a run this agent knows. */
  run(runId: string): { status: RunStatus; text: string } | undefined;
  /** Resolves when the run ends, with its status and text. */
  finished(runId: string): Promise<{ status: RunStatus; text: string }>;
  /** Stops serving: cancels what runs, withdraws the handler. */
  stop(): Promise<void>;
}

interface RunRecord {
  runId: string;
  inputId: string;
  text: string;
  caller: RpcCaller;
  status: RunStatus;
  /** The text at the end. */
  final: string;
  controller: AbortController;
  writer: AnswerWriter | undefined;
  ended: Promise<void>;
  end: () => void;
  asks: Map<string, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>;
  askSeq: number;
  /** Whether the run has written anything (state `streaming` rather than `thinking`). */
  streaming: boolean;
}

/** Serves one agent channel with `client` (which must hold the channel's `handle` grant). */
export function serveAgent(client: SignalboxClient, options: ServeAgentOptions): AgentServer {
  return new AgentRuntime(client, options);
}

function codedError(code: string, message: string): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}

function randomId(): string {
  let s = '';
  while (s.length < 12) s += Math.random().toString(36).slice(2);
  return s.slice(0, 12);
}

class AgentRuntime implements AgentServer {
  readonly channel: string;
  readonly ready: Promise<void>;
  readonly #client: SignalboxClient;
  readonly #handler: AgentHandler;
  readonly #policy: TurnPolicy;
  readonly #windowMs: number;
  readonly #maxQueued: number;
  readonly #remember: number;
  readonly #registration: RpcRegistration;
  readonly #runs = new Map<string, RunRecord>();
  readonly #byInput = new Map<string, string>();
  readonly #queue: RunRecord[] = [];
  #active: RunRecord | undefined;
  #state: AgentState = 'idle';
  #stateRun: string | undefined;
  #stopped = false;
  /** Serializes input acceptance: two concurrent inputs are decided one after the other. */
  #accepting: Promise<unknown> = Promise.resolve();

  constructor(client: SignalboxClient, options: ServeAgentOptions) {
    if (typeof options.channel !== 'string' || options.channel.length === 0) throw new TypeError('serveAgent needs a channel');
    if (typeof options.handler !== 'function') throw new TypeError('serveAgent needs a handler function');
    const policy = options.turnPolicy ?? 'queue';
    if (policy !== 'reject' && policy !== 'queue' && policy !== 'interrupt') throw new TypeError("turnPolicy must be 'reject', 'queue' or 'interrupt'");
    this.channel = options.channel;
    this.#client = client;
    this.#handler = options.handler;
    this.#policy = policy;
    this.#windowMs = options.appendWindowMs ?? 40;
    this.#maxQueued = options.maxQueued ?? 16;
    this.#remember = options.rememberRuns ?? 1000;
    this.#registration = client.handle(this.channel, {
      [AgentMethod.INPUT]: (params, ctx) => this.#serial(() => this.#onInput(params, ctx)),
      [AgentMethod.CANCEL]: (params, ctx) => this.#onCancel(params, ctx),
      [AgentMethod.ANSWER]: (params, ctx) => this.#onAnswer(params, ctx),
    });
    this.ready = this.#registration.ready;
  }

  get state(): AgentState {
    return this.#state;
  }

  run(runId: string): { status: RunStatus; text: string } | undefined {
    const r = this.#runs.get(runId);
    return r ? { status: r.status, text: r.final || r.writer?.text || '' } : undefined;
  }

  async finished(runId: string): Promise<{ status: RunStatus; text: string }> {
    const r = this.#runs.get(runId);
    if (!r) throw codedError(AgentErrorCode.RUN_NOT_FOUND, `No run ${runId}`);
    await r.ended;
    return { status: r.status, text: r.final };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const r of [...this.#queue]) await this.#cancel(r, 'cancel', undefined);
    if (this.#active) await this.#cancel(this.#active, 'cancel', undefined);
    this.#registration.stop();
  }

  // ---- RPC methods --------------------------------------------------------------------------------

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#accepting.then(fn, fn);
    this.#accepting = next.catch(() => undefined);
    return next;
  }

  async #onInput(params: unknown, ctx: RpcContext): Promise<InputResult> {
    const p = (params ?? {}) as { text?: unknown; inputId?: unknown };
    if (typeof p.text !== 'string') throw codedError(AgentErrorCode.INVALID_INPUT, '`text` must be a string');
    if (p.inputId !== undefined && (typeof p.inputId !== 'string' || p.inputId.length === 0 || p.inputId.length > 100)) {
      throw codedError(AgentErrorCode.INVALID_INPUT, '`inputId` must be a string of 1-100 characters');
    }
    if (this.#stopped) throw codedError(AgentErrorCode.AGENT_BUSY, 'The agent is stopping');
    // A resent input (the sender lost its connection before the answer): the same run.
    const inputId = p.inputId ?? `in_${randomId()}`;
    const known = this.#byInput.get(inputId);
    const knownRun = known ? this.#runs.get(known) : undefined;
    if (knownRun) return { runId: knownRun.runId, inputId, status: knownRun.status === 'queued' ? 'queued' : 'running', duplicate: true };

    const busy = this.#active !== undefined || this.#queue.length > 0;
    if (busy && this.#policy === 'reject') {
      throw codedError(AgentErrorCode.AGENT_BUSY, `A run is in progress (${this.#active?.runId ?? this.#queue[0]?.runId}); turn policy 'reject'`);
    }
    if (busy && this.#policy === 'queue' && this.#queue.length >= this.#maxQueued) {
      throw codedError(AgentErrorCode.AGENT_BUSY, `${this.#queue.length} inputs are already queued (maxQueued)`);
    }
    const queued = busy && this.#policy === 'queue';
    const run = this.#newRun(inputId, p.text, ctx.caller, queued ? 'queued' : 'running');
    // The run exists once this is stored: a sender that drops now finds it in the stream.
    await this.#publish('agent.input', { runId: run.runId, inputId, text: p.text, from: subjectOf(ctx.caller), queued }, `${run.runId}.input`);
    if (queued) {
      this.#queue.push(run);
    } else {
      if (this.#policy === 'interrupt' && this.#active) await this.#cancel(this.#active, 'interrupted', subjectOf(ctx.caller));
      void this.#start(run);
    }
    return { runId: run.runId, inputId, status: queued ? 'queued' : 'running', duplicate: false };
  }

  async #onCancel(params: unknown, ctx: RpcContext): Promise<CancelResult> {
    const p = (params ?? {}) as { runId?: unknown };
    if (p.runId !== undefined && typeof p.runId !== 'string') throw codedError(AgentErrorCode.INVALID_INPUT, '`runId` must be a string');
    const runId = p.runId ?? this.#active?.runId;
    if (runId === undefined) throw codedError(AgentErrorCode.NO_ACTIVE_RUN, 'Nothing is running');
    const run = this.#runs.get(runId);
    if (!run) throw codedError(AgentErrorCode.RUN_NOT_FOUND, `No run ${runId} on ${this.channel}`);
    if (run.status !== 'running' && run.status !== 'queued') {
      // Already ended: a clear answer, and nothing changes.
      return { runId, cancelled: false, status: run.status, text: run.final };
    }
    const text = await this.#cancel(run, 'cancel', subjectOf(ctx.caller));
    return { runId, cancelled: true, status: 'cancelled', text };
  }

  async #onAnswer(params: unknown, ctx: RpcContext): Promise<{ askId: string; accepted: true }> {
    const p = (params ?? {}) as { askId?: unknown; value?: unknown };
    if (typeof p.askId !== 'string') throw codedError(AgentErrorCode.INVALID_INPUT, '`askId` must be a string');
    for (const run of this.#runs.values()) {
      const ask = run.asks.get(p.askId);
      if (!ask) continue;
      run.asks.delete(p.askId);
      await this.#publish('agent.ask.answered', { runId: run.runId, askId: p.askId, value: p.value ?? null, by: subjectOf(ctx.caller) });
      ask.resolve(p.value ?? null);
      return { askId: p.askId, accepted: true };
    }
    throw codedError(AgentErrorCode.ASK_NOT_FOUND, `No open ask ${p.askId}`);
  }

  // ---- Runs ---------------------------------------------------------------------------------------

  #newRun(inputId: string, text: string, caller: RpcCaller, status: RunStatus): RunRecord {
    const runId = `run_${Date.now().toString(36)}${randomId()}`;
    let end!: () => void;
    const ended = new Promise<void>((resolve) => { end = resolve; });
    const run: RunRecord = {
      runId, inputId, text, caller, status, final: '', controller: new AbortController(), writer: undefined, ended, end, asks: new Map(), askSeq: 0, streaming: false,
    };
    this.#runs.set(runId, run);
    this.#byInput.set(inputId, runId);
    this.#forgetOld();
    return run;
  }

  async #start(run: RunRecord): Promise<void> {
    this.#active = run;
    run.status = 'running';
    const answerId = answerIdOf(run.runId);
    const publish = this.#client.publish.bind(this.#client);
    const writer = new AnswerWriter({
      windowMs: this.#windowMs,
      publish: (text, seq) => publish(this.channel, { text }, { type: 'agent.delta', id: `${run.runId}.d${seq}`, appendTo: answerId }),
      onFirstWrite: () => {
        run.streaming = true;
        if (this.#active === run) this.#setState('streaming', run.runId);
      },
    });
    run.writer = writer;
    const started = Promise.all([
      this.#publish('agent.run.started', { runId: run.runId, inputId: run.inputId, answerId }, `${run.runId}.started`),
      // The answer message every delta appends to: a late joiner reads it folded, as one message.
      this.#publish('agent.answer', { runId: run.runId, text: '' }, answerId),
    ]);
    this.#setState('thinking', run.runId);
    const handle: AgentRun = {
      runId: run.runId,
      signal: run.controller.signal,
      write: (chunk) => writer.write(chunk),
      stream: (source) => writer.pipe(source),
      get text() { return writer.text; },
      progress: (data) => this.#publish('agent.progress', data),
      assigned: (data) => this.#publish('agent.assigned', data),
      ask: (prompt, opts) => this.#ask(run, prompt, opts),
    };
    let outcome: { ok: true } | { ok: false; err: unknown };
    try {
      await started;
      const returned = await this.#handler({ runId: run.runId, inputId: run.inputId, text: run.text, caller: run.caller }, handle);
      if (typeof returned === 'string') writer.write(returned);
      else if (isIterable(returned)) await writer.pipe(returned);
      outcome = { ok: true };
    } catch (err) {
      outcome = { ok: false, err };
    }
    // Cancelled meanwhile: #cancel has ended the run; what the handler did afterwards is ignored.
    if (run.status !== 'running') return;
    try {
      const text = await writer.close();
      if (outcome.ok) {
        await this.#finish(run, 'completed', text, () => this.#publish('agent.run.completed', { runId: run.runId, text }, `${run.runId}.completed`));
        return;
      }
      const e = outcome.err as { code?: unknown; message?: unknown };
      const error = { code: typeof e?.code === 'string' ? e.code : AgentErrorCode.HANDLER_ERROR, message: typeof e?.message === 'string' ? e.message : String(outcome.err) };
      await this.#finish(run, 'failed', text, () => this.#publish('agent.run.failed', { runId: run.runId, text, error }, `${run.runId}.failed`));
    } catch (err) {
      if (run.status !== 'running') return;
      // Part of the answer was not delivered: say so, never end as if the text were whole.
      const text = writer.delivered;
      const e = err as { code?: unknown; message?: unknown };
      const error = { code: typeof e.code === 'string' ? e.code : AgentErrorCode.ANSWER_INCOMPLETE, message: typeof e.message === 'string' ? e.message : String(err) };
      await this.#finish(run, 'failed', text, () => this.#publish('agent.run.failed', { runId: run.runId, text, error }, `${run.runId}.failed`));
    }
  }

  /** Ends `run` with `status`: publishes its last event, then moves on to the next queued run. */
  async #finish(run: RunRecord, status: RunStatus, text: string, publishEnd: () => Promise<void>): Promise<void> {
    run.status = status;
    run.final = text;
    for (const ask of run.asks.values()) ask.reject(abortError('The run ended'));
    run.asks.clear();
    const wasActive = this.#active === run;
    if (wasActive) this.#active = undefined;
    else {
      const i = this.#queue.indexOf(run);
      if (i >= 0) this.#queue.splice(i, 1);
    }
    try {
      await publishEnd();
    } finally {
      run.end();
      if (wasActive) this.#next();
    }
  }

  #next(): void {
    if (this.#active) return;
    const next = this.#queue.shift();
    if (next && !this.#stopped) {
      void this.#start(next);
      return;
    }
    this.#setState('idle', undefined);
  }

  /** Cancels a running or queued run: the handler's signal fires at once; resolves with the text streamed, once `agent.run.cancelled` is stored. */
  async #cancel(run: RunRecord, reason: 'cancel' | 'interrupted', by: string | undefined): Promise<string> {
    if (run.status !== 'running' && run.status !== 'queued') return run.final;
    run.status = 'cancelled';
    run.controller.abort(abortError(reason === 'cancel' ? 'The run was cancelled' : 'A newer input interrupted the run'));
    const writer = run.writer;
    writer?.stop();
    // What was written before the cancel is still delivered, so `text` is exactly what readers have.
    let text = '';
    if (writer) {
      try {
        text = await writer.close();
      } catch {
        text = writer.delivered;
      }
    }
    await this.#finish(run, 'cancelled', text, () =>
      this.#publish('agent.run.cancelled', { runId: run.runId, text, reason, ...(by !== undefined ? { by } : {}) }, `${run.runId}.cancelled`));
    return text;
  }

  async #ask(run: RunRecord, prompt: string, opts: AskOptions = {}): Promise<unknown> {
    if (run.controller.signal.aborted) throw abortError('The run was cancelled');
    const kind = opts.kind ?? 'input';
    const askId = `${run.runId}.ask${++run.askSeq}`;
    const data: AgentAskData = { runId: run.runId, askId, kind, prompt, ...(kind === 'approval' || opts.options ? { options: opts.options ?? ['approve', 'reject'] } : {}) };
    const answered = new Promise<unknown>((resolve, reject) => {
      run.asks.set(askId, { resolve, reject });
      run.controller.signal.addEventListener('abort', () => reject(abortError('The run was cancelled')), { once: true });
    });
    // The ask is visible before anyone can answer it.
    await run.writer?.idle();
    await this.#publish('agent.ask', data, askId);
    this.#setState('waiting', run.runId);
    try {
      return await answered;
    } finally {
      if (this.#active === run && run.status === 'running') this.#setState(run.streaming ? 'streaming' : 'thinking', run.runId);
    }
  }

  #setState(state: AgentState, runId: string | undefined): void {
    if (state === this.#state && runId === this.#stateRun) return;
    this.#state = state;
    this.#stateRun = runId;
    void this.#publish('agent.state', { state, ...(runId !== undefined ? { runId } : {}) }).catch(() => undefined);
  }

  async #publish<K extends AgentEventType>(type: K, data: AgentEventData[K], id?: string): Promise<void> {
    await this.#client.publish(this.channel, data, { type, ...(id !== undefined ? { id } : {}) });
  }

  #forgetOld(): void {
    if (this.#runs.size <= this.#remember) return;
    for (const [id, r] of this.#runs) {
      if (this.#runs.size <= this.#remember) break;
      if (r.status === 'running' || r.status === 'queued') continue;
      this.#runs.delete(id);
      if (this.#byInput.get(r.inputId) === id) this.#byInput.delete(r.inputId);
    }
  }
}

function subjectOf(caller: RpcCaller): string {
  switch (caller.via) {
    case 'ws': return caller.sub;
    case 'http': return caller.sub ?? `key:${caller.key}`;
    case 'gateway': return `gateway:${caller.service}`;
  }
}

function isIterable(v: unknown): v is AsyncIterable<string> | Iterable<string> {
  return v !== null && typeof v === 'object' && (Symbol.asyncIterator in v || Symbol.iterator in v);
}

function abortError(message: string): Error {
  const err = new Error(message);
  err.name = 'AbortError';
  return err;
}
