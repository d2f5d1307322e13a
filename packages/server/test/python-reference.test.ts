/**
 * The PRP API document's Python client, as printed (test/fixtures/prp_client.py), against a real
 * gateway: it connects with its Authorization header, subscribes with its `subscribe` action, and
 * its `prp.created` handler gets the event with the document's fields. Needs Debian's
 * python3-websockets (10.x: the document's `websockets.connect(..., extra_headers=...)`);
 * scripts/install-test-deps.sh installs it. Under CI=true a missing module fails the run.
 */
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, uniqueChannel, type TestGateway } from './helpers/gateway.js';

const PYTHON = '/usr/bin/python3';
const DRIVER = fileURLToPath(new URL('./fixtures/prp_client_driver.py', import.meta.url));
const IN_CI = process.env.CI === 'true';
const probe = spawnSync(PYTHON, ['-c', 'import websockets; print(websockets.__version__)'], { encoding: 'utf8' });
const version = probe.status === 0 ? probe.stdout.trim() : null;

if (!version && IN_CI) {
  describe('python reference client', () => {
    it('needs /usr/bin/python3 with python3-websockets (run scripts/install-test-deps.sh)', () => {
      expect.fail(`python3-websockets is not importable by ${PYTHON}: ${probe.error?.message ?? probe.stderr}`);
    });
  });
} else if (!version) {
  console.warn(`[python-reference] SKIPPED: ${PYTHON} cannot import websockets (apt-get install python3-websockets, or scripts/install-test-deps.sh)`);
  describe.skip('python reference client (python3-websockets missing)', () => {
    it('runs', () => {});
  });
} else {
  describe(`python reference client (websockets ${version})`, () => {
    let gw: TestGateway;
    beforeAll(async () => {
      gw = await startGateway();
    });
    afterAll(() => gw.close());

    it("the document's client subscribes and its prp.created handler receives the event", async () => {
      const channel = uniqueChannel('project');
      const child = spawn(PYTHON, [DRIVER], {
        env: { PATH: process.env.PATH ?? '', PYTHONDONTWRITEBYTECODE: '1', SIGNALBOX_WS_URL: `${gw.ws}/v1/ws/prps`, SIGNALBOX_TOKEN: await gw.token({ sub: 'usr_py', channels: [channel] }), CHANNEL: channel },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      const line = (prefix: string) => new Promise<string>((resolve, reject) => {
        const check = () => {
          const found = stdout.split('\n').find((l) => l.startsWith(prefix));
          if (found) resolve(found.slice(prefix.length));
        };
        child.stdout.on('data', (d: Buffer) => {
          stdout += d.toString();
          check();
        });
        check();
        void exited.then(() => reject(new Error(`driver exited before "${prefix}": ${stderr}`)));
      });
      const ready = JSON.parse(await line('READY ')) as { subscribedChannels: string[] };
      expect(ready.subscribedChannels).toEqual([channel]);
      const data = { id: 'prp_789012', projectId: 'proj_123456', name: 'Implement Authentication', status: 'pending', priority: 'high' };
      expect((await gw.publish({ channel, type: 'prp.created', data })).status).toBe(200);
      const event = JSON.parse(await line('EVENT ')) as Record<string, unknown>;
      expect(event).toMatchObject({ type: 'prp.created', data });
      expect(typeof event.id).toBe('string');
      expect(Number.isNaN(Date.parse(event.timestamp as string))).toBe(false);
      expect(await exited, stderr).toBe(0);
    });
  });
}
