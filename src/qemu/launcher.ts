import { chownSync, mkdirSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { errorMessage, VmletError } from '../model/errors.js';
import { isAlive, processCmdline, signal, waitForExit } from '../host/process.js';
import { NameWatch } from '../host/name-watch.js';
import type { VmPaths } from '../model/vm.js';
import { QmpClient, QmpError, type QmpConnectOptions } from './qmp.js';
import { nameArg } from '../model/qemu-ids.js';
import type { ChildExit, Spawner } from './spawner.js';

export interface LaunchOptions {
  binary: string;
  argv: string[];
  paths: VmPaths;
  netns?: string;
  /** How long QEMU may take to open its QMP socket. */
  readyTimeoutMs?: number;
  /** For vmlet's QMP connection (timeouts, metrics hook). */
  qmp?: QmpConnectOptions;
  spawner: Spawner;
  /** Run QEMU as this user, with no capabilities and no_new_privs; the run dir becomes theirs. */
  runAs?: RunAs;
}

/** An unprivileged QEMU: its uid and gid, and supplementary groups (the group of /dev/kvm). */
export interface RunAs {
  uid: number;
  gid: number;
  groups: number[];
}

/** The last lines QEMU wrote to stderr: what a failed start reports. */
export async function qemuLogTail(paths: VmPaths, maxBytes = 2000): Promise<string> {
  try {
    const text = await readFile(paths.qemuLog, 'utf8');
    return text.slice(-maxBytes).trim();
  } catch {
    return '';
  }
}

export interface LaunchedQemu {
  pid: number;
  /** Socket connected, capabilities negotiation under way (see QmpClient.open). */
  qmp: QmpClient;
}

/**
 * The VM's run dir, without the sockets and pid file of an earlier QEMU: the launcher waits for
 * the QMP socket's name to appear, so a stale one must be gone before QEMU starts. Synchronous
 * calls, as for the live status: the run dir is a tmpfs, where they cost less than a round trip
 * through the thread pool.
 */
export function prepareRunDir(paths: VmPaths, owner?: RunAs): void {
  // mkdir says whether it made the directory; one just made holds nothing stale.
  if (mkdirSync(paths.runDir, { recursive: true, mode: 0o750 }) === undefined) {
    for (const f of [paths.qmpSocket, paths.serialSocket, paths.pidFile]) rmSync(f, { force: true });
  }
  if (owner) chownSync(paths.runDir, owner.uid, owner.gid);
}

/**
 * Starts QEMU detached in its own session (through the spawn helper), so it outlives vmlet (no
 * -daemonize: it conflicts with -sandbox spawn=deny). stdout/stderr go to qemu.log. Resolves as
 * soon as vmlet's QMP connection is accepted; no probe connection first, which QEMU would have to
 * greet and drop before it gets to the real one. Rejects with QEMU's own error output if it exits
 * first.
 */
export async function launchQemu(options: LaunchOptions): Promise<LaunchedQemu> {
  const { paths } = options;
  prepareRunDir(paths, options.runAs);
  let exited: ChildExit | undefined;
  let pid: number | undefined;
  const readyTimeoutMs = options.readyTimeoutMs ?? 15_000;
  try {
    const confinement = { ...(options.runAs ? { runAs: options.runAs } : {}), ...(options.netns ? { netns: options.netns } : {}) };
    const child = await options.spawner.spawn(options.binary, options.argv, paths.qemuLog, confinement).catch((err: unknown) => {
      throw new VmletError('UNAVAILABLE', `cannot start ${options.binary}: ${errorMessage(err)}`, { cause: err });
    });
    pid = child.pid;
    child.exited.then((e) => (exited = e), () => undefined);
    const deadline = Date.now() + readyTimeoutMs;
    const qmp = await connectWhenListening(paths.qmpSocket, {
      qmp: options.qmp ?? {},
      deadline,
      stopIf: async () => {
        if (exited) return exitedDuringStart(paths, exited.signal ? `signal ${exited.signal}` : `exit code ${exited.code}`);
        return undefined;
      },
    }).catch(async (err: unknown) => {
      // Accepted, then dropped before the deadline: QEMU exiting over its configuration, most
      // likely, which it reads after opening its QMP socket.
      throw err instanceof QmpError && Date.now() <= deadline ? await explainFailedHandshake(child.pid, paths, err) : err;
    });
    return { pid, qmp };
  } catch (err) {
    if (pid !== undefined && !exited) await killHard(pid).catch(() => undefined);
    if (!(err instanceof QmpError)) throw err;
    throw new VmletError('UNAVAILABLE', `${err.message}; QEMU's output: ${(await qemuLogTail(paths)) || 'none'}`, { cause: err });
  }
}

export interface ConnectWhenListening {
  qmp: QmpConnectOptions;
  /** Epoch ms after which a socket that still refuses is an error. */
  deadline: number;
  /**
   * Checked before every new attempt: an error to stop with (the process exited, say), else
   * undefined. Without a change of the socket file it is checked every `recheckMs`.
   */
  stopIf?: () => Promise<Error | undefined>;
  recheckMs?: number;
}

/** A socket that exists but refuses is tried again this soon: QEMU binds, then listens. */
const LISTEN_RETRY_MS = 1;

/**
 * QmpClient.open as soon as QEMU listens on the socket: woken by the socket file's creation
 * (inotify), not by polling, so a starting QEMU costs the daemon no CPU while it initialises.
 */
export async function connectWhenListening(path: string, o: ConnectWhenListening): Promise<QmpClient> {
  const socketFile = new NameWatch(path);
  try {
    for (;;) {
      try {
        return await QmpClient.open(path, o.qmp);
      } catch (err) {
        const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
        if (code !== 'ENOENT' && code !== 'ECONNREFUSED') throw err;
        const stop = await o.stopIf?.();
        if (stop) throw stop;
        if (Date.now() > o.deadline) throw new QmpError('UNAVAILABLE', `QEMU did not listen on its QMP socket in time (${errorMessage(err)})`, { cause: err });
        await (code === 'ENOENT' ? socketFile.next(o.recheckMs ?? 20) : delay(LISTEN_RETRY_MS));
      }
    }
  } finally {
    socketFile.close();
  }
}

/** QEMU refused the configuration (a missing disk, a bad option): its own words are the reason. */
async function exitedDuringStart(paths: VmPaths, why: string): Promise<VmletError> {
  return new VmletError('FAILED_PRECONDITION', `QEMU exited during start (${why}): ${(await qemuLogTail(paths)) || 'no output'}`);
}

/**
 * After a failed QMP handshake with a QEMU that was just started: if QEMU is exiting (it opens
 * its QMP socket before it opens disks), the error is QEMU's own; otherwise the original one.
 */
export async function explainFailedHandshake(pid: number, paths: VmPaths, err: unknown): Promise<unknown> {
  return (await waitForExit(pid, 2000)) ? exitedDuringStart(paths, 'before answering QMP') : err;
}

/** True when pid is alive and is the QEMU of VM `id` (its command line carries our -name marker). */
export async function isQemuOf(pid: number, id: string): Promise<boolean> {
  if (!(await isAlive(pid))) return false;
  const cmdline = await processCmdline(pid);
  if (!cmdline) return false;
  const i = cmdline.indexOf('-name');
  return i >= 0 && cmdline[i + 1] === nameArg(id);
}

/** SIGKILL and wait until the process is gone. */
export async function killHard(pid: number, timeoutMs = 10_000): Promise<void> {
  if (!(await isAlive(pid))) return;
  signal(pid, 'SIGKILL');
  if (!(await waitForExit(pid, timeoutMs))) {
    throw new VmletError('UNAVAILABLE', `QEMU pid ${pid} survived SIGKILL for ${timeoutMs} ms`);
  }
}
