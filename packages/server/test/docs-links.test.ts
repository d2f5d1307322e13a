/**
 * Every relative link in README.md and docs/*.md points at a file that exists, and every `#anchor`
 * at a heading of that file (GitHub's slugs), so a renamed section cannot leave dead links behind.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const files = ['README.md', 'examples/README.md', 'bench/README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]
  .filter((f) => existsSync(join(root, f)));

/** GitHub's heading slug: lower case, punctuation other than `-` and `_` dropped, spaces to `-`. */
export function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/`/g, '').replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

function anchors(file: string): Set<string> {
  const text = readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '');
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of text.matchAll(/^#{1,6}\s+(.+?)\s*#*$/gm)) {
    const base = slug(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

describe('documentation links', () => {
  it('the slug rule matches GitHub on the headings we use', () => {
    expect(slug('Writer threads: the default')).toBe('writer-threads-the-default');
    expect(slug('The `/yjs` endpoint (y-websocket)')).toBe('the-yjs-endpoint-y-websocket');
  });

  for (const file of files) {
    it(`${file}: every relative link and anchor resolves`, () => {
      const text = readFileSync(join(root, file), 'utf8').replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
      const dead: string[] = [];
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const href = m[1]!;
        if (/^[a-z]+:/i.test(href)) continue;
        const [path, anchor] = href.split('#') as [string, string | undefined];
        const target = path === '' ? join(root, file) : resolve(dirname(join(root, file)), path);
        if (!existsSync(target)) {
          dead.push(`${href} (no such file)`);
          continue;
        }
        if (anchor && target.endsWith('.md') && !anchors(target).has(anchor)) dead.push(`${href} (no such heading)`);
      }
      expect(dead).toEqual([]);
    });
  }
});
