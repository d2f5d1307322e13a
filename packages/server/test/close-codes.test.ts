/**
 * The close codes the WebSocket layer sends on broken frames, provoked with hand-made frames over
 * a raw TCP socket: each must be one the catalog (and docs/errors.md) lists.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLOSE_CODE_DESCRIPTIONS, CloseCode } from '@signalbox/protocol';
import { startGateway, type TestGateway } from './helpers/gateway.js';

/** A client frame: FIN flag, opcode, masked payload (clients must mask). */
function frame(fin: boolean, opcode: number, payload: Buffer): Buffer {
  if (payload.length > 125) throw new Error('short frames only');
  const mask = Buffer.from([1, 2, 3, 4]);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | payload.length]), mask, masked]);
}

/** Opens a raw upgraded socket on the PRP endpoint; resolves once the 101 is in. */
async function rawSocket(gw: TestGateway): Promise<{ socket: Socket; closeCode: Promise<number | null> }> {
  const token = await gw.token();
  const socket = connect(gw.port, '127.0.0.1');
  let buf = Buffer.alloc(0);
  let upgraded = false;
  let onUpgraded!: () => void;
  const ready = new Promise<void>((resolve) => (onUpgraded = resolve));
  const closeCode = new Promise<number | null>((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        expect(buf.subarray(0, 12).toString()).toBe('HTTP/1.1 101');
        buf = buf.subarray(end + 4);
        upgraded = true;
        onUpgraded();
      }
      // Server frames are unmasked; skip everything up to the close frame (0x88).
      while (buf.length >= 2) {
        const len = buf[1]! & 0x7f;
        const header = len === 126 ? 4 : len === 127 ? 10 : 2;
        const size = len === 126 ? buf.readUInt16BE(2) : len === 127 ? Number(buf.readBigUInt64BE(2)) : len;
        if (buf.length < header + size) return;
        if ((buf[0]! & 0x0f) === 0x8) {
          resolve(size >= 2 ? buf.readUInt16BE(header) : null);
          return;
        }
        buf = buf.subarray(header + size);
      }
    });
    socket.on('close', () => resolve(null));
    socket.on('error', () => {});
  });
  socket.write(
    `GET /v1/ws/prps HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${token}\r\n\r\n`,
  );
  await ready;
  return { socket, closeCode };
}

describe('close codes of the WebSocket layer', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  const cases: [string, number, (s: Socket) => void][] = [
    ['a reserved opcode is 1002', CloseCode.PROTOCOL_ERROR, (s) => s.write(frame(true, 0x3, Buffer.from('x')))],
    ['a text frame that is not UTF-8 is 1007', CloseCode.INVALID_PAYLOAD, (s) => s.write(frame(true, 0x1, Buffer.from([0xc3, 0x28])))],
    ['a message in more than 16,384 fragments is 1008', CloseCode.POLICY_VIOLATION, (s) => {
      const parts = [frame(false, 0x1, Buffer.from('['))];
      for (let i = 0; i < 16_400; i++) parts.push(frame(false, 0x0, Buffer.from(' ')));
      s.write(Buffer.concat(parts));
    }],
  ];

  it.each(cases)('%s, and the code is in the catalog', async (_name, expected, send) => {
    const { socket, closeCode } = await rawSocket(gw);
    send(socket);
    const code = await closeCode;
    socket.destroy();
    expect(code).toBe(expected);
    expect(CLOSE_CODE_DESCRIPTIONS[expected]).toBeDefined();
  });
});
