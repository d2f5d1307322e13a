/**
 * The PRP WebSocket API document's examples are a contract. Its client messages are sent
 * verbatim and the server's answers are checked against the documented shapes; its event
 * examples are published and arrive with the documented `data`; and the document's reference
 * TypeScript client (ported with type fixes only) works against the gateway.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { ErrorCode } from '@signalbox/protocol';
import { TestClient, connectPrp, startGateway, type Msg, type TestGateway } from './helpers/gateway.js';
import { expectPrpEnvelope, http } from './helpers/core-util.js';

// Starting gateways can take long on a starved CI machine; a hang still fails, just later.
vi.setConfig({ hookTimeout: 120_000 });

/** The document's example client messages, verbatim. */
const SUBSCRIBE = `{
  "id": "client_msg_001",
  "action": "subscribe",
  "payload": {
    "channels": [
      "project:proj_123456",
      "agent:agent_001",
      "prp:prp_789012"
    ]
  }
}`;
const UNSUBSCRIBE = `{
  "id": "client_msg_002",
  "action": "unsubscribe",
  "payload": {
    "channels": ["agent:agent_001"]
  }
}`;
const PING = `{
  "id": "client_msg_003",
  "action": "ping"
}`;

/** The document's event examples (type and data, verbatim). */
const EVENTS: { id: string; type: string; channel: string; data: unknown }[] = [
  {
    id: 'msg_123456', type: 'prp.created', channel: 'project:proj_123456',
    data: { id: 'prp_789012', projectId: 'proj_123456', name: 'Implement Authentication', description: 'Add JWT authentication to the API', status: 'pending', priority: 'high', createdBy: 'usr_123456', createdAt: '2024-01-15T10:00:00Z' },
  },
  {
    id: 'msg_123457', type: 'prp.updated', channel: 'prp:prp_789012',
    data: { id: 'prp_789012', changes: { status: { old: 'pending', new: 'active' }, assignedAgent: { old: null, new: 'agent_001' } }, updatedBy: 'usr_123456', updatedAt: '2024-01-15T11:30:00Z' },
  },
  {
    id: 'msg_123458', type: 'prp.status_changed', channel: 'prp:prp_789012',
    data: { id: 'prp_789012', previousStatus: 'active', newStatus: 'completed', reason: 'All requirements met', changedBy: 'agent_001', metrics: { estimatedHours: 8, actualHours: 7.5, completionRate: 100 } },
  },
  {
    id: 'msg_123459', type: 'prp.deleted', channel: 'project:proj_123456',
    data: { id: 'prp_789012', projectId: 'proj_123456', deletedBy: 'usr_123456', reason: 'Duplicate entry' },
  },
  {
    id: 'msg_123460', type: 'agent.assigned', channel: 'agent:agent_001',
    data: { agentId: 'agent_001', prpId: 'prp_789012', priority: 'high', estimatedStartTime: '2024-01-15T12:00:00Z' },
  },
  {
    id: 'msg_123461', type: 'agent.progress', channel: 'agent:agent_001',
    data: { agentId: 'agent_001', prpId: 'prp_789012', progress: 45, currentTask: 'Implementing JWT middleware', completedTasks: ['Setup authentication routes', 'Configure JWT library'], remainingTasks: ['Implement refresh token logic', 'Add tests'] },
  },
];

