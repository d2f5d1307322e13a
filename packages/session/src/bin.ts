#!/usr/bin/env node
/** `signalbox-session attach ...`: the same as `signalbox session attach ...`. */
import { main } from './cli.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`signalbox-session: failed: ${(err as Error)?.message ?? String(err)}`);
    process.exit(1);
  },
);
