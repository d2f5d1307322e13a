/**
 * Pretty-printed, collapsible JSON: objects and arrays are native <details> elements (keyboard
 * operable, announced as expandable), leaves are typed spans. Deep or long values start collapsed.
 */
import { h } from './dom.js';

const OPEN_DEPTH = 2;
const OPEN_MAX_ENTRIES = 20;

function leaf(v: unknown): HTMLElement {
  if (v === null) return h('span', { class: 'j-null' }, 'null');
  switch (typeof v) {
    case 'string': return h('span', { class: 'j-str' }, JSON.stringify(v));
    case 'number': return h('span', { class: 'j-num' }, String(v));
    case 'boolean': return h('span', { class: 'j-bool' }, String(v));
    default: return h('span', { class: 'j-other' }, String(v));
  }
}

function node(v: unknown, depth: number, key?: string): HTMLElement {
  const label = key !== undefined ? h('span', { class: 'j-key' }, `${JSON.stringify(key)}: `) : null;
  if (typeof v !== 'object' || v === null) return h('div', { class: 'j-row' }, label, leaf(v));
  const isArray = Array.isArray(v);
  const entries: [string, unknown][] = isArray ? (v as unknown[]).map((x, i) => [String(i), x]) : Object.entries(v as Record<string, unknown>);
  const [open, close] = isArray ? ['[', ']'] : ['{', '}'];
  if (entries.length === 0) return h('div', { class: 'j-row' }, label, `${open}${close}`);
  const details = h('details', { class: 'j-node' });
  details.open = depth < OPEN_DEPTH && entries.length <= OPEN_MAX_ENTRIES;
  details.append(
    h('summary', {}, label, `${open}`, h('span', { class: 'j-count' }, ` ${entries.length} ${isArray ? (entries.length === 1 ? 'item' : 'items') : entries.length === 1 ? 'key' : 'keys'} `), close),
    h('div', { class: 'j-children' }, ...entries.map(([k, x]) => node(x, depth + 1, isArray ? undefined : k))),
  );
  return details;
}

/** The JSON tree of `value`. */
export function jsonView(value: unknown): HTMLElement {
  return h('div', { class: 'json' }, node(value, 0));
}
