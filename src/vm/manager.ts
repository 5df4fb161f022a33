import { setImmediate as nextLoopTurn } from 'node:timers/promises';
import { EventEmitter } from 'node:events';
import { isDeepStrictEqual } from 'node:util';
import { rm } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { VmletError, errorMessage, failedPrecondition, invalidArgument, notFound } from '../model/errors.js';
import type { Logger } from '../host/log.js';
import type { StateStore } from '../state/store.js';
import type { IpTool } from '../net/ip.js';
import type { Accelerator } from '../qemu/accel.js';
import { validateSpec } from './validate.js';
import { matchesSelector, parseLabelSelector } from './label-selector.js';
import { OpQueue } from './op-queue.js';
import { checkFits, type CapacityPolicy, type Resources } from './capacity.js';
import type { OperationDone, OperationName, PhaseTransition, VmChange } from '../model/events.js';
import { ACTIVE_PHASES, type NicSpec, type Phase, type Vm, type VmPaths, type VmSpec, type VmStatus } from '../model/vm.js';
import type { QemuInstance } from './qemu-instance.js';
import { Lifecycle } from './lifecycle.js';
import { prepareDisks } from './disks.js';
import { attachNic, detachNic } from './nic-hotplug.js';
import { effectiveMac } from '../net/wiring.js';
import { deleteTap, getBridge, listTaps } from '../net/tap.js';
import { isVmletTapName } from '../net/names.js';
import { qemusUnder } from '../qemu/orphans.js';
import { killHard, prepareRunDir } from '../qemu/launcher.js';
import type { Spawner } from '../qemu/spawner.js';
import { afterReply } from '../host/after-reply.js';

export interface ManagerOptions {
  store: StateStore;
  logger: Logger;
  ip: IpTool;
  accelerator: Accelerator;
  nodeName: string;
  imageRoots: string[];
  qemuBinary: string;
  qemuImgBinary: string;
  /** Starts QEMU processes (a helper, so the daemon never forks itself). */
  spawner: Spawner;
  netns?: string;
  capacity: CapacityPolicy;
  defaultStopGraceSeconds: number;
  /** vhost=on for TAP netdevs (only when /dev/vhost-net really opens). */
  vhostNet?: boolean;
  /** When non-empty, NICs may only name these bridges. */
  allowedBridges?: string[];
  /** Called after every QMP command (metrics). */
  onQmpCommand?: (command: string, seconds: number, ok: boolean) => void;
}

/**
 * Live migration sits above the domain (it talks to other nodes); it plugs in here so that a
 * restarted daemon can resolve a migration that was in flight.
 */
export interface MigrationHooks {
  /** Called in the VM's queue during start-up for a VM with a migration marker; QEMU is adopted when alive. */
  reconcile(record: VmRecord, runState: string | undefined): Promise<void>;
}

/** What the manager keeps per VM. */
export interface VmRecord {
  spec: VmSpec;
  status: VmStatus;
  paths: VmPaths;
  queue: OpQueue;
  instance?: QemuInstance;
  /** Chain of status writes, so the file always ends with the latest status. */
  saving: Promise<void>;
  /** A status write is queued and has not started: it will write whatever the status is then. */
  saveQueued?: boolean;
  /** The live copy of the status could not be written: the durable copy takes every status until it can. */
  liveCopyBroken?: boolean;
  /** A live-copy write is queued for the end of this loop turn. */
  liveQueued?: boolean;
  /**
   * Set by a create that starts the VM at once: kernel and initrd were checked just now and the
   * run dir is being prepared alongside; that start uses both instead of doing them again.
   */
  createdToStart?: { runDir: Promise<void> };
  log: Logger;
}

const now = (): string => new Date().toISOString();

export interface ManagerEvents {
  change: [VmChange];
  transition: [PhaseTransition];
  operation: [OperationDone];
}

/**
 * The domain: owns every VM of the node, runs one operation at a time per VM, keeps state
 * durable and tells watchers about every change.
 */
export class VmManager extends EventEmitter<ManagerEvents> {
  private readonly vms = new Map<string, VmRecord>();
  /** Ids being created right now: a second create of the same id waits for the first. */
  private readonly creating = new Map<string, Promise<Vm>>();
  readonly lifecycle: Lifecycle;
  migrationHooks?: MigrationHooks;

  constructor(readonly options: ManagerOptions) {
    super();
    // Every WatchVms stream and console session listens: many listeners are the normal case, not a leak.
    this.setMaxListeners(0);
    this.lifecycle = new Lifecycle(this);
  }