describe('PRP API document examples', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ heartbeatIntervalMs: 3000 });
  });
  afterAll(() => gw.close());

  it('connection example: Authorization header -> connection.established {connectionId, serverVersion, features}', async () => {
    // As in the document: new WebSocket(url, { headers: { 'Authorization': 'Bearer <jwt>' } }).
    const client = new TestClient(`${gw.ws}/v1/ws/prps`, { headers: { Authorization: `Bearer ${await gw.token({ sub: 'usr_123456' })}` } });
    const est = await client.nextType('connection.established');
    expect(client.messages[0]).toBe(est);
    expectPrpEnvelope(est);
    expect(Object.keys(est.data).sort()).toEqual(['connectionId', 'features', 'serverVersion']);
    expect(est.data.connectionId).toMatch(/^conn_/);
    expect(est.data.serverVersion).toMatch(/^\d+\.\d+\.\d+/);
    expect(est.data.features).toEqual(expect.arrayContaining(['subscribe', 'unsubscribe', 'heartbeat']));
    await client.close();
  });

  it('subscribe, unsubscribe and ping examples, verbatim, get the documented answers', async () => {
    const client = await connectPrp(gw, { token: await gw.token({ sub: 'usr_123456', channels: ['project:proj_123456', 'agent:agent_001', 'prp:prp_789012'] }) });
    client.sendRaw(SUBSCRIBE);
    const confirmed = await client.next((m) => m.replyTo === 'client_msg_001');
    expectPrpEnvelope(confirmed);
    expect(confirmed.type).toBe('subscription.confirmed');
    expect(confirmed.data.subscribedChannels).toEqual(['project:proj_123456', 'agent:agent_001', 'prp:prp_789012']);

    client.sendRaw(UNSUBSCRIBE);
    const unsub = await client.next((m) => m.replyTo === 'client_msg_002');
    expectPrpEnvelope(unsub);
    expect(unsub).toMatchObject({ type: 'unsubscription.confirmed', data: { unsubscribedChannels: ['agent:agent_001'] } });

    client.sendRaw(PING);
    const pong = await client.next((m) => m.replyTo === 'client_msg_003');
    expectPrpEnvelope(pong);
    expect(pong.type).toBe('pong');
    expect(pong.id).not.toBe('client_msg_003');
    expect(client.messages.filter((m) => m.type === 'error')).toEqual([]);
    await client.close();
  });

  it('error example: INVALID_CHANNEL for invalid:channel with details {requestId, action}', async () => {
    const client = await connectPrp(gw);
    client.send({ id: 'client_msg_004', action: 'subscribe', payload: { channels: ['invalid:channel'] } });
    const err = await client.next((m) => m.type === 'error');
    expectPrpEnvelope(err);
    expect(err.data.code).toBe(ErrorCode.INVALID_CHANNEL);
    expect(err.data.message).toBe("Channel 'invalid:channel' does not exist");
    expect(err.data.details).toMatchObject({ requestId: 'client_msg_004', action: 'subscribe' });
    await client.close();
  });

  it('event examples arrive as {id, type, timestamp, data} with the documented data', async () => {
    const client = await connectPrp(gw);
    await client.request('subscribe', { channels: ['project:proj_123456', 'prp:prp_789012', 'agent:agent_001'] });
    for (const ev of EVENTS) {
      const res = await http(gw, '/v1/publish', { body: { id: ev.id, channel: ev.channel, type: ev.type, data: ev.data } });
      expect(res.status).toBe(200);
    }
    for (const ev of EVENTS) {
      const got = await client.next((m) => m.id === ev.id);
      expectPrpEnvelope(got);
      expect(got.type).toBe(ev.type);
      expect(got.data).toEqual(ev.data);
      expect(got.channel).toBe(ev.channel);
    }
    await client.close();
  });

  it('heartbeat example: {type: heartbeat, data: {serverTime}}', async () => {
    const client = await connectPrp(gw);
    const hb = await client.nextType('heartbeat', 10_000);
    expectPrpEnvelope(hb);
    expect(Object.keys(hb.data)).toEqual(['serverTime']);
    expect(new Date(hb.data.serverTime).toISOString()).toBe(hb.data.serverTime);
    await client.close();
  });

  it("the document's reference client works against the gateway", async () => {
    const token = await gw.token({ sub: 'usr_123456', channels: ['project:*', 'agent:agent_001', 'prp:*'] });
    const client = new PRPWebSocketClient({ url: `${gw.ws}/v1/ws/prps`, token, reconnect: false });
    const all: Msg[] = [];
    const created: Msg[] = [];
    const progress: Msg[] = [];
    const errors: Msg[] = [];
    // Awaits a message dispatched to the '*' handlers (seen already or later).
    const waiters: { pred: (m: Msg) => boolean; resolve: (m: Msg) => void }[] = [];
    const seen = (pred: (m: Msg) => boolean): Promise<Msg> => {
      const hit = all.find(pred);
      return hit ? Promise.resolve(hit) : new Promise((resolve) => waiters.push({ pred, resolve }));
    };
    client.on('*', (m) => {
      all.push(m);
      for (const w of waiters.splice(0)) {
        if (w.pred(m)) w.resolve(m);
        else waiters.push(w);
      }
    });
    client.on('prp.created', (m) => created.push(m));
    client.on('agent.progress', (m) => progress.push(m));
    client.on('error', (m) => errors.push(m));
    await client.connect();
    client.subscribe('project:proj_123456');
    client.subscribe(['project:proj_789012', 'agent:agent_001', 'prp:prp_123456']);
    const first = await seen((m) => m.type === 'subscription.confirmed' && m.data.subscribedChannels.length === 1);
    expect(first.data.subscribedChannels).toEqual(['project:proj_123456']);
    const second = await seen((m) => m.type === 'subscription.confirmed' && m.data.subscribedChannels.length === 3);
    expect(second.data.subscribedChannels).toEqual(['project:proj_789012', 'agent:agent_001', 'prp:prp_123456']);
    await http(gw, '/v1/publish', { body: { channel: 'project:proj_123456', type: 'prp.created', data: EVENTS[0]!.data } });
    await http(gw, '/v1/publish', { body: { channel: 'agent:agent_001', type: 'agent.progress', data: EVENTS[5]!.data } });
    await seen((m) => m.type === 'prp.created');
    await seen((m) => m.type === 'agent.progress');
    expect(created[0]!.data).toEqual(EVENTS[0]!.data);
    expect(progress[0]!.data.progress).toBe(45);
    client.unsubscribe('agent:agent_001');
    expect((await seen((m) => m.type === 'unsubscription.confirmed')).data.unsubscribedChannels).toEqual(['agent:agent_001']);
    client.subscribe('invalid:channel');
    await seen((m) => m.type === 'error');
    // handleError passes message.data, then the generic dispatch passes the whole message.
    expect(errors.map((e) => e.code ?? e.data?.code)).toEqual([ErrorCode.INVALID_CHANNEL, ErrorCode.INVALID_CHANNEL]);
    // Every message the client saw has what its handleMessage relies on.
    for (const m of all) expectPrpEnvelope(m);
    expect(all[0]!.type).toBe('connection.established');
    client.disconnect();
  });
});

