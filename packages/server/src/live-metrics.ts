/**
 * The node's own live metrics on the `metrics` channel: once per interval, one `metrics.node`
 * publication per node, whatever the number of viewers (consumers aggregate by `node`). Rates are
 * per second over the interval just ended, read from the same counters Prometheus scrapes, so the
 * two never disagree. Costs one broker publish per interval and a read of a few counters.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

/** The `data` of a `metrics.node` publication (documented in docs/protocol.md, "Live metrics"). */
export interface NodeMetrics {
  node: string;
  /** ISO time the sample was taken. */
  at: string;
  /** Seconds the rates below are averaged over. */
  intervalSeconds: number;
  connections: number;
  subscriptions: number;
  channels: number;
  /** Publications accepted by this node per second (HTTP API and clients). */
  publicationsPerSecond: number;
  /** Publication frames written to this node's subscribers per second. */
  deliveriesPerSecond: number;
  /** Frames received from clients per second. */
  messagesInPerSecond: number;
  /** Bytes of frames received from clients per second. */
  bytesInPerSecond: number;
  /** Bytes of frames sent to clients per second (publications, replies, heartbeats). */
  bytesOutPerSecond: number;
  /** Error events sent in the interval, by code. */
  errors: Record<string, number>;
  /** Connections closed in the interval as slow consumers (4010). */
  slowConsumerCloses: number;
  /** Connections closed in the interval, by close code. */
  closes: Record<string, number>;
  /** Subscriptions that asked to recover in the interval, by outcome. */
  recoveries: Record<string, number>;
  /** Broker append latency of this node's publishes in the interval (ms; null with none). */
  publishLatencyMs: { p50: number | null; p99: number | null };
  /**
   * From a publication's append in the broker to its frames written to this node's subscribers,
   * over the publications delivered in the interval (whole ms; null with none).
   */
  publishToWriteMs: { p50: number | null; p99: number | null };
  /** Event-loop delay over the interval (ms). */
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  rssBytes: number;
  heapUsedBytes: number;
  broker: { kind: string; ready: boolean };
}

export interface LiveMetricsSource {
  nodeId: string;
  brokerKind: string;
  brokerReady(): boolean;
  /** Bytes of frames sent to clients so far (a running total). */
  bytesOut(): number;
  /** Connections, subscriptions and channels on this node now. */
  counts(): { connections: number; subscriptions: number; channels: number };
  /** Publishes the sample on `metrics`. */
  publish(data: NodeMetrics): Promise<unknown>;
}

type Totals = Map<string, number>;

/** Totals of a counter by one label (summed over the others). */
async function totalsBy(counter: { get(): Promise<{ values: { value: number; labels: Record<string, string | number> }[] }> }, label?: string): Promise<Totals> {
  const out: Totals = new Map();
  for (const v of (await counter.get()).values) {
    const key = label === undefined ? '' : String(v.labels[label] ?? '');
    out.set(key, (out.get(key) ?? 0) + v.value);
  }
  return out;
}

function sum(t: Totals): number {
  let n = 0;
  for (const v of t.values()) n += v;
  return n;
}

