/**
 * `@signalbox/client/msgpack`: receive MessagePack frames (`format: msgpack`). A separate entry
 * because the decoder adds ~20 kB to a browser bundle that JSON users do not need. Bytes in
 * `data` arrive as `Bytes` (a Uint8Array).
 */
import { decodeMsgpack } from '@signalbox/protocol';
import type { FrameFormat } from './client.js';

/** The MessagePack frame format, for `new SignalboxClient({ format: msgpack })`. */
export const msgpack: FrameFormat = { name: 'msgpack', decode: decodeMsgpack };
