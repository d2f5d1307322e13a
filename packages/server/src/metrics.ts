/** Prometheus metrics under `signalbox_`, labelled by namespace (never by channel). */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { WriteLatency } from './write-latency.js';

/**
 * A counter bumped on the hot path (every frame, every publication). prom-client hashes the label
 * object on each `inc`; here an increment adds to a plain number kept per label set, and the sums
 * go into the prom-client counter when it is read (scrape, `get()`), so what Prometheus sees is
 * the same. Label values must come from a small set (namespace, dialect, source).
 */
export class HotCounter<L extends string> {
  readonly counter: Counter<L>;
  private readonly slots = new Map<string, { labels: Partial<Record<L, string>>; n: number }>();
  private readonly labelNames: readonly L[];

  constructor(cfg: { name: string; help: string; labelNames: readonly L[]; registers: Registry[] }) {
    this.labelNames = cfg.labelNames;
    const slots = this.slots;
    this.counter = new Counter<L>({
      ...cfg,
      collect() {
        for (const s of slots.values()) {
          if (s.n > 0) {
            this.inc(s.labels, s.n);
            s.n = 0;
          }
        }
      },
    });
  }

  /** Adds `n` to the series with these label values, in `labelNames` order. */
  inc(n: number, a: string, b?: string): void {
    const key = b === undefined ? a : `${a}\u0000${b}`;
    let s = this.slots.get(key);
    if (s === undefined) {
      const labels: Partial<Record<L, string>> = {};
      labels[this.labelNames[0]!] = a;
      if (b !== undefined) labels[this.labelNames[1]!] = b;
      s = { labels, n: 0 };
      this.slots.set(key, s);
    }
    s.n += n;
  }
}

/**
 * A histogram observed on the hot path (every publication). prom-client's `labels(v).observe(x)`
 * hashes a label object and walks an object of buckets on each call (about 1.6 µs, the largest
 * per-publication cost of the metrics); here an observation is a short scan of a sorted array and
 * three additions on a slot kept per label value. It registers itself as a prom-client metric, so
 * the exposition (`_bucket{le}`, `_sum`, `_count`) and `get()` are those of a prom-client histogram.
 * One label, whose values come from a small set.
 */
export class HotHistogram<L extends string> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  private readonly label: L;
  private readonly bounds: readonly number[];
  private readonly slots = new Map<string, { counts: Float64Array; sum: number; count: number }>();

  constructor(cfg: { name: string; help: string; labelNames: readonly [L]; buckets: readonly number[]; registers: Registry[] }) {
    this.name = cfg.name;
    this.help = cfg.help;
    this.label = cfg.labelNames[0];
    this.bounds = [...cfg.buckets].sort((a, b) => a - b);
    for (const r of cfg.registers) r.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** Records `value` in the series whose label is `labelValue`. */
  observe(labelValue: string, value: number): void {
    let s = this.slots.get(labelValue);
    if (s === undefined) this.slots.set(labelValue, (s = { counts: new Float64Array(this.bounds.length), sum: 0, count: 0 }));
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    if (i < b.length) s.counts[i]! += 1;
    s.sum += value;
    s.count += 1;
  }

  /** The prom-client shape: cumulative `_bucket` values by `le` (and `+Inf`), then `_sum` and `_count`, per label value. */
  get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: { labels: Record<string, string | number>; value: number; metricName: string }[] }> {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const [v, s] of this.slots) {
      let acc = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        acc += s.counts[i]!;
        values.push({ labels: { le: this.bounds[i]!, [this.label]: v }, value: acc, metricName: `${this.name}_bucket` });
      }
      values.push({ labels: { le: '+Inf', [this.label]: v }, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { [this.label]: v }, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { [this.label]: v }, value: s.count, metricName: `${this.name}_count` });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  reset(): void {
    this.slots.clear();
  }
}

