/**
 * VM spec → QEMU 7.2 command line. Pure: everything node-specific (accelerator, disk files,
 * TAP names, MACs, vhost-net) comes in through the plan.
 *
 * PCI layout (q35): disks, then boot-time NICs, as integrated endpoints on pcie.0 (QEMU assigns
 * slots in argv order, so the same plan gives the same layout: slot 1 upwards); then `hotplugPorts` spare
 * pcie-root-ports `hotplug-<i>` for NIC hotplug (devices on pcie.0 cannot be hot-plugged or
 * hot-unplugged on q35). A NIC listed in `nicPorts` sits on its root port instead: that is how a
 * migration target recreates the layout of a source whose NICs were hot-plugged. Last on pcie.0,
 * the virtio balloon `balloon0` (vmlet never inflates it; `query-balloon` and the guest's memory
 * statistics, reported every BALLOON_STATS_INTERVAL_SECONDS, feed the metrics), then the
 * virtio-serial controller of the guest agent's channel, and with any scsi disk, the root port
 * `scsi0-port` holding the virtio-scsi controller `scsi0` (its disks are scsi-hd targets 0, 1, …
 * in spec order). SATA disks and CD-ROMs use the AHCI controller q35 always has.
 */
import type { DiskStatus, NicModel, NicStatus, VmPaths, VmSpec } from '../model/vm.js';
import { ovmfFilesOf } from '../model/firmware.js';
import {
  BALLOON_DEVICE_ID,
  BALLOON_STATS_INTERVAL_SECONDS,
  diskDeviceId,
  diskFileNodeName,
  diskNodeName,
  FIRMWARE_CODE_NODE,
  FIRMWARE_VARS_NODE,
  hotplugPortId,
  nameArg,
  netdevId,
  nicDeviceId,
  QMP_CHARDEV_ID,
  SCSI_CONTROLLER_ID,
  SCSI_PORT_ID,
  SERIAL_CHARDEV_ID,
} from '../model/qemu-ids.js';


export interface QemuLaunchPlan {
  spec: VmSpec;
  /** qmpSocket, serialSocket and pidFile are used. */
  paths: VmPaths;
  accelerator: 'kvm' | 'tcg';
  /**
   * -cpu model; default `host` under kvm, TCG_CPU_MODEL under tcg. An override exists because `host`
   * aborts QEMU 7.2 on some nested hypervisors ("failed to set MSR 0x10a"), where
   * `host,-arch-capabilities` may be needed.
   */
  cpu?: string;
  /** Same order as spec.disks: the file QEMU opens and its format. */
  disks: DiskStatus[];
  /** Same order as spec.nics: tap name and MAC. */
  nics: NicStatus[];
  /** vhost=on for tap netdevs; only when /dev/vhost-net works. */
  vhostNet: boolean;
  /** -S: vmlet connects QMP, subscribes to events, then sends `cont`. */
  startPaused: boolean;
  /** Migration target: -incoming defer. */
  incoming?: boolean;
  /** Spare pcie-root-ports for NIC hotplug, default DEFAULT_HOTPLUG_PORTS. */
  hotplugPorts?: number;
  /** NIC name → index of the hotplug port it sits on (NICs that were hot-plugged). Others go on pcie.0. */
  nicPorts?: Readonly<Record<string, number>>;
}

/**
 * The CPU model under TCG: a fixed named model rather than `max`, whose guests live migration
 * left corrupt now and then (docs/accelerator.md).
 */
export const TCG_CPU_MODEL = 'Nehalem';

/** MiB of TCG translation cache per VM; QEMU's default (1 GiB) would be charged to every VM. */
export const TCG_TB_SIZE_MIB = 128;

const DEFAULT_HOTPLUG_PORTS = 4;
/** pcie.0 slots 1..30 are free on q35 with -nodefaults (0 is the host bridge, 31 the ICH9 functions). */
const PCIE0_FREE_SLOTS = 30;

