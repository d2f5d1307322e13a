/**
 * What Yjs documents look like on a `doc:{id}` stream (docs/collaborative-editing.md): the event
 * types, the shape of a compacted snapshot's parts, and what a publisher may put there.
 * `@signalbox/yjs` reads the same.
 */
import { ErrorCode, type Publisher } from '@signalbox/protocol';
import { GatewayError } from '../errors.js';

/** The namespace whose channels are Yjs documents. */
export const DOC_NAMESPACE = 'doc';

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

/**
 * The rules of a publication on a document channel (docs/protocol.md, "Binary data"), checked
 * before it is stored: a `yjs.update` carries the update's bytes (MessagePack `bin`; JSON has no
 * bytes, so a JSON `{"$base64": …}` is an object and is refused), and a `yjs.snapshot` is the
 * gateway's own (its compaction writes them; anyone else's would be merged into the document).
 */
export function checkDocumentPublication(channel: { name: string; namespace: { name: string } }, type: string, data: unknown, publisher: Publisher): void {
  if (channel.namespace.name !== DOC_NAMESPACE || publisher.via === 'gateway') return;
  const details = { channel: channel.name, type };
  if (type === UPDATE_TYPE && !(data instanceof Uint8Array)) {
    throw new GatewayError(ErrorCode.INVALID_MESSAGE, `A '${UPDATE_TYPE}' on a document channel must carry the update's bytes as \`data\` (MessagePack bin; JSON cannot carry bytes)`, details);
  }
  if (type === SNAPSHOT_TYPE) {
    throw new GatewayError(ErrorCode.PERMISSION_DENIED, `Event type '${SNAPSHOT_TYPE}' on channel '${channel.name}' is reserved for the gateway (its compacted snapshots)`, details);
  }
}
