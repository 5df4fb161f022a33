/**
 * The baseline: QEMU started by hand with vmlet's argv, the way vmlet's launcher does it (detached,
 * own session, stdout/stderr to qemu.log), waited on over QMP and let run with `cont`. No daemon,
 * no gRPC, no state files: what any agent has to do at the least.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, open, readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { QmpClient } from '../src/qemu/qmp.js';
import { socketAccepts } from '../src/qemu/launcher.js';
import type { VmPaths } from '../src/vm/types.js';
import { settlesWithin } from './util.js';

export interface RawLaunch {
  binary: string;
  argv: string[];
  paths: VmPaths;
  /** How often to try the QMP socket; vmlet's launcher waits 10 ms between tries. */
  pollMs: number;
  timeoutMs?: number;
  /** Send `cont` once QMP answers (default true); a migration target must stay stopped. */
  cont?: boolean;
}

/** Where the time of one raw start went (ms); totalMs is what is compared with vmlet. */
export interface RawTimings {
  totalMs: number;
  /** mkdir + log + spawn until the QMP socket accepts a connection. */
  socketMs: number;
  /** QmpClient.connect: greeting and qmp_capabilities. */
  qmpConnectMs: number;
  contMs: number;
}

export class RawQemu {
  private exitCode: number | null | undefined;
  private spawnError: Error | undefined;
  readonly exited: Promise<void>;

  private constructor(
    readonly child: ChildProcess,
    readonly paths: VmPaths,
    public qmp?: QmpClient,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(void (this.exitCode = code))));
    child.once('error', (err) => (this.spawnError = err));
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** The QMP connection (after launch). */
  get q(): QmpClient {
    if (!this.qmp) throw new Error('no QMP connection');
    return this.qmp;
  }

  /** Starts QEMU paused, waits for QMP, sends `cont` (unless told not to). `onSpawn` gets the process at once, so cleanup can kill it whatever happens next. */
  static async launch(o: RawLaunch, onSpawn: (q: RawQemu) => void): Promise<{ qemu: RawQemu; timings: RawTimings }> {
    const t0 = performance.now();
    await mkdir(o.paths.runDir, { recursive: true, mode: 0o750 });
    const log = await open(o.paths.qemuLog, 'a', 0o640);
    let qemu: RawQemu;
    try {
      const child = spawn(o.binary, o.argv, { detached: true, stdio: ['ignore', log.fd, log.fd] });
      child.unref();
      qemu = new RawQemu(child, o.paths);
      onSpawn(qemu);
      await qemu.waitForSocket(o.pollMs, o.timeoutMs ?? 15_000);
    } finally {
      await log.close();
    }
    const t1 = performance.now();
    qemu.qmp = await QmpClient.connect(o.paths.qmpSocket, { connectTimeoutMs: 5000 });
    const t2 = performance.now();
    if (o.cont !== false) await qemu.qmp.execute('cont');
    const t3 = performance.now();
    return { qemu, timings: { totalMs: t3 - t0, socketMs: t1 - t0, qmpConnectMs: t2 - t1, contMs: t3 - t2 } };
  }

  private async waitForSocket(pollMs: number, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (this.spawnError) throw new Error(`cannot start ${this.child.spawnfile}: ${this.spawnError.message}`);
      if (this.exitCode !== undefined) throw new Error(`QEMU exited during start (code ${this.exitCode}): ${await this.logTail()}`);
      if (await socketAccepts(this.paths.qmpSocket)) return;
      if (performance.now() > deadline) throw new Error(`QEMU did not open ${this.paths.qmpSocket} within ${timeoutMs} ms`);
      await delay(pollMs);
    }
  }

  /** QMP `quit`, then wait for the process to be gone; SIGKILL if it lingers. */
  async quit(timeoutMs = 10_000): Promise<void> {
    if (this.exitCode !== undefined) return;
    if (this.qmp && !this.qmp.closed) await this.qmp.execute('quit').catch(() => undefined);
    if (!(await settlesWithin(this.exited, timeoutMs))) await this.kill();
    this.qmp?.close();
  }

  /** SIGKILL and wait. Idempotent. */
  async kill(): Promise<void> {
    this.qmp?.close();
    if (this.exitCode !== undefined || !this.child.pid) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  private async logTail(): Promise<string> {
    return (await readFile(this.paths.qemuLog, 'utf8').catch(() => '')).slice(-2000).trim() || 'no output';
  }
}
