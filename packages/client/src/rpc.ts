/**
 * RPC to a channel's handler (issue 14), the SDK half: the calls this client makes
 * (`client.call`, {@link RpcCalls}) and the methods it serves (`client.handle`, {@link RpcHandlers}).
 *
 * The client's state machine tells this module when a connection is up (`connected`, then
 * `flush` once the rest is resent) and when it is gone (`transportLost`), and when the client stops
 * (`failAll`); it hands over the RPC messages (`onMessage`) and the errors that answer an RPC
 * request (`onError`). Wire shapes are the dialect's (`rpc.handle`, `rpc.unhandle`, `rpc.call`,
 * `rpc.reply`; docs/protocol.md).
 *
 * A call is not idempotent: one written before the connection dropped is rejected `DISCONNECTED`,
 * never resent. One made while connecting or reconnecting waits for the connection, its deadline
 * counting from the call. Registrations are re-sent on every connection, before the resubscriptions.
 */
import type { ClientRequest, Inbound, RpcOutcome } from './dialect.js';
import { ClientErrorCode, SignalboxError, type SignalboxErrorDetails } from './errors.js';
import type { RpcContext, RpcRequestData } from './events.js';

/** The gateway's default timeout of a call, ms. */
export const DEFAULT_CALL_TIMEOUT = 10_000;
/**
 * How much longer than a call's timeout the client waits before rejecting it `TIMEOUT` itself: the
 * gateway answers `RPC_TIMEOUT` at the timeout; this is only the net for a gateway that never answers.
 */
export const CALL_TIMEOUT_MARGIN = 1_000;

/** Options of `client.call`. */
export interface CallOptions {
  /**
   * Ms the handler has to answer (default 10000; the gateway's maximum is 60000), counted from the
   * call: a call that waited for the connection is sent with what is left.
   */
  timeout?: number;
}

/** Options of `client.handle`. */
export interface HandleOptions {
  /**
   * Register for every method of the channel (`methods: null` on the wire) rather than the ones
   * listed; a call of a method not in the map is answered `UNKNOWN_METHOD`.
   */
  allMethods?: boolean;
}

/**
 * A method handler: gets the call's params (as sent, `undefined` when none) and its context
 * (caller, time left…), returns the result or a promise of it. Declared as a method so a handler
 * may annotate its params' type.
 */
export type RpcMethod = { handler(params: unknown, ctx: RpcContext): unknown }['handler'];

/** The methods a channel's handler serves, by name. */
export type RpcMethods = Record<string, RpcMethod>;

/** What `client.handle` returns. */
export interface RpcRegistration {
  readonly channel: string;
  /** The methods registered; null for every method ({@link HandleOptions.allMethods}). */
  readonly methods: readonly string[] | null;
  /**
   * Settles with the gateway's first answer: resolves on `rpc.handling`, rejects with its refusal
   * (e.g. `PERMISSION_DENIED` without a `handle` grant), or `DISCONNECTED`/`CLOSED` if the client
   * stops first. A refused registration is dropped, not retried.
   */
  readonly ready: Promise<void>;
  /** False once stopped, refused or replaced by another `handle()` of the same channel. */
  readonly active: boolean;
  /** Stops handling the channel (sends `rpc.unhandle` when connected). Idempotent. */
  stop(): void;
}

/** What the RPC module needs from the client. */
export interface RpcHost {
  /** Writes a request on the current transport; false when there is none open. May throw if the request cannot be encoded. */
  send(req: ClientRequest): boolean;
  nextId(): string;
  isConnected(): boolean;
  /** The backoff delay, ms, before retry number `attempt` (0-based) of registrations refused for a transient reason. */
  retryDelay(attempt: number): number;
}

/** Refusals after which a registration is sent again (with backoff) rather than dropped: the client's subscriptions do the same. */
const TRANSIENT_ERRORS: ReadonlySet<string> = new Set(['UNAVAILABLE', 'INTERNAL_ERROR', 'RATE_LIMITED']);

type RpcInbound = Extract<Inbound, { kind: 'rpc.handling' | 'rpc.unhandled' | 'rpc.result' | 'rpc.request' }>;
type CallRequest = Extract<ClientRequest, { kind: 'rpc.call' }>;

/** The code a handler's answer carries when its method threw something without a string `code`. */
export const HANDLER_ERROR_CODE = 'HANDLER_ERROR';
/** The code a handler's answer carries for a method it does not serve. */
export const UNKNOWN_METHOD_CODE = 'UNKNOWN_METHOD';

