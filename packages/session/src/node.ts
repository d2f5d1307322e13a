/**
 * `@signalbox/session/node`: the CDP bridge (Node only: playwright-core, ws), plus everything of
 * the browser entry (event types, redaction, serialization).
 */
export * from './index.js';
export { attachBridge } from './bridge.js';
export type { AttachBridgeOptions, Bridge, BridgeCommandOptions, BridgeStats, ScreencastOptions } from './bridge.js';
export { BinaryPublishWebSocket } from './binary-socket.js';
