/**
 * The namespace table decides everything about a channel: whether it exists, who may read and
 * publish, how much history it keeps, whether it tracks presence.
 */
import { ErrorCode, parseChannel } from '@signalbox/protocol';
import type { Credentials } from '../auth/jwt.js';
import type { NamespaceConfig } from '../config.js';

export interface ResolvedChannel {
  name: string;
  namespace: NamespaceConfig;
  id: string | null;
}

export type ChannelCheck = { ok: true; channel: ResolvedChannel } | { ok: false; code: ErrorCode; message: string };

export class NamespaceTable {
  private readonly byName: Map<string, NamespaceConfig>;

  constructor(readonly namespaces: NamespaceConfig[]) {
    this.byName = new Map(namespaces.map((n) => [n.name, n]));
  }

  get(name: string): NamespaceConfig | undefined {
    return this.byName.get(name);
  }

  /** Grammar + namespace lookup. */
  resolve(name: unknown): ChannelCheck {
    const parsed = parseChannel(name);
    if (!parsed) {
      const shown = typeof name === 'string' ? name.slice(0, 64).replace(/[^\x20-\x7e]/g, '?') : String(typeof name);
      return { ok: false, code: ErrorCode.INVALID_CHANNEL, message: `Channel '${shown}' is not a valid channel name` };
    }
    const ns = this.byName.get(parsed.namespace);
    if (!ns || (parsed.id === null && !ns.allowBare) || (parsed.id !== null && !ns.allowIds)) {
      return { ok: false, code: ErrorCode.INVALID_CHANNEL, message: `Channel '${name as string}' does not exist` };
    }
    return { ok: true, channel: { name: name as string, namespace: ns, id: parsed.id } };
  }

  /** May these credentials read (subscribe, history, presence) the channel? */
  canRead(creds: Credentials, ch: ResolvedChannel): boolean {
    if (ch.namespace.type === 'public') return true;
    if (ch.namespace.name === 'user' && ch.id === creds.sub) return true;
    return creds.channels.matches(ch.name);
  }

  /** May these credentials publish to the channel over WebSocket? */
  canPublish(creds: Credentials, ch: ResolvedChannel): boolean {
    return ch.namespace.clientPublish && this.canRead(creds, ch);
  }

  /** Resolve and authorize in one step, with the error to send. */
  check(creds: Credentials, name: unknown, op: 'read' | 'publish'): ChannelCheck {
    const r = this.resolve(name);
    if (!r.ok) return r;
    if (op === 'publish' && !r.channel.namespace.clientPublish) {
      return { ok: false, code: ErrorCode.PERMISSION_DENIED, message: `Clients may not publish to namespace '${r.channel.namespace.name}'` };
    }
    if (!this.canRead(creds, r.channel)) {
      return { ok: false, code: ErrorCode.PERMISSION_DENIED, message: `Token does not grant channel '${r.channel.name}'` };
    }
    return r;
  }
}
