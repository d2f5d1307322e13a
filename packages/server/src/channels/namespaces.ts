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
  /** May clients publish here at all (they also need a `publish` or `handle` grant for the channel)? The HTTP API always may. */
  clientPublish: boolean;
  /**
   * Event types only the channel's producer may publish: clients holding a `handle` grant for the
   * channel (the HTTP API always may). Exact types or prefixes ending in `.*` (`agent.*`). A
   * viewer can then never speak as the producer.
   */
  producerTypes?: string[];
  /** Track who is subscribed (presence list + join/leave events). Implied by type `presence`. */
  presence: boolean;
  /** Most subscribers one channel may have on this node; 0 = unlimited. */
  maxSubscribers: number;
  /** Is the bare namespace (`metrics`) itself a channel? */
  allowBare: boolean;
  /** Are `namespace:id` channels allowed? */
  allowIds: boolean;
  /**
   * `all` (default): every subscriber gets every publication. `latest`: latest-wins: a subscriber
   * whose socket has fallen behind gets, once it drains, only the newest publication per key
   * (event type and `data[latestBy]`), not the backlog. For values where only the newest matters:
   * metrics, positions, status.
   */
  delivery?: 'all' | 'latest';
  /** With `delivery: latest`: the data field whose value (with the event type) is the key. Default `key`. */
  latestBy?: string;
  /**
   * May publications append to an earlier message (`appendTo`, docs/protocol.md "Appends")? Default
   * false: an `appendTo` is refused (`PERMISSION_DENIED`) and the broker keeps no append bookkeeping
   * for the namespace's channels (no message index, history counts publications), which is cheaper
   * on every publication. On for `agent` in the default table.
   */
  appends?: boolean;
  /**
   * Grants of `{name}:{id}` are those of `{grantsFrom}:{id}`: a token that may read (publish to)
   * `doc:x` may read (publish to) `awareness:x`. Absent: the channel's own name.
   */
  grantsFrom?: string;
}

const H = 3600_000;
/** The default namespace table (override with `namespaces` in the config file). */
export const DEFAULT_NAMESPACES: NamespaceConfig[] = [
  ns('project', 'private', 1000, H, false),
  ns('prp', 'private', 500, H, false),
  // What an agent says about its run is the agent's alone; users publish their own messages (`chat.message`).
  // Streamed answers are messages with appends (docs/protocol.md, "Appends").
  { ...ns('agent', 'private', 1000, H, true), producerTypes: ['agent.*', 'chat.token', 'chat.done'], appends: true },
  // What a page reports about itself is the page's alone, and so is the audit of the commands it ran
  // (`debug.command`, `debug.result`). Presence: the page streams only while a viewer is subscribed.
  { ...ns('session', 'private', 1000, 10 * 60_000, true), presence: true, producerTypes: ['console.*', 'network.*', 'page.*', 'error.*', 'debug.command', 'debug.result'] },
  ns('user', 'private', 200, H, false),
  // Presence out of the box: who is in a room, with join/leave on the room's own stream.
  ns('room', 'presence', 100, H, true),
  // Live metrics: the gateway's own (`metrics`, one `metrics.node` per node per interval, keyed by
  // node) and applications' (`metrics:{name}`, published with the HTTP API): latest-wins, so a
  // dashboard that falls behind gets the newest sample of each series, never a backlog.
  { ...ns('metrics', 'public', 0, 0, false), allowBare: true, delivery: 'latest', latestBy: 'node' },
  // Yjs documents (docs/collaborative-editing.md): `yjs.update` publications carry binary Yjs
  // updates, in order and recoverable; the gateway compacts them into a snapshot so history stays
  // bounded. Presence: who has the document open.
  ns('doc', 'presence', 100_000, 30 * 24 * H, true),
  // Awareness (cursors, names, selections) of `doc:{id}`: ephemeral, never in history, the latest
  // state per Yjs client, readable and writable by whoever may read and write the document.
  { ...ns('awareness', 'private', 0, 0, true), grantsFrom: 'doc', delivery: 'latest', latestBy: 'client' },
];

function ns(name: string, type: NamespaceType, historySize: number, historyTtlMs: number, clientPublish: boolean): NamespaceConfig {
  return { name, type, historySize, historyTtlMs, clientPublish, producerTypes: [], presence: type === 'presence', maxSubscribers: 0, allowBare: false, allowIds: true };
}

/** Compiled `producerTypes`: exact types, and prefixes (from `agent.*`). */
class TypeSet {
  private readonly exact: Set<string>;
  private readonly prefixes: string[];
  constructor(patterns: readonly string[]) {
    this.exact = new Set(patterns.filter((p) => !p.endsWith('*')));
    this.prefixes = patterns.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1));
  }
  has(type: string): boolean {
    return this.exact.has(type) || this.prefixes.some((p) => type.startsWith(p));
  }
}

export interface ResolvedChannel {
  name: string;
  namespace: NamespaceConfig;
  id: string | null;
}

export type ChannelCheck = { ok: true; channel: ResolvedChannel } | { ok: false; code: ErrorCode; message: string };

export class NamespaceTable {
  private readonly byName: Map<string, NamespaceConfig>;
  private readonly producerTypes: Map<string, TypeSet>;

