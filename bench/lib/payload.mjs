// The benchmark message: {"seq":N,"ts":T,"pad":"..."} padded to an exact size (default 100 bytes).
// ts is CLOCK_MONOTONIC in microseconds (process.hrtime), which is one clock for every process on
// the machine, so a subscriber in another process computes one-way latency as nowUs() - ts.

export function nowUs() {
  const t = process.hrtime();
  return t[0] * 1e6 + Math.floor(t[1] / 1e3);
}

const PAD = 'x'.repeat(4096);

/** JSON text of the payload object, exactly `size` bytes long (if size allows). */
export function payloadText(seq, ts, size = 100) {
  const head = `{"seq":${seq},"ts":${ts},"pad":"`;
  const padLen = Math.max(0, size - head.length - 2);
  return head + PAD.slice(0, padLen) + '"}';
}

/** The same payload as an object (for servers that serialise it themselves). */
export function payloadObject(seq, ts, size = 100) {
  const head = `{"seq":${seq},"ts":${ts},"pad":"`;
  const padLen = Math.max(0, size - head.length - 2);
  return { seq, ts, pad: PAD.slice(0, padLen) };
}

const SEQ = Buffer.from('"seq":');
const TS = Buffer.from('"ts":');
const C0 = 48;

/**
 * Finds seq and ts in buf[start, end) without allocating. Returns false if the frame carries no
 * benchmark payload; otherwise sets out.seq / out.ts and returns true.
 */
export function extract(buf, start, end, out) {
  let i = buf.indexOf(SEQ, start);
  if (i < 0 || i >= end) return false;
  i += 6;
  let seq = 0;
  for (let c = buf[i]; c >= C0 && c <= 57; c = buf[++i]) seq = seq * 10 + (c - C0);
  let j = buf.indexOf(TS, i);
  if (j < 0 || j >= end) return false;
  j += 5;
  let ts = 0;
  for (let c = buf[j]; c >= C0 && c <= 57; c = buf[++j]) ts = ts * 10 + (c - C0);
  out.seq = seq;
  out.ts = ts;
  return true;
}
