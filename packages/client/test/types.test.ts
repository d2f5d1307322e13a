/**
 * Compile-time checks (run by `tsc -p tsconfig.test.json`), with a runtime test so vitest counts them:
 * both WebSocket implementations fit the injectable constructor type, and handler types follow the
 * PRP API document's events.
 */
import { expect, expectTypeOf, it } from 'vitest';
import type WsWebSocket from 'ws';
import { SignalboxClient as NodeClient } from '../src/node.js';
import type { AgentProgressData, PublicationMessage, SignalboxError, StateChange, WebSocketConstructor } from '../src/index.js';

// The browser's WebSocket (DOM lib) and ws's both satisfy the injectable constructor type.
type BrowserFits = typeof WebSocket extends WebSocketConstructor ? true : false;
type WsFits = typeof WsWebSocket extends WebSocketConstructor ? true : false;
const browserFits: BrowserFits = true;
const wsFits: WsFits = true;

it('types the documented events, the client events, and custom event maps', () => {
  expect(browserFits && wsFits).toBe(true);
  const client = new NodeClient({ url: 'ws://127.0.0.1:1/v1/ws/prps' });
  client.on('agent.progress', (m) => {
    expectTypeOf(m).toEqualTypeOf<PublicationMessage<AgentProgressData>>();
  });
  client.on('error', (e) => { expectTypeOf(e).toEqualTypeOf<SignalboxError>(); });
  client.on('$state', (c) => { expectTypeOf(c).toEqualTypeOf<StateChange>(); });
  client.on('some.custom_event', (m) => { expectTypeOf(m.data).toBeUnknown(); });

  interface ChatEvents { 'chat.message': { text: string } }
  const chat = new NodeClient<ChatEvents>({ url: 'ws://127.0.0.1:1/ws' });
  chat.on('chat.message', (m) => { expectTypeOf(m.data.text).toBeString(); });
  expect(chat.state).toBe('disconnected');
});
