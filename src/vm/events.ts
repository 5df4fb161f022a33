import type { Phase, Vm } from './types.js';

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
