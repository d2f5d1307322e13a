/**
 * The shared memory layout of a write round and the one claim loop that writes its jobs: run by the
 * main thread (WritePool.run) and by every writer thread (write-worker.ts). See write-pool.ts for
 * why this is safe.
 */
import { writeSync } from 'node:fs';

/** Control words (Int32Array over a SharedArrayBuffer). */
export const WAKE = 0; // bumped for each round the writer threads should join; they sleep on it
export const COUNT = 1; // jobs in the round
export const DONE = 2; // jobs finished in the round
export const STOP = 3; // 1: writer threads exit
export const CTL_WORDS = 8;
/** 64-bit words (BigInt64Array over its own SharedArrayBuffer). */
export const ROUND = 0; // the round's number
export const NEXT = 1; // (round << IDX_BITS) | next unclaimed job
export const IDX_BITS = 20n;
export const IDX_MASK = (1n << IDX_BITS) - 1n;
/** An index no round reaches: claims are closed while a round is being set up. */
export const CLOSED = IDX_MASK;
/** Jobs claimed at a time: few enough to balance the threads, enough to keep claims rare. */
export const CLAIM = 8;
/** Words per job: fd, offset, length, bytes written (or -1: the write failed). */
export const JOB = 4;

/** The round's shared arrays, as both sides view them. */
export interface RoundMemory {
  ctl: Int32Array;
  big: BigInt64Array;
  jobs: Int32Array;
  arena: Buffer;
}

/**
 * Claims jobs of round `round` (of `n`) CLAIM at a time until none is left, and writes each one
 * (`jobs[o+3]` = what the kernel took, -1 on failure). The thread that finishes the round wakes
 * the main thread. Returns how many jobs this thread wrote. A claim carries the round's number,
 * so a thread late from an earlier round never claims a job of this one.
 */
export function claimAndWrite(m: RoundMemory, round: bigint, n: number): number {
  const { ctl, big, jobs, arena } = m;
  const claim = BigInt(CLAIM);
  let mine = 0;
  for (;;) {
    const cur = Atomics.load(big, NEXT);
    const from = Number(cur & IDX_MASK);
    if (cur >> IDX_BITS !== round || from >= n) return mine;
    if (Atomics.compareExchange(big, NEXT, cur, cur + claim) !== cur) continue;
    const to = Math.min(n, from + CLAIM);
    for (let j = from; j < to; j++) {
      const o = j * JOB;
      let w: number;
      try {
        w = writeSync(jobs[o]!, arena, jobs[o + 1]!, jobs[o + 2]!);
      } catch {
        w = -1;
      }
      jobs[o + 3] = w;
    }
    mine += to - from;
    if (Atomics.add(ctl, DONE, to - from) + (to - from) >= n) Atomics.notify(ctl, DONE);
  }
}
