import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CLOSE_CODE_DESCRIPTIONS, CloseCode, ERROR_DESCRIPTIONS, ErrorCode } from '../src/index.js';
import { SETTINGS } from '../../server/src/config.js';

const read = (p: string) => readFileSync(new URL(`../../../${p}`, import.meta.url), 'utf8');

/** Rows of the first markdown table after `heading`: first cell of each row, backticks stripped. */
function tableKeys(doc: string, heading: string): string[] {
  const start = doc.indexOf(heading);
  expect(start, `heading "${heading}"`).toBeGreaterThanOrEqual(0);
  const lines = doc.slice(start).split('\n');
  const rows: string[] = [];
  let inTable = false;
  for (const line of lines.slice(1)) {
    if (line.startsWith('|')) {
      inTable = true;
      const cell = line.split('|')[1]!.trim().replace(/`/g, '');
      if (!/^-+$/.test(cell) && cell !== 'Code' && cell !== 'Env') rows.push(cell);
    } else if (inTable) break;
  }
  return rows;
}

describe('docs stay in sync with the catalogs', () => {
  const errors = read('docs/errors.md');

  it('docs/errors.md lists exactly the error codes of the catalog', () => {
    expect(tableKeys(errors, '## Error codes').sort()).toEqual(Object.values(ErrorCode).sort());
    for (const code of Object.values(ErrorCode)) expect(ERROR_DESCRIPTIONS[code]).toBeDefined();
  });

  it('docs/errors.md lists exactly the close codes the gateway uses', () => {
    const documented = tableKeys(errors, '## Close codes').map(Number).sort();
    expect(documented).toEqual(Object.values(CloseCode).map(Number).sort());
    expect(Object.keys(CLOSE_CODE_DESCRIPTIONS).map(Number).sort()).toEqual(documented);
  });

  it('docs/configuration.md documents every setting with its env variable and flag', () => {
    const doc = read('docs/configuration.md');
    expect(tableKeys(doc, '## Settings').sort()).toEqual(SETTINGS.map((s) => s.env).sort());
    for (const s of SETTINGS) expect(doc).toContain(`\`--${s.flag}\``);
  });
});
