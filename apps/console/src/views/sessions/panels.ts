/**
 * The session page's lists: console (level and text filters), network (failed only), errors
 * (with stacks) and the audit trail (each command with its caller, then its result). Each is a
 * {@link CappedList}: at most {@link PANEL_CAP} rows kept, newest at the bottom, the count of
 * those that fell off said under the title.
 */
import { field, fill, h } from '../../dom.js';
import { jsonView } from '../../json-view.js';
import {
  PANEL_CAP, argText, callerText, consoleText, fmtMs,
  type CommandEvent, type ConsoleEvent, type ErrorEvent, type NavigationEvent, type NetworkEvent, type ResultEvent, type SessionPub,
} from './model.js';

/** A bounded list of rows, filtered on screen; keeps its scroll at the bottom while it is there. */
export class CappedList<T> {
  readonly items: { offset: number; value: T }[] = [];
  dropped = 0;
  readonly list: HTMLOListElement;
  readonly note: HTMLElement;

  constructor(
    id: string,
    private readonly render: (v: T, offset: number) => HTMLElement,
    private readonly matches: (v: T) => boolean = () => true,
    private readonly cap = PANEL_CAP,
  ) {
    this.list = h('ol', { class: 'rows', id });
    this.note = h('p', { class: 'dim cap-note', 'data-for': id });
    this.renderNote();
  }

  add(offset: number, value: T): void {
    this.items.push({ offset, value });
    if (this.items.length > this.cap) {
      this.items.shift();
      this.dropped++;
    }
    if (this.matches(value)) this.pending.push({ offset, value });
    this.schedule();
  }

  /** Rows not yet on screen: appended once per frame, so a burst costs one layout, not one per row. */
  private pending: { offset: number; value: T }[] = [];
  private scheduled = false;

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    const run = () => {
      this.scheduled = false;
      this.flush();
    };
    // A hidden tab gets no animation frames: a timer then, so the rows are there when it is shown.
    if (document.visibilityState === 'visible') requestAnimationFrame(run);
    else setTimeout(run, 100);
  }

  private flush(): void {
    const oldest = this.items[0]?.offset ?? Infinity;
    const rows = this.pending.filter((i) => i.offset >= oldest);
    this.pending = [];
    const stick = this.atBottom();
    if (rows.length > 0) this.list.append(...rows.map((i) => this.row(i.value, i.offset)));
    // Rows whose item fell off the cap go too.
    while (this.list.firstElementChild && Number((this.list.firstElementChild as HTMLElement).dataset.offset) < oldest) this.list.firstElementChild.remove();
    if (stick) this.list.scrollTop = this.list.scrollHeight;
    this.renderNote();
  }

  /** Rows again after a filter changed. */
  refilter(): void {
    this.pending = [];
    fill(this.list, ...this.items.filter((i) => this.matches(i.value)).map((i) => this.row(i.value, i.offset)));
    this.list.scrollTop = this.list.scrollHeight;
    this.renderNote();
  }

  private row(v: T, offset: number): HTMLElement {
    const el = this.render(v, offset);
    el.dataset.offset = String(offset);
    return el;
  }

  private atBottom(): boolean {
    return this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 24;
  }

  private renderNote(): void {
    const shown = this.list.childElementCount;
    this.note.textContent = `${this.items.length} kept (at most ${PANEL_CAP.toLocaleString('en')})`
      + (shown !== this.items.length ? `, ${shown} shown` : '')
      + (this.dropped > 0 ? `, ${this.dropped.toLocaleString('en')} older dropped` : '');
  }
}

/** A console row: a console call, or a navigation (level `page`). */
export type ConsoleRow = { kind: 'console'; e: ConsoleEvent } | { kind: 'nav'; e: NavigationEvent } | { kind: 'note'; text: string; ts: number };

const LEVELS = ['all', 'log', 'info', 'warn', 'error', 'debug', 'trace', 'page'];

