/**
 * What the session debugger knows about one `session:{id}` stream: the event schema it reads (the
 * fields of docs/session-debugging.md, typed here so the console needs no dependency on the
 * session package), the exactly-once gate (an event is shown once, by offset, whether it came
 * from the history read on opening, the live subscription, or a recovery), and the text forms of
 * serialized console arguments.
 */
import type { PublicationMessage } from '@signalbox/client';

/** Rows a panel keeps at most; older ones fall off (said on screen). */
export const PANEL_CAP = 2000;

/** Fields every session event carries. */
export interface BaseEvent {
  ts: number;
  seq: number;
  source: 'page' | 'cdp';
}
export interface ConsoleEvent extends BaseEvent { level: string; args: unknown[]; truncated: boolean }
export interface ErrorEvent extends BaseEvent {
  message: string;
  name: string | null;
  stack: string | null;
  url: string | null;
  line: number | null;
  column: number | null;
}
export interface NetworkEvent extends BaseEvent {
  api: string;
  method: string;
  url: string;
  status: number;
  ok: boolean;
  durationMs: number;
  requestSize: number | null;
  responseSize: number | null;
  error: string | null;
}
export interface StartedEvent extends BaseEvent { url: string; title: string | null; userAgent: string | null; capture: string[]; commands: string[] }
export interface NavigationEvent extends BaseEvent { kind: string; url: string; title: string | null }
export interface FrameEvent extends BaseEvent {
  jpeg: Uint8Array | { $base64: string };
  width: number;
  height: number;
  deviceWidth: number;
  deviceHeight: number;
  scrollX: number;
  scrollY: number;
}
export interface CommandEvent extends BaseEvent {
  callId: string;
  method: string;
  params: unknown;
  caller: { via?: string; sub?: string; connectionId?: string; key?: string } & Record<string, unknown>;
}
export interface ResultEvent extends BaseEvent {
  callId: string;
  method: string;
  ok: boolean;
  error: { code: string; message: string } | null;
  durationMs: number;
}

/** A publication of the session's stream with its data typed as `T`. */
export type SessionPub<T> = PublicationMessage<T>;

/**
 * The exactly-once gate: a publication passes once, in offset order. History pages, buffered live
 * publications and recoveries all go through it, so an overlap between them is dropped here. An
 * epoch change (the stream was reset, e.g. a memory broker restarted) starts counting again.
 */
export class OffsetGate {
  epoch: string | null = null;
  /** The highest offset shown. */
  last = 0;
  /** Publications refused as already shown (for the tests and the footer). */
  duplicates = 0;

  /** 'new' (show it), 'duplicate' (already shown) or 'reset' (a new epoch: show it, after a notice). */
  admit(p: { epoch: string; offset: number }): 'new' | 'duplicate' | 'reset' {
    if (this.epoch !== null && p.epoch !== this.epoch) {
      this.epoch = p.epoch;
      this.last = p.offset;
      return 'reset';
    }
    this.epoch = p.epoch;
    if (p.offset <= this.last) {
      this.duplicates++;
      return 'duplicate';
    }
    this.last = p.offset;
    return 'new';
  }
}

/** The JPEG bytes of a frame: raw (a MessagePack viewer) or `{"$base64"}` (JSON, the console's dialect). */
export function frameBytes(jpeg: unknown): Uint8Array | null {
  if (jpeg instanceof Uint8Array) return jpeg;
  const b64 = (jpeg as { $base64?: unknown } | null)?.$base64;
  if (typeof b64 !== 'string') return null;
  try {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}

const MAX_TEXT = 4000;

/** One serialized console argument as text: strings as they are, `$type` markers in words, the rest as compact JSON. */
export function argText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === null || typeof v !== 'object') return String(v);
  const m = v as Record<string, unknown>;
  switch (m.$type) {
    case 'undefined': return 'undefined';
    case 'number': case 'bigint': case 'date': case 'node': return String(m.value);
    case 'symbol': return String(m.value ?? 'Symbol()');
    case 'function': return `ƒ ${String(m.name ?? '')}()`;
    case 'error': return `${String(m.name ?? 'Error')}: ${String(m.message ?? '')}`;
    case 'cycle': return '[cycle]';
    case 'depth': return '[…]';
    case 'bytes': return `[${String(m.length)} bytes]`;
    case 'unserializable': return '[unserializable]';
    default: break;
  }
  let s: string;
  try {
    s = JSON.stringify(v);
  } catch {
    s = String(v);
  }
  return s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT)}…` : s;
}

/** A console event's arguments as one line of text. */
export function consoleText(e: ConsoleEvent): string {
  return (Array.isArray(e.args) ? e.args : []).map(argText).join(' ');
}

/** `12:00:01.234`: event times to the millisecond (a console shows bursts). */
export function fmtMs(ts: number): string {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return String(ts);
  return `${d.toLocaleTimeString([], { hour12: false })}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

/** Who called a command, in words. */
export function callerText(c: CommandEvent['caller'] | undefined): string {
  if (!c) return '?';
  if (c.via === 'http') return `http key ${c.key ?? '?'}${c.sub ? ` as ${c.sub}` : ''}`;
  return `${c.sub ?? '?'}${c.connectionId ? ` (${c.connectionId})` : ''}`;
}
