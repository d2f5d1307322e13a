/**
 * Overview: live charts per node and for the cluster (connections, deliveries/s, publications/s,
 * p99 latency, errors/s, RSS) from the `metrics` channel's `metrics.node` publications, over the
 * last five minutes the page has been open; a table of each node's latest figures.
 */
import uPlot from 'uplot';
import { fill, fmtBytes, h } from '../dom.js';
import { AGGREGATION, METRICS, aligned, snapshot, type MetricKey, type MetricsState } from '../metrics-model.js';
import { registerView } from '../router.js';

const LABELS: Record<MetricKey, string> = {
  connections: 'Connections',
  deliveriesPerSecond: 'Deliveries / s',
  publicationsPerSecond: 'Publications / s',
  p99LatencyMs: 'p99 latency (ms)',
  errorsPerSecond: 'Errors / s',
  rssBytes: 'RSS',
};

const PALETTE = ['#58a6ff', '#3fb950', '#d29922', '#bc8cff', '#ff7b72', '#39c5cf', '#f778ba', '#a5d6ff'];

const fmt = (key: MetricKey, v: number | null): string => {
  if (v === null) return '–';
  if (key === 'rssBytes') return fmtBytes(v);
  if (key === 'p99LatencyMs') return `${v === 0 ? '0' : v < 1 ? v.toFixed(2) : v < 10 ? v.toFixed(1) : v.toFixed(0)} ms`;
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
};

const clock = (seconds: number) => new Date(seconds * 1000).toLocaleTimeString([], { hour12: false, hour: '2-digit', minute: '2-digit', second: '2-digit' });

/** One metric's chart; rebuilt when the set of nodes changes (uPlot's series are fixed at creation). */
class Chart {
  readonly el: HTMLElement;
  private readonly plotEl: HTMLElement;
  private readonly value: HTMLElement;
  private plot: uPlot | null = null;
  private nodesKey = '';

  constructor(readonly key: MetricKey) {
    this.value = h('span', { class: 'chart-value', 'data-metric': key }, '–');
    this.plotEl = h('div', { class: 'plot' });
    this.el = h('section', { class: 'panel chart', 'aria-label': LABELS[key] },
      h('h2', {}, LABELS[key], h('span', { class: 'dim' }, AGGREGATION[key] === 'max' ? ' (cluster: worst node)' : ' (cluster: sum)')), this.value, this.plotEl);
  }

  private width(): number {
    return Math.max(200, this.plotEl.clientWidth || 300);
  }

  update(state: MetricsState, clusterValue: number | null): void {
    this.value.textContent = fmt(this.key, clusterValue);
    const a = aligned(state, this.key);
    const showCluster = a.nodes.length > 1;
    const key = `${a.nodes.join(',')}|${showCluster}`;
    const data = [a.xs, ...a.perNode, ...(showCluster ? [a.cluster] : [])] as uPlot.AlignedData;
    if (key !== this.nodesKey || !this.plot) {
      this.plot?.destroy();
      this.nodesKey = key;
      const series: uPlot.Series[] = [
        {},
        ...a.nodes.map((n, i) => ({ label: n, stroke: PALETTE[i % PALETTE.length]!, width: 1.5, spanGaps: true, value: (_u: uPlot, v: number | null) => fmt(this.key, v) })),
        ...(showCluster ? [{ label: 'cluster', stroke: '#e6edf3', width: 2, dash: [6, 4], value: (_u: uPlot, v: number | null) => fmt(this.key, v) }] : []),
      ];
      const axisColor = '#8796a8';
      this.plot = new uPlot({
        width: this.width(), height: 150, series, cursor: { drag: { x: false, y: false } },
        legend: { show: true, live: false },
        scales: {
          // At least a minute of axis, so the first samples do not stretch over years.
          x: {
            time: true,
            range: (_u, min, max) => {
              const hi = Number.isFinite(max) && max > 0 ? max : Date.now() / 1000;
              return [Number.isFinite(min) && min > 0 ? Math.min(min, hi - 60) : hi - 60, hi];
            },
          },
          y: { range: (_u, min, max) => [Math.min(0, min ?? 0), Math.max(1, (max ?? 1) * 1.1)] },
        },
        axes: [
          // One line of wall-clock time (uPlot's default adds a second line of dates that collides when narrow).
          { stroke: axisColor, grid: { stroke: '#263241' }, ticks: { stroke: '#263241' }, space: 70, values: (_u, vals) => vals.map((v) => clock(v)) },
          {
            stroke: axisColor, grid: { stroke: '#263241' }, ticks: { stroke: '#263241' },
            values: (_u, vals) => vals.map((v) => fmt(this.key, v)),
            // Wide enough for the longest label ("190.6 MB"), never cut.
            size: (_u, values) => 14 + 7 * Math.max(3, ...(values ?? []).map((v) => String(v).length)),
          },
        ],
      }, data, this.plotEl);
    } else this.plot.setData(data);
    this.el.dataset.points = String(a.xs.length);
  }