export function consolePanel(): { el: HTMLElement; list: CappedList<ConsoleRow> } {
  const level = h('select', { name: 'level' }, ...LEVELS.map((l) => h('option', { value: l }, l === 'all' ? 'all levels' : l)));
  const text = h('input', { type: 'search', name: 'console-filter', placeholder: 'text', autocomplete: 'off' });
  const rowLevel = (r: ConsoleRow) => (r.kind === 'console' ? r.e.level : 'page');
  const rowText = (r: ConsoleRow) => (r.kind === 'console' ? consoleText(r.e) : r.kind === 'nav' ? `${r.e.kind} ${r.e.url}` : r.text);
  const list = new CappedList<ConsoleRow>('session-console', (r) => {
    const lv = rowLevel(r);
    return h('li', { class: `lv-${lv}`, 'data-level': lv },
      h('span', { class: 'dim mono t' }, fmtMs(r.kind === 'note' ? r.ts : r.e.ts)),
      h('span', { class: 'lv' }, r.kind === 'nav' ? r.e.kind : lv),
      h('span', { class: 'msg-text' }, r.kind === 'nav' ? `${r.e.url}${r.e.title ? ` (${r.e.title})` : ''}` : rowText(r), r.kind === 'console' && r.e.truncated ? h('span', { class: 'dim' }, ' (truncated)') : null));
  }, (r) => {
    const want = level.value;
    const q = text.value.trim().toLowerCase();
    return (want === 'all' || rowLevel(r) === want) && (q === '' || rowText(r).toLowerCase().includes(q));
  });
  level.addEventListener('change', () => list.refilter());
  text.addEventListener('input', () => list.refilter());
  const el = h('section', { class: 'panel', 'aria-label': 'Console' },
    h('h2', {}, 'Console'), h('div', { class: 'filters' }, field('Level', level), field('Filter', text)), list.note, list.list);
  return { el, list };
}

export function networkPanel(): { el: HTMLElement; list: CappedList<NetworkEvent> } {
  const failed = h('input', { type: 'checkbox', name: 'failed-only' });
  const text = h('input', { type: 'search', name: 'network-filter', placeholder: 'URL', autocomplete: 'off' });
  const list = new CappedList<NetworkEvent>('session-network', (e) => h('li', { class: e.ok ? 'net' : 'net bad', 'data-status': e.status },
    h('span', { class: 'mono' }, e.method),
    h('span', { class: 'mono st' }, e.status === 0 ? 'failed' : String(e.status)),
    h('span', { class: 'mono url', title: e.url }, e.url, e.error ? h('span', { class: 'err net-error' }, e.error) : null),
    h('span', { class: 'dim mono' }, `${Math.round(e.durationMs)} ms`),
    h('span', { class: 'dim' }, e.api)), (e) => (!failed.checked || !e.ok) && (text.value === '' || e.url.toLowerCase().includes(text.value.trim().toLowerCase())));
  failed.addEventListener('change', () => list.refilter());
  text.addEventListener('input', () => list.refilter());
  const el = h('section', { class: 'panel', 'aria-label': 'Network' },
    h('h2', {}, 'Network'),
    h('div', { class: 'filters' }, h('label', { class: 'check' }, failed, ' failed only'), field('URL', text)),
    h('div', { class: 'net head dim' }, h('span', {}, 'method'), h('span', {}, 'status'), h('span', {}, 'URL'), h('span', {}, 'duration'), h('span', {}, 'api')),
    list.note, list.list);
  return { el, list };
}

export function errorsPanel(): { el: HTMLElement; list: CappedList<{ type: string; e: ErrorEvent }> } {
  const list = new CappedList<{ type: string; e: ErrorEvent }>('session-errors', ({ type, e }) => h('li', { class: 'error-row' },
    h('div', {}, h('span', { class: 'dim mono' }, fmtMs(e.ts)), ' ',
      // The browser's message often names the error already ("Uncaught RangeError: …").
      h('span', { class: 'err' }, `${e.name && !e.message.includes(e.name) ? `${e.name}: ` : ''}${e.message}`), ' ',
      h('span', { class: 'dim' }, type === 'error.unhandledrejection' ? 'unhandled rejection' : 'uncaught'),
      e.url ? h('span', { class: 'dim mono' }, ` ${e.url}${e.line !== null ? `:${e.line}:${e.column ?? 0}` : ''}`) : null),
    e.stack ? h('details', {}, h('summary', { class: 'dim' }, 'stack'), h('pre', { class: 'stack' }, e.stack)) : null));
  const el = h('section', { class: 'panel', 'aria-label': 'Errors' }, h('h2', {}, 'Errors'), list.note, list.list);
  return { el, list };
}

