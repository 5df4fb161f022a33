import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { VmletError } from '../model/errors.js';
import type { Logger } from '../host/log.js';

/** How a child started through the helper ended (as reported by the helper, its parent). */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnedChild {
  pid: number;
  /** Resolves when the child exits; rejects if the helper goes away first (the child may live on). */
  exited: Promise<ChildExit>;
}

interface Pending {
  resolve: (pid: number) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  exit: { resolve: (e: ChildExit) => void; reject: (err: Error) => void };
}

const REQUEST_TIMEOUT_MS = 10_000;

/** How the helper confines a child (spawner-main.ts). */
export interface SpawnOptions {
  /** Run as this user and its groups, with no capabilities and no_new_privs. */
  runAs?: { uid: number; gid: number; groups: number[] };
  /** Run in this network namespace (a name of `ip netns`). */
  netns?: string;
}

/** The helper's entry point: compiled JS next to this file, or the TypeScript source when run from src (tests). */
function helperEntry(): string {
  const js = fileURLToPath(new URL('./spawner-main.js', import.meta.url));
  return existsSync(js) ? js : fileURLToPath(new URL('./spawner-main.ts', import.meta.url));
}

/**
 * Starts QEMU through a small, long-lived helper process (spawner-main.ts) instead of forking
 * the daemon. fork() copies the caller's page tables, and until the child has exec'd, then on
 * every page it writes, the parent pays copy-on-write faults: forking the daemon costs more the
 * more memory it holds, and keeps it busy while the QEMU it just started initialises next to it.
 * The helper stays small and idle (docs/spawn-helper.md).
 *
 * The daemon starts the helper once its start-up is over, or the first spawn does; the next spawn
 * starts it again if it died. It exits when the daemon does (its stdin closes); QEMUs it started
 * are in their own sessions and run on.
 */
export class Spawner {
  private helper: ChildProcess | undefined;
  private readonly pending = new Map<number, Pending>();
  private readonly running = new Map<number, Pending['exit']>();
  /** Requests given up on at their deadline: a process the helper starts for one after all is killed. */
  private readonly abandoned = new Set<number>();
  /** Whether the running helper confines children between fork and exec (its native addon), once it said so. */
  private addon: boolean | undefined;
  private nextId = 1;
  private buffered = '';
  private closed = false;

  constructor(
    private readonly logger: Logger,
    private readonly requestTimeoutMs = REQUEST_TIMEOUT_MS,
  ) {}

  /** The helper's pid while it runs. */
  get helperPid(): number | undefined {
    return this.helper?.pid;
  }

  /** True when the helper confines between fork and exec, false when it execs setpriv; undefined until it said. */
  get confinesInProcess(): boolean | undefined {
    return this.addon;
  }

  /** Starts the helper now rather than at the first spawn. */
  start(): this {
    this.ensureHelper();
    return this;
  }

  /** Starts `cmd` detached (own session), stdout and stderr to `logFile` (emptied first). Resolves with its pid. */
  async spawn(cmd: string, args: readonly string[], logFile: string, options: SpawnOptions = {}): Promise<SpawnedChild> {
    const helper = this.ensureHelper();
    const id = this.nextId++;
    let exit!: Pending['exit'];
    const exited = new Promise<ChildExit>((resolve, reject) => (exit = { resolve, reject }));
    exited.catch(() => undefined);
    const pid = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.abandoned.add(id);
        reject(new VmletError('UNAVAILABLE', `the spawn helper did not start ${cmd} within ${this.requestTimeoutMs} ms`));
      }, this.requestTimeoutMs);
      this.pending.set(id, { resolve, reject, timer, exit });
      helper.stdin!.write(`${JSON.stringify({ id, cmd, args, log: logFile, ...options })}\n`);
    });
    return { pid, exited };
  }

  /** Lets the helper go (it exits when its stdin closes); children keep running. */
  close(): void {
    this.closed = true;
    this.helper?.stdin?.end();
    this.helper = undefined;
  }

  private ensureHelper(): ChildProcess {
    if (this.closed) throw new VmletError('UNAVAILABLE', 'vmlet is shutting down; not starting processes');
    if (this.helper) return this.helper;
    const helper = spawn(process.execPath, [helperEntry()], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.helper = helper;
    this.buffered = '';
    this.addon = undefined;
    helper.stdout!.setEncoding('utf8');
    helper.stdout!.on('data', (text: string) => this.onOutput(text));
    helper.on('error', (err) => this.helperGone(helper, `could not run the spawn helper: ${err.message}`));
    helper.on('exit', (code, sig) => this.helperGone(helper, `the spawn helper exited (${sig ?? `code ${code}`})`));
    // The helper must never keep the daemon alive on its own.
    helper.unref();
    for (const stream of [helper.stdin, helper.stdout] as unknown as { unref?: () => void }[]) stream.unref?.();
    this.logger.debug({ pid: helper.pid }, 'spawn helper started');
    return helper;
  }

  private onOutput(text: string): void {
    this.buffered += text;
    let newline: number;
    while ((newline = this.buffered.indexOf('\n')) !== -1) {
      const line = this.buffered.slice(0, newline);
      this.buffered = this.buffered.slice(newline + 1);
      let msg: { id: number; pid?: number; error?: string; exit?: ChildExit; ready?: { addon: boolean } };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        this.logger.warn({ line: line.slice(0, 200) }, 'spawn helper wrote something that is not JSON');
        continue;
      }
      if (msg.ready) this.helperReady(msg.ready.addon);
      else this.dispatch(msg);
    }
  }

  private helperReady(addon: boolean): void {
    this.addon = addon;
    if (addon) this.logger.debug('spawn helper ready: QEMU is confined between fork and exec');
    else this.logger.info('spawn helper ready without native/spawn (not built): QEMU is confined by exec\'ing setpriv first, a few ms more per start');
  }

  private dispatch(msg: { id: number; pid?: number; error?: string; exit?: ChildExit }): void {
    const pending = this.pending.get(msg.id);
    if (!pending && msg.pid !== undefined && this.abandoned.delete(msg.id)) {
      // Its start already failed and was undone: nobody will ever manage this process.
      this.logger.warn({ pid: msg.pid }, 'the spawn helper started a process after its deadline; killing it');
      try {
        process.kill(msg.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    } else if (pending && msg.pid !== undefined) {
      this.pending.delete(msg.id);
      clearTimeout(pending.timer);
      this.running.set(msg.id, pending.exit);
      pending.resolve(msg.pid);
    } else if (pending && msg.error !== undefined) {
      this.pending.delete(msg.id);
      clearTimeout(pending.timer);
      pending.reject(new VmletError('UNAVAILABLE', msg.error));
    } else if (!pending && msg.error !== undefined) {
      this.abandoned.delete(msg.id);
    } else if (msg.exit) {
      this.running.get(msg.id)?.resolve(msg.exit);
      this.running.delete(msg.id);
    }
  }

  private helperGone(helper: ChildProcess, why: string): void {
    if (this.helper === helper) this.helper = undefined;
    const err = new VmletError('UNAVAILABLE', why);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    for (const exit of this.running.values()) exit.reject(err);
    this.running.clear();
    if (!this.closed) this.logger.warn({ reason: why }, 'spawn helper gone; it is started again at the next VM start');
  }
}
