import type { Timestamp } from './generated/google/protobuf/Timestamp.js';
import type { Phase as ProtoPhase } from './generated/vmlet/v1/Phase.js';
import type { Vm as ProtoVm } from './generated/vmlet/v1/Vm.js';
import type { VmSpec as ProtoVmSpec, VmSpec__Output } from './generated/vmlet/v1/VmSpec.js';
import type { VmSpec, Vm, Phase, RunStrategy, WatchdogAction } from '../../model/vm.js';
import type { Nic__Output } from './generated/vmlet/v1/Nic.js';
import type { DiskBus, DiskSpec, Firmware, NicModel, NicSpec } from '../../model/vm.js';
import type { Nic as ProtoNic } from './generated/vmlet/v1/Nic.js';
import type { NicModel as ProtoNicModel } from './generated/vmlet/v1/NicModel.js';
import type { DiskBus as ProtoDiskBus } from './generated/vmlet/v1/DiskBus.js';
import type { Firmware__Output } from './generated/vmlet/v1/Firmware.js';
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

const NIC_MODEL_FROM_PROTO: Record<string, NicModel | undefined> = { NIC_MODEL_VIRTIO: 'virtio', NIC_MODEL_E1000E: 'e1000e', NIC_MODEL_VMXNET3: 'vmxnet3' };
const NIC_MODEL_TO_PROTO: Record<NicModel, ProtoNicModel> = { virtio: 'NIC_MODEL_VIRTIO', e1000e: 'NIC_MODEL_E1000E', vmxnet3: 'NIC_MODEL_VMXNET3' };
const BUS_FROM_PROTO: Record<string, DiskBus | undefined> = { DISK_BUS_VIRTIO: 'virtio', DISK_BUS_SCSI: 'scsi', DISK_BUS_SATA: 'sata' };
const BUS_TO_PROTO: Record<DiskBus, ProtoDiskBus> = { virtio: 'DISK_BUS_VIRTIO', scsi: 'DISK_BUS_SCSI', sata: 'DISK_BUS_SATA' };

/** Proto → domain: an unspecified model is left out (virtio). */
export function nicFromProto(n: Pick<Nic__Output, 'name' | 'bridge' | 'mac'> & { model?: string | null }): NicSpec {
  const model = n.model ? NIC_MODEL_FROM_PROTO[n.model] : undefined;
  return { name: n.name, bridge: n.bridge, mac: n.mac, ...(model ? { model } : {}) };
}

export function nicToProto(n: NicSpec): ProtoNic {
  return { name: n.name, bridge: n.bridge, mac: n.mac, model: n.model ? NIC_MODEL_TO_PROTO[n.model] : 'NIC_MODEL_UNSPECIFIED' };
}

function firmwareFromProto(f: Firmware__Output | null | undefined): Firmware | undefined {
  if (!f || f.type === 'FIRMWARE_TYPE_UNSPECIFIED') return f?.secureBoot ? { type: 'bios', secureBoot: true } : undefined;
  return { type: f.type === 'FIRMWARE_TYPE_UEFI' ? 'uefi' : 'bios', secureBoot: f.secureBoot };
}

/** Proto → domain, before validation: an empty format is left out (detected at create); another is validation's to refuse. */
export function diskFromProto(d: Disk__Output): DiskSpec {
  const bus = d.bus ? BUS_FROM_PROTO[d.bus] : undefined;
  return {
    name: d.name,
    imagePath: d.imagePath,
    overlay: d.overlay,
    readonly: d.readonly,
    ...(d.format ? { format: d.format as DiskSpec['format'] } : {}),
    ...(bus ? { bus } : {}),
    ...(d.bootOrder ? { bootOrder: d.bootOrder } : {}),
    ...(d.cdrom ? { cdrom: true } : {}),
  };
}

/** Domain → proto: an absent format is sent as empty. */
export function diskToProto(d: DiskSpec): ProtoDisk {
  return {
    name: d.name,
    imagePath: d.imagePath,
    overlay: d.overlay,
    readonly: d.readonly,
    format: d.format ?? '',
    bus: d.bus ? BUS_TO_PROTO[d.bus] : 'DISK_BUS_UNSPECIFIED',
    bootOrder: d.bootOrder ?? 0,
    cdrom: d.cdrom === true,
  };
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
    ...withFirmware(firmwareFromProto(spec.firmware)),
    ...(spec.cloudInit ? { cloudInit: { userData: spec.cloudInit.userData, metaData: spec.cloudInit.metaData, networkConfig: spec.cloudInit.networkConfig } } : {}),
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

const withFirmware = (firmware: Firmware | undefined): { firmware?: Firmware } => (firmware ? { firmware } : {});

export function specToProto(spec: VmSpec): ProtoVmSpec {
  return {
    id: spec.id,
    labels: spec.labels,
    vcpus: spec.vcpus,
    memoryMib: spec.memoryMib,
    kernel: spec.kernel ?? null,
    disks: spec.disks.map(diskToProto),
    nics: spec.nics.map(nicToProto),
    cpuLimitMillicores: spec.cpuLimitMillicores ?? 0,
    runStrategy: RUN_STRATEGY_TO_PROTO[spec.runStrategy ?? 'Manual'] as ProtoVmSpec['runStrategy'],
    watchdog: spec.watchdog ? { action: WATCHDOG_TO_PROTO[spec.watchdog.action] as never } : null,
    firmware: spec.firmware ? { type: spec.firmware.type === 'uefi' ? 'FIRMWARE_TYPE_UEFI' : 'FIRMWARE_TYPE_BIOS', secureBoot: spec.firmware.secureBoot } : null,
    cloudInit: spec.cloudInit ?? null,
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
      guest: s.guest ?? null,
    },
  };
}
