/**
 * What Yjs documents look like on a `doc:{id}` stream (docs/collaborative-editing.md): the event
 * types, and the shape of a compacted snapshot's parts. `@signalbox/yjs` reads the same.
 */

/** A Yjs update (the publication's data: the update's bytes). */
export const UPDATE_TYPE = 'yjs.update';
/** One part of a compacted snapshot ({@link SnapshotPart}). */
export const SNAPSHOT_TYPE = 'yjs.snapshot';

/**
 * One part of a snapshot: the parts of snapshot `snapshot`, numbered `0 … parts-1` at consecutive
 * offsets, concatenated, are one Yjs update (`size` bytes) standing for every update up to the
 * offset of the last part.
 */
export interface SnapshotPart {
  snapshot: string;
  part: number;
  parts: number;
  size: number;
  bytes: Uint8Array;
}

export function isSnapshotPart(v: unknown): v is SnapshotPart {
  if (typeof v !== 'object' || v === null) return false;
  const p = v as Record<string, unknown>;
  return typeof p.snapshot === 'string' && Number.isSafeInteger(p.part) && Number.isSafeInteger(p.parts) && Number.isSafeInteger(p.size) && p.bytes instanceof Uint8Array;
}
