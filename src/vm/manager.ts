import { isDeepStrictEqual } from 'node:util';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../host/log.js';
import { VmletError, errorMessage, failedPrecondition } from '../model/errors.js';
import { DEFAULT_MAX_VMS, MAX_GRACE_PERIOD_SECONDS, boundExceeded } from '../model/bounds.js';
import type { OperationName } from '../model/events.js';
import type { NicSpec, Vm, VmSpec, VmStatus } from '../model/vm.js';
import type { UnreadableVm } from './ports.js';
import { validateSpec } from './validate.js';
import { VmRegistry, snapshot, type VmRecord } from './registry.js';
import type { DomainSettings, OpEnv } from './ops/env.js';
import { createVm } from './ops/create.js';
import { start, type StartOptions } from './ops/start.js';
import { Admission } from './admission.js';
import { cancelRestart, openSerialRestarts, planRestart } from './ops/restart.js';
import { stop } from './ops/stop.js';
import { pause, reboot, resume } from './ops/vcpus.js';
import { attachNic, detachNic } from './ops/nic.js';
import { FORCE, deleteVm, retire } from './ops/delete.js';
import { reconcile, type MigrationHooks } from './ops/reconcile.js';

/** The ports a manager is built with (the composition root's drivers, or test fakes). */
export type ManagerPorts = Pick<OpEnv, 'store' | 'network' | 'storage' | 'hypervisor' | 'cells' | 'clock'>;

/**
 * The domain's front door: every operation on a VM, each run in the VM's queue (one at a time
 * per VM; reads never wait). The VMs themselves and their phase machine are the VmRegistry
 * this extends; the operations are plans in ops/.
 */
export class VmManager extends VmRegistry {
  readonly env: OpEnv;
  /** Ids being created right now: a second create of the same id waits for the first. */
  private readonly creating = new Map<string, Promise<unknown>>();
  migrationHooks?: MigrationHooks;

  constructor(ports: ManagerPorts, settings: DomainSettings, logger: Logger) {
    super(ports.store, ports.clock, logger);
    this.env = { vms: this, ...ports, settings, reservedUids: new Set(), ...(settings.maxParallelStarts ? { admission: new Admission(settings.maxParallelStarts) } : {}), afterExit: (record, kind, options) => planRestart(this.env, record, kind, options) };
  }

  /**
   * Loads state and adopts running QEMUs; never touches a guest that is alive, never deletes a
   * VM's data. A VM whose spec cannot be read is moved aside (quarantined); one whose reconcile
   * fails is Failed with the reason, and the others are served.
   */
  /** Loads the VMs and reconciles each with its QEMU. */
  async init(): Promise<void> {
    const { store } = this.env;
    await store.init();
    const { vms, unfinished, unreadable } = await store.loadAll();
    for (const id of unfinished) {
      this.log.warn({ vm: id }, 'removing leftovers of a create or delete that never finished');
      await store.remove(id).catch((err: unknown) => this.log.error({ vm: id, err }, 'could not remove the leftovers of an unfinished create or delete'));
    }
    for (const vm of unreadable) await this.quarantine(vm);
    // Only a VM whose status file was lost needs the QEMUs of the run dir looked up.
    const qemus = vms.some((vm) => !vm.status) ? await this.runningQemus() : [];
    const records: VmRecord[] = [];
    for (const { spec, status } of vms) {
      const qemu = status ? undefined : qemus.find((q) => q.id === spec.id);
      records.push(this.add(spec, status ?? (qemu ? await this.recoveredStatus(spec, qemu.pid) : this.newStatus('Stopped', 'status file was lost; VM marked stopped'))));
      // A recovered status is written at once, so the next restart finds it.
      if (qemu) this.update(records.at(-1)!, {});
    }
    // All at once: a QEMU that does not answer QMP holds up only its own VM.
    const reconciling = Promise.allSettled(records.map((r) => r.queue.run(() => reconcile(this.env, r, this.migrationHooks))));
    // While QEMUs answer: orphan QEMUs and TAPs, told apart by the pids and TAPs the statuses hold.
    const sweeping = Promise.all([this.killStrayQemus(), this.removeStrayTaps()]);
    for (const [i, result] of (await reconciling).entries()) {
      if (result.status === 'rejected') this.failReconcile(records[i]!, result.reason);
    }
    await sweeping;
    // A cell only once every QEMU is adopted (a recovered status may not name the cell its QEMU
    // sits in) and the orphans that may sit in one are gone.
    await this.removeStrayCells();
    openSerialRestarts(this.env);
  }