  get log(): Logger {
    return this.options.logger;
  }

  /** Loads state and adopts running QEMUs; never touches a guest that is alive. */
  async init(): Promise<void> {
    await this.options.store.init();
    const { vms, unfinished } = await this.options.store.loadAll();
    for (const id of unfinished) {
      this.log.warn({ vm: id }, 'removing leftovers of a create or delete that never finished');
      await this.options.store.remove(id);
    }
    const records = vms.map(({ spec, status }) => this.addRecord(spec, status ?? this.newStatus('Stopped', 'status file was lost; VM marked stopped')));
    // All at once: a QEMU that does not answer QMP holds up only its own VM, for its connect timeout.
    const results = await Promise.allSettled(records.map((record) => record.queue.run(() => this.lifecycle.reconcile(record))));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    await this.killOrphanQemus();
    await this.removeOrphanTaps();
  }

  /** QEMUs of this run dir that no VM holds (a crash between spawning QEMU and recording its pid). */
  private async killOrphanQemus(): Promise<void> {
    for (const { pid, id } of await qemusUnder(this.options.store.runDir)) {
      const record = this.vms.get(id);
      if (record && (record.instance?.pid === pid || record.status.pid === pid)) continue;
      this.log.warn({ vm: id, pid }, 'killing an orphan QEMU that no VM holds (left by a crash during a start)');
      await killHard(pid).catch((err: unknown) => this.log.error({ err, pid }, 'could not kill orphan QEMU'));
    }
  }

  /** TAPs named like vmlet's that no VM holds: left by a crash between creating a TAP and recording it. */
  private async removeOrphanTaps(): Promise<void> {
    const held = this.tapsInUse();
    let taps: string[];
    try {
      taps = await listTaps(this.options.ip);
    } catch (err) {
      this.log.warn({ err }, 'could not list TAP devices; orphan TAPs are not removed');
      return;
    }
    for (const tap of taps.filter((t) => isVmletTapName(t) && !held.has(t))) {
      this.log.info({ tap }, 'removing orphan TAP device');
      await deleteTap(this.options.ip, tap).catch((err: unknown) => this.log.error({ err, tap }, 'could not remove orphan TAP'));
    }
  }

  /** TAP names recorded in VM status (optionally leaving one VM out). */
  tapsInUse(except?: VmRecord): Set<string> {
    const taps = new Set<string>();
    for (const r of this.vms.values()) if (r !== except) for (const n of r.status.nics) taps.add(n.tap);
    return taps;
  }

  /** Throws ALREADY_EXISTS when another VM on this node has one of these MACs. */
  checkMacsFree(id: string, nics: readonly NicSpec[], field = (i: number) => `spec.nics[${i}]`): void {
    const owners = new Map<string, string>();
    for (const r of this.vms.values()) {
      if (r.spec.id === id) continue;
      for (const n of r.spec.nics) owners.set(effectiveMac(r.spec.id, n), r.spec.id);
    }
    for (const [i, nic] of nics.entries()) {
      const owner = owners.get(effectiveMac(id, nic));
      if (owner) throw new VmletError('ALREADY_EXISTS', `${field(i)}.mac: ${effectiveMac(id, nic)} is already used by VM ${owner} on this node`);
    }
  }

  /** Allow-list and existence of every bridge the NICs name. */
  async checkBridges(nics: readonly NicSpec[], field = (i: number) => `spec.nics[${i}]`): Promise<void> {
    const allowed = this.options.allowedBridges ?? [];
    for (const [i, nic] of nics.entries()) {
      if (allowed.length && !allowed.includes(nic.bridge)) {
        throw invalidArgument(`${field(i)}.bridge`, `${nic.bridge} is not an allowed bridge (allowed: ${allowed.join(', ')})`);
      }
      await getBridge(this.options.ip, nic.bridge);
    }
  }

  /** Daemon shutdown: let go of every QEMU, leave guests running. */
  async close(): Promise<void> {
    await Promise.all([...this.vms.values()].map((r) => r.saving));
    for (const record of this.vms.values()) record.instance?.detach();
  }

  /** A VM arriving by migration: registered in phase Incoming, its files made by the caller. */
  async insertIncoming(spec: VmSpec, status: VmStatus): Promise<VmRecord> {
    if (this.vms.has(spec.id) || this.creating.has(spec.id)) {
      throw new VmletError('ALREADY_EXISTS', `VM ${spec.id} already exists on this node`);
    }
    await this.options.store.create(spec, status);
    const record = this.addRecord(spec, status);
    this.emit('change', { type: 'ADDED', vm: snapshot(record) });
    return record;
  }

