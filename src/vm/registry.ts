import { setImmediate as nextLoopTurn } from 'node:timers/promises';
import { EventEmitter } from 'node:events';
import type { Logger } from '../host/log.js';
import { VmletError, errorMessage, notFound } from '../model/errors.js';
import type { GuestPanic, OperationDone, PhaseTransition, Quarantined, VmChange } from '../model/events.js';
import { ACTIVE_PHASES, type Phase, type Vm, type VmSpec, type VmStatus } from '../model/vm.js';
import { matchesSelector, parseLabelSelector } from './label-selector.js';
import { OpQueue } from './op-queue.js';
import type { Clock, Machine, Store } from './ports.js';
import type { Resources } from './capacity.js';

/** What vmlet keeps per VM. Spec and status are frozen: every change makes a new one. */
export interface VmRecord {
  readonly id: string;
  spec: VmSpec;
  status: VmStatus;
  readonly paths: ReturnType<Store['paths']>;
  /** One operation at a time. */
  readonly queue: OpQueue;
  /** The QEMU of this VM while vmlet holds its monitor. */
  machine?: Machine;
  /** Set while a stop waits out its grace period; aborting it ends the grace at once (a forced stop or delete). */
  grace?: AbortController;
  /** The chain of durable status writes, so the file always ends with the latest status. */
  saving: Promise<void>;
  saveQueued: boolean;
  /** The live copy could not be written: the durable copy takes every change until it can. */
  liveCopyBroken: boolean;
  readonly log: Logger;
}

export interface RegistryEvents {
  change: [VmChange];
  transition: [PhaseTransition];
  operation: [OperationDone];
  /** The run strategy restarts a VM now (after a clean power-off or a failure). */
  restart: [{ id: string; kind: 'poweroff' | 'failure' }];
  quarantine: [Quarantined];
  panic: [GuestPanic];
}

/**
 * Every VM of the node and the phase machine: `transition` and `update` are the one place a
 * VM's status changes, and each change is persisted, logged and emitted there.
 */
export class VmRegistry extends EventEmitter<RegistryEvents> {
  private readonly records = new Map<string, VmRecord>();

  constructor(
    protected readonly store: Store,
    protected readonly clock: Clock,
    readonly log: Logger,
  ) {
    super();
    // Every WatchVms stream and console session listens: many listeners are normal, not a leak.
    this.setMaxListeners(0);
  }

  /** Registers a VM that has its files (created, loaded or arriving by migration). */
  add(spec: VmSpec, status: VmStatus): VmRecord {
    const record: VmRecord = {
      id: spec.id,
      spec: deepFreeze(spec),
      status: deepFreeze(status),
      paths: this.store.paths(spec.id),
      queue: new OpQueue(),
      saving: Promise.resolve(),
      saveQueued: false,
      liveCopyBroken: false,
      log: this.log.child({ vm: spec.id }),
    };
    this.records.set(spec.id, record);
    return record;
  }

  newStatus(phase: Phase, reason = ''): VmStatus {
    const t = this.clock.now().toISOString();
    return { phase, reason, pid: 0, nics: [], disks: [], accelerator: '', createdAt: t, lastTransitionAt: t, generation: 1 };
  }

  // ---- reads (never wait on a queue) ----

  get(id: string): Vm {
    return snapshot(this.record(id));
  }

  list(selector = ''): Vm[] {
    const sel = parseLabelSelector(selector);
    return [...this.records.values()].filter((r) => matchesSelector(sel, r.spec.labels)).map(snapshot).sort((a, b) => a.spec.id.localeCompare(b.spec.id));
  }

  has(id: string): boolean {
    return this.records.has(id);
  }

  record(id: string): VmRecord {
    const record = this.records.get(id);
    if (!record) throw notFound(`VM ${id}`);
    return record;
  }

  all(): VmRecord[] {
    return [...this.records.values()];
  }

  /** vCPUs and memory of the VMs that hold node resources. */
  allocated(): Resources {
    let cpus = 0;
    let memoryMib = 0;
    for (const r of this.records.values()) {
      if (!ACTIVE_PHASES.has(r.status.phase)) continue;
      cpus += r.spec.vcpus;
      memoryMib += r.spec.memoryMib;
    }
    return { cpus, memoryMib };
  }