  /** VM directories moved aside at this startup (their QEMU, TAPs and cgroup are left alone). */
  readonly quarantined: { id: string; path: string; reason: string; status?: VmStatus }[] = [];

  /** Moves a VM directory whose spec cannot be read out of vms/, whole, logged and counted. */
  private async quarantine(vm: UnreadableVm): Promise<void> {
    let path = '';
    try {
      path = await this.env.store.quarantine(vm.id, this.env.clock.now());
      this.log.error({ vm: vm.id, reason: vm.reason, movedTo: path }, 'VM spec cannot be read: its directory is moved aside whole, nothing deleted; look at it, then restore or remove it');
    } catch (err) {
      this.log.error({ vm: vm.id, reason: vm.reason, err }, 'VM spec cannot be read and its directory could not be moved aside; it stays where it is and is not loaded');
    }
    this.quarantined.push({ ...vm, path });
    this.emit('quarantine', { id: vm.id, path, reason: vm.reason });
  }

  /**
   * Both status copies are lost but the VM's QEMU runs: it is adopted (reconcile connects to it)
   * with what its command line says of its NICs, disks and uid, never killed as an orphan.
   */
  private async recoveredStatus(spec: VmSpec, pid: number): Promise<VmStatus> {
    const found = await this.env.hypervisor.recover(pid, spec).catch((err: unknown) => {
      this.log.warn({ vm: spec.id, pid, err }, 'could not read the running QEMU of a VM whose status was lost');
      return {};
    });
    this.log.warn({ vm: spec.id, pid }, 'status files lost, but the VM\'s QEMU runs: adopting it with what its command line says');
    return { ...this.newStatus('Running', `status files were lost; adopted its running QEMU (pid ${pid})`), ...found, pid };
  }

  /** One VM that cannot be reconciled does not keep the daemon from serving the others. */
  private failReconcile(record: VmRecord, err: unknown): void {
    record.log.error({ err }, 'could not reconcile the VM at startup; it is marked Failed and the others are served');
    this.transition(record, 'Failed', `could not be reconciled at startup: ${errorMessage(err)}; stop, start or delete it`);
  }

  private async runningQemus(): Promise<{ pid: number; id: string }[]> {
    try {
      return await this.env.hypervisor.running();
    } catch (err) {
      this.log.error({ err }, 'could not list running QEMUs');
      return [];
    }
  }

  /** Cells of VMs that no longer hold one (deleted, or stopped while vmlet was down). */
  private async removeStrayCells(): Promise<void> {
    const { cells } = this.env;
    if (!cells) return;
    // A VM with a machine but no recorded cell had its status recovered: its QEMU may sit in one.
    const holding = new Set([...this.all().filter((r) => r.status.cgroup || r.machine).map((r) => r.id), ...this.quarantined.map((q) => q.id)]);
    for (const path of await cells.stray(holding).catch(() => [])) {
      this.log.info({ cgroup: path }, 'removing orphan VM cgroup');
      await cells.remove(path).catch((err: unknown) => this.log.error({ err, cgroup: path }, 'could not remove orphan VM cgroup'));
    }
  }

