/**
 * `@signalbox/client/node`: the same client with `ws` injected, for Node (20 has no global
 * WebSocket). The token travels in an `Authorization: Bearer` header by default, as the PRP API
 * document does it. Kept out of the browser entry so bundlers never see `ws`.
 */
import WebSocket from 'ws';
import { SignalboxClient as BaseClient, type SignalboxClientOptions } from './client.js';
import type { PrpEventData } from './prp.js';
import type { WebSocketConstructor } from './transport.js';

export * from './index.js';

/** `ws`'s WebSocket as the client's constructor type (checked structurally here, once). */
export const NodeWebSocket: WebSocketConstructor = WebSocket;

/** `SignalboxClient` for Node: `WebSocket` defaults to `ws`, `tokenTransport` to `header`. */
export class SignalboxClient<E extends object = Record<never, never>> extends BaseClient<E> {
  constructor(options: SignalboxClientOptions = {}) {
    super({ WebSocket: NodeWebSocket, tokenTransport: 'header', ...stripUndefined(options) });
  }
}

/** The PRP API document's reference client name, for Node: `SignalboxClient` typed for `PrpEventData`. */
export const PRPWebSocketClient: new (options?: SignalboxClientOptions) => SignalboxClient<PrpEventData> = SignalboxClient;
/** An instance of {@link PRPWebSocketClient}. */
export type PRPWebSocketClient = SignalboxClient<PrpEventData>;

function stripUndefined(options: SignalboxClientOptions): SignalboxClientOptions {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as SignalboxClientOptions;
}
