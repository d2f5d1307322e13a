#!/usr/bin/env node
/**
 * `signalbox serve | token | publish | listen`.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { mintToken } from './auth/jwt.js';
import { ConfigError, SETTINGS, loadConfig, type GatewayConfig } from './config.js';
import { createLogger } from './logger.js';
import { Gateway } from './node.js';
import { SERVER_VERSION } from './version.js';

const USAGE = `signalbox ${SERVER_VERSION}

Usage:
  signalbox serve [--port 8080] [--broker memory|redis://host:6379] [--config file.json] [...settings]
  signalbox token --sub usr_1 [--channels 'project:*,agent:agent_001'] [--ttl 1h]
  signalbox publish --channel project:proj_1 --type prp.created --data '{"id":"prp_1"}' [--id key] [--url http://127.0.0.1:8080]
  signalbox listen --channels project:proj_1[,agent:a1] [--token JWT] [--url ws://127.0.0.1:8080/v1/ws/prps]

Every setting has a flag and an env variable (flags > env > config file > defaults); see docs/configuration.md.`;

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
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'token':
      return token(rest);
    case 'publish':
      return publish(rest);
    case 'listen':
      return listen(rest);
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
  if (dev) {
    config.jwtSecret = randomBytes(32).toString('base64url');
    config.jwtAlgorithms = ['HS256'];
  }
  const generatedKey = !config.apiKey && dev;
  if (generatedKey) config.apiKey = `sk_dev_${randomBytes(18).toString('base64url')}`;
  const log = createLogger(config.logLevel);
  const gateway = new Gateway(config, { logger: log });
  const { port } = await gateway.start();
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const lines = [
    `Signalbox ${SERVER_VERSION} listening on http://${host}:${port} (broker: ${gateway.broker.kind})`,
    `  WebSocket (PRP API): ws://${host}:${port}/v1/ws/prps    PRD-035: ws://${host}:${port}/ws`,
    `  Console: http://${host}:${port}/console`,
  ];
  if (dev) {
    const devToken = await mintToken(config.jwtSecret!, { sub: 'dev', channels: ['*'], ttlSeconds: 24 * 3600 });
    lines.push(
      '',
      '  DEV MODE: no SIGNALBOX_JWT_SECRET set; a random secret was generated for this run only.',
      `  Dev token (sub=dev, all channels, 24h):`,
      `    ${devToken}`,
      `  API key${generatedKey ? ' (generated)' : ''}:`,
      `    ${config.apiKey}`,
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
  const flags = parse(args, { sub: { type: 'string' }, channels: { type: 'string' }, ttl: { type: 'string' }, secret: { type: 'string' } });
  const config: GatewayConfig = loadConfig({ flags });
  const secret = (flags.secret as string | undefined) ?? config.jwtSecret;
  if (!secret) throw new ConfigError('Invalid setting SIGNALBOX_JWT_SECRET (--jwt-secret): `signalbox token` needs the HS256 secret the gateway uses');
  if (typeof flags.sub !== 'string' || flags.sub.length === 0) throw new ConfigError('Missing --sub (the token subject, e.g. usr_1)');
  const channels = typeof flags.channels === 'string' ? flags.channels.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
  const ttlSeconds = parseDuration((flags.ttl as string | undefined) ?? '1h');
  console.log(await mintToken(secret, { sub: flags.sub, channels, ttlSeconds }));
  return 0;
}

async function publish(args: string[]): Promise<number> {
  const flags = parse(args, { url: { type: 'string' }, channel: { type: 'string' }, type: { type: 'string' }, data: { type: 'string' }, id: { type: 'string' } });
  const config = loadConfig({ flags });
  const url = (flags.url as string | undefined) ?? `http://${config.host}:${config.port}`;
  if (!config.apiKey) throw new ConfigError('Invalid setting SIGNALBOX_API_KEY (--api-key): needed to publish');
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
    headers: { authorization: `Bearer ${config.apiKey}`, 'content-type': 'application/json' },
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
  if (!tok && config.jwtSecret) tok = await mintToken(config.jwtSecret, { sub: 'cli', channels: ['*'], ttlSeconds: 3600 });
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

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`signalbox: ${(err as Error).message}`);
    } else {
      console.error('signalbox: failed to start:', err);
    }
    process.exit(1);
  },
);
