/**
 * One vmlet per state dir and per run dir, and no listening socket stolen: a second daemon on the
 * same state dir would find every VM's QMP taken by the first and mark its running guests Failed;
 * one on the same run dir would kill the first one's QEMUs as orphans; one on the same socket path
 * would delete the first one's socket. The dirs are locked before any state is read.
 */
import { closeSync, lstatSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { VmletError } from '../model/errors.js';
import { isAlive, processCmdline } from './process.js';

const LOCK_FILE = 'vmlet.lock';

/** The pid in the lock file, if that process is alive and is a vmlet (not a reused pid). */
async function holder(lockPath: string): Promise<number | undefined> {
  let pid: number;
  try {
    pid = Number(readFileSync(lockPath, 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || !(await isAlive(pid))) return undefined;
  const cmdline = (await processCmdline(pid)) ?? [];
  return cmdline.some((arg) => arg.includes('vmlet') || arg.endsWith('cli/main.js')) ? pid : undefined;
}

/**
 * Claims `<dir>/vmlet.lock` for this process: FAILED_PRECONDITION if a live vmlet holds it. A lock
 * left by a vmlet that died (kill -9) is taken over. `what` names the dir's flag ('state', 'run').
 * Returns the release function.
 */
export async function lockDir(dir: string, what: string): Promise<() => void> {
  const lockPath = join(dir, LOCK_FILE);
  const other = await holder(lockPath);
  if (other !== undefined) {
    throw new VmletError('FAILED_PRECONDITION', `another vmlet (pid ${other}) is using the ${what} dir ${dir}; stop it first or use another --${what}-dir`);
  }
  const fd = openSync(lockPath, 'w', 0o640);
  try {
    writeSync(fd, `${process.pid}\n`);
  } finally {
    closeSync(fd);
  }
  return () => {
    try {
      if (readFileSync(lockPath, 'utf8').trim() === String(process.pid)) rmSync(lockPath, { force: true });
    } catch {
      // Already gone.
    }
  };
}

/** Whether something accepts connections on the unix socket at path. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(path);
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.setTimeout(2000, () => done(true));
  });
}

/**
 * Makes `path` free for a new listening socket: nothing there, or a stale socket (removed).
 * FAILED_PRECONDITION for a socket something still serves on, or for anything that is not a socket.
 */
export async function freeUnixSocketPath(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!isSocket) throw new VmletError('FAILED_PRECONDITION', `${path} exists and is not a socket; vmlet will not replace it`);
  if (await answers(path)) throw new VmletError('FAILED_PRECONDITION', `something (another vmlet?) is serving on ${path}; stop it first or listen elsewhere`);
  rmSync(path, { force: true });
}
