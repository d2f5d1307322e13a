/**
 * Inspector: every message the console's connection sees (after the SDK's deduplication: what the
 * views show), newest first, filtered by channel, type and publisher; pause (new messages are held,
 * counted, and shown on resume), pretty-printed collapsible JSON, copy one, export the matching
 * ones as NDJSON.
 */
import { field, fill, fmtTime, h } from '../dom.js';
import { jsonView } from '../json-view.js';
import type { SeenMessage } from '../live.js';
import { publisherText } from '../publisher.js';
import { registerView } from '../router.js';

/** Rows on screen at most; the store keeps more (INSPECTOR_CAPACITY) for export and filtering. */
const SHOWN = 300;

interface Filter {
  channel: string;
  type: string;
  publisher: string;
}

/** Substring matches, case-insensitive; an empty field matches everything. */
export function matches(m: SeenMessage, f: Filter): boolean {
  const has = (value: string | undefined, want: string) => want === '' || (value ?? '').toLowerCase().includes(want.toLowerCase());
  return has(m.msg.channel, f.channel) && has(m.msg.type, f.type) && has(publisherText(m.msg.publisher), f.publisher);
}

registerView({
  route: 'inspector',
  title: 'Inspector',
  nav: 4,
  mount(el, { live }) {
    const channel = h('input', { type: 'search', name: 'channel', placeholder: 'room:', autocomplete: 'off' });
    const type = h('input', { type: 'search', name: 'type', placeholder: 'prp.created', autocomplete: 'off', list: 'inspector-types' });
    const types = h('datalist', { id: 'inspector-types' });
    const publisher = h('input', { type: 'search', name: 'publisher', placeholder: 'usr_1', autocomplete: 'off' });
    const pause = h('button', { type: 'button', 'aria-pressed': 'false', id: 'inspector-pause' }, 'Pause');
    const clear = h('button', { type: 'button' }, 'Clear');
    const exportBtn = h('button', { type: 'button' }, 'Export NDJSON');
    const count = h('span', { class: 'dim', role: 'status', id: 'inspector-count' });
    const watchInput = h('input', { type: 'text', name: 'watch', placeholder: 'room:lobby', autocomplete: 'off' });
    const watchForm = h('form', { class: 'filters' }, field('Watch a channel', watchInput), h('button', { type: 'submit' }, 'Watch'));
    const watching = h('div', { class: 'chips', id: 'inspector-watching' });
    const renderWatching = () => fill(watching, ...[...live.watched].sort().map((ch) => h('span', { class: 'chip' }, ch,
      h('button', { type: 'button', class: 'x', 'aria-label': `Stop watching ${ch}`, onclick: () => { live.unwatch(ch); renderWatching(); } }, '×'))));
    watchForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const ch = watchInput.value.trim();
      if (!ch) return;
      live.watch(ch);
      watchInput.value = '';
      renderWatching();
    });
    renderWatching();
    const list = h('ol', { class: 'messages', id: 'inspector-list' });
    fill(el, h('h1', {}, 'Inspector'),
      h('p', { class: 'dim' }, 'Every message the console\'s connection receives. Watch a channel to subscribe to it while this page is open.'),
      watchForm, watching,
      h('div', { class: 'filters' }, field('Channel', channel), field('Type', type), field('Publisher', publisher), types),
      h('div', { class: 'toolbar' }, pause, clear, exportBtn, count),
      list);

    let paused = false;
    let held = 0;
    /** Messages before this seq are cleared from view. */
    let from = 0;
    const seenTypes = new Set<string>();
    const filter = (): Filter => ({ channel: channel.value.trim(), type: type.value.trim(), publisher: publisher.value.trim() });

    const row = (m: SeenMessage) => {
      const text = JSON.stringify(m.msg);
      const copy = h('button', { type: 'button', class: 'quiet', 'aria-label': `Copy message ${m.seq}` }, 'Copy');
      copy.addEventListener('click', () => {
        navigator.clipboard.writeText(text).then(() => { copy.textContent = 'Copied'; }, () => { copy.textContent = 'Copy failed'; });
      });
      const details = h('details', { class: 'msg' },
        h('summary', {},
          h('span', { class: 'dim mono' }, `${m.seq}`), h('span', { class: 'dim' }, fmtTime(m.at)),
          h('span', { class: 'type' }, m.msg.type),
          m.msg.channel ? h('span', { class: 'mono' }, `${m.msg.channel}${m.msg.offset !== undefined ? `#${m.msg.offset}` : ''}`) : null,
          h('span', { class: 'dim' }, publisherText(m.msg.publisher))),
        jsonView(m.msg));
      return h('li', { 'data-seq': m.seq, 'data-type': m.msg.type }, details, copy);
    };

    const visible = () => live.seen.filter((m) => m.seq > from && matches(m, filter()));
    const renderAll = () => {
      const shown = visible();
      fill(list, ...shown.slice(-SHOWN).reverse().map(row));
      held = 0;
      renderCount(shown.length);
    };
    const renderCount = (n?: number) => {
      const total = n ?? visible().length;
      count.textContent = `${total} message${total === 1 ? '' : 's'}${paused ? ` · paused, ${held} new held` : ''}`;
    };

    const off = live.onMessage.on((m) => {
      if (!seenTypes.has(m.msg.type)) {
        seenTypes.add(m.msg.type);
        types.append(h('option', { value: m.msg.type }));
      }
      if (!matches(m, filter())) return;
      if (paused) {
        held++;
        renderCount();
        return;
      }
      list.prepend(row(m));
      while (list.childElementCount > SHOWN) list.lastElementChild!.remove();
      renderCount();
    });
    for (const m of live.seen) seenTypes.add(m.msg.type);
    for (const t of [...seenTypes].sort()) types.append(h('option', { value: t }));

    for (const input of [channel, type, publisher]) input.addEventListener('input', renderAll);
    pause.addEventListener('click', () => {
      paused = !paused;
      pause.textContent = paused ? 'Resume' : 'Pause';
      pause.setAttribute('aria-pressed', String(paused));
      if (paused) renderCount();
      else renderAll();
    });
    clear.addEventListener('click', () => {
      from = live.seen.length ? live.seen[live.seen.length - 1]!.seq : from;
      renderAll();
    });
    exportBtn.addEventListener('click', () => {
      const ndjson = visible().map((m) => JSON.stringify({ seq: m.seq, receivedAt: new Date(m.at).toISOString(), message: m.msg })).join('\n');
      const url = URL.createObjectURL(new Blob([ndjson ? `${ndjson}\n` : ''], { type: 'application/x-ndjson' }));
      const a = h('a', { href: url, download: `signalbox-inspector-${new Date().toISOString().replace(/[:.]/g, '-')}.ndjson` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    });
    renderAll();
    return () => off();
  },
});
