/**
 * `@signalbox/client/msgpack`: send and receive MessagePack frames (`format: msgpack`). A separate entry
 * because the decoder adds ~20 kB to a browser bundle that JSON users do not need. Bytes in
 * `data` arrive as `Bytes` (a Uint8Array).
 */
import { decodeMsgpack, encodeMsgpack } from '@signalbox/protocol';
import type { FrameFormat } from './client.js';
import { bytesPath } from './bytes.js';

/** The MessagePack frame format, for `new SignalboxClient({ format: msgpack })`. */
export const msgpack: FrameFormat = {
  name: 'msgpack',
  decode: decodeMsgpack,
  // Only requests that carry bytes go binary (a publish of a Yjs update, a file chunk); the rest stay JSON text.
  encode: (value) => (bytesPath(value, '') !== undefined ? (encodeMsgpack(value) as Uint8Array<ArrayBuffer>) : undefined),
};