  /**
   * QEMUs of this run dir that no VM holds (a crash between spawning QEMU and recording its pid).
   * The QEMU of a quarantined VM is left running: its guest may hold data nobody has looked at.
   */
  private async killStrayQemus(): Promise<void> {
    const { hypervisor } = this.env;
    for (const { pid, id } of await this.runningQemus()) {
      const record = this.has(id) ? this.record(id) : undefined;
      if (record && (record.machine?.pid === pid || record.status.pid === pid)) continue;
      if (this.quarantined.some((q) => q.id === id)) {
        this.log.warn({ vm: id, pid }, 'the QEMU of a quarantined VM is left running, unmanaged; stop it once its data is safe');
        continue;
      }
      this.log.warn({ vm: id, pid }, 'killing an orphan QEMU that no VM holds (left by a crash during a start)');
      await hypervisor.kill(pid).catch((err: unknown) => this.log.error({ err, pid }, 'could not kill orphan QEMU'));
    }
  }

  /** TAPs named like vmlet's that no VM holds: left by a crash between creating a TAP and recording it. */
  private async removeStrayTaps(): Promise<void> {
    const { network } = this.env;
    let stray: string[];
    try {
      const held = this.tapsInUse();
      for (const q of this.quarantined) for (const nic of q.status?.nics ?? []) held.add(nic.tap);
      stray = await network.strayTaps(held);
    } catch (err) {
      this.log.warn({ err }, 'could not list TAP devices; orphan TAPs are not removed');
      return;
    }
    for (const tap of stray) {
      this.log.info({ tap }, 'removing orphan TAP device');
      await network.unplug([{ name: tap, tap, mac: '', bridge: '' }]).catch((err: unknown) => this.log.error({ err, tap }, 'could not remove orphan TAP'));
    }
  }

  /** Daemon shutdown: let go of every QEMU, leave guests running. */
  async close(): Promise<void> {
    await Promise.all(this.all().map((r) => r.saving));
    for (const record of this.all()) record.machine?.detach();
  }

  /** A VM arriving by migration: its files written and registered, in phase Incoming. */
  async registerIncoming(spec: VmSpec, status: VmStatus): Promise<VmRecord> {
    if (this.has(spec.id) || this.creating.has(spec.id)) throw new VmletError('ALREADY_EXISTS', `VM ${spec.id} already exists on this node`);
    this.checkRoomForOneMore();
    await this.env.store.create(spec, status);
    const record = this.add(spec, status);
    this.announce(record);
    return record;
  }

  // ---- operations ----

  /** CreateVm: idempotent on the id with the same spec; with `start`, answers once the VM runs and its files are on disk. */
  async create(raw: VmSpec, startNow: boolean): Promise<Vm> {
    const spec = validateSpec(raw);
    await this.creating.get(spec.id)?.catch(() => undefined);
    if (this.has(spec.id)) {
      if (!isDeepStrictEqual(this.record(spec.id).spec, spec)) {
        throw new VmletError('ALREADY_EXISTS', `VM ${spec.id} already exists with a different spec; delete it first or use another id`);
      }
      // A retried create+start (the first one's start refused, say) converges on a running VM.
      return startNow ? this.start(spec.id) : this.get(spec.id);
    }
    this.checkRoomForOneMore();
    const creation = createVm(this.env, spec);
    // A create is done when its state files are on disk, not when the VM is registered.
    const written = this.timed('create', spec.id, async () => {
      const { record, durable } = await creation;
      await this.awaitDurable(record, durable);
    });
    written.catch(() => undefined);
    this.creating.set(spec.id, creation);
    let record: VmRecord;
    try {
      ({ record } = await creation);
    } finally {
      this.creating.delete(spec.id);
    }
    const starting = startNow ? this.start(spec.id, { preparedFor: record.spec }) : undefined;
    starting?.catch(() => undefined);
    await written;
    return starting ?? this.get(spec.id);
  }

  /** Synchronous with the registration that follows it, so concurrent creates cannot overshoot. */
  private checkRoomForOneMore(): void {
    const max = this.env.settings.maxVms ?? DEFAULT_MAX_VMS;
    const held = this.all().length + this.creating.size;
    if (held >= max) {
      throw boundExceeded('vms_per_node', 'RESOURCE_EXHAUSTED', `this node holds ${held} VMs, its limit (--max-vms ${max}); delete one or place the VM on another node`);
    }
  }

