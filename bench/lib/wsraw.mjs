// Minimal WebSocket client for load generation: does the HTTP upgrade itself over net.connect
// (with a chosen loopback source address), parses unmasked server frames in place (7/16/64-bit
// lengths, text/binary, continuation, ping -> masked pong, close) and hands each message to a
// callback as (buf, start, end) without copying. The only allocation on the hot path is joining
// a frame that spans two TCP reads.
import net from 'node:net';
import { randomBytes } from 'node:crypto';

const CRLF2 = Buffer.from('\r\n\r\n');
const EMPTY = Buffer.alloc(0);
// One read buffer for every socket of the process (net's `onread`): reads skip the stream
// machinery and allocate nothing; bytes that must outlive a read (a partial frame) are copied.
const READ_BUF = Buffer.allocUnsafe(256 * 1024);

export class RawWs {
  /**
   * @param {object} o host, port, path, localAddress, headers (object), onMessage(buf, s, e, ws),
   *   onPing(ws), onClose(ws, code), onOpen(ws), onError(ws, err)
   */
  constructor(o) {
    this.o = o;
    this.pending = EMPTY; // unparsed bytes carried over from the previous read
    this.frag = null; // fragments of a fragmented message
    this.open = false;
    this.batching = false; // corked by sendBatched until endBatch
    this.closed = false;
    const sock = net.connect({
      host: o.host, port: o.port, localAddress: o.localAddress,
      onread: { buffer: READ_BUF, callback: (n, buf) => this.onData(buf.subarray(0, n)) },
    });
    this.sock = sock;
    sock.setNoDelay(true);
    const key = randomBytes(16).toString('base64');
    let req = `GET ${o.path} HTTP/1.1\r\nHost: ${o.host}:${o.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n`;
    for (const [k, v] of Object.entries(o.headers ?? {})) req += `${k}: ${v}\r\n`;
    req += '\r\n';
    sock.on('connect', () => sock.write(req));
    sock.on('error', (err) => {
      this.closed = true;
      o.onError?.(this, err);
    });
    sock.on('close', () => {
      const was = this.closed;
      this.closed = true;
      this.open = false;
      if (!was || this.closeCode !== undefined) o.onClose?.(this, this.closeCode ?? 1006);
    });
  }

  onData(d) {
    let buf = this.pending.length ? Buffer.concat([this.pending, d]) : d;
    if (!this.open) {
      const h = buf.indexOf(CRLF2);
      if (h < 0) {
        this.pending = Buffer.from(buf);
        return;
      }
      const head = buf.toString('latin1', 0, h);
      if (!head.startsWith('HTTP/1.1 101')) {
        this.closed = true;
        this.o.onError?.(this, new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
        this.sock.destroy();
        return;
      }
      this.open = true;
      this.o.onOpen?.(this);
      buf = buf.subarray(h + 4);
      this.pending = EMPTY;
    }
    let p = 0;
    const n = buf.length;
    while (n - p >= 2) {
      const b0 = buf[p];
      const b1 = buf[p + 1];
      let len = b1 & 0x7f;
      let hl = 2;
      if (len === 126) {
        if (n - p < 4) break;
        len = buf.readUInt16BE(p + 2);
        hl = 4;
      } else if (len === 127) {
        if (n - p < 10) break;
        len = buf.readUInt32BE(p + 2) * 4294967296 + buf.readUInt32BE(p + 6);
        hl = 10;
      }
      if (b1 & 0x80) hl += 4; // servers must not mask; tolerate it anyway (payload left masked)
      if (n - p < hl + len) break;
      const s = p + hl;
      const e = s + len;
      const op = b0 & 0x0f;
      const fin = b0 & 0x80;
      if (op === 1 || op === 2) {
        if (fin) this.o.onMessage(buf, s, e, this);
        else this.frag = [Buffer.from(buf.subarray(s, e))];
      } else if (op === 0) {
        if (this.frag) {
          this.frag.push(Buffer.from(buf.subarray(s, e)));
          if (fin) {
            const m = Buffer.concat(this.frag);
            this.frag = null;
            this.o.onMessage(m, 0, m.length, this);
          }
        }
      } else if (op === 9) {
        this.sendFrame(0x8a, buf.subarray(s, e));
        this.o.onPing?.(this);
      } else if (op === 8) {
        this.closeCode = len >= 2 ? buf.readUInt16BE(s) : 1005;
        this.sendFrame(0x88, buf.subarray(s, Math.min(e, s + 2)));
        this.sock.end();
        this.pending = EMPTY;
        return;
      }
      p = e;
    }
    // The read buffer is reused by the next read of any socket: keep a copy of a partial frame.
    this.pending = p === n ? EMPTY : Buffer.from(buf.subarray(p));
  }

  /** Sends one masked frame (first byte given: 0x81 text, 0x8a pong, 0x88 close). */
  sendFrame(b0, payload) {
    if (this.sock.destroyed) return;
    const len = payload.length;
    const hl = len < 126 ? 2 : len < 65536 ? 4 : 10;
    const f = Buffer.allocUnsafe(hl + 4 + len);
    f[0] = b0;
    if (hl === 2) f[1] = 0x80 | len;
    else if (hl === 4) {
      f[1] = 0x80 | 126;
      f.writeUInt16BE(len, 2);
    } else {
      f[1] = 0x80 | 127;
      f.writeUInt32BE(0, 2);
      f.writeUInt32BE(len, 6);
    }
    const mask = randomBytes(4);
    mask.copy(f, hl);
    for (let i = 0; i < len; i++) f[hl + 4 + i] = payload[i] ^ mask[i & 3];
    this.sock.write(f);
  }

  sendText(str) {
    this.sendFrame(0x81, Buffer.from(str));
  }

  /** Sends a text frame held back (socket corked) until endBatch(): a paced batch leaves in one write. */
  sendBatched(str) {
    if (!this.batching) {
      this.sock.cork();
      this.batching = true;
    }
    this.sendText(str);
  }

  endBatch() {
    if (this.batching) {
      this.batching = false;
      this.sock.uncork();
    }
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    if (this.open) this.sendFrame(0x88, Buffer.from([0x03, 0xe8]));
    this.sock.end();
    setTimeout(() => this.sock.destroy(), 1000).unref();
  }
}
