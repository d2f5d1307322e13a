/**
 * Publish / Call: publish to a channel over the console's WebSocket (SDK `publish`) or the HTTP API
 * (`POST /v1/publish`, authorized by the session); call a channel's RPC handler (SDK `call` or
 * `POST /v1/rpc`); and a raw-frame pane for protocol debugging: a separate plain WebSocket (its own
 * token from /console/token) that sends exactly the text typed and shows every frame back, with
 * no protocol logic of its own.
 */
import { api } from '../api.js';
import { field, fill, h, statusLine } from '../dom.js';
import { jsonView } from '../json-view.js';
import { registerView } from '../router.js';

function parseJson(text: string, what: string): unknown {
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${what} must be JSON: ${(err as Error).message}`, { cause: err });
  }
}

const viaSelect = (name: string, labels: [string, string]) => h('select', { name },
  h('option', { value: 'ws' }, labels[0]), h('option', { value: 'http' }, labels[1]));

registerView({
  route: 'publish',
  title: 'Publish / Call',
  nav: 5,
  mount(el, { live }) {
    // ---- publish ----
    const pChannel = h('input', { type: 'text', name: 'channel', required: true, placeholder: 'room:lobby', autocomplete: 'off' });
    const pType = h('input', { type: 'text', name: 'type', placeholder: 'message', autocomplete: 'off' });
    const pData = h('textarea', { name: 'data', rows: '5', spellcheck: 'false' });
    pData.value = '{"hello": "world"}';
    const pVia = viaSelect('via', ['WebSocket (SDK)', 'HTTP API']);
    const pStatus = statusLine();
    const pResult = h('div', { class: 'result', id: 'publish-result' });
    const pForm = h('form', { class: 'panel stack', 'aria-label': 'Publish' }, h('h2', {}, 'Publish'),
      h('div', { class: 'row' }, field('Channel', pChannel), field('Type', pType), field('Via', pVia)),
      field('Data (JSON)', pData), h('div', {}, h('button', { type: 'submit', class: 'primary' }, 'Publish')), pStatus.el, pResult);
    pForm.addEventListener('submit', (e) => {
      e.preventDefault();
      void (async () => {
        try {
          const data = parseJson(pData.value, 'Data');
          const channel = pChannel.value.trim();
          const type = pType.value.trim() || undefined;
          const ack = pVia.value === 'ws'
            ? await live.client.publish(channel, data, type ? { type } : {})
            : await api('/v1/publish', { method: 'POST', body: { channel, data, ...(type ? { type } : {}) } });
          pStatus.ok(`Published via ${pVia.value === 'ws' ? 'WebSocket' : 'HTTP'}.`);
          fill(pResult, jsonView(ack));
        } catch (err) {
          pStatus.error((err as Error).message);
          fill(pResult);
        }
      })();
    });

    // ---- call ----
    const cChannel = h('input', { type: 'text', name: 'channel', required: true, placeholder: 'agent:agent_001', autocomplete: 'off' });
    const cMethod = h('input', { type: 'text', name: 'method', required: true, placeholder: 'cancel', autocomplete: 'off' });
    const cParams = h('textarea', { name: 'params', rows: '3', spellcheck: 'false' });
    cParams.value = '{}';
    const cTimeout = h('input', { type: 'number', name: 'timeout', min: '1', value: '5000' });
    const cVia = viaSelect('via', ['WebSocket (SDK)', 'HTTP API']);
    const cStatus = statusLine();
    const cResult = h('div', { class: 'result', id: 'call-result' });
    const cForm = h('form', { class: 'panel stack', 'aria-label': 'Call' }, h('h2', {}, 'Call an RPC'),
      h('div', { class: 'row' }, field('Channel', cChannel), field('Method', cMethod), field('Timeout (ms)', cTimeout), field('Via', cVia)),
      field('Params (JSON)', cParams), h('div', {}, h('button', { type: 'submit', class: 'primary' }, 'Call')), cStatus.el, cResult);
    cForm.addEventListener('submit', (e) => {
      e.preventDefault();
      void (async () => {
        try {
          const params = parseJson(cParams.value, 'Params');
          const timeoutMs = Number(cTimeout.value) || 5000;
          const result = cVia.value === 'ws'
            ? await live.client.call(cChannel.value.trim(), cMethod.value.trim(), params, { timeout: timeoutMs })
            : await api('/v1/rpc', { method: 'POST', body: { channel: cChannel.value.trim(), method: cMethod.value.trim(), params, timeoutMs } });
          cStatus.ok('Answered.');
          fill(cResult, jsonView(result));
        } catch (err) {
          const e2 = err as Error & { code?: string };
          cStatus.error(`${e2.code ? `${e2.code}: ` : ''}${e2.message}`);
          fill(cResult);
        }
      })();
    });

    // ---- raw frames ----
    const rText = h('textarea', { name: 'frame', rows: '4', spellcheck: 'false' });
    rText.value = '{"id": "raw_1", "action": "ping"}';
    const rOpen = h('button', { type: 'button' }, 'Open raw socket');
    const rSend = h('button', { type: 'button', disabled: true }, 'Send frame');
    const rState = h('span', { class: 'pill off' }, 'closed');
    const rLog = h('ol', { class: 'frames', id: 'raw-log' });
    const rPanel = h('section', { class: 'panel stack', 'aria-label': 'Raw frames' }, h('h2', {}, 'Raw frames'),
      h('p', { class: 'dim' }, 'A separate WebSocket to /v1/ws/prps, for protocol debugging: sends the text exactly as typed.'),
      h('div', { class: 'toolbar' }, rOpen, rSend, rState), field('Frame', rText), rLog);
    let raw: WebSocket | null = null;
    const logFrame = (dir: string, text: string) => {
      rLog.prepend(h('li', { class: `frame ${dir === '→' ? 'out' : dir === '←' ? 'in' : 'sys'}` }, h('span', { class: 'dir' }, dir), h('code', {}, text)));
      while (rLog.childElementCount > 200) rLog.lastElementChild!.remove();
    };
    rOpen.addEventListener('click', () => {
      if (raw) {
        raw.close(1000);
        return;
      }
      void api<{ token: string }>('/console/token', { method: 'POST' }).then(({ token }) => {
        const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/ws/prps`, ['signalbox.json', `bearer.${token}`]);
        raw = ws;
        rState.textContent = 'connecting…';
        rOpen.textContent = 'Close raw socket';
        ws.onopen = () => { rState.textContent = 'open'; rState.className = 'pill on'; rSend.disabled = false; };
        ws.onmessage = (ev) => logFrame('←', typeof ev.data === 'string' ? ev.data : '(binary frame)');
        ws.onclose = (ev) => {
          logFrame('×', `closed ${ev.code} ${ev.reason}`);
          rState.textContent = 'closed';
          rState.className = 'pill off';
          rSend.disabled = true;
          rOpen.textContent = 'Open raw socket';
          if (raw === ws) raw = null;
        };
      }).catch((err: Error) => logFrame('×', err.message));
    });
    rSend.addEventListener('click', () => {
      if (raw?.readyState !== WebSocket.OPEN) return;
      raw.send(rText.value);
      logFrame('→', rText.value);
    });

    fill(el, h('h1', {}, 'Publish / Call'), h('div', { class: 'columns two' }, pForm, cForm), rPanel);
    return () => { raw?.close(1000); };
  },
});