/** Escapes a value for QEMU's `key=value,...` option syntax, where a literal comma is written `,,`. */
export function escapeOptValue(value: string): string {
  return value.replaceAll(',', ',,');
}

/** Properties of a -netdev, -device or -chardev; undefined ones are left out. */
export type QemuProps = Readonly<Record<string, string | number | boolean | undefined>>;

/** Renders `driver,key=value,...` with booleans as on/off and values comma-escaped. */
export function toQemuOpts(first: string, props: QemuProps): string {
  const parts = Object.entries(props)
    .filter((entry): entry is [string, string | number | boolean] => entry[1] !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'boolean' ? (v ? 'on' : 'off') : escapeOptValue(String(v))}`);
  return [escapeOptValue(first), ...parts].join(',');
}

/** A tap netdev's properties: its -netdev options, and with `type: 'tap'` the arguments of QMP `netdev_add`. */
export type TapNetdevProps = {
  id: string;
  ifname: string;
  script: 'no';
  downscript: 'no';
  vhost: boolean;
  queues?: number;
};

/** A virtio-net-pci device's properties without `driver`: its -device JSON, and the arguments of QMP `device_add`. */
export type NicDeviceProps = {
  netdev: string;
  id: string;
  mac: string;
  mq?: boolean;
  vectors?: number;
  bus?: string;
};

/** The tap netdev of a NIC; also the arguments of QMP `netdev_add` (with `type: 'tap'`). */
export function tapNetdevProps(nic: NicStatus, vcpus: number, vhostNet: boolean): TapNetdevProps {
  return {
    id: netdevId(nic.name),
    ifname: nic.tap,
    script: 'no',
    downscript: 'no',
    vhost: vhostNet,
    ...(vcpus > 1 ? { queues: vcpus } : {}),
  };
}

/**
 * The virtio-net-pci device of a NIC (without `driver`); also the arguments of QMP `device_add`.
 * More than one vCPU gets one queue pair per vCPU (the TAP must then be created multi_queue).
 */
export function nicDeviceProps(nic: NicStatus, vcpus: number, bus?: string): NicDeviceProps {
  return {
    netdev: netdevId(nic.name),
    id: nicDeviceId(nic.name),
    mac: nic.mac,
    ...(vcpus > 1 ? { mq: true, vectors: 2 * vcpus + 2 } : {}),
    ...(bus === undefined ? {} : { bus }),
  };
}

/** The QEMU device of each NIC model: virtio-net, an Intel 82574L, a VMware VMXNET3. */
export const NIC_DEVICES: Record<NicModel, string> = { virtio: 'virtio-net-pci', e1000e: 'e1000e', vmxnet3: 'vmxnet3' };

/**
 * A NIC's -device (or device_add) arguments, driver included. Only virtio-net has queue pairs
 * per vCPU; the emulated models use the first queue of the (multi-queue) TAP.
 */
export function nicDevice(nic: NicStatus, vcpus: number, bus?: string): { driver: string } & NicDeviceProps {
  const model = nic.model ?? 'virtio';
  return { driver: NIC_DEVICES[model], ...nicDeviceProps(nic, model === 'virtio' ? vcpus : 1, bus) };
}

/**
 * -machine, and for UEFI the two pflash blockdevs: OVMF's code read-only, the VM's own variables
 * store writable. Secure Boot needs SMM, and the flash locked to it, or the guest could rewrite
 * the enrolled keys from outside SMM.
 */
function machineArgs(spec: VmSpec, paths: VmPaths): string[] {
  const ovmf = ovmfFilesOf(spec.firmware);
  if (!ovmf) return ['-machine', 'q35'];
  const flash = (node: string, filename: string, readOnly: boolean): string[] => [
    '-blockdev', JSON.stringify({ driver: 'file', filename, 'node-name': `${node}-file`, 'read-only': readOnly }),
    '-blockdev', JSON.stringify({ driver: 'raw', file: `${node}-file`, 'node-name': node, 'read-only': readOnly }),
  ];
  const secure = spec.firmware?.secureBoot === true;
  return [
    '-machine', toQemuOpts('q35', { pflash0: FIRMWARE_CODE_NODE, pflash1: FIRMWARE_VARS_NODE, ...(secure ? { smm: true } : {}) }),
    ...(secure ? ['-global', 'driver=cfi.pflash01,property=secure,value=on'] : []),
    ...flash(FIRMWARE_CODE_NODE, ovmf.code, true),
    ...flash(FIRMWARE_VARS_NODE, paths.efiVars, false),
  ];
}

/** Every -device is in JSON form: QEMU 7.2 creates legacy-syntax devices before JSON ones, so mixing reorders slots. */
const jsonDevice = (driver: string, props: QemuProps): string => JSON.stringify({ driver, ...props });

/** Where a disk's device goes: virtio-blk on pcie.0, an AHCI port, or a target on the virtio-scsi controller. */
type DiskPlace = { bus: 'virtio' } | { bus: 'sata'; port: number } | { bus: 'scsi'; target: number };

/** A disk's blockdevs, and its device (virtio-blk-pci, ide-hd/ide-cd on an AHCI port, or scsi-hd). */
function diskArgs(disk: DiskStatus, readOnly: boolean, bootIndex: number | undefined, place: DiskPlace, cdrom = false): { blockdevs: string[]; device: string[] } {
  const file = { driver: 'file', filename: disk.path, 'node-name': diskFileNodeName(disk.name), 'read-only': readOnly };
  const fmt = { driver: disk.format, file: diskFileNodeName(disk.name), 'node-name': diskNodeName(disk.name), 'read-only': readOnly };
  const dev = {
    drive: diskNodeName(disk.name),
    id: diskDeviceId(disk.name),
    serial: disk.name,
    ...(bootIndex === undefined ? {} : { bootindex: bootIndex }),
  };
  const device =
    place.bus === 'sata'
      ? jsonDevice(cdrom ? 'ide-cd' : 'ide-hd', { ...dev, bus: `ide.${place.port}` })
      : place.bus === 'scsi'
        ? jsonDevice('scsi-hd', { ...dev, bus: `${SCSI_CONTROLLER_ID}.0`, channel: 0, 'scsi-id': place.target, lun: 0 })
        : jsonDevice('virtio-blk-pci', dev);
  return { blockdevs: ['-blockdev', JSON.stringify(file), '-blockdev', JSON.stringify(fmt)], device: ['-device', device] };
}

/** pcie-root-port chassis of the scsi controller's port, apart from the hotplug ports' 1..PCIE0_FREE_SLOTS. */
const SCSI_PORT_CHASSIS = 100;

/**
 * The virtio-scsi controller on a root port of its own, so that it (and with it its disks) can be
 * unplugged like any PCIe device; its disks are targets on its bus.
 */
function scsiControllerArgs(): string[] {
  return [
    '-device', jsonDevice('pcie-root-port', { id: SCSI_PORT_ID, bus: 'pcie.0', chassis: SCSI_PORT_CHASSIS, port: SCSI_PORT_CHASSIS }),
    '-device', jsonDevice('virtio-scsi-pci', { id: SCSI_CONTROLLER_ID, bus: SCSI_PORT_ID }),
  ];
}

export const GUEST_AGENT_SERIAL_ID = 'vserial0';
export const GUEST_AGENT_CHARDEV_ID = 'qga0';
export const GUEST_AGENT_PORT_ID = 'qga0-port';
export const GUEST_AGENT_CHANNEL = 'org.qemu.guest_agent.0';

/** Node names and device id of the cloud-init seed's disk. */
export const SEED_NODE = 'cidata';

/**
 * The cloud-init seed: a read-only virtio disk, as KubeVirt attaches its cloudInitNoCloud volume.
 * Cloud kernels (Debian's linux-image-cloud-amd64) have no AHCI driver, so a SATA CD-ROM would
 * be invisible to the very guests that read it.
 */
function seedArgs(path: string): string[] {
  return [
    '-blockdev', JSON.stringify({ driver: 'file', filename: path, 'node-name': `${SEED_NODE}-file`, 'read-only': true }),
    '-blockdev', JSON.stringify({ driver: 'raw', file: `${SEED_NODE}-file`, 'node-name': SEED_NODE, 'read-only': true }),
    '-device', jsonDevice('virtio-blk-pci', { drive: SEED_NODE, id: SEED_NODE, serial: SEED_NODE }),
  ];
}

function checkPlan(plan: QemuLaunchPlan, ports: number): void {
  const { spec } = plan;
  const same = (a: { name: string }[], b: { name: string }[]): boolean => a.length === b.length && a.every((x, i) => x.name === b[i]?.name);
  if (!same(plan.disks, spec.disks)) throw new Error(`launch plan of ${spec.id}: plan.disks must match spec.disks name for name`);
  if (!same(plan.nics, spec.nics)) throw new Error(`launch plan of ${spec.id}: plan.nics must match spec.nics name for name`);
  if (!Number.isInteger(ports) || ports < 0) throw new Error(`launch plan of ${spec.id}: hotplugPorts must be a non-negative integer`);
  const onPorts = Object.entries(plan.nicPorts ?? {});
  for (const [nic, port] of onPorts) {
    if (!spec.nics.some((n) => n.name === nic)) throw new Error(`launch plan of ${spec.id}: nicPorts names unknown NIC ${nic}`);
    if (!Number.isInteger(port) || port < 0 || port >= ports) throw new Error(`launch plan of ${spec.id}: NIC ${nic} on port ${port}, but there are ${ports}`);
  }
  if (new Set(onPorts.map(([, p]) => p)).size !== onPorts.length) throw new Error(`launch plan of ${spec.id}: two NICs on one hotplug port`);
  const scsi = spec.disks.filter((d) => d.bus === 'scsi').length;
  // + the balloon, the agent's virtio-serial, the cloud-init seed and the scsi controller's root port
  const slots = spec.disks.length - scsi + spec.nics.length - onPorts.length + ports + 2 + (spec.cloudInit ? 1 : 0) + (scsi > 0 ? 1 : 0);
  if (slots > PCIE0_FREE_SLOTS) throw new Error(`launch plan of ${spec.id}: ${slots} PCI devices on pcie.0, at most ${PCIE0_FREE_SLOTS}`);
}

export function buildQemuArgv(plan: QemuLaunchPlan): string[] {
  const { spec, paths } = plan;
  const ports = plan.hotplugPorts ?? DEFAULT_HOTPLUG_PORTS;
  checkPlan(plan, ports);
  const argv: string[] = [
    '-name', nameArg(spec.id),
    ...machineArgs(spec, paths),
    // TCG's translation cache is sized so that it fits the VM's cgroup (cgroup/overhead.ts).
    '-accel', plan.accelerator === 'tcg' ? `tcg,tb-size=${TCG_TB_SIZE_MIB}` : plan.accelerator,
    '-cpu', plan.cpu ?? (plan.accelerator === 'kvm' ? 'host' : TCG_CPU_MODEL),
    '-m', `${spec.memoryMib}M`,
    '-smp', String(spec.vcpus),
    '-nodefaults',
    '-no-user-config',
    '-display', 'none',
    '-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
    '-msg', 'timestamp=on',
    '-chardev', toQemuOpts('socket', { id: QMP_CHARDEV_ID, path: paths.qmpSocket, server: true, wait: false }),
    '-mon', `chardev=${QMP_CHARDEV_ID},mode=control`,
    '-chardev', toQemuOpts('socket', { id: SERIAL_CHARDEV_ID, path: paths.serialSocket, server: true, wait: false }),
    '-serial', `chardev:${SERIAL_CHARDEV_ID}`,
    '-pidfile', paths.pidFile,
  ];
  if (spec.kernel) {
    // -kernel, -initrd and -append take their argument verbatim: no escaping.
    argv.push('-kernel', spec.kernel.kernelPath);
    if (spec.kernel.initrdPath !== '') argv.push('-initrd', spec.kernel.initrdPath);
    if (spec.kernel.cmdline !== '') argv.push('-append', spec.kernel.cmdline);
  }
  // Boot order as the spec gives it; without one, the first disk boots (unless a kernel does).
  const ordered = spec.disks.some((d) => d.bootOrder);
  let sataPort = 0;
  let scsiTarget = 0;
  const scsiDevices: string[] = [];
  plan.disks.forEach((disk, i) => {
    const d = spec.disks[i];
    const readOnly = d?.readonly === true;
    const bootIndex = ordered ? d?.bootOrder || undefined : i === 0 && !spec.kernel ? 1 : undefined;
    const place: DiskPlace = d?.bus === 'sata' ? { bus: 'sata', port: sataPort++ } : d?.bus === 'scsi' ? { bus: 'scsi', target: scsiTarget++ } : { bus: 'virtio' };
    const { blockdevs, device } = diskArgs(disk, readOnly, bootIndex, place, d?.cdrom === true);
    argv.push(...blockdevs);
    // A scsi disk's device needs its controller, which comes after everything else on pcie.0.
    if (place.bus === 'scsi') scsiDevices.push(...device);
    else argv.push(...device);
  });
  const nicPorts = plan.nicPorts ?? {};
  const netdev = (nic: NicStatus): string[] => ['-netdev', toQemuOpts('tap', tapNetdevProps(nic, spec.vcpus, plan.vhostNet))];
  const device = (nic: NicStatus, bus?: string): string[] => ['-device', JSON.stringify(nicDevice(nic, spec.vcpus, bus))];
  for (const nic of plan.nics) {
    if (nicPorts[nic.name] === undefined) argv.push(...netdev(nic), ...device(nic));
  }
  for (let i = 0; i < ports; i++) {
    argv.push('-device', jsonDevice('pcie-root-port', { id: hotplugPortId(i), bus: 'pcie.0', chassis: i + 1, port: i + 1 }));
  }
  for (const nic of plan.nics) {
    const port = nicPorts[nic.name];
    if (port !== undefined) argv.push(...netdev(nic), ...device(nic, hotplugPortId(port)));
  }
  // Last on pcie.0, so that adding it left the slots of disks, NICs and ports unchanged.
  argv.push('-device', jsonDevice('virtio-balloon-pci', { id: BALLOON_DEVICE_ID, 'guest-stats-polling-interval': BALLOON_STATS_INTERVAL_SECONDS }));
  // After the balloon, for the same reason: the guest agent's channel (qemu/guest-agent.ts).
  argv.push(
    '-device', jsonDevice('virtio-serial-pci', { id: GUEST_AGENT_SERIAL_ID }),
    '-chardev', toQemuOpts('socket', { id: GUEST_AGENT_CHARDEV_ID, path: paths.guestAgentSocket, server: true, wait: false }),
    '-device', jsonDevice('virtserialport', { id: GUEST_AGENT_PORT_ID, chardev: GUEST_AGENT_CHARDEV_ID, name: GUEST_AGENT_CHANNEL, bus: `${GUEST_AGENT_SERIAL_ID}.0` }),
  );
  // After the agent's channel: a VM that gains a seed keeps the slots of everything else.
  if (spec.cloudInit) argv.push(...seedArgs(paths.cloudInitSeed));
  // Last of all on pcie.0: a VM without scsi disks keeps the layout it had before scsi existed.
  if (scsiDevices.length > 0) argv.push(...scsiControllerArgs(), ...scsiDevices);
  // A guest kernel panic reaches vmlet as GUEST_PANICKED, then QEMU shuts down (the run strategy decides what next).
  argv.push('-device', 'pvpanic', '-action', 'panic=shutdown');
  if (spec.watchdog) argv.push('-device', jsonDevice('i6300esb', { id: 'watchdog0' }), '-action', `watchdog=${spec.watchdog.action}`);
  if (plan.startPaused) argv.push('-S');
  if (plan.incoming === true) argv.push('-incoming', 'defer');
  return argv;
}
