// CPU and memory of a process from /proc (Linux): utime+stime in clock ticks, VmRSS in KiB.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';

let clkTck = 100;
try {
  clkTck = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
} catch {
  /* keep 100 */
}

/** One reading: cpu seconds (user+system) and RSS bytes, or null if the process is gone. */
export function readProc(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // f[0] is field 3 (state); utime = field 14 -> f[11], stime = field 15 -> f[12]
    const cpuSec = (Number(f[11]) + Number(f[12])) / clkTck;
    const status = readFileSync(`/proc/${pid}/status`, 'latin1');
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    const rssBytes = m ? Number(m[1]) * 1024 : 0;
    // schedstat: on-CPU ns, run-queue wait ns (main thread): how long it was runnable but starved.
    let waitNs = 0;
    try {
      waitNs = Number(readFileSync(`/proc/${pid}/schedstat`, 'latin1').split(' ')[1]) || 0;
    } catch {
      /* no schedstat */
    }
    return { t: performance.now(), cpuSec, rssBytes, waitNs };
  } catch {
    return null;
  }
}

/**
 * Whole-machine CPU jiffies from /proc/stat: busy (all but idle/iowait), task time (user, nice,
 * system: what processes are charged with) and irq+softirq (loopback TCP work largely lands here).
 */
export function readMachineCpu() {
  try {
    const f = readFileSync('/proc/stat', 'latin1').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = f[3] + (f[4] ?? 0);
    return { busy: total - idle, task: f[0] + f[1] + f[2], irq: (f[5] ?? 0) + (f[6] ?? 0), steal: f[7] ?? 0, total };
  } catch {
    return null;
  }
}

/** Samples a set of pids: call start(), optionally tick() for peak RSS, then stop() -> per-pid figures. */
export class ProcSampler {
  constructor(pids) {
    this.pids = pids;
  }

  start() {
    this.machine0 = readMachineCpu();
    this.first = this.pids.map(readProc);
    this.peak = this.first.map((r) => (r ? r.rssBytes : 0));
    this.timer = setInterval(() => this.tick(), 250);
    this.timer.unref();
  }

  tick() {
    this.pids.forEach((pid, i) => {
      const r = readProc(pid);
      if (r && r.rssBytes > this.peak[i]) this.peak[i] = r.rssBytes;
    });
  }

  /**
   * Machine-wide busy CPU over the window, in % of one core (2 cores busy = 200), and the part
   * not used by the sampled pids ("other": the coordinator, the kernel's softirq work, anything else).
   */
  machine(perPid) {
    const a = this.machine0;
    const b = this.machine1;
    if (!a || !b || b.total === a.total) return { machineCpuPct: null, otherCpuPct: null, irqCpuPct: null, stealCpuPct: null };
    const k = (100 * os.cpus().length) / (b.total - a.total);
    const ours = perPid.reduce((acc, p) => acc + (p.cpuPct ?? 0), 0);
    return {
      machineCpuPct: round(k * (b.busy - a.busy), 1),
      // Task time of everything else on the machine (other processes, the coordinator).
      otherCpuPct: round(Math.max(0, k * (b.task - a.task) - ours), 1),
      irqCpuPct: round(k * (b.irq - a.irq), 1),
      stealCpuPct: round(k * (b.steal - a.steal), 1),
    };
  }

  stop() {
    clearInterval(this.timer);
    const last = this.pids.map(readProc);
    this.machine1 = readMachineCpu();
    return this.pids.map((pid, i) => {
      const a = this.first[i];
      const b = last[i];
      if (!a || !b) return { pid, cpuPct: null, cpuSec: null, rssBytes: null, peakRssBytes: this.peak[i] };
      const wall = (b.t - a.t) / 1000;
      const cpuSec = b.cpuSec - a.cpuSec;
      return {
        pid,
        wallSec: round(wall, 3),
        cpuSec: round(cpuSec, 3),
        cpuPct: round((100 * cpuSec) / wall, 1),
        runqWaitPct: round((100 * (b.waitNs - a.waitNs)) / 1e9 / wall, 1),
        rssBytes: b.rssBytes,
        peakRssBytes: Math.max(this.peak[i], b.rssBytes),
      };
    });
  }
}

export function round(v, d = 0) {
  if (v === null || v === undefined || !Number.isFinite(v)) return v;
  const p = 10 ** d;
  return Math.round(v * p) / p;
}
