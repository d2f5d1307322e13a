/**
 * Documents (`#/documents`): the Yjs documents being edited (`doc:{id}` channels with subscribers,
 * cluster-wide, from GET /v1/channels), open one by id, and a document page (`#/documents/{id}`)
 * with a real editor (CodeMirror 6 bound to the document through @signalbox/yjs, loaded on demand)
 * showing who else is editing, their cursors and selections, the connection and sync state.
 */
import { api, poll, seg } from '../api.js';
import { field, fill, h, statusLine } from '../dom.js';
import type { EditorHandle, EditorUser } from '../editor.js';
import { clientOptions } from '../live.js';
import { registerView, type ViewContext } from '../router.js';

interface ChannelRow {
  channel: string;
  subscribers: number;
  offset: number;
}

const REFRESH_MS = 3000;
/** A document id: what the `doc` namespace's grammar takes after `doc:`. */
const DOC_ID = /^[A-Za-z0-9_.-]{1,128}$/;
const NAME_KEY = 'signalbox.console.editorName';

registerView({
  route: 'documents',
  title: 'Documents',
  nav: 3.7,
  mount(el, ctx) {
    const id = ctx.params[0];
    return id === undefined ? mountList(el, ctx) : mountDocument(el, id);
  },
});

/** The list of documents being edited, and Open a document. */
function mountList(el: HTMLElement, { navigate }: ViewContext): () => void {
  const open = h('input', { type: 'text', name: 'doc', placeholder: 'notes', autocomplete: 'off' });
  const openForm = h('form', { class: 'inline', 'aria-label': 'Open a document' }, field('Open a document', open), h('button', { type: 'submit' }, 'Open'));
  const status = statusLine();
  const summary = h('p', { class: 'dim', id: 'doc-summary' });
  const body = h('tbody');
  fill(el, h('h1', {}, 'Documents'),
    h('div', { class: 'filters' }, openForm), status.el, summary,
    h('div', { class: 'scroll' }, h('table', { class: 'documents' },
      h('thead', {}, h('tr', {}, ...['document', 'channel', 'editors', 'offset'].map((c) => h('th', { scope: 'col' }, c)))), body)));

  const load = async (signal: AbortSignal) => {
    const r = await api<{ channels: ChannelRow[] }>(`/v1/channels?${new URLSearchParams({ search: 'doc:', limit: '200' })}`, { signal });
    const docs = r.channels.filter((c) => c.channel.startsWith('doc:'));
    status.clear();
    summary.textContent = `${docs.length} document${docs.length === 1 ? '' : 's'} being edited. A Yjs document is a doc:{id} channel; opening one edits it live with everyone on it.`;
    if (docs.length === 0) fill(body, h('tr', {}, h('td', { colspan: '4', class: 'dim' }, 'Nobody is editing a document right now.')));
    else fill(body, ...docs.map((c) => h('tr', { 'data-doc': c.channel.slice(4) },
      h('td', {}, h('a', { href: `#/documents/${seg(c.channel.slice(4))}` }, c.channel.slice(4))),
      h('td', { class: 'mono' }, c.channel),
      h('td', {}, c.subscribers), h('td', {}, c.offset))));
  };
  openForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const id = open.value.trim();
    if (!DOC_ID.test(id)) return status.error('A document id is 1 to 128 letters, digits, or . _ -');
    navigate('documents', id);
  });
  const list = poll(load, REFRESH_MS, (err) => status.error(err.message));
  return () => list.stop();
}

/** A colour per name, stable across reloads, for other y-codemirror.next editors (the console colours by class). */
function colourFor(name: string): EditorUser {
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)!) >>> 0;
  const hue = hash % 360;
  return { name, color: `hsl(${hue} 70% 40%)`, colorLight: `hsl(${hue} 70% 40% / 0.2)` };
}

/** One document: the editor, who else is on it, the connection and sync state. */
function mountDocument(el: HTMLElement, id: string): () => void {
  const channel = `doc:${id}`;
  const crumb = (...rest: (Node | string)[]) =>
    h('h1', {}, h('a', { href: '#/documents', class: 'dim' }, 'Documents'), h('span', { class: 'dim' }, ' / '), ...rest);
  if (!DOC_ID.test(id)) {
    fill(el, crumb(h('span', { class: 'mono' }, id)), h('p', { class: 'status bad', role: 'status' }, `Not a document id: ${id} (1 to 128 letters, digits, or . _ -)`));
    return () => {};
  }
  const status = statusLine();
  const conn = h('span', { class: 'pill wait', id: 'doc-status', title: 'The editor\'s own connection' }, 'connecting');
  const synced = h('span', { class: 'pill wait', id: 'doc-synced' }, 'not synced');
  const count = h('span', { id: 'doc-count' });
  const connId = h('span', { class: 'mono', id: 'doc-conn' });
  const peers = h('ul', { class: 'peers', id: 'doc-peers', 'aria-label': 'Also editing' }, h('li', { class: 'dim' }, 'Nobody else.'));
  const nameInput = h('input', { type: 'text', name: 'editorName', autocomplete: 'off', maxlength: 40 });
  const editorEl = h('div', { class: 'editor', id: 'editor' });
  fill(el,
    crumb(h('span', { class: 'mono' }, id), ' ', conn, ' ', synced),
    h('p', { class: 'dim doc-info' }, h('span', { class: 'mono' }, channel), ' · ', count, ' · connection ', connId),
    status.el,
    h('div', { class: 'doc-layout' },
      h('section', { class: 'doc-editor', 'aria-label': 'Editor' }, editorEl),
      h('section', { class: 'panel doc-side', 'aria-label': 'Who is here' },
        h('h2', {}, 'You'), h('div', { class: 'stack' }, field('Your name', nameInput)),
        h('h2', { class: 'gap' }, 'Also editing'), peers)));

  let editor: EditorHandle | null = null;
  let stopped = false;
  nameInput.addEventListener('change', () => {
    const name = nameInput.value.trim() || 'console';
    try { localStorage.setItem(NAME_KEY, name); } catch { /* storage off: the name lasts for the page */ }
    editor?.setUser(colourFor(name));
  });
  const start = async () => {
    let name = '';
    try { name = localStorage.getItem(NAME_KEY) ?? ''; } catch { /* storage off */ }
    if (!name) {
      const who = await api<{ signedIn: boolean; name?: string }>('/console/session').catch(() => null);
      name = who?.signedIn && who.name ? `console (${who.name})` : 'console';
    }
    nameInput.value = name;
    const { mountEditor } = await import('../editor.js');
    if (stopped) return;
    editor = mountEditor(editorEl, clientOptions(), channel, colourFor(name), {
      status: (s, cid) => {
        conn.textContent = s;
        conn.className = `pill ${s === 'connected' ? 'on' : 'wait'}`;
        connId.textContent = cid ?? 'none';
      },
      synced: (s) => {
        synced.textContent = s ? 'synced' : 'not synced';
        synced.className = `pill ${s ? 'on' : 'wait'}`;
      },
      changed: (n) => { count.textContent = `${n} character${n === 1 ? '' : 's'}`; },
      peers: (list) => {
        if (list.length === 0) fill(peers, h('li', { class: 'dim' }, 'Nobody else.'));
        else fill(peers, ...list.map((p) => h('li', { 'data-client': p.clientId },
          h('span', { class: `swatch ${p.colourClass}`, 'aria-hidden': 'true' }), p.name)));
      },
    });
  };
  start().catch((err: Error) => status.error(`The editor could not start: ${err.message}`));
  return () => {
    stopped = true;
    editor?.destroy();
  };
}
