/**
 * The baseline: QEMU started by hand with vmlet's argv, the way vmlet's launcher does it (through
 * the spawn helper: detached, own session, stdout/stderr to qemu.log), waited on over QMP and let
 * run with `cont`. No daemon, no gRPC, no state files: what any agent has to do at the least.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { QmpClient } from '../src/qemu/qmp.js';
import { connectWhenListening } from '../src/qemu/launcher.js';
import { Spawner, type ChildExit } from '../src/qemu/spawner.js';
import { silentLogger } from '../src/host/log.js';
import { signal, waitForExit } from '../src/host/process.js';
import type { VmPaths } from '../src/model/vm.js';
import { settlesWithin } from './util.js';
import type { Cleanup } from './cleanup.js';

export interface RawLaunch {
  binary: string;
  argv: string[];
  paths: VmPaths;
  spawner: Spawner;
  timeoutMs?: number;
  /** Send `cont` once QMP answers (default true); a migration target must stay stopped. */
  cont?: boolean;
}

/** Where the time of one raw start went (ms); totalMs is what is compared with vmlet. */
export interface RawTimings {
  totalMs: number;
  /** mkdir + spawn until the QMP socket accepts the connection. */
  socketMs: number;
  /** Then the greeting and qmp_capabilities (sent at once, answered after the greeting). */
  qmpConnectMs: number;
  contMs: number;
}

export class RawQemu {
  private exitCode: number | null | undefined;
  readonly exited: Promise<void>;

  private constructor(
    readonly pid: number,
    exited: Promise<ChildExit>,
    readonly paths: VmPaths,
    public qmp?: QmpClient,
  ) {
    // If the helper goes away the exit is not reported: wait on the pid then.
    this.exited = exited.then(
      (e) => void (this.exitCode = e.code),
      async () => void (await waitForExit(pid, 60_000), (this.exitCode = null)),
    );
  }

  /** The QMP connection (after launch). */
  get q(): QmpClient {
    if (!this.qmp) throw new Error('no QMP connection');
    return this.qmp;
  }

  /**
   * Starts QEMU paused through `spawner` (the helper vmlet's launcher uses, so both sides fork
   * from the same small process), waits for QMP, sends `cont` (unless told not to). `onSpawn`
   * gets the process at once, so cleanup can kill it whatever happens next.
   */
  static async launch(o: RawLaunch, onSpawn: (q: RawQemu) => void): Promise<{ qemu: RawQemu; timings: RawTimings }> {
    const t0 = performance.now();
    await mkdir(o.paths.runDir, { recursive: true, mode: 0o750 });
    const child = await o.spawner.spawn(o.binary, o.argv, o.paths.qemuLog);
    const qemu = new RawQemu(child.pid, child.exited, o.paths);
    onSpawn(qemu);
    qemu.qmp = await qemu.openQmp(o.timeoutMs ?? 15_000);
    const t1 = performance.now();
    await qemu.qmp.ready;
    const t2 = performance.now();
    if (o.cont !== false) await qemu.qmp.execute('cont');
    const t3 = performance.now();
    return { qemu, timings: { totalMs: t3 - t0, socketMs: t1 - t0, qmpConnectMs: t2 - t1, contMs: t3 - t2 } };
  }

  /** The QMP connection as soon as QEMU listens, the way vmlet's launcher makes it. */
  private openQmp(timeoutMs: number): Promise<QmpClient> {
    return connectWhenListening(this.paths.qmpSocket, {
      qmp: { connectTimeoutMs: 5000 },
      deadline: Date.now() + timeoutMs,
      stopIf: async () => {
        if (this.exitCode !== undefined) return new Error(`QEMU exited during start (code ${this.exitCode}): ${await this.logTail()}`);
        return undefined;
      },
    });
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
    if (this.exitCode !== undefined) return;
    signal(this.pid, 'SIGKILL');
    await this.exited;
  }

  private async logTail(): Promise<string> {
    return (await readFile(this.paths.qemuLog, 'utf8').catch(() => '')).slice(-2000).trim() || 'no output';
  }
}

/** The raw side of a benchmark: its spawn helper, and the QEMUs it started, killed at cleanup. */
export function rawSide(cleanup: Cleanup): { raws: Set<RawQemu>; spawner: Spawner } {
  const raws = new Set<RawQemu>();
  const spawner = new Spawner(silentLogger()).start();
  cleanup.defer('stop the spawn helper', async () => spawner.close());
  cleanup.defer('stop raw QEMUs', async () => void (await Promise.all([...raws].map((q) => q.kill()))));
  return { raws, spawner };
}
