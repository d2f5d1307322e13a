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
 * id, so another editor's `color` never reaches a style rule, and its name is set as text.
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
    [`.sb-peer-${i} .sb-caret-name`, { backgroundColor: c }],
    [`.sb-peer-${i}.sb-selection`, { backgroundColor: `${c}4d` }],
  ])),
  '.sb-caret': { position: 'relative', borderLeft: '2px solid', marginLeft: '-1px', marginRight: '-1px' },
  '.sb-caret-name': {
    position: 'absolute', left: '-2px', top: '-1.3em', fontSize: '11px', lineHeight: '1.2', padding: '0 3px',
    borderRadius: '3px 3px 3px 0', color: '#0f1419', whiteSpace: 'nowrap', pointerEvents: 'none', userSelect: 'none', zIndex: '3',
    fontFamily: 'system-ui, sans-serif',
  },
});

export function peerClass(clientId: number): string {
  return `sb-peer-${clientId % PEER_COLOURS}`;
}

class CaretWidget extends WidgetType {
  constructor(private readonly cls: string, private readonly name: string) {
    super();
  }

  override toDOM(): HTMLElement {
    const caret = document.createElement('span');
    caret.className = `sb-caret ${this.cls}`;
    caret.setAttribute('aria-hidden', 'true');
    const tag = document.createElement('span');
    tag.className = 'sb-caret-name';
    tag.textContent = this.name;
    caret.append('\u2060', tag, '\u2060');
    return caret;
  }

  override eq(other: CaretWidget): boolean {
    return other.cls === this.cls && other.name === this.name;
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

    constructor(private readonly view: EditorView) {
      this.onChange = ({ added, updated, removed }) => {
        if ([...added, ...updated, ...removed].some((id) => id !== doc.clientID)) {
          // Redraw outside the awareness callback (which may run during another update).
          queueMicrotask(() => {
            if (this.destroyed) return;
            this.decorations = this.build(this.view);
            this.view.dispatch({});
          });
        }
      };
      awareness.on('change', this.onChange);
      this.decorations = this.build(view);
    }

    update(u: ViewUpdate): void {
      this.publish(u);
      if (u.docChanged || u.selectionSet || u.viewportChanged) this.decorations = this.build(u.view);
    }

    destroy(): void {
      this.destroyed = true;
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
        ranges.push(Decoration.widget({ widget: new CaretWidget(cls, name), side: head > anchor ? -1 : 1 }).range(head));
      }
      return Decoration.set(ranges, true);
    }
  }, { decorations: (v) => v.decorations })];
}
