import { rm } from 'node:fs/promises';
import { errorMessage, failedPrecondition } from '../model/errors.js';
import { buildQemuArgv, DEFAULT_HOTPLUG_PORTS } from '../qemu/argv.js';
import { explainFailedHandshake, isQemuOf, killHard, launchQemu, prepareRunDir, qemuLogTail, type LaunchedQemu } from '../qemu/launcher.js';
import type { QmpClient, QmpConnectOptions, QmpEvent } from '../qemu/qmp.js';
import { isAlive } from '../host/process.js';
import { unwireNics, wireNics } from '../net/wiring.js';
import { QemuInstance } from './qemu-instance.js';
import { checkBootFiles } from './disks.js';
import type { VmManager, VmRecord } from './manager.js';
import type { Phase } from '../model/vm.js';

/** How often StopVm re-sends the ACPI power button: a guest still booting misses the first press. */
const POWERDOWN_INTERVAL_MS = 3000;
const QUIT_TIMEOUT_MS = 5000;
const QMP_CONNECT_TIMEOUT_MS = 5000;

export interface StopOptions {
  graceSeconds: number;
  force: boolean;
}

/** QEMU's run states (query-status) → phases, for adoption. */
function phaseOfRunState(state: string): Phase {
  switch (state) {
    case 'running':
      return 'Running';
    case 'inmigrate':
      return 'Incoming';
    case 'postmigrate':
    case 'finish-migrate':
      return 'Migrating';
    default:
      return 'Paused';
  }
}

/** The steps that start, stop and watch a VM's QEMU. Always called inside the VM's queue. */
export class Lifecycle {
  constructor(private readonly m: VmManager) {}

  private get o() {
    return this.m.options;
  }

  async start(record: VmRecord): Promise<void> {
    // Only the start right behind the create may use what it prepared.
    const created = record.createdToStart;
    record.createdToStart = undefined;
    const { phase } = record.status;
    if (phase === 'Running' || phase === 'Paused') return;
    if (phase !== 'Pending' && phase !== 'Stopped' && phase !== 'Failed') {
      throw failedPrecondition(`VM ${record.spec.id} is ${phase}; it can be started when Pending, Stopped or Failed`);
    }
    if (record.instance) await this.forgetDeadInstance(record);
    this.m.checkCapacityFor(record);
    this.m.setPhase(record, 'Starting', 'start requested');
    let pid = 0;
    let nics = record.status.nics;
    try {
      const runDir = created?.runDir ?? prepareRunDir(record.paths);
      runDir.catch(() => undefined);
      if (!created) await checkBootFiles(record.spec, this.o.imageRoots);
      nics = await wireNics(this.o.ip, record.spec.nics, { vmId: record.spec.id, vcpus: record.spec.vcpus, taken: this.m.tapsInUse(record) });
      // Every NIC sits on its own root port so that any of them can be unplugged; spares take hot-plugged ones.
      const pciPorts = nics.length + DEFAULT_HOTPLUG_PORTS;
      const argv = buildQemuArgv({
        spec: record.spec,
        paths: record.paths,
        accelerator: this.o.accelerator,
        disks: record.status.disks,
        nics,
        vhostNet: this.o.vhostNet ?? false,
        startPaused: true,
        hotplugPorts: pciPorts,
        nicPorts: Object.fromEntries(nics.map((n) => [n.name, n.port!])),
      });
      const launched = await launchQemu({ binary: this.o.qemuBinary, argv, paths: record.paths, runDir, netns: this.o.netns, spawner: this.o.spawner, qmp: this.qmpOptions() });
      pid = launched.pid;
      // Recorded at once: the console connects while QEMU initialises, so it has the guest's
      // output from its first byte, and a restart of vmlet knows this QEMU and its TAPs.
      this.m.update(record, { pid, nics, pciPorts, accelerator: this.o.accelerator });
      // Started with -S: events are subscribed before the guest runs a single instruction. `cont`
      // goes out right behind qmp_capabilities instead of a round trip later.
      await this.attachStarted(record, launched, (qmp) => qmp.execute('cont'));
      this.m.setPhase(record, 'Running', 'started', { startedAt: new Date().toISOString() });
    } catch (err) {
      const reason = `start failed: ${errorMessage(err)}`;
      record.log.error({ err }, 'start failed; cleaning up');
      record.instance?.detach();
      record.instance = undefined;
      if (pid) await killHard(pid).catch((e: unknown) => record.log.error({ err: e }, 'could not kill QEMU'));
      await this.cleanupHost(record, nics);
      this.m.setPhase(record, 'Failed', reason, { pid: 0, nics: [] });
      throw err;
    }
  }

