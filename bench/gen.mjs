// Load generator process (forked by a scenario): opens subscriber connections over several
// loopback source addresses, subscribes them, then measures one-way latency, loss and duplicates
// of benchmark publications, and heartbeat regularity for idle connections. Commands over IPC.
import WebSocket from 'ws';
import { RawWs } from './lib/wsraw.mjs';
import { protocols } from './lib/protocols.mjs';
import { Histogram } from './lib/hist.mjs';
import { extract, nowUs } from './lib/payload.mjs';
import { ensureReader, startReader } from './lib/native.mjs';

const conns = [];
const hist = new Histogram();
const st = { received: 0, stale: 0, dups: 0, other: 0, firstUs: 0, lastUs: 0, lo: 0, closedDuring: 0 };
const hbState = { measuring: false };
const out = { seq: 0, ts: 0 };
let proto;
let native = null; // --client native: the reader process that owns the sockets after setup

function resetStep(lo) {
  hist.reset();
  Object.assign(st, { received: 0, stale: 0, dups: 0, other: 0, firstUs: 0, lastUs: 0, lo, closedDuring: 0 });
}

function onMessage(buf, s, e, conn) {
  if (!conn.ready) {
    let done;
    try {
      done = proto.onSetup(conn, buf.toString('utf8', s, e), ctx);
    } catch (err) {
      conn.fail(err);
      return;
    }
    if (done) conn.markReady();
    return;
  }
  if (extract(buf, s, e, out)) {
    const now = nowUs();
    if (out.seq < st.lo) {
      st.stale++;
      return;
    }
    if (out.seq <= conn.lastSeq) st.dups++;
    else conn.lastSeq = out.seq;
    st.received++;
    if (st.firstUs === 0) st.firstUs = now;
    st.lastUs = now;
    hist.record(now - out.ts);
  } else if (proto.onOther(conn, buf, s, e)) {
    conn.beat('hb');
  } else st.other++;
}

let ctx = {};

class Conn {
  constructor(i, channels, resolve) {
    this.i = i;
    this.channels = channels;
    this.acked = 0;
    this.ready = false;
    this.lastSeq = -1;
    this.resolve = resolve;
    this.hb = { n: 0, last: 0, maxGap: 0 };
    this.ping = { n: 0, last: 0, maxGap: 0 };
    this.t0 = performance.now();
  }
  markReady() {
    this.ready = true;
    this.readyMs = performance.now() - this.t0;
    this.resolve?.(null);
    this.resolve = null;
  }
  /** Setup failed (only matters before ready): report it and drop the socket. */
  fail(err) {
    if (!this.resolve) return;
    this.resolve(err);
    this.resolve = null;
    this.close?.();
  }
  beat(kind) {
    const b = kind === 'hb' ? this.hb : this.ping;
    const now = performance.now();
    if (hbState.measuring) {
      if (b.last && now - b.last > b.maxGap) b.maxGap = now - b.last;
      b.n++;
    }
    b.last = now;
  }
  onClosed(code) {
    if (this.ready) st.closedDuring++;
    this.closedCode = code;
    this.dead = true;
    this.fail(new Error(`closed ${code}`));
  }
}

function openConn(m, i, addr, port) {
  const P = m.channels.perConn;
  const C = m.channels.count;
  const chans = [];
  for (let t = 0; t < P; t++) chans.push(`${m.channels.prefix}${(i * P + t) % C}`);
  return new Promise((resolve) => {
    const conn = new Conn(i, chans, resolve);
    conns.push(conn);
    const id = `bench-${i}`;
    const path = proto.path(ctx);
    const headers = proto.headers(ctx, id);
    if (m.client === 'ws') {
      const ws = new WebSocket(`ws://${m.host}:${port}${path}`, { headers, localAddress: addr, perMessageDeflate: false });
      conn.send = (t) => ws.send(t);
      conn.close = () => ws.terminate();
      ws.on('open', () => proto.onOpen(conn, ctx));
      ws.on('message', (data) => onMessage(data, 0, data.length, conn));
      ws.on('ping', () => conn.beat('ping'));
      ws.on('error', (err) => conn.fail(err));
      ws.on('close', (code) => conn.onClosed(code));
    } else {
      const ws = new RawWs({
        host: m.host, port, path, headers, localAddress: addr,
        onOpen: () => proto.onOpen(conn, ctx),
        onMessage: (buf, s, e) => onMessage(buf, s, e, conn),
        onPing: () => conn.beat('ping'),
        onError: (_w, err) => conn.fail(err),
        onClose: (_w, code) => conn.onClosed(code),
      });
      conn.raw = ws;
      conn.send = (t) => ws.sendText(t);
      conn.close = () => ws.close();
    }
    setTimeout(() => conn.fail(new Error('setup timeout')), m.setupTimeoutMs ?? 30_000).unref();
  });
}

