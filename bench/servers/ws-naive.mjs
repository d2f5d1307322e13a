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
    if (t.startsWith('pub ')) {
      // From the external publisher (--peer-publisher external): `pub <channel> <payload>`.
      const sp = t.indexOf(' ', 4);
      fanout(t.slice(4, sp), Buffer.from(t.slice(sp + 1)));
    } else if (t.startsWith('sub ')) {
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

function fanout(ch, buf) {
  const set = channels.get(ch);
  if (!set) return;
  for (const ws of set) ws.send(buf, { binary: false });
}

servePeer({
  publish(seq, ch, size, dueUs) {
    fanout(ch, Buffer.from(payloadText(seq, dueUs, size)));
  },
  stats: () => ({ connections: all.size }),
});

wss.on('listening', () => ready(wss.address().port));
