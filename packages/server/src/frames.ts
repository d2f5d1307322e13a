/**
 * Wire frames, encoded once. A publication is serialized and framed at most once per
 * (dialect, encoding) for all subscribers of this node: server frames are unmasked, so the
 * complete WebSocket frame (header + payload) is the same bytes for every socket. The frames are
 * cached here, keyed by the publication object, never written onto it (the broker owns it).
 */
import { encodeMsgpack, prdEvent, prdPublication, prpEvent, prpPublication, type Dialect, type Encoding, type Publication, type ServerEvent } from '@signalbox/protocol';

/** Index of a (dialect, encoding) pair: 0 prp/json, 1 prd/json, 2 prp/msgpack, 3 prd/msgpack. */
export type EncIndex = 0 | 1 | 2 | 3;

export function encIndex(dialect: Dialect, encoding: Encoding): EncIndex {
  return ((dialect === 'prd' ? 1 : 0) + (encoding === 'msgpack' ? 2 : 0)) as EncIndex;
}

export function isBinaryEnc(idx: EncIndex): boolean {
  return idx >= 2;
}

/** The encodings of one publication: a frame per EncIndex, and the JSON text of its data. */
interface FrameCache {
  frames: [Buffer | undefined, Buffer | undefined, Buffer | undefined, Buffer | undefined];
  dataJson: string | undefined;
  /** `,"publisher":{…}` (or '') for the JSON envelopes, computed once for both dialects. */
  publisherJson: string | undefined;
}

/**
 * The frame cache lives for one event-loop turn. Within a turn it is what sharing needs: one
 * publication's fan-out to every subscriber, the data JSON shared by both JSON dialects, and the
 * catch-up bursts of subscribers activated in the same turn. Past it, keeping frames would keep
 * them resident as long as the publication lives, and the memory broker keeps publications in its
 * history: frames and data JSON would more than double what history holds (and what the GC walks)
 * for publications whose fan-out is long done. A later recovery encodes again, on demand.
 * A WeakMap, so that a turn that never ends (a test's fake timers) still pins nothing the broker
 * dropped; replaced, not cleared, at the end of the turn.
 */
let cache = new WeakMap<Publication, FrameCache>();
let cacheInUse = false;
function endOfTurn(): void {
  cache = new WeakMap();
  cacheInUse = false;
}

const OP_TEXT = 0x1;
const OP_BINARY = 0x2;

function headerLength(len: number): number {
  return len < 126 ? 2 : len < 65536 ? 4 : 10;
}

function writeHeader(buf: Buffer, opcode: number, len: number): number {
  buf[0] = 0x80 | opcode; // FIN + opcode, no RSV bits (no compression)
  if (len < 126) {
    buf[1] = len;
    return 2;
  }
  if (len < 65536) {
    buf[1] = 126;
    buf.writeUInt16BE(len, 2);
    return 4;
  }
  buf[1] = 127;
  buf.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
  buf.writeUInt32BE(len >>> 0, 6);
  return 10;
}

/** A complete unmasked WebSocket data frame (FIN set) carrying `payload`. */
export function frame(payload: string | Uint8Array, binary: boolean): Buffer {
  const opcode = binary ? OP_BINARY : OP_TEXT;
  if (typeof payload === 'string') {
    const len = Buffer.byteLength(payload, 'utf8');
    const buf = Buffer.allocUnsafe(headerLength(len) + len);
    buf.write(payload, writeHeader(buf, opcode, len), 'utf8');
    return buf;
  }
  const buf = Buffer.allocUnsafe(headerLength(payload.length) + payload.length);
  buf.set(payload, writeHeader(buf, opcode, payload.length));
  return buf;
}

/** An unmasked ping frame with no payload (FIN + opcode 0x9, length 0). */
export const PING_FRAME = Buffer.from([0x89, 0x00]);

/**
 * The complete WebSocket frame of `pub` for subscribers of encoding `idx`, built on first use in
 * this turn. Throws when the publication cannot be encoded (data the codec cannot serialize).
 */
export function publicationFrame(pub: Publication, idx: EncIndex): Buffer {
  let c = cache.get(pub);
  if (c === undefined) {
    c = { frames: [undefined, undefined, undefined, undefined], dataJson: undefined, publisherJson: undefined };
    cache.set(pub, c);
    if (!cacheInUse) {
      cacheInUse = true;
      setImmediate(endOfTurn);
    }
  }
  return c.frames[idx] ?? (c.frames[idx] = encodePublication(pub, c, idx));
}

