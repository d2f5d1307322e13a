/** A test RPC handler: a PRP client that answers the `rpc.request`s it receives. */
import type { Msg, TestClient } from './gateway.js';

/** Answers every `rpc.request` `handler` gets with `answer(request data)` (`{result}` or `{error}`; undefined: stays silent). */
export function serve(handler: TestClient, answer: (d: Msg) => Msg | undefined): void {
  handler.ws.on('message', (raw, isBinary) => {
    if (isBinary) return;
    const m = JSON.parse(raw.toString()) as Msg;
    if (m.type !== 'rpc.request') return;
    const payload = answer(m.data);
    if (payload) handler.send({ action: 'rpc.reply', payload: { callId: m.data.callId, ...payload } });
  });
}
