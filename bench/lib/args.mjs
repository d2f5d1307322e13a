// Tiny `--key value` / `--flag` parser with numeric lists (`--rates 5000,20000,1e5`, `20k`, `1.5M`).
export function parseArgs(argv = process.argv.slice(2)) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    if (eq > 0) out[camel(a.slice(2, eq))] = a.slice(eq + 1);
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) out[camel(a.slice(2))] = argv[++i];
    else out[camel(a.slice(2))] = true;
  }
  return out;
}

const camel = (s) => s.replace(/-([a-z])/g, (_, c) => c.toUpperCase());

export function num(v, dflt) {
  if (v === undefined || v === true) return dflt;
  const m = /^([\d.e+]+)([kKmM]?)$/.exec(String(v).trim());
  if (!m) throw new Error(`not a number: ${v}`);
  return Number(m[1]) * (m[2] === 'k' || m[2] === 'K' ? 1e3 : m[2] === 'm' || m[2] === 'M' ? 1e6 : 1);
}

export function numList(v, dflt) {
  if (v === undefined || v === true) return dflt;
  return String(v).split(',').filter(Boolean).map((x) => num(x));
}

export function strList(v, dflt) {
  if (v === undefined || v === true) return dflt;
  return String(v).split(',').map((s) => s.trim()).filter(Boolean);
}
