/**
 * Channels: search the cluster-wide list (GET /v1/channels: channels with subscribers anywhere,
 * summed over nodes), open any channel's page by name.
 */
import { api, poll, seg } from '../api.js';
import { field, fill, h, statusLine } from '../dom.js';
import { registerView } from '../router.js';

interface ChannelRow {
  channel: string;
  subscribers: number;
  epoch: string | null;
  offset: number;
  nodes: { node: string; subscribers: number }[];
}

const REFRESH_MS = 3000;

registerView({
  route: 'channels',
  title: 'Channels',
  nav: 3,
  mount(el, { navigate }) {
    const search = h('input', { type: 'search', name: 'search', placeholder: 'part of a name', autocomplete: 'off' });
    const open = h('input', { type: 'text', name: 'open', placeholder: 'room:lobby', autocomplete: 'off' });
    const openForm = h('form', { class: 'inline' }, field('Open a channel', open), h('button', { type: 'submit' }, 'Open'));
    const status = statusLine();
    const info = h('p', { class: 'dim' });
    const body = h('tbody');
    fill(el, h('h1', {}, 'Channels'),
      h('div', { class: 'filters' }, field('Search', search), openForm), info, status.el,
      h('div', { class: 'scroll' }, h('table', { class: 'channels' },
        h('thead', {}, h('tr', {}, ...['channel', 'subscribers', 'offset', 'nodes'].map((c) => h('th', { scope: 'col' }, c)))), body)));

    const load = async (signal: AbortSignal) => {
      const q = new URLSearchParams({ limit: '200' });
      if (search.value.trim()) q.set('search', search.value.trim());
      const r = await api<{ channels: ChannelRow[]; total: number; nodes: string[]; unavailable: { node: string }[] }>(`/v1/channels?${q}`, { signal });
      status.clear();
      info.textContent = `${r.total} channel${r.total === 1 ? '' : 's'} with subscribers${r.total > r.channels.length ? ` (first ${r.channels.length})` : ''} · nodes answering: ${r.nodes.length}`
        + (r.unavailable.length ? ` · NOT answering: ${r.unavailable.map((u) => u.node).join(', ')}` : '');
      if (r.channels.length === 0) fill(body, h('tr', {}, h('td', { colspan: '4', class: 'dim' }, 'No channel matches.')));
      else fill(body, ...r.channels.map((c) => h('tr', { 'data-channel': c.channel },
        h('td', {}, h('a', { href: `#/channel/${seg(c.channel)}` }, c.channel)),
        h('td', {}, c.subscribers), h('td', {}, c.offset),
        h('td', { class: 'mono' }, c.nodes.map((n) => `${n.node}: ${n.subscribers}`).join(', ')))));
    };
    let debounce: ReturnType<typeof setTimeout> | undefined;
    search.addEventListener('input', () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => list.refresh(), 200);
    });
    openForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const name = open.value.trim();
      if (name) navigate('channel', name);
    });
    const list = poll(load, REFRESH_MS, (err) => status.error(err.message));
    return () => {
      list.stop();
      clearTimeout(debounce);
    };
  },
});
