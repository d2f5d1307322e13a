/**
 * The command bar: any command of docs/session-debugging.md, with its params as JSON (a template
 * per method), sent with the SDK's `call`; the result, or the documented refusal (`RPC_FAILED`
 * with its `handlerCode`, `RPC_NO_HANDLER`, `UNKNOWN_METHOD`…), shown under it. The methods the
 * session's source said it answers (`page.started.commands`) are listed first.
 */
import { field, fill, h } from '../../dom.js';
import { resultView } from './panels.js';

/** Each documented command, with a params template. */
export const COMMANDS: [method: string, template: unknown][] = [
  ['dom.query', { selector: 'body' }],
  ['storage.get', { area: 'local' }],
  ['location.reload', {}],
  ['location.navigate', { url: 'https://example.com/' }],
  ['eval', { expression: 'document.title' }],
  ['evaluate', { expression: 'document.title' }],
  ['click', { selector: 'button' }],
  ['type', { text: 'hello', selector: 'input' }],
  ['key', { key: 'Enter' }],
  ['scroll', { deltaY: 400 }],
  ['navigate', { url: 'https://example.com/' }],
  ['screenshot', { format: 'jpeg', quality: 60 }],
];

export interface CommandBar {
  el: HTMLElement;
  /** The methods the source answers (from `page.started`). */
  offered(methods: string[]): void;
}

export function commandBar(send: (method: string, params: unknown) => Promise<unknown>): CommandBar {
  const method = h('select', { name: 'method', id: 'command-method' });
  const params = h('textarea', { name: 'params', rows: 2, spellcheck: 'false', id: 'command-params', 'aria-label': 'Params (JSON)' });
  const run = h('button', { type: 'submit', class: 'primary' }, 'Run');
  const out = h('div', { class: 'result', id: 'command-result', role: 'status' });
  const form = h('form', { class: 'command-bar', 'aria-label': 'Command' }, field('Command', method), field('Params (JSON)', params), run);
  const el = h('section', { class: 'panel', 'aria-label': 'Commands' }, h('h2', {}, 'Commands'), form, out);
  let offered: string[] = [];
  const options = () => {
    const keep = method.value || 'dom.query';
    const known = COMMANDS.map(([m]) => m);
    const first = known.filter((m) => offered.includes(m));
    const rest = known.filter((m) => !offered.includes(m));
    fill(method, ...first.map((m) => h('option', { value: m }, m)),
      rest.length && offered.length ? h('option', { disabled: true }, '── not offered by this source ──') : null,
      ...rest.map((m) => h('option', { value: m }, m)));
    method.value = keep;
  };
  const template = () => {
    const t = COMMANDS.find(([m]) => m === method.value)?.[1] ?? {};
    params.value = JSON.stringify(t);
  };
  options();
  template();
  method.addEventListener('change', template);
  params.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    let p: unknown;
    try {
      p = params.value.trim() === '' ? {} : JSON.parse(params.value);
    } catch (err) {
      fill(out, h('p', { class: 'status bad' }, `Params are not JSON: ${(err as Error).message}`));
      return;
    }
    const m = method.value;
    run.disabled = true;
    const started = performance.now();
    fill(out, h('p', { class: 'dim' }, `${m}…`));
    send(m, p).then((r) => {
      fill(out, h('p', { class: 'status ok' }, `${m}: ok in ${Math.round(performance.now() - started)} ms`), resultView(m, r));
    }, (err: { code?: string; message?: string; details?: { handlerCode?: string } }) => {
      const code = `${err.code ?? 'ERROR'}${err.details?.handlerCode ? ` / ${err.details.handlerCode}` : ''}`;
      fill(out, h('p', { class: 'status bad', 'data-code': err.code ?? '', 'data-handler-code': err.details?.handlerCode ?? '' }, `${m}: ${code}: ${err.message ?? String(err)}`));
    }).finally(() => { run.disabled = false; });
  });
  return {
    el,
    offered(methods) {
      offered = methods;
      options();
    },
  };
}
