/**
 * What the Overview charts show, computed from `metrics.node` publications (docs/protocol.md, "Live
 * metrics"): one sample per node per interval. Pure functions over plain data, no DOM, so each
 * aggregate has its own unit test (packages/server/test/console-metrics-model.test.ts).
 *
 * Samples are placed on a grid of whole seconds (the sample's `at`), so the nodes' series line up
 * on one time axis; the cluster figure at a second is the aggregate of every node's latest sample
 * at or before it, as long as that sample is not stale (older than {@link STALE_INTERVALS}
 * intervals): a node that stops reporting drops out of the sum instead of holding its last value.
 */

/** The fields of a `metrics.node` publication the console reads (newer gateways add more). */
export interface NodeSample {
  node: string;
  /** ISO time the sample was taken. */
  at: string;
  intervalSeconds: number;
  connections: number;
  subscriptions?: number;
  channels?: number;
  publicationsPerSecond: number;
  deliveriesPerSecond: number;
  /** Error events sent in the interval, by code. */
  errors: Record<string, number>;
  /** Broker append latency (ms); the fallback for the p99 chart. */
  publishLatencyMs?: { p50: number | null; p99: number | null };
  /** Publish-to-write latency (ms, null when no sample): preferred for the p99 chart when present. */
  publishToWriteMs?: { p50: number | null; p99: number | null };
  rssBytes: number;
  bytesInPerSecond?: number;
  bytesOutPerSecond?: number;
  broker?: { kind: string; ready: boolean };
}

/** The series the Overview charts, by key. */
export const METRICS = ['connections', 'deliveriesPerSecond', 'publicationsPerSecond', 'p99LatencyMs', 'errorsPerSecond', 'rssBytes'] as const;
export type MetricKey = (typeof METRICS)[number];

/** How the cluster figure of a metric is made from the nodes' figures. */
export const AGGREGATION: Record<MetricKey, 'sum' | 'max'> = {
  connections: 'sum',
  deliveriesPerSecond: 'sum',
  publicationsPerSecond: 'sum',
  // A cluster-wide p99 cannot be rebuilt from per-node p99s; the worst node's is the honest bound.
  p99LatencyMs: 'max',
  errorsPerSecond: 'sum',
  rssBytes: 'sum',
};

/** How long the Overview keeps samples while the page is open. */
export const WINDOW_SECONDS = 300;
/** A node's sample counts for this many of its intervals; then the node is stale. */
export const STALE_INTERVALS = 3;

/** Samples per node, by whole second. */
export interface MetricsState {
  /** node -> (second -> sample), seconds ascending. */
  nodes: Map<string, Map<number, NodeSample>>;
  /** The newest second seen. */
  latest: number;
}

export function emptyState(): MetricsState {
  return { nodes: new Map(), latest: 0 };
}

/** The whole second a sample belongs to. */
export function secondOf(sample: NodeSample): number {
  return Math.round(Date.parse(sample.at) / 1000);
}

/** Is this publication's data a node sample? (Anyone allowed to publish on `metrics` could send anything.) */
export function isNodeSample(data: unknown): data is NodeSample {
  const d = data as Partial<NodeSample> | null;
  return typeof d === 'object' && d !== null && typeof d.node === 'string' && typeof d.at === 'string' && !Number.isNaN(Date.parse(d.at))
    && typeof d.connections === 'number' && typeof d.deliveriesPerSecond === 'number' && typeof d.publicationsPerSecond === 'number'
    && typeof d.rssBytes === 'number' && typeof d.intervalSeconds === 'number';
}

/** Adds a sample and drops what fell out of the window (relative to the newest second seen). Mutates `state`. */
export function addSample(state: MetricsState, sample: NodeSample, windowSeconds = WINDOW_SECONDS): MetricsState {
  const t = secondOf(sample);
  let series = state.nodes.get(sample.node);
  if (!series) state.nodes.set(sample.node, (series = new Map()));
  series.set(t, sample);
  if (t > state.latest) state.latest = t;
  const from = state.latest - windowSeconds;
  for (const [node, s] of state.nodes) {
    for (const sec of s.keys()) {
      if (sec < from) s.delete(sec);
    }
    if (s.size === 0) state.nodes.delete(node);
  }
  return state;
}

/** The p99 latency a sample reports: publish-to-write when the gateway measures it, else broker append. */
export function p99LatencyMs(s: NodeSample): number | null {
  const w = s.publishToWriteMs?.p99;
  if (w !== undefined && w !== null) return w;
  return s.publishLatencyMs?.p99 ?? null;
}

