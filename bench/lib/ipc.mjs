// Request/reply over a forked child's IPC channel, and waiting for a child's first message.
import { fork } from 'node:child_process';

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

/** Forks a module and resolves with the child once it sends {type:'ready'}. */
export function forkReady(modulePath, { env = {}, args = [], execArgv = [], timeoutMs = 30_000 } = {}) {
  const child = fork(modulePath, args, {
    env: { ...process.env, ...env },
    execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
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