/** Calls and registrations, wired into the client with one field. */
export class Rpc {
  readonly #calls: RpcCalls;
  readonly #handlers: RpcHandlers;

  constructor(host: RpcHost) {
    this.#calls = new RpcCalls(host);
    this.#handlers = new RpcHandlers(host);
  }

  call(channel: string, method: string, params: unknown, options: CallOptions, online: boolean): Promise<unknown> {
    return this.#calls.call(channel, method, params, options, online);
  }

  handle(channel: string, methods: RpcMethods, options: HandleOptions): RpcRegistration {
    return this.#handlers.handle(channel, methods, options);
  }

  /** A connection is up: registers every handler again (before the resubscriptions). */
  connected(): void {
    this.#handlers.connected();
  }

  /** After the resubscriptions and resends: writes the calls made while not connected. */
  flush(): void {
    this.#calls.flush();
  }

  /** The transport is gone: calls in flight are rejected `DISCONNECTED`; answers of running methods go nowhere. */
  transportLost(): void {
    this.#calls.transportLost();
    this.#handlers.transportLost();
  }

  /** The client stops: every call rejected with `code`, pending registrations' `ready` too (the registrations stay). */
  failAll(code: ClientErrorCode, message: string): void {
    this.#calls.failAll(code, message);
    this.#handlers.failAll(code, message);
  }

  onMessage(inbound: RpcInbound): void {
    switch (inbound.kind) {
      case 'rpc.result':
        if (inbound.replyTo) this.#calls.settle(inbound.replyTo, inbound.result);
        break;
      case 'rpc.handling':
        if (inbound.replyTo) this.#handlers.accepted(inbound.replyTo);
        break;
      case 'rpc.request':
        this.#handlers.serve(inbound.request);
        break;
      case 'rpc.unhandled':
        break;
    }
  }

  /** A server error answering request `id`: true when it was an RPC request's. */
  onError(id: string, err: SignalboxError): boolean {
    return this.#calls.reject(id, err) || this.#handlers.refused(id, err);
  }
}

// ---- Calls ---------------------------------------------------------------------------------------

interface PendingCall {
  request: CallRequest;
  timeout: number;
  calledAt: number;
  written: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export class RpcCalls {
  readonly #host: RpcHost;
  readonly #pending = new Map<string, PendingCall>();

  constructor(host: RpcHost) {
    this.#host = host;
  }

  call(channel: string, method: string, params: unknown, options: CallOptions, online: boolean): Promise<unknown> {
    if (typeof channel !== 'string' || channel.length === 0) throw new TypeError('A channel name must be a non-empty string');
    if (typeof method !== 'string' || method.length === 0) throw new TypeError('A method name must be a non-empty string');
    const timeout = options.timeout ?? DEFAULT_CALL_TIMEOUT;
    if (typeof timeout !== 'number' || !(timeout > 0) || !Number.isFinite(timeout)) throw new TypeError('`timeout` must be a positive number of ms');
    const request: CallRequest = { kind: 'rpc.call', id: this.#host.nextId(), channel, method, timeoutMs: Math.ceil(timeout) };
    if (params !== undefined) request.params = params;
    let resolve!: (value: unknown) => void;
    let reject!: (err: unknown) => void;
    const promise = new Promise<unknown>((res, rej) => { resolve = res; reject = rej; });
    const entry: PendingCall = { request, timeout: request.timeoutMs, calledAt: Date.now(), written: false, timer: undefined, resolve, reject };
    this.#pending.set(request.id, entry);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      this.#fail(entry, new SignalboxError(ClientErrorCode.TIMEOUT, `No answer to ${method} within ${entry.timeout} ms`, details(request)));
    }, entry.timeout + CALL_TIMEOUT_MARGIN);
    if (online) this.#write(entry, entry.timeout);
    return promise;
  }

