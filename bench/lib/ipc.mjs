// Request/reply over a forked child's IPC channel, and waiting for a child's first message.
import { fork } from 'node:child_process';
import os from 'node:os';
import { writeFileSync } from 'node:fs';

let nextId = 1;

export function request(child, msg, timeoutMs = 600_000) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const onMsg = (m) => {
      if (m && m.id === id) {
        cleanup();
        resolve(m);
      }
    };
    const onExit = (code) => {
      cleanup();
      reject(new Error(`child ${child.pid} exited (${code}) during ${msg.cmd}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timeout waiting for ${msg.cmd} from ${child.pid}`));
    }, timeoutMs);
    function cleanup() {
      clearTimeout(timer);
      child.off('message', onMsg);
      child.off('exit', onExit);
    }
    child.on('message', onMsg);
    child.on('exit', onExit);
    child.send({ ...msg, id });
  });
}

/**
 * Scheduling priority for every benchmark process (set BENCH_NICE, default -10; root can raise
 * priority). The machine is shared: without it, other work's CPU skews the measured servers.
 */
export const BENCH_NICE = Number(process.env.BENCH_NICE ?? -10);

export function prioritise(pid) {
  if (!BENCH_NICE) return;
  try {
    os.setPriority(pid, BENCH_NICE);
  } catch {
    /* not permitted: run at normal priority */
  }
  // With the kernel's autogroup scheduling (sched_autogroup_enabled=1), CPU is first shared
  // between sessions and a process's nice only counts within its session: raise the priority of
  // the benchmark's session (the coordinator's; every benchmark process inherits it).
  if (pid === process.pid) {
    try {
      writeFileSync('/proc/self/autogroup', String(BENCH_NICE));
    } catch {
      /* no autogroup or not permitted */
    }
  }
}

/** Forks a module and resolves with the child once it sends {type:'ready'}. */
export function forkReady(modulePath, { env = {}, args = [], execArgv = [], timeoutMs = 30_000 } = {}) {
  const child = fork(modulePath, args, {
    env: { ...process.env, ...env },
    execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  prioritise(child.pid);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${modulePath} not ready in ${timeoutMs} ms`)), timeoutMs);
    child.on('message', function onMsg(m) {
      if (m && m.type === 'ready') {
        clearTimeout(timer);
        child.off('message', onMsg);
        child.ready = m;
        resolve(child);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${modulePath} exited (${code}) before ready`));
    });
  });
}
