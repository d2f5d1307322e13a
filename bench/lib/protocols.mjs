// The client side of each target: how a subscriber connects, subscribes and recognises frames.
// Used inside generator processes, so everything here is plain data + functions keyed by name.
import { benchToken } from './jwt.mjs';

const HEARTBEAT = Buffer.from('"type":"heartbeat"');

/** Peers built in bench/servers/ws-*.mjs: `sub <channel>` -> `ok <channel>`. */
const bareWs = {
  path: () => '/',
  headers: () => ({}),
  onOpen(conn) {
    for (const ch of conn.channels) conn.send(`sub ${ch}`);
  },
  onSetup(conn, text) {
    if (text.startsWith('ok ')) return ++conn.acked >= conn.channels.length;
    throw new Error(`unexpected setup frame: ${text.slice(0, 120)}`);
  },
  onOther() {
    return false;
  },
};

/** Socket.IO v4 over a bare WebSocket (Engine.IO v4 framing). */
const socketio = {
  path: () => '/socket.io/?EIO=4&transport=websocket',
  headers: () => ({}),
  onOpen() {},
  onSetup(conn, text) {
    if (text === '2') {
      conn.send('3');
      return false;
    }
    if (text.startsWith('0{')) {
      conn.send('40');
      return false;
    }
    if (text.startsWith('40')) {
      for (const ch of conn.channels) conn.send(`42["join",${JSON.stringify(ch)}]`);
      return false;
    }
    if (text.startsWith('42["joined"')) return ++conn.acked >= conn.channels.length;
    throw new Error(`unexpected setup frame: ${text.slice(0, 120)}`);
  },
  onOther(conn, buf, s, e) {
    // Engine.IO ping is the one-byte text "2"; answer "3". It is Socket.IO's heartbeat.
    if (e - s === 1 && buf[s] === 0x32) {
      conn.send('3');
      return true;
    }
    return false;
  },
};

/** Signalbox, PRP dialect on /v1/ws/prps. */
const signalbox = {
  path: () => '/v1/ws/prps',
  headers: (ctx, id) => ({ Authorization: `Bearer ${benchToken(ctx.jwtSecret, id)}` }),
  onOpen() {},
  onSetup(conn, text) {
    const m = JSON.parse(text);
    if (m.type === 'connection.established') {
      // At most 1000 channels per request (protocol limit): one request per chunk.
      for (let i = 0; i * 1000 < conn.channels.length; i++) {
        const channels = conn.channels.slice(i * 1000, (i + 1) * 1000);
        conn.send(JSON.stringify({ id: `s${i + 1}`, action: 'subscribe', payload: { channels } }));
      }
      return false;
    }
    if (m.type === 'subscription.confirmed') return ++conn.acked >= Math.ceil(conn.channels.length / 1000);
    if (m.type === 'error') throw new Error(`subscribe refused: ${m.data?.code ?? ''} ${String(m.data?.message ?? '').slice(0, 80)}`);
    if (m.type === 'heartbeat') return false;
    throw new Error(`unexpected setup frame: ${text.slice(0, 200)}`);
  },
  onOther(conn, buf, s, e) {
    const i = buf.indexOf(HEARTBEAT, s);
    return i >= 0 && i < e;
  },
};

export const protocols = {
  'ws-naive': bareWs,
  'ws-coalesce': bareWs,
  socketio,
  signalbox,
  'signalbox-base': signalbox,
};
