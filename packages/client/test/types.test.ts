/**
 * Compile-time checks (run by `tsc -p tsconfig.test.json`), with a runtime test so vitest counts them:
 * both WebSocket implementations fit the injectable constructor type, handler types follow the
 * PRP API document's events when given its map (`@signalbox/client/prp`), and none is the default.
 */
import { expect, expectTypeOf, it } from 'vitest';
import type WsWebSocket from 'ws';
import { SignalboxClient as NodeClient, PRPWebSocketClient } from '../src/node.js';
import type { PublicationMessage, SignalboxError, StateChange, WebSocketConstructor } from '../src/index.js';
import type { AgentProgressData, PrpEventData } from '../src/prp.js';

// The browser's WebSocket (DOM lib) and ws's both satisfy the injectable constructor type.
type BrowserFits = typeof WebSocket extends WebSocketConstructor ? true : false;
type WsFits = typeof WsWebSocket extends WebSocketConstructor ? true : false;
const browserFits: BrowserFits = true;
const wsFits: WsFits = true;

it('types the documented events, the client events, and custom event maps', () => {
  expect(browserFits && wsFits).toBe(true);
  const client = new NodeClient<PrpEventData>({ url: 'ws://127.0.0.1:1/v1/ws/prps' });
  client.on('agent.progress', (m) => {
    expectTypeOf(m).toEqualTypeOf<PublicationMessage<AgentProgressData>>();
  });
  client.on('error', (e) => { expectTypeOf(e).toEqualTypeOf<SignalboxError>(); });
  client.on('$state', (c) => { expectTypeOf(c).toEqualTypeOf<StateChange>(); });
  client.on('some.custom_event', (m) => { expectTypeOf(m.data).toBeUnknown(); });

  // The default event map is the SDK's own: no product's events, publications' data is unknown.
  const plain = new NodeClient({ url: 'ws://127.0.0.1:1/v1/ws/prps' });
  plain.on('agent.progress', (m) => { expectTypeOf(m.data).toBeUnknown(); });
  plain.on('heartbeat', (m) => { expectTypeOf(m.data.serverTime).toBeString(); });
  plain.on('$state', (c) => { expectTypeOf(c).toEqualTypeOf<StateChange>(); });

  interface ChatEvents { 'chat.message': { text: string } }
  const chat = new NodeClient<ChatEvents>({ url: 'ws://127.0.0.1:1/ws' });
  chat.on('chat.message', (m) => { expectTypeOf(m.data.text).toBeString(); });
  expect(chat.state).toBe('disconnected');
});

it("types the PRP document's reference client name for its events, and it is the same class", () => {
  const prp = new PRPWebSocketClient({ url: 'ws://127.0.0.1:1/v1/ws/prps' });
  prp.on('prp.status_changed', (m) => { expectTypeOf(m.data.newStatus).toEqualTypeOf<PrpEventData['prp.status_changed']['newStatus']>(); });
  expect(prp).toBeInstanceOf(NodeClient);
  expect(PRPWebSocketClient).toBe(NodeClient);
});
