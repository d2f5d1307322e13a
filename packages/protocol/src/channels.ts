/**
 * Channel-name grammar and token channel patterns.
 *
 * A channel is `namespace` or `namespace:id`:
 *  - namespace: `[a-z][a-z0-9_-]{0,31}`
 *  - id: 1..128 of `[A-Za-z0-9_.@=-]`, optionally with further `:`-separated segments of the same set
 *  - whole name: at most 160 characters; no wildcards, whitespace or control characters.
 */

export const MAX_CHANNEL_LENGTH = 160;
const CHANNEL_RE = /^([a-z][a-z0-9_-]{0,31})(?::([A-Za-z0-9_.@=-]{1,128}(?::[A-Za-z0-9_.@=-]{1,128})*))?$/;

export interface ParsedChannel {
  namespace: string;
  /** The part after the first `:`, or null for a bare namespace channel like `metrics`. */
  id: string | null;
}

/** Parses a channel name; returns null when it breaks the grammar. */
export function parseChannel(name: unknown): ParsedChannel | null {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_CHANNEL_LENGTH) return null;
  const m = CHANNEL_RE.exec(name);
  if (!m) return null;
  return { namespace: m[1]!, id: m[2] ?? null };
}

/**
 * A compiled set of channel patterns from a token's `channels` claim.
 * `*` grants everything; a trailing `*` is a prefix match (`project:*`); anything else is exact.
 */
export class ChannelPatterns {
  readonly all: boolean;
  /** Null when empty: one of these lives on every connection. */
  private readonly exact: Set<string> | null;
  private readonly prefixes: string[] | null;

  constructor(patterns: readonly string[]) {
    let all = false;
    let exact: Set<string> | null = null;
    let prefixes: string[] | null = null;
    for (const p of patterns) {
      if (p === '*') all = true;
      else if (p.endsWith('*')) (prefixes ??= []).push(p.slice(0, -1));
      else (exact ??= new Set()).add(p);
    }
    this.all = all;
    this.exact = all ? null : exact;
    this.prefixes = all ? null : prefixes;
  }

  matches(channel: string): boolean {
    if (this.all || (this.exact !== null && this.exact.has(channel))) return true;
    if (this.prefixes !== null) for (const prefix of this.prefixes) if (channel.startsWith(prefix)) return true;
    return false;
  }
}

/** Validates a `channels` claim value: an array of non-empty pattern strings. */
export function isChannelPatternList(value: unknown): value is string[] {
  return (
    Array.isArray(value) &&
    value.length <= 1000 &&
    value.every((p) => typeof p === 'string' && p.length > 0 && p.length <= MAX_CHANNEL_LENGTH + 1 && !hasSpaceOrControl(p))
  );
}

function hasSpaceOrControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return true;
  }
  return false;
}