// ---------------------------------------------------------------------------------------------
// The document's "JavaScript/TypeScript Full Implementation", with only what strict TypeScript
// needs (types, `ws` import, no console output) and reconnect off. Logic untouched.

interface ServerMessage {
  id: string;
  type: string;
  timestamp: string;
  data: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  metadata?: { version: string; source: string };
}
interface ClientMessage {
  id?: string;
  action: string;
  payload?: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}
interface WebSocketConfig {
  url: string;
  token: string;
  reconnect: boolean;
  reconnectInterval: number;
  maxReconnectAttempts: number;
}
type Handler = (message: any) => void; // eslint-disable-line @typescript-eslint/no-explicit-any

class PRPWebSocketClient {
  private ws: WebSocket | null = null;
  private config: WebSocketConfig;
  private reconnectAttempts = 0;
  private subscriptions = new Set<string>();
  private messageHandlers = new Map<string, Handler[]>();
  private messageQueue: ClientMessage[] = [];
  private isConnected = false;
  private heartbeatInterval: NodeJS.Timeout | null = null;

  constructor(config: Partial<WebSocketConfig>) {
    this.config = { url: 'wss://api.prp.dev/v1/ws/prps', token: '', reconnect: true, reconnectInterval: 1000, maxReconnectAttempts: 5, ...config };
  }

  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      try {
        this.ws = new WebSocket(this.config.url, { headers: { Authorization: `Bearer ${this.config.token}` } });
        this.ws.on('open', () => {
          this.isConnected = true;
          this.reconnectAttempts = 0;
          this.flushMessageQueue();
          this.startHeartbeat();
          resolve();
        });
        this.ws.on('message', (data: Buffer) => {
          try {
            const message = JSON.parse(data.toString()) as ServerMessage;
            this.handleMessage(message);
          } catch {
            // "Failed to parse message"
          }
        });
        this.ws.on('error', (error) => reject(error));
        this.ws.on('close', () => {
          this.isConnected = false;
          this.stopHeartbeat();
          if (this.config.reconnect && this.reconnectAttempts < this.config.maxReconnectAttempts) this.scheduleReconnect();
        });
      } catch (error) {
        reject(error);
      }
    });
  }

  private handleMessage(message: ServerMessage) {
    switch (message.type) {
      case 'connection.established':
        this.resubscribe();
        break;
      case 'heartbeat':
        break;
      case 'error':
        this.handleError(message.data);
        break;
      case 'token_expired':
        this.handleTokenExpired();
        break;
    }
    const handlers = this.messageHandlers.get(message.type) || [];
    handlers.forEach((handler) => handler(message));
    const wildcardHandlers = this.messageHandlers.get('*') || [];
    wildcardHandlers.forEach((handler) => handler(message));
  }

  on(eventType: string, handler: (message: ServerMessage) => void) {
    if (!this.messageHandlers.has(eventType)) this.messageHandlers.set(eventType, []);
    this.messageHandlers.get(eventType)!.push(handler);
  }

  subscribe(channels: string | string[]) {
    const channelArray = Array.isArray(channels) ? channels : [channels];
    channelArray.forEach((channel) => this.subscriptions.add(channel));
    this.send({ action: 'subscribe', payload: { channels: channelArray } });
  }

  unsubscribe(channels: string | string[]) {
    const channelArray = Array.isArray(channels) ? channels : [channels];
    channelArray.forEach((channel) => this.subscriptions.delete(channel));
    this.send({ action: 'unsubscribe', payload: { channels: channelArray } });
  }

  private send(message: ClientMessage) {
    if (!message.id) message.id = this.generateMessageId();
    if (this.isConnected && this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
    else this.messageQueue.push(message);
  }

  private flushMessageQueue() {
    while (this.messageQueue.length > 0) {
      const message = this.messageQueue.shift();
      if (message) this.send(message);
    }
  }

  private resubscribe() {
    if (this.subscriptions.size > 0) this.send({ action: 'subscribe', payload: { channels: Array.from(this.subscriptions) } });
  }

  private startHeartbeat() {
    this.heartbeatInterval = setInterval(() => this.send({ action: 'ping' }), 30000);
  }

  private stopHeartbeat() {
    if (this.heartbeatInterval) {
      clearInterval(this.heartbeatInterval);
      this.heartbeatInterval = null;
    }
  }

  private scheduleReconnect() {
    this.reconnectAttempts++;
    const delay = this.config.reconnectInterval * Math.pow(2, this.reconnectAttempts - 1);
    setTimeout(() => {
      this.connect().catch(() => {});
    }, delay);
  }

  private handleError(error: unknown) {
    const errorHandlers = this.messageHandlers.get('error') || [];
    errorHandlers.forEach((handler) => handler(error));
  }

  private handleTokenExpired() {
    this.disconnect();
    const handlers = this.messageHandlers.get('token_expired') || [];
    handlers.forEach((handler) => handler(undefined));
  }

  disconnect() {
    this.config.reconnect = false;
    if (this.ws) {
      this.ws.close();
      this.ws = null;
    }
  }

  private generateMessageId(): string {
    return `client_${Date.now()}_${Math.random().toString(36).substr(2, 9)}`;
  }
}
