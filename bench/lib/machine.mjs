// What the run was measured on, recorded in every result file.
import os from 'node:os';
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from './targets.mjs';

export function machineInfo() {
  let kernel = os.release();
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    kernel,
    nofile: readLimit(),
    loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

function readLimit() {
  try {
    const l = readFileSync('/proc/self/limits', 'latin1');
    const m = /Max open files\s+(\d+)\s+(\d+)/.exec(l);
    return m ? { soft: Number(m[1]), hard: Number(m[2]) } : null;
  } catch {
    return null;
  }
}

export function writeResult(scenario, data, outPath) {
  const dir = path.join(repoRoot, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = outPath ?? path.join(dir, `${scenario}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(data, null, 1));
  return file;
}

export function loopbackAddrs(n, first = 2) {
  return Array.from({ length: n }, (_, i) => `127.0.${Math.floor((first + i) / 256)}.${(first + i) % 256}`);
}
