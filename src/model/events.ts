import type { Phase, Vm } from './vm.js';

export type VmEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface VmChange {
  type: VmEventType;
  vm: Vm;
}

export interface PhaseTransition {
  id: string;
  from: Phase;
  to: Phase;
  reason: string;
  /** Time spent in `from`. */
  seconds: number;
}

export type OperationName = 'create' | 'start' | 'stop' | 'pause' | 'resume' | 'reboot' | 'delete';

/** A VM operation finished (metrics: vmlet_operation_duration_seconds). */
export interface OperationDone {
  id: string;
  operation: OperationName;
  /** `ok`, or the error code (`FAILED_PRECONDITION`, …; `INTERNAL` for anything else). */
  result: string;
  /** From the call to the end, time in the VM's queue included. */
  seconds: number;
}

/** A VM directory whose spec could not be read, moved aside at startup (metrics: vmlet_vm_quarantined_total). */
export interface Quarantined {
  id: string;
  /** Where the directory went; empty when it could not be moved and stays where it was. */
  path: string;
  reason: string;
}

/** QEMU said the guest panicked (GUEST_PANICKED): metrics count it (kubevirt_vmi_guest_os_panic_total). */
export interface GuestPanic {
  id: string;
  /** The event's `data` as QEMU sent it (`action`, and `info` for Hyper-V/s390/TDX guests). */
  detail: Record<string, unknown>;
}
