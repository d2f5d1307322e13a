/**
 * The console's entry: sign-in (a dev one-time code from the URL fragment, or an admin key/token
 * typed in), then the shell (header, navigation, the current view) around one {@link Live}
 * connection. Views come from the registry (router.ts); every file of views/ registers one.
 */
import 'uplot/dist/uPlot.min.css';
import './style.css';
import 'virtual:views';
import type { StateChange } from '@signalbox/client';
import { api, whenSignedOut, type SessionInfo } from './api.js';
import { field, fill, h } from './dom.js';
import { Live, appErrors } from './live.js';
import { hashFor, listedViews, parseHash, viewFor } from './router.js';

const root = document.getElementById('app')!;

/** A JWT has three base64url parts; anything else typed in is taken for an API key. */
const looksLikeJwt = (s: string) => /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(s);

function signInView(message?: string): void {
  document.title = 'Sign in · Signalbox console';
  const secret = h('input', { type: 'password', name: 'credential', autocomplete: 'off', required: true, spellcheck: 'false', id: 'credential' });
  const status = h('p', { class: 'status bad', role: 'alert' }, message ?? '');
  const form = h('form', { class: 'signin panel', novalidate: true },
    h('h1', {}, 'Signalbox console'),
    h('p', { class: 'dim' }, 'Sign in with an API key that has the admin scope, or an admin token. It is exchanged for a short-lived session cookie; the page never keeps it.'),
    field('Admin API key or admin token', secret),
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
    status,
    h('p', { class: 'dim' }, 'Running ', h('code', {}, 'npm start'), '? Open the one-time console link it printed.'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const value = secret.value.trim();
    if (!value) return;
    status.textContent = '';
    api<SessionInfo>('/console/session', { method: 'POST', body: looksLikeJwt(value) ? { token: value } : { key: value } })
      .then((s) => {
        secret.value = '';
        startApp(s);
      })
      .catch((err: Error) => { status.textContent = err.message; });
  });
  fill(root, h('main', { class: 'center' }, form));
  secret.focus();
}

const STATE_TEXT: Record<string, string> = {
  connected: 'live', connecting: 'connecting…', reconnecting: 'reconnecting…', disconnected: 'offline', closed: 'offline',
};

function startApp(session: SessionInfo): void {
  const live = new Live();
  const nav = h('nav', { 'aria-label': 'Views' }, ...listedViews().map((v) => h('a', { href: hashFor(v.route), 'data-route': v.route }, v.title)));
  const state = h('span', { class: 'pill off', id: 'conn-state', role: 'status', title: 'The console\'s WebSocket' }, 'connecting…');
  const signOut = h('button', { type: 'button', class: 'quiet', title: `Signed in as ${session.name}` }, 'Sign out');
  const header = h('header', { class: 'top' }, h('a', { class: 'brand', href: hashFor('overview') }, 'Signalbox'), nav, state, signOut);
  const main = h('main', { id: 'view', tabindex: '-1' });
  const toast = h('div', { class: 'toast', role: 'alert', hidden: true });
  fill(root, header, main, toast);

  live.onState.on((c: StateChange) => {
    state.textContent = STATE_TEXT[c.to] ?? c.to;
    state.className = `pill ${c.to === 'connected' ? 'on' : c.to === 'closed' || c.to === 'disconnected' ? 'off' : 'wait'}`;
    state.title = `WebSocket ${c.to}${c.code ? ` (close ${c.code})` : ''}${live.client.connectionId ? `, ${live.client.connectionId}` : ''}`;
  });
  let toastTimer: ReturnType<typeof setTimeout> | undefined;
  appErrors.on((msg) => {
    toast.textContent = msg;
    toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toast.hidden = true; }, 8000);
  });

  let unmount: (() => void) | null = null;
  const show = () => {
    const { route, params } = parseHash(location.hash);
    const view = viewFor(route) ?? viewFor('overview')!;
    if (!viewFor(route)) history.replaceState(null, '', hashFor('overview'));
    unmount?.();
    unmount = null;
    main.replaceChildren();
    for (const a of nav.querySelectorAll('a')) {
      if (a.dataset.route === view.route || (view.route === 'channel' && a.dataset.route === 'channels')) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    document.title = `${view.title}${params[0] ? ` ${params[0]}` : ''} · Signalbox console`;
    unmount = view.mount(main, { live, params, navigate: (r, ...p) => { location.hash = hashFor(r, ...p); } });
  };
  window.addEventListener('hashchange', () => {
    show();
    main.focus({ preventScroll: true });
  });
  const end = (message?: string) => {
    unmount?.();
    unmount = null;
    live.stop();
    signInView(message);
  };
  signOut.addEventListener('click', () => {
    api('/console/session', { method: 'DELETE' }).finally(() => end('Signed out.'));
  });
  whenSignedOut(() => end('The console session ended: sign in again.'));
  show();
  live.start();
}

async function boot(): Promise<void> {
  // Dev mode's one-time link: `/console#code=...` (a fragment never reaches logs or a Referer).
  const code = /^#code=([A-Za-z0-9_-]{8,128})$/.exec(location.hash)?.[1];
  let message: string | undefined;
  if (code) {
    history.replaceState(null, '', `${location.pathname}${hashFor('overview')}`);
    await api('/console/session', { method: 'POST', body: { code } }).catch((err: Error) => { message = `One-time link: ${err.message}`; });
  }
  const session = await api<SessionInfo & { signedIn: boolean }>('/console/session').catch(() => null);
  if (session?.signedIn) startApp(session);
  else signInView(message);
}

void boot();
