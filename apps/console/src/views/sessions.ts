/**
 * Sessions: the session debugger (docs/session-debugging.md). `#/sessions` lists the live
 * sessions: the `session:` channels of the admin channel list (channels someone is subscribed
 * to, or whose source is connected as their RPC handler), each with its viewers (presence) and its
 * source (the publisher of its latest event: an in-page SDK or a CDP bridge), refreshed every few
 * seconds; any session can also be opened by its id. `#/sessions/{id}` is one session's page (sessions/page.ts).
 */
import type { PresenceMember, PublicationMessage } from '@signalbox/client';
import { api, poll, seg } from '../api.js';
import { field, fill, fmtTime, h, statusLine } from '../dom.js';
import type { ViewContext } from '../router.js';
import { registerView } from '../router.js';
import { mountSession } from './sessions/page.js';

interface ChannelRow {
  channel: string;
  subscribers: number;
  epoch: string | null;
  offset: number;
}

/** What the list knows of a session between refreshes. */
interface Known {
  offset: number;
  viewers: PresenceMember[];
  last: PublicationMessage | null;
  /** The source that published the latest session event (presence changes are the gateway's). */
  source: { kind: string; sub: string } | null;
}

const REFRESH_MS = 3000;
/** The latest events read per session (when its stream moved) to name its source past viewers joining and leaving. */
const RECENT = 10;
const SESSION_ID = /^[A-Za-z0-9_-]{1,128}$/;

function mountList(el: HTMLElement, { live, navigate }: ViewContext): () => void {
  const open = h('input', { type: 'text', name: 'session', placeholder: 'sess_42', autocomplete: 'off', spellcheck: 'false' });
  const openForm = h('form', { class: 'inline' }, field('Open a session by id', open), h('button', { type: 'submit' }, 'Open'));
  const status = statusLine();
  const info = h('p', { class: 'dim', id: 'sessions-info' });
  const body = h('tbody');
  fill(el, h('h1', {}, 'Sessions'),
    h('p', { class: 'dim' }, 'Live browser sessions (', h('code', {}, 'session:{id}'), ' channels) whose page or bridge is connected, or that someone watches.'),
    h('div', { class: 'filters' }, openForm), info, status.el,
    h('div', { class: 'scroll' }, h('table', { class: 'sessions', id: 'sessions-table' },
      h('thead', {}, h('tr', {}, ...['session', 'source', 'viewers', 'events', 'last event'].map((c) => h('th', { scope: 'col' }, c)))), body)));

  const known = new Map<string, Known>();
  const row = (c: ChannelRow, k: Known) => {
    const id = c.channel.slice('session:'.length);
    const kind = k.source?.kind === 'cdp' ? 'bridge' : k.source?.kind === 'page' ? 'page' : null;
    return h('tr', { 'data-session': id },
      h('td', {}, h('a', { href: `#/sessions/${seg(id)}`, class: 'mono' }, id)),
      h('td', {}, kind ? h('span', { class: 'tag src' }, kind) : h('span', { class: 'dim' }, 'none yet'), k.source ? ` ${k.source.sub}` : ''),
      h('td', { class: 'viewers' }, k.viewers.length === 0 ? h('span', { class: 'dim' }, '–')
        : h('span', {}, ...k.viewers.map((m, i) => h('span', { 'data-client': m.clientId }, i > 0 ? ', ' : '', m.userId, m.clientId === live.client.connectionId ? h('span', { class: 'tag' }, 'you') : null)))),
      h('td', { class: 'mono' }, c.offset),
      h('td', { class: 'dim' }, k.last ? `${k.last.type} at ${fmtTime(k.last.timestamp)}` : '–'));
  };

  const load = async (signal: AbortSignal) => {
    const r = await api<{ channels: ChannelRow[]; total: number; nodes: string[]; unavailable: { node: string }[] }>(`/v1/channels?${new URLSearchParams({ search: 'session:', limit: '200' })}`, { signal });
    const rows = r.channels.filter((c) => c.channel.startsWith('session:')).sort((a, b) => (a.channel < b.channel ? -1 : 1));
    // Each: its viewers, and (when its stream moved) its latest event, for the source.
    await Promise.all(rows.map(async (c) => {
      const k = known.get(c.channel) ?? { offset: -1, viewers: [], last: null, source: null };
      const [presence, recent] = await Promise.all([
        api<{ members: PresenceMember[] }>(`/v1/channels/${seg(c.channel)}/presence`, { signal }).catch(() => ({ members: k.viewers })),
        k.offset === c.offset ? Promise.resolve(null)
          : api<{ publications: PublicationMessage[] }>(`/v1/channels/${seg(c.channel)}/history?limit=${RECENT}`, { signal })
            .then((r) => r.publications).catch(() => null),
      ]);
      let { last, source } = k;
      if (recent) {
        // The latest event of the source (viewers joining and leaving are the gateway's, not the session's).
        const ev = recent.findLast((p) => typeof (p.data as { source?: unknown } | null)?.source === 'string');
        last = ev ?? recent.at(-1) ?? last;
        const by = ev?.publisher as { sub?: string } | undefined;
        if (ev) source = { kind: String((ev.data as { source: string }).source), sub: by?.sub ?? '?' };
      }
      known.set(c.channel, { offset: c.offset, viewers: presence.members, last, source });
    }));
    if (signal.aborted) return; // a newer load is on its way: this one's rows are stale
    for (const ch of known.keys()) if (!rows.some((c) => c.channel === ch)) known.delete(ch);
    status.clear();
    info.textContent = `${rows.length} session${rows.length === 1 ? '' : 's'} watched · nodes answering: ${r.nodes.length}`
      + (r.unavailable.length ? ` · NOT answering: ${r.unavailable.map((u) => u.node).join(', ')}` : '');
    if (rows.length === 0) fill(body, h('tr', {}, h('td', { colspan: '5', class: 'dim' }, 'No session is being watched.')));
    else fill(body, ...rows.map((c) => row(c, known.get(c.channel)!)));
  };
  openForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const id = open.value.trim().replace(/^session:/, '');
    if (!SESSION_ID.test(id)) {
      status.error('A session id is 1 to 128 of A-Z, a-z, 0-9, _ and -.');
      return;
    }
    navigate('sessions', id);
  });
  const list = poll(load, REFRESH_MS, (err) => status.error(err.message));
  return () => list.stop();
}

registerView({
  route: 'sessions',
  title: 'Sessions',
  nav: 3.5,
  mount(el, ctx) {
    const id = ctx.params[0];
    return id ? mountSession(el, ctx, id) : mountList(el, ctx);
  },
});