/** One command of the audit trail: its `debug.command`, then its `debug.result` when it came. */
export interface AuditEntry {
  command: CommandEvent | null;
  result: ResultEvent | null;
  /** A viewer joining or leaving (presence events of the stream). */
  presence?: { type: string; userId: string; clientId: string; at: string };
}

export function auditPanel(): { el: HTMLElement; add(p: SessionPub<unknown>): void } {
  const byCall = new Map<string, { entry: AuditEntry; el: HTMLElement | null }>();
  const render = (a: AuditEntry): HTMLElement => {
    if (a.presence) {
      return h('li', { class: 'audit presence' }, h('span', { class: 'dim mono' }, fmtMs(Date.parse(a.presence.at))),
        h('span', {}, `${a.presence.type === 'presence.joined' ? 'viewer joined' : 'viewer left'}: ${a.presence.userId}`), h('span', { class: 'dim mono' }, a.presence.clientId));
    }
    const c = a.command;
    const r = a.result;
    const outcome = !r ? h('span', { class: 'dim' }, 'running…')
      : r.ok ? h('span', { class: 'ok' }, `ok, ${Math.round(r.durationMs)} ms`)
        : h('span', { class: 'err' }, `${r.error?.code ?? 'failed'}${r.error?.message ? `: ${r.error.message}` : ''}`);
    return h('li', { class: 'audit', 'data-call': c?.callId ?? r?.callId ?? '' },
      h('span', { class: 'dim mono' }, fmtMs((c ?? r)!.ts)),
      h('span', { class: 'mono cmd' }, c?.method ?? r?.method ?? '?'),
      c ? h('span', { class: 'mono dim params' }, argText(c.params)) : null,
      h('span', { class: 'who' }, c ? `by ${callerText(c.caller)}` : ''),
      outcome);
  };
  const list = new CappedList<AuditEntry>('session-audit', render);
  const el = h('section', { class: 'panel', 'aria-label': 'Audit trail' },
    h('h2', {}, 'Audit trail'), h('p', { class: 'dim' }, 'Every command, who sent it and how it ended; viewers joining and leaving.'), list.note, list.list);
  const add = (p: SessionPub<unknown>): void => {
    if (p.type === 'presence.joined' || p.type === 'presence.left') {
      const m = (p.data as { member?: { userId?: string; clientId?: string } } | null)?.member;
      list.add(p.offset, { command: null, result: null, presence: { type: p.type, userId: String(m?.userId ?? '?'), clientId: String(m?.clientId ?? ''), at: p.timestamp } });
      return;
    }
    const d = p.data as CommandEvent & ResultEvent;
    if (typeof d?.callId !== 'string') return;
    const known = byCall.get(d.callId);
    if (p.type === 'debug.command') {
      const entry: AuditEntry = { command: d, result: null };
      byCall.set(d.callId, { entry, el: null });
      list.add(p.offset, entry);
    } else if (known) {
      known.entry.result = d;
      const old = list.list.querySelector(`li[data-call="${CSS.escape(d.callId)}"]`);
      if (old) old.replaceWith(withOffset(render(known.entry), (old as HTMLElement).dataset.offset));
    } else {
      // The result of a command that fell off (or was before the history kept): shown on its own.
      list.add(p.offset, { command: null, result: d });
    }
    // Bounded like the list: forget calls no longer on it.
    if (byCall.size > PANEL_CAP) byCall.delete(byCall.keys().next().value!);
  };
  return { el, add };
}

function withOffset(el: HTMLElement, offset: string | undefined): HTMLElement {
  if (offset !== undefined) el.dataset.offset = offset;
  return el;
}

/** A result value for the command bar: JSON tree, and a screenshot as an image. */
export function resultView(method: string, value: unknown): HTMLElement {
  const v = value as { format?: string; data?: unknown } | null;
  if (method === 'screenshot' && v && typeof v.data === 'string') {
    const { data, ...rest } = v as { data: string } & Record<string, unknown>;
    return h('div', {}, jsonView(rest), h('img', { class: 'shot', alt: 'Screenshot of the page', src: `data:image/${v.format === 'png' ? 'png' : 'jpeg'};base64,${data}` }));
  }
  return jsonView(value);
}
