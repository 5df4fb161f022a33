/**
 * vmlet's phases in KubeVirt's words: the VirtualMachine's printable status (`kubevirt_vm_info`
 * `status`, `status_group`) and the VirtualMachineInstance's phase (`kubevirt_vmi_info` `phase`).
 * Pure.
 */
import type { Phase } from '../model/vm.js';

/**
 * The printable status KubeVirt would show, lower-cased as in `kubevirt_vm_info`; undefined for
 * an Incoming VM, which the source node still reports (one VM, one series, as KubeVirt's single
 * controller shows it). A Failed VM's QEMU is gone and nothing restarts it: KubeVirt shows a VM
 * whose VMI ended and is not restarted as Stopped.
 */
const VM_STATUS: Record<Phase, string | undefined> = {
  Pending: 'stopped',
  Starting: 'starting',
  Running: 'running',
  Paused: 'paused',
  Stopping: 'stopping',
  Stopped: 'stopped',
  Migrating: 'migrating',
  Incoming: undefined,
  Failed: 'stopped',
  Deleting: 'terminating',
};

export function vmStatus(phase: Phase): string | undefined {
  return VM_STATUS[phase];
}

export type StatusGroup = 'starting' | 'running' | 'migrating' | 'non_running' | 'error';

/** KubeVirt's groups of printable statuses (virt-controller's vmstats collector). */
const GROUPS: Record<StatusGroup, readonly string[]> = {
  starting: ['provisioning', 'starting', 'waitingforvolumebinding'],
  running: ['running'],
  migrating: ['migrating'],
  non_running: ['stopped', 'paused', 'stopping', 'terminating'],
  error: ['crashloopbackoff', 'unknown', 'errorunschedulable', 'errimagepull', 'imagepullbackoff', 'errorpvcnotfound', 'datavolumeerror'],
};

export const STATUS_GROUPS = Object.keys(GROUPS) as StatusGroup[];

export function statusGroup(status: string): StatusGroup | '<unknown>' {
  for (const group of STATUS_GROUPS) if (GROUPS[group].includes(status)) return group;
  return '<unknown>';
}

/**
 * The VMI phase KubeVirt would show, lower-cased as in `kubevirt_vmi_info`; undefined when
 * KubeVirt would have no VMI (never started, stopped, or the target side of a migration, which
 * the source reports until the handover). A VMI stays `running` while paused, stopping or
 * migrating, as in KubeVirt.
 */
const VMI_PHASE: Record<Phase, string | undefined> = {
  Pending: undefined,
  Starting: 'scheduled',
  Running: 'running',
  Paused: 'running',
  Stopping: 'running',
  Stopped: undefined,
  Migrating: 'running',
  Incoming: undefined,
  Failed: 'failed',
  Deleting: undefined,
};

export function vmiPhase(phase: Phase): string | undefined {
  return VMI_PHASE[phase];
}

/**
 * The VMI phase a run of the VM is in, as KubeVirt names it in its phase-transition histograms:
 * a run begins when the VM enters Starting (KubeVirt's VMI is then Scheduled) and ends Succeeded
 * (Stopped) or Failed. undefined: no run (Pending, Incoming, whose run goes on from the source's,
 * and Deleting, which after a migration is the source handing over, not the guest ending).
 */
const RUN_PHASE: Record<Phase, 'Scheduled' | 'Running' | 'Succeeded' | 'Failed' | undefined> = {
  Pending: undefined,
  Starting: 'Scheduled',
  Running: 'Running',
  Paused: 'Running',
  Stopping: 'Running',
  Stopped: 'Succeeded',
  Migrating: 'Running',
  Incoming: undefined,
  Failed: 'Failed',
  Deleting: undefined,
};

export function runPhase(phase: Phase): 'Scheduled' | 'Running' | 'Succeeded' | 'Failed' | undefined {
  return RUN_PHASE[phase];
}