  private addRecord(spec: VmSpec, status: VmStatus): VmRecord {
    const record: VmRecord = {
      spec: deepFreeze(spec),
      status: deepFreeze(status),
      paths: this.options.store.paths(spec.id),
      queue: new OpQueue(),
      saving: Promise.resolve(),
      log: this.log.child({ vm: spec.id }),
    };
    this.vms.set(spec.id, record);
    return record;
  }

  newStatus(phase: Phase, reason = ''): VmStatus {
    const t = now();
    return { phase, reason, pid: 0, nics: [], disks: [], accelerator: '', createdAt: t, lastTransitionAt: t, generation: 1 };
  }

  // ---- reads (never wait on a queue) ----

  get(id: string): Vm {
    return snapshot(this.record(id));
  }

  list(selector = ''): Vm[] {
    const sel = parseLabelSelector(selector);
    return [...this.vms.values()].filter((r) => matchesSelector(sel, r.spec.labels)).map(snapshot).sort((a, b) => a.spec.id.localeCompare(b.spec.id));
  }

  has(id: string): boolean {
    return this.vms.has(id);
  }

  record(id: string): VmRecord {
    const record = this.vms.get(id);
    if (!record) throw notFound(`VM ${id}`);
    return record;
  }

  allocated(): Resources {
    let cpus = 0;
    let memoryMib = 0;
    for (const r of this.vms.values()) {
      if (!ACTIVE_PHASES.has(r.status.phase)) continue;
      cpus += r.spec.vcpus;
      memoryMib += r.spec.memoryMib;
    }
    return { cpus, memoryMib };
  }

  phaseCounts(): Map<Phase, number> {
    const counts = new Map<Phase, number>();
    for (const r of this.vms.values()) counts.set(r.status.phase, (counts.get(r.status.phase) ?? 0) + 1);
    return counts;
  }

  // ---- state changes ----

  /** Updates status, persists it (ordered), emits MODIFIED and the transition. */
  update(record: VmRecord, change: Partial<VmStatus>): void {
    const before = record.status;
    const status: VmStatus = { ...before, ...change, generation: before.generation + 1 };
    if (change.phase && change.phase !== before.phase) {
      status.lastTransitionAt = now();
      const seconds = (Date.parse(status.lastTransitionAt) - Date.parse(before.lastTransitionAt)) / 1000;
      const transition = { id: record.spec.id, from: before.phase, to: change.phase, reason: status.reason, seconds };
      record.log.info({ from: before.phase, to: change.phase, reason: status.reason }, `phase ${before.phase} -> ${change.phase}`);
      this.emit('transition', transition);
    }
    record.status = deepFreeze(status);
    this.saveLiveCopy(record);
    this.persist(record);
    this.emit('change', { type: 'MODIFIED', vm: snapshot(record) });
  }

  /**
   * Rewrites the status's live copy in the run dir (see StateStore.saveRuntimeStatus) in a
   * microtask: after the step that made the change (its other changes share the write), before
   * the reply that announces it is handed to grpc-js, so a client that has the answer can kill
   * vmlet and the next one still knows what it announced. Written any later, between the reply's
   * message and its trailers, it would cost the client a second wake-up (0.5-0.7 ms measured).
   */
  private saveLiveCopy(record: VmRecord): void {
    if (record.liveQueued) return;
    record.liveQueued = true;
    queueMicrotask(() => {
      record.liveQueued = false;
      if (this.vms.get(record.spec.id) !== record) return;
      try {
        this.options.store.saveRuntimeStatus(record.spec.id, record.status);
        record.liveCopyBroken = false;
      } catch (err) {
        if (!record.liveCopyBroken) record.log.error({ err }, 'could not write the live copy of the status; the durable copy takes every change instead');
        record.liveCopyBroken = true;
      }
    });
  }

  setPhase(record: VmRecord, phase: Phase, reason: string, extra: Partial<VmStatus> = {}): void {
    this.update(record, { ...extra, phase, reason });
  }

