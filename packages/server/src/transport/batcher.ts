/**
 * The per-turn write batcher: every frame bound for one socket within an event-loop turn goes out
 * in one write, rounds of writes are sliced so the loop can poll, and large rounds are written by
 * writer threads (write-pool.ts). What it writes to is a {@link BatchedTransport} (ws-transport.ts).
 */
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { WriteLatency } from '../write-latency.js';
import { sameFrames, type WritePool } from './write-pool.js';

/** What the batcher flushes: a transport with frames queued for this turn (ws-transport.ts). */
export interface BatchedTransport {
  /** Writes this turn's frames to the socket. */
  flush(): void;
  /** Lists this turn's frames in the pool's round: 1 listed, 0 not eligible (flushed now), -1 the round is full. */
  stage(pool: WritePool): number;
  /** After the pool wrote job k (this transport's bytes): queues what the kernel did not take. */
  afterParallel(pool: WritePool, k: number): void;
}

/**
 * Longest stretch of writes before the batcher lets the event loop poll. With 10,000 subscribers
 * one round of writes takes 200-300 ms; in one piece it starves the poll phase, so sockets whose
 * kernel buffer filled wait that long before libuv writes the rest, and throughput collapses.
 */
const SLICE_MS = 20;

/**
 * With writer threads (WritePool), a round with at least PARALLEL_MIN sockets left is written in
 * parallel, PARALLEL_CHUNK sockets at a time (the SLICE_MS check runs between chunks). Below it,
 * waking a thread costs more than it saves.
 */
const PARALLEL_MIN = 32;
const PARALLEL_CHUNK = 1024;

/** The batcher's join arena starts at this size and grows to what one turn needs, up to the cap. */
const ARENA_MIN_BYTES = 1024 * 1024;
const ARENA_MAX_BYTES = 16 * 1024 * 1024;

/**
 * Coalesces every frame bound for one socket within an event-loop turn into one write: frames
 * queue on their transport, and one `setImmediate` per turn (not per socket) flushes every socket
 * that has something queued.
 *
 * Joining several frames for one socket needs a buffer. A fresh `Buffer.concat` per socket per
 * turn is tens of megabytes per second of new ArrayBuffers under load, and V8 answers that
 * external memory with a full mark-compact every few hundred milliseconds. Instead the joins of
 * one turn are laid side by side in one arena that is reused turn after turn: once the kernel has
 * taken a write, nothing refers to its bytes. A write that had to be queued (the socket is backed
 * up) still refers to its slice, so the arena is then left to that write, and the next turn makes
 * a new one. Frames that do not go into the arena (it is full or was left to a write this turn,
 * or the socket is already backed up, so its write is sure to be queued) go to the socket as they
 * are, corked into one writev: no copy and no new ArrayBuffer. A turn that needed more than the
 * arena holds makes the next arena big enough, up to ARENA_MAX_BYTES.
 *
 * A round of writes longer than SLICE_MS is finished in later turns, so the loop can poll in
 * between (complete queued writes, read publications). Order per socket is kept: a socket's
 * frames go out together when its turn in the round comes, and frames queued after that wait
 * for the next round.
 *
 * Given a WritePool, large rounds are written by several threads at once (see write-pool.ts).
 */
export class WriteBatcher {
  /** Sockets with frames queued for the next round. */
  private dirty: BatchedTransport[] = [];
  /** Bytes of the frames queued for the next round. */
  private queued = 0;
  /** Sockets whose input is held until the next round is written, and those held for the round being written. */
  private holdNext: WebSocket[] = [];
  private holdRound: WebSocket[] = [];
  /** Sockets held so far (a metric). */
  holds = 0;
  /** Bytes of every frame queued so far (a metric). */
  bytesOut = 0;
  /** The round being written, and how far it got. */
  private round: BatchedTransport[] = [];
  private cursor = 0;
  private scheduled = false;
  private arena: Buffer | null = null;
  private arenaSize = ARENA_MIN_BYTES;
  private used = 0;
  /** Bytes the joins of this turn asked for, whether or not they fitted. */
  private demand = 0;
  /** This turn's arena was left to a queued write. */
  private abandoned = false;
  /** The frames of the last join and their slice: subscribers of a channel get the same frames. */
  private lastFrames: readonly Buffer[] = [];
  private lastJoin: Buffer | null = null;
  /** Transports whose bytes are listed in the pool's current round, in job order. */
  private staged: BatchedTransport[] = [];

  /**
   * @param turnBudgetBytes outbound bytes a turn may queue before the input of sockets that send
   *   more is held (see holdInputIfOverBudget).
   * @param latency told where each round of writes starts and ends (publish-to-write latency).
   */
  constructor(
    private readonly pool: WritePool | null = null,
    private readonly turnBudgetBytes = 16 * 1024 * 1024,
    private readonly latency: WriteLatency | null = null,
  ) {}

