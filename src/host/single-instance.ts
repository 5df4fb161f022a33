/**
 * One vmlet per state dir and per run dir, and no listening socket stolen: a second daemon on the
 * same state dir would find every VM's QMP taken by the first and mark its running guests Failed;
 * one on the same run dir would kill the first one's QEMUs as orphans; one on the same socket path
 * would delete the first one's socket. The dirs are locked before any state is read.
 */
import { closeSync, constants, ftruncateSync, lstatSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { VmletError, errorMessage } from '../model/errors.js';
import { CommandError, run } from './run.js';
import { loadAddon } from './native-addon.js';

const LOCK_FILE = 'vmlet.lock';
/** What flock(1) exits with when the lock is held by someone else (EX_TEMPFAIL). */
const HELD = 75;

/** The pid the holder wrote into the lock file, for the message; the lock itself is the flock. */
function writtenPid(lockPath: string): number | undefined {
  try {
    const pid = Number(readFileSync(lockPath, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** native/flock: flock(2) in this process. */
type FlockAddon = { lockExclusive(fd: number): boolean };

/** True once `fd` holds an exclusive flock, false while another open file holds one. */
export type FdLocker = (fd: number) => Promise<boolean>;

/** flock(1) locks the fd it is given as fd 3 and exits; the lock stays with the open file. */
export const lockWithFlockCommand: FdLocker = async (fd) => {
  try {
    await run('flock', ['--exclusive', '--nonblock', '--conflict-exit-code', String(HELD), '3'], { passFds: [fd], timeoutMs: 10_000 });
    return true;
  } catch (err) {
    if (err instanceof CommandError && err.exitCode === HELD) return false;
    throw err;
  }
};

/** The addon when scripts/setup.sh built it, else flock(1). */
const lockExclusive: FdLocker = async (fd) => {
  const addon = loadAddon<FlockAddon>('flock');
  return addon ? addon.lockExclusive(fd) : lockWithFlockCommand(fd);
};

/**
 * Claims `<dir>/vmlet.lock` for this process with an exclusive flock: FAILED_PRECONDITION while
 * another process holds it. The kernel drops the lock when the holder's last fd on the file
 * closes, so a vmlet that died (even by kill -9) leaves nothing to take over, and a reused pid is
 * never taken for a vmlet. The lock is taken on the fd vmlet opened (close-on-exec, so QEMUs and
 * commands never inherit it) and stays with the open file. The pid written into the file only
 * names the holder in the message. `what` names the dir's flag ('state', 'run'). Returns the
 * release function.
 */
export async function lockDir(dir: string, what: string, lock: FdLocker = lockExclusive): Promise<() => void> {
  const lockPath = join(dir, LOCK_FILE);
  // Not truncated on open: until the lock is ours, the pid in it is the holder's.
  const fd = openSync(lockPath, constants.O_RDWR | constants.O_CREAT, 0o640);
  let locked: boolean;
  try {
    locked = await lock(fd);
  } catch (err) {
    closeSync(fd);
    throw new VmletError('FAILED_PRECONDITION', `could not lock the ${what} dir ${dir}: ${errorMessage(err)}`, { cause: err });
  }
  if (!locked) {
    closeSync(fd);
    const pid = writtenPid(lockPath);
    throw new VmletError('FAILED_PRECONDITION', `another vmlet${pid ? ` (pid ${pid})` : ''} is using the ${what} dir ${dir} (it holds ${lockPath}); stop it first or use another --${what}-dir`);
  }
  ftruncateSync(fd, 0);
  writeSync(fd, `${process.pid}\n`, 0);
  // The file stays: removing it would let a second daemon lock a new file while a third still
  // waits on the old one.
  let held = true;
  return () => {
    if (held) closeSync(fd);
    held = false;
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
