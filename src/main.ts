import { ConfigError, parseDaemonArgs, DAEMON_USAGE, type DaemonConfig } from './config.js';
import { createLogger, type Logger } from './host/log.js';
import { startDaemon, type RunningDaemon } from './daemon.js';

/** The daemon's configuration, or (a usage error, printed with the usage) exit status 2. */
function daemonConfigOrUsage(argv: string[], verb = 'daemon'): DaemonConfig | 2 {
  try {
    return parseDaemonArgs(argv);
  } catch (err) {
    if (err instanceof ConfigError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`vmlet ${verb}: ${(err as Error).message}\n\n${DAEMON_USAGE}\n`);
      return 2;
    }
    throw err;
  }
}

/** Parses the daemon's options and starts it; or the exit status: 2 a usage error, 1 it could not start. */
export async function startFromArgs(argv: string[], verb = 'daemon'): Promise<{ daemon: RunningDaemon; logger: Logger } | number> {
  const config = daemonConfigOrUsage(argv, verb);
  if (config === 2) return 2;
  const logger = createLogger({ format: config.logFormat, level: config.logLevel });
  try {
    return { daemon: await startDaemon(config, logger), logger };
  } catch (err) {
    logger.fatal({ err }, `vmlet could not start: ${(err as Error).message}`);
    return 1;
  }
}

/** `vmlet daemon …`: runs until SIGTERM/SIGINT, then stops serving and leaves guests running. */
export async function daemonMain(argv: string[]): Promise<number> {
  const started = await startFromArgs(argv);
  if (typeof started === 'number') return started;
  const { daemon, logger } = started;
  await new Promise<void>((resolve) => {
    const onSignal = (sig: string) => {
      logger.info({ signal: sig }, 'shutting down');
      resolve();
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  await daemon.stop();
  return 0;
}
