/**
 * The document editor: CodeMirror 6 bound to a Yjs document on a `doc:{id}` channel through
 * `@signalbox/yjs` (y-codemirror.next draws the others' cursors and selections from awareness).
 * Loaded on demand by views/documents.ts (its own chunk), so the rest of the console does not
 * download an editor. Others' cursors come from remote-cursors.ts (y-codemirror.next's own colours
 * them with inline styles, which the console's CSP refuses).
 *
 * The editor lives in a shadow root: CodeMirror's styles then go into constructed style sheets
 * (adoptedStyleSheets), which the CSP (`style-src 'self'`) allows, where in the document itself
 * they would be a `<style>` element it refuses. It talks to the gateway on a client of its own in
 * MessagePack, so a Yjs update travels as bytes (a JSON client would carry them as base64).
 *
 * The text is the document's `Y.Text` named `codemirror`, the name y-codemirror.next's own demos
 * use, so a stock y-websocket + CodeMirror page on `/yjs` edits the same text.
 */
import { EditorView, basicSetup } from 'codemirror';
import { oneDark } from '@codemirror/theme-one-dark';
import { yCollab } from 'y-codemirror.next';
import * as Y from 'yjs';
import { Awareness } from 'y-protocols/awareness';
import { SignalboxClient } from '@signalbox/client';
import { msgpack } from '@signalbox/client/msgpack';
import { SignalboxProvider, type ProviderClient, type ProviderStatus } from '@signalbox/yjs';
import type { SignalboxClientOptions } from '@signalbox/client';
import { comeBack } from './live.js';
import { peerClass, remoteCursors } from './remote-cursors.js';

/** The shared text's name in the document. */
export const TEXT_NAME = 'codemirror';

export interface EditorUser {
  name: string;
  /** Caret colour other y-codemirror.next editors show (the console itself colours by client id). */
  color: string;
  colorLight: string;
}

/** Someone else on the document, from awareness. */
export interface Peer {
  clientId: number;
  name: string;
  /** The colour class its caret has here (remote-cursors.ts). */
  colourClass: string;
}

export interface EditorHandle {
  /** The current text (for the character count and tests). */
  text(): string;
  setUser(user: EditorUser): void;
  destroy(): void;
}

export interface EditorEvents {
  /** The editor's connection: its id while connected (shown, and what an admin would disconnect). */
  status(status: ProviderStatus, connectionId: string | undefined): void;
  synced(synced: boolean): void;
  peers(peers: Peer[]): void;
  changed(length: number): void;
}

/**
 * The editor's frame in the console's palette (its custom properties reach into the shadow root):
 * oneDark's text colours on the console's field background, sizes and the focus ring. Before
 * oneDark in the extensions, so it wins where both set a property.
 */
const frame = EditorView.theme({
  '&': { height: 'max(420px, calc(100vh - 190px))', borderRadius: '6px', backgroundColor: 'var(--input, #0b1016)', border: '1px solid var(--line, #263241)', overflow: 'hidden' },
  '&.cm-focused': { outline: '2px solid var(--accent, #58a6ff)', outlineOffset: '-1px' },
  '.cm-scroller': { overflow: 'auto', fontFamily: 'ui-monospace, SFMono-Regular, Menlo, monospace', fontSize: '13px', lineHeight: '1.6' },
  '.cm-gutters': { backgroundColor: 'var(--input, #0b1016)', color: 'var(--dim, #8796a8)', borderRight: '1px solid var(--line, #263241)' },
  '.cm-activeLine': { backgroundColor: '#ffffff08' },
  '.cm-activeLineGutter': { backgroundColor: '#ffffff0d', color: 'var(--text, #d7dee6)' },
  // Room above the first line for another editor's name over its caret (remote-cursors.ts).
  '.cm-content': { caretColor: 'var(--text, #d7dee6)', paddingTop: '16px' },
  '.cm-cursor, .cm-dropCursor': { borderLeftColor: 'var(--text, #d7dee6)' },
}, { dark: true });

/**
 * @param clientOptions how to reach the gateway (the console's URL and token source); the editor
 *   adds MessagePack and connects a client of its own.
 */
export function mountEditor(parent: HTMLElement, clientOptions: SignalboxClientOptions, channel: string, user: EditorUser, on: EditorEvents): EditorHandle {
  const client = new SignalboxClient({ ...clientOptions, format: msgpack });
  const doc = new Y.Doc();
  const awareness = new Awareness(doc);
  awareness.setLocalStateField('user', user);
  const provider = new SignalboxProvider(client as unknown as ProviderClient, channel, doc, { awareness });
  const ytext = doc.getText(TEXT_NAME);
  const undoManager = new Y.UndoManager(ytext);
  const root = parent.shadowRoot ?? parent.attachShadow({ mode: 'open' });
  const host = document.createElement('div');
  root.replaceChildren(host);
  const view = new EditorView({
    doc: ytext.toString(),
    extensions: [frame, basicSetup, oneDark, EditorView.lineWrapping, yCollab(ytext, null, { undoManager }), remoteCursors(ytext, awareness)],
    parent: host,
    root,
  });
  let destroyed = false;
  comeBack(client, () => destroyed);
  client.connect().catch(() => { /* the client retries by itself; the status pill says so */ });

  const peers = (): Peer[] => {
    const out: Peer[] = [];
    for (const [clientId, state] of awareness.getStates()) {
      if (clientId === doc.clientID) continue;
      const u = (state as { user?: Partial<EditorUser> }).user;
      out.push({ clientId, name: typeof u?.name === 'string' ? u.name.slice(0, 40) : `client ${clientId}`, colourClass: peerClass(clientId) });
    }
    return out.sort((a, b) => a.name.localeCompare(b.name) || a.clientId - b.clientId);
  };
  const onAwareness = (): void => on.peers(peers());
  awareness.on('change', onAwareness);
  const onText = (): void => on.changed(ytext.length);
  ytext.observe(onText);
  provider.on('status', (e: { status: ProviderStatus }) => on.status(e.status, client.connectionId));
  provider.on('synced', (s: boolean) => on.synced(s));
  on.status(provider.status, client.connectionId);
  on.synced(provider.synced);
  on.changed(ytext.length);

  return {
    text: () => ytext.toString(),
    setUser(u) {
      awareness.setLocalStateField('user', u);
    },
    destroy() {
      destroyed = true;
      awareness.off('change', onAwareness);
      ytext.unobserve(onText);
      view.destroy();
      provider.destroy();
      client.disconnect();
      awareness.destroy();
      doc.destroy();
    },
  };
}
