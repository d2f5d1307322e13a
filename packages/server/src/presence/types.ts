/**
 * The PresenceStore seam: who is subscribed to a presence-enabled channel, across nodes.
 * Join/leave *events* travel as publications on the channel's own stream (types
 * `presence.joined` / `presence.left`), so they are ordered and recoverable like any other.
 */
import type { PresenceMember } from '@signalbox/protocol';

export interface PresenceStore {
  /** Connects, if the store needs to. */
  start?(): Promise<void>;
  /** Adds or refreshes a member; an entry not refreshed within `ttlMs` disappears (a dead node's members). */
  add(channel: string, member: PresenceMember, ttlMs: number): Promise<void>;
  remove(channel: string, clientId: string): Promise<void>;
  list(channel: string): Promise<PresenceMember[]>;
  close(): Promise<void>;
}
