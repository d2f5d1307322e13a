/**
 * Other editors' carets, names and selections in CodeMirror, from Yjs awareness. It reads and
 * writes the awareness fields every y-codemirror.next editor uses (`cursor: {anchor, head}` as Yjs
 * relative positions, `user: {name, color}`), so a stock y-codemirror.next page shows the console's
 * cursor and the console shows its own.
 *
 * Written for the console's policy, not y-codemirror.next's remote-selection plugin, which colours
 * marks with inline `style` attributes that the console's CSP (`style-src 'self'`, nothing inline)
 * refuses: here a caret is coloured by a class, one of eight (`sb-peer-0` .. `sb-peer-7`, defined
 * in {@link remoteCursorsTheme} and, for the list of editors, in style.css) chosen from the client
 * id, so another editor's `color` never reaches a style rule, and its name is set as text. The
 * name sits above the caret (the editor leaves room above the first line, editor.ts) while that
 * editor moves and for {@link IDLE_MS} after, then fades to a flag; hovering the line shows it.
 */
import { Decoration, EditorView, ViewPlugin, WidgetType, type DecorationSet, type ViewUpdate } from '@codemirror/view';
import type { Range } from '@codemirror/state';
import * as Y from 'yjs';
import type { Awareness } from 'y-protocols/awareness';

/** The colour classes (the same eight as style.css's). */
const PALETTE = ['#f0883e', '#3fb950', '#58a6ff', '#db61a2', '#d29922', '#a371f7', '#39c5cf', '#f85149'];
export const PEER_COLOURS = PALETTE.length;

/** Carets, name tags and selections, per colour class. */
export const remoteCursorsTheme = EditorView.baseTheme({
  ...Object.fromEntries(PALETTE.flatMap((c, i) => [
    [`.sb-peer-${i}.sb-caret`, { borderLeftColor: c }],
    [`.sb-peer-${i} .sb-caret-name, .sb-peer-${i}.sb-caret::after`, { backgroundColor: c }],
    [`.sb-peer-${i}.sb-selection`, { backgroundColor: `${c}4d` }],
  ])),
  '.sb-caret': { position: 'relative', borderLeft: '2px solid', marginLeft: '-1px', marginRight: '-1px' },
  '.sb-caret-name': {
    position: 'absolute', left: '-2px', bottom: '100%', fontSize: '11px', lineHeight: '1.3', padding: '0 4px',
    borderRadius: '3px 3px 3px 0', color: '#0f1419', whiteSpace: 'nowrap', pointerEvents: 'none', userSelect: 'none', zIndex: '3',
    fontFamily: 'system-ui, sans-serif', fontWeight: '600',
  },
  // Idle (no move for IDLE_MS), the name gives the text above back: it fades to a small flag at the
  // top of the caret, and shows again while the pointer is on that line or the editor moves again.
  '.sb-caret-name, .sb-caret::after': { transition: 'opacity 0.3s' },
  '.sb-caret::after': {
    content: '""', position: 'absolute', left: '-4px', top: '-3px', width: '6px', height: '6px', borderRadius: '50%',
    opacity: '0', pointerEvents: 'none',
  },
  '.sb-caret.sb-idle .sb-caret-name': { opacity: '0' },
  '.sb-caret.sb-idle::after': { opacity: '1' },
  '.cm-line:hover .sb-caret.sb-idle .sb-caret-name': { opacity: '1' },
  '.cm-line:hover .sb-caret.sb-idle::after': { opacity: '0' },
});

/** How long after its last move another editor's name stays shown over the text. */
export const IDLE_MS = 4000;

export function peerClass(clientId: number): string {
  return `sb-peer-${clientId % PEER_COLOURS}`;
}

class CaretWidget extends WidgetType {
  constructor(private readonly cls: string, private readonly name: string, private readonly idle: boolean) {
    super();
  }

  override toDOM(): HTMLElement {
    const caret = document.createElement('span');
    caret.className = `sb-caret ${this.cls}${this.idle ? ' sb-idle' : ''}`;
    caret.setAttribute('aria-hidden', 'true');
    const tag = document.createElement('span');
    tag.className = 'sb-caret-name';
    tag.textContent = this.name;
    caret.append('\u2060', tag, '\u2060');
    return caret;
  }

  override eq(other: CaretWidget): boolean {
    return other.cls === this.cls && other.name === this.name && other.idle === this.idle;
  }

  override ignoreEvent(): boolean {
    return true;
  }
}

interface RemoteState {
  cursor?: { anchor?: unknown; head?: unknown } | null;
  user?: { name?: unknown };
}

