/**
 * `@signalbox/session`: session debugging on Signalbox channels. This entry is browser-safe (the
 * in-page source); the CDP bridge is in `@signalbox/session/node`.
 */
export { startSession } from './page.js';
export type { CaptureOptions, CommandOptions, PageSession, StartSessionOptions } from './page.js';
export type { BadgeOptions } from './badge.js';
export { Redactor, REDACTED, ALWAYS_REDACTED_HEADERS, DEFAULT_REDACTED_PARAMS } from './redact.js';
export type { RedactOptions } from './redact.js';
export { serialize, serializeAll, DEFAULT_SERIALIZE_LIMITS } from './serialize.js';
export type { SerializeLimits, Serialized } from './serialize.js';
export type { SessionClient, StreamOptions } from './stream.js';
export * from './events.js';
