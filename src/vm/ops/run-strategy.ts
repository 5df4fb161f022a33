import type { RunStrategy } from '../../model/vm.js';

/** How QEMU went away: a clean power-off (guest or QEMU shutdown) or anything else. */
export type ExitKind = 'poweroff' | 'failure';

/** After this long running, a VM's restarts start over from no backoff. */
export const RESET_AFTER_RUNNING_MS = 10 * 60_000;
const FIRST_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 5 * 60_000;

/** KubeVirt's run strategies; an explicit StopVm outranks every one of them. */
export function wantsRestart(strategy: RunStrategy | undefined, kind: ExitKind, stopRequested: boolean): boolean {
  if (stopRequested) return false;
  if (strategy === 'Always') return true;
  return strategy === 'RerunOnFailure' && kind === 'failure';
}

/** The wait before restart number `done + 1`: none for the first, then 1 s doubling to 5 min. */
export function restartDelayMs(done: number): number {
  if (done <= 0) return 0;
  return Math.min(FIRST_BACKOFF_MS * 2 ** (done - 1), MAX_BACKOFF_MS);
}

/** Restarts already counted, forgotten once the last run lasted RESET_AFTER_RUNNING_MS. */
export function restartsSoFar(count: number | undefined, startedAt: string | undefined, now: Date): number {
  if (!count) return 0;
  if (startedAt && now.getTime() - Date.parse(startedAt) >= RESET_AFTER_RUNNING_MS) return 0;
  return count;
}
