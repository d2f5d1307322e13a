/**
 * The outbound side both sources share: a bounded buffer of events, published off the hot path
 * (every `flushMs`), a cap per second with a `page.dropped` count, the viewers watching (presence),
 * and the command handler with its audit trail (`debug.command` / `debug.result`).
 */
import type { SignalboxClient, PresenceMember, RpcContext } from '@signalbox/client';
import { CommandError, CommandErrorCode, type SessionEventType, type SessionEvents, type SessionSource } from './events.js';
import { serialize, DEFAULT_SERIALIZE_LIMITS } from './serialize.js';

/** The client calls the sources use: any `SignalboxClient` (browser or Node). */
export type SessionClient = Pick<SignalboxClient, 'publish' | 'handle' | 'presence' | 'connectionId' | 'isConnected'>;

/** Event data without the fields the stream sets itself. */
export type EventInput<K extends SessionEventType> = Omit<SessionEvents[K], 'seq' | 'source' | 'ts'> & { ts?: number };

export interface StreamOptions {
  /** Publish what is buffered every this many ms (default 50). */
  flushMs?: number;
  /** Events published per second at most (default 100); more are counted in a `page.dropped`. */
  maxEventsPerSecond?: number;
  /** Events buffered at most while not flushed (default 1000); more are counted as dropped. */
  maxBuffer?: number;
}

interface Pending {
  type: SessionEventType;
  data: Record<string, unknown>;
}

/** Types that bypass the cap: the audit trail and the drop counts themselves are never dropped. */
const UNCAPPED: ReadonlySet<string> = new Set(['debug.command', 'debug.result', 'page.dropped', 'page.started']);

export class EventStream {
  readonly #client: SessionClient;
  readonly #channel: string;
  readonly #source: SessionSource;
  readonly #flushMs: number;
  readonly #cap: number;
  readonly #maxBuffer: number;
  #buffer: Pending[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #seq = 0;
  #windowStart = 0;
  #inWindow = 0;
  #dropped: Record<'rate' | 'buffer' | 'publish', number> = { rate: 0, buffer: 0, publish: 0 };
  #stopped = false;
  /** Set while the stream itself runs: the page's console hook must not capture the SDK's own logs. */
  busy = false;

  constructor(client: SessionClient, channel: string, source: SessionSource, options: StreamOptions = {}) {
    this.#client = client;
    this.#channel = channel;
    this.#source = source;
    this.#flushMs = options.flushMs ?? 50;
    this.#cap = options.maxEventsPerSecond ?? 100;
    this.#maxBuffer = options.maxBuffer ?? 1000;
  }

  get channel(): string {
    return this.#channel;
  }

  /** Queues an event; it is published at the next flush. Cheap: no I/O here. */
  emit<K extends SessionEventType>(type: K, input: EventInput<K>): void {
    this.emitLazy(type, () => input);
  }