/** What each key grew by since `before` (keys that did not grow are left out). */
export function growth(now: Totals, before: Totals | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of now) {
    const d = v - (before?.get(k) ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
}

/**
 * A quantile (0..1) from the growth of cumulative histogram buckets over an interval: the upper
 * bound of the bucket holding it, in the histogram's unit. Null with no observations.
 */
export function bucketQuantile(buckets: { le: number; count: number }[], q: number): number | null {
  const total = buckets.length === 0 ? 0 : buckets[buckets.length - 1]!.count;
  if (total === 0) return null;
  const rank = q * total;
  for (const b of buckets) if (b.count >= rank) return b.le;
  return buckets[buckets.length - 1]!.le;
}

const ms = (ns: number) => Math.round(ns / 1e4) / 100;

export class LiveMetrics {
  private timer: NodeJS.Timeout | null = null;
  private readonly loop: IntervalHistogram;
  private last: { at: number; pubs: number; deliveries: number; messagesIn: number; bytesIn: number; bytesOut: number; errors: Totals; closes: Totals; recoveries: Totals; latency: Totals } | null = null;
  private inFlight = false;

  constructor(
    private readonly metrics: Metrics,
    private readonly source: LiveMetricsSource,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {
    this.loop = monitorEventLoopDelay({ resolution: 10 });
  }

  start(): void {
    if (this.intervalMs <= 0 || this.timer) return;
    this.loop.enable();
    void this.sample(); // the baseline: the first publication comes one interval later
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.loop.disable();
  }

  private async tick(): Promise<void> {
    // A broker that hangs must not pile up samples: skip a tick while the last one is unanswered.
    if (this.inFlight) return;
    this.inFlight = true;
    try {
      const data = await this.sample();
      if (data) await this.source.publish(data);
    } catch (err) {
      this.log.debug({ err }, 'live metrics not published');
    } finally {
      this.inFlight = false;
    }
  }

  /** Reads the counters; returns the sample for the interval since the last call (null the first time). */
  async sample(): Promise<NodeMetrics | null> {
    const m = this.metrics;
    const now = performance.now();
    const [pubs, deliveries, messagesIn, errors, closes, recoveries, latency] = await Promise.all([
      totalsBy(m.publications.counter), totalsBy(m.deliveries.counter), totalsBy(m.messagesIn.counter),
      totalsBy(m.errors, 'code'), totalsBy(m.connectionsClosed, 'code'), totalsBy(m.recoveries, 'outcome'), this.latencyBuckets(),
    ]);
    const cur = { at: now, pubs: sum(pubs), deliveries: sum(deliveries), messagesIn: sum(messagesIn), bytesIn: m.bytesIn, bytesOut: this.source.bytesOut(), errors, closes, recoveries, latency };
    const prev = this.last;
    this.last = cur;
    const written = m.writeLatency.take();
    if (!prev) return null;
    const secs = Math.max((now - prev.at) / 1000, 0.001);
    const rate = (a: number, b: number) => Math.round(((a - b) / secs) * 10) / 10;
    const grownBuckets = [...latency].map(([le, count]) => ({ le: Number(le), count: count - (prev.latency.get(le) ?? 0) })).sort((a, b) => a.le - b.le);
    const toMs = (s: number | null) => (s === null ? null : Number.isFinite(s) ? s * 1000 : null);
    const closed = growth(closes, prev.closes);
    const loop = { p50: ms(this.loop.percentile(50)), p99: ms(this.loop.percentile(99)), max: ms(this.loop.max) };
    this.loop.reset();
    const mem = process.memoryUsage();
    return {
      node: this.source.nodeId,
      at: new Date().toISOString(),
      intervalSeconds: Math.round(secs * 1000) / 1000,
      ...this.source.counts(),
      publicationsPerSecond: rate(cur.pubs, prev.pubs),
      deliveriesPerSecond: rate(cur.deliveries, prev.deliveries),
      messagesInPerSecond: rate(cur.messagesIn, prev.messagesIn),
      bytesInPerSecond: rate(cur.bytesIn, prev.bytesIn),
      bytesOutPerSecond: rate(cur.bytesOut, prev.bytesOut),
      errors: growth(errors, prev.errors),
      slowConsumerCloses: closed['4010'] ?? 0,
      closes: closed,
      recoveries: growth(recoveries, prev.recoveries),
      publishLatencyMs: { p50: toMs(bucketQuantile(grownBuckets, 0.5)), p99: toMs(bucketQuantile(grownBuckets, 0.99)) },
      publishToWriteMs: written,
      eventLoopDelayMs: loop,
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      broker: { kind: this.source.brokerKind, ready: this.source.brokerReady() },
    };
  }

  /** Cumulative bucket counts of the publish-duration histogram, summed over sources, keyed by `le`. */
  private async latencyBuckets(): Promise<Totals> {
    const out: Totals = new Map();
    for (const v of (await this.metrics.publishDuration.get()).values) {
      if (!v.metricName?.endsWith('_bucket')) continue;
      const raw = (v.labels as Record<string, string | number | undefined>).le;
      const le = String(raw === '+Inf' ? Infinity : raw);
      out.set(le, (out.get(le) ?? 0) + v.value);
    }
    return out;
  }
}
