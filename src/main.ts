import { ConfigError, parseDaemonArgs, DAEMON_USAGE, type DaemonConfig } from './config.js';
import type { Logger } from './host/log.js';
import type { RunningDaemon } from './daemon.js';
import { startEarly } from './early-start.js';

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
  // Before the rest of vmlet is read in, which takes a while on a busy node (early-start.ts).
  const early = await startEarly(config).catch((err: unknown) => err as Error);
  const [{ createLogger }, { startDaemon }] = await Promise.all([import('./host/log.js'), import('./daemon.js')]);
  const logger = createLogger({ format: config.logFormat, level: config.logLevel });
  try {
    if (early instanceof Error) throw early;
    return { daemon: await startDaemon(config, logger, early), logger };
  } catch (err) {
    if (!(early instanceof Error)) {
      early.qmp.close();
      early.release();
    }
    logger.fatal({ err }, `vmlet could not start: ${(err as Error).message}`);
    return 1;
  }
}

/** `vmlet daemon …`: runs until SIGTERM/SIGINT, then stops serving and leaves guests running. */
export async function daemonMain(argv: string[]): Promise<number> {
  // Listened for before the start, so a stop asked for while the daemon starts (systemd stopping a
  // unit that is still activating) is carried out once it has started, not by the signal's default
  // action; a second signal of the same kind still ends it at once.
  let starting = true;
  const stopAsked = new Promise<{ signal: string; duringStart: boolean }>((resolve) => {
    const onSignal = (signal: string) => resolve({ signal, duringStart: starting });
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  const started = await startFromArgs(argv);
  if (typeof started === 'number') return started;
  starting = false;
  const { daemon, logger } = started;
  const { signal, duringStart } = await stopAsked;
  logger.info({ signal, ...(duringStart ? { duringStart } : {}) }, duringStart ? 'shutting down: asked while starting' : 'shutting down');
  await daemon.stop();
  return 0;
}
