/**
 * `classifyRecovery`, the one answer to "can history serve exactly what follows `since`?" that a
 * subscribe, a history read and the hub's own repair all use: each reason, the order in which they
 * are decided when several hold, contiguity, and the page limit of a history read.
 */
import { describe, expect, it } from 'vitest';
import type { Publication, StreamPosition } from '@signalbox/protocol';
import type { HistoryResult } from '../../src/broker/types.js';
import { classifyRecovery, recoveryOutcome } from '../../src/hub/recovery.js';

const pub = (offset: number, epoch = 'E1'): Publication => ({ id: `p${offset}`, channel: 'project:x', type: 'message', data: null, offset, epoch, time: 0 });
const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => pub(from + i));
const hist = (top: number, earliest: number, pubs: Publication[], epoch = 'E1'): HistoryResult => ({ position: { epoch, offset: top }, earliestOffset: earliest, publications: pubs });
const at = (offset: number, epoch = 'E1'): StreamPosition => ({ epoch, offset });
const kept = { historySize: 10 };
const none = { historySize: 0 };

function outcome(c: ReturnType<typeof classifyRecovery>): string {
  return c.recovered ? `recovered [${c.missed.map((p) => p.offset).join(',')}]` : c.reason;
}

describe('each reason', () => {
  const table: { name: string; ns?: { historySize: number }; hist: HistoryResult; since: StreamPosition; limit?: number; want: string }[] = [
    { name: 'behind, all retained', hist: hist(10, 1, range(4, 10)), since: at(3), want: 'recovered [4,5,6,7,8,9,10]' },
    { name: 'caught up', hist: hist(10, 1, []), since: at(10), want: 'recovered []' },
    { name: 'caught up on a stream that keeps no history', ns: none, hist: hist(10, 11, []), since: at(10), want: 'recovered []' },
    { name: 'caught up on an empty stream', hist: hist(0, 1, []), since: at(0), want: 'recovered []' },
    { name: 'epoch changed', hist: hist(10, 1, range(1, 10), 'E2'), since: at(3), want: 'epoch_changed' },
    { name: 'position ahead', hist: hist(10, 1, []), since: at(11), want: 'position_ahead' },
    { name: 'no history in the namespace', ns: none, hist: hist(10, 11, []), since: at(4), want: 'no_history' },
    { name: 'history expired (nothing retained)', hist: hist(10, 11, []), since: at(4), want: 'history_expired' },
    { name: 'too far behind (oldest retained past since+1)', hist: hist(20, 11, range(11, 20)), since: at(5), want: 'too_far_behind' },
    { name: 'oldest retained is exactly since+1', hist: hist(20, 11, range(11, 20)), since: at(10), want: `recovered [${range(11, 20).map((p) => p.offset).join(',')}]` },
    { name: 'a hole in what was returned', hist: hist(10, 1, [...range(4, 6), ...range(8, 10)]), since: at(3), want: 'too_far_behind' },
    { name: 'returned does not start at since+1', hist: hist(10, 1, range(5, 10)), since: at(3), want: 'too_far_behind' },
    { name: 'returned fewer than missed, no limit asked', hist: hist(10, 1, range(4, 8)), since: at(3), want: 'too_far_behind' },
    { name: 'returned the first `limit` after since (a history page)', hist: hist(10, 1, range(4, 8)), since: at(3), limit: 5, want: 'recovered [4,5,6,7,8]' },
    { name: 'a hole in a page (as many as the limit, but not contiguous)', hist: hist(10, 1, [pub(4), pub(6), pub(7)]), since: at(3), limit: 3, want: 'too_far_behind' },
    { name: 'a page cut shorter than its limit', hist: hist(10, 1, range(4, 6)), since: at(3), limit: 5, want: 'too_far_behind' },
    { name: 'limit 0: just the position', hist: hist(10, 1, []), since: at(3), limit: 0, want: 'recovered []' },
    { name: 'publications beyond the top are not served', hist: hist(5, 1, range(4, 7)), since: at(3), want: 'recovered [4,5]' },
  ];
  for (const row of table) {
    it(row.name, () => {
      expect(outcome(classifyRecovery(row.ns ?? kept, row.hist, row.since, row.limit))).toBe(row.want);
    });
  }
});

describe('the order when several reasons hold', () => {
  const table: { name: string; ns?: { historySize: number }; hist: HistoryResult; since: StreamPosition; want: string }[] = [
    { name: 'epoch changed before position ahead', hist: hist(1, 1, range(1, 1), 'E2'), since: at(30), want: 'epoch_changed' },
    { name: 'epoch changed before no history', ns: none, hist: hist(10, 11, [], 'E2'), since: at(3), want: 'epoch_changed' },
    { name: 'epoch changed before caught up (same offset, other epoch)', hist: hist(10, 1, [], 'E2'), since: at(10), want: 'epoch_changed' },
    { name: 'position ahead before no history', ns: none, hist: hist(10, 11, []), since: at(12), want: 'position_ahead' },
    { name: 'position ahead before history expired', hist: hist(10, 11, []), since: at(12), want: 'position_ahead' },
    { name: 'caught up before no history', ns: none, hist: hist(10, 11, []), since: at(10), want: 'recovered []' },
    { name: 'caught up before history expired', hist: hist(10, 11, []), since: at(10), want: 'recovered []' },
    { name: 'no history before history expired (both: nothing retained)', ns: none, hist: hist(10, 11, []), since: at(3), want: 'no_history' },
    { name: 'no history before too far behind', ns: none, hist: hist(10, 8, range(8, 10)), since: at(3), want: 'no_history' },
    { name: 'history expired before too far behind (nothing retained is also "oldest past since+1")', hist: hist(10, 11, []), since: at(3), want: 'history_expired' },
  ];
  for (const row of table) {
    it(row.name, () => {
      expect(outcome(classifyRecovery(row.ns ?? kept, row.hist, row.since))).toBe(row.want);
    });
  }
});

describe('recoveryOutcome (the subscribe confirmation)', () => {
  it('without since: the position only', () => {
    expect(recoveryOutcome('project:x', kept, hist(5, 1, range(1, 5)), undefined)).toEqual({ outcome: { channel: 'project:x', position: at(5) }, missed: [] });
  });
  it('recovered: the count and the publications', () => {
    const r = recoveryOutcome('project:x', kept, hist(5, 1, range(1, 5)), at(3));
    expect(r.outcome).toEqual({ channel: 'project:x', position: at(5), recovered: true, missed: 2 });
    expect(r.missed.map((p) => p.offset)).toEqual([4, 5]);
  });
  it('refused: the reason and nothing of the past', () => {
    expect(recoveryOutcome('project:x', kept, hist(20, 11, range(11, 20)), at(3))).toEqual({
      outcome: { channel: 'project:x', position: at(20), recovered: false, reason: 'too_far_behind' }, missed: [],
    });
  });
});
