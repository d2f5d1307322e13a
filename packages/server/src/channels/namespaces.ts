/**
 * The namespace table decides everything about a channel: whether it exists, who may read and
 * publish, how much history it keeps, whether it tracks presence.
 */
import { ErrorCode, parseChannel } from '@signalbox/protocol';
import type { Credentials } from '../auth/jwt.js';

export type NamespaceType = 'public' | 'private' | 'presence';

export interface NamespaceConfig {
  /** Namespace name: the part before `:` in a channel name. */
  name: string;
  /** public: any authenticated client; private: token `channels` must match (or `user:{sub}`); presence: private + presence. */
  type: NamespaceType;
  /** Publications retained for recovery and history; 0 = none. */
  historySize: number;
  /** History is kept this long after the channel's last publication. */
  historyTtlMs: number;
  /** May clients publish (with read access to the channel)? The HTTP API always may. */
  clientPublish: boolean;
  /** Track who is subscribed (presence list + join/leave events). Implied by type `presence`. */
  presence: boolean;
  /** Most subscribers one channel may have on this node; 0 = unlimited. */
  maxSubscribers: number;
  /** Is the bare namespace (`metrics`) itself a channel? */
  allowBare: boolean;
  /** Are `namespace:id` channels allowed? */
  allowIds: boolean;
}

const H = 3600_000;
/** The default namespace table (override with `namespaces` in the config file). */
export const DEFAULT_NAMESPACES: NamespaceConfig[] = [
  ns('project', 'private', 1000, H, false),
  ns('prp', 'private', 500, H, false),
  ns('agent', 'private', 1000, H, true),
  ns('session', 'private', 1000, 10 * 60_000, true),
  ns('user', 'private', 200, H, false),
  // Presence out of the box: who is in a room, with join/leave on the room's own stream.
  ns('room', 'presence', 100, H, true),
  { ...ns('metrics', 'public', 0, 0, false), allowBare: true },
];

function ns(name: string, type: NamespaceType, historySize: number, historyTtlMs: number, clientPublish: boolean): NamespaceConfig {
  return { name, type, historySize, historyTtlMs, clientPublish, presence: type === 'presence', maxSubscribers: 0, allowBare: false, allowIds: true };
}

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

const NS_NAME_RE = /^[a-z][a-z0-9_-]{0,31}$/;

/** Parses the config file's `namespaces` table; `fail` throws (the config layer's ConfigError). */
export function parseNamespaces(raw: unknown, fail: (why: string) => never): NamespaceConfig[] {
  if (!Array.isArray(raw) || raw.length === 0) fail('must be a non-empty array');
  const seen = new Set<string>();
  return (raw as unknown[]).map((entry, i) => {
    if (typeof entry !== 'object' || entry === null) fail(`entry ${i} must be an object`);
    const e = entry as Record<string, unknown>;
    const name = e.name;
    if (typeof name !== 'string' || !NS_NAME_RE.test(name)) return fail(`entry ${i}: name must match ${NS_NAME_RE}`);
    if (seen.has(name)) fail(`duplicate namespace "${name}"`);
    seen.add(name);
    const type = e.type ?? 'private';
    if (type !== 'public' && type !== 'private' && type !== 'presence') fail(`${name}.type must be public, private or presence`);
    const int = (k: string, def: number) => {
      const v = e[k] ?? def;
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(`${name}.${k} must be a non-negative integer`);
      return v as number;
    };
    const bool = (k: string, def: boolean) => {
      const v = e[k] ?? def;
      if (typeof v !== 'boolean') fail(`${name}.${k} must be true or false`);
      return v as boolean;
    };
    const known = new Set(['name', 'type', 'historySize', 'historyTtlMs', 'clientPublish', 'presence', 'maxSubscribers', 'allowBare', 'allowIds']);
    for (const k of Object.keys(e)) if (!known.has(k)) fail(`${name}: unknown field "${k}"`);
    const historySize = int('historySize', 100);
    if (historySize > 100_000) fail(`${name}.historySize must be at most 100000`);
    return {
      name,
      type: type as NamespaceType,
      historySize,
      historyTtlMs: int('historyTtlMs', 3600_000),
      clientPublish: bool('clientPublish', false),
      presence: bool('presence', type === 'presence'),
      maxSubscribers: int('maxSubscribers', 0),
      allowBare: bool('allowBare', false),
      allowIds: bool('allowIds', true),
    };
  });
}
