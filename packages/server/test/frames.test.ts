/**
 * Frames built by hand on the hot path must be exactly what the generic encoders produce.
 */
import { describe, expect, it } from 'vitest';
import { prdEvent, prpEvent, type ServerEvent } from '@signalbox/protocol';
import { encodeEvent, isoTime } from '../src/frames.js';

type Ack = Extract<ServerEvent, { kind: 'ack' }>;

const acks: Ack[] = [
  { kind: 'ack', replyTo: 'p1', publication: { id: 'p1', channel: 'project:alpha', offset: 7, epoch: 'Ab-9_x' }, duplicate: false },
  { kind: 'ack', publication: { id: 'pub_1f2e', channel: 'session:s1', offset: 1, epoch: 'e' }, duplicate: true },
  { kind: 'ack', replyTo: 'quote " back\\slash \u2028 é 🚀', publication: { id: 'x"y', channel: 'user:u@x.io', offset: 123456789, epoch: 'z' }, duplicate: false },
];

describe('hand-built frames', () => {
  it('a publish ack is byte for byte JSON.stringify of the dialect encoders', () => {
    for (const ev of acks) {
      for (const idx of [0, 1] as const) {
        const text = encodeEvent(ev, idx) as string;
        const m = JSON.parse(text) as { id: string; timestamp: string };
        const generic = idx === 0 ? prpEvent(ev, m.id, m.timestamp) : prdEvent(ev, m.id, m.timestamp);
        expect(text).toBe(JSON.stringify(generic));
      }
    }
  });

  it('isoTime is toISOString, for repeated and changing instants', () => {
    for (const ms of [0, 1, 1, 1_700_000_000_123, 1_700_000_000_123, 1_700_000_000_124, 253402300799999]) {
      expect(isoTime(ms)).toBe(new Date(ms).toISOString());
    }
  });
});
