export * from './errors.js';
export * from './channels.js';
export * from './model.js';
export * from './codec.js';
export * from './decode-util.js';
export * from './prp.js';
export * from './prd.js';

/** Subprotocols a client may offer: the encoding to receive in, and `bearer.<jwt>` to carry a token. */
export const SUBPROTOCOL_JSON = 'signalbox.json';
export const SUBPROTOCOL_MSGPACK = 'signalbox.msgpack';
export const SUBPROTOCOL_BEARER_PREFIX = 'bearer.';
