/**
 * Named API keys: parsing from the env and the config file, the errors (which never show a key),
 * and matching.
 */
import { describe, expect, it } from 'vitest';
import { ApiKeyring, parseApiKeys } from '../../src/auth/api-keys.js';
import { ConfigError, loadConfig } from '../../src/config.js';

const K1 = 'sk_one_0123456789abcdef';
const K2 = 'sk_two_0123456789abcdef';
const fail = (why: string): never => {
  throw new Error(why);
};

describe('API keys', () => {
  it('parses name:key (every scope) and name:key:scope+scope, from a string or the config file', () => {
    expect(parseApiKeys(`backend:${K1}, console:${K2}:admin+history`, fail)).toEqual([
      { name: 'backend', key: K1, scopes: ['publish', 'history', 'presence', 'rpc', 'admin'] },
      { name: 'console', key: K2, scopes: ['admin', 'history'] },
    ]);
    expect(parseApiKeys([{ name: 'ci', key: K1, scopes: ['publish'] }], fail)).toEqual([{ name: 'ci', key: K1, scopes: ['publish'] }]);
  });

  it('refuses bad entries with a message that names the key, never shows it', () => {
    const bad = [`backend:${K1}:publish+fly`, `backend:short`, `bad name:${K1}`, `only-a-name`, `a:${K1}:publish:x`];
    for (const raw of bad) {
      let message = '';
      try {
        loadConfig({ env: { SIGNALBOX_API_KEYS: raw } });
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        message = (err as Error).message;
      }
      expect(message, raw).toMatch(/^Invalid setting SIGNALBOX_API_KEYS \(--api-keys\)/);
      expect(message).not.toContain(K1);
      expect(message).not.toContain('short');
    }
  });

  it('refuses a repeated name (default is SIGNALBOX_API_KEY\'s) or a repeated key, without showing either key', () => {
    const cases = [
      { SIGNALBOX_API_KEYS: `a:${K1},a:${K2}` },
      { SIGNALBOX_API_KEYS: `a:${K1},b:${K1}` },
      { SIGNALBOX_API_KEY: K2, SIGNALBOX_API_KEYS: `default:${K1}` },
    ];
    for (const env of cases) {
      expect(() => loadConfig({ env })).toThrow(ConfigError);
      try {
        loadConfig({ env });
      } catch (err) {
        expect((err as Error).message).not.toContain(K1);
        expect((err as Error).message).not.toContain(K2);
      }
    }
  });

  it('matches the presented key exactly, to its name and scopes', () => {
    const ring = new ApiKeyring(K2, parseApiKeys(`backend:${K1}:publish`, fail), fail);
    expect(ring.size).toBe(2);
    expect(ring.authenticate(K1)).toMatchObject({ name: 'backend' });
    expect([...ring.authenticate(K1)!.scopes]).toEqual(['publish']);
    expect(ring.authenticate(K2)).toMatchObject({ name: 'default' });
    expect(ring.authenticate(K2)!.scopes.has('admin')).toBe(true);
    for (const wrong of ['', K1.slice(0, -1), `${K1} `, K1.toUpperCase()]) expect(ring.authenticate(wrong)).toBeNull();
  });
});
