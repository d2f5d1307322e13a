/**
 * A writer thread (started by WritePool): sleeps until a round is announced, then runs the same
 * claim loop as the main thread (write-claim.ts). It holds no state of the gateway and only ever
 * blocks in Atomics.wait or write(2).
 */
import { workerData } from 'node:worker_threads';
import { claimAndWrite, COUNT, ROUND, STOP, WAKE, type RoundMemory } from './write-claim.js';

const data = workerData as { ctl: SharedArrayBuffer; big: SharedArrayBuffer; jobs: SharedArrayBuffer; arena: SharedArrayBuffer };
const memory: RoundMemory = {
  ctl: new Int32Array(data.ctl),
  big: new BigInt64Array(data.big),
  jobs: new Int32Array(data.jobs),
  arena: Buffer.from(data.arena),
};
let woken = 0;
for (;;) {
  Atomics.wait(memory.ctl, WAKE, woken);
  if (Atomics.load(memory.ctl, STOP) === 1) break;
  woken = Atomics.load(memory.ctl, WAKE);
  claimAndWrite(memory, Atomics.load(memory.big, ROUND), Atomics.load(memory.ctl, COUNT));
}