  qmpOptions(): QmpConnectOptions {
    return { connectTimeoutMs: QMP_CONNECT_TIMEOUT_MS, onCommandDone: this.o.onQmpCommand };
  }

  /**
   * Takes over the QMP connection of a QEMU just launched and waits for its handshake, and for
   * `pipelined` (commands sent without waiting for it). A QEMU that exits first reports why.
   */
  async attachStarted(record: VmRecord, launched: LaunchedQemu, pipelined?: (qmp: QmpClient) => Promise<unknown>): Promise<QemuInstance> {
    const instance = this.attach(record, QemuInstance.of(launched.pid, launched.qmp));
    try {
      await Promise.all([launched.qmp.ready, pipelined?.(launched.qmp)]);
      return instance;
    } catch (err) {
      throw await explainFailedHandshake(launched.pid, record.paths, err);
    }
  }

  /** Connects to the QMP socket of a QEMU that is already running (adoption). */
  async connect(record: VmRecord, pid: number): Promise<QemuInstance> {
    return this.attach(record, await QemuInstance.connect(pid, record.paths.qmpSocket, this.qmpOptions()));
  }

  private attach(record: VmRecord, instance: QemuInstance): QemuInstance {
    record.instance = instance;
    instance.qmp.on('event', (e: QmpEvent) => this.onEvent(record, instance, e));
    void instance.exited.then(() => record.queue.run(() => this.onExit(record, instance)));
    return instance;
  }

  /** QMP events keep the phase true between operations (a guest pausing on I/O error, a resume from elsewhere). */
  private onEvent(record: VmRecord, instance: QemuInstance, e: QmpEvent): void {
    if (record.instance !== instance) return;
    const { phase } = record.status;
    switch (e.event) {
      case 'STOP':
        if (phase === 'Running') this.m.setPhase(record, 'Paused', 'vCPUs stopped');
        break;
      case 'RESUME':
        if (phase === 'Paused') this.m.setPhase(record, 'Running', 'vCPUs resumed');
        break;
      case 'RESET':
        record.log.info({ guest: e.data.guest }, 'guest reset');
        break;
      case 'BLOCK_IO_ERROR':
        record.log.warn({ data: e.data }, 'block I/O error');
        break;
      case 'GUEST_PANICKED':
        record.log.error({ data: e.data }, 'guest panicked');
        break;
      case 'SHUTDOWN':
        record.log.info({ data: e.data }, 'QEMU is shutting down');
        break;
    }
  }

  /** QMP EOF outside of a stop: the guest powered off, or QEMU died. */
  private async onExit(record: VmRecord, instance: QemuInstance): Promise<void> {
    if (record.instance !== instance) return;
    record.instance = undefined;
    await instance.waitExit(5000);
    const shutdown = instance.shutdown;
    await this.cleanupHost(record, record.status.nics);
    const extra = { pid: 0, nics: [], stoppedAt: new Date().toISOString() };
    if (shutdown?.guest) {
      this.m.setPhase(record, 'Stopped', 'guest powered off', extra);
    } else if (shutdown) {
      this.m.setPhase(record, 'Stopped', `QEMU shut down (${shutdown.reason})`, extra);
    } else {
      const tail = await qemuLogTail(record.paths, 500);
      this.m.setPhase(record, 'Failed', `QEMU exited unexpectedly${tail ? `: ${tail}` : ''}`, extra);
    }
  }

  /** A previous instance whose exit was not processed yet (it is queued behind this operation). */
  private async forgetDeadInstance(record: VmRecord): Promise<void> {
    const instance = record.instance!;
    if (await isAlive(instance.pid)) {
      throw failedPrecondition(`VM ${record.spec.id} still has a QEMU process (pid ${instance.pid}); stop it first`);
    }
    record.instance = undefined;
  }

