/**
 * `signalbox session attach` (also the `signalbox-session` bin of this package): attaches the CDP
 * bridge to a tab and runs until interrupted or the tab closes.
 */
import { parseArgs } from 'node:util';
import { SignalboxClient } from '@signalbox/client/node';
import { attachBridge } from './bridge.js';
import { BinaryPublishWebSocket } from './binary-socket.js';
import { sessionChannel } from './events.js';

export const ATTACH_USAGE = `Usage: signalbox session attach --cdp <endpoint> --target <id|url-match> --session <id>
                                [--url ws://127.0.0.1:8080/v1/ws/prps] [--token JWT] [--max-fps 5] [--quality 60] [--no-screencast] [--no-evaluate]

Attaches the CDP bridge to a tab of a running Chromium (started with --remote-debugging-port) and
relays its console, exceptions, network, navigations and, while someone watches, its screen on
session:{id}; answers evaluate, dom.query, click, type, key, scroll, navigate and screenshot.
--cdp is the browser's endpoint (http://127.0.0.1:9222 or its ws://…/devtools/browser/… URL);
--target a CDP target id or a substring of the tab's URL. The token (--token, else SIGNALBOX_TOKEN)
needs \`channels\` and \`handle\` on the session. Runs until Ctrl-C or the tab closes.`;

/** Options `signalbox session` passes in (it can mint a token from the dev secret). */
export interface CliContext {
  /** Mints a token for the session when none is given. */
  mintToken?: (channel: string) => Promise<string | undefined>;
  out?: (line: string) => void;
}

/** Runs `session <subcommand> ...args`; resolves with the exit code. */
export async function main(argv: string[], ctx: CliContext = {}): Promise<number> {
  const out = ctx.out ?? ((l: string) => console.log(l));
  const [sub, ...args] = argv;
  if (!sub || sub === '--help' || sub === '-h' || args.includes('--help') || args.includes('-h')) {
    out(ATTACH_USAGE);
    return sub ? 0 : 1;
  }
  if (sub !== 'attach') {
    console.error(`signalbox session: unknown subcommand '${sub}'.\n\n${ATTACH_USAGE}`);
    return 1;
  }
  const { values } = parseArgs({
    args, strict: true, allowPositionals: false,
    options: {
      cdp: { type: 'string' }, target: { type: 'string' }, session: { type: 'string' }, url: { type: 'string' }, token: { type: 'string' },
      'max-fps': { type: 'string' }, quality: { type: 'string' }, 'no-screencast': { type: 'boolean' }, 'no-evaluate': { type: 'boolean' },
    },
  });
  for (const k of ['cdp', 'target', 'session'] as const) {
    if (!values[k]) {
      console.error(`signalbox session attach: missing --${k}\n\n${ATTACH_USAGE}`);
      return 1;
    }
  }
  const channel = sessionChannel(values.session!);
  const token = values.token ?? process.env.SIGNALBOX_TOKEN ?? (await ctx.mintToken?.(channel));
  if (!token) {
    console.error('signalbox session attach: missing --token (or SIGNALBOX_TOKEN) with `channels` and `handle` on the session');
    return 1;
  }
  const num = (v: string | undefined, name: string): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
    return n;
  };
  const url = values.url ?? process.env.SIGNALBOX_WS_URL ?? 'ws://127.0.0.1:8080/v1/ws/prps';
  const client = new SignalboxClient({ url, token, WebSocket: BinaryPublishWebSocket });
  client.on('error', (err) => console.error(`signalbox session: ${err.code}: ${err.message}`));
  client.on('$state', (c) => {
    if (c.to === 'reconnecting' || c.to === 'connected') out(`gateway: ${c.to}`);
  });
  await client.connect();
  const bridge = await attachBridge({
    client, cdp: values.cdp!, target: values.target!, session: values.session!,
    screencast: values['no-screencast'] ? false : { maxFps: num(values['max-fps'], 'max-fps'), quality: num(values.quality, 'quality') },
    commands: { evaluate: !values['no-evaluate'] },
    onWatched: (viewers) => out(`watched by ${viewers.length}: ${viewers.map((v) => v.userId).join(', ') || '-'}`),
  });
  await bridge.commands.ready;
  out(`attached to ${bridge.targetId} (${bridge.page.url()}) on ${channel}`);
  const stop = (): void => void bridge.stop();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await bridge.closed;
  client.disconnect();
  out('detached');
  return 0;
}