  /**
   * Queues a write of the status's durable copy; a write that is queued but not started yet
   * already covers later changes. It starts once the reply to the call that changed the status
   * is out, so the write's file system calls do not hold it up.
   */
  private persist(record: VmRecord): void {
    if (record.saveQueued) return;
    record.saveQueued = true;
    record.saving = record.saving
      .then(afterReply)
      .then(() => {
        record.saveQueued = false;
        if (this.vms.get(record.spec.id) !== record) return undefined;
        // A start's own steps (Starting, then QEMU's pid) are in the live copy only: a restarted
        // vmlet reads them there, and a node reboot, which takes the run dir, ends every start.
        if (record.status.phase === 'Starting' && !record.liveCopyBroken) return undefined;
        return this.options.store.saveStatus(record.spec.id, record.status);
      })
      .catch((err: unknown) => record.log.error({ err }, 'failed to persist VM status'));
  }

  // ---- operations ----

  async create(raw: VmSpec, start: boolean): Promise<Vm> {
    const spec = validateSpec(raw);
    const inFlight = this.creating.get(spec.id);
    if (inFlight) await inFlight.catch(() => undefined);
    const existing = this.vms.get(spec.id);
    if (existing) {
      if (!isDeepStrictEqual(existing.spec, spec)) {
        throw new VmletError('ALREADY_EXISTS', `VM ${spec.id} already exists with a different spec; delete it first or use another id`);
      }
      // A retried create+start (the first one's start refused, say) converges on a running VM.
      return start ? this.start(spec.id) : snapshot(existing);
    }
    const creation = this.createNew(spec, start);
    // A create is done when its state files are on disk, not when the VM is registered.
    this.timed('create', spec.id, () => creation.then((c) => c.durable)).catch(() => undefined);
    const pending = creation.then((c) => c.vm);
    pending.catch(() => undefined);
    this.creating.set(spec.id, pending);
    let created: Awaited<typeof creation>;
    try {
      created = await creation;
    } finally {
      this.creating.delete(spec.id);
    }
    if (!start) {
      await this.awaitDurable(created);
      return this.get(spec.id);
    }
    // QEMU starts while the state files become durable (~3 ms of fsync against ~60 ms of QEMU
    // start-up); the call answers only once both are done.
    const starting = this.start(spec.id);
    starting.catch(() => undefined);
    await this.awaitDurable(created);
    return starting;
  }

  /** Waits for a new VM's state files; if they cannot be written the VM is undone and the error thrown. */
  private async awaitDurable(created: { record: VmRecord; durable: Promise<void> }): Promise<void> {
    try {
      await created.durable;
    } catch (err) {
      const { record } = created;
      record.log.error({ err }, 'could not write the state of a new VM; removing it');
      await record.queue.run(async () => {
        await this.lifecycle.ensureStopped(record, { graceSeconds: 0, force: true });
        this.update(record, { phase: 'Deleting', reason: 'state could not be written' });
        await this.removeEverything(record);
      });
      throw err;
    }
  }

  /**
   * Checks, overlays, then the VM is registered while its state files are written: `durable`
   * settles when they are on disk. Status writes queue behind them.
   */
  private async createNew(spec: VmSpec, start: boolean): Promise<{ vm: Vm; record: VmRecord; durable: Promise<void> }> {
    // A VM that can never fit is refused at create; whether it fits now is checked at start.
    checkFits(this.options.capacity, { cpus: 0, memoryMib: 0 }, { cpus: spec.vcpus, memoryMib: spec.memoryMib }, spec.id);
    this.checkMacsFree(spec.id, spec.nics);
    await this.checkBridges(spec.nics);
    const paths = this.options.store.paths(spec.id);
    const status = this.newStatus('Pending', 'created');
    // Made while the image paths are checked: one round of file system calls less before QEMU starts.
    const runDir = start ? prepareRunDir(paths) : undefined;
    const [disks, dir] = await Promise.allSettled([prepareDisks(spec, paths, this.options), runDir]);
    if (disks.status === 'rejected' || dir.status === 'rejected') {
      await this.options.store.remove(spec.id).catch(() => undefined);
      throw disks.status === 'rejected' ? disks.reason : (dir as PromiseRejectedResult).reason;
    }
    status.disks = disks.value;
    // Written once the current loop turn is over: by then a start right behind the create has
    // asked for its QEMU, and the writes' synchronous part runs while QEMU initialises.
    const durable = nextLoopTurn().then(() => this.options.store.create(spec, status));
    durable.catch(() => undefined);
    const record = this.addRecord(spec, status);
    record.saving = durable.catch(() => undefined);
    if (runDir) record.createdToStart = { runDir };
    record.log.info({ vcpus: spec.vcpus, memoryMib: spec.memoryMib }, 'VM created');
    this.emit('change', { type: 'ADDED', vm: snapshot(record) });
    return { vm: snapshot(record), record, durable };
  }

