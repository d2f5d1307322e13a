/**
 * One channel: a live tail (the console's SDK subscription: recovered after a reconnect, never a
 * gap or a duplicate), a history browser that pages back (GET /v1/channels/{c}/history, following
 * `next` when a page is cut for size), and presence that updates live: the full list after every
 * (re)subscribe, then each `presence.joined` / `presence.left` publication of the channel's stream.
 */
import type { PresenceMember, PublicationMessage, StreamPosition, SubscribedEvent } from '@signalbox/client';
import { api, seg, ApiError } from '../api.js';
import { fill, fmtTime, h, statusLine } from '../dom.js';
import { jsonView } from '../json-view.js';
import { publisherText } from '../publisher.js';
import { registerView } from '../router.js';

const TAIL_MAX = 200;
const PAGE = 20;

interface HistoryPage {
  position: StreamPosition;
  earliestOffset: number;
  publications: PublicationMessage[];
  next?: StreamPosition;
}

function pubRow(p: PublicationMessage): HTMLElement {
  return h('li', { class: 'pub', 'data-offset': p.offset, 'data-type': p.type },
    h('div', { class: 'pub-head' },
      h('span', { class: 'mono offset' }, `#${p.offset}`), h('span', { class: 'type' }, p.type),
      h('span', { class: 'dim' }, publisherText(p.publisher)), h('span', { class: 'dim' }, fmtTime(p.timestamp))),
    jsonView(p.data));
}

