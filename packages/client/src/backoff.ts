/**
 * Full-jitter exponential backoff (see AWS "Exponential Backoff And Jitter", as centrifuge-js does):
 * the delay before reconnect attempt `n` (0-based) is uniform in `[min, min(max, min * 2^(n+1))]`.
 *
 * Why a floor of `min` rather than pure `[0, cap]`: a gateway restart (close 1012) disconnects every
 * client at once; a zero delay would let a share of them stampede the new node immediately.
 * Why jitter from the first attempt: without it, every client of a restarted node comes back in lockstep.
 */

/** The inclusive bounds of the delay before reconnect attempt `attempt` (0-based). */
export function backoffBounds(attempt: number, minDelay: number, maxDelay: number): { lower: number; upper: number } {
  const lower = Math.max(0, Math.min(minDelay, maxDelay));
  // Cap the exponent: 2^31 * anything already exceeds any sane maxDelay, and avoids Infinity.
  const exp = Math.min(Math.max(0, attempt) + 1, 31);
  const upper = Math.max(lower, Math.min(maxDelay, lower * 2 ** exp));
  return { lower, upper };
}

/** A delay, in ms, before reconnect attempt `attempt` (0-based), drawn uniformly within {@link backoffBounds}. */
export function backoffDelay(attempt: number, minDelay: number, maxDelay: number, random: () => number = Math.random): number {
  const { lower, upper } = backoffBounds(attempt, minDelay, maxDelay);
  return Math.round(lower + random() * (upper - lower));
}