  resize(): void {
    this.plot?.setSize({ width: this.width(), height: 150 });
  }

  destroy(): void {
    this.plot?.destroy();
  }
}

registerView({
  route: 'overview',
  title: 'Overview',
  nav: 1,
  mount(el, { live }) {
    const charts = METRICS.map((k) => new Chart(k));
    const summary = h('p', { class: 'dim', id: 'nodes-summary' }, 'Waiting for the first metrics.node publication…');
    const nodesBody = h('tbody');
    const table = h('div', { class: 'scroll' }, h('table', { class: 'nodes' },
      h('thead', {}, h('tr', {}, ...['node', 'state', 'conns', 'subs', 'channels', 'deliv/s', 'pubs/s', 'p99', 'errors/s', 'bytes in', 'bytes out', 'RSS', 'broker'].map((c) => h('th', { scope: 'col' }, c)))),
      nodesBody));
    fill(el, h('h1', {}, 'Overview'), summary, h('div', { class: 'charts' }, ...charts.map((c) => c.el)), h('section', { class: 'panel' }, h('h2', {}, 'Nodes'), table));

    let frame = 0;
    const render = () => {
      frame = 0;
      const state = live.metrics;
      const snap = snapshot(state, Math.round(Date.now() / 1000));
      for (const c of charts) c.update(state, snap.cluster[c.key]);
      const liveNodes = snap.nodes.filter((n) => !n.stale).length;
      summary.textContent = snap.nodes.length === 0
        ? 'Waiting for the first metrics.node publication… (SIGNALBOX_METRICS_INTERVAL=0 turns them off)'
        : `${liveNodes} node${liveNodes === 1 ? '' : 's'} reporting${snap.nodes.length > liveNodes ? `, ${snap.nodes.length - liveNodes} stale` : ''} · charts keep the last 5 minutes while this page is open`;
      fill(nodesBody, ...snap.nodes.map(({ node, stale, sample: s }) => h('tr', { 'data-node': node },
        h('td', { class: 'mono' }, node), h('td', {}, h('span', { class: `pill ${stale ? 'off' : 'on'}` }, stale ? 'stale' : 'live')),
        h('td', {}, s.connections), h('td', {}, s.subscriptions ?? '–'), h('td', {}, s.channels ?? '–'),
        h('td', {}, fmt('deliveriesPerSecond', s.deliveriesPerSecond)), h('td', {}, fmt('publicationsPerSecond', s.publicationsPerSecond)),
        h('td', {}, fmt('p99LatencyMs', s.publishToWriteMs?.p99 ?? s.publishLatencyMs?.p99 ?? null)),
        h('td', {}, fmt('errorsPerSecond', Object.values(s.errors).reduce((a, b) => a + b, 0) / (s.intervalSeconds || 1))),
        // Bytes per second, from gateways that report them.
        h('td', {}, s.bytesInPerSecond === undefined ? '–' : `${fmtBytes(Math.round(s.bytesInPerSecond))}/s`),
        h('td', {}, s.bytesOutPerSecond === undefined ? '–' : `${fmtBytes(Math.round(s.bytesOutPerSecond))}/s`),
        h('td', {}, fmtBytes(s.rssBytes)), h('td', {}, s.broker ? `${s.broker.kind}${s.broker.ready ? '' : ' (down)'}` : '–'))));
    };
    const schedule = () => { if (!frame) frame = requestAnimationFrame(render); };
    const off = live.onMetrics.on(schedule);
    const ro = new ResizeObserver(() => { for (const c of charts) c.resize(); });
    ro.observe(el);
    schedule();
    return () => {
      off();
      ro.disconnect();
      if (frame) cancelAnimationFrame(frame);
      for (const c of charts) c.destroy();
    };
  },
});