  flush(): void {
    for (const entry of [...this.#pending.values()]) {
      if (entry.written || this.#pending.get(entry.request.id) !== entry) continue;
      const left = entry.timeout - (Date.now() - entry.calledAt);
      if (left <= 0) this.#fail(entry, new SignalboxError(ClientErrorCode.TIMEOUT, `No connection within the ${entry.timeout} ms of the call`, details(entry.request)));
      else this.#write(entry, Math.ceil(left));
    }
  }

  transportLost(): void {
    for (const entry of [...this.#pending.values()]) {
      if (!entry.written) continue;
      const err = new SignalboxError(ClientErrorCode.DISCONNECTED, 'The connection was lost while the call was in flight; a call is not resent', details(entry.request));
      this.#fail(entry, err);
    }
  }

  failAll(code: ClientErrorCode, message: string): void {
    for (const entry of [...this.#pending.values()]) this.#fail(entry, new SignalboxError(code, message, details(entry.request)));
  }

  /** Resolves call `id`; false when there is none (late, duplicate or foreign answer). */
  settle(id: string, result: unknown): boolean {
    const entry = this.#pending.get(id);
    if (!entry || !entry.written) return false;
    this.#remove(entry);
    entry.resolve(result);
    return true;
  }

  reject(id: string, err: SignalboxError): boolean {
    const entry = this.#pending.get(id);
    if (!entry || !entry.written) return false;
    this.#fail(entry, err);
    return true;
  }

  #write(entry: PendingCall, timeoutMs: number): void {
    entry.request.timeoutMs = timeoutMs;
    try {
      entry.written = this.#host.send(entry.request);
    } catch (err) {
      // `params` that cannot be encoded (a cycle, a BigInt): the call fails, the client goes on.
      this.#fail(entry, err);
    }
  }

  #fail(entry: PendingCall, err: unknown): void {
    if (this.#pending.get(entry.request.id) !== entry) return;
    this.#remove(entry);
    entry.reject(err);
  }

  #remove(entry: PendingCall): void {
    this.#pending.delete(entry.request.id);
    if (entry.timer !== undefined) clearTimeout(entry.timer);
    entry.timer = undefined;
  }
}

function details(request: CallRequest): SignalboxErrorDetails {
  return { channel: request.channel, method: request.method, requestId: request.id };
}

// ---- Handlers ------------------------------------------------------------------------------------

class Registration implements RpcRegistration {
  readonly ready: Promise<void>;
  active = true;
  /** Accepted on the current connection. */
  live = false;
  #settled = false;
  #resolve!: () => void;
  #reject!: (err: SignalboxError) => void;

  constructor(
    readonly channel: string,
    readonly methods: readonly string[] | null,
    readonly table: ReadonlyMap<string, RpcMethod>,
    readonly stop: () => void,
  ) {
    this.ready = new Promise<void>((res, rej) => { this.#resolve = res; this.#reject = rej; });
    // Awaiting `ready` is optional: a refusal is also emitted as `error`, and must not crash Node as unhandled.
    this.ready.catch(noop);
  }

  get pending(): boolean {
    return !this.#settled;
  }

  settle(err?: SignalboxError): void {
    if (this.#settled) return;
    this.#settled = true;
    if (err) this.#reject(err);
    else this.#resolve();
  }
}

export class RpcHandlers {
  readonly #host: RpcHost;
  readonly #byChannel = new Map<string, Registration>();
  /** `rpc.handle` requests awaiting their answer, by request id. */
  readonly #requests = new Map<string, Registration>();
  /** Bumped with each lost transport: an answer computed for a request the old one carried is not sent. */
  #generation = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #retryAttempts = 0;

  constructor(host: RpcHost) {
    this.#host = host;
  }

  handle(channel: string, methods: RpcMethods, options: HandleOptions): RpcRegistration {
    if (typeof channel !== 'string' || channel.length === 0) throw new TypeError('A channel name must be a non-empty string');
    const table = new Map<string, RpcMethod>();
    for (const [name, fn] of Object.entries(methods ?? {})) if (typeof fn === 'function') table.set(name, fn);
    if (table.size === 0 && !options.allMethods) throw new TypeError('handle() needs at least one method');
    const reg: Registration = new Registration(channel, options.allMethods ? null : [...table.keys()], table, () => this.#stop(reg));
    const previous = this.#byChannel.get(channel);
    // A new registration of the channel replaces the method list (the gateway's rule too); the old one
    // is no longer active, and its `ready` follows the new one's.
    if (previous) {
      previous.active = false;
      if (previous.pending) reg.ready.then(() => previous.settle(), (err: SignalboxError) => previous.settle(err));
    }
    this.#byChannel.set(channel, reg);
    if (this.#host.isConnected()) this.#register(reg);
    return reg;
  }

  connected(): void {
    for (const reg of this.#byChannel.values()) this.#register(reg);
  }

  transportLost(): void {
    this.#requests.clear();
    this.#generation++;
    for (const reg of this.#byChannel.values()) reg.live = false;
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#retryAttempts = 0;
  }

  failAll(code: ClientErrorCode, message: string): void {
    for (const reg of this.#byChannel.values()) reg.settle(new SignalboxError(code, message, { channel: reg.channel }));
  }

  /** `rpc.handling` answering request `id`. */
  accepted(id: string): void {
    const reg = this.#requests.get(id);
    if (!reg) return;
    this.#requests.delete(id);
    reg.live = true;
    this.#retryAttempts = 0;
    reg.settle();
  }

  /**
   * A refusal of `rpc.handle` request `id`: the registration is dropped, not retried (a transient
   * refusal, e.g. `UNAVAILABLE`, is sent again with backoff, `ready` still pending).
   */
  refused(id: string, err: SignalboxError): boolean {
    const reg = this.#requests.get(id);
    if (!reg) return false;
    this.#requests.delete(id);
    const current = this.#byChannel.get(reg.channel) === reg;
    if (current && TRANSIENT_ERRORS.has(err.code)) {
      this.#scheduleRetry();
      return true;
    }
    if (current) this.#byChannel.delete(reg.channel);
    reg.active = false;
    reg.settle(err);
    return true;
  }

  /** Runs the method of an `rpc.request` and answers it. */
  serve(request: RpcRequestData): void {
    const { callId, channel, method, params, caller, timeoutMs } = request;
    const reg = this.#byChannel.get(channel);
    const fn = reg?.table.get(method);
    if (!fn) {
      this.#reply(callId, { error: { code: UNKNOWN_METHOD_CODE, message: `This client does not handle method "${method}" on ${channel}` } });
      return;
    }
    const generation = this.#generation;
    const ctx: RpcContext = { callId, channel, method, caller, timeoutMs };
    void (async (): Promise<RpcOutcome> => {
      try {
        // A method without a result answers null: JSON has no undefined, and the gateway needs `result` or `error`.
        return { result: (await fn(params, ctx)) ?? null };
      } catch (err) {
        return { error: replyError(err) };
      }
    })().then((outcome) => {
      // The connection that carried the request is gone: the gateway has already told the caller.
      if (generation === this.#generation) this.#reply(callId, outcome);
    });
  }

  #scheduleRetry(): void {
    if (this.#retryTimer !== undefined || !this.#host.isConnected()) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      const waiting = new Set(this.#requests.values());
      for (const reg of this.#byChannel.values()) if (!reg.live && !waiting.has(reg)) this.#register(reg);
    }, this.#host.retryDelay(this.#retryAttempts++));
  }

  #register(reg: Registration): void {
    const id = this.#host.nextId();
    if (this.#host.send({ kind: 'rpc.handle', id, channel: reg.channel, methods: reg.methods ? [...reg.methods] : null })) this.#requests.set(id, reg);
  }

  #stop(reg: Registration): void {
    if (this.#byChannel.get(reg.channel) !== reg) return;
    this.#byChannel.delete(reg.channel);
    reg.active = false;
    // Stopped before the gateway answered: nothing is left to wait for.
    reg.settle();
    if (this.#host.isConnected()) this.#host.send({ kind: 'rpc.unhandle', id: this.#host.nextId(), channel: reg.channel });
  }

  #reply(callId: string, outcome: RpcOutcome): void {
    try {
      this.#host.send({ kind: 'rpc.reply', callId, outcome });
    } catch (err) {
      // A result that cannot be encoded still gets an answer, so the caller does not wait for its timeout.
      this.#host.send({ kind: 'rpc.reply', callId, outcome: { error: { code: HANDLER_ERROR_CODE, message: `The result cannot be encoded: ${messageOf(err)}` } } });
    }
  }
}

/** An error code the gateway passes through (1-64 characters, letter first); it refuses a reply with any other. */
const PASSABLE_CODE = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/;

/**
 * The error a handler answers for what its method threw: the thrown error's string `code` (else, or
 * when the gateway would refuse it, `HANDLER_ERROR`) and message.
 */
export function replyError(err: unknown): { code: string; message: string } {
  const code = isObject(err) && typeof err.code === 'string' && PASSABLE_CODE.test(err.code) ? err.code : HANDLER_ERROR_CODE;
  return { code, message: messageOf(err) };
}

function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (isObject(err) && typeof err.message === 'string') return err.message;
  return String(err);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

function noop(): void {}