  constructor(readonly namespaces: NamespaceConfig[]) {
    this.byName = new Map(namespaces.map((n) => [n.name, n]));
    this.producerTypes = new Map(namespaces.filter((n) => (n.producerTypes?.length ?? 0) > 0).map((n) => [n.name, new TypeSet(n.producerTypes!)]));
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
    return creds.channels.matches(grantName(ch));
  }

  /** Is `type` reserved on this channel for its producer (a `handle` grant)? */
  isProducerType(ch: ResolvedChannel, type: string): boolean {
    return this.producerTypes.get(ch.namespace.name)?.has(type) ?? false;
  }

  /**
   * May these credentials publish `type` to the channel over WebSocket? The namespace must allow
   * client publishing, the token must grant the channel in `publish` (or `handle`: a producer
   * publishes to what it produces), and a reserved producer type needs `handle`.
   */
  publishRefusal(creds: Credentials, ch: ResolvedChannel, type: string): string | null {
    if (!ch.namespace.clientPublish) return `Clients may not publish to namespace '${ch.namespace.name}'`;
    const granted = grantName(ch);
    const producer = creds.handle.matches(granted);
    if (this.isProducerType(ch, type) && !producer) {
      return `Event type '${type}' on channel '${ch.name}' is reserved for the channel's producer (a \`handle\` grant)`;
    }
    if (!producer && !creds.publish.matches(granted)) return `Token does not grant publishing to channel '${ch.name}' (\`publish\` claim)`;
    return null;
  }

  /** Resolve and authorize in one step, with the error to send. `type` is the event type of a publish. */
  check(creds: Credentials, name: unknown, op: 'read'): ChannelCheck;
  check(creds: Credentials, name: unknown, op: 'publish', type: string): ChannelCheck;
  check(creds: Credentials, name: unknown, op: 'read' | 'publish', type?: string): ChannelCheck {
    const r = this.resolve(name);
    if (!r.ok) return r;
    const refusal = op === 'publish'
      ? this.publishRefusal(creds, r.channel, type!)
      : this.canRead(creds, r.channel) ? null : `Token does not grant channel '${r.channel.name}'`;
    if (refusal !== null) return { ok: false, code: ErrorCode.PERMISSION_DENIED, message: refusal };
    return r;
  }
}

/** The channel name grants are matched against: `{grantsFrom}:{id}` when the namespace borrows another's grants. */
function grantName(ch: ResolvedChannel): string {
  const from = ch.namespace.grantsFrom;
  return from === undefined ? ch.name : ch.id === null ? from : `${from}:${ch.id}`;
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
    const known = new Set(['name', 'type', 'historySize', 'historyTtlMs', 'clientPublish', 'producerTypes', 'presence', 'maxSubscribers', 'allowBare', 'allowIds', 'delivery', 'latestBy', 'appends', 'grantsFrom']);
    for (const k of Object.keys(e)) if (!known.has(k)) fail(`${name}: unknown field "${k}"`);
    const historySize = int('historySize', 100);
    if (historySize > 100_000) fail(`${name}.historySize must be at most 100000`);
    const delivery = e.delivery ?? 'all';
    if (delivery !== 'all' && delivery !== 'latest') fail(`${name}.delivery must be "all" or "latest"`);
    const latestBy = e.latestBy ?? 'key';
    if (typeof latestBy !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(latestBy)) fail(`${name}.latestBy must be a data field name`);
    if (e.latestBy !== undefined && delivery !== 'latest') fail(`${name}.latestBy needs delivery "latest"`);
    const appends = bool('appends', false);
    if (appends && delivery === 'latest') fail(`${name}.appends needs delivery "all" (a latest-wins subscriber skips publications, appends among them)`);
    return {
      name,
      type: type as NamespaceType,
      historySize,
      historyTtlMs: int('historyTtlMs', 3600_000),
      clientPublish: bool('clientPublish', false),
      producerTypes: typePatterns(e.producerTypes, `${name}.producerTypes`, fail),
      presence: bool('presence', type === 'presence'),
      maxSubscribers: int('maxSubscribers', 0),
      allowBare: bool('allowBare', false),
      allowIds: bool('allowIds', true),
      ...(delivery === 'latest' ? { delivery: 'latest' as const, latestBy: latestBy as string } : {}),
      ...(appends ? { appends: true } : {}),
      ...(e.grantsFrom === undefined ? {} : { grantsFrom: grantsFromName(e.grantsFrom, name, fail) }),
    };
  });
}

const TYPE_PATTERN_RE = /^(?:[A-Za-z][A-Za-z0-9_.:-]{0,63}|[A-Za-z][A-Za-z0-9_.:-]{0,62}\*)$/;

function typePatterns(v: unknown, what: string, fail: (why: string) => never): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > 100 || !v.every((t) => typeof t === 'string' && TYPE_PATTERN_RE.test(t))) {
    return fail(`${what} must be an array of event types or prefixes ending in * (e.g. "agent.*")`);
  }
  return v as string[];
}

function grantsFromName(v: unknown, name: string, fail: (why: string) => never): string {
  if (typeof v !== 'string' || !NS_NAME_RE.test(v)) return fail(`${name}.grantsFrom must be a namespace name`);
  return v;
}