registerView({
  route: 'channel',
  title: 'Channel',
  mount(el, { live, params }) {
    const channel = params[0] ?? '';
    const status = statusLine();
    const position = h('span', { class: 'dim', id: 'channel-position' });
    const tail = h('ol', { class: 'pubs', id: 'tail', 'aria-live': 'polite' });
    const tailNote = h('p', { class: 'dim' }, 'Subscribing…');
    const historyList = h('ol', { class: 'pubs', id: 'history' });
    const historyNote = h('p', { class: 'dim' });
    const older = h('button', { type: 'button', disabled: true }, 'Older »');
    const newest = h('button', { type: 'button' }, 'Newest');
    const members = h('ul', { class: 'members', id: 'presence' });
    const presenceNote = h('p', { class: 'dim' });
    const clearBtn = h('button', { type: 'button', class: 'danger' }, 'Clear history');
    fill(el,
      h('h1', {}, h('span', { class: 'dim' }, 'Channel '), h('span', { class: 'mono' }, channel)), position, status.el,
      h('div', { class: 'columns' },
        h('section', { class: 'panel', 'aria-label': 'Live tail' }, h('h2', {}, 'Live tail'), tailNote, tail),
        h('section', { class: 'panel', 'aria-label': 'History' }, h('h2', {}, 'History'), h('div', { class: 'pager' }, newest, older, clearBtn), historyNote, historyList),
        h('section', { class: 'panel', 'aria-label': 'Presence' }, h('h2', {}, 'Presence'), presenceNote, members)));
    if (!channel) {
      status.error('No channel named in the address.');
      return () => {};
    }

    // ---- live tail ----
    const sub = live.acquire(channel);
    const onPub = (p: PublicationMessage) => {
      tail.prepend(pubRow(p));
      while (tail.childElementCount > TAIL_MAX) tail.lastElementChild!.remove();
      position.textContent = `position ${p.epoch}:${p.offset}`;
      if (p.type === 'presence.joined' || p.type === 'presence.left') onPresence(p);
    };
    const onSubscribed = (e: SubscribedEvent) => {
      tailNote.textContent = e.resubscribed
        ? e.recovered === false ? `Resubscribed; could not recover what was missed (${e.reason ?? 'unknown'}).` : 'Resubscribed; missed publications recovered.'
        : 'Live.';
      if (e.position) position.textContent = `position ${e.position.epoch}:${e.position.offset}`;
      void loadPresence();
    };
    const onUnsub = () => { tailNote.textContent = 'Not subscribed (removed or refused).'; };
    const onErr = (err: Error) => { tailNote.textContent = `Subscription error: ${err.message}`; };
    sub.on('publication', onPub).on('subscribed', onSubscribed).on('unsubscribed', onUnsub).on('error', onErr);
    if (sub.state === 'subscribed') onSubscribed({ channel, resubscribed: false, ...(sub.position ? { position: sub.position } : {}) });

    // ---- history, paging back ----
    let lo = 0;
    let earliest = 0;
    let epoch = '';
    const fetchRange = async (from: number, to: number): Promise<PublicationMessage[]> => {
      const out: PublicationMessage[] = [];
      let since = from - 1;
      while (since < to) {
        const q = new URLSearchParams({ since_epoch: epoch, since_offset: String(since), limit: String(to - since) });
        const page = await api<HistoryPage>(`/v1/channels/${seg(channel)}/history?${q}`);
        out.push(...page.publications.filter((p) => p.offset <= to));
        if (!page.next || page.publications.length === 0) break;
        since = page.next.offset;
      }
      return out;
    };
    const showPage = async (hi: number | null) => {
      try {
        const top = await api<HistoryPage>(`/v1/channels/${seg(channel)}/history?limit=0`);
        epoch = top.position.epoch;
        earliest = top.earliestOffset;
        const upper = hi ?? top.position.offset;
        if (upper < earliest) {
          fill(historyList);
          historyNote.textContent = top.position.offset === 0 ? 'Nothing published yet.' : 'No retained publications (history off or expired).';
          older.disabled = true;
          return;
        }
        lo = Math.max(earliest, upper - PAGE + 1);
        const pubs = await fetchRange(lo, upper);
        fill(historyList, ...pubs.reverse().map(pubRow));
        historyNote.textContent = `Offsets ${lo}–${upper} of ${earliest}–${top.position.offset} retained.`;
        older.disabled = lo <= earliest;
      } catch (err) {
        historyNote.textContent = err instanceof ApiError ? `${err.code}: ${err.message}` : String(err);
      }
    };
    older.addEventListener('click', () => void showPage(lo - 1));
    newest.addEventListener('click', () => void showPage(null));
    clearBtn.addEventListener('click', () => {
      if (!window.confirm(`Drop every retained publication of ${channel}?`)) return;
      api(`/v1/channels/${seg(channel)}/history`, { method: 'DELETE' })
        .then(() => { status.ok('History cleared.'); return showPage(null); })
        .catch((err: Error) => status.error(err.message));
    });
    void showPage(null);

    // ---- presence ----
    const present = new Map<string, PresenceMember>();
    /** Changes seen while the full list is being fetched: applied on top of it. */
    let pending: PublicationMessage[] | null = null;
    let presenceOn = true;
    const own = () => live.client.connectionId;
    const renderPresence = () => {
      const list = [...present.values()].sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0));
      presenceNote.textContent = `${list.length} member${list.length === 1 ? '' : 's'}`;
      fill(members, ...list.map((m) => h('li', { 'data-client': m.clientId },
        h('span', {}, m.userId), h('span', { class: 'mono dim' }, ` ${m.clientId}`), m.clientId === own() ? h('span', { class: 'tag' }, 'this console') : null)));
    };
    const apply = (p: PublicationMessage) => {
      const m = (p.data as { member?: PresenceMember } | null)?.member;
      if (!m || typeof m.clientId !== 'string') return;
      if (p.type === 'presence.joined') present.set(m.clientId, m);
      else present.delete(m.clientId);
    };
    function onPresence(p: PublicationMessage): void {
      if (!presenceOn) return;
      if (pending) pending.push(p);
      else {
        apply(p);
        renderPresence();
      }
    }
    const loadPresence = async () => {
      if (!presenceOn) return;
      pending = [];
      try {
        const r = await api<{ members: PresenceMember[] }>(`/v1/channels/${seg(channel)}/presence`);
        present.clear();
        for (const m of r.members) present.set(m.clientId, m);
        for (const p of pending) apply(p);
        renderPresence();
      } catch (err) {
        if (err instanceof ApiError && err.status === 403) {
          presenceOn = false;
          presenceNote.textContent = 'Presence is off for this namespace.';
        } else presenceNote.textContent = (err as Error).message;
      } finally {
        pending = null;
      }
    };

    return () => {
      sub.off('publication', onPub).off('subscribed', onSubscribed).off('unsubscribed', onUnsub).off('error', onErr);
      live.release(channel);
    };
  },
});
