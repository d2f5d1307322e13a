/**
 * The one-script-tag bundle: the SDK's client and the in-page source together, so a page needs
 * nothing else (`window.SignalboxSession.SignalboxClient`, `window.SignalboxSession.startSession`).
 */
export { SignalboxClient } from '@signalbox/client';
export * from './index.js';
