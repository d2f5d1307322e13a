/**
 * The frame cache belongs to frames.ts: it never writes onto the broker's publication object, it
 * shares one encoding within an event-loop turn (a fan-out, the catch-ups of that turn), and it
 * lets go of the frames after the turn, so publications the memory broker keeps in history do not
 * keep their frames resident.
 */
import { describe, expect, it } from 'vitest';
import type { Publication } from '@signalbox/protocol';
import { publicationFrame } from '../../src/frames.js';

const pub = (data: unknown): Publication => ({ id: 'p1', channel: 'project:x', type: 'test.event', data, offset: 1, epoch: 'E1', time: 0 });
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('the frame cache', () => {
  it('within a turn: one frame per encoding, shared', () => {
    const p = pub({ a: 1 });
    const f = publicationFrame(p, 0);
    expect(publicationFrame(p, 0)).toBe(f);
    expect(publicationFrame(p, 1)).not.toBe(f);
    expect(publicationFrame(p, 2)).toBe(publicationFrame(p, 2));
  });

  it('after the turn: encoded again on demand (the same bytes), nothing kept in between', async () => {
    const p = pub({ a: 1 });
    const f = publicationFrame(p, 0);
    await nextTurn();
    const g = publicationFrame(p, 0);
    expect(g).not.toBe(f);
    expect(g.equals(f)).toBe(true);
  });

  it('never writes onto the publication object', () => {
    const p = pub({ a: 1 });
    const before = Reflect.ownKeys(p);
    for (const idx of [0, 1, 2, 3] as const) publicationFrame(p, idx);
    expect(Reflect.ownKeys(p)).toEqual(before);
    expect(Object.isExtensible(p)).toBe(true);
  });

  it('an encoding that cannot be built throws every time it is asked, and leaves the others usable', () => {
    class JsonRefuses {
      readonly a = 1;
      toJSON(): never {
        throw new Error('not JSON');
      }
    }
    const p = pub({ v: new JsonRefuses() });
    expect(() => publicationFrame(p, 0)).toThrow('not JSON');
    expect(() => publicationFrame(p, 0)).toThrow('not JSON'); // no half-built entry taken for a frame
    expect(() => publicationFrame(p, 1)).toThrow('not JSON');
    expect(publicationFrame(p, 2).length).toBeGreaterThan(0); // MessagePack encodes it
    expect(() => publicationFrame(pub({ n: 1n }), 3)).toThrow();
  });
});