function encodePublication(p: Publication, cache: FrameCache, idx: EncIndex): Buffer {
  if (idx >= 2) return frame(encodeMsgpack(idx === 2 ? prpPublication(p) : prdPublication(p)), true);
  // JSON: splice the data's JSON (computed once for both dialects) into a hand-built envelope.
  const data = (cache.dataJson ??= JSON.stringify(p.data) ?? 'null');
  const ts = isoTime(p.time);
  const publisher = (cache.publisherJson ??= p.publisher ? `,"publisher":${JSON.stringify(p.publisher)}` : '');
  // Appends name their message; a compacted history entry says what it folded (docs/protocol.md, "Appends").
  const tail = `${publisher}${p.appendTo !== undefined ? `,"appendTo":${JSON.stringify(p.appendTo)}` : ''}${p.through !== undefined ? `,"through":${p.through}` : ''}`;
  const s = idx === 0
    ? `{"id":${JSON.stringify(p.id)},"type":${JSON.stringify(p.type)},"timestamp":"${ts}","channel":${JSON.stringify(p.channel)},"offset":${p.offset},"epoch":${JSON.stringify(p.epoch)},"data":${data}${tail}}`
    : `{"type":"message","channel":${JSON.stringify(p.channel)},"data":${data},"id":${JSON.stringify(p.id)},"timestamp":"${ts}","event":${JSON.stringify(p.type)},"offset":${p.offset},"epoch":${JSON.stringify(p.epoch)}${tail}}`;
  return frame(s, false);
}

let msgCounter = 0;
const msgPrefix = Math.random().toString(36).slice(2, 8);
/** Server message ids: `msg_` + node-random prefix + counter. */
export function nextMessageId(): string {
  msgCounter = (msgCounter + 1) % Number.MAX_SAFE_INTEGER;
  return `msg_${msgPrefix}${msgCounter.toString(36)}`;
}

let isoMs = Number.NaN;
let isoText = '';
/**
 * `new Date(ms).toISOString()`, remembered for the last millisecond asked: a burst of
 * publications and replies within one millisecond formats it once.
 */
export function isoTime(ms: number): string {
  if (ms !== isoMs) {
    isoText = new Date(ms).toISOString();
    isoMs = ms;
  }
  return isoText;
}

/**
 * The JSON text of a publish acknowledgement, built directly: one goes out per client publish.
 * Byte for byte what JSON.stringify gives for prpEvent/prdEvent (a test holds it to that).
 */
function ackJson(ev: Extract<ServerEvent, { kind: 'ack' }>, idx: 0 | 1, id: string, ts: string): string {
  const p = ev.publication;
  const replyTo = ev.replyTo === undefined ? '' : `,"replyTo":${JSON.stringify(ev.replyTo)}`;
  const channel = JSON.stringify(p.channel);
  const pub = `"id":${JSON.stringify(p.id)},"channel":${channel},"offset":${p.offset},"epoch":${JSON.stringify(p.epoch)},"duplicate":${ev.duplicate}`;
  return idx === 0
    ? `{"id":"${id}","type":"ack","timestamp":"${ts}"${replyTo},"data":{${pub}}}`
    : `{"type":"ack","channel":${channel},"id":"${id}","timestamp":"${ts}"${replyTo},"data":{"action":"message",${pub}}}`;
}

/** Encodes a non-publication event for one connection. */
export function encodeEvent(ev: ServerEvent, idx: EncIndex): string | Uint8Array {
  const id = nextMessageId();
  const ts = isoTime(Date.now());
  if (ev.kind === 'ack' && idx < 2) return ackJson(ev, idx as 0 | 1, id, ts);
  const obj = idx === 0 || idx === 2 ? prpEvent(ev, id, ts) : prdEvent(ev, id, ts);
  return idx >= 2 ? encodeMsgpack(obj) : JSON.stringify(obj);
}

/** Frames one event for every (dialect, encoding), for broadcasts like heartbeats; `prefix` (e.g. a ping) goes first. */
export function frameEventForAll(ev: ServerEvent, prefix?: Buffer): Buffer[] {
  return ([0, 1, 2, 3] as const).map((idx) => {
    const f = frame(encodeEvent(ev, idx), isBinaryEnc(idx));
    return prefix ? Buffer.concat([prefix, f]) : f;
  });
}
