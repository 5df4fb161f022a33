/**
 * The ports of the domain: everything VmManager and the migration code need of the machine,
 * declared here in the domain's words and implemented by the drivers (state/, net/, storage/,
 * qemu/). daemon.ts hands the implementations in; tests hand in fakes.
 */
import type { GuestFigures } from '../model/guest-figures.js';
import type { DiskStatus, GuestInfo, NicSpec, NicStatus, VmPaths, VmSpec, VmStatus } from '../model/vm.js';
import type { DiskExport, MachineEvent, MetricsQuery, MigrationCapabilities, MigrationProgress, RunState, ShutdownCause, StreamTls } from '../model/machine.js';

/** The uid and gid a VM's QEMU runs as, and that own its files and TAPs. */
export interface Owner {
  uid: number;
  gid: number;
}

/** A VM's spec and status as found on disk; the status is missing when no copy could be read. */
export interface StoredVm {
  spec: VmSpec;
  status?: VmStatus;
}

/** A VM directory whose spec file exists but cannot be read or parsed. */
export interface UnreadableVm {
  id: string;
  /** What is wrong with the spec file. */
  reason: string;
  /** Its status, when one copy of it could be read. */
  status?: VmStatus;
}

/** Durable VM state (state/store.ts). */
export interface Store {
  init(): Promise<void>;
  paths(id: string): VmPaths;
  loadAll(): Promise<{ vms: StoredVm[]; unfinished: string[]; unreadable: UnreadableVm[] }>;
  /** Moves a VM's directory whole out of the way (never deletes it); returns where it went. */
  quarantine(id: string, at: Date): Promise<string>;
  /** Writes a new VM's status and spec; the spec file last, so it marks a complete VM. */
  create(spec: VmSpec, status: VmStatus): Promise<void>;
  saveSpec(spec: VmSpec): Promise<void>;
  /** The durable copy, which outlives a node reboot. */
  saveStatus(id: string, status: VmStatus): Promise<void>;
  /** The durable copy, fsynced with its directory before it resolves; rejects when it cannot be written. */
  commitStatus(id: string, status: VmStatus): Promise<void>;
  /** The live copy on the run dir's tmpfs, written synchronously. */
  saveLiveStatus(id: string, status: VmStatus): void;
  /** Every file of the VM, spec first. */
  remove(id: string): Promise<void>;
}

/** TAPs on Linux bridges (net/). */
export interface Network {
  /** The MAC a NIC gets: the caller's, or a stable one derived from VM id and NIC name. */
  macOf(vmId: string, nic: NicSpec): string;
  /** FAILED_PRECONDITION unless the bridge exists and is a bridge. */
  checkBridge(name: string): Promise<void>;
  /** One TAP on its bridge, up, owned by the VM's QEMU user; `taken` are TAP names other VMs hold. */
  plug(vm: { id: string; vcpus: number; owner?: Owner }, nic: NicSpec, port: number, taken: ReadonlySet<string>): Promise<NicStatus>;
  /** Removes the TAPs; a TAP already gone is fine. */
  unplug(nics: readonly NicStatus[]): Promise<void>;
  /** vmlet-named TAPs on the node that are not in `held`. */
  strayTaps(held: ReadonlySet<string>): Promise<string[]>;
}

/** Disk images and boot files under the image roots (storage/). */
export interface Storage {
  /** Checks every path of the spec and makes the per-VM overlays; returns what QEMU opens, in spec order. */
  prepareDisks(spec: VmSpec, paths: VmPaths): Promise<DiskStatus[]>;
  /**
   * The files QEMU opens from the VM's state dir besides disks (UEFI variables store, cloud-init
   * seed): made when missing, the seed remade when the spec's cloud_init changed; handed to `owner`.
   */
  prepareVmFiles(spec: VmSpec, paths: VmPaths, owner?: Owner): Promise<void>;
  /** Hands the VM's state dir and overlays to its QEMU user; base images stay as they are (read-only to it). */
  own(paths: VmPaths, disks: readonly DiskStatus[], owner: Owner): Promise<void>;
  /** Kernel and initrd are still under the image roots. */
  checkBootFiles(spec: VmSpec): Promise<void>;
}

/** What a QEMU is started with, beyond the spec. */
export interface LaunchRequest {
  spec: VmSpec;
  paths: VmPaths;
  disks: DiskStatus[];
  nics: NicStatus[];
  /** pcie-root-ports for NICs (boot NICs that sit on ports, and hotplug spares). */
  pciPorts: number;
  /** NIC name → the root port it sits on; other NICs sit on pcie.0. */
  nicPorts: Readonly<Record<string, number>>;
  /** Migration target: QEMU waits for the incoming stream. */
  incoming?: boolean;
  /** Who QEMU runs as (without capabilities); absent: root. */
  owner?: Owner;
}

/** Starting and finding QEMU processes (qemu/). */
export interface Hypervisor {
  readonly accelerator: string;
  /** Spawns QEMU (paused, in its own session) and returns once its QMP socket is connected. */
  launch(request: LaunchRequest): Promise<Machine>;
  /** Connects to a QEMU that already runs (adoption after a vmlet restart). */
  adopt(pid: number, paths: VmPaths): Promise<Machine>;
  /** True when pid is alive and is the QEMU of this VM. */
  isQemuOf(pid: number, id: string): Promise<boolean>;
  isAlive(pid: number): Promise<boolean>;
  /** SIGKILL and wait until the process is gone. */
  kill(pid: number): Promise<void>;
  /** The last of what QEMU wrote to stderr. */
  logTail(paths: VmPaths, maxBytes: number): Promise<string>;
  /**
   * What a running QEMU's command line and process say of its VM (NICs and their TAPs, disks,
   * accelerator, root ports, uid): the status of a VM whose status files were lost.
   */
  recover(pid: number, spec: VmSpec): Promise<Partial<VmStatus>>;
  /** QEMUs of this node's run dir, by VM id. */
  running(): Promise<{ pid: number; id: string }[]>;
  /** Removes the sockets and pid file a QEMU leaves in the run dir. */
  clearRunFiles(paths: VmPaths): Promise<void>;
}

