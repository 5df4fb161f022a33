import type { CapacityPolicy } from '../capacity.js';
import type { Clock, Hypervisor, Network, Storage, Store } from '../ports.js';
import type { VmRegistry } from '../registry.js';

/** Node-wide settings the operations read. */
export interface DomainSettings {
  capacity: CapacityPolicy;
  defaultStopGraceSeconds: number;
  /** When non-empty, NICs may only name these bridges. */
  allowedBridges: readonly string[];
}

/** What every operation works with: the VMs, the ports and the settings. */
export interface OpEnv {
  vms: VmRegistry;
  store: Store;
  network: Network;
  storage: Storage;
  hypervisor: Hypervisor;
  clock: Clock;
  settings: DomainSettings;
}
