import { errorMessage } from '../../model/errors.js';
import type { VmRecord } from '../registry.js';
import type { OpEnv } from './env.js';
import { restartDelayMs, restartsSoFar, wantsRestart, type ExitKind } from './run-strategy.js';
import { start } from './start.js';

/** Pending restarts by VM id, so a StopVm, StartVm or DeleteVm can call them off. */
const timers = new WeakMap<VmRecord, NodeJS.Timeout>();
/**
 * Restarts after a node reboot go one at a time (the node is starting everything at once), and
 * only once the daemon's startup is over (openSerialRestarts), so that its clean-up of strays
 * never meets a QEMU being started.
 */
const serialChains = new WeakMap<object, { chain: Promise<unknown>; open: () => void }>();

function serialChain(env: OpEnv): { chain: Promise<unknown>; open: () => void } {
  let entry = serialChains.get(env.vms);
  if (!entry) {
    let open = (): void => undefined;
    const opened = new Promise<void>((resolve) => (open = resolve));
    entry = { chain: opened, open };
    serialChains.set(env.vms, entry);
  }
  return entry;
}

/** The daemon's startup is done: restarts planned during it may run now. */
export function openSerialRestarts(env: OpEnv): void {
  serialChain(env).open();
}

export function cancelRestart(record: VmRecord): void {
  const timer = timers.get(record);
  if (timer) clearTimeout(timer);
  timers.delete(record);
}

/**
 * After QEMU went away (the VM is Stopped or Failed now): restarts it as its run strategy says,
 * the first time at once, then with a doubling backoff, visible as next_restart_at.
 */
export function planRestart(env: OpEnv, record: VmRecord, kind: ExitKind, options: { serial?: boolean } = {}): void {
  const { spec, status } = record;
  if (!wantsRestart(spec.runStrategy, kind, status.stopRequested === true)) return;
  const now = env.clock.now();
  const done = restartsSoFar(status.restartCount, status.startedAt, now);
  const delay = restartDelayMs(done);
  const at = new Date(now.getTime() + delay).toISOString();
  env.vms.update(record, { restartCount: done, nextRestartAt: at });
  record.log.info({ strategy: spec.runStrategy, kind, restarts: done, delayMs: delay }, 'restart planned by the run strategy');
  cancelRestart(record);
  const timer = setTimeout(() => {
    timers.delete(record);
    const run = (): Promise<void> =>
      record.queue.run(() => restartNow(env, record, at, kind)).catch((err: unknown) => record.log.error({ err }, 'restart by the run strategy failed'));
    if (options.serial) {
      const entry = serialChain(env);
      entry.chain = entry.chain.then(run);
    } else void run();
  }, delay);
  timer.unref();
  timers.set(record, timer);
}

async function restartNow(env: OpEnv, record: VmRecord, at: string, kind: ExitKind): Promise<void> {
  const { status } = record;
  // Called off, or overtaken by another operation since it was planned.
  if (status.nextRestartAt !== at || status.stopRequested || (status.phase !== 'Stopped' && status.phase !== 'Failed')) return;
  env.vms.update(record, { restartCount: (status.restartCount ?? 0) + 1, nextRestartAt: undefined });
  env.vms.emit('restart', { id: record.id, kind });
  try {
    await start(env, record);
  } catch (err) {
    record.log.warn({ error: errorMessage(err) }, 'restart failed; planning the next one');
    planRestart(env, record, 'failure');
  }
}
