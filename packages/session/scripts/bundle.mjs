// Builds the page bundles of @signalbox/session (the SDK included): an IIFE for one script tag
// (`window.SignalboxSession`) and an ES module. The browser platform makes esbuild refuse Node
// built-ins, so anything Node-only leaking into the page entry fails this build.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const common = { entryPoints: [`${root}src/bundle-entry.ts`], bundle: true, minify: true, platform: 'browser', target: 'es2022', sourcemap: true, logLevel: 'warning' };
const kb = (n) => `${(n / 1024).toFixed(1)} kB`;
for (const [format, name] of [['iife', 'signalbox-session.min.js'], ['esm', 'signalbox-session.esm.min.js']]) {
  const outfile = `${root}dist/${name}`;
  await build({ ...common, format, globalName: format === 'iife' ? 'SignalboxSession' : undefined, outfile });
  const code = readFileSync(outfile);
  console.log(`dist/${name}  ${kb(code.length)} minified, ${kb(gzipSync(code).length)} gzipped`);
}
