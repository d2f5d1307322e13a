/**
 * Safe serialization of whatever a page hands to `console.log` (or returns from `eval`): the result
 * is plain JSON, bounded in depth, breadth and total size, whatever the input — cycles, a 10 MB
 * string, a DOM node, an Error, a getter that throws, a Proxy. Values JSON cannot carry become
 * `{"$type": …}` markers a viewer can render:
 *
 * `undefined`, `bigint` (`value`), `symbol` (`value`), `function` (`name`), `error` (`name`,
 * `message`, `stack`), `node` (`value`: `<button#pay.primary>`), `cycle`, `depth` (too deep),
 * `more` (`count` entries left out), `map`/`set` (`entries`), `date` (`value`), `bytes`
 * (`length`), `unserializable` (something threw while reading it).
 */

/** Bounds of one serialized value (or one call's arguments together). */
export interface SerializeLimits {
  /** Nesting depth kept. */
  maxDepth: number;
  /** Entries kept per object/array/map/set. */
  maxEntries: number;
  /** Characters kept per string. */
  maxString: number;
  /** Rough total budget, characters of JSON, for everything serialized in one call. */
  maxTotal: number;
}

export const DEFAULT_SERIALIZE_LIMITS: SerializeLimits = { maxDepth: 5, maxEntries: 50, maxString: 2000, maxTotal: 16_384 };

/** What one serialization produced, and whether anything was cut. */
export interface Serialized {
  value: unknown;
  truncated: boolean;
}

/** Serializes `values` (e.g. a console call's arguments) sharing one budget. `text` redacts strings. */
export function serializeAll(values: readonly unknown[], limits: SerializeLimits, text: (s: string) => string = identity): { values: unknown[]; truncated: boolean } {
  const w = new Walker(limits, text);
  const out: unknown[] = [];
  for (const v of values) {
    if (w.budget <= 0) {
      out.push({ $type: 'more', count: values.length - out.length });
      w.truncated = true;
      break;
    }
    out.push(w.walk(v, 0));
  }
  return { values: out, truncated: w.truncated };
}

/** Serializes one value. */
export function serialize(value: unknown, limits: SerializeLimits = DEFAULT_SERIALIZE_LIMITS, text: (s: string) => string = identity): Serialized {
  const w = new Walker(limits, text);
  return { value: w.walk(value, 0), truncated: w.truncated };
}

