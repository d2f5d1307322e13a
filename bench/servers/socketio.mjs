// Peer 3: Socket.IO v4 with a room broadcast (io.to(room).emit), WebSocket transport only.
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { env, servePeer, ready } from '../lib/peer-common.mjs';
import { payloadObject } from '../lib/payload.mjs';

const http = createServer();
const io = new Server(http, {
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
  httpCompression: false,
  pingInterval: env.heartbeatMs > 0 ? env.heartbeatMs : 25_000,
  pingTimeout: 20_000,
});

io.on('connection', (socket) => {
  // From the external publisher (--peer-publisher external).
  socket.on('pub', (ch, payload) => {
    io.to(ch).emit('bench', payload);
  });
  socket.on('join', (ch) => {
    socket.join(ch);
    socket.emit('joined', ch);
  });
});

servePeer({
  publish(seq, ch, size, dueUs) {
    io.to(ch).emit('bench', payloadObject(seq, dueUs, size));
  },
  stats: () => ({ connections: io.engine.clientsCount }),
});

http.listen({ host: env.host, port: env.port, backlog: 4096 }, () => ready(http.address().port));