/** One running QEMU and its monitor connection. */
export interface Machine {
  readonly pid: number;
  /** Resolves when the monitor reaches EOF (QEMU exited), never when vmlet detaches. */
  readonly exited: Promise<void>;
  /** Set when QEMU announced why it is going away. */
  readonly shutdown: ShutdownCause | undefined;
  readonly closed: boolean;
  /** Settles when the monitor handshake is done; rejects with QEMU's own words if QEMU exits first. */
  ready(): Promise<void>;
  onEvent(listener: (event: MachineEvent) => void): void;
  /** Waits for EOF and the pid to go, within the deadline. True if it exited. */
  waitExit(timeoutMs: number): Promise<boolean>;
  /** Lets go of QEMU without affecting it. */
  detach(): void;
  /**
   * Follows the QEMU guest agent in the background until QEMU exits or vmlet detaches: `onInfo`
   * on every (re)connect, every 10 s while connected, and once when the agent is lost.
   */
  watchGuest(onInfo: (info: GuestInfo) => void): void;
  /** The guest agent's last figures for metrics (file systems, load, architecture) while it answers; no I/O. */
  guestFigures(): GuestFigures | undefined;
  /** Asks the connected guest agent to power the guest off; false when no agent is connected. */
  guestShutdown(): Promise<boolean>;

  run(): Promise<void>;
  pause(): Promise<void>;
  reset(): Promise<void>;
  powerDown(timeoutMs: number): Promise<void>;
  quit(timeoutMs: number): Promise<void>;
  runState(): Promise<RunState>;
  /** netdev + device on a free root port; undone if the device cannot be added. */
  plugNic(nic: NicStatus, vcpus: number, port: number): Promise<void>;
  /** Asks the guest to release the NIC and waits for it (DEADLINE_EXCEEDED), then drops its netdev. */
  unplugNic(name: string, timeoutMs: number): Promise<void>;
  /** Read-only queries for metrics, bounded by timeoutMs. */
  query<T>(what: MetricsQuery, timeoutMs: number): Promise<T>;

  // Live migration, both sides.
  /**
   * Puts the migration stream and NBD (exports on the target, the mirror's client on the source)
   * under TLS with the node's certificate, copied where QEMU, running as `owner`, can read it.
   */
  secureStreams(tls: StreamTls, owner: Owner | undefined): Promise<void>;

  // Live migration, source side.
  /** Mirrors a disk's top layer to an NBD export and waits until the mirror is in sync (or the signal aborts). */
  mirrorDisk(target: DiskExport, signal: AbortSignal): Promise<void>;
  /** At the switch-over: completes the mirrors without pivoting, so the target holds an exact copy. */
  finishMirrors(disks: readonly string[]): Promise<void>;
  /** Drops mirror jobs and their NBD nodes; those already gone are fine. */
  abandonMirrors(disks: readonly string[]): Promise<void>;
  setMigrationCapabilities(capabilities: MigrationCapabilities): Promise<void>;
  setMigrationLimits(limits: { maxBandwidthBytesPerSecond?: number; downtimeLimitMs?: number }): Promise<void>;
  migrate(uri: string): Promise<void>;
  migrationProgress(): Promise<MigrationProgress>;
  /** Resolves at the next migration status change, or after `ms`. */
  nextMigrationEvent(ms: number): Promise<void>;
  continueAfterSwitchover(): Promise<void>;
  startPostcopy(): Promise<void>;
  /** migrate_cancel, then waits (bounded) until QEMU no longer migrates. */
  cancelMigration(): Promise<void>;

  // Live migration, target side.
  /** Serves the named disks over NBD on host:port, writable while the migration lasts. */
  exportDisks(host: string, port: number, disks: readonly string[]): Promise<DiskExport[]>;
  stopExports(): Promise<void>;
  listenForMigration(uri: string): Promise<void>;
  /** Waits until the incoming stream is complete; ABORTED if it failed. */
  incomingComplete(timeoutMs: number): Promise<void>;
}

/** A cgroup of its own for each VM's QEMU, outside vmlet's (cgroup/). */
export interface Cells {
  /** Creates the VM's cgroup with the limits its spec implies, at a start-up CPU weight above any guest's; returns its path. */
  create(spec: VmSpec): Promise<string>;
  /** Gives the cell its spec's CPU weight: once its QEMU is initialised, or adopted. */
  settle(path: string, spec: VmSpec): Promise<void>;
  /** Moves QEMU in (before it runs guest code). */
  enter(path: string, pid: number): Promise<void>;
  /** How many processes the kernel OOM-killed in the cell. */
  oomKills(path: string): Promise<number>;
  /** Removes the cell; fine when it is already gone. */
  remove(path: string): Promise<void>;
  /** Cells of VMs that are not in `keep`, to sweep at startup. */
  stray(keep: ReadonlySet<string>): Promise<string[]>;
}

/** Wall-clock time, so tests can hold it. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
