/**
 * One session's debugger page (`#/sessions/{id}`): the live screen, console, network, errors,
 * the command bar, the audit trail, who else is watching, and what the source said about itself.
 *
 * Exactly once: the page subscribes (the console's shared SDK connection; it recovers from its
 * last position after every reconnect), and once the subscription is confirmed reads the retained
 * history (GET /v1/channels/{c}/history, following `next`). Live publications that arrive
 * meanwhile are held, then everything passes the {@link OffsetGate} in offset order: the overlap
 * of history and live, or a recovery and a history read, is dropped there. When a resubscribe
 * could not recover (`recovered: false`), the history is read again from the last offset shown
 * (or its retained tail, when that offset is gone), and a hole in the offsets is said where it is:
 * every event of the stream (frames too) passes the gate, so a hole is events nobody can get back.
 */
import type { PresenceMember, PublicationMessage, StreamPosition, SubscribedEvent } from '@signalbox/client';
import { api, seg, ApiError } from '../../api.js';
import { fill, h } from '../../dom.js';
import type { ViewContext } from '../../router.js';
import { commandBar } from './commands.js';
import {
  OffsetGate, fmtMs,
  type ConsoleEvent, type ErrorEvent, type FrameEvent, type NavigationEvent, type NetworkEvent, type StartedEvent,
} from './model.js';
import { auditPanel, consolePanel, errorsPanel, networkPanel } from './panels.js';
import { screen } from './screen.js';

interface HistoryPage {
  position: StreamPosition;
  earliestOffset: number;
  publications: PublicationMessage[];
  next?: StreamPosition;
}

/** Live publications held while a history read is in flight, at most (frames are never held). */
const HOLD_MAX = 10_000;
const CALL_TIMEOUT_MS = 15_000;

/** A source of the session: a connection that published its events. */
interface Source {
  client: string;
  sub: string;
  kind: string;
  lastTs: number;
  url: string;
}

