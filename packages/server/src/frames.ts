/**
 * Wire frames, encoded once. A publication is serialized at most once per (dialect, encoding)
 * for all subscribers of this node; the frames hang off the publication object itself.
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

const FRAMES = Symbol('signalbox.frames');
type Framed = Publication & { [FRAMES]?: (Uint8Array | undefined)[]; [DATA_JSON]?: string };
const DATA_JSON = Symbol('signalbox.dataJson');

/** The frame of `pub` for subscribers of encoding `idx`, encoded on first use. */
export function publicationFrame(pub: Publication, idx: EncIndex): Uint8Array {
  const p = pub as Framed;
  let frames = p[FRAMES];
  if (frames === undefined) {
    frames = [undefined, undefined, undefined, undefined];
    Object.defineProperty(p, FRAMES, { value: frames, enumerable: false });
  }
  return frames[idx] ?? (frames[idx] = encodePublication(p, idx));
}

function encodePublication(p: Framed, idx: EncIndex): Uint8Array {
  if (idx >= 2) return encodeMsgpack(idx === 2 ? prpPublication(p) : prdPublication(p));
  // JSON: splice the data's JSON (computed once for both dialects) into a hand-built envelope.
  let data = p[DATA_JSON];
  if (data === undefined) {
    data = JSON.stringify(p.data) ?? 'null';
    Object.defineProperty(p, DATA_JSON, { value: data, enumerable: false });
  }
  const ts = new Date(p.time).toISOString();
  const s = idx === 0
    ? `{"id":${JSON.stringify(p.id)},"type":${JSON.stringify(p.type)},"timestamp":"${ts}","channel":${JSON.stringify(p.channel)},"offset":${p.offset},"epoch":${JSON.stringify(p.epoch)},"data":${data}}`
    : `{"type":"message","channel":${JSON.stringify(p.channel)},"data":${data},"id":${JSON.stringify(p.id)},"timestamp":"${ts}","event":${JSON.stringify(p.type)},"offset":${p.offset},"epoch":${JSON.stringify(p.epoch)}}`;
  return Buffer.from(s, 'utf8');
}

let msgCounter = 0;
const msgPrefix = Math.random().toString(36).slice(2, 8);
/** Server message ids: `msg_` + node-random prefix + counter. */
export function nextMessageId(): string {
  msgCounter = (msgCounter + 1) % Number.MAX_SAFE_INTEGER;
  return `msg_${msgPrefix}${msgCounter.toString(36)}`;
}

/** Encodes a non-publication event for one connection. */
export function encodeEvent(ev: ServerEvent, idx: EncIndex): string | Uint8Array {
  const id = nextMessageId();
  const ts = new Date().toISOString();
  const obj = idx === 0 || idx === 2 ? prpEvent(ev, id, ts) : prdEvent(ev, id, ts);
  return idx >= 2 ? encodeMsgpack(obj) : JSON.stringify(obj);
}

/** Encodes one event for every (dialect, encoding), for broadcasts like heartbeats. */
export function encodeEventForAll(ev: ServerEvent): (string | Uint8Array)[] {
  return [encodeEvent(ev, 0), encodeEvent(ev, 1), encodeEvent(ev, 2), encodeEvent(ev, 3)];
}
