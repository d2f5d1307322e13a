/**
 * Writer threads for large fan-out rounds.
 *
 * A publication to N local subscribers is N `write` syscalls, and on a VM each one costs
 * 10-15 µs, mostly in the kernel: 1,000 subscribers take 12-14 ms of one core however little
 * JavaScript runs around them. Node gives every socket to the main thread, but a syscall can be
 * made from any thread of the process on the socket's file descriptor. So a round of writes is
 * run as a parallel loop: the main thread lays the bytes in a shared arena, lists (fd, offset,
 * length) jobs, and it and the writer threads claim jobs until none is left; then the main
 * thread waits (Atomics.wait) for jobs still being written, and hands to libuv whatever the
 * kernel did not take (a partial write, EAGAIN, an error), exactly as a `socket.write` would.
 *
 * Why this is safe:
 * - The main thread is blocked for the whole round, so no socket is closed, and no fd number
 *   reused, while a writer thread holds it; and nothing else writes to those sockets meanwhile.
 * - A socket takes part only when libuv and Node hold nothing queued for it
 *   (`writableLength === 0`), so a direct write cannot overtake earlier bytes; what is left of a
 *   partial write is queued through the socket before anything written after it.
 * - Claims carry the round's number (64-bit: it never wraps), so a thread late from one round
 *   can never claim a job of another (see `run`).
 *
 * The threads (write-worker.ts) run the same claim loop as the main thread (write-claim.ts) and
 * only ever block in Atomics.wait or write(2); they hold no JavaScript state of the gateway.
 */
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { CLAIM, CLOSED, COUNT, CTL_WORDS, DONE, IDX_BITS, JOB, NEXT, ROUND, STOP, WAKE, claimAndWrite, type RoundMemory } from './write-claim.js';

/**
 * The writer thread's module. Threads run compiled JavaScript: from the sources (tests run them
 * through vite), the build's copy in dist/ is used (`npm test` builds first).
 */
