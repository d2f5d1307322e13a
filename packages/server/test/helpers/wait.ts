/**
 * The one way a test waits for a condition that no event signals (a TTL running out, a count a
 * node reports over HTTP, another process becoming ready). Where an event exists, await it instead
 * (`TestClient.next`, `Recorder.until`): polling is for state that changes with time or out of
 * reach of the test.
 *
 * Each poll runs on the event loop (a timer between tries, never a busy loop), and a timeout names
 * what was awaited, so a failure reads "timed out after 5000 ms waiting for history to expire".
 */

/** How long and how often to poll, and what to call the condition in the timeout error. */
export interface WaitOptions {
  /** What is awaited, for the timeout error ("the node to count 0 connections"). */
  label: string;
  /** Give up after this long. Default 5000 ms. */
  timeoutMs?: number;
  /** Pause between tries. Default 25 ms. */
  intervalMs?: number;
  /** Extra state appended to the timeout error (what was seen last). */
  detail?: () => string;
}

const DEFAULT_TIMEOUT_MS = 5000;
const DEFAULT_INTERVAL_MS = 25;

/**
 * Re-evaluates `probe` until it returns a value other than `undefined`, and resolves with it.
 * The probe is tried once more after the deadline has passed, so a slow probe still gets a last
 * look. An error thrown by the probe (a failed assertion inside it) fails the wait at once: it is
 * not retried.
 */
export async function eventually<T>(probe: () => T | undefined | Promise<T | undefined>, opts: WaitOptions): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const intervalMs = opts.intervalMs ?? DEFAULT_INTERVAL_MS;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.label}${opts.detail ? `\n${opts.detail()}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Polls `cond` until it holds; rejects with a timeout error naming `opts.label`. */
export async function until(cond: () => boolean | Promise<boolean>, opts: WaitOptions): Promise<void> {
  await eventually(async () => ((await cond()) ? true : undefined), opts);
}

/**
 * The one way to assert absence: waits a short bounded window (default 150 ms) so that whatever
 * should NOT arrive would have. Never use it to wait for something to happen (await its event, or
 * `until`). Given a client, resolves with the messages that arrived during the window.
 */
export function quietPeriod(ms?: number): Promise<void>;
export function quietPeriod<M>(client: { messages: M[] }, ms?: number): Promise<M[]>;
export async function quietPeriod<M>(a?: number | { messages: M[] }, b?: number): Promise<void | M[]> {
  const client = typeof a === 'object' ? a : undefined;
  const ms = (typeof a === 'number' ? a : b) ?? 150;
  const from = client?.messages.length ?? 0;
  await new Promise((resolve) => setTimeout(resolve, ms));
  return client ? client.messages.slice(from) : undefined;
}