  /** Throws RESOURCE_EXHAUSTED when starting this VM would exceed the node's allocatable × overcommit. */
  checkCapacityFor(record: VmRecord): void {
    checkFits(this.options.capacity, this.allocated(), { cpus: record.spec.vcpus, memoryMib: record.spec.memoryMib }, record.spec.id);
  }

  start(id: string): Promise<Vm> {
    const record = this.record(id);
    return this.timed('start', id, () => record.queue.run(async () => {
      await this.lifecycle.start(record);
      return snapshot(record);
    }));
  }

  stop(id: string, graceSeconds: number | undefined, force: boolean): Promise<Vm> {
    const record = this.record(id);
    return this.timed('stop', id, () => record.queue.run(async () => {
      await this.lifecycle.stop(record, { graceSeconds: graceSeconds || this.options.defaultStopGraceSeconds, force });
      return snapshot(record);
    }));
  }

  pause(id: string): Promise<Vm> {
    const record = this.record(id);
    return this.timed('pause', id, () => record.queue.run(async () => {
      await this.lifecycle.pause(record);
      return snapshot(record);
    }));
  }

  resume(id: string): Promise<Vm> {
    const record = this.record(id);
    return this.timed('resume', id, () => record.queue.run(async () => {
      await this.lifecycle.resume(record);
      return snapshot(record);
    }));
  }

  reboot(id: string): Promise<Vm> {
    const record = this.record(id);
    return this.timed('reboot', id, () => record.queue.run(async () => {
      await this.lifecycle.reboot(record);
      return snapshot(record);
    }));
  }

  attachNic(id: string, nic: NicSpec): Promise<Vm> {
    const record = this.record(id);
    return record.queue.run(async () => {
      await attachNic(this, record, nic);
      return snapshot(record);
    });
  }

  detachNic(id: string, name: string): Promise<Vm> {
    const record = this.record(id);
    return record.queue.run(async () => {
      await detachNic(this, record, name);
      return snapshot(record);
    });
  }

  /** Replaces the spec (NIC hotplug) and persists it. */
  async replaceSpec(record: VmRecord, spec: VmSpec): Promise<void> {
    await this.options.store.saveSpec(spec);
    record.spec = deepFreeze(spec);
  }

  delete(id: string, force: boolean): Promise<void> {
    const record = this.record(id);
    return this.timed('delete', id, () => record.queue.run(async () => {
      if (this.vms.get(id) !== record) throw notFound(`VM ${id}`);
      const phaseBefore = record.status.phase;
      if (phaseBefore === 'Migrating' || (phaseBefore === 'Incoming' && !force)) {
        throw failedPrecondition(`VM ${id} is ${phaseBefore}; cancel the migration first${phaseBefore === 'Incoming' ? ' (or delete with force)' : ''}`);
      }
      this.setPhase(record, 'Deleting', 'deletion requested');
      await this.lifecycle.ensureStopped(record, { graceSeconds: this.options.defaultStopGraceSeconds, force });
      await this.removeEverything(record);
    }));
  }

  /** Final step of a delete: every host trace goes, then watchers see DELETED. */
  async removeEverything(record: VmRecord): Promise<void> {
    const id = record.spec.id;
    await record.saving;
    this.vms.delete(id);
    try {
      await this.options.store.remove(id);
      await rm(record.paths.runDir, { recursive: true, force: true });
    } catch (err) {
      this.vms.set(id, record);
      throw new VmletError('INTERNAL', `could not remove files of VM ${id}: ${errorMessage(err)}`, { cause: err });
    }
    record.log.info('VM deleted');
    this.emit('change', { type: 'DELETED', vm: snapshot(record) });
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

  /** Re-reads the record as it is now (a watcher that attaches gets these as ADDED). */
  snapshotAll(): Vm[] {
    return this.list('');
  }
}

/**
 * A VM as it is now. Specs and statuses are never changed in place (every change makes a new
 * status, see update), so a snapshot shares them instead of copying: a copy cost 75 µs on the
 * start path, five times per start. They are frozen, so a change in place is a TypeError, not a
 * silent rewrite of what earlier snapshots said.
 */
export function snapshot(record: VmRecord): Vm {
  return { spec: record.spec, status: record.status };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
