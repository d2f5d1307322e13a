/**
 * The console's aggregates of `metrics.node` publications (apps/console/src/metrics-model.ts): one
 * test per aggregate the Overview charts (connections, deliveries/s, publications/s, p99 latency,
 * errors/s, RSS), plus the window, the alignment of nodes on one time axis, and stale nodes.
 */
import { describe, expect, it } from 'vitest';
import {
  addSample, aggregate, aligned, emptyState, errorsPerSecond, isNodeSample, p99LatencyMs, snapshot, WINDOW_SECONDS, type NodeSample,
} from '../../../apps/console/src/metrics-model.js';

const T0 = Date.parse('2026-12-02T12:00:00.000Z');

function sample(node: string, second: number, o: Partial<NodeSample> = {}): NodeSample {
  return {
    node, at: new Date(T0 + second * 1000).toISOString(), intervalSeconds: 1, connections: 0, publicationsPerSecond: 0, deliveriesPerSecond: 0,
    errors: {}, publishLatencyMs: { p50: null, p99: null }, rssBytes: 0, ...o,
  };
}

/** Two nodes reporting at seconds 0..2. */
function twoNodes(a: Partial<NodeSample>[], b: Partial<NodeSample>[]) {
  const state = emptyState();
  a.forEach((o, i) => addSample(state, sample('node_a', i, o)));
  b.forEach((o, i) => addSample(state, sample('node_b', i, o)));
  return state;
}

describe('console metrics model', () => {
  it('connections: summed over nodes, per second', () => {
    const s = twoNodes([{ connections: 3 }, { connections: 4 }], [{ connections: 10 }, { connections: 20 }]);
    const a = aligned(s, 'connections');
    expect(a.nodes).toEqual(['node_a', 'node_b']);
    expect(a.perNode).toEqual([[3, 4], [10, 20]]);
    expect(a.cluster).toEqual([13, 24]);
    expect(snapshot(s).cluster.connections).toBe(24);
  });

  it('deliveries/s: summed over nodes', () => {
    const s = twoNodes([{ deliveriesPerSecond: 100.5 }], [{ deliveriesPerSecond: 0.5 }]);
    expect(aligned(s, 'deliveriesPerSecond').cluster).toEqual([101]);
    expect(snapshot(s).cluster.deliveriesPerSecond).toBe(101);
  });

  it('publications/s: summed over nodes', () => {
    const s = twoNodes([{ publicationsPerSecond: 7 }, { publicationsPerSecond: 9 }], [{ publicationsPerSecond: 1 }, { publicationsPerSecond: 2 }]);
    expect(aligned(s, 'publicationsPerSecond').cluster).toEqual([8, 11]);
  });

  it('p99 latency: publish-to-write when reported, else broker append; the cluster shows the worst node; no sample is null', () => {
    expect(p99LatencyMs(sample('n', 0, { publishLatencyMs: { p50: 1, p99: 5 } }))).toBe(5);
    expect(p99LatencyMs(sample('n', 0, { publishLatencyMs: { p50: 1, p99: 5 }, publishToWriteMs: { p50: 2, p99: 12 } }))).toBe(12);
    expect(p99LatencyMs(sample('n', 0, { publishLatencyMs: { p50: 1, p99: 5 }, publishToWriteMs: { p50: null, p99: null } }))).toBe(5);
    expect(p99LatencyMs(sample('n', 0, { publishLatencyMs: { p50: null, p99: null } }))).toBeNull();
    const s = twoNodes([{ publishToWriteMs: { p50: 1, p99: 25 } }, { publishLatencyMs: { p50: null, p99: null } }], [{ publishLatencyMs: { p50: 1, p99: 40 } }, { publishLatencyMs: { p50: null, p99: null } }]);
    // Worst node, not a sum; a second where no node had a publication is null (a gap), not 0.
    expect(aligned(s, 'p99LatencyMs').cluster).toEqual([40, null]);
  });

  it('errors/s: every code together, per second of the interval, summed over nodes', () => {
    expect(errorsPerSecond(sample('n', 0, { errors: { RATE_LIMITED: 4, AUTH_FAILED: 2 }, intervalSeconds: 2 }))).toBe(3);
    const s = twoNodes([{ errors: { RATE_LIMITED: 3 } }], [{ errors: { INVALID_MESSAGE: 1, NOT_FOUND: 1 } }]);
    expect(aligned(s, 'errorsPerSecond').cluster).toEqual([5]);
  });

  it('RSS: summed over nodes', () => {
    const s = twoNodes([{ rssBytes: 100e6 }], [{ rssBytes: 50e6 }]);
    expect(snapshot(s).cluster.rssBytes).toBe(150e6);
    expect(aligned(s, 'rssBytes').cluster).toEqual([150e6]);
  });

  it('nodes are aligned on one time axis; a node missing a second counts with its latest sample until stale', () => {
    const state = emptyState();
    addSample(state, sample('node_a', 0, { connections: 1 }));
    addSample(state, sample('node_b', 0, { connections: 10 }));
    addSample(state, sample('node_a', 1, { connections: 2 }));
    // node_b skips second 1 (a late sample), then stops: stale after 3 intervals.
    for (let t = 2; t <= 6; t++) addSample(state, sample('node_a', t, { connections: 2 }));
    const a = aligned(state, 'connections');
    expect(a.xs).toHaveLength(7);
    expect(a.perNode[1]).toEqual([10, null, null, null, null, null, null]);
    expect(a.cluster).toEqual([11, 12, 12, 12, 2, 2, 2]);
    const snap = snapshot(state);
    expect(snap.nodes.map((n) => [n.node, n.stale])).toEqual([['node_a', false], ['node_b', true]]);
    expect(snap.cluster.connections).toBe(2);
  });

  it('keeps the last five minutes', () => {
    const state = emptyState();
    for (let t = 0; t <= WINDOW_SECONDS + 10; t++) addSample(state, sample('node_a', t, { connections: t }));
    const a = aligned(state, 'connections');
    expect(a.xs).toHaveLength(WINDOW_SECONDS + 1);
    expect(a.cluster[0]).toBe(10);
    // A node gone for the whole window is dropped altogether.
    addSample(state, sample('node_b', 0));
    expect(aligned(state, 'connections').nodes).toEqual(['node_a']);
  });

  it('aggregate skips nulls; all null is null', () => {
    expect(aggregate([null, 2, null, 3], 'sum')).toBe(5);
    expect(aggregate([null, 2, 7], 'max')).toBe(7);
    expect(aggregate([null, null], 'sum')).toBeNull();
  });

  it('takes only well-formed node samples (anyone allowed to publish on `metrics` could send anything)', () => {
    expect(isNodeSample(sample('n', 0))).toBe(true);
    expect(isNodeSample({ node: 'n', at: 'yesterday', connections: 1 })).toBe(false);
    expect(isNodeSample(null)).toBe(false);
    expect(isNodeSample({ ...sample('n', 0), rssBytes: '1' })).toBe(false);
  });
});