  async stop(record: VmRecord, options: StopOptions): Promise<void> {
    const { phase } = record.status;
    if (phase === 'Stopped' || phase === 'Pending' || (phase === 'Failed' && !record.status.pid)) return;
    if (phase === 'Migrating' || phase === 'Incoming') {
      throw failedPrecondition(`VM ${record.spec.id} is ${phase}; cancel the migration first`);
    }
    await this.ensureStopped(record, options);
  }

  /**
   * Brings QEMU down: ACPI power button, re-sent every few seconds, for the grace period; then
   * `quit`; then SIGKILL. A paused guest cannot see the power button, so it skips the grace.
   */
  async ensureStopped(record: VmRecord, options: StopOptions): Promise<void> {
    const instance = record.instance;
    const pid = instance?.pid ?? record.status.pid;
    const wasPaused = record.status.phase === 'Paused';
    const requested = record.status.phase === 'Deleting' ? 'Deleting' : 'Stopping';
    if (requested === 'Stopping') this.m.setPhase(record, 'Stopping', options.force ? 'forced stop requested' : 'stop requested');
    let how = 'stopped';
    if (instance && !options.force && !wasPaused) {
      how = await this.powerDown(record, instance, options.graceSeconds * 1000);
    }
    if (instance && how !== 'powered off') {
      how = await this.quit(instance);
    }
    if (pid && (await isAlive(pid))) {
      if (instance || (await isQemuOf(pid, record.spec.id))) {
        await killHard(pid);
        how = 'killed';
      }
    }
    record.instance = undefined;
    instance?.detach();
    await this.cleanupHost(record, record.status.nics);
    if (requested === 'Stopping') {
      this.m.setPhase(record, 'Stopped', `stopped by request (${how})`, { pid: 0, nics: [], stoppedAt: new Date().toISOString() });
    } else {
      this.m.update(record, { pid: 0, nics: [], stoppedAt: new Date().toISOString() });
    }
  }

