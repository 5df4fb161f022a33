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
}

export interface NicSpec {
  name: string;
  bridge: string;
  /** Empty when the caller left it to vmlet. */
  mac: string;
}

export interface VmSpec {
  id: string;
  labels: Record<string, string>;
  vcpus: number;
  memoryMib: number;
  kernel?: KernelBoot;
  disks: DiskSpec[];
  nics: NicSpec[];
}

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
}

export interface DiskStatus {
  name: string;
  /** The file QEMU opens. */
  path: string;
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
  createdAt: string;
  startedAt?: string;
  stoppedAt?: string;
  lastTransitionAt: string;
  generation: number;
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
  consoleLog: string;
  pidFile: string;
  qemuLog: string;
}
