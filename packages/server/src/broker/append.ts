/**
 * What both brokers share about appends: who may append to a message (its publisher's scope), and
 * the refusals, as the gateway reports them. The fold rule itself is `applyAppend` in
 * @signalbox/protocol (clients fold live appends with the same function).
 */
import { ErrorCode, type Publisher } from '@signalbox/protocol';
import { GatewayError } from '../errors.js';

/**
 * The identity an append must share with its message: over WebSocket the token subject (not the
 * connection: a producer that reconnects goes on appending), over HTTP the API key and the `as`
 * subject, for the gateway the service. The kind comes first, so no subject can pass for a key.
 */
export function publisherScope(p: Publisher | undefined): string {
  if (!p) return '-';
  switch (p.via) {
    case 'ws': return `ws|${p.sub.length}:${p.sub}`;
    case 'http': return `http|${p.key.length}:${p.key}|${p.sub ?? ''}`;
    case 'gateway': return `gateway|${p.service}`;
  }
}

/** Why an append was refused: no such retained message, or another publisher's. */
export type AppendRefusal = 'not_found' | 'other_publisher';

export function appendRefused(why: AppendRefusal, channel: string, appendTo: string): GatewayError {
  return why === 'not_found'
    ? new GatewayError(ErrorCode.APPEND_TARGET_NOT_FOUND, `No message '${appendTo.slice(0, 128)}' of this publisher is retained on this channel to append to`, { channel, appendTo })
    : new GatewayError(ErrorCode.APPEND_NOT_ALLOWED, `Message '${appendTo.slice(0, 128)}' was published by another publisher: only its publisher may append to it`, { channel, appendTo });
}
