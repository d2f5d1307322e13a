/**
 * Redaction, applied in the page (or the bridge) before anything is published: what is redacted
 * here never reaches the gateway, its history or any viewer.
 *
 * - Headers: `authorization`, `proxy-authorization`, `cookie`, `set-cookie` always, plus
 *   {@link RedactOptions.headers}. The name stays, the value becomes `[redacted]`.
 * - URLs: the values of query parameters named in {@link RedactOptions.queryParams} (default a
 *   list of usual secret names), in the query and in a query-shaped fragment (`#access_token=…`), user:password in the authority, then {@link RedactOptions.url}.
 * - Text (console arguments, error messages and stacks, DOM query results, command params):
 *   every match of {@link RedactOptions.patterns} becomes `[redacted]`, then {@link RedactOptions.text}.
 */

export const REDACTED = '[redacted]';

/** Headers whose values never leave the page, whatever the options. */
export const ALWAYS_REDACTED_HEADERS: readonly string[] = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie'];

/** Query parameters redacted by default. */
export const DEFAULT_REDACTED_PARAMS: readonly string[] = ['token', 'access_token', 'refresh_token', 'id_token', 'code', 'password', 'secret', 'api_key', 'apikey', 'key', 'signature', 'sig'];

export interface RedactOptions {
  /** More header names (any case) whose values are redacted. */
  headers?: string[];
  /** Query parameter names (any case) whose values are redacted; replaces the default list. */
  queryParams?: string[];
  /** Patterns redacted in every captured text (use the `g` flag to redact every match; it is added if missing). */
  patterns?: RegExp[];
  /** Last say on a text, after the patterns. */
  text?: (text: string) => string;
  /** Last say on a URL, after the query parameters. */
  url?: (url: string) => string;
}

/** The compiled redaction of one session. */
export class Redactor {
  readonly #headers: Set<string>;
  readonly #params: Set<string>;
  readonly #patterns: RegExp[];
  readonly #text: ((s: string) => string) | undefined;
  readonly #url: ((s: string) => string) | undefined;

  constructor(options: RedactOptions = {}) {
    this.#headers = new Set([...ALWAYS_REDACTED_HEADERS, ...(options.headers ?? []).map((h) => h.toLowerCase())]);
    this.#params = new Set((options.queryParams ?? DEFAULT_REDACTED_PARAMS).map((p) => p.toLowerCase()));
    this.#patterns = (options.patterns ?? []).map((p) => (p.global ? p : new RegExp(p.source, `${p.flags}g`)));
    this.#text = options.text;
    this.#url = options.url;
  }

  /** Redacts a captured text. */
  readonly text = (s: string): string => {
    let out = s;
    for (const p of this.#patterns) out = out.replace(p, REDACTED);
    return this.#text ? this.#text(out) : out;
  };

  /** Redacts a URL (relative ones against `base`, returned as absolute). */
  url(raw: string, base?: string): string {
    let out = raw;
    try {
      const u = new URL(raw, base);
      if (u.username || u.password) {
        u.username = REDACTED;
        u.password = '';
      }
      for (const name of [...u.searchParams.keys()]) {
        if (this.#params.has(name.toLowerCase())) u.searchParams.set(name, REDACTED);
      }
      // A fragment shaped like a query (`#access_token=…`, as OAuth implicit flows and SPAs put it) too.
      if (u.hash.includes('=')) {
        const frag = new URLSearchParams(u.hash.slice(1));
        let hit = false;
        for (const name of [...frag.keys()]) {
          if (this.#params.has(name.toLowerCase())) {
            frag.set(name, REDACTED);
            hit = true;
          }
        }
        if (hit) u.hash = frag.toString();
      }
      out = u.href;
    } catch {
      // Not a URL we can parse: the text patterns still apply.
    }
    out = this.text(out);
    return this.#url ? this.#url(out) : out;
  }

  /** Headers as a plain object, names lower-cased, sensitive values redacted. */
  headers(entries: Iterable<[string, string]>): Record<string, string> {
    const out: Record<string, string> = {};
    let n = 0;
    for (const [k, v] of entries) {
      // Bounded: a response with thousands of headers does not make a huge event.
      if (++n > 100) break;
      const name = k.toLowerCase();
      out[name] = this.#headers.has(name) ? REDACTED : this.text(String(v).slice(0, 1000));
    }
    return out;
  }
}
