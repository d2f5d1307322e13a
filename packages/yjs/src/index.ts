/**
 * `@signalbox/yjs`: Yjs documents on Signalbox channels. See docs/collaborative-editing.md.
 */
export { SignalboxProvider, awarenessChannel, UPDATE_TYPE, SNAPSHOT_TYPE, AWARENESS_TYPE } from './provider.js';
export type { ProviderClient, ProviderStatus, ProviderSubscription, SignalboxProviderOptions, SyncProgress } from './provider.js';
