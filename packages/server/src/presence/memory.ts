import type { PresenceMember } from '@signalbox/protocol';
import type { PresenceStore } from './types.js';

/** Presence for a single node: members live in this process. */
export class MemoryPresenceStore implements PresenceStore {
  private readonly channels = new Map<string, Map<string, { member: PresenceMember; expiresAt: number }>>();

  constructor(private readonly now: () => number = Date.now) {}

  async add(channel: string, member: PresenceMember, ttlMs: number): Promise<void> {
    let members = this.channels.get(channel);
    if (!members) this.channels.set(channel, (members = new Map()));
    members.set(member.clientId, { member, expiresAt: this.now() + ttlMs });
  }

  async remove(channel: string, clientId: string): Promise<void> {
    const members = this.channels.get(channel);
    if (!members) return;
    members.delete(clientId);
    if (members.size === 0) this.channels.delete(channel);
  }

  async list(channel: string): Promise<PresenceMember[]> {
    const members = this.channels.get(channel);
    if (!members) return [];
    const now = this.now();
    const out: PresenceMember[] = [];
    for (const [id, e] of members) {
      if (e.expiresAt <= now) members.delete(id);
      else out.push(e.member);
    }
    return out;
  }

  async close(): Promise<void> {
    this.channels.clear();
  }
}
