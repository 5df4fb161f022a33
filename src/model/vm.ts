/** Domain types of a VM. The proto types (api/grpc/generated) are the API; these are what the code works with. */

export interface KernelBoot {
  kernelPath: string;
  initrdPath: string;
  cmdline: string;
}

export interface DiskSpec {
  name: string;
  imagePath: string;
  overlay: boolean;
  readonly: boolean;
  /**
   * The format of imagePath, which QEMU is always told. Absent: vmlet reads it from the file's
   * header at create (qcow2 magic, else raw) and records it in the status (docs/disk-formats.md).
   */
  format?: 'raw' | 'qcow2';
  /** The bus the guest sees; absent: virtio. Only virtio runs yet (the cloud-images issue adds the others). */
  bus?: DiskBus;
  /** Position in the boot order, 1 first; absent or 0: none. */
  bootOrder?: number;
  /** A CD-ROM drive (ide-cd on SATA) with the image as its medium; always read-only. */
  cdrom?: boolean;
}

export const DISK_BUSES = ['virtio', 'scsi', 'sata'] as const;
export type DiskBus = (typeof DISK_BUSES)[number];

export const NIC_MODELS = ['virtio', 'e1000e', 'vmxnet3'] as const;
/** The NIC's device: virtio-net, or QEMU's emulation of an Intel 82574L or a VMware VMXNET3. */
export type NicModel = (typeof NIC_MODELS)[number];

export interface NicSpec {
  name: string;
  bridge: string;
  /** Empty when the caller left it to vmlet. */
  mac: string;
  /** Absent: virtio. */
  model?: NicModel;
}

export interface Firmware {
  type: 'bios' | 'uefi';
  secureBoot: boolean;
}

export interface VmSpec {
  id: string;
  labels: Record<string, string>;
  vcpus: number;
  memoryMib: number;
  kernel?: KernelBoot;
  disks: DiskSpec[];
  nics: NicSpec[];
  /** Hard CPU cap in thousandths of a CPU; 0 (or absent): none. */
  cpuLimitMillicores?: number;
  /** What happens when QEMU exits; absent: Manual. */
  runStrategy?: RunStrategy;
  /** An i6300esb watchdog and what its expiry does. */
  watchdog?: { action: WatchdogAction };
  /** Absent: BIOS. */
  firmware?: Firmware;
  /** A cloud-init NoCloud seed, attached as a read-only virtio disk. */
  cloudInit?: CloudInit;
}

/** NoCloud's files, verbatim; an empty string is left to vmlet (meta-data) or left out (the others). */
export interface CloudInit {
  userData: string;
  metaData: string;
  networkConfig: string;
}

export const RUN_STRATEGIES = ['Manual', 'Always', 'RerunOnFailure', 'Halted'] as const;
export type RunStrategy = (typeof RUN_STRATEGIES)[number];
export const WATCHDOG_ACTIONS = ['reset', 'poweroff', 'shutdown'] as const;
export type WatchdogAction = (typeof WATCHDOG_ACTIONS)[number];

export const PHASES = [
  'Pending',
  'Starting',
  'Running',
  'Paused',
  'Stopping',
  'Stopped',
  'Migrating',
  'Incoming',
  'Failed',
  'Deleting',
] as const;
export type Phase = (typeof PHASES)[number];

/** Phases in which the VM holds node resources (a QEMU process exists or is being made). */
export const ACTIVE_PHASES: ReadonlySet<Phase> = new Set<Phase>([
  'Starting',
  'Running',
  'Paused',
  'Stopping',
  'Migrating',
  'Incoming',
]);

export interface NicStatus {
  name: string;
  tap: string;
  mac: string;
  bridge: string;
  /** The pcie-root-port (hotplug-<port>) the NIC sits on, so every NIC can be unplugged. */
  port?: number;
  /** The spec's model; absent: virtio. */
  model?: NicModel;
}

export interface DiskStatus {
  name: string;
  /** The file QEMU opens. */
  path: string;
  /** The format QEMU opens path with (`driver=`), decided at create: an overlay is qcow2. */
  format: 'raw' | 'qcow2';
}

/** Persisted while a VM takes part in a live migration, so a restarted vmlet can finish or roll back. */
export interface MigrationMarker {
  uid: string;
  role: 'source' | 'target';
  /** The other node's vmlet address (host:port). */
  peer: string;
  /** Source only: the target was told to run the guest; the source must never resume. */
  committed?: boolean;
  /** Source only: whether the guest ran before the migration (a paused VM stays paused). */
  wasRunning?: boolean;
  /** Target only: the source's certificate subjects; a caller with the peer role must present one. */
  peerSubjects?: string[];
}

export interface VmStatus {
  phase: Phase;
  reason: string;
  pid: number;
  nics: NicStatus[];
  disks: DiskStatus[];
  accelerator: string;
  /** pcie-root-ports QEMU was started with (NICs at start + spares for hotplug). */
  pciPorts?: number;
  migration?: MigrationMarker;
  /** The uid and gid QEMU runs as (allocated at create, freed on delete); absent: root. */
  uid?: number;
  /** The VM's cgroup while QEMU runs. */
  cgroup?: string;
  /** Restarts by the run strategy since the last StartVm (reset after 10 minutes running). */
  restartCount?: number;
  /** When the run strategy restarts the VM next. */
  nextRestartAt?: string;
  /** What the QEMU guest agent reports while QEMU runs; absent when it runs no more. */
  guest?: GuestInfo;
  /** StopVm was called: no run strategy restarts the VM until StartVm. */
  stopRequested?: boolean;
  createdAt: string;
  startedAt?: string;
  stoppedAt?: string;
  lastTransitionAt: string;
  generation: number;
}

/** What the QEMU guest agent says of the guest (guest-get-osinfo, -host-name, -network-get-interfaces). */
export interface GuestInfo {
  agentConnected: boolean;
  osName: string;
  osVersion: string;
  kernelRelease: string;
  hostname: string;
  interfaces: GuestInterface[];
}

export interface GuestInterface {
  name: string;
  mac: string;
  ipAddresses: string[];
}

export interface Vm {
  spec: VmSpec;
  status: VmStatus;
}

/** Where a VM's host files live (DESIGN.md "A VM on disk"). */
export interface VmPaths {
  stateDir: string;
  specFile: string;
  statusFile: string;
  /** The live copy of the status, next to QEMU's sockets (see StateStore.saveLiveStatus). */
  runtimeStatusFile: string;
  disksDir: string;
  runDir: string;
  qmpSocket: string;
  serialSocket: string;
  /** Where the target's QEMU listens for the migration stream, behind vmlet's gate. */
  migrationSocket: string;
  /** The serial output, written by vmlet in the state dir and rotated to `<consoleLog>.1` (console/rotating-log.ts). */
  consoleLog: string;
  pidFile: string;
  qemuLog: string;
  /** UEFI VMs: the VM's own copy of OVMF's variables store (boot entries, Secure Boot keys). */
  efiVars: string;
  /** The cloud-init NoCloud seed (an ISO 9660 volume labelled cidata) when the spec has cloud_init. */
  cloudInitSeed: string;
  /** The QEMU guest agent's virtio-serial channel, where QEMU listens. */
  guestAgentSocket: string;
}
