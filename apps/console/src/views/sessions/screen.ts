/**
 * The live screen: `page.frame` JPEGs drawn on a canvas (decoded off the main path with
 * createImageBitmap; frames that arrive while one is decoding are conflated to the newest), and
 * the input sent back: a click at the canvas point, scaled to the page's CSS px
 * (`x * deviceWidth / width`, docs/session-debugging.md), becomes the bridge's `click`; a key
 * press its `type` (a printable character) or `key` (Enter, Tab, Control+A…); the wheel its `scroll`.
 * Calls are sent one after the other, so keys arrive in the order they were pressed.
 */
import { h } from '../../dom.js';
import { fmtMs, frameBytes, type FrameEvent } from './model.js';

export interface Screen {
  el: HTMLElement;
  show(frame: FrameEvent): void;
  /** The source has no screen (an in-page SDK): said in one line instead of an empty box. */
  noScreen(): void;
  /** Frames drawn so far. */
  readonly drawn: number;
  stop(): void;
}

/** Sends one command; the screen shows how it went. */
export type Send = (method: string, params: Record<string, unknown>) => Promise<unknown>;

const MODIFIER_KEYS = new Set(['Shift', 'Control', 'Alt', 'Meta', 'CapsLock']);

export function screen(send: Send): Screen {
  const canvas = h('canvas', { id: 'session-screen', tabindex: '0', width: '0', height: '0', 'aria-label': 'The page\'s screen: click to click there, type to type there', 'data-frames': '0' });
  const empty = h('p', { class: 'dim screen-empty' }, 'No screen yet. A CDP bridge streams one while someone watches; the in-page SDK sends none.');
  const info = h('p', { class: 'dim', id: 'session-screen-info' });
  const input = h('p', { class: 'status', id: 'session-input', role: 'status' });
  const el = h('section', { class: 'panel screen', 'aria-label': 'Screen' }, h('h2', {}, 'Screen'), empty, h('div', { class: 'screen-box' }, canvas), info, input);
  canvas.hidden = true;
  const ctx = canvas.getContext('2d');

  let current: FrameEvent | null = null;
  let pending: FrameEvent | null = null;
  let decoding = false;
  let drawn = 0;
  let stopped = false;
  const times: number[] = [];

  const draw = async (f: FrameEvent): Promise<void> => {
    const bytes = frameBytes(f.jpeg);
    if (!bytes || !ctx) return;
    const bitmap = await createImageBitmap(new Blob([bytes as BlobPart], { type: 'image/jpeg' }));
    if (stopped) return bitmap.close();
    if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
      canvas.width = bitmap.width;
      canvas.height = bitmap.height;
    }
    ctx.drawImage(bitmap, 0, 0);
    bitmap.close();
    current = f;
    drawn++;
    canvas.hidden = false;
    empty.hidden = true;
    el.classList.remove('compact');
    canvas.dataset.frames = String(drawn);
    canvas.dataset.seq = String(f.seq);
    canvas.dataset.deviceWidth = String(f.deviceWidth);
    canvas.dataset.deviceHeight = String(f.deviceHeight);
    const now = performance.now();
    times.push(now);
    while (times.length > 0 && times[0]! < now - 2000) times.shift();
    info.textContent = `${f.width}×${f.height} image of a ${f.deviceWidth}×${f.deviceHeight} viewport · ${(times.length / 2).toFixed(1)} frames/s · frame ${f.seq} at ${fmtMs(f.ts)}`;
  };
  const pump = (): void => {
    if (decoding || !pending) return;
    const f = pending;
    pending = null;
    decoding = true;
    draw(f).catch(() => { info.textContent = 'A frame did not decode.'; }).finally(() => {
      decoding = false;
      pump();
    });
  };

  // Input: one call at a time, in order.
  let chain: Promise<unknown> = Promise.resolve();
  const queue = (method: string, params: Record<string, unknown>, label: string): void => {
    chain = chain.then(async () => {
      try {
        const r = await send(method, params);
        input.className = 'status ok';
        input.textContent = `${label}: ${JSON.stringify(r)}`;
      } catch (err) {
        const e = err as { code?: string; message?: string; details?: { handlerCode?: string } };
        input.className = 'status bad';
        input.textContent = `${label}: ${e.code ?? 'error'}${e.details?.handlerCode ? ` (${e.details.handlerCode})` : ''}: ${e.message ?? String(err)}`;
      }
    });
  };
  /** The page's CSS px under a client point of the canvas. */
  const pagePoint = (clientX: number, clientY: number): { x: number; y: number } | null => {
    if (!current) return null;
    const r = canvas.getBoundingClientRect();
    const ix = ((clientX - r.left) * canvas.width) / r.width;
    const iy = ((clientY - r.top) * canvas.height) / r.height;
    return { x: Math.round((ix * current.deviceWidth) / current.width), y: Math.round((iy * current.deviceHeight) / current.height) };
  };
  canvas.addEventListener('click', (e) => {
    canvas.focus();
    const p = pagePoint(e.clientX, e.clientY);
    if (p) queue('click', p, `click at ${p.x}, ${p.y}`);
  });
  canvas.addEventListener('keydown', (e) => {
    if (MODIFIER_KEYS.has(e.key) || !current) return;
    e.preventDefault();
    const plain = e.key.length === 1 && !e.ctrlKey && !e.metaKey && !e.altKey;
    if (plain) queue('type', { text: e.key }, `type ${JSON.stringify(e.key)}`);
    else {
      const combo = [e.ctrlKey && 'Control', e.altKey && 'Alt', e.metaKey && 'Meta', e.shiftKey && e.key.length > 1 && 'Shift', e.key].filter(Boolean).join('+');
      queue('key', { key: combo }, `key ${combo}`);
    }
  });
  // The wheel: summed over a short while, sent as one scroll at the point.
  let wheel: { dx: number; dy: number; x: number; y: number } | null = null;
  let wheelTimer: ReturnType<typeof setTimeout> | undefined;
  canvas.addEventListener('wheel', (e) => {
    if (!current) return;
    e.preventDefault();
    const p = pagePoint(e.clientX, e.clientY);
    if (!p) return;
    wheel = { dx: (wheel?.dx ?? 0) + e.deltaX, dy: (wheel?.dy ?? 0) + e.deltaY, ...p };
    clearTimeout(wheelTimer);
    wheelTimer = setTimeout(() => {
      const w = wheel!;
      wheel = null;
      queue('scroll', { deltaX: Math.round(w.dx), deltaY: Math.round(w.dy), x: w.x, y: w.y }, `scroll ${Math.round(w.dy)}`);
    }, 120);
  }, { passive: false });

  return {
    el,
    show(frame) {
      pending = frame;
      pump();
    },
    noScreen() {
      if (drawn > 0) return;
      empty.textContent = 'No screen: this source is an in-page SDK (a CDP bridge streams one).';
      el.classList.add('compact');
    },
    get drawn() { return drawn; },
    stop() {
      stopped = true;
      clearTimeout(wheelTimer);
    },
  };
}