  /** Counts `bytes` queued for the next round (every frame a transport takes). */
  queue(bytes: number): void {
    this.queued += bytes;
    this.bytesOut += bytes;
  }

  /**
   * Called after a client frame was handled. When this turn has queued more than its budget, the
   * socket is not read again until the next round has been written. Without it, a publisher that
   * got ahead makes one poll read megabytes of publishes (libuv reads a socket until it is empty,
   * up to 32 reads of 64 KiB), and the fan-out of all of them, then their writes, hold up every
   * other socket for seconds (measured past saturation: 0.25-2 s between rounds, one round of 2 s).
   * Held, the kernel's buffers fill and TCP slows the sender down instead.
   */
  holdInputIfOverBudget(ws: WebSocket): void {
    if (this.queued <= this.turnBudgetBytes || ws.isPaused) return;
    ws.pause();
    this.holdNext.push(ws);
    this.holds++;
  }

  mark(t: BatchedTransport): void {
    this.dirty.push(t);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushAll);
    }
  }

  /**
   * `frames` joined into a slice of the arena, or null when they do not fit (the caller then hands
   * the frames to the socket as they are, in one writev: no copy, and no new ArrayBuffer whose
   * external memory would drive the GC, which is what happens to fresh joins under overload).
   */
  join(frames: readonly Buffer[], total: number): Buffer | null {
    // The same frames as the last join: its slice serves again (read-only, and a queued write
    // holding it has already kept the arena from being reused).
    if (this.lastJoin !== null && sameFrames(frames, this.lastFrames)) return this.lastJoin;
    this.demand += total;
    if (this.abandoned || total > this.arenaSize - this.used) return null;
    const arena = (this.arena ??= Buffer.allocUnsafeSlow(this.arenaSize));
    const start = this.used;
    let at = start;
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i]!;
      f.copy(arena, at);
      at += f.length;
    }
    this.used = at;
    this.lastFrames = frames;
    return (this.lastJoin = arena.subarray(start, at));
  }

  /**
   * Called after writing `buf` (from `join`) to `socket`: if the write was queued rather than
   * taken by the kernel and `buf` is an arena slice, the arena now belongs to that write.
   */
  written(buf: Buffer, socket: Duplex): void {
    if (socket.writableLength > 0 && this.arena !== null && buf.buffer === this.arena.buffer) {
      this.arena = null;
      this.abandoned = true;
    }
  }

  private readonly flushAll = (): void => {
    if (this.cursor === 0) {
      this.round = this.dirty;
      this.dirty = [];
      this.queued = 0;
      // Empty here: the round before resumed its own.
      this.holdRound = this.holdNext;
      this.holdNext = [];
      this.latency?.roundStarted();
    }
    const round = this.round;
    const deadline = performance.now() + SLICE_MS;
    let i = this.cursor;
    const pool = this.pool;
    while (i < round.length) {
      if (pool !== null && round.length - i >= PARALLEL_MIN) {
        i = this.writeParallel(pool, round, i);
        if (i < round.length && performance.now() > deadline) {
          this.cursor = i;
          setImmediate(this.flushAll);
          return;
        }
        continue;
      }
      round[i++]!.flush();
      if ((i & 63) === 0 && i < round.length && performance.now() > deadline) {
        this.cursor = i;
        setImmediate(this.flushAll); // the rest of the round after the loop has polled
        return;
      }
    }
    this.cursor = 0;
    this.round = [];
    this.latency?.roundWritten();
    this.endRound();
    if (this.holdRound.length > 0) {
      for (const ws of this.holdRound) ws.resume(); // a closed socket ignores it
      this.holdRound = [];
    }
    if (this.dirty.length > 0) setImmediate(this.flushAll);
    else this.scheduled = false;
  };

  /**
   * Lists up to PARALLEL_CHUNK sockets of the round from `from` in the pool (a socket that cannot
   * take part is flushed here, as usual), writes them all in parallel, and queues what the kernel
   * did not take. Returns where the round goes on.
   */
  private writeParallel(pool: WritePool, round: BatchedTransport[], from: number): number {
    const end = Math.min(round.length, from + PARALLEL_CHUNK);
    const staged = this.staged;
    let i = from;
    while (i < end) {
      const r = round[i]!.stage(pool);
      if (r < 0) break; // the pool's round is full: write it, then go on from here
      if (r > 0) staged.push(round[i]!);
      i++;
    }
    pool.run();
    for (let k = 0; k < staged.length; k++) staged[k]!.afterParallel(pool, k);
    pool.reset();
    this.staged = [];
    return i;
  }

  private endRound(): void {
    if (this.demand > this.arenaSize && this.arenaSize < ARENA_MAX_BYTES) {
      while (this.arenaSize < this.demand && this.arenaSize < ARENA_MAX_BYTES) this.arenaSize *= 2;
      this.arena = null;
    }
    this.used = 0;
    this.demand = 0;
    this.abandoned = false;
    this.lastFrames = [];
    this.lastJoin = null;
  }
}