function absolute(rel: unknown, doc: Y.Doc, ytext: Y.Text): number | null {
  if (rel === null || typeof rel !== 'object') return null;
  try {
    const abs = Y.createAbsolutePositionFromRelativePosition(Y.createRelativePositionFromJSON(rel), doc);
    return abs !== null && abs.type === ytext ? abs.index : null;
  } catch {
    return null; // another editor's malformed state: no caret for it
  }
}

/** The extension: publishes this editor's selection, draws everyone else's. */
export function remoteCursors(ytext: Y.Text, awareness: Awareness) {
  const doc = ytext.doc!;
  return [remoteCursorsTheme, ViewPlugin.fromClass(class {
    decorations: DecorationSet = Decoration.none;
    private readonly onChange: (e: { added: number[]; updated: number[]; removed: number[] }) => void;
    private destroyed = false;
    /** When each other editor's state last changed (its caret moved, it joined, it renamed). */
    private readonly moved = new Map<number, number>();
    /** Redraws when the next shown name goes idle. */
    private idleTimer: ReturnType<typeof setTimeout> | undefined;

    constructor(private readonly view: EditorView) {
      this.onChange = ({ added, updated, removed }) => {
        const now = Date.now();
        for (const id of [...added, ...updated]) if (id !== doc.clientID) this.moved.set(id, now);
        for (const id of removed) this.moved.delete(id);
        if ([...added, ...updated, ...removed].some((id) => id !== doc.clientID)) this.redraw();
      };
      awareness.on('change', this.onChange);
      const now = Date.now();
      for (const id of awareness.getStates().keys()) if (id !== doc.clientID) this.moved.set(id, now);
      this.decorations = this.build(view);
    }

    /** Redraw outside the awareness callback or timer (which may run during another update). */
    private redraw(): void {
      queueMicrotask(() => {
        if (this.destroyed) return;
        this.decorations = this.build(this.view);
        this.view.dispatch({});
      });
    }

    update(u: ViewUpdate): void {
      this.publish(u);
      if (u.docChanged || u.selectionSet || u.viewportChanged) this.decorations = this.build(u.view);
    }

    destroy(): void {
      this.destroyed = true;
      clearTimeout(this.idleTimer);
      awareness.off('change', this.onChange);
    }

    /** This editor's selection into awareness, while it has focus. */
    private publish(u: ViewUpdate): void {
      const local = awareness.getLocalState() as RemoteState | null;
      if (local === null) return;
      const focused = u.view.hasFocus && u.view.dom.ownerDocument.hasFocus();
      if (!focused) return;
      const sel = u.state.selection.main;
      const anchor = Y.createRelativePositionFromTypeIndex(ytext, sel.anchor);
      const head = Y.createRelativePositionFromTypeIndex(ytext, sel.head);
      const cur = local.cursor;
      const same = cur != null && cur.anchor != null && cur.head != null
        && Y.compareRelativePositions(Y.createRelativePositionFromJSON(cur.anchor), anchor)
        && Y.compareRelativePositions(Y.createRelativePositionFromJSON(cur.head), head);
      if (!same) awareness.setLocalStateField('cursor', { anchor: Y.relativePositionToJSON(anchor), head: Y.relativePositionToJSON(head) });
    }

    private build(view: EditorView): DecorationSet {
      const ranges: Range<Decoration>[] = [];
      const length = view.state.doc.length;
      const now = Date.now();
      let nextIdle = Infinity;
      for (const [clientId, raw] of awareness.getStates()) {
        if (clientId === doc.clientID) continue;
        const state = raw as RemoteState;
        if (state.cursor == null) continue;
        const anchor = absolute(state.cursor.anchor, doc, ytext);
        const head = absolute(state.cursor.head, doc, ytext);
        if (anchor === null || head === null || anchor > length || head > length) continue;
        const cls = peerClass(clientId);
        const name = typeof state.user?.name === 'string' ? state.user.name.slice(0, 40) : `client ${clientId}`;
        const from = Math.min(anchor, head);
        const to = Math.max(anchor, head);
        if (from < to) ranges.push(Decoration.mark({ class: `sb-selection ${cls}` }).range(from, to));
        const idleAt = (this.moved.get(clientId) ?? 0) + IDLE_MS;
        if (idleAt > now) nextIdle = Math.min(nextIdle, idleAt);
        ranges.push(Decoration.widget({ widget: new CaretWidget(cls, name, idleAt <= now), side: head > anchor ? -1 : 1 }).range(head));
      }
      clearTimeout(this.idleTimer);
      if (nextIdle !== Infinity) this.idleTimer = setTimeout(() => this.redraw(), nextIdle - now + 20);
      return Decoration.set(ranges, true);
    }
  }, { decorations: (v) => v.decorations })];
}
