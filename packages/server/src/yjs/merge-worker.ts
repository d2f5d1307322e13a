/**
 * The thread that merges a document's updates for compaction (see merge.ts): a large document's
 * merge takes seconds, which the gateway's event loop must not spend.
 */
import { parentPort } from 'node:worker_threads';
import { mergeValid } from './compactor.js';

parentPort!.on('message', ({ id, updates }: { id: number; updates: Uint8Array[] }) => {
  try {
    const merged = mergeValid(updates);
    // A fresh buffer of its own unless it is one of the inputs (a single update): copied then.
    const own = merged.byteOffset === 0 && merged.byteLength === merged.buffer.byteLength && !updates.includes(merged) ? merged : merged.slice();
    parentPort!.postMessage({ id, merged: own }, [own.buffer as ArrayBuffer]);
  } catch (err) {
    parentPort!.postMessage({ id, error: (err as Error).message ?? String(err) });
  }
});
