/**
 * The one Redis key layout of the gateway, for the broker and the presence store alike.
 *
 * These names are a storage format: data already in Redis and nodes of an older version read and
 * write them. Never change a byte of them (test/redis-keys.test.ts pins every name); a new key
 * gets a new suffix under the same hash tag. The layout is documented in docs/redis.md.
 */

/** Prefixes are configuration, but still must not carry hash-tag braces, glob characters or spaces. */
export const PREFIX_RE = /^[A-Za-z0-9_.:@=/-]{1,64}$/;

/** Default prefix of every key and topic (SIGNALBOX_REDIS_PREFIX). */
export const DEFAULT_PREFIX = 'signalbox';

/** Returns `prefix` (default {@link DEFAULT_PREFIX}) or throws a TypeError naming `owner`. */
export function checkPrefix(prefix: string | undefined, owner: string): string {
  const p = prefix ?? DEFAULT_PREFIX;
  if (!PREFIX_RE.test(p)) {
    throw new TypeError(`${owner}: prefix must match ${PREFIX_RE} (no braces, globs or spaces), got ${JSON.stringify(p)}`);
  }
  return p;
}

/**
 * Channel name -> hash tag content. Channel grammar forbids braces already; this escaping is
 * injective and keeps any other input (braces, glob characters, spaces, non-ASCII) out of the tag,
 * so no user input can pick a cluster slot or act as a pattern.
 */
export function escapeChannelTag(channel: string): string {
  return channel.replace(/[^A-Za-z0-9_.@=:-]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Key names of one channel: all share the `{<channel>}` hash tag, so one script may touch them all. */
export interface RedisChannelKeys {
  meta: string;
  stream: string;
  /** Prefix of idempotency result keys (`<idem><key>`). */
  idem: string;
  /**
   * Hash: the retained messages' index (for appends: publisher scope + id -> offset, id -> offset)
   * and each appended message's fold state (see scripts.ts).
   */
  msgs: string;
  /** List: the offsets of the retained messages (not appends), oldest first; its length is what `history.size` bounds. */
  order: string;
  /** Pub/sub topic (not a key, but named alike). */
  topic: string;
}

export function redisChannelKeys(prefix: string, channel: string): RedisChannelKeys {
  const base = `${prefix}:{${escapeChannelTag(channel)}}`;
  return { meta: `${base}:meta`, stream: `${base}:stream`, idem: `${base}:idem:`, msgs: `${base}:msgs`, order: `${base}:order`, topic: `${base}:pub` };
}

/** Presence keys of one channel, under the same hash tag as its stream. */
export interface RedisPresenceKeys {
  /** Sorted set: client id scored by expiry (ms since the epoch). */
  expiries: string;
  /** Hash: client id -> member record (JSON). */
  members: string;
}

export function redisPresenceKeys(prefix: string, channel: string): RedisPresenceKeys {
  const base = `${prefix}:{${escapeChannelTag(channel)}}:presence`;
  return { expiries: `${base}:z`, members: `${base}:h` };
}

/** RPC keys and topics (see rpc/redis.ts): a channel's handler registry, and per node its liveness key and inbox topic. */
export interface RedisRpcKeys {
  /** Hash: handler id -> `{node, methods}` (JSON), under the channel's hash tag. */
  registry(channel: string): string;
  /** String with a TTL: present while the node is alive. */
  node(node: string): string;
  /** Pub/sub topic the node receives calls and outcomes on (not a key, named alike). */
  inbox(node: string): string;
}

export function redisRpcKeys(prefix: string): RedisRpcKeys {
  return {
    registry: (channel) => `${prefix}:{${escapeChannelTag(channel)}}:rpc`,
    node: (node) => `${prefix}:rpc:node:${node}`,
    inbox: (node) => `${prefix}:rpc:inbox:${node}`,
  };
}
