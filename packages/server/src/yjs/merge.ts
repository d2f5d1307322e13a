/**
 * Merging Yjs updates without a Y.Doc (compaction, the y-websocket endpoint's sync). Pure
 * functions: they run on the merge thread (merge-worker.ts), or inline for small inputs.
 */
import * as Y from 'yjs';

/**
 * `Y.mergeUpdates` in a tree of groups of 64: one call over 100,000 updates takes minutes (its cost
 * grows much faster than the count), groups of 64 take about half a second.
 */
export function mergeTree(updates: Uint8Array[]): Uint8Array {
  let level = updates;
  if (level.length === 0) return Y.mergeUpdates([]);
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i < level.length; i += 64) next.push(Y.mergeUpdates(level.slice(i, i + 64)));
    level = next;
  }
  return level[0]!;
}

/** {@link mergeTree}, leaving out any update that does not decode (a client's garbage must not stop compaction). */
export function mergeValid(updates: Uint8Array[]): Uint8Array {
  try {
    return mergeTree(updates);
  } catch {
    const valid = updates.filter((u) => {
      try {
        Y.decodeUpdate(u);
        return true;
      } catch {
        return false;
      }
    });
    return mergeTree(valid);
  }
}
