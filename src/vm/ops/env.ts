import type { CapacityPolicy } from '../capacity.js';
import type { Admission } from '../admission.js';
import type { Cells, Clock, Hypervisor, Network, Storage, Store } from '../ports.js';
import type { VmRecord, VmRegistry } from '../registry.js';

/** Node-wide settings the operations read. */
export interface DomainSettings {
  capacity: CapacityPolicy;
  defaultStopGraceSeconds: number;
  /** VMs this node holds at most (created and incoming); absent: DEFAULT_MAX_VMS. */
  maxVms?: number;
  /** When non-empty, NICs may only name these bridges. */
  allowedBridges: readonly string[];
  /** The uids (and gids) QEMUs run as, one per VM; absent: QEMU runs as root (--qemu-user root). */
  qemuUids?: { start: number; count: number };
  /** QEMU initialisations at a time (--max-parallel-starts); absent: no bound. */
  maxParallelStarts?: number;
}

/** What every operation works with: the VMs, the ports and the settings. */
export interface OpEnv {
  vms: VmRegistry;
  store: Store;
  network: Network;
  storage: Storage;
  hypervisor: Hypervisor;
  /** Absent: QEMUs share vmlet's cgroup. */
  cells?: Cells;
  clock: Clock;
  settings: DomainSettings;
  /** Uids handed to creates that have not recorded them yet. */
  reservedUids: Set<number>;
  /** Bounds the QEMU initialisations in flight (--max-parallel-starts); absent: no bound. */
  admission?: Admission;
  /** Told when a VM's QEMU went away outside an operation (the run strategy; see restart.ts). */
  afterExit?: (record: VmRecord, kind: 'poweroff' | 'failure', options?: { serial?: boolean }) => void;
}
