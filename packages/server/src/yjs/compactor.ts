/**
 * Compaction of Yjs documents (`doc:{id}` channels) in the gateway, with no Y.Doc per node: every
 * N updates or bytes published through this node, the document's retained stream is read, its
 * updates (and the previous snapshot) merged with yjs's `mergeUpdates`, and the result stored in
 * place of everything it covers, as `yjs.snapshot` parts (chunks of at most `chunkBytes`) at the
 * newest offsets of the range it replaces. See docs/collaborative-editing.md for what a joiner at
 * any position receives.
 */
import { randomBytes } from 'node:crypto';
import * as Y from 'yjs';
import type { Logger } from 'pino';
import { Bytes, type Publication, type Publisher } from '@signalbox/protocol';
import type { Broker, CompactingBroker, PublishResult } from '../broker/types.js';
import type { ResolvedChannel } from '../channels/namespaces.js';
import { SNAPSHOT_TYPE, UPDATE_TYPE, type SnapshotPart, isSnapshotPart } from './wire.js';

export interface CompactorSettings {
  /** Compact after this many updates published through this node since the last compaction (0: never by count). */
  updates: number;
  /** Compact after this many update bytes published through this node since the last compaction (0: never by size). */
  bytes: number;
  /** Largest snapshot part. */
  chunkBytes: number;
}

interface DocState {
  updates: number;
  bytes: number;
  running: boolean;
  /** Another threshold crossing while running: run again after. */
  again: boolean;
}

/** The namespace whose channels are Yjs documents. */
export const DOC_NAMESPACE = 'doc';

const PUBLISHER: Publisher = { via: 'gateway', service: 'yjs' };

export function isCompactingBroker(b: Broker): b is Broker & CompactingBroker {
  return typeof (b as Partial<CompactingBroker>).compact === 'function';
}

/** What one compaction did (for logs, tests and the benchmark). */
export interface CompactionOutcome {
  compacted: boolean;
  /** Offsets the snapshot stands for: everything up to `through`. */
  through?: number;
  parts?: number;
  snapshotBytes?: number;
  /** Publications replaced. */
  replaced?: number;
}

export class YjsCompactor {
  readonly #docs = new Map<string, DocState>();

  constructor(
    private readonly broker: Broker,
    private readonly settings: CompactorSettings,
    private readonly log: Logger,
  ) {}

  /** Called after every successful publish (ChannelOperations' `onPublished`). */
  published(ch: ResolvedChannel, result: PublishResult): void {
    if (ch.namespace.name !== DOC_NAMESPACE || result.duplicate || result.publication.type !== UPDATE_TYPE) return;
    const { updates, bytes } = this.settings;
    if (updates === 0 && bytes === 0) return;
    let st = this.#docs.get(ch.name);
    if (!st) this.#docs.set(ch.name, (st = { updates: 0, bytes: 0, running: false, again: false }));
    st.updates++;
    const data = result.publication.data;
    st.bytes += data instanceof Uint8Array ? data.byteLength : 0;
    if ((updates > 0 && st.updates >= updates) || (bytes > 0 && st.bytes >= bytes)) {
      if (st.running) {
        st.again = true;
        return;
      }
      void this.#run(ch.name, st);
    }
  }

  async #run(channel: string, st: DocState): Promise<void> {
    st.running = true;
    try {
      do {
        st.again = false;
        st.updates = 0;
        st.bytes = 0;
        const out = await this.compact(channel);
        if (out.compacted) this.log.debug({ channel, ...out }, 'yjs: document compacted');
      } while (st.again);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, channel }, 'yjs: compaction failed; retried after the next updates');
    } finally {
      st.running = false;
      if (st.updates === 0 && st.bytes === 0) this.#docs.delete(channel);
    }
  }

  /**
   * Compacts the document's retained stream now. Safe against concurrent publishes (they land
   * after `through` and are kept) and against other nodes compacting the same document (the broker
   * refuses a compaction whose `through` is gone).
   */
  async compact(channel: string): Promise<CompactionOutcome> {
    if (!isCompactingBroker(this.broker)) return { compacted: false };
    const hist = await this.broker.history(channel, {});
    const pubs = hist.publications;
    if (pubs.length < 2) return { compacted: false };
    const updates = collectUpdates(pubs);
    const through = pubs[pubs.length - 1]!.offset;
    const merged = mergeValid(updates);
    const chunks = split(merged, this.settings.chunkBytes);
    // The parts take the newest offsets of the range they replace: there must be enough of them.
    if (chunks.length > through - pubs[0]!.offset + 1) return { compacted: false };
    const snapshot = `snap_${randomBytes(6).toString('base64url')}`;
    const parts = chunks.map((bytes, i) => ({
      id: `${snapshot}_${i}`,
      type: SNAPSHOT_TYPE,
      // Bytes: MessagePack subscribers get `bin`, JSON ones `{"$base64": …}`.
      data: { snapshot, part: i, parts: chunks.length, size: merged.byteLength, bytes: new Bytes(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength) } satisfies SnapshotPart,
    }));
    const compacted = await this.broker.compact({ channel, epoch: hist.position.epoch, through, parts, publisher: PUBLISHER });
    return compacted ? { compacted, through, parts: parts.length, snapshotBytes: merged.byteLength, replaced: pubs.length } : { compacted };
  }
}

/** The updates of a stream, in order: snapshot parts reassembled, other publication types skipped. */
export function collectUpdates(pubs: readonly Publication[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let parts: Uint8Array[] = [];
  let current: string | null = null;
  for (const p of pubs) {
    if (p.type === UPDATE_TYPE && p.data instanceof Uint8Array) out.push(p.data);
    else if (p.type === SNAPSHOT_TYPE && isSnapshotPart(p.data)) {
      const d = p.data;
      if (d.part === 0) {
        parts = [];
        current = d.snapshot;
      }
      if (current !== d.snapshot || d.part !== parts.length) continue;
      parts.push(d.bytes);
      if (parts.length === d.parts) {
        out.push(concat(parts));
        parts = [];
        current = null;
      }
    }
  }
  return out;
}

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

function split(bytes: Uint8Array, size: number): Uint8Array[] {
  if (bytes.byteLength <= size) return [bytes];
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.byteLength; i += size) out.push(bytes.subarray(i, Math.min(bytes.byteLength, i + size)));
  return out;
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
