import type { Vm__Output } from '../api/grpc/generated/vmlet/v1/Vm.js';
import type { NodeInfo__Output } from '../api/grpc/generated/vmlet/v1/NodeInfo.js';
import type { Timestamp__Output } from '../api/grpc/generated/google/protobuf/Timestamp.js';
import type { Resources__Output } from '../api/grpc/generated/vmlet/v1/Resources.js';
import type { Disk__Output } from '../api/grpc/generated/vmlet/v1/Disk.js';
import type { DiskStatus__Output } from '../api/grpc/generated/vmlet/v1/DiskStatus.js';

/** Pure text formatting of API messages: tables and key: value blocks for people, JSON for tools. */

const GAP = '   ';

/** Rows → lines with left-aligned columns; the last column is not padded. */
export function alignTable(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join(GAP).trimEnd() + '\n').join('');
}

/** Aligned lines for a stream of rows (watch): each column is as wide as the widest cell seen so far. */
export class StreamTable {
  private readonly widths: number[];
  constructor(minWidths: readonly number[]) {
    this.widths = [...minWidths];
  }
  line(row: readonly string[]): string {
    row.forEach((cell, i) => (this.widths[i] = Math.max(this.widths[i] ?? 0, cell.length)));
    return row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(this.widths[i] ?? 0))).join(GAP).trimEnd() + '\n';
  }
}

/** A duration as kubectl shows ages: 45s, 3m20s, 47m, 5h12m, 30h, 3d4h, 12d, 3y. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const m = Math.floor(s / 60);
  const h = Math.floor(m / 60);
  const d = Math.floor(h / 24);
  const withRest = (big: number, unit: string, small: number, smallUnit: string): string => (small ? `${big}${unit}${small}${smallUnit}` : `${big}${unit}`);
  if (s < 120) return `${s}s`;
  if (m < 10) return withRest(m, 'm', s % 60, 's');
  if (h < 3) return `${m}m`;
  if (h < 8) return withRest(h, 'h', m % 60, 'm');
  if (h < 48) return `${h}h`;
  if (d < 8) return withRest(d, 'd', h % 24, 'h');
  if (d < 365 * 2) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

/** MiB → `512MiB`, `2GiB`, `1536MiB`; large uneven amounts (host memory) → `23.5GiB`. */
export function formatMemoryMib(mib: number): string {
  if (mib >= 1024 && mib % 1024 === 0) return `${mib / 1024}GiB`;
  if (mib >= 10 * 1024) return `${(mib / 1024).toFixed(1)}GiB`;
  return `${mib}MiB`;
}

/** `PHASE_RUNNING` → `Running`. */
export function phaseName(phase: string | undefined): string {
  if (!phase) return 'Unknown';
  const word = phase.replace(/^PHASE_/, '');
  return word.charAt(0) + word.slice(1).toLowerCase();
}

/** `VM_EVENT_TYPE_ADDED` → `ADDED`. */
export const eventTypeName = (type: string): string => type.replace(/^VM_EVENT_TYPE_/, '');

export function timestampToDate(ts: Timestamp__Output | null | undefined): Date | undefined {
  if (!ts || (!Number(ts.seconds) && !ts.nanos)) return undefined;
  return new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6));
}

/** Free text on one table line. */
export const oneLine = (text: string): string => text.replace(/\s+/g, ' ').trim();

const orDash = (text: string | undefined): string => (text ? text : '-');

function age(ts: Timestamp__Output | null | undefined, now: Date): string {
  const date = timestampToDate(ts);
  return date ? formatAge(now.getTime() - date.getTime()) : '-';
}

export function formatVmList(vms: readonly Vm__Output[], now: Date): string {
  const rows = [['ID', 'PHASE', 'VCPUS', 'MEMORY', 'PID', 'AGE', 'REASON']];
  const sorted = [...vms].sort((a, b) => (a.spec?.id ?? '').localeCompare(b.spec?.id ?? ''));
  for (const vm of sorted) {
    rows.push([
      vm.spec?.id ?? '',
      phaseName(vm.status?.phase),
      String(vm.spec?.vcpus ?? 0),
      formatMemoryMib(Number(vm.spec?.memoryMib ?? 0)),
      vm.status?.pid ? String(vm.status.pid) : '-',
      age(vm.status?.createdAt, now),
      oneLine(vm.status?.reason ?? ''),
    ]);
  }
  return alignTable(rows);
}

