export * from './errors.js';
export * from './channels.js';
export * from './model.js';
export * from './codec.js';
export * from './decode-util.js';
export * from './prp.js';
export * from './prd.js';

/** Protocol version spoken by this package (reported as `serverVersion` by the gateway). */
export const PROTOCOL_VERSION = '1.0.0';
/** Subprotocols a client may offer: the encoding to receive in, and `bearer.<jwt>` to carry a token. */
export const SUBPROTOCOL_JSON = 'signalbox.json';
export const SUBPROTOCOL_MSGPACK = 'signalbox.msgpack';
export const SUBPROTOCOL_BEARER_PREFIX = 'bearer.';
