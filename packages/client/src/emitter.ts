/** Handler of one event; a returned promise is awaited only to report its rejection. */
export type Handler<T> = (event: T) => void | Promise<void>;

type StoredHandler = (event: never) => unknown;

/**
 * A minimal event emitter shared by the client and its subscriptions. Not Node's EventEmitter:
 * the browser bundle must not depend on Node built-ins, and an 'error' without listeners must not throw.
 */
export class Emitter {
  readonly #handlers = new Map<string, StoredHandler[]>();
  readonly #onHandlerError: (err: unknown, type: string) => void;

  constructor(onHandlerError: (err: unknown, type: string) => void) {
    this.#onHandlerError = onHandlerError;
  }

  add(type: string, handler: StoredHandler): void {
    const list = this.#handlers.get(type);
    if (list) list.push(handler);
    else this.#handlers.set(type, [handler]);
  }

  remove(type: string, handler: StoredHandler): void {
    const list = this.#handlers.get(type);
    if (!list) return;
    const i = list.indexOf(handler);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.#handlers.delete(type);
  }

  has(type: string): boolean {
    return this.#handlers.has(type);
  }

  /** Number of registered handlers, all types together (used by leak tests and diagnostics). */
  get size(): number {
    let n = 0;
    for (const list of this.#handlers.values()) n += list.length;
    return n;
  }

  clear(): void {
    this.#handlers.clear();
  }

  /** Calls every handler of `type`; a throwing or rejecting handler never stops the others. */
  emit(type: string, event: unknown): void {
    const list = this.#handlers.get(type);
    if (!list) return;
    // Copy: a handler may remove itself (or others) while we iterate.
    for (const handler of list.slice()) {
      try {
        const r = (handler as (e: unknown) => unknown)(event);
        if (r !== null && typeof r === 'object' && typeof (r as PromiseLike<unknown>).then === 'function') {
          (r as PromiseLike<unknown>).then(undefined, (err: unknown) => this.#onHandlerError(err, type));
        }
      } catch (err) {
        this.#onHandlerError(err, type);
      }
    }
  }
}
