import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger } from 'pino';
export type LogFormat = 'json' | 'pretty';

/** JSON lines on stdout (for journald and log shippers), or colourised lines for people. */
export function createLogger(options: { level?: string; format?: LogFormat } = {}): Logger {
  const level = options.level ?? process.env.VMLET_LOG_LEVEL ?? 'info';
  const base = { name: 'vmlet' };
  if (options.format === 'pretty') {
    return pino({ level, base }, pretty({ colorize: process.stdout.isTTY, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname,name' }));
  }
  return pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime });
}

/** A logger that drops everything: for tests and library use. */
export const silentLogger = (): Logger => pino({ level: 'silent' });
