import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs; tokens and API keys are never logged (redacted if they slip into an object). */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'signalbox' },
    redact: { paths: ['token', '*.token', 'apiKey', '*.apiKey', 'apiKeys', '*.apiKeys', 'authorization', '*.authorization', 'headers.authorization'], censor: '[redacted]' },
  });
}
