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
  // Written synchronously: a line is one write(2) on the event loop instead of a thread-pool
  // round trip and a wake-up of the loop when it completes (the pool also carries every state
  // fsync), and nothing logged is lost when vmlet is killed.
  return pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: 1, sync: true }));
}

/** A logger that drops everything: for tests and library use. */
export const silentLogger = (): Logger => pino({ level: 'silent' });
