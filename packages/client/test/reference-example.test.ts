/**
 * The PRP API document's usage example (`main()` of its "JavaScript/TypeScript Full Implementation"),
 * run unchanged against SignalboxClient. The only substitution is where `PRPWebSocketClient` comes
 * from: here a subclass that points the default URL at this test's server.
 */
import { afterEach, expect, it, vi } from 'vitest';
import { SignalboxClient, type SignalboxClientOptions } from '../src/node.js';
import type { PrpEventData } from '../src/prp.js';
import { FakeServer, once } from './helpers/fake-server.js';

let server: FakeServer | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await server?.close();
});

it("runs the PRP API document's usage example line for line", async () => {
  server = await FakeServer.start();
  const url = server.url();
  const created: SignalboxClient<PrpEventData>[] = [];
  class PRPWebSocketClient extends SignalboxClient<PrpEventData> {
    constructor(config: SignalboxClientOptions) {
      super({ url, ...config });
      created.push(this);
    }
  }
  const refreshToken = async (): Promise<string> => 'your-refreshed-jwt-token';
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  const error = vi.spyOn(console, 'error').mockImplementation(() => {});

  // ---- From the PRP API document, unchanged -------------------------------------------------
  async function main() {
    const client = new PRPWebSocketClient({
      token: 'your-jwt-token',
      reconnect: true,
      maxReconnectAttempts: 10
    });

    // Register event handlers
    client.on('prp.created', (message) => {
      console.log('New PRP created:', message.data);
    });

    client.on('prp.updated', (message) => {
      console.log('PRP updated:', message.data);
    });

    client.on('prp.status_changed', (message) => {
      const { id, previousStatus, newStatus } = message.data;
      console.log(`PRP ${id} status changed from ${previousStatus} to ${newStatus}`);
    });

    client.on('agent.progress', (message) => {
      const { agentId, prpId, progress } = message.data;
      console.log(`Agent ${agentId} progress on PRP ${prpId}: ${progress}%`);
    });

    client.on('error', (error) => {
      console.error('Received error:', error);
    });

    client.on('token_expired', async () => {
      // Refresh token and reconnect
      const newToken = await refreshToken();
      client.config.token = newToken;
      await client.connect();
    });

    // Connect and subscribe
    await client.connect();

    // Subscribe to specific project
    client.subscribe('project:proj_123456');

    // Subscribe to multiple channels
    client.subscribe([
      'project:proj_789012',
      'agent:agent_001',
      'prp:prp_123456'
    ]);

    // Later, unsubscribe from a channel
    client.unsubscribe('agent:agent_001');
  }
  // ---- End of the document's example ----------------------------------------------------------

  const running = main();
  const conn = await server.accept();
  expect(conn.authorization).toBe('Bearer your-jwt-token');
  conn.establish();
  await running;
  const client = created[0]!;

  // What the server received, in the document's format.
  const s1 = await conn.next('subscribe');
  const s2 = await conn.next('subscribe');
  const u1 = await conn.next('unsubscribe');
  expect(s1.payload).toEqual({ channels: ['project:proj_123456'] });
  expect(s2.payload).toEqual({ channels: ['project:proj_789012', 'agent:agent_001', 'prp:prp_123456'] });
  expect(u1.payload).toEqual({ channels: ['agent:agent_001'] });
  conn.event('subscription.confirmed', { subscribedChannels: ['project:proj_123456'], channels: [{ channel: 'project:proj_123456', position: { epoch: 'e', offset: 0 } }] }, { replyTo: s1.id });
  conn.event('subscription.confirmed', { subscribedChannels: ['project:proj_789012', 'prp:prp_123456'], channels: [
    { channel: 'project:proj_789012', position: { epoch: 'e', offset: 0 } }, { channel: 'prp:prp_123456', position: { epoch: 'e', offset: 0 } }] }, { replyTo: s2.id });

  // The document's sample events, delivered on the subscribed channels.
  conn.publication('project:proj_123456', 'e', 1, 'prp.created', { id: 'prp_789012', projectId: 'proj_123456', name: 'Implement Authentication', status: 'pending', priority: 'high', createdBy: 'usr_123456', createdAt: '2024-01-15T10:00:00Z' });
  conn.publication('project:proj_123456', 'e', 2, 'prp.status_changed', { id: 'prp_789012', previousStatus: 'active', newStatus: 'completed', changedBy: 'agent_001' });
  conn.publication('prp:prp_123456', 'e', 1, 'agent.progress', { agentId: 'agent_001', prpId: 'prp_789012', progress: 45 });
  await once(client, 'agent.progress');
  expect(log.mock.calls).toEqual([
    ['New PRP created:', expect.objectContaining({ name: 'Implement Authentication' })],
    ['PRP prp_789012 status changed from active to completed'],
    ['Agent agent_001 progress on PRP prp_789012: 45%'],
  ]);

  // An error reaches the 'error' handler once, as an Error with the server's code.
  conn.event('error', { code: 'RATE_LIMITED', message: 'Too many messages', details: {} });
  await once(client, 'error');
  expect(error.mock.calls).toEqual([['Received error:', expect.objectContaining({ code: 'RATE_LIMITED', message: 'Too many messages' })]]);

  // token_expired: the example's handler sets config.token and calls connect(); ours turns that
  // into an in-band refresh, so the connection (and the subscriptions) stay up.
  conn.event('token_expired', { expiredAt: new Date().toISOString(), graceMs: 5000 });
  const refresh = await conn.next('refresh');
  expect(refresh.payload).toEqual({ token: 'your-refreshed-jwt-token' });
  expect(client.state).toBe('connected');
  client.disconnect();
});
