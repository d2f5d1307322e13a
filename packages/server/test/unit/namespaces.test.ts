/**
 * The `appends` namespace option as the config file gives it (parseNamespaces), and the default
 * table: only `agent` has appends.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_NAMESPACES, parseNamespaces } from '../../src/channels/namespaces.js';

const fail = (why: string): never => {
  throw new Error(why);
};

describe('namespace option `appends`', () => {
  it('defaults to off; `true` turns it on', () => {
    const [plain, on] = parseNamespaces([{ name: 'plain' }, { name: 'runs', appends: true }], fail);
    expect(plain!.appends).toBeUndefined();
    expect(on!.appends).toBe(true);
    expect(parseNamespaces([{ name: 'x', appends: false }], fail)[0]!.appends).toBeUndefined();
  });

  it('must be a boolean, and cannot go with latest-wins delivery', () => {
    expect(() => parseNamespaces([{ name: 'x', appends: 'yes' }], fail)).toThrow('x.appends must be true or false');
    expect(() => parseNamespaces([{ name: 'g', appends: true, delivery: 'latest' }], fail)).toThrow('g.appends needs delivery "all"');
  });

  it('the default table enables it for `agent` only', () => {
    expect(DEFAULT_NAMESPACES.filter((n) => n.appends === true).map((n) => n.name)).toEqual(['agent']);
  });
});
