/**
 * Yjs merges off the event loop. A merge of a large document is CPU-bound for hundreds of
 * milliseconds (17 MB: ~0.5 s), which on the main thread would delay every connection of the node;
 * inputs above `inlineBytes` go to one merge thread, started on first use, restarted after a crash.
 * Small merges (the common case: a few hundred keystrokes) stay inline, where a thread hop would
 * cost more than the merge.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { mergeValid } from './merge.js';

/** The thread's module: compiled JavaScript (from the sources, tests use the build's copy in dist/). */
function workerModule(): URL {
  const here = new URL('./merge-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  const built = new URL('../../dist/yjs/merge-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  throw new Error('Yjs merges need the built server (npm run build): dist/yjs/merge-worker.js not found');
}

interface Job {
  resolve(merged: Uint8Array): void;
  reject(err: Error): void;
}

export class MergeThread {
  #worker: Worker | null = null;
  #nextId = 1;
  readonly #jobs = new Map<number, Job>();
  #closed = false;
  /** Merges done on the thread (for tests and logs). */
  threadMerges = 0;

  /** @param inlineBytes inputs up to this many bytes in all are merged inline. */
  constructor(private readonly inlineBytes = 256 * 1024) {}

  /** The updates merged into one (updates that do not decode are left out). */
  merge(updates: Uint8Array[]): Promise<Uint8Array> {
    let bytes = 0;
    for (const u of updates) bytes += u.byteLength;
    if (bytes <= this.inlineBytes) {
      try {
        return Promise.resolve(mergeValid(updates));
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
    }
    if (this.#closed) return Promise.reject(new Error('merge thread closed'));
    const worker = this.#start();
    const id = this.#nextId++;
    this.threadMerges++;
    // Copies, transferred: a publication's bytes may be a view of a much larger buffer (a decoded
    // frame, a Redis reply), which posting the view would copy whole; and they stay the broker's.
    const copies = updates.map((u) => u.slice());
    return new Promise<Uint8Array>((resolve, reject) => {
      this.#jobs.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ id, updates: copies }, copies.map((c) => c.buffer as ArrayBuffer));
    });
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const w = new Worker(workerModule(), { name: 'signalbox-yjs-merge', execArgv: [] });
    w.unref();
    w.on('message', (m: { id: number; merged?: Uint8Array; error?: string }) => {
      const job = this.#jobs.get(m.id);
      if (!job) return;
      this.#jobs.delete(m.id);
      if (m.merged) job.resolve(m.merged);
      else job.reject(new Error(`yjs merge: ${m.error ?? 'failed'}`));
      // Busy, the thread holds the process (a stop waits for close()); idle, it does not.
      if (this.#jobs.size === 0) w.unref();
    });
    const lost = (why: string): void => {
      if (this.#worker === w) this.#worker = null;
      for (const job of this.#jobs.values()) job.reject(new Error(why));
      this.#jobs.clear();
    };
    w.on('error', (err) => lost(`merge thread failed: ${err.message}`));
    w.on('exit', (code) => lost(`merge thread exited (${code})`));
    this.#worker = w;
    return w;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const w = this.#worker;
    this.#worker = null;
    if (w) await w.terminate();
  }
}
