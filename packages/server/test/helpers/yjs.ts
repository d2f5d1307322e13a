/** Shared by the Yjs suites: replayable randomness and the random edit they all make. */
import type * as Y from 'yjs';

/** Deterministic pseudo-random numbers (mulberry32), so a failure can be replayed. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One random edit: mostly inserts of `tag`, some deletes of 1 to 3 characters. */
export function randomEdit(text: Y.Text, rnd: () => number, tag: string): void {
  const len = text.length;
  if (len > 0 && rnd() < 0.3) {
    const at = Math.floor(rnd() * len);
    text.delete(at, Math.min(len - at, 1 + Math.floor(rnd() * 3)));
  } else {
    text.insert(Math.floor(rnd() * (len + 1)), tag);
  }
}
