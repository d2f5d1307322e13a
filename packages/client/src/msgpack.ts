/**
 * `@signalbox/client/msgpack`: send and receive MessagePack frames (`format: msgpack`). A separate entry
 * because the decoder adds ~20 kB to a browser bundle that JSON users do not need. Bytes in
 * `data` arrive as `Bytes` (a Uint8Array).
 */
import { decodeMsgpack, encodeMsgpack } from '@signalbox/protocol';
import type { FrameFormat } from './client.js';

/** The MessagePack frame format, for `new SignalboxClient({ format: msgpack })`. */
export const msgpack: FrameFormat = {
  name: 'msgpack',
  decode: decodeMsgpack,
  // Only requests that carry bytes go binary (a publish of a Yjs update, a file chunk); the rest stay JSON text.
  encode: (value) => (carriesBytes(value, 0) ? (encodeMsgpack(value) as Uint8Array<ArrayBuffer>) : undefined),
};

function carriesBytes(v: unknown, depth: number): boolean {
  if (v instanceof Uint8Array) return true;
  if (typeof v !== 'object' || v === null || depth > 16) return false;
  for (const x of Array.isArray(v) ? v : Object.values(v)) if (carriesBytes(x, depth + 1)) return true;
  return false;
}
