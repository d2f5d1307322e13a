/**
 * Frame codecs. A text frame is JSON; a binary frame is MessagePack, whatever the connection
 * negotiated (the negotiated encoding only decides what the server sends).
 *
 * Raw bytes inside `data` travel as MessagePack `bin`. Decoded bytes are wrapped in {@link Bytes},
 * whose `toJSON` renders `{"$base64": "..."}`, so a JSON subscriber of a channel that carries bytes
 * still receives a message it can parse, with no replacer on the JSON hot path.
 */
import { Decoder, Encoder } from '@msgpack/msgpack';

/** Bytes carried in a message: a Uint8Array that serializes to `{"$base64": "..."}` in JSON. */
export class Bytes extends Uint8Array {
  toJSON(): { $base64: string } {
    return { $base64: toBase64(this) };
  }
}

type BufferLike = { from(a: ArrayBuffer, o: number, l: number): { toString(enc: string): string } };
const NodeBuffer = (globalThis as { Buffer?: BufferLike }).Buffer;

export function toBase64(bytes: Uint8Array): string {
  if (NodeBuffer) return NodeBuffer.from(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength).toString('base64');
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function fromBase64(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export interface DecodeLimits {
  /** Maximum nesting of arrays/objects. */
  maxDepth: number;
}

export type FrameResult = { ok: true; value: unknown } | { ok: false; message: string };

/**
 * Nesting depth of a JSON text, counted without parsing (brackets outside string literals).
 * Stops early once `limit` is exceeded. Guards JSON.parse against stack exhaustion and
 * the server against pathological payloads.
 */
export function jsonDepthExceeds(text: string, limit: number): boolean {
  // Fast path: nesting deeper than `limit` needs more than `limit` brackets, and most messages
  // have a handful; counting them with indexOf is far cheaper than walking every character.
  let brackets = 0;
  for (let i = text.indexOf('{'); i !== -1 && brackets <= limit; i = text.indexOf('{', i + 1)) brackets++;
  for (let i = text.indexOf('['); i !== -1 && brackets <= limit; i = text.indexOf('[', i + 1)) brackets++;
  if (brackets <= limit) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 /* { */ || c === 91 /* [ */) {
      if (++depth > limit) return true;
    } else if (c === 125 /* } */ || c === 93 /* ] */) depth--;
  }
  return false;
}

export function decodeJsonFrame(text: string, limits: DecodeLimits): FrameResult {
  if (jsonDepthExceeds(text, limits.maxDepth)) return { ok: false, message: `JSON nesting deeper than ${limits.maxDepth}` };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, message: `Invalid JSON: ${(err as Error).message}` };
  }
}

const decoder = new Decoder({ maxStrLength: 16 * 1024 * 1024, maxBinLength: 16 * 1024 * 1024 });
const encoder = new Encoder({ ignoreUndefined: true });

/** Replaces every Uint8Array in a decoded MessagePack value by a {@link Bytes} view and checks depth. */
function adoptBinary(value: unknown, depth: number, maxDepth: number): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Uint8Array) return new Bytes(value.buffer as ArrayBuffer, value.byteOffset, value.byteLength);
  if (depth >= maxDepth) throw new RangeError(`MessagePack nesting deeper than ${maxDepth}`);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = adoptBinary(value[i], depth + 1, maxDepth);
    return value;
  }
  if (value instanceof Map) throw new TypeError('MessagePack maps must have string keys');
  const obj = value as Record<string, unknown>;
  for (const k of Object.keys(obj)) obj[k] = adoptBinary(obj[k], depth + 1, maxDepth);
  return obj;
}

export function decodeMsgpackFrame(bytes: Uint8Array, limits: DecodeLimits): FrameResult {
  try {
    return { ok: true, value: adoptBinary(decoder.decode(bytes), 0, limits.maxDepth) };
  } catch (err) {
    return { ok: false, message: `Invalid MessagePack: ${(err as Error).message}` };
  }
}

export function encodeMsgpack(value: unknown): Uint8Array {
  return encoder.encode(value);
}

export function decodeMsgpack(bytes: Uint8Array): unknown {
  return adoptBinary(decoder.decode(bytes), 0, 1000);
}
