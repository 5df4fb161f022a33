import { VmletError } from '../model/errors.js';

export interface Resources {
  cpus: number;
  memoryMib: number;
}

export interface CapacityPolicy {
  capacity: Resources;
  reserved: Resources;
  cpuOvercommit: number;
  memoryOvercommit: number;
}

export function allocatable(p: CapacityPolicy): Resources {
  return {
    cpus: Math.max(0, p.capacity.cpus - p.reserved.cpus),
    memoryMib: Math.max(0, p.capacity.memoryMib - p.reserved.memoryMib),
  };
}

/** Throws RESOURCE_EXHAUSTED when `request` on top of `allocated` exceeds allocatable × overcommit. */
export function checkFits(p: CapacityPolicy, allocated: Resources, request: Resources, id: string): void {
  const free = allocatable(p);
  const cpuLimit = Math.floor(free.cpus * p.cpuOvercommit);
  const memLimit = Math.floor(free.memoryMib * p.memoryOvercommit);
  if (allocated.cpus + request.cpus > cpuLimit) {
    throw new VmletError(
      'RESOURCE_EXHAUSTED',
      `VM ${id} needs ${request.cpus} vCPUs but only ${Math.max(0, cpuLimit - allocated.cpus)} of ${cpuLimit} are free on this node (allocatable ${free.cpus} CPUs × overcommit ${p.cpuOvercommit})`,
    );
  }
  if (allocated.memoryMib + request.memoryMib > memLimit) {
    throw new VmletError(
      'RESOURCE_EXHAUSTED',
      `VM ${id} needs ${request.memoryMib} MiB but only ${Math.max(0, memLimit - allocated.memoryMib)} of ${memLimit} MiB are free on this node (allocatable ${free.memoryMib} MiB × overcommit ${p.memoryOvercommit})`,
    );
  }
}