  /** Waits for a new VM's files; if they cannot be written the VM is retired and the error thrown. */
  private async awaitDurable(record: VmRecord, durable: Promise<void>): Promise<void> {
    try {
      await durable;
    } catch (err) {
      record.log.error({ err }, 'could not write the state of a new VM; removing it');
      await record.queue.run(() => retire(this.env, record, 'state could not be written', FORCE));
      throw err;
    }
  }

  /** StartVm: refused under the Halted run strategy; calls off a planned restart and starts now. */
  start(id: string, options: StartOptions = {}): Promise<Vm> {
    return this.operate('start', id, async (r) => {
      if (r.spec.runStrategy === 'Halted') throw failedPrecondition(`VM ${id} has run strategy HALTED, which keeps it stopped; change the strategy to start it`);
      cancelRestart(r);
      if (r.status.stopRequested || r.status.nextRestartAt || r.status.restartCount) this.update(r, { stopRequested: undefined, nextRestartAt: undefined, restartCount: undefined });
      await start(this.env, r, options);
    });
  }

  /** StopVm: the VM stays stopped, whatever its run strategy, until StartVm. */
  async stop(id: string, graceSeconds: number | undefined, force: boolean): Promise<Vm> {
    if (graceSeconds !== undefined && graceSeconds > MAX_GRACE_PERIOD_SECONDS) {
      throw boundExceeded('grace_period', 'INVALID_ARGUMENT', `grace_period_seconds: is ${graceSeconds}: at most ${MAX_GRACE_PERIOD_SECONDS} (0 means the default, --stop-grace-seconds)`);
    }
    if (force) this.cutGrace(id);
    return this.operate('stop', id, async (r) => {
      cancelRestart(r);
      if (!r.status.stopRequested || r.status.nextRestartAt) this.update(r, { stopRequested: true, nextRestartAt: undefined });
      await stop(this.env, r, { graceSeconds: graceSeconds || this.env.settings.defaultStopGraceSeconds, force });
    });
  }

  pause(id: string): Promise<Vm> {
    return this.operate('pause', id, (r) => pause(this.env, r));
  }

  resume(id: string): Promise<Vm> {
    return this.operate('resume', id, (r) => resume(this.env, r));
  }

  reboot(id: string): Promise<Vm> {
    return this.operate('reboot', id, (r) => reboot(this.env, r));
  }

  attachNic(id: string, nic: NicSpec): Promise<Vm> {
    const record = this.record(id);
    return record.queue.run(async () => {
      await attachNic(this.env, record, nic);
      return snapshot(record);
    });
  }

  detachNic(id: string, name: string): Promise<Vm> {
    const record = this.record(id);
    return record.queue.run(async () => {
      await detachNic(this.env, record, name);
      return snapshot(record);
    });
  }

  async delete(id: string, force: boolean): Promise<void> {
    const record = this.record(id);
    cancelRestart(record);
    if (force) this.cutGrace(id);
    await this.timed('delete', id, () => record.queue.run(() => deleteVm(this.env, record, force)));
  }

  /** A forced stop or delete does not wait behind a graceful stop's grace period: that stop goes on to quit and kill now. */
  private cutGrace(id: string): void {
    if (this.has(id)) this.record(id).grace?.abort();
  }

  /** Runs `op` in the VM's queue, timed, and answers with the VM as it is then. */
  private operate(name: OperationName, id: string, op: (record: VmRecord) => Promise<void>): Promise<Vm> {
    const record = this.record(id);
    return this.timed(name, id, () =>
      record.queue.run(async () => {
        await op(record);
        return snapshot(record);
      }),
    );
  }

  /** Runs an operation and emits 'operation' with its duration and result (metrics). */
  private async timed<T>(operation: OperationName, id: string, fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    const done = (result: string): boolean => this.emit('operation', { id, operation, result, seconds: (performance.now() - started) / 1000 });
    try {
      const value = await fn();
      done('ok');
      return value;
    } catch (err) {
      done(err instanceof VmletError ? err.code : 'INTERNAL');
      throw err;
    }
  }
}

export { snapshot, type VmRecord };
