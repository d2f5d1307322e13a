/** HotHistogram exposes exactly what a prom-client Histogram would for the same observations. */
import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { HotHistogram } from '../../src/metrics.js';

const buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

describe('HotHistogram', () => {
  it('renders the same exposition and get() values as prom-client for the same observations', async () => {
    const [a, b] = [new Registry(), new Registry()];
    const hot = new HotHistogram({ name: 'x_seconds', help: 'h', labelNames: ['source'], buckets, registers: [a] });
    const ref = new Histogram({ name: 'x_seconds', help: 'h', labelNames: ['source'], buckets, registers: [b] });
    // Values on every bound, between, below the first, above the last.
    const values = [0, 0.0001, 0.0005, 0.0007, 0.001, 0.003, 0.01, 0.0100001, 0.2, 1, 1.5, 30, ...buckets];
    values.forEach((v, i) => {
      const source = i % 3 === 0 ? 'api' : 'client';
      hot.observe(source, v);
      ref.labels(source).observe(v);
    });
    const lines = (text: string): string[] => text.split('\n').filter(Boolean).sort();
    expect(lines(await a.metrics())).toEqual(lines(await b.metrics()));
    const norm = (vs: { labels: object; value: number; metricName?: string }[]) => vs.map((v) => JSON.stringify([v.metricName, Object.entries(v.labels).sort(), v.value])).sort();
    expect(norm((await hot.get()).values)).toEqual(norm((await ref.get()).values));
  });

  it('reset() empties every series', async () => {
    const r = new Registry();
    const hot = new HotHistogram({ name: 'y_seconds', help: 'h', labelNames: ['source'], buckets, registers: [r] });
    hot.observe('api', 0.002);
    r.resetMetrics();
    expect((await hot.get()).values).toEqual([]);
  });
});
