/**
 * The user side of agent runs: `new Conversation(client, channel)` follows one `agent:{id}`
 * channel and keeps every run's state and answer text, exactly:
 *
 * - **On join** it subscribes, then reads the channel's history without `since` (compacted: each
 *   answer is one message, folded, with `through`), then applies the live publications, skipping
 *   an append already folded in (offset ≤ the answer's `through`) — docs/protocol.md, "Appends".
 *   So a late joiner gets the answer so far as one message, then the live deltas.
 * - **Across reconnects** the client's subscription recovers from its last position (the raw
 *   appends it missed, in order); a recovery that fails re-reads the compacted history.
 * - **send(text)** calls the agent's `agent.input` with an `inputId`; if the connection drops
 *   before the answer it calls again with the same `inputId` (the agent answers the same run) and
 *   also watches the stream for that input's `agent.input`: the run is found either way.
 *
 * Only `agent.*` events are read: the gateway lets only the channel's producer (a `handle` grant)
 * publish them, so nothing here can be forged by another viewer.
 */
import type { ErrorCode } from '@signalbox/protocol';
import type { SignalboxClient } from '../client.js';
import { Emitter, type Handler } from '../emitter.js';
import { ClientErrorCode, SignalboxError } from '../errors.js';
import type { PublicationMessage, SubscribedEvent } from '../events.js';
import type { Subscription } from '../subscription.js';
import {
  AgentMethod, agentEventProblem, isAgentEventType, type AgentAskData, type AgentAssignedData, type AgentEventData, type AgentProgressData,
  type AgentState, type CancelResult, type InputResult, type RunStatus,
} from './events.js';

/** One run, as the conversation knows it. Updated in place as events arrive. */
export interface RunView {
  runId: string;
  inputId: string;
  /** The user's input. */
  input: string;
  /** Who sent it (token subject). */
  from: string;
  status: RunStatus;
  /** The answer so far (final once the run ended). */
  text: string;
  /** For a failed run. */
  error?: { code: string; message: string };
  /** For a cancelled run. */
  cancelReason?: 'cancel' | 'interrupted';
  cancelledBy?: string;
  /** Asks of this run still waiting for an answer. */
  asks: AgentAskData[];
}

/** A delta of a run's answer. */
export interface DeltaEvent {
  runId: string;
  /** The appended text. */
  text: string;
  /** The answer so far, this delta included. */
  answer: string;
  /** The append's offset in the channel's stream. */
  offset: number;
}

/** Events of a {@link Conversation}. */
export interface ConversationEvents {
  /** Part of an answer arrived (live, or recovered after a reconnect). */
  delta: DeltaEvent;
  /** A run appeared or changed status (accepted, queued, started, completed, failed, cancelled). */
  run: RunView;
  /** The agent's state changed. */
  state: { state: AgentState; runId?: string };
  /** The agent asks for input or approval: answer with `conversation.answer(askId, value)`. */
  ask: AgentAskData;
  /** `agent.progress` (the PRP API document's fields). */
  progress: AgentProgressData;
  /** `agent.assigned` (the PRP API document's fields). */
  assigned: AgentAssignedData;
  /**
   * The conversation (re)built its state from the compacted history: on join, and after a
   * recovery that failed. `runs` is every run known then.
   */
  synced: { runs: RunView[]; reason: 'join' | 'recovery_failed' };
  /** A problem the conversation could not act on (a history read that failed). */
  error: SignalboxError;
}

export interface ConversationOptions {
  /** Messages of history read on join (each answer counts once). Default 100. */
  historyLimit?: number;
  /** How long `send` keeps trying to reach the agent, ms (a lost connection, the agent reconnecting). Default 30000. */
  sendTimeout?: number;
  /** Each call's own timeout, ms. Default 10000. */
  callTimeout?: number;
}

/** Codes after which `send` calls again with the same inputId: the call may not have reached the agent, or its answer was lost. */
const RESEND_CODES: ReadonlySet<string> = new Set([ClientErrorCode.DISCONNECTED, ClientErrorCode.TIMEOUT, 'RPC_TIMEOUT', 'RPC_HANDLER_GONE', 'RPC_NO_HANDLER', 'RATE_LIMITED', 'UNAVAILABLE']);

interface RunState extends RunView {
  answerId?: string;
  /** Offset up to which the answer's appends are applied (its `through`, then each applied delta's). */
  appliedThrough: number;
}

