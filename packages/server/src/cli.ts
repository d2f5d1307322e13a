#!/usr/bin/env node
/**
 * `signalbox serve | token | publish | listen | session`.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { mintToken } from './auth/jwt.js';
import { ConfigError, SETTINGS, loadConfig, type GatewayConfig } from './config.js';
import { issueConsoleCode } from './http/console-session.js';
import { createLogger } from './logger.js';
import { Gateway } from './node.js';
import { SERVER_VERSION } from './version.js';

const USAGE = `signalbox ${SERVER_VERSION}

Usage:
  signalbox serve [--port 8080] [--broker memory|redis://host:6379] [--config file.json] [...settings]
  signalbox token --sub usr_1 [--channels 'project:*'] [--publish 'agent:a1'] [--handle ...] [--call ...] [--ttl 1h]
  signalbox publish --channel project:proj_1 --type prp.created --data '{"id":"prp_1"}' [--id key] [--url http://127.0.0.1:8080]
  signalbox listen --channels project:proj_1[,agent:a1] [--token JWT] [--url ws://127.0.0.1:8080/v1/ws/prps]
  signalbox session attach --cdp http://127.0.0.1:9222 --target <id|url-match> --session <id> [--url ws://…] [--token JWT]

Every setting has a flag and an env variable (flags > env > config file > defaults); see docs/configuration.md.`;

const COMMAND_USAGE: Record<string, string> = {
  serve: `Usage: signalbox serve [--port 8080] [--broker memory|redis://host:6379] [--config file.json] [...settings]

Runs the gateway. With no JWT secret, public key or JWKS set it runs in dev mode: it prints a dev
token and an API key, kept in ~/.signalbox/dev.json so that \`signalbox token\`, \`publish\` and
\`listen\` work from another terminal. Every setting has a flag and an env variable; see
docs/configuration.md.`,
  token: `Usage: signalbox token --sub usr_1 [--channels 'project:*,agent:agent_001'] [--publish P] [--handle P] [--call P] [--admin] [--ttl 1h] [--secret S]

Mints an HS256 token. Each grant is a comma-separated list of channel patterns: --channels what
the holder may read, --publish where it may publish, --handle the channels it produces (RPC
handler, reserved event types), --call the channels whose handler it may call. --admin adds the
\`"admin": true\` claim that signs in to the console (POST /console/session {token}). The secret is
--secret, else SIGNALBOX_JWT_SECRET, else the dev secret of \`signalbox serve\` in dev mode
(~/.signalbox/dev.json).`,
  publish: `Usage: signalbox publish --channel project:proj_1 --type prp.created --data '{"id":"prp_1"}' [--id key] [--url http://127.0.0.1:8080]

Publishes through the HTTP API with SIGNALBOX_API_KEY (--api-key), else the dev API key.`,
  listen: `Usage: signalbox listen --channels project:proj_1[,agent:a1] [--token JWT] [--url ws://127.0.0.1:8080/v1/ws/prps]

Prints every message of the PRP endpoint. Without --token one is minted with SIGNALBOX_JWT_SECRET,
else the dev secret.`,
};

/** Dev mode's secret and API key, kept for the user's other terminals (mode 600). */
interface DevCredentials {
  secret: string;
  apiKey: string;
}

function devFile(): string {
  return join(homedir(), '.signalbox', 'dev.json');
}

function readDevCredentials(): DevCredentials | null {
  try {
    const v = JSON.parse(readFileSync(devFile(), 'utf8')) as Partial<DevCredentials>;
    return typeof v.secret === 'string' && v.secret.length >= 32 && typeof v.apiKey === 'string' ? { secret: v.secret, apiKey: v.apiKey } : null;
  } catch {
    return null;
  }
}

/**
 * The dev credentials: the saved ones, else new ones saved atomically (a temp file linked into
 * place, so two gateways starting at once agree on one). If nothing can be saved, they hold for
 * this run only.
 */
function devCredentials(): { creds: DevCredentials; saved: boolean } {
  const existing = readDevCredentials();
  if (existing) return { creds: existing, saved: true };
  const creds = { secret: randomBytes(32).toString('base64url'), apiKey: `sk_dev_${randomBytes(18).toString('base64url')}` };
  const path = devFile();
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileSync(tmp, JSON.stringify(creds), { mode: 0o600 });
    try {
      linkSync(tmp, path);
    } catch {
      // Another gateway saved its own first: use those.
      const other = readDevCredentials();
      if (other) return { creds: other, saved: true };
      return { creds, saved: false };
    } finally {
      rmSync(tmp, { force: true });
    }
    return { creds, saved: true };
  } catch {
    return { creds, saved: false };
  }
}

function wantsHelp(args: string[]): boolean {
  return args.includes('--help') || args.includes('-h');
}

