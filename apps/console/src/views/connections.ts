/**
 * Connections: every node's connections (GET /v1/connections, cluster-wide), filtered by subject
 * and channel, a page at a time; disconnect one, or remove one of its subscriptions. Refreshed
 * every few seconds while shown (the admin API is a question, not a feed).
 */
import { api, seg, ApiError } from '../api.js';
import { field, fill, fmtBytes, fmtTime, h, statusLine } from '../dom.js';
import { registerView } from '../router.js';

interface ConnectionRow {
  id: string;
  subject: string | null;
  node: string;
  remoteAddress: string;
  dialect: string;
  encoding: string;
  channels: string[];
  connectedSince: string;
  bytesBuffered: number;
}

interface Page {
  connections: ConnectionRow[];
  next: string | null;
  nodes: string[];
  unavailable: { node: string; code: string; message: string }[];
}

const PAGE_SIZES = [10, 50, 200];
const REFRESH_MS = 2000;

registerView({
  route: 'connections',
  title: 'Connections',
  nav: 2,
  mount(el, { live, navigate }) {
    const subject = h('input', { type: 'search', name: 'subject', placeholder: 'usr_1', autocomplete: 'off' });
    const channel = h('input', { type: 'search', name: 'channel', placeholder: 'room:lobby', autocomplete: 'off' });
    const size = h('select', { name: 'size' }, ...PAGE_SIZES.map((n) => h('option', { value: n, selected: n === 50 }, `${n} a page`)));
    const form = h('form', { class: 'filters', role: 'search' }, field('Subject', subject), field('Channel', channel), field('Page', size), h('button', { type: 'submit' }, 'Filter'));
    const status = statusLine();
    const info = h('p', { class: 'dim' });
    const body = h('tbody');
    const first = h('button', { type: 'button', disabled: true }, '« First page');
    const next = h('button', { type: 'button', disabled: true }, 'Next page »');
    fill(el,
      h('h1', {}, 'Connections'), form, info, status.el,
      h('div', { class: 'scroll' }, h('table', { class: 'connections' },
        h('thead', {}, h('tr', {}, ...['id', 'subject', 'node', 'address', 'dialect', 'channels', 'since', 'buffered', ''].map((c) => h('th', { scope: 'col' }, c)))),
        body)),
      h('div', { class: 'pager' }, first, next));

    // The page shown starts after `cursor` (undefined: the first page).
    let cursor: string | undefined;
    let nextCursor: string | null = null;
    let inFlight: AbortController | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;

    const act = async (what: string, path: string) => {
      try {
        await api(path, { method: 'DELETE' });
        status.ok(what);
      } catch (err) {
        status.error(`${what} failed: ${(err as Error).message}`);
      }
      await load();
    };

    const row = (c: ConnectionRow) => {
      const own = c.id === live.client.connectionId;
      return h('tr', { 'data-id': c.id },
        h('td', { class: 'mono' }, c.id, own ? h('span', { class: 'tag' }, 'this console') : null),
        h('td', {}, c.subject ?? '–'),
        h('td', { class: 'mono' }, c.node),
        h('td', { class: 'mono' }, c.remoteAddress),
        h('td', {}, `${c.dialect}/${c.encoding}`),
        h('td', {}, h('div', { class: 'chips' }, ...c.channels.map((ch) => h('span', { class: 'chip' },
          h('a', { href: `#/channel/${seg(ch)}`, onclick: (e: Event) => { e.preventDefault(); navigate('channel', ch); } }, ch),
          h('button', { type: 'button', class: 'x', 'aria-label': `Unsubscribe ${c.id} from ${ch}`, title: 'Remove this subscription',
            onclick: () => void act(`Removed ${ch} from ${c.id}`, `/v1/connections/${seg(c.id)}/subscriptions/${seg(ch)}`) }, '×'))))),
        h('td', {}, fmtTime(c.connectedSince)),
        h('td', {}, fmtBytes(c.bytesBuffered)),
        h('td', {}, h('button', { type: 'button', class: 'danger', 'aria-label': `Disconnect ${c.id}`,
          onclick: () => void act(`Disconnected ${c.id}`, `/v1/connections/${seg(c.id)}?reason=${seg('disconnected from the console')}`) }, 'Disconnect')));
    };

    const load = async () => {
      clearTimeout(timer);
      inFlight?.abort();
      const ctrl = (inFlight = new AbortController());
      const q = new URLSearchParams({ limit: size.value });
      if (subject.value.trim()) q.set('subject', subject.value.trim());
      if (channel.value.trim()) q.set('channel', channel.value.trim());
      if (cursor) q.set('cursor', cursor);
      try {
        const page = await api<Page>(`/v1/connections?${q}`, { signal: ctrl.signal });
        nextCursor = page.next;
        next.disabled = page.next === null;
        first.disabled = cursor === undefined;
        info.textContent = `${page.connections.length} connection${page.connections.length === 1 ? '' : 's'} on this page · nodes answering: ${page.nodes.length}`
          + (page.unavailable.length ? ` · NOT answering: ${page.unavailable.map((u) => `${u.node} (${u.code})`).join(', ')}` : '');
        if (page.connections.length === 0) fill(body, h('tr', {}, h('td', { colspan: '9', class: 'dim' }, 'No connections match.')));
        else fill(body, ...page.connections.map(row));
      } catch (err) {
        if (ctrl.signal.aborted) return;
        status.error(err instanceof ApiError ? `${err.code}: ${err.message}` : String(err));
      } finally {
        if (!stopped && inFlight === ctrl) timer = setTimeout(() => void load(), REFRESH_MS);
      }
    };

    form.addEventListener('submit', (e) => {
      e.preventDefault();
      cursor = undefined;
      void load();
    });
    size.addEventListener('change', () => {
      cursor = undefined;
      void load();
    });
    next.addEventListener('click', () => {
      if (nextCursor) cursor = nextCursor;
      void load();
    });
    first.addEventListener('click', () => {
      cursor = undefined;
      void load();
    });
    void load();
    return () => {
      stopped = true;
      clearTimeout(timer);
      inFlight?.abort();
    };
  },
});
