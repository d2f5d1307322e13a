#!/usr/bin/env node
// Default benchmark run (a few minutes): fan-out 1 publisher -> 1k subscribers swept until
// saturation for Signalbox (when built) and the three peers, efficiency at fixed loads, and a
// small capacity check. `--full` runs what docs/benchmarks.md reports (3 runs, 5 s steps, 19k capacity).
//
//   node bench/run.mjs                 # quick: 1 run each, ~3-5 minutes
//   node bench/run.mjs --full          # 3 runs each, fan-out + efficiency + capacity 19k (~40 minutes)
//   node bench/run.mjs --target ws-coalesce,socketio --runs 2
//   node bench/run.mjs --peer-publisher external   # peers fed by a publisher process, like Signalbox
import { parseArgs } from './lib/args.mjs';
import { fanoutOptions, runFanout } from './fanout.mjs';
import { runEfficiency } from './efficiency.mjs';
import { capacityOptions, runCapacity } from './capacity.mjs';
import { signalboxAvailable } from './lib/targets.mjs';
import { prioritise } from './lib/ipc.mjs';

prioritise(process.pid);

const a = parseArgs();
const full = Boolean(a.full);
const common = {
  ...(a.target ? { target: a.target } : {}),
  runs: a.runs ?? (full ? '3' : '1'),
  duration: a.duration ?? (full ? '5' : '3'),
  waitIdle: a.waitIdle ?? '0',
  client: a.client,
  peerPublisher: a.peerPublisher,
};

const quickRates = '10k,20k,50k,100k,200k,400k,700k,1M,1.4M';
await runFanout(fanoutOptions({ ...common, subs: a.subs ?? '1000', rates: a.rates ?? (full ? undefined : quickRates) }));
if (!a.skipEfficiency) await runEfficiency({ ...common, rates: a.effRates ?? (full ? '20k,50k,100k' : '20k,100k') });
if (!a.skipCapacity) {
  const target = signalboxAvailable() ? 'signalbox' : 'ws-coalesce';
  await runCapacity(capacityOptions({
    target, conns: full ? '19000' : '2000', hold: full ? '30' : '10', heartbeat: full ? '5' : '2',
    runs: full ? '3' : '1', waitIdle: common.waitIdle,
  }));
}
process.exit(0);