export class Conversation {
  readonly channel: string;
  /** Resolves once joined: subscribed and the history applied. Rejects if the subscription is refused (e.g. `PERMISSION_DENIED`). */
  readonly ready: Promise<void>;
  readonly #client: SignalboxClient;
  readonly #sub: Subscription;
  readonly #events: Emitter;
  readonly #runs = new Map<string, RunState>();
  readonly #byAnswer = new Map<string, RunState>();
  readonly #byInput = new Map<string, RunState>();
  readonly #inputWaiters = new Map<string, (run: RunState) => void>();
  readonly #endWaiters = new Map<string, ((run: RunView) => void)[]>();
  /** Offsets of non-append messages applied while joining (history and live may both carry one). */
  readonly #seen = new Set<number>();
  /** Publications that arrived while the history was being read. */
  #buffer: PublicationMessage[] | null = [];
  /** The highest offset the last history read covered. */
  #historyCovers = 0;
  #state: AgentState = 'idle';
  readonly #historyLimit: number;
  readonly #sendTimeout: number;
  readonly #callTimeout: number;
  #closed = false;
  #syncing: Promise<void> | undefined;

  constructor(client: SignalboxClient, channel: string, options: ConversationOptions = {}) {
    this.channel = channel;
    this.#client = client;
    this.#historyLimit = options.historyLimit ?? 100;
    this.#sendTimeout = options.sendTimeout ?? 30_000;
    this.#callTimeout = options.callTimeout ?? 10_000;
    this.#events = new Emitter((err) => { console.error('[signalbox] a Conversation handler threw:', err); });
    this.#sub = client.subscribe(channel);
    this.#sub.on('publication', this.#onPublication);
    this.#sub.on('recovery_failed', this.#onRecoveryFailed);
    let joined!: () => void;
    let failed!: (err: unknown) => void;
    this.ready = new Promise<void>((resolve, reject) => { joined = resolve; failed = reject; });
    this.ready.catch(() => undefined);
    const onSubscribed = (e: SubscribedEvent): void => {
      if (this.#syncing || this.#closed) return;
      if (e.resubscribed && this.#buffer === null) return;
      this.#sub.off('subscribed', onSubscribed);
      this.#sync('join').then(joined, failed);
    };
    if (this.#sub.state === 'subscribed') onSubscribed({ channel, resubscribed: false });
    else this.#sub.on('subscribed', onSubscribed);
    // A refused subscription (no read grant, an unknown namespace) ends the join: `ready` rejects with why.
    this.#sub.on('unsubscribed', (e) => {
      if (e.reason === 'unsubscribe_called') return;
      failed(new SignalboxError(e.code === undefined ? ClientErrorCode.CLOSED : (e.code as ErrorCode), e.message ?? `The subscription to ${channel} ended`, { channel }));
    });
  }

  /** Every run known, oldest first. */
  get runs(): RunView[] {
    return [...this.#runs.values()].map(view);
  }

  /** The run with this id. */
  run(runId: string): RunView | undefined {
    const r = this.#runs.get(runId);
    return r ? view(r) : undefined;
  }

  /** The agent's state, from its last `agent.state`. */
  get agentState(): AgentState {
    return this.#state;
  }

  on<K extends keyof ConversationEvents>(type: K, handler: Handler<ConversationEvents[K]>): this {
    this.#events.add(type, handler);
    return this;
  }

  off<K extends keyof ConversationEvents>(type: K, handler: Handler<ConversationEvents[K]>): this {
    this.#events.remove(type, handler);
    return this;
  }

  /**
   * Sends `text` to the agent; resolves with the run once the agent accepted it (its id allocated,
   * `agent.input` stored), status `running` or `queued`. Rejects with `RPC_FAILED` and
   * `details.handlerCode` `AGENT_BUSY` under turn policy `reject` while a run is in progress, or
   * after `sendTimeout` without reaching the agent.
   */
  async send(text: string, options: { inputId?: string } = {}): Promise<RunView> {
    await this.ready;
    const inputId = options.inputId ?? `in_${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
    const known = this.#byInput.get(inputId);
    if (known) return view(known);
    const seen = new Promise<RunState>((resolve) => this.#inputWaiters.set(inputId, resolve));
    const deadline = Date.now() + this.#sendTimeout;
    try {
      for (let attempt = 0; ; attempt++) {
        const called = this.#client.call<InputResult>(this.channel, AgentMethod.INPUT, { text, inputId }, { timeout: Math.max(1, Math.min(this.#callTimeout, deadline - Date.now())) });
        const outcome = await Promise.race([
          called.then((r) => ({ kind: 'result' as const, r }), (err: unknown) => ({ kind: 'error' as const, err })),
          seen.then((run) => ({ kind: 'seen' as const, run })),
        ]);
        called.catch(() => undefined);
        if (outcome.kind === 'seen') return view(outcome.run);
        if (outcome.kind === 'result') {
          const run = this.#ensureRun(outcome.r.runId);
          run.inputId = inputId;
          if (run.input === '') run.input = text;
          if (run.status === 'queued' && outcome.r.status === 'running') run.status = 'running';
          this.#byInput.set(inputId, run);
          return view(run);
        }
        const err = outcome.err;
        if (!(err instanceof SignalboxError) || !RESEND_CODES.has(err.code) || Date.now() >= deadline) throw err;
        // The input may have been accepted and its answer lost: the stream may already say so.
        const wait = Math.min(2000, 50 * 2 ** attempt);
        const found = await Promise.race([seen, new Promise<undefined>((r) => setTimeout(r, wait))]);
        if (found) return view(found);
      }
    } finally {
      this.#inputWaiters.delete(inputId);
    }
  }

  /** Resolves when the run ends (completed, failed or cancelled), with its final view. */
  finished(runId: string): Promise<RunView> {
    const r = this.#runs.get(runId);
    if (r && isEnded(r.status)) return Promise.resolve(view(r));
    return new Promise((resolve) => {
      const list = this.#endWaiters.get(runId) ?? [];
      list.push(resolve);
      this.#endWaiters.set(runId, list);
    });
  }

  /**
   * Cancels a run (default: the latest one running or queued). Resolves with the agent's answer:
   * `{cancelled: true, text}` (the text streamed before the cancel) or, for a run that had already
   * ended, `{cancelled: false, status, text}`. Rejects `RPC_FAILED` with `handlerCode`
   * `RUN_NOT_FOUND` / `NO_ACTIVE_RUN`, or the call's own errors.
   */
  cancel(runId?: string): Promise<CancelResult> {
    const target = runId ?? [...this.#runs.values()].reverse().find((r) => r.status === 'running' || r.status === 'queued')?.runId;
    return this.#client.call<CancelResult>(this.channel, AgentMethod.CANCEL, target === undefined ? {} : { runId: target }, { timeout: this.#callTimeout });
  }

  /** Answers an `agent.ask` (text for `input`, one of its options for `approval`). */
  async answer(askId: string, value: unknown): Promise<void> {
    await this.#client.call(this.channel, AgentMethod.ANSWER, { askId, value }, { timeout: this.#callTimeout });
  }

  /** Stops following the channel (unsubscribes). */
  close(): void {
    this.#closed = true;
    this.#sub.off('publication', this.#onPublication);
    this.#sub.off('recovery_failed', this.#onRecoveryFailed);
    this.#client.unsubscribe(this.channel);
    this.#events.clear();
  }

  // ---- Reading the stream --------------------------------------------------------------------------

  readonly #onPublication = (pub: PublicationMessage): void => {
    if (this.#buffer) this.#buffer.push(pub);
    else this.#apply(pub, false);
  };

  readonly #onRecoveryFailed = (): void => {
    if (this.#closed) return;
    this.#buffer ??= [];
    this.#sync('recovery_failed').catch((err: unknown) => {
      this.#events.emit('error', err instanceof SignalboxError ? err : new SignalboxError(ClientErrorCode.TIMEOUT, String(err)));
    });
  };

  /** Reads the compacted history and applies it, then what arrived meanwhile. */
  #sync(reason: 'join' | 'recovery_failed'): Promise<void> {
    const run = async (): Promise<void> => {
      try {
        const h = await this.#client.history(this.channel, { limit: this.#historyLimit });
        if (reason === 'recovery_failed') this.#seen.clear();
        for (const pub of h.publications) {
          this.#historyCovers = Math.max(this.#historyCovers, pub.through ?? pub.offset);
          this.#apply(pub, true);
        }
      } finally {
        const buffered = this.#buffer ?? [];
        this.#buffer = null;
        for (const pub of buffered) this.#apply(pub, false);
        this.#syncing = undefined;
      }
      this.#events.emit('synced', { runs: this.runs, reason });
    };
    this.#syncing = run();
    return this.#syncing;
  }

  #apply(pub: PublicationMessage, fromHistory: boolean): void {
    if (!isAgentEventType(pub.type)) return;
    if (agentEventProblem(pub.type, pub.data) !== undefined) return;
    if (pub.appendTo !== undefined) {
      this.#applyDelta(pub);
      return;
    }
    // A message both in the history read and in the live stream (around the join) is applied once.
    if (!fromHistory && pub.offset <= this.#historyCovers) {
      if (this.#seen.has(pub.offset)) return;
    } else if (!fromHistory) {
      this.#seen.clear();
    }
    if (fromHistory) this.#seen.add(pub.offset);
    this.#applyEvent(pub, fromHistory);
  }

  #applyDelta(pub: PublicationMessage): void {
    if (pub.type !== 'agent.delta') return;
    const run = this.#byAnswer.get(pub.appendTo!);
    // Already folded in (the history's `through`), or seen: exactly once.
    if (!run || pub.offset <= run.appliedThrough) return;
    const text = (pub.data as AgentEventData['agent.delta']).text;
    run.appliedThrough = pub.offset;
    run.text += text;
    this.#events.emit('delta', { runId: run.runId, text, answer: run.text, offset: pub.offset });
  }

  #applyEvent(pub: PublicationMessage, fromHistory: boolean): void {
    switch (pub.type) {
      case 'agent.input': {
        const d = pub.data as AgentEventData['agent.input'];
        const run = this.#ensureRun(d.runId);
        run.inputId = d.inputId;
        run.input = d.text;
        run.from = d.from;
        if (run.status === 'queued' && !d.queued) run.status = 'running';
        this.#byInput.set(d.inputId, run);
        this.#emitRun(run);
        this.#inputWaiters.get(d.inputId)?.(run);
        return;
      }
      case 'agent.run.started': {
        const d = pub.data as AgentEventData['agent.run.started'];
        const run = this.#ensureRun(d.runId);
        if (isEnded(run.status)) return;
        run.status = 'running';
        run.answerId = d.answerId;
        this.#byAnswer.set(d.answerId, run);
        this.#emitRun(run);
        return;
      }
      case 'agent.answer': {
        const d = pub.data as AgentEventData['agent.answer'];
        const run = this.#ensureRun(d.runId);
        run.answerId = pub.id;
        this.#byAnswer.set(pub.id, run);
        // From a compacted read: the answer so far, folded through `through`. Live: the (empty) start.
        run.text = d.text;
        run.appliedThrough = fromHistory ? Math.max(pub.through ?? pub.offset, pub.offset) : pub.offset;
        if (run.status === 'queued') run.status = 'running';
        return;
      }
      case 'agent.run.completed':
      case 'agent.run.failed':
      case 'agent.run.cancelled': {
        const d = pub.data as AgentEventData['agent.run.completed'] & Partial<AgentEventData['agent.run.failed']> & Partial<AgentEventData['agent.run.cancelled']>;
        const run = this.#ensureRun(d.runId);
        run.status = pub.type === 'agent.run.completed' ? 'completed' : pub.type === 'agent.run.failed' ? 'failed' : 'cancelled';
        run.text = d.text;
        if (d.error) run.error = d.error;
        if (d.reason) run.cancelReason = d.reason;
        if (d.by !== undefined) run.cancelledBy = d.by;
        run.asks = [];
        this.#emitRun(run);
        const waiters = this.#endWaiters.get(run.runId);
        this.#endWaiters.delete(run.runId);
        for (const w of waiters ?? []) w(view(run));
        return;
      }
      case 'agent.state': {
        const d = pub.data as AgentEventData['agent.state'];
        this.#state = d.state;
        this.#events.emit('state', d);
        return;
      }
      case 'agent.ask': {
        const d = pub.data as AgentEventData['agent.ask'];
        const run = this.#ensureRun(d.runId);
        if (isEnded(run.status) || run.asks.some((a) => a.askId === d.askId)) return;
        run.asks.push(d);
        this.#events.emit('ask', d);
        return;
      }
      case 'agent.ask.answered': {
        const d = pub.data as AgentEventData['agent.ask.answered'];
        const run = this.#runs.get(d.runId);
        if (run) run.asks = run.asks.filter((a) => a.askId !== d.askId);
        return;
      }
      case 'agent.progress':
        this.#events.emit('progress', pub.data as AgentProgressData);
        return;
      case 'agent.assigned':
        this.#events.emit('assigned', pub.data as AgentAssignedData);
        return;
    }
  }

  #ensureRun(runId: string): RunState {
    let run = this.#runs.get(runId);
    if (!run) {
      run = { runId, inputId: '', input: '', from: '', status: 'queued', text: '', asks: [], appliedThrough: 0 };
      this.#runs.set(runId, run);
    }
    return run;
  }

  #emitRun(run: RunState): void {
    this.#events.emit('run', view(run));
  }
}

function isEnded(status: RunStatus): boolean {
  return status === 'completed' || status === 'failed' || status === 'cancelled';
}

function view(run: RunState): RunView {
  const v: RunView = { runId: run.runId, inputId: run.inputId, input: run.input, from: run.from, status: run.status, text: run.text, asks: [...run.asks] };
  if (run.error) v.error = run.error;
  if (run.cancelReason) v.cancelReason = run.cancelReason;
  if (run.cancelledBy !== undefined) v.cancelledBy = run.cancelledBy;
  return v;
}