async function connectAll(m) {
  proto = protocols[m.target];
  ctx = m.ctx ?? {};
  const t0 = performance.now();
  let next = 0;
  let ok = 0;
  const errors = {};
  let failed = 0;
  async function worker() {
    while (next < m.count) {
      const k = next++;
      const i = m.firstIndex + k;
      const addr = m.addrs[i % m.addrs.length];
      const port = m.ports[i % m.ports.length];
      const err = await openConn(m, i, addr, port);
      if (err) {
        failed++;
        const key = String(err.message).slice(0, 80);
        errors[key] = (errors[key] ?? 0) + 1;
      } else ok++;
    }
  }
  await Promise.all(Array.from({ length: Math.min(m.concurrency ?? 200, m.count) }, worker));
  const ms = performance.now() - t0;
  const res = { connected: ok, failed, errors, connectMs: Math.round(ms), connectRate: Math.round((ok * 1000) / ms) };
  if (m.client === 'native') res.nativePid = await handOver(m.target);
  return res;
}

/**
 * --client native: every subscribed socket stops being read here and is passed to the native
 * reader, which reads it from now on. Nothing flows between the subscribe handshake and the
 * first step but heartbeats; a socket holding part of a frame at that moment fails the run.
 */
async function handOver(target) {
  ensureReader();
  const live = conns.filter((c) => c.ready && !c.dead);
  for (const c of live) c.raw.sock.pause();
  const partial = live.filter((c) => c.raw.pending.length > 0).length;
  if (partial) throw new Error(`native hand-over: ${partial} socket(s) hold part of a frame`);
  const fds = live.map((c) => c.raw.sock._handle.fd);
  native = startReader(fds, target === 'socketio' ? 'socketio' : target.startsWith('signalbox') ? 'signalbox' : 'ws');
  const ready = await native.ready;
  if (ready?.ready !== fds.length) throw new Error(`native reader did not start: ${JSON.stringify(ready)}`);
  return native.pid;
}

function hbReport(now = performance.now()) {
  let alive = 0;
  let minHb = Infinity, minPing = Infinity, maxHbGap = 0, maxPingGap = 0;
  const lateOver = (b) => Math.max(b.maxGap, b.last ? now - b.last : 0);
  for (const c of conns) {
    if (!c.ready || c.dead) continue;
    alive++;
    minHb = Math.min(minHb, c.hb.n);
    minPing = Math.min(minPing, c.ping.n);
    maxHbGap = Math.max(maxHbGap, lateOver(c.hb));
    maxPingGap = Math.max(maxPingGap, lateOver(c.ping));
  }
  return {
    alive, closedDuring: st.closedDuring,
    minHeartbeats: alive ? minHb : 0, maxHeartbeatGapMs: Math.round(maxHbGap),
    minPings: alive ? minPing : 0, maxPingGapMs: Math.round(maxPingGap),
  };
}

process.on('message', async (m) => {
  let reply;
  if (native && (m.cmd === 'reset' || m.cmd === 'progress' || m.cmd === 'snapshot')) {
    reply = await native.command(m.cmd === 'reset' ? `reset ${m.lo}` : m.cmd);
    process.send({ id: m.id, ...reply });
    return;
  }
  if (native && (m.cmd === 'hbStart' || m.cmd === 'hbReport')) {
    process.send({ id: m.id, error: 'heartbeat accounting is not implemented by the native reader; use --client raw' });
    return;
  }
  switch (m.cmd) {
    case 'connect':
      try {
        reply = await connectAll(m);
      } catch (err) {
        reply = { error: String(err.message ?? err) };
      }
      break;
    case 'reset':
      resetStep(m.lo);
      reply = {};
      break;
    case 'progress':
      reply = { received: st.received, lastUs: st.lastUs };
      break;
    case 'snapshot':
      reply = { ...st, hist: hist.toJSON() };
      break;
    case 'hbStart': {
      const now = performance.now();
      for (const c of conns) {
        c.hb = { n: 0, last: now, maxGap: 0 };
        c.ping = { n: 0, last: now, maxGap: 0 };
      }
      st.closedDuring = 0;
      hbState.measuring = true;
      reply = {};
      break;
    }
    case 'hbReport':
      reply = hbReport();
      break;
    case 'close':
      native?.stop();
      for (const c of conns) c.close?.();
      reply = {};
      setTimeout(() => process.exit(0), 200);
      break;
    default:
      reply = { error: `unknown command ${m.cmd}` };
  }
  process.send({ id: m.id, ...reply });
});
process.on('disconnect', () => process.exit(0));
process.send({ type: 'ready' });