  /**
   * Like {@link emit}, but builds the event only if it is admitted: a console call over the cap
   * costs a counter increment, not a serialization.
   */
  emitLazy<K extends SessionEventType>(type: K, build: () => EventInput<K>): void {
    if (this.#stopped) return;
    const now = Date.now();
    if (!UNCAPPED.has(type)) {
      if (now - this.#windowStart >= 1000) {
        this.#windowStart = now;
        this.#inWindow = 0;
      }
      if (this.#inWindow >= this.#cap) {
        this.#dropped.rate++;
        this.#schedule();
        return;
      }
      if (this.#buffer.length >= this.#maxBuffer) {
        this.#dropped.buffer++;
        this.#schedule();
        return;
      }
      this.#inWindow++;
    }
    const input = build();
    const data = { ...(input as Record<string, unknown>), ts: input.ts ?? now, seq: ++this.#seq, source: this.#source };
    this.#buffer.push({ type, data });
    this.#schedule();
  }

  /**
   * Publishes one event now, outside the buffer (screencast frames: the caller awaits the ack to
   * pace the next frame). Resolves false when the gateway refused or the publish failed.
   */
  async publishNow<K extends SessionEventType>(type: K, input: EventInput<K>): Promise<boolean> {
    if (this.#stopped) return false;
    const data = { ...(input as Record<string, unknown>), ts: input.ts ?? Date.now(), seq: ++this.#seq, source: this.#source };
    try {
      await this.#client.publish(this.#channel, data, { type });
      return true;
    } catch {
      return false;
    }
  }

  /** Publishes everything buffered (and a `page.dropped` for what was not). */
  flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = this.#buffer;
    this.#buffer = [];
    const counts = this.#dropped;
    this.#dropped = { rate: 0, buffer: 0, publish: 0 };
    for (const reason of ['rate', 'buffer', 'publish'] as const) {
      if (counts[reason] > 0) batch.push({ type: 'page.dropped', data: { count: counts[reason], reason, ts: Date.now(), seq: ++this.#seq, source: this.#source } });
    }
    this.busy = true;
    try {
      for (const { type, data } of batch) {
        // A refused or timed-out publish is counted, never thrown into the page.
        this.#client.publish(this.#channel, data, { type }).catch(() => {
          if (!this.#stopped && type !== 'page.dropped') {
            this.#dropped.publish++;
            this.#schedule();
          }
        });
      }
    } finally {
      this.busy = false;
    }
  }

  stop(): void {
    this.flush();
    this.#stopped = true;
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#stopped) return;
    this.#timer = setTimeout(() => this.flush(), this.#flushMs);
  }
}

/** Who watches a session: the channel's presence members other than the source's own connections. */
export class Watchers {
  readonly #client: SessionClient;
  readonly #channel: string;
  readonly #intervalMs: number;
  readonly #onChange: (viewers: PresenceMember[]) => void;
  readonly #ignore: () => ReadonlySet<string>;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #viewers: PresenceMember[] = [];
  #known = false;
  #stopped = false;
  /** Presence is off on the namespace (PERMISSION_DENIED): the source cannot know, and counts as watched. */
  unknown = false;

  constructor(client: SessionClient, channel: string, intervalMs: number, onChange: (viewers: PresenceMember[]) => void, ignore: () => ReadonlySet<string> = () => new Set()) {
    this.#client = client;
    this.#channel = channel;
    this.#intervalMs = intervalMs;
    this.#onChange = onChange;
    this.#ignore = ignore;
    void this.#poll();
  }

  get viewers(): readonly PresenceMember[] {
    return this.#viewers;
  }

  get watched(): boolean {
    return this.unknown || this.#viewers.length > 0;
  }

  /** Polls now (e.g. when a call arrived: whoever calls is watching). */
  refresh(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    void this.#poll();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
  }

  async #poll(): Promise<void> {
    if (this.#stopped) return;
    try {
      // Polled, not subscribed: a subscription would echo every event (and frame) back to the source.
      const { members } = await this.#client.presence(this.#channel, { timeout: Math.max(1000, this.#intervalMs) });
      const ignore = this.#ignore();
      const own = this.#client.connectionId;
      const viewers = members.filter((m) => m.clientId !== own && !ignore.has(m.clientId));
      this.unknown = false;
      const before = new Set(this.#viewers.map((m) => m.clientId));
      const changed = !this.#known || viewers.length !== before.size || viewers.some((m) => !before.has(m.clientId));
      this.#viewers = viewers;
      this.#known = true;
      if (changed && !this.#stopped) this.#onChange(viewers);
    } catch (err) {
      if ((err as { code?: string }).code === 'PERMISSION_DENIED' && !this.unknown) {
        this.unknown = true;
        if (!this.#stopped) this.#onChange(this.#viewers);
      }
      // Otherwise (disconnected, timeout) keep what was known and try again.
    }
    if (!this.#stopped) this.#timer = setTimeout(() => void this.#poll(), this.#intervalMs);
  }
}

/** A command: gets validated params and the call's context. */
export type Command = (params: Record<string, unknown>, ctx: RpcContext) => unknown;

/**
 * Registers the commands as the channel's RPC handler (the known ones that are not enabled are
 * answered COMMAND_DISABLED, with what to do) and audits each
 * call on the stream: `debug.command` with the caller before it runs, `debug.result` after.
 */
export function serveCommands(client: SessionClient, stream: EventStream, enabled: ReadonlyMap<string, Command>, known: readonly string[], onCall?: () => void) {
  const run = async (method: string, params: unknown, ctx: RpcContext): Promise<unknown> => {
    onCall?.();
    const started = Date.now();
    stream.emit('debug.command', { callId: ctx.callId, method, params: serialize(params, { ...DEFAULT_SERIALIZE_LIMITS, maxTotal: 2048 }).value, caller: { ...ctx.caller } as SessionEvents['debug.command']['caller'] });
    // The audit is written at once, not at the next flush: the command's effects follow it in the stream.
    stream.flush();
    const finish = (error: { code: string; message: string } | null): void => {
      stream.emit('debug.result', { callId: ctx.callId, method, ok: error === null, error, durationMs: Date.now() - started });
      stream.flush();
    };
    try {
      const fn = enabled.get(method);
      if (!fn) {
        throw known.includes(method)
          ? new CommandError(CommandErrorCode.COMMAND_DISABLED, `The command "${method}" is not enabled on this session (the page or bridge has to opt in)`)
          : new CommandError(CommandErrorCode.UNKNOWN_COMMAND, `Unknown command "${method}"; this session serves: ${[...enabled.keys()].join(', ')}`);
      }
      if (params !== undefined && params !== null && (typeof params !== 'object' || Array.isArray(params))) {
        throw new CommandError(CommandErrorCode.INVALID_PARAMS, `The params of "${method}" must be an object`);
      }
      const result = await fn((params ?? {}) as Record<string, unknown>, ctx);
      finish(null);
      return result;
    } catch (err) {
      const e = err as { code?: unknown; message?: unknown };
      const code = err instanceof CommandError ? err.code : typeof e.code === 'string' ? e.code : CommandErrorCode.COMMAND_FAILED;
      const message = typeof e.message === 'string' ? e.message : String(err);
      finish({ code, message });
      // Rethrown with a code the SDK passes on as `details.handlerCode`.
      throw err instanceof CommandError ? err : new CommandError(CommandErrorCode.COMMAND_FAILED, message);
    }
  };
  const methods: Record<string, (p: unknown, ctx: RpcContext) => unknown> = {};
  for (const name of new Set([...known, ...enabled.keys()])) methods[name] = (p, ctx) => run(name, p, ctx);
  // allMethods: a method outside the table is answered UNKNOWN_METHOD by the SDK.
  return client.handle(stream.channel, methods, { allMethods: true });
}

/** A required string param. */
export function stringParam(params: Record<string, unknown>, name: string, max = 10_000): string {
  const v = params[name];
  if (typeof v !== 'string' || v.length === 0 || v.length > max) throw new CommandError(CommandErrorCode.INVALID_PARAMS, `"${name}" must be a non-empty string of at most ${max} characters`);
  return v;
}

/** An optional finite number param. */
export function numberParam(params: Record<string, unknown>, name: string, required: boolean): number | undefined {
  const v = params[name];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new CommandError(CommandErrorCode.INVALID_PARAMS, `"${name}" must be a finite number`);
  return v;
}