/** Errors per second in a sample's interval, every code together. */
export function errorsPerSecond(s: NodeSample): number {
  let n = 0;
  for (const v of Object.values(s.errors ?? {})) if (typeof v === 'number') n += v;
  return s.intervalSeconds > 0 ? n / s.intervalSeconds : n;
}

/** One metric of one sample. */
export function valueOf(s: NodeSample, key: MetricKey): number | null {
  switch (key) {
    case 'p99LatencyMs': return p99LatencyMs(s);
    case 'errorsPerSecond': return errorsPerSecond(s);
    default: return s[key];
  }
}

/** Aggregates the nodes' values at one second (nulls are skipped; all null -> null). */
export function aggregate(values: readonly (number | null)[], how: 'sum' | 'max'): number | null {
  let out: number | null = null;
  for (const v of values) {
    if (v === null || !Number.isFinite(v)) continue;
    out = out === null ? v : how === 'sum' ? out + v : Math.max(out, v);
  }
  return out;
}

/** A node's latest sample at or before second `t`, if it is not stale at `t`. */
export function sampleAt(series: Map<number, NodeSample>, t: number): NodeSample | undefined {
  let best: number | undefined;
  for (const sec of series.keys()) if (sec <= t && (best === undefined || sec > best)) best = sec;
  if (best === undefined) return undefined;
  const s = series.get(best)!;
  return t - best <= Math.max(1, s.intervalSeconds) * STALE_INTERVALS ? s : undefined;
}

/** Chart data: the time axis (seconds), each node's series and the cluster's, aligned. */
export interface AlignedSeries {
  xs: number[];
  nodes: string[];
  perNode: (number | null)[][];
  cluster: (number | null)[];
}

/**
 * One metric over the window, aligned on the seconds any node reported: per node its value at its
 * own samples (null where it has none), and the cluster aggregate from every live node's latest sample.
 */
export function aligned(state: MetricsState, key: MetricKey): AlignedSeries {
  const seconds = new Set<number>();
  for (const s of state.nodes.values()) for (const sec of s.keys()) seconds.add(sec);
  const xs = [...seconds].sort((a, b) => a - b);
  const nodes = [...state.nodes.keys()].sort();
  const perNode = nodes.map((n) => {
    const s = state.nodes.get(n)!;
    return xs.map((t) => {
      const sample = s.get(t);
      return sample ? valueOf(sample, key) : null;
    });
  });
  // Per node, walk its seconds alongside the axis: its latest sample at or before each second (linear, not quadratic).
  const latestAt = nodes.map((n) => {
    const s = state.nodes.get(n)!;
    const secs = [...s.keys()].sort((a, b) => a - b);
    let j = -1;
    return xs.map((t) => {
      while (j + 1 < secs.length && secs[j + 1]! <= t) j++;
      if (j < 0) return null;
      const sample = s.get(secs[j]!)!;
      return t - secs[j]! <= Math.max(1, sample.intervalSeconds) * STALE_INTERVALS ? valueOf(sample, key) : null;
    });
  });
  const cluster = xs.map((_, i) => aggregate(latestAt.map((v) => v[i] ?? null), AGGREGATION[key]));
  return { xs, nodes, perNode, cluster };
}

/** The current figure of each node and of the cluster (for the number tiles over the charts). */
export interface Snapshot {
  nodes: { node: string; stale: boolean; sample: NodeSample }[];
  cluster: Record<MetricKey, number | null>;
}

/** Each node's newest sample (stale when older than {@link STALE_INTERVALS} intervals at `now`), and the cluster's figures from the live ones. */
export function snapshot(state: MetricsState, nowSeconds: number = state.latest): Snapshot {
  const nodes: Snapshot['nodes'] = [];
  for (const [node, series] of state.nodes) {
    let best: number | undefined;
    for (const sec of series.keys()) if (best === undefined || sec > best) best = sec;
    if (best === undefined) continue;
    const sample = series.get(best)!;
    nodes.push({ node, sample, stale: nowSeconds - best > Math.max(1, sample.intervalSeconds) * STALE_INTERVALS });
  }
  nodes.sort((a, b) => (a.node < b.node ? -1 : 1));
  const live = nodes.filter((n) => !n.stale);
  const cluster = Object.fromEntries(METRICS.map((k) => [k, aggregate(live.map((n) => valueOf(n.sample, k)), AGGREGATION[k])])) as Record<MetricKey, number | null>;
  return { nodes, cluster };
}
