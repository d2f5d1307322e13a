/**
 * Frames built by hand on the hot path must be exactly what the generic encoders produce.
 */
import { describe, expect, it } from 'vitest';
import { prdEvent, prdPublication, prpEvent, prpPublication, type Publication, type ServerEvent } from '@signalbox/protocol';
import { encodeEvent, isoTime, publicationFrame } from '../src/frames.js';

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

  it('a publication frame is byte for byte JSON.stringify of the dialect encoders, publisher included', () => {
    const base = { channel: 'agent:a"1', type: 'chat.token', data: { text: 'é 🚀 "q"', n: [1, null] }, offset: 9, epoch: 'Ab-9', time: 1_700_000_000_123 };
    const pubs: Publication[] = [
      { ...base, id: 'p1' },
      { ...base, id: 'p2', publisher: { via: 'ws', sub: 'usr_"1', client: 'conn_x' } },
      { ...base, id: 'p3', publisher: { via: 'http', key: 'backend', sub: 'usr_2' } },
      { ...base, id: 'p4', publisher: { via: 'gateway', service: 'presence' } },
      { ...base, id: 'p5', publisher: { via: 'ws', sub: 'agent', client: 'conn_a' }, appendTo: 'p"4' },
      { ...base, id: 'p6', publisher: { via: 'ws', sub: 'agent', client: 'conn_a' }, through: 12 },
      { ...base, id: 'p7', appendTo: 'p1' },
    ];
    for (const pub of pubs) {
      const text = (idx: 0 | 1) => publicationFrame(pub, idx).subarray(publicationFrame(pub, idx).length > 127 ? 4 : 2).toString('utf8');
      expect(text(0)).toBe(JSON.stringify(prpPublication(pub)));
      expect(text(1)).toBe(JSON.stringify(prdPublication(pub)));
    }
  });

  it('isoTime is toISOString, for repeated and changing instants', () => {
    for (const ms of [0, 1, 1, 1_700_000_000_123, 1_700_000_000_123, 1_700_000_000_124, 253402300799999]) {
      expect(isoTime(ms)).toBe(new Date(ms).toISOString());
    }
  });
});
