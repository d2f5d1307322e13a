/**
 * The stream writer of one run's answer: takes text chunks (`write`) or any `AsyncIterable<string>`
 * (`pipe`: an LLM SDK's text stream) and turns them into appends to the answer message, batched
 * within a window so a model emitting hundreds of tokens per second costs a few dozen publishes per
 * second, far below the gateway's rate limits.
 *
 * Batching: the first chunk after a quiet window goes at once (the first token is never held
 * back); later ones are gathered until `windowMs` after the previous append was written, and while
 * an append is unacknowledged the next one keeps gathering (one append of a run on the wire at a
 * time, so a slow gateway gets bigger appends, never a backlog of small ones).
 *
 * Nothing is dropped silently: an append the client could not deliver (see its `undelivered`)
 * marks the writer broken, and {@link AnswerWriter.close} rejects with `ANSWER_INCOMPLETE`.
 */
import { AgentErrorCode } from './events.js';

/** The error `close()` rejects with when part of the answer was not delivered. */
export interface AnswerIncompleteError extends Error {
  code: typeof AgentErrorCode.ANSWER_INCOMPLETE;
  seq: number;
}

export interface AnswerWriterOptions {
  /** Batching window, ms. Default 40. */
  windowMs?: number;
  /** Publishes one append (`seq` counts from 1); resolves on its ack. */
  publish: (text: string, seq: number) => Promise<unknown>;
  /** Called once, on the first chunk written (the run goes from `thinking` to `streaming`). */
  onFirstWrite?: () => void;
}

export class AnswerWriter {
  readonly #windowMs: number;
  readonly #publish: (text: string, seq: number) => Promise<unknown>;
  readonly #onFirstWrite: (() => void) | undefined;
  #buffer = '';
  /** Text acknowledged by the gateway, in order. */
  #delivered = '';
  /** Text handed to `write` and not refused: buffered, in flight or delivered. */
  #accepted = '';
  #seq = 0;
  #inFlight: Promise<void> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastWrite = -Infinity;
  #stopped = false;
  #failure: AnswerIncompleteError | undefined;
  #idle: { promise: Promise<void>; resolve: () => void } | undefined;

  constructor(options: AnswerWriterOptions) {
    this.#windowMs = Math.max(0, options.windowMs ?? 40);
    this.#publish = options.publish;
    this.#onFirstWrite = options.onFirstWrite;
  }

  /** Everything written so far (buffered, in flight or delivered). */
  get text(): string {
    return this.#accepted;
  }

  /** The text the gateway has acknowledged, in order: what every reader of the answer has. */
  get delivered(): string {
    return this.#delivered;
  }

  /** False once stopped (the run was cancelled or ended): further writes are ignored. */
  get writable(): boolean {
    return !this.#stopped;
  }

  /** Appends `chunk` to the answer. Returns false (and ignores it) once the writer is stopped. */
  write(chunk: string): boolean {
    if (this.#stopped) return false;
    if (typeof chunk !== 'string') throw new TypeError('write() takes a string');
    if (chunk.length === 0) return true;
    if (this.#accepted.length === 0) this.#onFirstWrite?.();
    this.#accepted += chunk;
    this.#buffer += chunk;
    this.#schedule();
    return true;
  }

  /**
   * Writes every chunk of `source` (an `AsyncIterable<string>` such as an LLM SDK's text stream, or
   * any iterable), until it ends or the writer is stopped: then the source is closed (its
   * `return()` called) and `pipe` resolves.
   */
  async pipe(source: AsyncIterable<string> | Iterable<string>): Promise<void> {
    for await (const chunk of source as AsyncIterable<string>) {
      if (!this.write(chunk)) break;
    }
  }

  /** Stops accepting writes (what is buffered is still sent by {@link close}). */
  stop(): void {
    this.#stopped = true;
  }

  /**
   * Stops, sends what is buffered, and waits for every append's ack. Resolves with the delivered
   * text; rejects with `ANSWER_INCOMPLETE` if any append could not be delivered.
   */
  async close(): Promise<string> {
    this.#stopped = true;
    this.#timer = clear(this.#timer);
    while (this.#buffer.length > 0 || this.#inFlight) {
      if (this.#inFlight) await this.#inFlight;
      else this.#send();
    }
    if (this.#failure) throw this.#failure;
    return this.#delivered;
  }

  /** Resolves once nothing is buffered or in flight. */
  idle(): Promise<void> {
    if (this.#buffer.length === 0 && !this.#inFlight) return Promise.resolve();
    if (!this.#idle) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => { resolve = r; });
      this.#idle = { promise, resolve };
    }
    return this.#idle.promise;
  }

  #schedule(): void {
    if (this.#inFlight || this.#timer !== undefined) return;
    const wait = this.#lastWrite + this.#windowMs - Date.now();
    if (wait <= 0) {
      this.#send();
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#inFlight) this.#send();
    }, wait);
  }

  #send(): void {
    if (this.#buffer.length === 0) return;
    const text = this.#buffer;
    this.#buffer = '';
    this.#lastWrite = Date.now();
    const seq = ++this.#seq;
    this.#inFlight = this.#publish(text, seq).then(
      () => { this.#delivered += text; },
      (err: unknown) => {
        this.#failure ??= Object.assign(new Error(`Part ${seq} of the answer could not be delivered: ${err instanceof Error ? err.message : String(err)}`, { cause: err }), {
          code: AgentErrorCode.ANSWER_INCOMPLETE, seq,
        });
      },
    ).finally(() => {
      this.#inFlight = undefined;
      if (this.#buffer.length > 0) {
        if (this.#stopped) return; // close() drains it.
        this.#schedule();
      } else if (this.#idle) {
        const idle = this.#idle;
        this.#idle = undefined;
        idle.resolve();
      }
    });
  }
}

function clear(timer: ReturnType<typeof setTimeout> | undefined): undefined {
  if (timer !== undefined) clearTimeout(timer);
  return undefined;
}
