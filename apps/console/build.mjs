// Builds the console (apps/console/src) into the server package, packages/server/dist/console/, so an
// installed @signalbox/server serves /console by itself (its `files` list ships dist). An ESM
// entry (app.js), the chunks it imports on demand (chunks/: the document editor, and what it shares
// with app.js), and one stylesheet (app.css, uPlot's and ours): the page's CSP allows scripts and
// styles from 'self' only, never inline. Run by `npm run build`; prints the sizes.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const out = fileURLToPath(new URL('../../packages/server/dist/console/', import.meta.url));
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
// `virtual:views`: an import of every file in src/views, so a new view is a new file (src/router.ts).
const views = {
  name: 'views',
  setup(b) {
    b.onResolve({ filter: /^virtual:views$/ }, () => ({ path: 'views', namespace: 'virtual' }));
    b.onLoad({ filter: /.*/, namespace: 'virtual' }, () => ({
      contents: readdirSync(`${here}src/views`).filter((f) => f.endsWith('.ts')).sort().map((f) => `import './${f}';`).join('\n'),
      resolveDir: `${here}src/views`,
      loader: 'js',
    }));
  },
};
await build({
  plugins: [views],
  entryPoints: { app: `${here}src/main.ts` },
  bundle: true,
  minify: true,
  format: 'esm',
  // The editor (views/documents.ts imports it when a document opens) is a chunk of its own.
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  outdir: out,
  logLevel: 'warning',
});
copyFileSync(`${here}index.html`, `${out}index.html`);
const kb = (n) => `${(n / 1024).toFixed(1)} kB`;
const chunks = readdirSync(`${out}chunks`).filter((f) => f.endsWith('.js')).sort().map((f) => `chunks/${f}`);
for (const f of ['app.js', 'app.css', ...chunks]) {
  const code = readFileSync(`${out}${f}`);
  console.log(`console ${f}  ${kb(code.length)} minified, ${kb(gzipSync(code).length)} gzipped`);
}
