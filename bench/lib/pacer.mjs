// Open-loop publisher pacing: emits message k at start + k/rate (in batches per timer tick), so
// the offered rate does not slow down when the server falls behind, unless the publisher's own
// event loop is blocked (then it catches up in one batch; `published` and `elapsedMs` tell).
//
// Each message is stamped with the time it was DUE, not the time the loop got round to emitting
// it (the correction for "coordinated omission"). This matters for the peers, whose publisher
// loop runs inside the server: while the server spends 10 ms writing to 1,000 sockets, the timer
// that should have fired cannot, and a message stamped when it finally goes out would hide those
// 10 ms. An external publisher (the Signalbox target) pays for the same wait in the gateway's
// socket buffer, after its stamp; stamping the due time charges both the same way.
//
// A publisher process of its own (not a peer's in-process loop) can be `punctual`: at low message
// rates it sleeps until ~1 ms before the next message is due and spins the rest, instead of
// leaving it to a timer that fires 0.3-1.5 ms late on this machine (measured). Without it every
// figure at low rates carries the publisher's timer slop. Spinning costs up to ~1 ms of the
// publisher's CPU per message, so it is used only at rates up to SPIN_MAX_RATE messages/s (at
// most ~10 % of a core; at 500 messages/s it took 30 % of a core from the server under test).
import { nowUs } from './payload.mjs';

export const SPIN_MAX_RATE = 100;
const SPIN_US = 1000;

/**
 * @param {object} o rate (messages/s), durationMs, seqStart, emit(seq, dueUs) -> void, afterBatch() optional,
 *   punctual (spin the last ~1 ms before each message; only in a publisher process of its own)
 * @returns {Promise<{published:number, firstSeq:number, lastSeq:number, elapsedMs:number, maxBatch:number}>}
 */
export function runPaced(o) {
  const total = Math.max(1, Math.round((o.rate * o.durationMs) / 1000));
  const start = nowUs();
  let sent = 0;
  let maxBatch = 0;
  const spin = o.punctual === true && o.rate <= SPIN_MAX_RATE;
  return new Promise((resolve) => {
    const tick = () => {
      const elapsedUs = nowUs() - start;
      const due = Math.min(total, Math.floor((elapsedUs * o.rate) / 1e6) + 1);
      const batch = due - sent;
      if (batch > maxBatch) maxBatch = batch;
      while (sent < due) {
        const k = sent++;
        o.emit(o.seqStart + k, start + Math.floor((k * 1e6) / o.rate));
      }
      if (batch > 0) o.afterBatch?.();
      if (sent < total) {
        // Sleep until the next message is due (timers have ~1 ms granularity).
        const nextUs = (sent * 1e6) / o.rate - (nowUs() - start);
        if (spin && nextUs <= SPIN_US) {
          const dueAt = start + (sent * 1e6) / o.rate;
          while (nowUs() < dueAt);
          tick();
          return;
        }
        setTimeout(tick, Math.max(0, Math.floor((spin ? nextUs - SPIN_US : nextUs) / 1000)));
      } else {
        resolve({
          published: sent,
          firstSeq: o.seqStart,
          lastSeq: o.seqStart + sent - 1,
          elapsedMs: Math.round((nowUs() - start) / 100) / 10,
          maxBatch,
        });
      }
    };
    tick();
  });
}