  private async powerDown(record: VmRecord, instance: QemuInstance, graceMs: number): Promise<string> {
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline) {
      try {
        // A QEMU that does not answer (stopped, hung) must not stretch the grace period.
        await instance.qmp.execute('system_powerdown', undefined, { timeoutMs: Math.max(1, Math.min(POWERDOWN_INTERVAL_MS, deadline - Date.now())) });
      } catch (err) {
        if (instance.qmp.closed) break;
        record.log.warn({ err }, 'system_powerdown failed');
      }
      const wait = Math.min(POWERDOWN_INTERVAL_MS, deadline - Date.now());
      if (await instance.waitExit(Math.max(0, wait))) return 'powered off';
    }
    return 'grace period expired';
  }

  /** QMP `quit`, and at most QUIT_TIMEOUT_MS in all for QEMU to be gone, answer or not. */
  private async quit(instance: QemuInstance): Promise<string> {
    const deadline = Date.now() + QUIT_TIMEOUT_MS;
    if (!instance.qmp.closed) await instance.qmp.execute('quit', undefined, { timeoutMs: QUIT_TIMEOUT_MS }).catch(() => undefined);
    return (await instance.waitExit(Math.max(0, deadline - Date.now()))) ? 'quit' : 'quit timed out';
  }

  /** Removes what a running VM had on the host: TAPs and sockets. The console log stays (history). */
  async cleanupHost(record: VmRecord, nics: VmRecord['status']['nics']): Promise<void> {
    try {
      await unwireNics(this.o.ip, nics);
    } catch (err) {
      record.log.error({ err }, 'could not remove TAP devices');
    }
    const p = record.paths;
    await Promise.all([p.qmpSocket, p.serialSocket, p.pidFile].map((f) => rm(f, { force: true })));
  }

  pause(record: VmRecord): Promise<void> {
    return this.switchVcpus(record, { from: 'Running', to: 'Paused', command: 'stop', verb: 'paused' });
  }

  resume(record: VmRecord): Promise<void> {
    return this.switchVcpus(record, { from: 'Paused', to: 'Running', command: 'cont', verb: 'resumed' });
  }

  /** Pause and resume: idempotent in the target phase; the STOP/RESUME event may have set the phase already. */
  private async switchVcpus(record: VmRecord, o: { from: Phase; to: Phase; command: 'stop' | 'cont'; verb: string }): Promise<void> {
    const { phase } = record.status;
    if (phase === o.to) return;
    if (phase !== o.from || !record.instance) throw failedPrecondition(`VM ${record.spec.id} is ${phase}; only a ${o.from} VM can be ${o.verb}`);
    await record.instance.qmp.execute(o.command);
    if (record.status.phase === o.from) this.m.setPhase(record, o.to, `${o.verb} by request`);
  }

  async reboot(record: VmRecord): Promise<void> {
    const { phase } = record.status;
    if ((phase !== 'Running' && phase !== 'Paused') || !record.instance) {
      throw failedPrecondition(`VM ${record.spec.id} is ${phase}; only a Running or Paused VM can be rebooted`);
    }
    await record.instance.qmp.execute('system_reset');
    this.m.update(record, { reason: 'reset by request' });
  }

  /**
   * After a daemon restart: adopt the QEMU that is still alive, or record why there is none.
   * Never kills a live guest.
   */
  /** vmlet went down before the start finished: the guest never ran; the start failed. */
  private async failInterruptedStart(record: VmRecord, pid: number): Promise<void> {
    record.instance?.detach();
    record.instance = undefined;
    record.log.warn({ pid }, 'killing the QEMU of a start interrupted by a vmlet restart');
    await killHard(pid);
    await this.cleanupHost(record, record.status.nics);
    this.m.setPhase(record, 'Failed', 'start interrupted by a vmlet restart', { pid: 0, nics: [] });
  }

  async reconcile(record: VmRecord): Promise<void> {
    const { status } = record;
    const pid = status.pid;
    const hooks = this.m.migrationHooks;
    if (pid && (await isQemuOf(pid, record.spec.id))) {
      let runState: string;
      try {
        const instance = await this.connect(record, pid);
        runState = (await instance.qmp.execute<{ status: string }>('query-status')).status;
      } catch (err) {
        record.instance?.detach();
        record.instance = undefined;
        if (status.phase === 'Starting') return this.failInterruptedStart(record, pid);
        if (status.phase === 'Deleting') {
          record.log.warn({ err, pid }, 'the QEMU of a VM being deleted does not answer QMP; killing it');
          return this.finishDelete(record);
        }
        record.log.error({ err, pid }, 'QEMU is alive but QMP does not answer');
        this.m.setPhase(record, 'Failed', `QEMU pid ${pid} is alive but QMP does not answer: ${errorMessage(err)}; stop or delete the VM to kill it`);
        return;
      }
      // QEMU runs with -S: "prelaunch" means `cont` never came, so the guest never ran. Any
      // other state means the start got through (RUNNING is answered before it is on disk).
      if (status.phase === 'Starting' && runState === 'prelaunch') return this.failInterruptedStart(record, pid);
      if (status.migration && hooks) return await hooks.reconcile(record, runState);
      const phase = status.phase === 'Deleting' ? 'Deleting' : phaseOfRunState(runState);
      record.log.info({ pid, runState }, 'adopted running QEMU');
      if (phase !== status.phase) this.m.setPhase(record, phase, `adopted after vmlet restart (QEMU ${runState})`);
    } else if (status.migration && hooks) {
      record.instance = undefined;
      return hooks.reconcile(record, undefined);
    } else if (pid || ['Starting', 'Running', 'Paused', 'Stopping', 'Migrating', 'Incoming'].includes(status.phase)) {
      await this.cleanupHost(record, status.nics);
      const wasStopping = status.phase === 'Stopping';
      // Starting without a pid: the start was cut short before QEMU was recorded (a QEMU it
      // launched is an orphan of the run dir, killed once every VM is reconciled). With a pid the
      // start may have finished (RUNNING is answered before its status is on disk): QEMU is gone.
      const reason = wasStopping
        ? 'stopped while vmlet was down'
        : status.phase === 'Starting' && !pid
          ? 'start interrupted by a vmlet restart'
          : `QEMU (pid ${pid}) exited while vmlet was down`;
      if (status.phase !== 'Deleting') {
        this.m.setPhase(record, wasStopping ? 'Stopped' : 'Failed', reason, { pid: 0, nics: [] });
      } else {
        this.m.update(record, { pid: 0, nics: [] });
      }
    }
    if (record.status.phase === 'Deleting') await this.finishDelete(record);
  }

  private async finishDelete(record: VmRecord): Promise<void> {
    record.log.info('finishing a delete interrupted by a vmlet restart');
    await this.ensureStopped(record, { graceSeconds: 0, force: true });
    await this.m.removeEverything(record);
  }
}
