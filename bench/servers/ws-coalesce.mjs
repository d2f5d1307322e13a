// Peer 2: the practical Node limit. Each message is framed once (one Buffer shared by every
// subscriber), and all frames bound for one socket within an event-loop turn are joined and
// written with a single socket.write at the end of the turn (setImmediate).
import { WebSocketServer } from 'ws';
import { env, servePeer, ready } from '../lib/peer-common.mjs';
import { payloadText } from '../lib/payload.mjs';

const channels = new Map(); // name -> Array<Out>
const all = new Set();
let dirty = [];
let scheduled = false;

class Out {
  constructor(ws) {
    this.ws = ws;
    this.sock = ws._socket; // the raw net.Socket under ws (a peer for measurement, not an API)
    this.q = [];
    this.bytes = 0;
  }
}

function frameText(payload) {
  const len = payload.length;
  const hl = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const f = Buffer.allocUnsafe(hl + len);
  f[0] = 0x81;
  if (hl === 2) f[1] = len;
  else if (hl === 4) {
    f[1] = 126;
    f.writeUInt16BE(len, 2);
  } else {
    f[1] = 127;
    f.writeUInt32BE(0, 2);
    f.writeUInt32BE(len, 6);
  }
  payload.copy(f, hl);
  return f;
}

function flush() {
  scheduled = false;
  const list = dirty;
  dirty = [];
  for (const o of list) {
    const q = o.q;
    if (o.sock.destroyed) {
      o.q = [];
      o.bytes = 0;
      continue;
    }
    o.sock.write(q.length === 1 ? q[0] : Buffer.concat(q, o.bytes));
    o.q = [];
    o.bytes = 0;
  }
}

const wss = new WebSocketServer({ host: env.host, port: env.port, perMessageDeflate: false, clientTracking: false, backlog: 4096 });

wss.on('connection', (ws) => {
  all.add(ws);
  const out = new Out(ws);
  const mine = [];
  ws.on('message', (data) => {
    const t = data.toString();
    if (t.startsWith('pub ')) {
      // From the external publisher (--peer-publisher external): `pub <channel> <payload>`.
      const sp = t.indexOf(' ', 4);
      fanout(t.slice(4, sp), Buffer.from(t.slice(sp + 1)));
    } else if (t.startsWith('sub ')) {
      const ch = t.slice(4);
      let arr = channels.get(ch);
      if (!arr) channels.set(ch, (arr = []));
      arr.push(out);
      mine.push(ch);
      ws.send(`ok ${ch}`);
    }
  });
  ws.on('error', () => {});
  ws.on('close', () => {
    all.delete(ws);
    for (const ch of mine) {
      const arr = channels.get(ch);
      const i = arr ? arr.indexOf(out) : -1;
      if (i >= 0) arr.splice(i, 1);
    }
  });
});

if (env.heartbeatMs > 0) setInterval(() => { for (const ws of all) ws.ping(); }, env.heartbeatMs);

function fanout(ch, payload) {
  const arr = channels.get(ch);
  if (!arr) return;
  const frame = frameText(payload);
  const len = frame.length;
  for (let i = 0; i < arr.length; i++) {
    const o = arr[i];
    if (o.q.length === 0) dirty.push(o);
    o.q.push(frame);
    o.bytes += len;
  }
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
}

servePeer({
  publish(seq, ch, size, dueUs) {
    fanout(ch, Buffer.from(payloadText(seq, dueUs, size)));
  },
  stats: () => ({ connections: all.size }),
});

wss.on('listening', () => ready(wss.address().port));
