// Peer 1: a bare `ws` server that calls `send` once per subscriber per message (the usual code).
// The message is converted to a Buffer once; ws still frames and writes it per socket.
import { WebSocketServer } from 'ws';
import { env, servePeer, ready } from '../lib/peer-common.mjs';
import { payloadText } from '../lib/payload.mjs';

const channels = new Map(); // name -> Set<WebSocket>
const all = new Set();
const wss = new WebSocketServer({ host: env.host, port: env.port, perMessageDeflate: false, clientTracking: false, backlog: 4096 });

wss.on('connection', (ws) => {
  all.add(ws);
  const mine = [];
  ws.on('message', (data) => {
    const t = data.toString();
    if (t.startsWith('sub ')) {
      const ch = t.slice(4);
      let set = channels.get(ch);
      if (!set) channels.set(ch, (set = new Set()));
      set.add(ws);
      mine.push(ch);
      ws.send(`ok ${ch}`);
    }
  });
  ws.on('error', () => {});
  ws.on('close', () => {
    all.delete(ws);
    for (const ch of mine) channels.get(ch)?.delete(ws);
  });
});

if (env.heartbeatMs > 0) setInterval(() => { for (const ws of all) ws.ping(); }, env.heartbeatMs);

servePeer({
  publish(seq, ch, size, dueUs) {
    const set = channels.get(ch);
    if (!set) return;
    const buf = Buffer.from(payloadText(seq, dueUs, size));
    for (const ws of set) ws.send(buf, { binary: false });
  },
  stats: () => ({ connections: all.size }),
});

wss.on('listening', () => ready(wss.address().port));
