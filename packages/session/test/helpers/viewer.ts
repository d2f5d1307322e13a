/**
 * A debugger for the tests: a Node SDK client with the viewer's grants (read + call on the session,
 * nothing else) that reads the session's history, then subscribes from there, recording every publication; `next(pred)` awaits the
 * first one (already seen or to come) that matches, no polling.
 */
import { SignalboxClient, type PublicationMessage, type SignalboxClientOptions } from '@signalbox/client/node';

export type Pub = PublicationMessage<Record<string, unknown>>;

export class Viewer {
  readonly client: SignalboxClient;
  readonly pubs: Pub[] = [];
  readonly #waiters: { pred: (p: Pub) => boolean; resolve: (p: Pub) => void }[] = [];

  constructor(readonly channel: string, options: SignalboxClientOptions) {
    this.client = new SignalboxClient(options);
  }

  async start(): Promise<this> {
    await this.client.connect();
    // What happened before the debugger attached, then live from there on.
    const { publications, position } = await this.client.history(this.channel, { limit: 1000 });
    this.pubs.push(...(publications as Pub[]));
    const sub = this.client.subscribe(this.channel, position ? { since: position } : {});
    sub.on('publication', (m) => {
      const p = m as Pub;
      this.pubs.push(p);
      for (const w of [...this.#waiters]) {
        if (w.pred(p)) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          w.resolve(p);
        }
      }
    });
    await new Promise<void>((resolve) => {
      const done = (): void => {
        sub.off('subscribed', done);
        resolve();
      };
      sub.on('subscribed', done);
    });
    return this;
  }

  /** The first publication matching `pred` (seen already, or the next to arrive), within `timeoutMs`. */
  next(pred: (p: Pub) => boolean, label: string, timeoutMs = 10_000): Promise<Pub> {
    const seen = this.pubs.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise<Pub>((resolve, reject) => {
      const w = {
        pred,
        resolve: (p: Pub) => {
          clearTimeout(timer);
          resolve(p);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${label}; seen: ${this.pubs.map((p) => p.type).join(', ')}`));
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  /** The next publication of `type` whose data matches `pred`. */
  event(type: string, pred: (d: Record<string, unknown>) => boolean = () => true, timeoutMs?: number): Promise<Pub> {
    return this.next((p) => p.type === type && pred(p.data), type, timeoutMs);
  }

  stop(): void {
    this.client.disconnect();
  }
}
