/**
 * The `kubevirt_vm_*` family that KubeVirt's virt-controller exports for every VirtualMachine,
 * made by vmlet for every VM of the node, stopped ones included. Pure.
 */
import type { Labels } from './exposition.js';
import type { SeriesKey } from './kubevirt-series.js';
import { statusGroup, vmStatus, type StatusGroup } from './kubevirt-status.js';
import type { DiskSize } from './disk-size.js';

/** What the family needs of a VM. */
export interface VmFacts {
  id: string;
  namespace: string;
  labels: Readonly<Record<string, string>>;
  phase: Parameters<typeof vmStatus>[0];
  vcpus: number;
  memoryBytes: number;
  /** The VM's hard CPU cap in cores, when it has one. */
  cpuLimitCores?: number;
  /** ISO times from the status. */
  createdAt: string;
  lastTransitionAt: string;
  /** By disk name; a disk whose size could not be read is left out. */
  diskSizes: ReadonlyMap<string, DiskSize>;
}

export interface FamilySample {
  key: SeriesKey;
  labels: Labels;
  value: number;
}

/**
 * KubeVirt's "nothing to say" for labels vmlet has no concept of: the empty string, which
 * Prometheus treats as an absent label (virt-controller's `none`).
 */
export const NONE = '';

/** vmlet's QEMU machine (qemu/argv.ts starts every VM with `-machine q35`). */
export const MACHINE_TYPE = 'q35';

/**
 * KubeVirt reads os, workload and flavor from `vm.kubevirt.io/<x>` annotations; a vmlet VM has
 * labels only, so the same keys are read from its labels.
 */
export function systemInfo(labels: Readonly<Record<string, string>>): { os: string; workload: string; flavor: string } {
  return {
    os: labels['vm.kubevirt.io/os'] ?? NONE,
    workload: labels['vm.kubevirt.io/workload'] ?? NONE,
    flavor: labels['vm.kubevirt.io/flavor'] ?? NONE,
  };
}

const SINCE: Record<StatusGroup, SeriesKey> = {
  starting: 'vmStartingSince',
  running: 'vmRunningSince',
  migrating: 'vmMigratingSince',
  non_running: 'vmNonRunningSince',
  error: 'vmErrorSince',
};

const seconds = (iso: string): number => Math.floor(Date.parse(iso) / 1000);

/** Every kubevirt_vm_* sample of one VM; none for a VM KubeVirt's controller would not show here. */
export function vmFamilySamples(vm: VmFacts): FamilySample[] {
  const status = vmStatus(vm.phase);
  if (status === undefined) return [];
  const group = statusGroup(status);
  const id = { name: vm.id, namespace: vm.namespace };
  const out: FamilySample[] = [];
  const add = (key: SeriesKey, labels: Labels, value: number): void => {
    out.push({ key, labels, value });
  };
  add('vmInfo', { ...id, ...systemInfo(vm.labels), machine_type: MACHINE_TYPE, instance_type: NONE, preference: NONE, status, status_group: group }, 1);
  // -smp N: N sockets of one core with one thread each.
  add('vmResourceRequests', { ...id, resource: 'cpu', unit: 'cores', source: 'domain' }, 1);
  add('vmResourceRequests', { ...id, resource: 'cpu', unit: 'threads', source: 'domain' }, 1);
  add('vmResourceRequests', { ...id, resource: 'cpu', unit: 'sockets', source: 'domain' }, vm.vcpus);
  add('vmResourceRequests', { ...id, resource: 'cpu', unit: 'cores', source: 'guest_effective' }, vm.vcpus);
  add('vmResourceRequests', { ...id, resource: 'memory', unit: 'bytes', source: 'guest' }, vm.memoryBytes);
  add('vmResourceRequests', { ...id, resource: 'memory', unit: 'bytes', source: 'guest_effective' }, vm.memoryBytes);
  if (vm.cpuLimitCores) add('vmResourceLimits', { ...id, resource: 'cpu', unit: 'cores' }, vm.cpuLimitCores);
  // One series per group, as KubeVirt: the current group's holds when it was entered, the others 0.
  const since = SINCE[group as StatusGroup] ?? 'vmErrorSince';
  for (const key of Object.values(SINCE)) add(key, id, key === since ? seconds(vm.lastTransitionAt) : 0);
  add('vmCreated', id, seconds(vm.createdAt));
  for (const [device, size] of vm.diskSizes) {
    add('vmDiskAllocated', { ...id, persistentvolumeclaim: NONE, volume_mode: size.volumeMode, device }, size.bytes);
  }
  return out;
}
