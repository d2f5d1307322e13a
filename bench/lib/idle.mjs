// The machine is shared: before a measurement, optionally wait until other work has calmed down.
import { readMachineCpu } from './proc.mjs';
import os from 'node:os';

/** Machine busy CPU over `ms`, in % of one core. */
export async function machineBusyPct(ms = 1000) {
  const a = readMachineCpu();
  await new Promise((r) => setTimeout(r, ms));
  const b = readMachineCpu();
  if (!a || !b || b.total === a.total) return 0;
  return (100 * os.cpus().length * (b.task - a.task)) / (b.total - a.total);
}

/** Waits (up to maxWaitMs) until the machine is below `thresholdPct` busy. Returns the last reading. */
export async function waitForIdle({ maxWaitMs = 60_000, thresholdPct = 20, log = console.log } = {}) {
  const t0 = Date.now();
  let busy = await machineBusyPct();
  let said = false;
  while (busy > thresholdPct && Date.now() - t0 < maxWaitMs) {
    if (!said) {
      log(`machine busy ${Math.round(busy)}% of a core before the run; waiting up to ${maxWaitMs / 1000} s for it to calm down`);
      said = true;
    }
    busy = await machineBusyPct();
  }
  return Math.round(busy);
}
