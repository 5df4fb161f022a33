import { spawn } from 'node:child_process';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { VmletError } from '../errors.js';
import { isAlive, processCmdline, signal, waitForExit } from '../host/process.js';
import type { VmPaths } from '../vm/types.js';

export interface LaunchOptions {
  binary: string;
  argv: string[];
  paths: VmPaths;
  netns?: string;
  /** How long QEMU may take to open its QMP socket. */
  readyTimeoutMs?: number;
}

/** The `-name guest=<id>,…` marker that identifies a VM's QEMU in /proc/<pid>/cmdline. */
export const nameArg = (id: string): string => `guest=${id},debug-threads=on`;

/** The last lines QEMU wrote to stderr: what a failed start reports. */
export async function qemuLogTail(paths: VmPaths, maxBytes = 2000): Promise<string> {
  try {
    const text = await readFile(paths.qemuLog, 'utf8');
    return text.slice(-maxBytes).trim();
  } catch {
    return '';
  }
}

/**
 * Starts QEMU detached in its own session, so it outlives vmlet (no -daemonize: it conflicts with
 * -sandbox spawn=deny). stdout/stderr go to qemu.log. Resolves with the pid once the QMP socket
 * accepts connections; rejects with QEMU's own error output if it exits first.
 */
export async function launchQemu(options: LaunchOptions): Promise<number> {
  const { paths } = options;
  await mkdir(paths.runDir, { recursive: true, mode: 0o750 });
  await Promise.all([paths.qmpSocket, paths.serialSocket, paths.pidFile].map((f) => rm(f, { force: true })));
  const log = await open(paths.qemuLog, 'a', 0o640);
  const [cmd, args] = options.netns
    ? ['ip', ['netns', 'exec', options.netns, options.binary, ...options.argv]]
    : [options.binary, options.argv];
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let spawnError: Error | undefined;
  try {
    const child = spawn(cmd, args, { detached: true, stdio: ['ignore', log.fd, log.fd] });
    child.on('exit', (code, sig) => (exited = { code, signal: sig }));
    child.on('error', (err) => (spawnError = err));
    child.unref();
    const pid = child.pid;
    const deadline = Date.now() + (options.readyTimeoutMs ?? 15_000);
    for (;;) {
      if (spawnError) throw new VmletError('UNAVAILABLE', `cannot start ${options.binary}: ${spawnError.message}`);
      if (exited) {
        const why = exited.signal ? `signal ${exited.signal}` : `exit code ${exited.code}`;
        throw await exitedDuringStart(paths, why);
      }
      if (pid !== undefined && (await socketAccepts(paths.qmpSocket))) return pid;
      if (Date.now() > deadline) {
        if (pid !== undefined) await killHard(pid);
        throw new VmletError('UNAVAILABLE', `QEMU did not open its QMP socket within ${options.readyTimeoutMs ?? 15_000} ms: ${await qemuLogTail(paths)}`);
      }
      await delay(10);
    }
  } finally {
    await log.close();
  }
}

/** Whether a unix socket accepts a connection right now. */
export function socketAccepts(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** QEMU refused the configuration (a missing disk, a bad option): its own words are the reason. */
export async function exitedDuringStart(paths: VmPaths, why: string): Promise<VmletError> {
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

export async function readPidFile(paths: VmPaths): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(paths.pidFile, 'utf8')).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** SIGKILL and wait until the process is gone. */
export async function killHard(pid: number, timeoutMs = 10_000): Promise<void> {
  if (!(await isAlive(pid))) return;
  signal(pid, 'SIGKILL');
  if (!(await waitForExit(pid, timeoutMs))) {
    throw new VmletError('UNAVAILABLE', `QEMU pid ${pid} survived SIGKILL for ${timeoutMs} ms`);
  }
}
