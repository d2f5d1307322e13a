// Log-linear latency histogram in microseconds (64 sub-buckets per power of two: < 1.6 % error).
// Cheap to record into, mergeable across processes (sparse [index, count] pairs over IPC).
const SUB_BITS = 6;
const SUB = 1 << SUB_BITS;
const SIZE = SUB + (32 - SUB_BITS) * SUB;
const MAX_US = 0x7fffffff;

export class Histogram {
  constructor() {
    this.counts = new Float64Array(SIZE);
    this.n = 0;
    this.max = 0;
    this.sum = 0;
  }

  record(us) {
    let v = us < 0 ? 0 : us > MAX_US ? MAX_US : us | 0;
    if (v > this.max) this.max = v;
    this.n++;
    this.sum += v;
    let idx;
    if (v < SUB) idx = v;
    else {
      const k = 31 - Math.clz32(v); // floor(log2 v) >= SUB_BITS
      const shift = k - SUB_BITS;
      idx = SUB + shift * SUB + ((v >>> shift) & (SUB - 1));
    }
    this.counts[idx]++;
  }

  reset() {
    this.counts.fill(0);
    this.n = 0;
    this.max = 0;
    this.sum = 0;
  }

  /** Sparse form for IPC. */
  toJSON() {
    const b = [];
    for (let i = 0; i < SIZE; i++) if (this.counts[i] !== 0) b.push(i, this.counts[i]);
    return { n: this.n, max: this.max, sum: this.sum, b };
  }

  merge(j) {
    if (!j) return this;
    for (let i = 0; i < j.b.length; i += 2) this.counts[j.b[i]] += j.b[i + 1];
    this.n += j.n;
    this.sum += j.sum;
    if (j.max > this.max) this.max = j.max;
    return this;
  }

  /** Value (µs) at quantile q in [0, 1]: the upper edge of the bucket holding it, capped by max. */
  quantile(q) {
    if (this.n === 0) return null;
    const target = Math.max(1, Math.ceil(q * this.n));
    let acc = 0;
    for (let i = 0; i < SIZE; i++) {
      acc += this.counts[i];
      if (acc >= target) return Math.min(bucketHigh(i), this.max);
    }
    return this.max;
  }

  summary() {
    const ms = (v) => (v === null ? null : Math.round(v) / 1000);
    return {
      count: this.n,
      meanMs: this.n ? Math.round(this.sum / this.n) / 1000 : null,
      p50Ms: ms(this.quantile(0.5)),
      p95Ms: ms(this.quantile(0.95)),
      p99Ms: ms(this.quantile(0.99)),
      maxMs: this.n ? ms(this.max) : null,
    };
  }
}

function bucketHigh(i) {
  if (i < SUB) return i;
  const j = i - SUB;
  const shift = Math.floor(j / SUB);
  const m = j % SUB;
  return ((SUB + m + 1) * 2 ** shift) - 1;
}