/** Cuts `s` to `max` characters, marking the cut. */
export function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max)}…[${s.length - max} more]`;
}

function identity(s: string): string {
  return s;
}

class Walker {
  budget: number;
  truncated = false;
  readonly #seen = new Set<object>();

  constructor(readonly limits: SerializeLimits, readonly text: (s: string) => string) {
    this.budget = limits.maxTotal;
  }

  walk(v: unknown, depth: number): unknown {
    try {
      return this.#walk(v, depth);
    } catch {
      // A throwing getter, a revoked Proxy, a cross-origin window: say so rather than fail the call.
      this.budget -= 24;
      return { $type: 'unserializable' };
    }
  }

  #string(s: string): string {
    const max = Math.max(0, Math.min(this.limits.maxString, this.budget));
    if (s.length > max) this.truncated = true;
    const out = this.text(clip(s, max));
    this.budget -= out.length + 2;
    return out;
  }

  #walk(v: unknown, depth: number): unknown {
    switch (typeof v) {
      case 'string':
        return this.#string(v);
      case 'number':
        this.budget -= 8;
        return Number.isFinite(v) ? v : { $type: 'number', value: String(v) };
      case 'boolean':
        this.budget -= 5;
        return v;
      case 'undefined':
        this.budget -= 20;
        return { $type: 'undefined' };
      case 'bigint':
        this.budget -= 30;
        return { $type: 'bigint', value: v.toString() };
      case 'symbol':
        this.budget -= 30;
        return { $type: 'symbol', value: this.#string(v.toString()) };
      case 'function':
        this.budget -= 30;
        return { $type: 'function', name: this.#string(v.name || '(anonymous)') };
    }
    if (v === null) {
      this.budget -= 4;
      return null;
    }
    const o = v as object;
    if (isError(o)) {
      this.budget -= 40;
      return { $type: 'error', name: this.#string(String(o.name)), message: this.#string(String(o.message)), stack: typeof o.stack === 'string' ? this.#string(o.stack) : null };
    }
    if (isDomNode(o)) {
      this.budget -= 20;
      return { $type: 'node', value: this.#string(describeNode(o)) };
    }
    if (o instanceof Date) {
      this.budget -= 40;
      return { $type: 'date', value: Number.isNaN(o.getTime()) ? 'Invalid Date' : o.toISOString() };
    }
    if (o instanceof RegExp) return this.#string(String(o));
    if (ArrayBuffer.isView(o) || o instanceof ArrayBuffer) {
      this.budget -= 30;
      return { $type: 'bytes', length: o.byteLength };
    }
    if (this.#seen.has(o)) {
      this.budget -= 20;
      return { $type: 'cycle' };
    }
    if (depth >= this.limits.maxDepth || this.budget <= 0) {
      this.truncated = true;
      this.budget -= 20;
      return { $type: 'depth' };
    }
    this.#seen.add(o);
    try {
      if (o instanceof Map) return { $type: 'map', entries: this.#entries(o.entries(), o.size, depth, (e) => [this.walk(e[0], depth + 1), this.walk(e[1], depth + 1)]) };
      if (o instanceof Set) return { $type: 'set', entries: this.#entries(o.values(), o.size, depth, (e) => this.walk(e, depth + 1)) };
      if (Array.isArray(o)) return this.#entries(o.values(), o.length, depth, (e) => this.walk(e, depth + 1));
      const out: Record<string, unknown> = {};
      const keys = Object.keys(o);
      let kept = 0;
      for (const k of keys) {
        if (kept >= this.limits.maxEntries || this.budget <= 0) {
          out['$more'] = keys.length - kept;
          this.truncated = true;
          break;
        }
        this.budget -= k.length + 3;
        let child: unknown;
        try {
          child = (o as Record<string, unknown>)[k];
        } catch {
          // A getter that throws: that property is unserializable, not the whole object.
          this.budget -= 24;
          out[k] = { $type: 'unserializable' };
          kept++;
          continue;
        }
        out[k] = this.walk(child, depth + 1);
        kept++;
      }
      return out;
    } finally {
      // Only ancestors count as a cycle: the same object twice side by side is serialized twice.
      this.#seen.delete(o);
    }
  }

  #entries<T>(it: Iterator<T>, size: number, _depth: number, each: (e: T) => unknown): unknown[] {
    const out: unknown[] = [];
    this.budget -= 2;
    for (let r = it.next(); !r.done; r = it.next()) {
      if (out.length >= this.limits.maxEntries || this.budget <= 0) {
        out.push({ $type: 'more', count: size - out.length });
        this.truncated = true;
        break;
      }
      out.push(each(r.value));
    }
    return out;
  }
}

function isError(o: object): o is Error {
  return o instanceof Error || Object.prototype.toString.call(o) === '[object Error]';
}

interface NodeLike {
  nodeType: number;
  nodeName: string;
  id?: string;
  className?: unknown;
  textContent?: string | null;
}

function isDomNode(o: object): o is NodeLike {
  return typeof Node !== 'undefined' && o instanceof Node;
}

/** `<button#pay.primary>`, `#text "Pay now"`, `#document`. */
function describeNode(n: NodeLike): string {
  if (n.nodeType === 1) {
    const id = n.id ? `#${n.id}` : '';
    const cls = typeof n.className === 'string' && n.className.trim() ? `.${n.className.trim().split(/\s+/).join('.')}` : '';
    return `<${n.nodeName.toLowerCase()}${id}${cls}>`;
  }
  if (n.nodeType === 3) return `#text ${JSON.stringify(clip(n.textContent ?? '', 80))}`;
  return n.nodeName;
}