export class Metrics {
  readonly registry = new Registry();
  readonly connections: Gauge<'dialect' | 'encoding'>;
  readonly connectionsOpened: Counter<'dialect'>;
  readonly connectionsClosed: Counter<'code'>;
  readonly upgradesRejected: Counter<'reason'>;
  readonly subscriptions: Gauge<'namespace'>;
  readonly channels: Gauge;
  readonly publications: HotCounter<'namespace' | 'source'>;
  readonly deliveries: HotCounter<'namespace'>;
  readonly messagesIn: HotCounter<'dialect'>;
  readonly errors: Counter<'code'>;
  readonly recoveries: Counter<'namespace' | 'outcome'>;
  readonly resyncs: Counter<'outcome'>;
  readonly publishDuration: HotHistogram<'source'>;
  readonly brokerReady: Gauge;
  /** Publish-to-write latency samples (fed by the hub and the write batcher; read by live metrics). */
  readonly writeLatency = new WriteLatency();
  /** Bytes of client frames received (a plain number: bumped for every frame). */
  bytesIn = 0;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const r = this.registry;
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: r, prefix: 'signalbox_process_' });
    this.connections = new Gauge({ name: 'signalbox_connections', help: 'Open WebSocket connections', labelNames: ['dialect', 'encoding'], registers: [r] });
    this.connectionsOpened = new Counter({ name: 'signalbox_connections_opened_total', help: 'WebSocket connections accepted', labelNames: ['dialect'], registers: [r] });
    this.connectionsClosed = new Counter({ name: 'signalbox_connections_closed_total', help: 'WebSocket connections closed, by close code', labelNames: ['code'], registers: [r] });
    this.upgradesRejected = new Counter({ name: 'signalbox_upgrades_rejected_total', help: 'Upgrade requests refused before the handshake', labelNames: ['reason'], registers: [r] });
    this.subscriptions = new Gauge({ name: 'signalbox_subscriptions', help: 'Active channel subscriptions', labelNames: ['namespace'], registers: [r] });
    this.channels = new Gauge({ name: 'signalbox_channels', help: 'Channels with at least one subscriber on this node', registers: [r] });
    this.publications = new HotCounter({ name: 'signalbox_publications_total', help: 'Publications accepted, by namespace and source (api|client)', labelNames: ['namespace', 'source'], registers: [r] });
    this.deliveries = new HotCounter({ name: 'signalbox_deliveries_total', help: 'Publication frames sent to subscribers', labelNames: ['namespace'], registers: [r] });
    this.messagesIn = new HotCounter({ name: 'signalbox_client_messages_total', help: 'Frames received from clients', labelNames: ['dialect'], registers: [r] });
    this.errors = new Counter({ name: 'signalbox_errors_total', help: 'Error events sent to clients, by code', labelNames: ['code'], registers: [r] });
    this.recoveries = new Counter({ name: 'signalbox_recoveries_total', help: 'Subscriptions that asked to recover, by outcome', labelNames: ['namespace', 'outcome'], registers: [r] });
    this.resyncs = new Counter({ name: 'signalbox_stream_resyncs_total', help: 'Channel streams re-read after a gap, by outcome', labelNames: ['outcome'], registers: [r] });
    this.publishDuration = new HotHistogram({
      name: 'signalbox_publish_duration_seconds', help: 'Time to append a publication (broker round trip)', labelNames: ['source'], registers: [r],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    });
    this.brokerReady = new Gauge({ name: 'signalbox_broker_ready', help: '1 while the broker is reachable', registers: [r] });
    this.scrapedCounter('signalbox_received_bytes_total', 'Bytes of WebSocket frames received from clients', () => this.bytesIn);
  }

  /** Bytes of frames queued for client sockets (every frame the write batcher takes). */
  watchBytesOut(read: () => number): void {
    this.scrapedCounter('signalbox_sent_bytes_total', 'Bytes of WebSocket frames sent to clients', read);
  }

  /** Client sockets whose reading was held for a round because a turn queued more than its budget. */
  watchInputHolds(read: () => number): void {
    this.scrapedCounter('signalbox_input_holds_total', 'Client sockets not read until the next round of writes, because the turn had queued more than SIGNALBOX_TURN_BUDGET', read);
  }

  /**
   * Writer-thread counters (registered only when the gateway runs writer threads): socket writes
   * done by the threads, rounds where the main thread waited for a thread that had no core, and
   * the pauses that followed on a busy loop.
   */
  watchWriteThreads(read: () => { writes: number; stalls: number; pauses: number }): void {
    this.scrapedCounter('signalbox_write_thread_writes_total', 'Socket writes made by writer threads', () => read().writes);
    this.scrapedCounter('signalbox_write_thread_stalls_total', 'Fan-out rounds where the main thread waited over 1 ms for a writer thread', () => read().stalls);
    this.scrapedCounter('signalbox_write_thread_pauses_total', 'Times the writer threads were paused because the event loop was busy and they had no core', () => read().pauses);
  }

  /** A counter whose value is a running total kept elsewhere, read when it is scraped. */
  private scrapedCounter(name: string, help: string, read: () => number): void {
    new Counter({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  }
}
