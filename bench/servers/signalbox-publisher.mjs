// The Signalbox publisher: a separate process that publishes into the gateway at a paced rate,
// either from one WebSocket connection (`publish` action, default) or over HTTP POST /v1/publish
// with a keep-alive agent. Same IPC as the peers' internal publisher: {cmd:'publish', ...}.
import http from 'node:http';
import { RawWs } from '../lib/wsraw.mjs';
import { benchToken } from '../lib/jwt.mjs';
import { payloadText } from '../lib/payload.mjs';
import { servePeer } from '../lib/peer-common.mjs';

const port = Number(process.env.BENCH_PORT);
const mode = process.env.BENCH_PUBLISH_MODE ?? 'ws';
const apiKey = process.env.BENCH_API_KEY;
const counters = { acks: 0, errors: 0, httpErrors: 0, lastError: null };
const ACK = Buffer.from('"type":"ack"');
const ERR = Buffer.from('"type":"error"');

let publishOne;
let ws;

function message(seq, ch, size, dueUs) {
  return `{"id":"p${seq}","action":"publish","payload":{"channel":"${ch}","type":"bench","data":${payloadText(seq, dueUs, size)}}}`;
}

if (mode === 'ws') {
  await new Promise((resolve, reject) => {
    ws = new RawWs({
      host: '127.0.0.1', port, path: '/v1/ws/prps',
      headers: { Authorization: `Bearer ${benchToken(process.env.BENCH_JWT_SECRET, 'bench-publisher')}` },
      onMessage(buf, s, e) {
        if (!ws.established) {
          const text = buf.toString('utf8', s, e);
          if (text.includes('"connection.established"')) {
            ws.established = true;
            resolve();
          }
          return;
        }
        const a = buf.indexOf(ACK, s);
        if (a >= 0 && a < e) counters.acks++;
        else {
          const x = buf.indexOf(ERR, s);
          if (x >= 0 && x < e) {
            counters.errors++;
            counters.lastError = buf.toString('utf8', s, Math.min(e, s + 300));
          }
        }
      },
      onError: (_w, err) => reject(err),
      onClose: (_w, code) => {
        console.error(`signalbox-publisher: connection closed (${code})`);
        process.exit(1);
      },
    });
  });
  publishOne = (seq, ch, size, dueUs) => ws.sendBatched(message(seq, ch, size, dueUs));
} else {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  publishOne = (seq, ch, size, dueUs) => {
    const body = `{"channel":"${ch}","type":"bench","data":${payloadText(seq, dueUs, size)}}`;
    const req = http.request({
      host: '127.0.0.1', port, path: '/v1/publish', method: 'POST', agent,
      headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
    }, (res) => {
      if (res.statusCode >= 300) {
        counters.httpErrors++;
        counters.lastError = `HTTP ${res.statusCode}`;
      } else counters.acks++;
      res.resume();
    });
    req.on('error', (err) => {
      counters.httpErrors++;
      counters.lastError = err.message;
    });
    req.end(body);
  };
}

servePeer({
  punctual: true,
  publish: publishOne,
  afterBatch: () => ws?.endBatch(), // no socket in --publish-mode http
  stats: () => ({ ...counters }),
});
process.on('SIGTERM', () => process.exit(0)); // exit normally, so --cpu-prof can write its profile
process.send({ type: 'ready', pid: process.pid });
