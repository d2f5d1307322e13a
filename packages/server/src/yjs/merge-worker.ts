/**
 * The merge thread (started by MergeThread, merge-pool.ts): merges the updates it is sent and
 * sends the result back, so a large document's merge (about half a second for 17 MB) never
 * blocks the gateway's event loop.
 */
import { parentPort } from 'node:worker_threads';
import { mergeValid } from './merge.js';

const port = parentPort!;
port.on('message', (job: { id: number; updates: Uint8Array[] }) => {
  try {
    const merged = mergeValid(job.updates);
    // Transferred: a buffer of its own (a copy when it is a view, or one of the inputs: a single update).
    const own = merged.byteOffset === 0 && merged.byteLength === merged.buffer.byteLength && !job.updates.includes(merged) ? merged : merged.slice();
    port.postMessage({ id: job.id, merged: own }, [own.buffer as ArrayBuffer]);
  } catch (err) {
    port.postMessage({ id: job.id, error: err instanceof Error ? err.message : String(err) });
  }
});
