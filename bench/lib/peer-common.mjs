// Shared plumbing of the peer servers and the publisher processes (bench/servers/*.mjs):
// arguments from the environment, the publish command over IPC (for a peer fed in-process the
// paced loop runs inside the server, so its cost is part of the server's CPU), and readiness.
import { runPaced } from './pacer.mjs';

export const env = {
  host: process.env.BENCH_HOST ?? '127.0.0.1',
  port: Number(process.env.BENCH_PORT ?? 0),
  heartbeatMs: Number(process.env.BENCH_HEARTBEAT_MS ?? 0),
};

/**
 * Wires IPC: {cmd:'publish', rate, durationMs, seqStart, channels, size} runs the paced loop with
 * publish(seq, channel, size, dueUs) (dueUs: the timestamp to put in the payload); replies
 * {type:'published', ...} with stats() merged in. {cmd:'stats'} replies stats(). Used by the peers
 * (in-process publishing) and by the publisher processes (bench/servers/*-publisher.mjs), which
 * alone are `punctual` (see pacer.mjs): a peer's in-process loop must not spin inside the server.
 */
export function servePeer({ publish, afterBatch, stats, punctual = false }) {
  process.on('message', async (m) => {
    if (m.cmd === 'publish') {
      const chans = m.channels;
      const res = await runPaced({
        rate: m.rate,
        durationMs: m.durationMs,
        seqStart: m.seqStart,
        emit: (seq, dueUs) => publish(seq, chans[seq % chans.length], m.size, dueUs),
        afterBatch,
        punctual,
      });
      process.send({ type: 'published', id: m.id, ...res, ...(stats?.() ?? {}) });
    } else if (m.cmd === 'stats') {
      process.send({ type: 'stats', id: m.id, ...(stats?.() ?? {}) });
    } else if (m.cmd === 'exit') {
      process.exit(0);
    }
  });
  process.on('disconnect', () => process.exit(0));
}

export function ready(port) {
  process.send?.({ type: 'ready', port, pid: process.pid });
}
