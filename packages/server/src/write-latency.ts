/**
 * Publish-to-write latency: from a publication's append in the broker (its `time`) until its frames
 * were written to this node's subscriber sockets (the end of the batcher's round that carried
 * them). What `metrics.node` reports as `publishToWriteMs` (p50/p99 over the interval).
 *
 * Cheap by construction, as it runs for every publication fanned out: the hub hands over the
 * publication's time (no allocation; at most SAMPLES per turn are kept, a uniform sample when more
 * come), the batcher marks where a round of writes starts and ends, and the end files each sample
 * in a histogram of whole milliseconds. Publication times have millisecond resolution (and, across
 * nodes, the skew of their clocks with Redis'), so this is a millisecond figure.
 */

/** Samples kept per round of writes. */
const SAMPLES = 256;
/** Histogram slots: 0..MAX_MS ms, the last also counts everything slower. */
const MAX_MS = 10_000;

export class WriteLatency {
  /** Times of publications fanned out since the current round of writes started. */
  private next = new Float64Array(SAMPLES);
  private nextCount = 0;
  private nextSeen = 0;
  /** Those the current round is writing. */
  private round = new Float64Array(SAMPLES);
  private roundCount = 0;
  private readonly counts = new Uint32Array(MAX_MS + 1);
  private total = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /** A publication with this append time was handed to subscribers this turn. */
  published(time: number): void {
    const seen = this.nextSeen++;
    if (seen < SAMPLES) this.next[this.nextCount++] = time;
    else {
      // Reservoir sampling: every publication of the turn equally likely to be kept.
      const j = Math.floor(Math.random() * (seen + 1));
      if (j < SAMPLES) this.next[j] = time;
    }
  }

  /** The batcher starts a round: what was fanned out until now is what it writes. */
  roundStarted(): void {
    const r = this.round;
    this.round = this.next;
    this.roundCount = this.nextCount;
    this.next = r;
    this.nextCount = 0;
    this.nextSeen = 0;
  }

  /** The round's writes were all handed to their sockets. */
  roundWritten(): void {
    const n = this.roundCount;
    if (n === 0) return;
    const now = this.now();
    for (let i = 0; i < n; i++) {
      const ms = Math.max(0, Math.round(now - this.round[i]!));
      this.counts[ms > MAX_MS ? MAX_MS : ms]!++;
    }
    this.total += n;
    this.roundCount = 0;
  }

  /** p50 and p99 (ms) of what was written since the last call, null when nothing was; then starts over. */
  take(): { p50: number | null; p99: number | null } {
    if (this.total === 0) return { p50: null, p99: null };
    const out = { p50: this.quantile(0.5), p99: this.quantile(0.99) };
    this.counts.fill(0);
    this.total = 0;
    return out;
  }

  private quantile(q: number): number {
    const rank = Math.max(1, Math.ceil(q * this.total));
    let acc = 0;
    for (let ms = 0; ms <= MAX_MS; ms++) {
      acc += this.counts[ms]!;
      if (acc >= rank) return ms;
    }
    return MAX_MS;
  }
}
