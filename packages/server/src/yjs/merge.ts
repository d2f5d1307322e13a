/**
 * Merging a document's updates off the event loop: one worker thread per process, shared by every
 * compactor, started on the first compaction. Merging a 50 MB document with `Y.mergeUpdates`
 * takes ~1.5 s (bench/yjs.mjs); in the event loop, every connection of the node would wait that
 * long at each compaction. Where the worker cannot run (no built server next to the sources), the
 * merge runs in the calling thread.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { mergeValid } from './compactor.js';

function workerModule(): URL | null {
  const here = new URL('./merge-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  const built = new URL('../../dist/yjs/merge-worker.js', import.meta.url);
  return existsSync(fileURLToPath(built)) ? built : null;
}

interface Job {
  resolve(merged: Uint8Array): void;
  reject(err: Error): void;
}

let worker: Worker | null = null;
let unavailable = false;
let nextId = 0;
const jobs = new Map<number, Job>();

function failAll(err: Error): void {
  worker = null;
  for (const job of jobs.values()) job.reject(err);
  jobs.clear();
}

function mergeWorker(): Worker | null {
  if (worker || unavailable) return worker;
  const url = workerModule();
  if (!url) {
    unavailable = true;
    return null;
  }
  const w = new Worker(url, { name: 'signalbox-yjs-merge', execArgv: [] });
  w.unref();
  w.on('message', (m: { id: number; merged?: Uint8Array; error?: string }) => {
    const job = jobs.get(m.id);
    if (!job) return;
    jobs.delete(m.id);
    if (m.merged) job.resolve(m.merged);
    else job.reject(new Error(`yjs merge: ${m.error}`));
    if (jobs.size === 0) w.unref();
  });
  w.on('error', (err) => failAll(err));
  w.on('exit', (code) => { if (worker === w) failAll(new Error(`yjs merge thread exited (${code})`)); });
  worker = w;
  return w;
}

/** {@link mergeValid} of `updates`, in the merge thread (in this one where that cannot run). */
export function mergeOffThread(updates: readonly Uint8Array[]): Promise<Uint8Array> {
  const w = mergeWorker();
  if (!w) return Promise.resolve(mergeValid([...updates]));
  // Copies: a publication's bytes may be a view of a larger buffer (which a post would copy
  // whole), and must stay usable here; the copies are transferred, not copied again.
  const copies = updates.map((u) => u.slice());
  const id = nextId++;
  return new Promise((resolve, reject) => {
    jobs.set(id, { resolve, reject });
    w.ref();
    w.postMessage({ id, updates: copies }, copies.map((c) => c.buffer as ArrayBuffer));
  });
}
