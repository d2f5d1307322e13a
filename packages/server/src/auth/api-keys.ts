/**
 * Keys of the HTTP API. Besides the one `SIGNALBOX_API_KEY` (named `default`, every scope), any
 * number of named keys (`SIGNALBOX_API_KEYS=backend:<key>,console:<key>:admin`, or `apiKeys` in
 * the config file), each limited to the operations it may use. A key's name is what publications
 * and logs show; the key itself is never logged, echoed or compared in variable time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** What a key may do: publish, read history, list presence, call RPC handlers, administer (connections, channels, stats). */
export type ApiScope = 'publish' | 'history' | 'presence' | 'rpc' | 'admin';
export const API_SCOPES: readonly ApiScope[] = ['publish', 'history', 'presence', 'rpc', 'admin'];

export interface ApiKeySpec {
  name: string;
  key: string;
  scopes: ApiScope[];
}

/** An authenticated API caller. */
export interface ApiPrincipal {
  readonly name: string;
  readonly scopes: ReadonlySet<ApiScope>;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const MIN_KEY_LENGTH = 16;

/**
 * Parses named keys: a comma-separated string of `name:key` or `name:key:scope+scope`, an array of
 * such strings, or (config file) an array of `{name, key, scopes?}`. No scope list: every scope.
 * `fail` throws; its message never contains a key.
 */
export function parseApiKeys(raw: unknown, fail: (why: string) => never): ApiKeySpec[] {
  const entries: unknown[] = typeof raw === 'string' ? raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0) : Array.isArray(raw) ? raw : fail('must be a comma-separated list of name:key[:scope+scope] or an array');
  return entries.map((e, i) => {
    let name: unknown, key: unknown, scopes: unknown;
    if (typeof e === 'string') {
      const parts = e.split(':');
      if (parts.length < 2 || parts.length > 3) return fail(`entry ${i + 1} must be name:key or name:key:scope+scope`);
      [name, key] = parts;
      scopes = parts[2] === undefined ? undefined : parts[2]!.split('+');
    } else if (typeof e === 'object' && e !== null && !Array.isArray(e)) {
      ({ name, key, scopes } = e as Record<string, unknown>);
      for (const k of Object.keys(e)) if (!['name', 'key', 'scopes'].includes(k)) fail(`entry ${i + 1}: unknown field "${k}"`);
    } else {
      return fail(`entry ${i + 1} must be a string or {name, key, scopes}`);
    }
    if (typeof name !== 'string' || !NAME_RE.test(name)) return fail(`entry ${i + 1}: the name must be 1-64 characters [A-Za-z0-9_.-]`);
    if (typeof key !== 'string' || key.length < MIN_KEY_LENGTH || /[\s,:]/.test(key)) {
      return fail(`key "${name}" must be at least ${MIN_KEY_LENGTH} characters, without spaces, commas or colons`);
    }
    const list = scopes === undefined ? [...API_SCOPES] : scopes;
    if (!Array.isArray(list) || list.length === 0 || !list.every((s) => (API_SCOPES as readonly unknown[]).includes(s))) {
      return fail(`key "${name}": scopes must be a non-empty list of ${API_SCOPES.join(', ')}`);
    }
    return { name, key, scopes: [...new Set(list as ApiScope[])] };
  });
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** The configured keys, matched in constant time. */
export class ApiKeyring {
  private readonly keys: { digest: Buffer; principal: ApiPrincipal }[];

  /** `legacyKey` is SIGNALBOX_API_KEY: the key named `default`, with every scope. Throws (via `fail`) on a repeated name or key. */
  constructor(legacyKey: string | undefined, named: readonly ApiKeySpec[], fail: (why: string) => never) {
    const all: ApiKeySpec[] = [...(legacyKey ? [{ name: 'default', key: legacyKey, scopes: [...API_SCOPES] }] : []), ...named];
    const names = new Set<string>();
    const seen = new Set<string>();
    this.keys = all.map((k) => {
      if (names.has(k.name)) fail(`the key name "${k.name}" is used twice${k.name === 'default' ? ' (SIGNALBOX_API_KEY is named default)' : ''}`);
      names.add(k.name);
      const d = digest(k.key);
      if (seen.has(d.toString('hex'))) fail(`key "${k.name}" has the same value as another key`);
      seen.add(d.toString('hex'));
      return { digest: d, principal: Object.freeze({ name: k.name, scopes: new Set(k.scopes) }) };
    });
  }

  get size(): number {
    return this.keys.length;
  }

  /**
   * The principal a presented key belongs to, or null. Compares SHA-256 digests with
   * `timingSafeEqual` against every key, without stopping at a match, so neither the length nor
   * the position of a key shows in the time taken.
   */
  authenticate(presented: string): ApiPrincipal | null {
    const d = digest(presented);
    let found: ApiPrincipal | null = null;
    for (const k of this.keys) {
      if (timingSafeEqual(d, k.digest) && found === null) found = k.principal;
    }
    return found;
  }
}
