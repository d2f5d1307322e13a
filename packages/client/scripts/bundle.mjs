// Builds the browser bundle (ESM, minified, browser platform) and prints its size.
// The browser platform makes esbuild refuse Node built-ins: if anything Node-only leaks into the
// browser entry, this build fails.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outfile = `${root}dist/signalbox-client.min.js`;
await build({
  entryPoints: [`${root}src/index.ts`],
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  outfile,
  logLevel: 'warning',
});
const code = readFileSync(outfile);
const kb = (n) => `${(n / 1024).toFixed(1)} kB`;
console.log(`dist/signalbox-client.min.js  ${kb(code.length)} minified, ${kb(gzipSync(code).length)} gzipped`);
