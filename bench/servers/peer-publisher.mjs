// The external publisher for the peers (--peer-publisher external): a separate process that
// publishes into a peer over one WebSocket at a paced rate, as the Signalbox target is always fed
// (bench/servers/signalbox-publisher.mjs). The peer then pays for receiving and parsing each
// publication, and every message crosses the same extra hop, as it does for a gateway.
//   bare ws peers: text frame `pub <channel> <payload JSON>`
//   Socket.IO:     event `42["pub","<channel>",<payload JSON>]` after the Engine.IO/namespace handshake
// Same IPC as the other publishers: {cmd:'publish', rate, durationMs, seqStart, channels, size}.
import { RawWs } from '../lib/wsraw.mjs';
import { payloadText } from '../lib/payload.mjs';
import { servePeer } from '../lib/peer-common.mjs';

const port = Number(process.env.BENCH_PORT);
const target = process.env.BENCH_TARGET;
const isSocketIo = target === 'socketio';
let ws;

await new Promise((resolve, reject) => {
  ws = new RawWs({
    host: '127.0.0.1', port, path: isSocketIo ? '/socket.io/?EIO=4&transport=websocket' : '/',
    onOpen: () => {
      if (!isSocketIo) resolve();
    },
    onMessage(buf, s, e) {
      if (!isSocketIo) return;
      const text = buf.toString('utf8', s, e);
      if (text === '2') ws.sendText('3'); // Engine.IO ping
      else if (text.startsWith('0{')) ws.sendText('40');
      else if (text.startsWith('40')) resolve();
    },
    onError: (_w, err) => reject(err),
    onClose: (_w, code) => {
      console.error(`peer-publisher: connection closed (${code})`);
      process.exit(1);
    },
  });
});

function publishOne(seq, ch, size, dueUs) {
  const p = payloadText(seq, dueUs, size);
  ws.sendBatched(isSocketIo ? `42["pub",${JSON.stringify(ch)},${p}]` : `pub ${ch} ${p}`);
}

servePeer({
  punctual: true,
  publish: publishOne,
  afterBatch: () => ws.endBatch(),
  stats: () => ({ acks: 0, errors: 0 }),
});
process.on('SIGTERM', () => process.exit(0));
process.send({ type: 'ready', pid: process.pid });
