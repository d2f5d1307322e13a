/**
 * Documents: the Yjs documents being edited (`doc:{id}` channels with subscribers, cluster-wide,
 * from GET /v1/channels), open one by id, and a document page with a real editor (CodeMirror 6
 * bound to the document through @signalbox/yjs, loaded on demand) showing who else is editing,
 * their cursors and selections, the connection and sync state.
 */
import { api, seg } from '../api.js';
import { field, fill, h, statusLine } from '../dom.js';
import type { EditorHandle, EditorUser } from '../editor.js';
import { clientOptions } from '../live.js';
import { registerView } from '../router.js';

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
  mount(el, { navigate }) {
    const open = h('input', { type: 'text', name: 'doc', placeholder: 'notes', autocomplete: 'off', 'aria-label': 'Document id' });
    const openForm = h('form', { class: 'inline' }, field('Open a document', open), h('button', { type: 'submit' }, 'Open'));
    const status = statusLine();
    const body = h('tbody');
    fill(el, h('h1', {}, 'Documents'),
      h('p', { class: 'dim' }, 'Yjs documents on doc:{id} channels. Opening one edits it live with everyone else on it.'),
      h('div', { class: 'filters' }, openForm), status.el,
      h('div', { class: 'scroll' }, h('table', { class: 'documents' },
        h('thead', {}, h('tr', {}, ...['document', 'editors', 'offset'].map((c) => h('th', { scope: 'col' }, c)))), body)));

    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    const ctrl = new AbortController();
    const load = async () => {
      try {
        const r = await api<{ channels: ChannelRow[] }>(`/v1/channels?${new URLSearchParams({ search: 'doc:', limit: '200' })}`, { signal: ctrl.signal });
        const docs = r.channels.filter((c) => c.channel.startsWith('doc:'));
        status.clear();
        if (docs.length === 0) fill(body, h('tr', {}, h('td', { colspan: '3', class: 'dim' }, 'Nobody is editing a document right now.')));
        else fill(body, ...docs.map((c) => h('tr', { 'data-doc': c.channel.slice(4) },
          h('td', {}, h('a', { href: `#/document/${seg(c.channel.slice(4))}` }, c.channel.slice(4))),
          h('td', {}, c.subscribers), h('td', {}, c.offset))));
      } catch (err) {
        if (!ctrl.signal.aborted) status.error((err as Error).message);
      } finally {
        if (!stopped) timer = setTimeout(() => void load(), REFRESH_MS);
      }
    };
    openForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const id = open.value.trim();
      if (!DOC_ID.test(id)) return status.error('A document id is 1 to 128 letters, digits, or . _ -');
      navigate('document', id);
    });
    void load();
    return () => {
      stopped = true;
      clearTimeout(timer);
      ctrl.abort();
    };
  },
});

/** A colour per name, stable across reloads, readable on the light editor background. */
function colourFor(name: string): EditorUser {
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)!) >>> 0;
  const hue = hash % 360;
  return { name, color: `hsl(${hue} 70% 40%)`, colorLight: `hsl(${hue} 70% 40% / 0.2)` };
}

registerView({
  route: 'document',
  title: 'Document',
  mount(el, { params }) {
    const id = params[0] ?? '';
    const channel = `doc:${id}`;
    if (!DOC_ID.test(id)) {
      fill(el, h('h1', {}, 'Document'), h('p', { class: 'status bad', role: 'status' }, `Not a document id: ${id}`));
      return () => {};
    }
    const status = statusLine();
    const conn = h('span', { class: 'pill', id: 'doc-status' }, 'connecting');
    const synced = h('span', { class: 'pill', id: 'doc-synced' }, 'not synced');
    const count = h('span', { class: 'dim', id: 'doc-count' });
    const connId = h('span', { class: 'dim mono', id: 'doc-conn' });
    const peers = h('ul', { class: 'peers', id: 'doc-peers', 'aria-label': 'Also editing' });
    const nameInput = h('input', { type: 'text', name: 'editorName', autocomplete: 'off', maxlength: 40 });
    const editorEl = h('div', { class: 'editor', id: 'editor' });
    fill(el,
      h('h1', {}, 'Document ', h('code', {}, id)),
      h('div', { class: 'doc-bar' }, conn, synced, count, connId, field('Your name', nameInput)),
      status.el,
      h('div', { class: 'doc-layout' },
        h('section', { class: 'panel', 'aria-label': 'Editor' }, editorEl),
        h('section', { class: 'panel', 'aria-label': 'Also editing' }, h('h2', {}, 'Also editing'), peers)));

    let editor: EditorHandle | null = null;
    let stopped = false;
    const setUser = (name: string) => {
      editor?.setUser(colourFor(name));
    };
    nameInput.addEventListener('change', () => {
      const name = nameInput.value.trim() || 'console';
      try { localStorage.setItem(NAME_KEY, name); } catch { /* storage off: the name lasts for the page */ }
      setUser(name);
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
          conn.className = `pill ${s === 'connected' ? 'ok' : 'warn'}`;
          connId.textContent = cid ?? '';
        },
        synced: (s) => { synced.textContent = s ? 'synced' : 'not synced'; synced.className = `pill ${s ? 'ok' : 'warn'}`; },
        changed: (n) => { count.textContent = `${n} character${n === 1 ? '' : 's'}`; },
        peers: (list) => {
          if (list.length === 0) fill(peers, h('li', { class: 'dim' }, 'Nobody else.'));
          else fill(peers, ...list.map((p) => h('li', { 'data-client': p.clientId },
            h('span', { class: `swatch ${p.colourClass}` }), p.name)));
        },
      });
    };
    start().catch((err: Error) => status.error(`The editor could not start: ${err.message}`));
    return () => {
      stopped = true;
      editor?.destroy();
    };
  },
});