function workerModule(): URL {
  const here = new URL('./write-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  const built = new URL('../../dist/transport/write-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  throw new Error('writer threads need the built server (npm run build): dist/transport/write-worker.js not found');
}

/** Jobs per round; far below 2^IDX_BITS, so that (index + CLAIM) never carries into the round. */
export const MAX_JOBS = 16384;
/** Bytes of one round's arena. A round that needs more is split into several. */
export const ARENA_BYTES = 4 * 1024 * 1024;

/**
 * The main thread waited this long for a writer thread after writing its own share: the thread
 * was not running (its claim holds at most CLAIM writes, well under a millisecond).
 */
const STALL_MS = 1;
/**
 * A stall while the event loop was busy at least this share of the time since the last stall
 * means the writer threads compete for cores with the gateway's own work: the machine is
 * saturated and they cost more than they save (measured at 2M deliveries/s: p99 54-65 ms with
 * them, 30-41 ms without). Stalls of a mostly idle loop (a round now and then, the thread
 * preempted once) do not count: there the thread still halves a round's time.
 */
const BUSY_UTILIZATION = 0.5;
export const BACKOFF_MIN_MS = 1000;
export const BACKOFF_MAX_MS = 16_000;

/**
 * When the writer threads sit out. After a stall of a busy loop, rounds are written by the main
 * thread alone for BACKOFF_MIN_MS; a new one within as long again of the end of that pause
 * doubles it (up to BACKOFF_MAX_MS), one after a quiet spell starts again from the minimum. So a
 * saturated machine settles on the main thread alone, trying the threads again now and then,
 * and an idle one keeps them.
 */
export class WriterBackoff {
  private until = 0;
  private pauseMs = BACKOFF_MIN_MS;

  /** May the writer threads be woken at `now` (ms, one monotonic clock)? */
  allowed(now: number): boolean {
    return now >= this.until;
  }

  /** A stall at `now`; `busy`: the loop was busy (see BUSY_UTILIZATION). Returns true when it starts a pause. */
  stalled(now: number, busy: boolean): boolean {
    if (!busy) return false;
    const soon = this.until !== 0 && now - this.until < this.pauseMs;
    this.pauseMs = soon ? Math.min(BACKOFF_MAX_MS, this.pauseMs * 2) : BACKOFF_MIN_MS;
    this.until = now + this.pauseMs;
    return true;
  }

  /** The length of the current (or last) pause, ms. */
  get currentPauseMs(): number {
    return this.pauseMs;
  }
}

/** The same Buffers in the same order (identity, not content: a frame is shared, never copied). */
export function sameFrames(a: readonly Buffer[], b: readonly Buffer[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class WritePool {
  private readonly ctl: Int32Array;
  private readonly big: BigInt64Array;
  private readonly jobs: Int32Array;
  /** Bytes of the current round, shared with the writer threads. */
  readonly arena: Buffer;
  private readonly memory: RoundMemory;
  private readonly workers: Worker[] = [];
  private round = 0n;
  private count = 0;
  private used = 0;
  /**
   * The frames last copied into the arena this round, and where. Every subscriber of a channel
   * is sent the same frames in the same order, so a round usually copies them once, not once per
   * socket (copying was 17 % of the main thread at 2M deliveries/s).
   */
  private lastFrames: readonly Buffer[] = [];
  private lastAt = 0;
  private closed = false;
  private readonly backoff = new WriterBackoff();
  /** Event-loop utilization at the last stall (or at start). */
  private elu = performance.eventLoopUtilization();
  /**
   * Rounds run, jobs written (of them by the writer threads), jobs the kernel did not take whole
   * (queued through the socket), rounds where the main thread stalled waiting for a writer
   * thread, and pauses of the threads that followed.
   */
  readonly stats = { rounds: 0, jobs: 0, threadJobs: 0, incomplete: 0, stalls: 0, pauses: 0 };

  constructor(readonly threads: number) {
    const ctlBuf = new SharedArrayBuffer(CTL_WORDS * 4);
    const bigBuf = new SharedArrayBuffer(2 * 8);
    const jobsBuf = new SharedArrayBuffer(MAX_JOBS * JOB * 4);
    const arenaBuf = new SharedArrayBuffer(ARENA_BYTES);
    this.ctl = new Int32Array(ctlBuf);
    this.big = new BigInt64Array(bigBuf);
    this.jobs = new Int32Array(jobsBuf);
    this.arena = Buffer.from(arenaBuf);
    this.memory = { ctl: this.ctl, big: this.big, jobs: this.jobs, arena: this.arena };
    for (let i = 0; i < threads; i++) {
      const w = new Worker(workerModule(), {
        workerData: { ctl: ctlBuf, big: bigBuf, jobs: jobsBuf, arena: arenaBuf },
        name: `signalbox-writer-${i + 1}`,
        execArgv: [], // the parent's flags (--cpu-prof, --input-type...) are not the writer's
        resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 },
      });
      w.unref();
      this.workers.push(w);
    }
  }

  /** Jobs listed for the round being built. */
  get size(): number {
    return this.count;
  }

  /**
   * Lists a write of `frames` (`total` bytes) to `fd`. Returns false when the round has no room
   * left (run it, then list again).
   */
  add(fd: number, frames: readonly Buffer[], total: number): boolean {
    if (this.count === MAX_JOBS) return false;
    let at: number;
    if (sameFrames(frames, this.lastFrames)) at = this.lastAt;
    else {
      if (total > ARENA_BYTES - this.used) return false;
      at = this.used;
      let p = at;
      for (let i = 0; i < frames.length; i++) {
        const f = frames[i]!;
        f.copy(this.arena, p);
        p += f.length;
      }
      this.used = p;
      this.lastFrames = frames;
      this.lastAt = at;
    }
    const o = this.count * JOB;
    this.jobs[o] = fd;
    this.jobs[o + 1] = at;
    this.jobs[o + 2] = total;
    this.jobs[o + 3] = 0;
    this.count++;
    return true;
  }

  /**
   * Writes every listed job, on this thread and the writer threads, and returns when all are
   * done. Then `result(i)` is what the kernel took of job i (-1: the write failed).
   */
  run(): void {
    const n = this.count;
    if (n === 0) return;
    const ctl = this.ctl;
    const big = this.big;
    const round = ++this.round;
    // Close claims before COUNT changes: a thread late from an earlier round holds that round's
    // number and COUNT, and claims only while NEXT carries the same number, which never recurs.
    // A thread that reads the new ROUND reads the new COUNT too (it is stored first).
    Atomics.store(big, NEXT, (round << IDX_BITS) | CLOSED);
    Atomics.store(ctl, DONE, 0);
    Atomics.store(ctl, COUNT, n);
    Atomics.store(big, ROUND, round);
    Atomics.store(big, NEXT, round << IDX_BITS);
    if (this.workers.length > 0 && n > CLAIM && this.backoff.allowed(performance.now())) {
      Atomics.add(ctl, WAKE, 1);
      Atomics.notify(ctl, WAKE);
    }
    const mine = claimAndWrite(this.memory, round, n);
    let done = Atomics.load(ctl, DONE);
    if (done < n) {
      const t0 = performance.now();
      do Atomics.wait(ctl, DONE, done, 50);
      while ((done = Atomics.load(ctl, DONE)) < n);
      const now = performance.now();
      if (now - t0 > STALL_MS) this.stalled(now);
    }
    this.stats.rounds++;
    this.stats.jobs += n;
    this.stats.threadJobs += n - mine;
  }

  /** A writer thread had no core when this round needed it: pause the threads if the loop was busy too. */
  private stalled(now: number): void {
    this.stats.stalls++;
    const elu = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(elu, this.elu).utilization >= BUSY_UTILIZATION;
    this.elu = elu;
    if (this.backoff.stalled(now, busy)) this.stats.pauses++;
  }

  /** Bytes the kernel took of job i in the last run (-1: the write failed: EAGAIN, EPIPE...). */
  result(i: number): number {
    return this.jobs[i * JOB + 3]!;
  }

  /** Offset and length of job i's bytes in the arena. */
  offset(i: number): number {
    return this.jobs[i * JOB + 1]!;
  }

  length(i: number): number {
    return this.jobs[i * JOB + 2]!;
  }

  /** Forgets the round: the next `add` starts a new one. */
  reset(): void {
    this.count = 0;
    this.used = 0;
    this.lastFrames = [];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.ctl, STOP, 1);
    Atomics.add(this.ctl, WAKE, 1);
    Atomics.notify(this.ctl, WAKE);
    await Promise.all(this.workers.map((w) => new Promise<void>((resolve) => {
      w.once('exit', () => resolve());
      // A thread in write(2) finishes it first; terminate is the backstop.
      setTimeout(() => void w.terminate(), 1000).unref();
    })));
  }
}