  phaseCounts(): Map<Phase, number> {
    const counts = new Map<Phase, number>();
    for (const r of this.records.values()) counts.set(r.status.phase, (counts.get(r.status.phase) ?? 0) + 1);
    return counts;
  }

  /** TAP names recorded in VM statuses, optionally leaving one VM out. */
  tapsInUse(except?: VmRecord): Set<string> {
    const taps = new Set<string>();
    for (const r of this.records.values()) if (r !== except) for (const n of r.status.nics) taps.add(n.tap);
    return taps;
  }

  // ---- the phase machine ----

  /** Moves the VM to `phase`; the one place a phase changes. */
  transition(record: VmRecord, phase: Phase, reason: string, extra: Partial<VmStatus> = {}): void {
    this.update(record, { ...extra, phase, reason });
  }

  /** Changes the status, then persists, logs and emits it. */
  update(record: VmRecord, change: Partial<VmStatus>): void {
    const before = record.status;
    const status: VmStatus = { ...before, ...change, generation: before.generation + 1 };
    if (change.phase && change.phase !== before.phase) {
      status.lastTransitionAt = this.clock.now().toISOString();
      const seconds = (Date.parse(status.lastTransitionAt) - Date.parse(before.lastTransitionAt)) / 1000;
      record.log.info({ from: before.phase, to: change.phase, reason: status.reason }, `phase ${before.phase} -> ${change.phase}`);
      this.emit('transition', { id: record.id, from: before.phase, to: change.phase, reason: status.reason, seconds });
    }
    record.status = deepFreeze(status);
    this.save(record);
    this.emit('change', { type: 'MODIFIED', vm: snapshot(record) });
  }

  /** Replaces the spec (NIC hotplug), on disk first. */
  async replaceSpec(record: VmRecord, spec: VmSpec): Promise<void> {
    await this.store.saveSpec(spec);
    record.spec = deepFreeze(spec);
  }

  /**
   * Saves the status: the live copy at once (a tmpfs write, so a client told of a change finds
   * it after a vmlet restart), the durable copy queued behind earlier writes. A queued write that
   * has not started yet covers later changes too.
   */
  private save(record: VmRecord): void {
    try {
      this.store.saveLiveStatus(record.id, record.status);
      record.liveCopyBroken = false;
    } catch (err) {
      if (!record.liveCopyBroken) record.log.error({ err }, 'could not write the live copy of the status; the durable copy takes every change instead');
      record.liveCopyBroken = true;
    }
    if (record.saveQueued) return;
    record.saveQueued = true;
    record.saving = record.saving
      // A loop turn later: the reply to the call that made the change goes out first.
      .then(() => nextLoopTurn())
      .then(() => {
        record.saveQueued = false;
        if (this.records.get(record.id) !== record) return undefined;
        return this.store.saveStatus(record.id, record.status);
      })
      .catch((err: unknown) => record.log.error({ err }, 'failed to persist VM status'));
  }

  /**
   * Writes the status as it is now to the durable copy, after the writes queued before it, fsynced
   * with its directory, and rejects if that fails: for a commit point, which must be on disk
   * before anyone acts on it. (Ordinary saves are logged on failure, never thrown.)
   */
  commit(record: VmRecord): Promise<void> {
    const write = record.saving.then(() => this.store.commitStatus(record.id, record.status));
    record.saving = write.catch((err: unknown) => record.log.error({ err }, 'failed to persist VM status'));
    return write;
  }

  /** Announces a VM that was just registered. */
  announce(record: VmRecord): void {
    this.emit('change', { type: 'ADDED', vm: snapshot(record) });
  }

  /** The last step of a delete: every file goes, then watchers see DELETED. */
  async remove(record: VmRecord): Promise<void> {
    await record.saving;
    this.records.delete(record.id);
    try {
      await this.store.remove(record.id);
    } catch (err) {
      this.records.set(record.id, record);
      throw new VmletError('INTERNAL', `could not remove files of VM ${record.id}: ${errorMessage(err)}`, { cause: err });
    }
    record.log.info('VM deleted');
    this.emit('change', { type: 'DELETED', vm: snapshot(record) });
  }

  /** Forgets a VM whose files were never complete (a failed create). */
  drop(record: VmRecord): void {
    if (this.records.get(record.id) === record) this.records.delete(record.id);
  }
}

/** A VM as it is now. Specs and statuses are frozen and replaced on change, so a snapshot shares them. */
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
