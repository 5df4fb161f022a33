import type { Timestamp } from './generated/google/protobuf/Timestamp.js';
import type { Phase as ProtoPhase } from './generated/vmlet/v1/Phase.js';
import type { Vm as ProtoVm } from './generated/vmlet/v1/Vm.js';
import type { VmSpec as ProtoVmSpec, VmSpec__Output } from './generated/vmlet/v1/VmSpec.js';
import type { VmSpec, Vm, Phase, RunStrategy, WatchdogAction } from '../../model/vm.js';
import type { Nic__Output } from './generated/vmlet/v1/Nic.js';
import type { DiskSpec, NicSpec } from '../../model/vm.js';
import type { Disk as ProtoDisk, Disk__Output } from './generated/vmlet/v1/Disk.js';

const PHASE_TO_PROTO: Record<Phase, ProtoPhase> = {
  Pending: 'PHASE_PENDING',
  Starting: 'PHASE_STARTING',
  Running: 'PHASE_RUNNING',
  Paused: 'PHASE_PAUSED',
  Stopping: 'PHASE_STOPPING',
  Stopped: 'PHASE_STOPPED',
  Migrating: 'PHASE_MIGRATING',
  Incoming: 'PHASE_INCOMING',
  Failed: 'PHASE_FAILED',
  Deleting: 'PHASE_DELETING',
};

const phaseToProto = (p: Phase): ProtoPhase => PHASE_TO_PROTO[p];

export function timestamp(iso: string | undefined): Timestamp | null {
  if (!iso) return null;
  const ms = Date.parse(iso);
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}

export function nicFromProto(n: Nic__Output): NicSpec {
  return { name: n.name, bridge: n.bridge, mac: n.mac };
}

/** Proto → domain, before validation: an empty format is left out (detected at create); another is validation's to refuse. */
export function diskFromProto(d: Disk__Output): DiskSpec {
  return { name: d.name, imagePath: d.imagePath, overlay: d.overlay, readonly: d.readonly, ...(d.format ? { format: d.format as DiskSpec['format'] } : {}) };
}

/** Domain → proto: an absent format is sent as empty. */
export function diskToProto(d: DiskSpec): ProtoDisk {
  return { name: d.name, imagePath: d.imagePath, overlay: d.overlay, readonly: d.readonly, format: d.format ?? '' };
}

/** Proto → domain, before validation (proto3 gives defaults for absent fields). */
export function specFromProto(s: VmSpec__Output | null | undefined): VmSpec {
  const spec = s ?? ({} as Partial<VmSpec__Output>);
  return {
    id: spec.id ?? '',
    labels: { ...(spec.labels ?? {}) },
    vcpus: spec.vcpus ?? 0,
    memoryMib: Number(spec.memoryMib ?? 0),
    ...(spec.kernel ? { kernel: { kernelPath: spec.kernel.kernelPath, initrdPath: spec.kernel.initrdPath, cmdline: spec.kernel.cmdline } } : {}),
    disks: (spec.disks ?? []).map(diskFromProto),
    nics: (spec.nics ?? []).map(nicFromProto),
    ...(spec.cpuLimitMillicores ? { cpuLimitMillicores: spec.cpuLimitMillicores } : {}),
    ...runStrategyFromProto(spec.runStrategy),
    ...(spec.watchdog ? { watchdog: { action: WATCHDOG_FROM_PROTO[spec.watchdog.action] ?? ('unspecified' as WatchdogAction) } } : {}),
  };
}

const RUN_STRATEGY_FROM_PROTO: Record<string, RunStrategy> = {
  RUN_STRATEGY_MANUAL: 'Manual',
  RUN_STRATEGY_ALWAYS: 'Always',
  RUN_STRATEGY_RERUN_ON_FAILURE: 'RerunOnFailure',
  RUN_STRATEGY_HALTED: 'Halted',
};
const RUN_STRATEGY_TO_PROTO: Record<RunStrategy, string> = {
  Manual: 'RUN_STRATEGY_MANUAL',
  Always: 'RUN_STRATEGY_ALWAYS',
  RerunOnFailure: 'RUN_STRATEGY_RERUN_ON_FAILURE',
  Halted: 'RUN_STRATEGY_HALTED',
};
const WATCHDOG_FROM_PROTO: Record<string, WatchdogAction> = { WATCHDOG_ACTION_RESET: 'reset', WATCHDOG_ACTION_POWEROFF: 'poweroff', WATCHDOG_ACTION_SHUTDOWN: 'shutdown' };
const WATCHDOG_TO_PROTO: Record<WatchdogAction, string> = { reset: 'WATCHDOG_ACTION_RESET', poweroff: 'WATCHDOG_ACTION_POWEROFF', shutdown: 'WATCHDOG_ACTION_SHUTDOWN' };

/** Unspecified (or a number the enum does not know yet) is Manual, which is also what absent means. */
function runStrategyFromProto(value: string | number | undefined): { runStrategy?: RunStrategy } {
  const strategy = typeof value === 'string' ? RUN_STRATEGY_FROM_PROTO[value] : undefined;
  return strategy && strategy !== 'Manual' ? { runStrategy: strategy } : {};
}

export function specToProto(spec: VmSpec): ProtoVmSpec {
  return {
    id: spec.id,
    labels: spec.labels,
    vcpus: spec.vcpus,
    memoryMib: spec.memoryMib,
    kernel: spec.kernel ?? null,
    disks: spec.disks.map(diskToProto),
    nics: spec.nics,
    cpuLimitMillicores: spec.cpuLimitMillicores ?? 0,
    runStrategy: RUN_STRATEGY_TO_PROTO[spec.runStrategy ?? 'Manual'] as ProtoVmSpec['runStrategy'],
    watchdog: spec.watchdog ? { action: WATCHDOG_TO_PROTO[spec.watchdog.action] as never } : null,
  };
}

export function vmToProto(vm: Vm, node: string): ProtoVm {
  const s = vm.status;
  return {
    spec: specToProto(vm.spec),
    status: {
      phase: phaseToProto(s.phase),
      reason: s.reason,
      pid: s.pid,
      nics: s.nics.map((n) => ({ name: n.name, tap: n.tap, mac: n.mac, bridge: n.bridge, pciPort: n.port ?? 0 })),
      disks: s.disks,
      createdAt: timestamp(s.createdAt),
      startedAt: timestamp(s.startedAt),
      stoppedAt: timestamp(s.stoppedAt),
      lastTransitionAt: timestamp(s.lastTransitionAt),
      accelerator: s.accelerator,
      node,
      generation: s.generation,
      uid: s.uid ?? 0,
      cgroup: s.cgroup ?? '',
      restartCount: s.restartCount ?? 0,
      nextRestartAt: s.nextRestartAt ? timestamp(s.nextRestartAt) : null,
    },
  };
}
