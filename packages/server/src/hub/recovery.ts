/**
 * The one answer to "can history serve exactly what follows this position?", asked by a subscribe
 * with `since` (recover the missed publications), a history read with `since` (the HTTP API and
 * the WebSocket `history` request), and the hub repairing its own stream after a gap.
 */
import type { Publication, StreamPosition, SubscribeOutcome, UnrecoverableReason } from '@signalbox/protocol';
import type { HistoryResult } from '../broker/types.js';
import type { NamespaceConfig } from '../channels/namespaces.js';

/** Either exactly the publications after `since` (in order, none missing), or why not. */
export type RecoveryClass = { recovered: true; missed: Publication[] } | { recovered: false; reason: UnrecoverableReason };

/**
 * Classifies a history read forward from `since`, first reason first:
 * `epoch_changed` (offsets cannot be compared), `position_ahead` (the stream never had that
 * offset), caught up (nothing missed), `no_history` (the namespace keeps none), `history_evicted`
 * (what follows `since` was dropped for the engine's total history budget), `history_expired`
 * (nothing retained any more), `too_far_behind` (the oldest retained is past `since + 1`), and
 * last contiguity: what the read returned must be `since+1, since+2, …` with no hole, up to the
 * top, or up to `limit` when the read asked for at most that many (a history page). Never a
 * partial answer presented as complete.
 */
export function classifyRecovery(
  ns: Pick<NamespaceConfig, 'historySize'>,
  hist: HistoryResult,
  since: StreamPosition,
  limit?: number,
): RecoveryClass {
  const top = hist.position;
  if (since.epoch !== top.epoch) return refuse('epoch_changed');
  if (since.offset > top.offset) return refuse('position_ahead');
  if (since.offset === top.offset) return { recovered: true, missed: [] };
  if (ns.historySize === 0) return refuse('no_history');
  if (hist.earliestOffset > since.offset + 1 && (hist.evictedThrough ?? 0) > since.offset) return refuse('history_evicted');
  if (hist.earliestOffset > top.offset) return refuse('history_expired');
  if (hist.earliestOffset > since.offset + 1) return refuse('too_far_behind');
  const missed = hist.publications.filter((p) => p.offset > since.offset && p.offset <= top.offset);
  for (let i = 0; i < missed.length; i++) if (missed[i]!.offset !== since.offset + 1 + i) return refuse('too_far_behind');
  const expected = Math.min(top.offset - since.offset, limit ?? Number.POSITIVE_INFINITY);
  if (missed.length < expected) return refuse('too_far_behind');
  return { recovered: true, missed: missed.length > expected ? missed.slice(0, expected) : missed };
}

function refuse(reason: UnrecoverableReason): RecoveryClass {
  return { recovered: false, reason };
}

/**
 * What a subscribe is confirmed with, given the position read (and the missed publications when it
 * carried `since`): {@link classifyRecovery} put in the confirmation's words.
 */
export function recoveryOutcome(
  channel: string,
  ns: Pick<NamespaceConfig, 'historySize'>,
  hist: HistoryResult,
  since: StreamPosition | undefined,
): { outcome: SubscribeOutcome; missed: Publication[] } {
  const position = hist.position;
  if (!since) return { outcome: { channel, position }, missed: [] };
  const c = classifyRecovery(ns, hist, since);
  return c.recovered
    ? { outcome: { channel, position, recovered: true, missed: c.missed.length }, missed: c.missed }
    : { outcome: { channel, position, recovered: false, reason: c.reason }, missed: [] };
}