function when(ts: Timestamp__Output | null | undefined, now: Date): string {
  const date = timestampToDate(ts);
  return date ? `${date.toISOString()} (${formatAge(now.getTime() - date.getTime())} ago)` : '-';
}

const indent = (text: string, prefix = '  '): string =>
  text
    .split('\n')
    .map((line) => (line ? prefix + line : line))
    .join('\n');

/** `key: value` lines with the values aligned. */
function block(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(...pairs.map(([k]) => k.length)) + 2;
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width)}${v}\n`).join('');
}

/** `vmlet get`: the VM as a key: value block, then its disks and NICs (spec joined with status by name). */
export function formatVmDetail(vm: Vm__Output, now: Date): string {
  const spec = vm.spec;
  const status = vm.status;
  const labels = Object.entries(spec?.labels ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  const pairs: [string, string][] = [
    ['ID', spec?.id ?? ''],
    ['Phase', phaseName(status?.phase)],
    ['Reason', orDash(status?.reason)],
    ['Node', orDash(status?.node)],
    ['PID', status?.pid ? String(status.pid) : '-'],
    ['Accelerator', orDash(status?.accelerator)],
    ['vCPUs', String(spec?.vcpus ?? 0)],
    ['Memory', formatMemoryMib(Number(spec?.memoryMib ?? 0))],
    ['Labels', orDash(labels)],
  ];
  if (spec?.kernel) {
    pairs.push(['Kernel', orDash(spec.kernel.kernelPath)], ['Initrd', orDash(spec.kernel.initrdPath)], ['Cmdline', orDash(spec.kernel.cmdline)]);
  } else {
    pairs.push(['Boot', 'first disk']);
  }
  const fw = spec?.firmware;
  pairs.push(['Firmware', fw?.type === 'FIRMWARE_TYPE_UEFI' ? (fw.secureBoot ? 'UEFI, Secure Boot' : 'UEFI') : 'BIOS']);
  if (spec?.cloudInit) pairs.push(['Cloud-init', 'NoCloud seed']);
  const guest = status?.guest;
  pairs.push(['Guest agent', guest?.agentConnected ? 'connected' : 'not connected']);
  if (guest?.agentConnected) {
    const os = [guest.osName, guest.osVersion].filter(Boolean).join(' ');
    pairs.push(['Guest OS', orDash(os)], ['Guest kernel', orDash(guest.kernelRelease)], ['Guest hostname', orDash(guest.hostname)]);
  }
  pairs.push(
    ['Created', when(status?.createdAt, now)],
    ['Started', when(status?.startedAt, now)],
    ['Stopped', when(status?.stoppedAt, now)],
    ['Last transition', when(status?.lastTransitionAt, now)],
    ['Generation', String(status?.generation ?? 0)],
  );
  let out = block(pairs);

  const diskStatus = new Map((status?.disks ?? []).map((d) => [d.name, d]));
  const disks = spec?.disks ?? [];
  out += 'Disks:';
  if (disks.length === 0) out += ' -\n';
  else {
    const rows = [['NAME', 'IMAGE', 'OVERLAY', 'READONLY', 'BUS', 'FORMAT', 'PATH']];
    for (const d of disks) {
      const s = diskStatus.get(d.name);
      rows.push([d.name, d.imagePath, d.overlay ? 'yes' : 'no', d.readonly ? 'yes' : 'no', diskBus(d), diskFormat(d, s), orDash(s?.path)]);
    }
    out += '\n' + indent(alignTable(rows));
  }

  const nicStatus = new Map((status?.nics ?? []).map((n) => [n.name, n]));
  const nics = spec?.nics ?? [];
  out += 'NICs:';
  if (nics.length === 0) out += ' -\n';
  else {
    const rows = [['NAME', 'BRIDGE', 'MAC', 'TAP']];
    for (const n of nics) {
      const s = nicStatus.get(n.name);
      rows.push([n.name, n.bridge, orDash(s?.mac || n.mac), orDash(s?.tap)]);
    }
    out += '\n' + indent(alignTable(rows));
  }
  if (guest?.agentConnected) {
    out += 'Guest interfaces:';
    if (guest.interfaces.length === 0) out += ' -\n';
    else out += '\n' + indent(alignTable([['NAME', 'MAC', 'IP ADDRESSES'], ...guest.interfaces.map((i) => [i.name, orDash(i.mac), orDash(i.ipAddresses.join(','))])]));
  }
  return out;
}

/** The bus the guest sees the disk on: virtio, scsi or sata, or cdrom (a CD-ROM on sata). */
function diskBus(d: Disk__Output): string {
  if (d.cdrom) return 'cdrom';
  return d.bus === 'DISK_BUS_SCSI' ? 'scsi' : d.bus === 'DISK_BUS_SATA' ? 'sata' : 'virtio';
}

/**
 * What QEMU opens the disk as (status), and for an overlay also the format of the image under it
 * when the spec gives one: `qcow2 on raw`.
 */
function diskFormat(spec: Disk__Output, status: DiskStatus__Output | undefined): string {
  const opened = status?.format || spec.format;
  if (spec.overlay && spec.format) return `${opened || 'qcow2'} on ${spec.format}`;
  return orDash(opened);
}

const cpus = (r: Resources__Output | null): string => (r ? String(r.cpus) : '-');
const memory = (r: Resources__Output | null): string => (r ? formatMemoryMib(Number(r.memoryMib)) : '-');

/** `vmlet node` */
export function formatNodeInfo(info: NodeInfo__Output): string {
  const accel = info.acceleratorReason ? `${orDash(info.accelerator)} (${oneLine(info.acceleratorReason)})` : orDash(info.accelerator);
  const head = block([
    ['Hostname', orDash(info.hostname)],
    ['Accelerator', accel],
    ['QEMU version', orDash(info.qemuVersion)],
    ['vmlet version', orDash(info.vmletVersion)],
    ['VMs', String(info.vmCount)],
    ['Overcommit', `cpu ${info.cpuOvercommitRatio}x, memory ${info.memoryOvercommitRatio}x`],
  ]);
  const table = alignTable([
    ['RESOURCE', 'CAPACITY', 'ALLOCATABLE', 'ALLOCATED'],
    ['CPUs', cpus(info.capacity), cpus(info.allocatable), cpus(info.allocated)],
    ['Memory', memory(info.capacity), memory(info.allocatable), memory(info.allocated)],
  ]);
  return `${head}\n${table}`;
}

/** One line after an action: `web-1 started: Running (pid 4242)`. */
export function actionLine(id: string, done: string, vm: Vm__Output): string {
  const phase = phaseName(vm.status?.phase);
  const details = [vm.status?.pid ? `pid ${vm.status.pid}` : '', oneLine(vm.status?.reason ?? '')].filter(Boolean).join(', ');
  return `${id} ${done}: ${phase}${details ? ` (${details})` : ''}\n`;
}

function isTimestamp(value: unknown): value is Timestamp__Output {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return keys.length === 2 && keys.includes('seconds') && keys.includes('nanos');
}

/**
 * A message as JSON: the decoded proto (camelCase fields, enum names); Timestamps become RFC 3339
 * strings as in the proto3 JSON mapping (unset ones stay null).
 */
export function toJson(message: unknown, pretty = true): string {
  const replacer = (_key: string, value: unknown): unknown => {
    if (!isTimestamp(value)) return value;
    const date = timestampToDate(value);
    if (!date) return null;
    const nanos = value.nanos;
    const digits = nanos === 0 ? '' : `.${String(nanos).padStart(9, '0').slice(0, nanos % 1e6 === 0 ? 3 : nanos % 1e3 === 0 ? 6 : 9)}`;
    return date.toISOString().replace(/\.\d{3}Z$/, `${digits}Z`);
  };
  return JSON.stringify(message, replacer, pretty ? 2 : undefined) + '\n';
}