export function mountSession(el: HTMLElement, { live }: ViewContext, session: string): () => void {
  const channel = `session:${session}`;
  const state = h('span', { class: 'pill wait', id: 'session-state', role: 'status' }, 'opening…');
  const position = h('span', { class: 'dim mono', id: 'session-position' });
  const historyNote = h('p', { class: 'dim', id: 'session-history' });
  const sourceInfo = h('div', { id: 'session-source', class: 'dim' }, 'No source has published on this session yet.');
  const sourcesList = h('ul', { class: 'members', id: 'session-sources' });
  const viewers = h('ul', { class: 'members', id: 'session-viewers' });
  const viewersNote = h('p', { class: 'dim' });

  const call = (method: string, params: unknown) => live.client.call(channel, method, params, { timeout: CALL_TIMEOUT_MS });
  const scr = screen((m, p) => call(m, p));
  const bar = commandBar(call);
  const cons = consolePanel();
  const net = networkPanel();
  const errs = errorsPanel();
  const audit = auditPanel();

  fill(el,
    h('h1', {}, h('a', { href: '#/sessions', class: 'dim' }, 'Sessions'), h('span', { class: 'dim' }, ' / '), h('span', { class: 'mono' }, session), ' ', state),
    h('p', { class: 'dim' }, h('span', { class: 'mono' }, channel), ' · ', position),
    historyNote,
    h('div', { class: 'session-top' },
      scr.el,
      h('div', { class: 'session-side' },
        h('section', { class: 'panel', 'aria-label': 'Who is here' },
          h('h2', {}, 'Source'), sourceInfo, sourcesList,
          h('h2', { class: 'gap' }, 'Viewers'), viewersNote, viewers),
        bar.el)),
    h('div', { class: 'columns two' }, cons.el, net.el),
    h('div', { class: 'columns two' }, errs.el, audit.el));

  // ---- the source(s): who publishes the session's events ----
  const sources = new Map<string, Source>();
  let started: StartedEvent | null = null;
  const renderSources = () => {
    if (started) {
      fill(sourceInfo,
        h('div', {}, h('span', { class: 'tag src' }, started.source === 'cdp' ? 'CDP bridge' : 'in-page SDK'), ' ', h('span', { class: 'mono', id: 'session-url' }, currentUrl || started.url)),
        h('div', {}, `captures ${started.capture.join(', ') || 'nothing'} · answers ${started.commands.join(', ') || 'no command'}`));
    }
    fill(sourcesList, ...[...sources.values()].map((s) => h('li', { 'data-client': s.client, 'data-kind': s.kind },
      h('span', {}, s.sub), h('span', { class: 'mono dim' }, ` ${s.client}`), h('span', { class: 'tag src' }, s.kind === 'cdp' ? 'bridge' : 'page'),
      h('span', { class: 'dim' }, ` last event ${fmtMs(s.lastTs)}`))));
  };
  let currentUrl = '';

  // ---- one event, shown ----
  const gate = new OffsetGate();
  let lastFrame = 0;
  /** Events that could not be recovered (holes in the offsets shown). */
  let missing = 0;
  const show = (p: PublicationMessage): void => {
    const prev = gate.last;
    const verdict = gate.admit(p);
    if (verdict === 'duplicate') return;
    if (verdict === 'reset') cons.list.add(p.offset, { kind: 'note', text: `The stream restarted (epoch ${p.epoch}): what came before it is not comparable.`, ts: Date.now() });
    // Every event of the stream passes here, so a hole in the offsets is events this viewer cannot get back.
    if (verdict === 'new' && prev > 0 && p.offset > prev + 1) {
      const n = p.offset - prev - 1;
      missing += n;
      cons.list.add(p.offset, { kind: 'note', text: `${n} event${n === 1 ? '' : 's'} missing here: no longer in the history (offsets ${prev + 1}–${p.offset - 1})`, ts: Date.now() });
    }
    position.textContent = `position ${p.epoch}:${p.offset}`;
    const d = p.data as Record<string, unknown> | null;
    const pub = p.publisher as { via?: string; sub?: string; client?: string } | undefined;
    if (pub?.via === 'ws' && pub.client && p.type !== 'presence.joined' && p.type !== 'presence.left' && d && typeof d.ts === 'number') {
      const s = sources.get(pub.client) ?? { client: pub.client, sub: pub.sub ?? '?', kind: String(d.source ?? ''), lastTs: 0, url: '' };
      s.lastTs = d.ts;
      sources.set(pub.client, s);
      if (sources.size > 20) sources.delete(sources.keys().next().value!);
      if (p.type !== 'page.frame') renderSources();
    }
    const type = p.type;
    if (type.startsWith('console.')) cons.list.add(p.offset, { kind: 'console', e: d as unknown as ConsoleEvent });
    else if (type.startsWith('error.')) errs.list.add(p.offset, { type, e: d as unknown as ErrorEvent });
    else if (type === 'network.request') net.list.add(p.offset, d as unknown as NetworkEvent);
    else if (type === 'page.frame') {
      if (d && p.offset > lastFrame) {
        lastFrame = p.offset;
        scr.show(d as unknown as FrameEvent);
      }
    } else if (type === 'page.navigation') {
      const n = d as unknown as NavigationEvent;
      currentUrl = n.url;
      cons.list.add(p.offset, { kind: 'nav', e: n });
      renderSources();
    } else if (type === 'page.started') {
      started = d as unknown as StartedEvent;
      currentUrl = started.url;
      bar.offered(Array.isArray(started.commands) ? started.commands : []);
      if (started.source === 'page') scr.noScreen();
      cons.list.add(p.offset, { kind: 'note', text: `${started.source === 'cdp' ? 'Bridge' : 'Page'} started on ${started.url}`, ts: started.ts });
      renderSources();
    } else if (type === 'page.dropped') {
      const x = d as { count?: number; reason?: string; ts: number };
      cons.list.add(p.offset, { kind: 'note', text: `${x.count ?? '?'} events dropped by the source (${x.reason ?? '?'})`, ts: x.ts });
    } else if (type === 'page.visibility') {
      cons.list.add(p.offset, { kind: 'note', text: `page ${String((d as { state?: string }).state)}`, ts: Number((d as { ts?: number }).ts) });
    } else if (type === 'debug.command' || type === 'debug.result' || type === 'presence.joined' || type === 'presence.left') {
      audit.add(p);
    }
  };

  // ---- history, then live: held while a read is in flight ----
  let held: PublicationMessage[] | null = [];
  let heldDropped = 0;
  let stopped = false;
  let fromHistory = 0;
  const readHistory = async (since: StreamPosition | null): Promise<void> => {
    held ??= [];
    let read = 0;
    const readFrom = async (from: StreamPosition | null): Promise<void> => {
      let q = from ? `since_epoch=${encodeURIComponent(from.epoch)}&since_offset=${from.offset}&limit=1000` : 'limit=1000';
      for (let pages = 0; pages < 1000; pages++) {
        const page = await api<HistoryPage>(`/v1/channels/${seg(channel)}/history?${q}`);
        if (stopped) return;
        for (const p of page.publications) {
          const before = gate.last;
          show(p);
          if (gate.last !== before) read++;
        }
        if (!page.next || page.publications.length === 0) break;
        q = `since_epoch=${encodeURIComponent(page.next.epoch)}&since_offset=${page.next.offset}&limit=1000`;
      }
    };
    const missingBefore = missing;
    try {
      try {
        // Whether the history still holds what follows `since` (else read its retained tail, not a 409).
        const top = since ? await api<HistoryPage>(`/v1/channels/${seg(channel)}/history?limit=0`) : null;
        const whole = !!since && !!top && top.position.epoch === since.epoch && since.offset >= top.earliestOffset - 1;
        await readFrom(whole ? since : null);
      } catch (err) {
        // What followed `since` is (partly) gone: the retained tail instead; the hole is said where it is.
        if (!(since && err instanceof ApiError && err.code === 'UNRECOVERABLE_POSITION')) throw err;
        await readFrom(null);
      }
      if (stopped) return;
      fromHistory += since ? 0 : read;
      const lost = missing - missingBefore;
      historyNote.textContent = since
        ? `The resubscribe could not recover what was missed: read back ${read} event${read === 1 ? '' : 's'} from the history${lost > 0 ? `; ${lost} no longer there` : ''}.`
        : `${fromHistory} event${fromHistory === 1 ? '' : 's'} from before this viewer attached (the session's retained history), then live.`;
    } catch (err) {
      historyNote.textContent = `History: ${err instanceof ApiError ? `${err.code}: ` : ''}${(err as Error).message}`;
    } finally {
      const hold = held ?? [];
      held = null;
      for (const p of hold) show(p);
      if (heldDropped > 0) cons.list.add(gate.last, { kind: 'note', text: `${heldDropped} live events were not kept while the history loaded`, ts: Date.now() });
      heldDropped = 0;
    }
  };

  // ---- presence: the full list after every (re)subscribe, then joined/left as they come ----
  const present = new Map<string, PresenceMember>();
  let pendingPresence: PublicationMessage[] | null = null;
  const renderViewers = () => {
    const list = [...present.values()].sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : a.clientId < b.clientId ? -1 : 1));
    viewersNote.textContent = `${list.length} viewer${list.length === 1 ? '' : 's'} watching`;
    fill(viewers, ...list.map((m) => h('li', { 'data-client': m.clientId, ...(m.clientId === live.client.connectionId ? { 'data-self': '' } : {}) },
      h('span', {}, m.userId), h('span', { class: 'mono dim' }, ` ${m.clientId}`), m.clientId === live.client.connectionId ? h('span', { class: 'tag' }, 'you') : null)));
  };
  const applyPresence = (p: PublicationMessage) => {
    const m = (p.data as { member?: PresenceMember } | null)?.member;
    if (!m || typeof m.clientId !== 'string') return;
    if (p.type === 'presence.joined') present.set(m.clientId, m);
    else present.delete(m.clientId);
  };
  const loadPresence = async () => {
    pendingPresence = [];
    try {
      const r = await api<{ members: PresenceMember[] }>(`/v1/channels/${seg(channel)}/presence`);
      present.clear();
      for (const m of r.members) present.set(m.clientId, m);
      for (const p of pendingPresence) applyPresence(p);
      renderViewers();
    } catch (err) {
      viewersNote.textContent = err instanceof ApiError && err.status === 403 ? 'Presence is off for this namespace.' : (err as Error).message;
    } finally {
      pendingPresence = null;
    }
  };

  // ---- the subscription ----
  const sub = live.acquire(channel);
  let historyRead = false;
  const onPub = (p: PublicationMessage) => {
    if (p.type === 'presence.joined' || p.type === 'presence.left') {
      if (pendingPresence) pendingPresence.push(p);
      else {
        applyPresence(p);
        renderViewers();
      }
    }
    if (held && p.type !== 'page.frame') {
      if (held.length < HOLD_MAX) held.push(p);
      else heldDropped++;
    } else if (held && p.type === 'page.frame') {
      // A frame is state, not history: the newest is drawn now (older ones from the history are not);
      // only its place in the stream is held, for the offsets to stay whole.
      if (p.offset > lastFrame) {
        lastFrame = p.offset;
        scr.show(p.data as FrameEvent);
      }
      if (held.length < HOLD_MAX) held.push({ ...p, data: null });
      else heldDropped++;
    } else show(p);
  };
  const onSubscribed = (e: SubscribedEvent) => {
    state.className = 'pill on';
    if (!historyRead) {
      historyRead = true;
      state.textContent = 'live';
      void readHistory(null);
    } else if (e.recovered === false) {
      state.textContent = 'live (gap read back)';
      void readHistory(gate.epoch === null ? null : { epoch: gate.epoch, offset: gate.last });
    } else {
      state.textContent = e.resubscribed ? 'live (recovered)' : 'live';
    }
    void loadPresence();
  };
  const onState = live.onState.on((c) => {
    if (c.to !== 'connected') {
      state.className = 'pill wait';
      state.textContent = c.to === 'reconnecting' || c.to === 'connecting' ? 'reconnecting…' : 'offline';
    }
  });
  const onUnsub = () => {
    state.className = 'pill off';
    state.textContent = 'not subscribed';
  };
  const onErr = (err: Error) => {
    state.className = 'pill off';
    state.textContent = `refused: ${err.message}`;
  };
  sub.on('publication', onPub).on('subscribed', onSubscribed).on('unsubscribed', onUnsub).on('error', onErr);
  if (sub.state === 'subscribed') onSubscribed({ channel, resubscribed: false, ...(sub.position ? { position: sub.position } : {}) });

  return () => {
    stopped = true;
    scr.stop();
    onState();
    sub.off('publication', onPub).off('subscribed', onSubscribed).off('unsubscribed', onUnsub).off('error', onErr);
    live.release(channel);
  };
}
