#!/usr/bin/env node
// PRP event publisher: a backend publishes a PRP's lifecycle over the HTTP API, and a dashboard
// written against the PRP WebSocket API document's reference client (`PRPWebSocketClient`, the same
// handlers) shows it live. The dashboard subscribes to the project; every event arrives once, in
// the order the backend published it.
//
//   node examples/prp-events.mjs
import { PRPWebSocketClient } from '@signalbox/client/node';
import { next, run, setup } from './lib/setup.mjs';

const PROJECT = 'project:proj_123456';

run(async () => {
  const gw = await setup();

  // ---- the dashboard (any browser or Node client) ----
  const client = new PRPWebSocketClient({ url: gw.wsUrl(), token: await gw.token('usr_dashboard', [PROJECT]) });
  client.on('prp.created', (m) => console.log(`[dashboard] PRP created: ${m.data.id} "${m.data.name}"`));
  client.on('agent.assigned', (m) => console.log(`[dashboard] ${m.data.agentId} assigned to ${m.data.prpId} (${m.data.priority})`));
  client.on('agent.progress', (m) => console.log(`[dashboard] ${m.data.agentId} on ${m.data.prpId}: ${m.data.progress}% ${m.data.currentTask ?? ''}`));
  client.on('prp.status_changed', (m) => console.log(`[dashboard] PRP ${m.data.id} status changed from ${m.data.previousStatus} to ${m.data.newStatus}`));
  client.on('error', (err) => console.error('[dashboard] error:', err.code, err.message));
  // Count what arrives on the project, and check it is in stream order (offsets only grow).
  let received = 0;
  let lastOffset = 0;
  client.on('*', (m) => {
    if (m.channel !== PROJECT || typeof m.offset !== 'number') return;
    if (m.offset <= lastOffset) throw new Error(`out of order: offset ${m.offset} after ${lastOffset}`);
    lastOffset = m.offset;
    received++;
  });
  await client.connect();
  const project = client.subscribe(PROJECT);
  await next(project, 'subscribed');
  const done = next(client, 'prp.status_changed', (m) => m.data.newStatus === 'completed');

  // ---- the backend: POST /v1/publish with the API key ----
  const prp = 'prp_789012';
  // The id is the idempotency key: a backend that retries a request after a timeout publishes once.
  // Unique per run, so running the example again within the dedup window publishes again.
  const runId = Date.now().toString(36);
  let step = 0;
  const publish = (type, data) => gw.publish({ channel: PROJECT, type, data, id: `${prp}-${runId}-step-${++step}` });
  await publish('prp.created', {
    id: prp, projectId: 'proj_123456', name: 'Implement Authentication', description: 'JWT login and refresh', priority: 'high',
    status: 'draft', createdBy: 'usr_backend', createdAt: new Date().toISOString(),
  });
  await publish('agent.assigned', { agentId: 'agent_001', prpId: prp, priority: 'high' });
  await publish('prp.status_changed', { id: prp, previousStatus: 'draft', newStatus: 'in_progress', changedBy: 'agent_001' });
  for (const [progress, currentTask] of [[25, 'schema'], [50, 'token issuing'], [75, 'refresh flow'], [100, 'done']]) {
    await publish('agent.progress', { agentId: 'agent_001', prpId: prp, progress, currentTask });
  }
  const ack = await publish('prp.status_changed', { id: prp, previousStatus: 'in_progress', newStatus: 'completed', changedBy: 'agent_001' });

  await done;
  console.log(`[backend] last publication stored at offset ${ack.offset} of ${PROJECT}`);
  console.log(`[dashboard] received all ${received} events in order`);
  client.disconnect();
  await gw.close();
});
