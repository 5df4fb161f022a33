import { spawn } from 'node:child_process';
import { VmletError } from '../model/errors.js';

export interface RunOptions {
  /** Kill the command after this long; default 30 s. */
  timeoutMs?: number;
  /** Written to the command's stdin, which is then closed. */
  input?: string;
  /** Run inside this network namespace (`ip netns exec NAME …`). */
  netns?: string;
  env?: NodeJS.ProcessEnv;
  /** Told each piece of the command's stdout as it comes (for progress); it is still collected. */
  onStdout?: (text: string) => void;
  /** Aborting kills the command; the promise then rejects with a CANCELLED error. */
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
  ) {
    const detail = stderr.trim() ? `: ${stderr.trim()}` : '';
    super('UNAVAILABLE', `${[command, ...args].join(' ')} ${why}${detail}`);
  }
}

/**
 * The single way vmlet runs an external command: an argument array (never a shell string),
 * a timeout, and the command's stderr carried in the error.
 */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [cmd, argv] = options.netns ? ['ip', ['netns', 'exec', options.netns, command, ...args]] : [command, args];
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    const signal = options.signal;
    const abort = (): void => {
      child.kill('SIGKILL');
    };
    signal?.addEventListener('abort', abort, { once: true });
    child.stdout.on('data', (b: Buffer) => {
      out.push(b);
      options.onStdout?.(b.toString('utf8'));
    });
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.on('error', () => {}); // the command may exit before reading its input
    child.on('error', (e) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', abort);
      reject(new CommandError(cmd, argv, null, '', `could not be started (${e.message})`));
    });
    child.on('close', (code, killedBy) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', abort);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (signal?.aborted) reject(new VmletError('CANCELLED', `${[cmd, ...argv].join(' ')} was cancelled`));
      else if (timedOut) reject(new CommandError(cmd, argv, code, stderr, `timed out after ${timeoutMs} ms`));
      else if (code !== 0) reject(new CommandError(cmd, argv, code, stderr, `failed (${killedBy ? `signal ${killedBy}` : `exit ${code}`})`));
      else resolve({ stdout, stderr });
    });
    if (signal?.aborted) abort();
    child.stdin.end(options.input ?? '');
  });
}
