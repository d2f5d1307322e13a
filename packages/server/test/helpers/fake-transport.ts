/**
 * A Connection without a socket: a Transport that records every frame (decoded), closes and
 * terminations, with a settable outbound backlog; and the real collaborators a Connection talks
 * to (memory broker, hub, channel operations, authenticator) wired as the node wires them.
 */
import { decodeMsgpack } from '@signalbox/protocol';
import { Authenticator, mintToken, type MintOptions } from '../../src/auth/jwt.js';
import { MemoryBroker } from '../../src/broker/memory.js';
import { NamespaceTable } from '../../src/channels/namespaces.js';
import { ChannelOperations } from '../../src/channels/operations.js';
import { loadConfig, type GatewayConfig } from '../../src/config.js';
import { Connection, type ConnectionContext } from '../../src/connection.js';
import { Hub } from '../../src/hub/hub.js';
import { createLogger } from '../../src/logger.js';
import { Metrics } from '../../src/metrics.js';
import { MemoryPresenceStore } from '../../src/presence/memory.js';
import { MemoryRpcEngine } from '../../src/rpc/memory.js';
import { RpcRouter } from '../../src/rpc/router.js';
import type { Transport } from '../../src/transport/types.js';
import { testGrants, type Msg } from './gateway.js';

export const UNIT_SECRET = 'unit-test-secret-0123456789abcdef';

/** The payload of a complete server WebSocket frame (unmasked; text or binary). */
function framePayload(frame: Buffer): { opcode: number; payload: Buffer } {
  const opcode = frame[0]! & 0x0f;
  const len = frame[1]! & 0x7f;
  const header = len === 126 ? 4 : len === 127 ? 10 : 2;
  const size = len === 126 ? frame.readUInt16BE(2) : len === 127 ? Number(frame.readBigUInt64BE(2)) : len;
  return { opcode, payload: frame.subarray(header, header + size) };
}

export class FakeTransport implements Transport {
  /** Every message sent, decoded, in order (pre-built frames and framed messages alike). */
  readonly sent: Msg[] = [];
  readonly closes: { code: number; reason: string }[] = [];
  terminated = false;
  pings = 0;
  inputs = 0;
  /** What the socket would still hold; set it to play a client that does not read. */
  backlog = 0;
  /** `whenDrained` callbacks waiting for {@link drain}. */
  private drained: (() => void)[] = [];

  sendFrame(frame: Buffer): void {
    // A pre-built frame may be several WebSocket frames (the heartbeat is a ping then an event).
    let rest = frame;
    while (rest.length > 0) {
      const { opcode, payload } = framePayload(rest);
      const len = rest[1]! & 0x7f;
      const header = len === 126 ? 4 : len === 127 ? 10 : 2;
      rest = rest.subarray(header + payload.length);
      if (opcode === 0x9) this.pings++;
      else this.record(opcode === 0x2 ? payload : payload.toString('utf8'), opcode === 0x2);
    }
  }

  send(payload: string | Uint8Array, binary: boolean): void {
    this.record(payload, binary);
  }

  close(code: number, reason: string): void {
    this.closes.push({ code, reason });
  }

  terminate(): void {
    this.terminated = true;
  }

  inputHandled(): void {
    this.inputs++;
  }

  whenDrained(cb: () => void): void {
    this.drained.push(cb);
  }

  /** Plays the socket handing its backlog to the kernel: `backlog` becomes 0, `whenDrained` callbacks run. */
  drain(): void {
    this.backlog = 0;
    const cbs = this.drained;
    this.drained = [];
    for (const cb of cbs) cb();
  }

  get bufferedAmount(): number {
    return this.backlog;
  }

  get bufferedUpperBound(): number {
    return this.backlog;
  }

  /** Messages of one type (or matching a predicate), in order. */
  of(type: string): Msg[] {
    return this.sent.filter((m) => m.type === type);
  }

  private record(payload: string | Uint8Array, binary: boolean): void {
    this.sent.push((binary ? decodeMsgpack(payload as Uint8Array) : JSON.parse(payload as string)) as Msg);
  }
}

export interface UnitNode {
  config: GatewayConfig;
  ctx: ConnectionContext;
  broker: MemoryBroker;
  hub: Hub;
  closed: Connection[];
  token(o?: Partial<MintOptions>): Promise<string>;
  /** A connection on a fake transport, authenticated with `token` (null: none presented). */
  connect(token: string | null, info?: Partial<{ dialect: 'prp' | 'prd'; encoding: 'json' | 'msgpack' }>): { conn: Connection; t: FakeTransport };
  close(): Promise<void>;
}

let seq = 0;

export async function unitNode(overrides: Partial<GatewayConfig> = {}): Promise<UnitNode> {
  const config = loadConfig({ env: {}, overrides: { jwtSecret: UNIT_SECRET, logLevel: 'silent', ...overrides } });
  const metrics = new Metrics({ defaultMetrics: false });
  const log = createLogger('silent');
  const broker = new MemoryBroker();
  const hub = new Hub(broker, metrics, log, { maxCatchUpBuffer: 1000 });
  await broker.start({ onPublication: (p) => hub.onPublication(p), onResync: (c) => hub.onResync(c), onReadyChange: () => {} });
  const presence = new MemoryPresenceStore();
  const ops = new ChannelOperations({ broker, presence, metrics, idempotencyWindowMs: config.idempotencyWindowMs });
  const closed: Connection[] = [];
  const rpc = new RpcRouter({ nodeId: 'node_unit', engine: new MemoryRpcEngine() });
  void rpc.start();
  const ctx: ConnectionContext = {
    config, hub, ops, namespaces: new NamespaceTable(config.namespaces), auth: new Authenticator(config), rpc, metrics, log,
    onClosed: (c) => closed.push(c),
  };
  return {
    config, ctx, broker, hub, closed,
    token: (o = {}) => mintToken(UNIT_SECRET, testGrants(o)),
    connect(token, info = {}) {
      const t = new FakeTransport();
      const conn = new Connection(ctx, t, { id: `conn_unit_${++seq}`, ip: '127.0.0.1', dialect: info.dialect ?? 'prp', encoding: info.encoding ?? 'json' });
      conn.authenticate(token);
      return { conn, t };
    },
    async close() {
      await broker.close();
      await presence.close();
    },
  };
}
