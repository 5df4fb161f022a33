/**
 * What a starting daemon does before it reads in the rest of itself: make and lock its state and
 * run dirs, then connect to the QEMUs it will adopt and ask each its run state (qmp-prefetch.ts),
 * so that busy QEMUs answer while the daemon loads. Imports only what that needs.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { DaemonConfig } from './config.js';
import { dirWithMode } from './host/dir-mode.js';
import { lockDir } from './host/single-instance.js';
import { qmpConnectTimeoutMs } from './qemu/qmp.js';
import { QmpPrefetch } from './qemu/qmp-prefetch.js';
import { checkRunDirFits, vmPaths } from './state/paths.js';

/**
 * How long the start waits for its QMP connections to be made (a unix socket connects at once
 * unless its QEMU is hung with a full backlog, which must not hold up every other VM): until they
 * are, the handshake that is written behind them has not gone out.
 */
const CONNECT_WAIT_MS = 100;

export interface EarlyStart {
  /** Unlocks the state and run dirs. */
  release(): void;
  qmp: QmpPrefetch;
}

export async function startEarly(config: DaemonConfig): Promise<EarlyStart> {
  const tooLong = checkRunDirFits(config.runDir);
  if (tooLong) throw new Error(tooLong);
  // Unprivileged QEMUs must pass through to their own VM's directory, and see nothing else.
  const dirMode = config.qemuUids ? 0o711 : 0o750;
  for (const dir of [config.stateDir, config.runDir]) dirWithMode(dir, dirMode);
  // Before any state is read or any QEMU looked at (see single-instance.ts).
  const release = await lockStateAndRun(config);
  const ids = await readdir(join(config.stateDir, 'vms')).catch(() => [] as string[]);
  const sockets = ids.filter((id) => !id.startsWith('.')).map((id) => vmPaths(config.stateDir, config.runDir, id).qmpSocket);
  // The floor the hypervisor gives an adoption's handshake.
  const qmp = new QmpPrefetch(sockets, qmpConnectTimeoutMs(config.startTimeoutSeconds * 1000, 0));
  await Promise.race([qmp.connected, delay(CONNECT_WAIT_MS, undefined, { ref: false })]);
  return { release, qmp };
}

/** Both directories locked, or neither. */
async function lockStateAndRun(config: DaemonConfig): Promise<() => void> {
  const locks = await Promise.allSettled([lockDir(config.stateDir, 'state'), lockDir(config.runDir, 'run')]);
  const releases = locks.flatMap((l) => (l.status === 'fulfilled' ? [l.value] : []));
  const release = (): void => {
    for (const r of releases.reverse()) r();
  };
  const failed = locks.find((l) => l.status === 'rejected');
  if (failed) {
    release();
    throw failed.reason;
  }
  return release;
}
