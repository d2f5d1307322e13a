/**
 * Live metrics on the `metrics` channel: each node publishes one `metrics.node` per interval,
 * with its id, counts, rates over the interval and process figures; a subscriber sees them like
 * any publication. Plus the two aggregates the sample is computed with.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bucketQuantile, growth } from '../src/live-metrics.js';
import { WriteLatency } from '../src/write-latency.js';
import { connectPrp, startGateway, uniqueChannel, type TestGateway } from './helpers/gateway.js';
import { subscribePrp } from './helpers/delivery-kit.js';

describe('metrics.node on the metrics channel', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ metricsIntervalMs: 200 });
  });
  afterAll(() => gw.close());

  it('one publication per interval from this node, with its counts and the rates of the interval', async () => {
    const viewer = await connectPrp(gw);
    await subscribePrp(viewer, 'metrics');
    const channel = uniqueChannel('project');
    await subscribePrp(viewer, channel);
    const from = viewer.messages.length;
    for (let i = 0; i < 20; i++) expect((await gw.publish({ channel, type: 'note', data: i })).status).toBe(200);
    // Samples until one covers the publishes (a sample's rates are for the interval before it).
    let sample = await viewer.next((m) => m.type === 'metrics.node', 10_000, from);
    const samples = [sample];
    while (samples.reduce((n, s) => n + s.data.publicationsPerSecond * s.data.intervalSeconds, 0) < 19.5) {
      sample = await viewer.next((m) => m.type === 'metrics.node' && !samples.includes(m), 10_000, from);
      samples.push(sample);
    }
    for (const s of samples) {
      expect(s).toMatchObject({ channel: 'metrics', data: { node: gw.gateway.nodeId, broker: { kind: 'memory', ready: true } } });
      expect(s.data.connections).toBe(1);
      expect(s.data.subscriptions).toBe(2);
      expect(s.data.intervalSeconds).toBeGreaterThan(0);
      expect(s.data.rssBytes).toBeGreaterThan(0);
      expect(Number.isNaN(Date.parse(s.data.at))).toBe(false);
      expect(s.data.eventLoopDelayMs.p99).toBeGreaterThanOrEqual(0);
    }
    // 20 publishes in all; each delivered once to the viewer.
    const published = samples.reduce((n, s) => n + Math.round(s.data.publicationsPerSecond * s.data.intervalSeconds), 0);
    expect(published).toBe(20);
    const delivered = samples.reduce((n, s) => n + Math.round(s.data.deliveriesPerSecond * s.data.intervalSeconds), 0);
    expect(delivered).toBeGreaterThanOrEqual(20);
    expect(samples.some((s) => s.data.publishLatencyMs.p99 !== null)).toBe(true);
    // The publications were written to the viewer: publish-to-write latency and bytes out were measured.
    const written = samples.filter((s) => s.data.publishToWriteMs.p99 !== null);
    expect(written.length).toBeGreaterThan(0);
    for (const s of written) {
      expect(s.data.publishToWriteMs.p50).toBeGreaterThanOrEqual(0);
      expect(s.data.publishToWriteMs.p99).toBeGreaterThanOrEqual(s.data.publishToWriteMs.p50);
      expect(s.data.publishToWriteMs.p99).toBeLessThan(5000);
    }
    expect(samples.reduce((n, s) => n + s.data.bytesOutPerSecond * s.data.intervalSeconds, 0)).toBeGreaterThan(20 * 50);
    // Offsets of the metrics stream only grow: one stream, in order.
    const offsets = samples.map((s) => s.offset as number);
    expect([...offsets].sort((a, b) => a - b)).toEqual(offsets);
    await viewer.close();
  });

  it('errors of the interval are counted by code', async () => {
    const viewer = await connectPrp(gw);
    await subscribePrp(viewer, 'metrics');
    await viewer.request('subscribe', { channels: ['nope:1'] });
    const s = await viewer.next((m) => m.type === 'metrics.node' && (m.data.errors.INVALID_CHANNEL ?? 0) >= 1, 10_000);
    expect(s.data.errors.INVALID_CHANNEL).toBe(1);
    // The bad subscribe's frame was received: counted in bytes in.
    expect(s.data.bytesInPerSecond).toBeGreaterThan(0);
    await viewer.close();
  });
});

describe('aggregates', () => {
  it('WriteLatency: whole-ms quantiles of the publications each round wrote, then starts over', () => {
    let now = 10_000;
    const w = new WriteLatency(() => now);
    expect(w.take()).toEqual({ p50: null, p99: null });
    // 100 publications appended at 9,990..9,999 + 1 very late one; written at 10,000.
    for (let i = 0; i < 100; i++) w.published(9_990 + (i % 10));
    w.roundStarted();
    w.published(9_000); // fanned out during the round: belongs to the next one
    w.roundWritten();
    expect(w.take()).toEqual({ p50: 5, p99: 10 }); // ages 1..10 ms, ten of each
    w.roundStarted();
    now = 10_500;
    w.roundWritten();
    expect(w.take()).toEqual({ p50: 1500, p99: 1500 });
    expect(w.take()).toEqual({ p50: null, p99: null });
  });

  it('WriteLatency: at most 256 samples per round, drawn from all of the round', () => {
    const now = 1_000;
    const w = new WriteLatency(() => now);
    // 10,000 publications: the first half 100 ms old, the second 0 ms: a fair sample has both.
    for (let i = 0; i < 10_000; i++) w.published(i < 5000 ? 900 : 1000);
    w.roundStarted();
    w.roundWritten();
    const q = w.take();
    expect(q.p99).toBe(100);
    expect(q.p50 === 0 || q.p50 === 100).toBe(true);
  });

  it('growth: what each key grew by, keys that did not grow left out', () => {
    expect(growth(new Map([['a', 5], ['b', 2], ['c', 1]]), new Map([['a', 3], ['b', 2]]))).toEqual({ a: 2, c: 1 });
    expect(growth(new Map([['a', 1]]), undefined)).toEqual({ a: 1 });
  });

  it('bucketQuantile: the upper bound of the bucket holding the quantile, null with no observations', () => {
    const buckets = [{ le: 0.001, count: 50 }, { le: 0.01, count: 98 }, { le: 0.1, count: 100 }, { le: Infinity, count: 100 }];
    expect(bucketQuantile(buckets, 0.5)).toBe(0.001);
    expect(bucketQuantile(buckets, 0.51)).toBe(0.01);
    expect(bucketQuantile(buckets, 0.99)).toBe(0.1);
    expect(bucketQuantile([{ le: 0.1, count: 0 }, { le: Infinity, count: 0 }], 0.5)).toBeNull();
    expect(bucketQuantile([], 0.5)).toBeNull();
  });
});
