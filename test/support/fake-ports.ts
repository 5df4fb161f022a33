/**
 * In-memory implementations of the domain's ports (src/vm/ports.ts), for unit tests of VmManager
 * and the migration code without QEMU, `ip` or a disk. Each records what it was asked, and each
 * can be told to fail or behave like a stubborn guest.
 */
import { pino } from 'pino';
import { VmletError } from '../../src/model/errors.js';
import type { DiskExport, MachineEvent, MigrationCapabilities, MigrationProgress, RunState, ShutdownCause, StreamTls } from '../../src/model/machine.js';
import type { DiskStatus, GuestInfo, NicSpec, NicStatus, VmPaths, VmSpec, VmStatus } from '../../src/model/vm.js';
import type { GuestFigures } from '../../src/model/guest-figures.js';
import type { Clock, Hypervisor, LaunchRequest, Machine, Network, Storage, Store, StoredVm, UnreadableVm } from '../../src/vm/ports.js';
import { VmManager } from '../../src/vm/manager.js';
import type { DomainSettings } from '../../src/vm/ops/env.js';

export const silentLogger = pino({ level: 'silent' });

/** A clock that moves only when told (machines move it while a test's guest "takes time"). */
export class FakeClock implements Clock {
  private t = Date.parse('2026-01-01T00:00:00Z');
  now(): Date {
    return new Date(this.t);
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

export class FakeStore implements Store {
  readonly specs = new Map<string, VmSpec>();
  readonly durable = new Map<string, VmStatus>();
  readonly live = new Map<string, VmStatus>();
  /** VM directories whose spec cannot be read, by id: why. */
  readonly unreadable = new Map<string, string>();
  /** Where quarantine moved each directory, by id. */
  readonly quarantined = new Map<string, string>();
  failCreate: Error | undefined;
  failQuarantine: Error | undefined;
  /** Makes commitStatus (the fsynced write) fail. */
  failCommit: Error | undefined;

  async init(): Promise<void> {}

  paths(id: string): VmPaths {
    const s = `/state/vms/${id}`;
    const r = `/run/vms/${id}`;
    return {
      stateDir: s,
      specFile: `${s}/spec.json`,
      statusFile: `${s}/status.json`,
      disksDir: `${s}/disks`,
      runDir: r,
      runtimeStatusFile: `${r}/status.json`,
      qmpSocket: `${r}/qmp.sock`,
      serialSocket: `${r}/serial.sock`,
      migrationSocket: `${r}/mig.sock`,
      consoleLog: `${r}/console.log`,
      pidFile: `${r}/qemu.pid`,
      qemuLog: `${r}/qemu.log`,
      efiVars: `${s}/efi-vars.fd`,
      cloudInitSeed: `${s}/cidata.iso`,
      guestAgentSocket: `${r}/qga.sock`,
    };
  }

  async loadAll(): Promise<{ vms: StoredVm[]; unfinished: string[]; unreadable: UnreadableVm[] }> {
    const vms = [...this.specs.values()].map((spec) => {
      const live = this.live.get(spec.id);
      const durable = this.durable.get(spec.id);
      const status = live && (!durable || live.generation >= durable.generation) ? live : durable;
      return status ? { spec, status } : { spec };
    });
    const unreadable = [...this.unreadable].map(([id, reason]) => {
      const status = this.live.get(id) ?? this.durable.get(id);
      return status ? { id, reason, status } : { id, reason };
    });
    return { vms, unfinished: [], unreadable };
  }

  async quarantine(id: string, at: Date): Promise<string> {
    if (this.failQuarantine) throw this.failQuarantine;
    const path = `/state/quarantine/${id}-${at.toISOString()}`;
    this.unreadable.delete(id);
    this.quarantined.set(id, path);
    return path;
  }

  /** Every status written through commitStatus, in order. */
  readonly commits: VmStatus[] = [];

  async commitStatus(id: string, status: VmStatus): Promise<void> {
    if (this.failCommit) throw this.failCommit;
    this.commits.push(status);
    this.durable.set(id, status);
  }

  async create(spec: VmSpec, status: VmStatus): Promise<void> {
    if (this.failCreate) throw this.failCreate;
    this.durable.set(spec.id, status);
    this.specs.set(spec.id, spec);
  }

  async saveSpec(spec: VmSpec): Promise<void> {
    this.specs.set(spec.id, spec);
  }

  async saveStatus(id: string, status: VmStatus): Promise<void> {
    this.durable.set(id, status);
  }

  saveLiveStatus(id: string, status: VmStatus): void {
    this.live.set(id, status);
  }

  async remove(id: string): Promise<void> {
    this.specs.delete(id);
    this.durable.delete(id);
    this.live.delete(id);
  }
}

export class FakeNetwork implements Network {
  /** TAPs that exist on the "node", by name. */
  readonly taps = new Map<string, NicStatus>();
  bridges = new Set(['br0']);
  failPlug: string | undefined;
  private next = 0;

  macOf(vmId: string, nic: NicSpec): string {
    return nic.mac || `02:00:00:00:${(vmId.length % 256).toString(16).padStart(2, '0')}:${(nic.name.length % 256).toString(16).padStart(2, '0')}`;
  }

  async checkBridge(name: string): Promise<void> {
    if (!this.bridges.has(name)) throw new VmletError('FAILED_PRECONDITION', `bridge ${name} does not exist on this node`);
  }

  async plug(vm: { id: string; vcpus: number }, nic: NicSpec, port: number): Promise<NicStatus> {
    if (this.failPlug === nic.name) throw new VmletError('INTERNAL', `ip: cannot create the TAP of ${nic.name}`);
    const status = { name: nic.name, tap: `vml${String(this.next++).padStart(12, '0')}`, mac: this.macOf(vm.id, nic), bridge: nic.bridge, port };
    this.taps.set(status.tap, status);
    return status;
  }

  async unplug(nics: readonly NicStatus[]): Promise<void> {
    for (const n of nics) this.taps.delete(n.tap);
  }

  async strayTaps(held: ReadonlySet<string>): Promise<string[]> {
    return [...this.taps.keys()].filter((t) => !held.has(t));
  }
}

export class FakeStorage implements Storage {
  failPrepare: Error | undefined;
  bootChecks = 0;

  async prepareDisks(spec: VmSpec, paths: VmPaths): Promise<DiskStatus[]> {
    if (this.failPrepare) throw this.failPrepare;
    return spec.disks.map((d) => ({ name: d.name, path: d.overlay ? `${paths.disksDir}/${d.name}.qcow2` : d.imagePath, format: 'qcow2' }));
  }

  readonly vmFiles: string[] = [];
  async prepareVmFiles(spec: VmSpec): Promise<void> {
    this.vmFiles.push(spec.id);
  }

  async checkBootFiles(): Promise<void> {
    this.bootChecks++;
  }

  readonly owned = new Map<string, number>();
  async own(paths: VmPaths, _disks: readonly DiskStatus[], owner: { uid: number }): Promise<void> {
    this.owned.set(paths.stateDir, owner.uid);
  }
}

/** How a fake guest answers the ACPI power button. */
export type GuestBehaviour = { powerOffAfterPresses: number } | 'ignores-acpi' | 'hung';

/** A QEMU that exists only in memory: every call is recorded; the guest behaves as told. */
export class FakeMachine implements Machine {
  readonly calls: string[] = [];
  shutdown: ShutdownCause | undefined;
  closed = false;
  runStateValue: RunState = 'prelaunch';
  readyError: Error | undefined;
  /** The handshake waits for this (a slow QEMU). */
  readyGate: Promise<void> | undefined;
  /** query-status waits for this (a QEMU whose guest keeps the CPU busy). */
  runStateGate: Promise<void> | undefined;
  failOn = new Map<string, Error>();
  guest: GuestBehaviour = { powerOffAfterPresses: 1 };
  migration: MigrationProgress = { status: 'completed', totalBytes: 100, transferredBytes: 100, remainingBytes: 0, downtimeMs: 5, totalTimeMs: 50 };
  readonly exited: Promise<void>;
  private exit!: () => void;
  private presses = 0;
  private readonly listeners: ((e: MachineEvent) => void)[] = [];

  constructor(
    readonly pid: number,
    private readonly clock: FakeClock,
    private readonly onGone: (pid: number) => void,
  ) {
    this.exited = new Promise((resolve) => (this.exit = resolve));
  }

  /** Records a call; a hung QEMU answers nothing, so the call times out (on the fake clock). */
  private async record(name: string, timeoutMs = 10_000): Promise<void> {
    this.calls.push(name);
    const err = this.failOn.get(name);
    if (err) throw err;
    if (this.guest === 'hung') {
      this.clock.advance(timeoutMs);
      throw new VmletError('DEADLINE_EXCEEDED', `QMP ${name} timed out`);
    }
  }

  /** The process ends (a crash, a power-off): the monitor closes. */
  die(shutdown?: ShutdownCause): void {
    if (this.closed) return;
    this.shutdown = shutdown;
    this.closed = true;
    this.onGone(this.pid);
    this.exit();
  }

  emit(event: MachineEvent): void {
    for (const l of this.listeners) l(event);
  }

  async ready(): Promise<void> {
    this.calls.push('ready');
    await this.readyGate;
    if (this.readyError) throw this.readyError;
  }
  onEvent(listener: (event: MachineEvent) => void): void {
    this.listeners.push(listener);
  }
  async waitExit(timeoutMs: number): Promise<boolean> {
    if (!this.closed) this.clock.advance(timeoutMs);
    return this.closed;
  }
  detach(): void {
    this.calls.push('detach');
  }
  /** What the domain gave watchGuest: a test plays the guest agent through it. */
  guestListener: ((info: GuestInfo) => void) | undefined;
  watchGuest(onInfo: (info: GuestInfo) => void): void {
    this.guestListener = onInfo;
  }
  /** Set by a test: what the fake agent last reported for metrics. */
  figures: GuestFigures | undefined;
  guestFigures(): GuestFigures | undefined {
    return this.figures;
  }
  /** Set by a test: the fake agent is connected, and guest-shutdown powers the guest off. */
  agentConnected = false;
  async guestShutdown(): Promise<boolean> {
    this.calls.push('guestShutdown');
    if (this.agentConnected) this.die({ guest: true, reason: 'guest-shutdown' });
    return this.agentConnected;
  }
  async run(): Promise<void> {
    await this.record('run');
    this.runStateValue = 'running';
  }
  async pause(): Promise<void> {
    await this.record('pause');
    this.runStateValue = 'paused';
  }
  async reset(): Promise<void> {
    await this.record('reset');
  }
  async powerDown(timeoutMs: number): Promise<void> {
    await this.record('powerDown', timeoutMs);
    this.presses++;
    if (typeof this.guest === 'object' && this.presses >= this.guest.powerOffAfterPresses) this.die({ guest: true, reason: 'guest-shutdown' });
  }
  async quit(timeoutMs: number): Promise<void> {
    await this.record('quit', timeoutMs);
    this.die({ guest: false, reason: 'host-qmp-quit' });
  }
  async runState(): Promise<RunState> {
    await this.record('runState');
    await this.runStateGate;
    return this.runStateValue;
  }
  async plugNic(nic: NicStatus, _vcpus: number, port: number): Promise<void> {
    await this.record(`plugNic ${nic.name}@${port}`);
  }
  async unplugNic(name: string): Promise<void> {
    await this.record(`unplugNic ${name}`);
  }
  async query<T>(): Promise<T> {
    return [] as T;
  }
  async secureStreams(tls: StreamTls): Promise<void> {
    await this.record(tls.role === 'server' ? `secureStreams server allow=${tls.peerSubjects.join('|')}` : `secureStreams client host=${tls.hostname}`);
  }
  async mirrorDisk(target: DiskExport): Promise<void> {
    await this.record(`mirrorDisk ${target.disk}`);
  }
  async finishMirrors(disks: readonly string[]): Promise<void> {
    await this.record(`finishMirrors ${disks.join(',')}`);
  }
  async abandonMirrors(disks: readonly string[]): Promise<void> {
    await this.record(`abandonMirrors ${disks.join(',')}`);
  }
  async setMigrationCapabilities(c: MigrationCapabilities): Promise<void> {
    await this.record(`capabilities postcopy=${c.postcopyRam}`);
  }
  async setMigrationLimits(): Promise<void> {
    await this.record('limits');
  }
  async migrate(uri: string): Promise<void> {
    await this.record(`migrate ${uri}`);
  }
  async migrationProgress(): Promise<MigrationProgress> {
    await this.record('progress');
    return this.migration;
  }
  async nextMigrationEvent(): Promise<void> {}
  async continueAfterSwitchover(): Promise<void> {
    await this.record('continue');
  }
  async startPostcopy(): Promise<void> {
    await this.record('postcopy');
  }
  async cancelMigration(): Promise<void> {
    await this.record('cancelMigration');
  }
  async exportDisks(host: string, port: number, disks: readonly string[]): Promise<DiskExport[]> {
    await this.record(`exportDisks ${disks.join(',')}`);
    return disks.map((disk) => ({ disk, host, port, name: disk }));
  }
  async stopExports(): Promise<void> {
    await this.record('stopExports');
  }
  async listenForMigration(uri: string): Promise<void> {
    await this.record(`listen ${uri.replace(/:\d+$/, ':PORT')}`);
  }
  async incomingComplete(): Promise<void> {
    await this.record('incomingComplete');
  }
}

/** QEMU processes in memory: a pid table and the machines launched or adopted. */
export class FakeHypervisor implements Hypervisor {
  readonly accelerator = 'tcg';
  /** pid → VM id of every "QEMU" alive. */
  readonly processes = new Map<number, string>();
  readonly launches: LaunchRequest[] = [];
  readonly machines: FakeMachine[] = [];
  readonly killed: number[] = [];
  failLaunch: Error | undefined;
  /** Pids whose monitor does not answer when adopted. */
  readonly unresponsive = new Set<number>();
  /** What an adopted QEMU reports from query-status. */
  adoptedRunState: RunState = 'running';
  /** An adopted QEMU answers query-status once this settles. */
  adoptedRunStateGate: Promise<void> | undefined;
  /** Configures each machine before it is handed out. */
  prepare: (m: FakeMachine) => void = () => undefined;
  private nextPid = 1000;

  constructor(readonly clock: FakeClock) {}

  private machine(pid: number): FakeMachine {
    const m = new FakeMachine(pid, this.clock, (p) => this.processes.delete(p));
    this.prepare(m);
    this.machines.push(m);
    return m;
  }

  /** A QEMU that runs from before (for adoption tests). */
  spawnOrphan(id: string): number {
    const pid = this.nextPid++;
    this.processes.set(pid, id);
    return pid;
  }

  async launch(request: LaunchRequest): Promise<Machine> {
    this.launches.push(request);
    if (this.failLaunch) throw this.failLaunch;
    const pid = this.nextPid++;
    this.processes.set(pid, request.spec.id);
    return this.machine(pid);
  }

  async adopt(pid: number): Promise<Machine> {
    if (this.unresponsive.has(pid)) throw new VmletError('UNAVAILABLE', `QMP socket of pid ${pid} did not answer`);
    const m = this.machine(pid);
    m.runStateValue = this.adoptedRunState;
    m.runStateGate = this.adoptedRunStateGate;
    return m;
  }

  async isQemuOf(pid: number, id: string): Promise<boolean> {
    return this.processes.get(pid) === id;
  }

  async isAlive(pid: number): Promise<boolean> {
    return this.processes.has(pid);
  }

  async kill(pid: number): Promise<void> {
    this.killed.push(pid);
    const m = this.machines.find((x) => x.pid === pid);
    if (m) m.die();
    else this.processes.delete(pid);
  }

  async logTail(): Promise<string> {
    return 'qemu: fake log';
  }

  /** What recover() finds on a pid's "command line". */
  readonly commandLines = new Map<number, Partial<VmStatus>>();

  async recover(pid: number): Promise<Partial<VmStatus>> {
    return this.commandLines.get(pid) ?? {};
  }

  async running(): Promise<{ pid: number; id: string }[]> {
    return [...this.processes].map(([pid, id]) => ({ pid, id }));
  }

  async clearRunFiles(): Promise<void> {}
}

export const DEFAULT_SETTINGS: DomainSettings = {
  capacity: { capacity: { cpus: 4, memoryMib: 4096 }, reserved: { cpus: 0, memoryMib: 0 }, cpuOvercommit: 1, memoryOvercommit: 1 },
  defaultStopGraceSeconds: 10,
  allowedBridges: [],
};

/** A VmManager on fake ports, and the fakes to look at. */
export function fakeDomain(settings: Partial<DomainSettings> = {}) {
  const clock = new FakeClock();
  const store = new FakeStore();
  const network = new FakeNetwork();
  const storage = new FakeStorage();
  const hypervisor = new FakeHypervisor(clock);
  const manager = new VmManager({ store, network, storage, hypervisor, clock }, { ...DEFAULT_SETTINGS, ...settings }, silentLogger);
  return { manager, clock, store, network, storage, hypervisor };
}

/** A small valid spec. */
export function specOf(id: string, extra: Partial<VmSpec> = {}): VmSpec {
  return {
    id,
    labels: {},
    vcpus: 1,
    memoryMib: 128,
    kernel: { kernelPath: '/images/vmlinuz', initrdPath: '', cmdline: '' },
    disks: [],
    nics: [],
    ...extra,
  };
}

/** Resolves when the VM reaches `phase` (at once if it is there). */
export function phaseReached(manager: VmManager, id: string, phase: string): Promise<void> {
  if (manager.has(id) && manager.get(id).status.phase === phase) return Promise.resolve();
  return new Promise((resolve) => {
    const onChange = (c: { vm: { spec: { id: string }; status: { phase: string } } }): void => {
      if (c.vm.spec.id !== id || c.vm.status.phase !== phase) return;
      manager.off('change', onChange);
      resolve();
    };
    manager.on('change', onChange);
  });
}
