/**
 * `@signalbox/client/node`: the same client with `ws` injected, for Node (20 has no global
 * WebSocket). The token travels in an `Authorization: Bearer` header by default, as the PRP API
 * document does it. Kept out of the browser entry so bundlers never see `ws`.
 */
import WebSocket from 'ws';
import { SignalboxClient as BaseClient, type SignalboxClientOptions } from './client.js';
import type { PrpEventData } from './events.js';
import type { WebSocketConstructor } from './transport.js';

export * from './index.js';

/** `ws`'s WebSocket as the client's constructor type (checked structurally here, once). */
export const NodeWebSocket: WebSocketConstructor = WebSocket;

/** `SignalboxClient` for Node: `WebSocket` defaults to `ws`, `tokenTransport` to `header`. */
export class SignalboxClient<E extends object = PrpEventData> extends BaseClient<E> {
  constructor(options: SignalboxClientOptions = {}) {
    super({ WebSocket: NodeWebSocket, tokenTransport: 'header', ...stripUndefined(options) });
  }
}

/** The PRP API document's reference client name, for Node. */
export { SignalboxClient as PRPWebSocketClient };

function stripUndefined(options: SignalboxClientOptions): SignalboxClientOptions {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as SignalboxClientOptions;
}