const settingOptions = Object.fromEntries(SETTINGS.map((s) => [s.flag, { type: 'string' as const }]));

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    console.log(USAGE);
    return command ? 0 : 1;
  }
  if (command === '--version' || command === 'version') {
    console.log(SERVER_VERSION);
    return 0;
  }
  if (COMMAND_USAGE[command] && wantsHelp(rest)) {
    console.log(COMMAND_USAGE[command]);
    return 0;
  }
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'token':
      return token(rest);
    case 'publish':
      return publish(rest);
    case 'listen':
      return listen(rest);
    case 'session':
      return session(rest);
    default:
      console.error(`Unknown command '${command}'.\n\n${USAGE}`);
      return 1;
  }
}

function parse<T extends Record<string, { type: 'string' | 'boolean' }>>(args: string[], extra: T) {
  return parseArgs({ args, options: { config: { type: 'string' }, ...settingOptions, ...extra }, strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
}

function parseDuration(s: string): number {
  const m = /^(\d+)(s|m|h|d)?$/.exec(s.trim());
  if (!m) throw new ConfigError(`Invalid --ttl "${s}": use e.g. 3600, 30m, 1h, 7d`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's'];
}

async function serve(args: string[]): Promise<number> {
  const flags = parse(args, {});
  const config = loadConfig({ flags });
  const dev = !config.jwtSecret && !config.jwtPublicKey && !config.jwksUrl;
  const devCreds = dev ? devCredentials() : null;
  if (devCreds) {
    config.jwtSecret = devCreds.creds.secret;
    config.jwtAlgorithms = ['HS256'];
  }
  const generatedKey = !config.apiKey && devCreds !== null;
  if (generatedKey) config.apiKey = devCreds.creds.apiKey;
  const log = createLogger(config.logLevel);
  const gateway = new Gateway(config, { logger: log });
  let port: number;
  try {
    ({ port } = await gateway.start());
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') throw new ConfigError(`Invalid setting SIGNALBOX_PORT (--port): ${config.host}:${config.port} is already in use`);
    if (e.code === 'EADDRNOTAVAIL' || e.code === 'EACCES') throw new ConfigError(`Invalid setting SIGNALBOX_HOST/SIGNALBOX_PORT (--host/--port): cannot listen on ${config.host}:${config.port} (${e.code})`);
    throw err;
  }
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const lines = [
    `Signalbox ${SERVER_VERSION} listening on http://${host}:${port} (broker: ${gateway.broker.kind})`,
    `  WebSocket (PRP API): ws://${host}:${port}/v1/ws/prps    PRD-035: ws://${host}:${port}/ws`,
    `  Console: http://${host}:${port}/console`,
  ];
  if (dev) {
    const devToken = await mintToken(config.jwtSecret!, { sub: 'dev', channels: ['*'], publish: ['*'], handle: ['*'], call: ['*'], ttlSeconds: 24 * 3600 });
    lines.push(
      '',
      devCreds!.saved
        ? `  DEV MODE: no SIGNALBOX_JWT_SECRET set; using the dev secret in ${devFile()} (mode 600),\n  so \`signalbox token --sub usr_1\`, \`signalbox publish\` and \`signalbox listen\` work from another terminal.`
        : '  DEV MODE: no SIGNALBOX_JWT_SECRET set; a random secret was generated for this run only.',
      `  Dev token (sub=dev, every grant on every channel, 24h):`,
      `    ${devToken}`,
      `  API key${generatedKey ? ' (generated)' : ''}:`,
      `    ${config.apiKey}`,
      ...(config.console ? [
        '  Console, signed in once by this link (one-time code, expires in 10 minutes):',
        `    http://${host}:${port}/console#code=${issueConsoleCode(config)}`,
      ] : []),
      '',
      '  Try:',
      `    curl -X POST http://${host}:${port}/v1/publish -H "Authorization: Bearer ${config.apiKey}" -H 'Content-Type: application/json' \\`,
      `      -d '{"channel":"project:proj_123456","type":"prp.created","data":{"id":"prp_789012"}}'`,
    );
  } else if (!config.apiKey) {
    lines.push('  SIGNALBOX_API_KEY is not set: the HTTP publish/history API answers 401.');
  }
  console.log(lines.join('\n'));

  let stopping = false;
  const shutdown = (why: string) => {
    if (stopping) {
      log.warn({ why }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ why }, 'shutting down');
    // Whatever happens in the drain, the process is gone shortly after the drain timeout.
    setTimeout(() => process.exit(1), config.drainTimeoutMs + 3000).unref();
    gateway.drain().then(() => process.exit(0), (err: unknown) => {
      log.error({ err }, 'drain failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // Under a wrapper (npm start) that may not forward signals, the wrapper's exit is our signal.
  if (process.env.npm_lifecycle_event) {
    const parent = process.ppid;
    setInterval(() => {
      if (process.ppid !== parent) shutdown('parent exited');
    }, 500).unref();
  }
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  return new Promise<number>(() => {});
}

async function token(args: string[]): Promise<number> {
  const flags = parse(args, {
    sub: { type: 'string' }, channels: { type: 'string' }, publish: { type: 'string' }, handle: { type: 'string' }, call: { type: 'string' },
    ttl: { type: 'string' }, secret: { type: 'string' }, admin: { type: 'boolean' },
  });
  const config: GatewayConfig = loadConfig({ flags });
  const secret = (flags.secret as string | undefined) ?? config.jwtSecret ?? readDevCredentials()?.secret;
  if (!secret) throw new ConfigError('Invalid setting SIGNALBOX_JWT_SECRET (--jwt-secret): `signalbox token` needs the HS256 secret the gateway uses (or a dev-mode `signalbox serve` run first)');
  if (typeof flags.sub !== 'string' || flags.sub.length === 0) throw new ConfigError('Missing --sub (the token subject, e.g. usr_1)');
  const list = (v: unknown) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : undefined);
  const ttlSeconds = parseDuration((flags.ttl as string | undefined) ?? '1h');
  console.log(await mintToken(secret, {
    sub: flags.sub, channels: list(flags.channels), publish: list(flags.publish), handle: list(flags.handle), call: list(flags.call), ttlSeconds,
    admin: flags.admin === true ? true : undefined,
  }));
  return 0;
}

async function publish(args: string[]): Promise<number> {
  const flags = parse(args, { url: { type: 'string' }, channel: { type: 'string' }, type: { type: 'string' }, data: { type: 'string' }, id: { type: 'string' } });
  const config = loadConfig({ flags });
  const url = (flags.url as string | undefined) ?? `http://${config.host}:${config.port}`;
  const apiKey = config.apiKey ?? readDevCredentials()?.apiKey;
  if (!apiKey) throw new ConfigError('Invalid setting SIGNALBOX_API_KEY (--api-key): needed to publish (or a dev-mode `signalbox serve` run first)');
  if (typeof flags.channel !== 'string') throw new ConfigError('Missing --channel');
  let data: unknown = null;
  if (typeof flags.data === 'string') {
    try {
      data = JSON.parse(flags.data);
    } catch {
      throw new ConfigError('--data must be JSON');
    }
  }
  const res = await fetch(`${url}/v1/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ channel: flags.channel, type: flags.type ?? 'message', data, ...(flags.id ? { id: flags.id } : {}) }),
  });
  console.log(await res.text());
  return res.ok ? 0 : 1;
}

async function listen(args: string[]): Promise<number> {
  const flags = parse(args, { url: { type: 'string' }, channels: { type: 'string' }, token: { type: 'string' } });
  const config = loadConfig({ flags });
  const url = (flags.url as string | undefined) ?? `ws://${config.host}:${config.port}/v1/ws/prps`;
  let tok = flags.token as string | undefined;
  const secret = config.jwtSecret ?? readDevCredentials()?.secret;
  if (!tok && secret) tok = await mintToken(secret, { sub: 'cli', channels: ['*'], ttlSeconds: 3600 });
  if (!tok) throw new ConfigError('Missing --token (or SIGNALBOX_JWT_SECRET to mint one)');
  const channels = typeof flags.channels === 'string' ? flags.channels.split(',').map((s) => s.trim()).filter(Boolean) : [];
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${tok}` } });
  ws.on('message', (data) => {
    const text = data.toString();
    console.log(text);
    try {
      if ((JSON.parse(text) as { type?: string }).type === 'connection.established' && channels.length > 0) {
        ws.send(JSON.stringify({ id: 'listen_1', action: 'subscribe', payload: { channels } }));
      }
    } catch {
      // not JSON: printed as is
    }
  });
  return new Promise<number>((resolve) => {
    ws.on('close', (code, reason) => {
      console.error(`closed: ${code} ${reason.toString()}`);
      resolve(code === 1000 ? 0 : 1);
    });
    ws.on('error', (err) => {
      console.error(`error: ${err.message}`);
      resolve(1);
    });
    process.on('SIGINT', () => ws.close(1000));
  });
}

/**
 * `signalbox session …` is @signalbox/session's CLI (the CDP bridge), loaded only when used so the
 * gateway does not depend on playwright-core. Without --token or SIGNALBOX_TOKEN it mints one for
 * the session (read + handle) with SIGNALBOX_JWT_SECRET, else the dev secret.
 */
async function session(args: string[]): Promise<number> {
  const specifier = '@signalbox/session/cli';
  let mod: { main(argv: string[], ctx: { mintToken?: (channel: string) => Promise<string | undefined> }): Promise<number> };
  try {
    mod = (await import(specifier)) as typeof mod;
  } catch {
    throw new ConfigError('`signalbox session` needs the @signalbox/session package (npm install @signalbox/session)');
  }
  return mod.main(args, {
    mintToken: async (channel) => {
      const secret = process.env.SIGNALBOX_JWT_SECRET ?? readDevCredentials()?.secret;
      return secret ? mintToken(secret, { sub: 'session-bridge', channels: [channel], handle: [channel], ttlSeconds: 24 * 3600 }) : undefined;
    },
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`signalbox: ${(err as Error).message}`);
    } else {
      // One line, not a stack trace: what failed and its system code; the stack only at debug level.
      const e = err as NodeJS.ErrnoException;
      console.error(`signalbox: failed: ${e?.message ?? String(err)}${e?.code ? ` (${e.code})` : ''}`);
      if (process.env.SIGNALBOX_LOG_LEVEL === 'debug') console.error(err);
    }
    process.exit(1);
  },
);
