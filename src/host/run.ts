import { spawn, type ChildProcessWithoutNullStreams, type StdioOptions } from 'node:child_process';
import { VmletError } from '../model/errors.js';

export interface RunOptions {
  /** Kill the command (and its process group) after this long; default 30 s. */
  timeoutMs?: number;
  /** Written to the command's stdin, which is then closed. */
  input?: string;
  /** Run inside this network namespace (`ip netns exec NAME …`). */
  netns?: string;
  env?: NodeJS.ProcessEnv;
  /** Open files the command gets as fds 3, 4, … (flock(1) locks an fd it is given). */
  passFds?: readonly number[];
  /** Told each piece of the command's stdout as it comes (for progress); it is still collected. */
  onStdout?: (text: string) => void;
  /** Aborting kills the command and its process group; the promise then rejects with CANCELLED. */
  signal?: AbortSignal;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Thrown when a command exits non-zero, is killed, times out or cannot be started. */
export class CommandError extends VmletError {
  constructor(
    readonly command: string,
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    why: string,
    /** Killed at its deadline: whatever it was doing may or may not have been done. */
    readonly timedOut = false,
  ) {
    const detail = stderr.trim() ? `: ${stderr.trim()}` : '';
    super('UNAVAILABLE', `${[command, ...args].join(' ')} ${why}${detail}`);
  }
}

/** SIGKILL to every process of the group; those that are already gone are fine. */
function killGroup(pgid: number | undefined): void {
  if (!pgid) return;
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // The whole group has exited.
  }
}

/**
 * The single way vmlet runs an external command: an argument array (never a shell string),
 * a deadline, and the command's stderr carried in the error.
 *
 * The command leads a process group of its own, and the deadline covers its whole run, output
 * included: at the deadline the group is killed and the call fails, even when the command itself
 * has exited and only something it started (which may have left the group) still holds its stdout
 * or stderr open. A hung tool never holds up a VM's queue past the deadline.
 */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [cmd, argv] = options.netns ? ['ip', ['netns', 'exec', options.netns, command, ...args]] : [command, args];
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const stdio: StdioOptions = ['pipe', 'pipe', 'pipe', ...(options.passFds ?? [])];
    const child = spawn(cmd, argv, { stdio, env: options.env ?? process.env, detached: true }) as ChildProcessWithoutNullStreams;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', abort);
      fn();
    };
    const text = (chunks: Buffer[]): string => Buffer.concat(chunks).toString('utf8');
    const timer = setTimeout(() => {
      killGroup(child.pid);
      // The output may be held by a process outside the group: stop waiting for it.
      child.stdout.destroy();
      child.stderr.destroy();
      const why = exited
        ? `exited (${exited.signal ? `signal ${exited.signal}` : `exit ${exited.code}`}) but something it started still held its output after ${timeoutMs} ms`
        : `timed out after ${timeoutMs} ms (killed with its process group)`;
      settle(() => reject(new CommandError(cmd, argv, exited?.code ?? null, text(err), why, true)));
    }, timeoutMs);
    const signal = options.signal;
    const abort = (): void => {
      killGroup(child.pid);
      child.stdout.destroy();
      child.stderr.destroy();
      settle(() => reject(new VmletError('CANCELLED', `${[cmd, ...argv].join(' ')} was cancelled`)));
    };
    signal?.addEventListener('abort', abort, { once: true });
    child.stdout.on('data', (b: Buffer) => {
      out.push(b);
      options.onStdout?.(b.toString('utf8'));
    });
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.on('error', () => {}); // the command may exit before reading its input
    child.on('error', (e) => settle(() => reject(new CommandError(cmd, argv, null, '', `could not be started (${e.message})`))));
    child.on('exit', (code, signal) => (exited = { code, signal }));
    child.on('close', (code, signal) => {
      const stdout = text(out);
      const stderr = text(err);
      settle(() => {
        if (code !== 0) reject(new CommandError(cmd, argv, code, stderr, `failed (${signal ? `signal ${signal}` : `exit ${code}`})`));
        else resolve({ stdout, stderr });
      });
    });
    if (signal?.aborted) abort();
    child.stdin.end(options.input ?? '');
  });
}
