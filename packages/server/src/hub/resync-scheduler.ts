/**
 * When the hub re-reads channel streams from history: at most `maxConcurrent` reads in flight (a
 * broker reconnect asks for every channel at once, and each re-read is one history read), the rest
 * waiting in arrival order, and a failed read retried after a jittered exponential backoff.
 */

/** Stream re-reads in flight at once. */
export const MAX_CONCURRENT_RESYNCS = 64;

/**
 * The delay before retry number `attempt` (1, 2, …) of a failed re-read: 200 ms doubling up to
 * 5 s, times a random factor in [0.5, 1) so that streams which failed together do not retry together.
 */
export function retryDelay(attempt: number, random: () => number = Math.random): number {
  return Math.round(Math.min(5000, 100 * 2 ** Math.min(attempt, 6)) * (0.5 + random() / 2));
}

export interface ResyncSchedulerOptions<T> {
  /** Runs one re-read; the scheduler starts the next waiting one when it settles. Never rejects. */
  run(item: T): Promise<void>;
  /** False for an item that no longer needs its read (its stream was dropped meanwhile): skipped. */
  wanted(item: T): boolean;
  maxConcurrent?: number;
  random?: () => number;
}

export class ResyncScheduler<T> {
  /** A ring in an array: `waiting[head..]` wait; the consumed front is cut off now and then. */
  private readonly waiting: T[] = [];
  private head = 0;
  private running = 0;
  private readonly maxConcurrent: number;

  constructor(private readonly opts: ResyncSchedulerOptions<T>) {
    this.maxConcurrent = opts.maxConcurrent ?? MAX_CONCURRENT_RESYNCS;
  }

  /** Reads in flight now. */
  get inFlight(): number {
    return this.running;
  }

  /** Queues one read of `item`; the caller makes sure an item is queued at most once at a time. */
  schedule(item: T): void {
    this.waiting.push(item);
    this.pump();
  }

  /** Calls `fn` after the backoff for retry number `attempt`. The timer does not keep the process alive. */
  retryLater(attempt: number, fn: () => void): void {
    setTimeout(fn, retryDelay(attempt, this.opts.random)).unref();
  }

  private pump(): void {
    while (this.running < this.maxConcurrent && this.head < this.waiting.length) {
      const item = this.waiting[this.head++]!;
      if (!this.opts.wanted(item)) continue;
      this.running++;
      void this.opts.run(item).finally(() => {
        this.running--;
        this.pump();
      });
    }
    if (this.head === this.waiting.length) {
      this.waiting.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
  }
}
