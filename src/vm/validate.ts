/**
 * Validation of a VmSpec as a caller sent it. Errors name the proto field (snake_case) that is
 * wrong, e.g. `spec.disks[1].image_path: ...`. Pure.
 *
 * Proto3 has no "unset" for scalars, so callers that leave vcpus or memory_mib out send 0:
 * vcpus 0 means DEFAULT_VCPUS (1) and memory_mib 0 means DEFAULT_MEMORY_MIB (256).
 * A KernelBoot whose fields are all empty counts as absent (boot from the first disk).
 */
import { isAbsolute } from 'node:path';
import { invalidArgument } from '../model/errors.js';
import { MAX_LABELS_PER_VM, boundExceeded } from '../model/bounds.js';
import { ifNameProblem, validateMac } from '../model/names.js';
import { labelKeyProblem, labelValueProblem } from './label-selector.js';
import { DISK_BUSES, NIC_MODELS, RUN_STRATEGIES, WATCHDOG_ACTIONS, type CloudInit, type DiskSpec, type Firmware, type KernelBoot, type NicSpec, type RunStrategy, type VmSpec, type WatchdogAction } from '../model/vm.js';

const DEFAULT_VCPUS = 1;
const DEFAULT_MEMORY_MIB = 256;
const MIN_MEMORY_MIB = 16;
const MAX_DISKS = 16;
const MAX_NICS = 8;
/** virtio-blk serials hold 20 bytes; the disk name is used as the serial. */
const MAX_DISK_NAME = 20;
/** NIC names end up in QEMU ids and in the guest-visible status; keep them interface-sized. */
const MAX_NIC_NAME = 15;
const MAX_CMDLINE_BYTES = 4096;
const MAX_PATH_BYTES = 4095;
/** Characters at which QEMU splits -initrd for a multiboot kernel (module list, module arguments). */
const INITRD_SPLIT_CHARS = [',', ' '] as const;

export interface SpecLimits {
  /** Default 64. */
  maxVcpus?: number;
  /** Default 1 TiB (1048576 MiB). */
  maxMemoryMib?: number;
}

const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function dnsLabel(value: unknown, field: string, maxLen: number): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw invalidArgument(field, `is required: a lowercase DNS-1123 label of 1-${maxLen} characters ([a-z0-9-], starting and ending with a letter or digit)`);
  }
  if (value.length > maxLen || !DNS_LABEL_RE.test(value)) {
    throw invalidArgument(field, `"${value}" must be a lowercase DNS-1123 label of 1-${maxLen} characters ([a-z0-9-], starting and ending with a letter or digit)`);
  }
  return value;
}

/** Checks a VM id (a lowercase DNS-1123 label, 1-63 characters) and returns it. */
export function validateVmId(id: string, field = 'id'): string {
  return dnsLabel(id, field, 63);
}

function str(value: unknown, field: string): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw invalidArgument(field, 'must be a string');
  return value;
}

function absPath(value: unknown, field: string): string {
  const p = str(value, field);
  if (p === '') throw invalidArgument(field, 'is required: an absolute path');
  if (p.includes('\0')) throw invalidArgument(field, 'must not contain NUL');
  if (!isAbsolute(p)) throw invalidArgument(field, `"${p}" must be an absolute path`);
  if (Buffer.byteLength(p) > MAX_PATH_BYTES) throw invalidArgument(field, `is longer than ${MAX_PATH_BYTES} bytes`);
  return p;
}

function intIn(value: unknown, field: string, dflt: number, min: number, max: number, unit: string): number {
  const v = value === undefined || value === null || value === 0 ? dflt : value;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalidArgument(field, `must be an integer between ${min} and ${max}${unit} (0 means ${dflt}), got ${String(value)}`);
  }
  return v;
}

/** 0 or absent: no cap. A cap is at least 10 millicores (the kernel's 1 ms per 100 ms period) and at most the vCPUs. */
function cpuLimitMillicores(raw: unknown, vcpus: number): number {
  if (raw === undefined || raw === null || raw === 0) return 0;
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 10 || raw > vcpus * 1000) {
    throw invalidArgument('spec.cpu_limit_millicores', `must be 0 (no cap) or an integer between 10 and ${vcpus * 1000} (the VM's ${vcpus} vCPUs), got ${String(raw)}`);
  }
  return raw;
}

function labels(raw: unknown): Record<string, string> {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw invalidArgument('spec.labels', 'must be a map of strings');
  const keys = Object.keys(raw);
  if (keys.length > MAX_LABELS_PER_VM) {
    throw boundExceeded('labels_per_vm', 'INVALID_ARGUMENT', `spec.labels: has ${keys.length} labels: at most ${MAX_LABELS_PER_VM}`);
  }
  const out: Record<string, string> = {};
  for (const key of keys.sort()) {
    const value: unknown = (raw as Record<string, unknown>)[key];
    const field = `spec.labels[${JSON.stringify(key)}]`;
    if (typeof value !== 'string') throw invalidArgument(field, 'must be a string');
    const problem = labelKeyProblem(key) ?? labelValueProblem(value);
    if (problem !== undefined) throw boundExceeded('label_syntax', 'INVALID_ARGUMENT', `${field}: ${problem}`);
    out[key] = value;
  }
  return out;
}

function kernel(raw: KernelBoot | undefined | null): KernelBoot | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!raw.kernelPath && !raw.initrdPath && !raw.cmdline) return undefined;
  const initrdPath = str(raw.initrdPath, 'spec.kernel.initrd_path');
  const cmdline = str(raw.cmdline, 'spec.kernel.cmdline');
  if (cmdline.includes('\0')) throw invalidArgument('spec.kernel.cmdline', 'must not contain NUL');
  if (Buffer.byteLength(cmdline) > MAX_CMDLINE_BYTES) {
    throw invalidArgument('spec.kernel.cmdline', `is ${Buffer.byteLength(cmdline)} bytes long: at most ${MAX_CMDLINE_BYTES}`);
  }
  // For a multiboot kernel QEMU reads -initrd as a comma-separated list of modules, each a file
  // name and, after a space, the module's arguments; for a Linux kernel it is one file name. Which
  // one QEMU does depends on the kernel, so vmlet can neither escape a comma nor keep a space.
  const split = INITRD_SPLIT_CHARS.find((c) => initrdPath.includes(c));
  if (split !== undefined) {
    throw invalidArgument(
      'spec.kernel.initrd_path',
      `"${initrdPath}" contains a ${split === ',' ? 'comma' : 'space'}, where QEMU splits the path for a multiboot kernel (and would open another file); rename the file`,
    );
  }
  return {
    kernelPath: absPath(raw.kernelPath, 'spec.kernel.kernel_path'),
    initrdPath: initrdPath === '' ? '' : absPath(initrdPath, 'spec.kernel.initrd_path'),
    cmdline,
  };
}

function list<T>(raw: T[] | undefined | null, field: string, max: number): T[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw invalidArgument(field, 'must be a list');
  if (raw.length > max) throw invalidArgument(field, `has ${raw.length} entries: at most ${max}`);
  return raw;
}

function unique(name: string, seen: Set<string>, field: string, what: string): void {
  if (seen.has(name)) throw invalidArgument(field, `duplicate ${what} name "${name}": names must be unique within the VM`);
  seen.add(name);
}

const DISK_FORMATS = ['raw', 'qcow2'] as const;

/** '' (absent): vmlet reads the format from the file's header at create. */
function diskFormat(value: unknown, field: string): '' | (typeof DISK_FORMATS)[number] {
  const format = str(value, field);
  if (format === '') return '';
  const known = DISK_FORMATS.find((f) => f === format);
  if (known === undefined) {
    throw invalidArgument(field, `"${format}" is not a disk format vmlet opens: give raw or qcow2, or leave it empty for vmlet to read it from the image's header`);
  }
  return known;
}

/** q35's built-in AHCI controller has six ports. */
export const MAX_SATA_DISKS = 6;

function disks(raw: DiskSpec[] | undefined): DiskSpec[] {
  const seen = new Set<string>();
  let sata = 0;
  return list(raw, 'spec.disks', MAX_DISKS).map((d, i) => {
    const f = `spec.disks[${i}]`;
    if (typeof d !== 'object' || d === null) throw invalidArgument(f, 'must be a Disk');
    const name = dnsLabel(d.name, `${f}.name`, MAX_DISK_NAME);
    unique(name, seen, `${f}.name`, 'disk');
    const imagePath = absPath(d.imagePath, `${f}.image_path`);
    const overlay = d.overlay === true;
    const readonly = d.readonly === true;
    if (overlay && readonly) {
      throw invalidArgument(`${f}.overlay`, 'an overlay exists to take the writes of a writable disk; on a readonly disk it makes no sense: set overlay or readonly, not both');
    }
    const format = diskFormat(d.format, `${f}.format`);
    const cdrom = d.cdrom === true;
    if (cdrom && overlay) throw invalidArgument(`${f}.overlay`, 'a CD-ROM is read-only: it takes no overlay');
    if (cdrom && d.bus !== undefined && d.bus !== 'sata') throw invalidArgument(`${f}.bus`, `a CD-ROM sits on sata, not ${String(d.bus)}`);
    const bus = cdrom ? 'sata' : (d.bus ?? 'virtio');
    if (!(DISK_BUSES as readonly string[]).includes(bus)) throw invalidArgument(`${f}.bus`, `"${String(bus)}" is not one of ${DISK_BUSES.join(', ')}`);
    if (bus === 'sata' && ++sata > MAX_SATA_DISKS) throw invalidArgument(`${f}.bus`, `at most ${MAX_SATA_DISKS} disks on sata (the q35 AHCI controller's ports)`);
    const bootOrder = d.bootOrder === undefined || d.bootOrder === 0 ? 0 : intIn(d.bootOrder, `${f}.boot_order`, 0, 1, MAX_DISKS, '');
    const disk = { name, imagePath, overlay, readonly: readonly || cdrom, ...(format === '' ? {} : { format }), ...(bus === 'virtio' ? {} : { bus }), ...(bootOrder ? { bootOrder } : {}) };
    return cdrom ? { ...disk, cdrom } : disk;
  });
}

function nics(raw: NicSpec[] | undefined): NicSpec[] {
  const seen = new Set<string>();
  return list(raw, 'spec.nics', MAX_NICS).map((n, i) => {
    const f = `spec.nics[${i}]`;
    if (typeof n !== 'object' || n === null) throw invalidArgument(f, 'must be a Nic');
    const name = dnsLabel(n.name, `${f}.name`, MAX_NIC_NAME);
    unique(name, seen, `${f}.name`, 'NIC');
    const bridge = str(n.bridge, `${f}.bridge`);
    const problem = ifNameProblem(bridge);
    if (problem !== undefined) throw invalidArgument(`${f}.bridge`, `${problem} (the name of a Linux bridge on the node)`);
    const mac = str(n.mac, `${f}.mac`);
    const model = n.model ?? 'virtio';
    if (!(NIC_MODELS as readonly string[]).includes(model)) throw invalidArgument(`${f}.model`, `"${String(model)}" is not one of ${NIC_MODELS.join(', ')}`);
    return { name, bridge, mac: mac === '' ? '' : validateMac(mac, `${f}.mac`), ...(model === 'virtio' ? {} : { model }) };
  });
}

/**
 * Validates a VmSpec and returns a normalised copy: defaults applied (see the file comment),
 * labels sorted by key, MACs lowercase, an all-empty kernel dropped, unknown properties dropped.
 * Throws INVALID_ARGUMENT naming the first bad field.
 */
export function validateSpec(raw: VmSpec, limits: SpecLimits = {}): VmSpec {
  if (typeof raw !== 'object' || raw === null) throw invalidArgument('spec', 'is required');
  const maxVcpus = limits.maxVcpus ?? 64;
  const maxMemoryMib = limits.maxMemoryMib ?? 1024 * 1024;
  const id = validateVmId(raw.id, 'spec.id');
  const lbls = labels(raw.labels);
  const vcpus = intIn(raw.vcpus, 'spec.vcpus', DEFAULT_VCPUS, 1, maxVcpus, '');
  const memoryMib = intIn(raw.memoryMib, 'spec.memory_mib', DEFAULT_MEMORY_MIB, MIN_MEMORY_MIB, maxMemoryMib, ' MiB');
  const k = kernel(raw.kernel);
  const cpuLimit = cpuLimitMillicores(raw.cpuLimitMillicores, vcpus);
  const spec: VmSpec = {
    id,
    labels: lbls,
    vcpus,
    memoryMib,
    ...(k === undefined ? {} : { kernel: k }),
    disks: disks(raw.disks),
    nics: nics(raw.nics),
    ...(cpuLimit ? { cpuLimitMillicores: cpuLimit } : {}),
    ...runStrategy(raw.runStrategy),
    ...watchdog(raw.watchdog),
    ...firmware(raw.firmware),
    ...cloudInit(raw.cloudInit),
  };
  if (spec.cloudInit && spec.disks.filter((d) => d.bus === 'sata').length >= MAX_SATA_DISKS) {
    throw invalidArgument('spec.cloud_init', `the seed takes a SATA port, and ${MAX_SATA_DISKS} disks are on sata already`);
  }
  if (k === undefined && spec.disks.length === 0) {
    throw invalidArgument('spec.disks', 'nothing to boot: give spec.kernel (direct kernel boot) or at least one disk (boots from the first)');
  }
  return spec;
}

function runStrategy(raw: unknown): { runStrategy?: RunStrategy } {
  if (raw === undefined || raw === 'Manual') return {};
  if (!(RUN_STRATEGIES as readonly unknown[]).includes(raw)) throw invalidArgument('spec.run_strategy', `must be one of ${RUN_STRATEGIES.join(', ')}, got ${String(raw)}`);
  return { runStrategy: raw as RunStrategy };
}

/** Nova's limit for user data; vmlet holds every NoCloud file to it. */
export const MAX_CLOUD_INIT_BYTES = 64 * 1024;

/** Sizes only: what the files say is the guest's business (cloud-init reports its own errors). */
function cloudInit(raw: CloudInit | undefined): { cloudInit?: CloudInit } {
  if (raw === undefined || raw === null) return {};
  const file = (value: unknown, field: string): string => {
    const text = str(value, `spec.cloud_init.${field}`);
    const bytes = Buffer.byteLength(text);
    if (bytes > MAX_CLOUD_INIT_BYTES) throw invalidArgument(`spec.cloud_init.${field}`, `is ${bytes} bytes, at most ${MAX_CLOUD_INIT_BYTES} (64 KiB)`);
    return text;
  };
  return { cloudInit: { userData: file(raw.userData, 'user_data'), metaData: file(raw.metaData, 'meta_data'), networkConfig: file(raw.networkConfig, 'network_config') } };
}

/** BIOS is the default and is left out; Secure Boot exists only with UEFI. */
function firmware(raw: Firmware | undefined): { firmware?: Firmware } {
  if (raw === undefined || raw === null) return {};
  if (raw.type !== 'bios' && raw.type !== 'uefi') throw invalidArgument('spec.firmware.type', `must be bios or uefi, got ${String(raw.type)}`);
  if (raw.type === 'bios') {
    if (raw.secureBoot === true) throw invalidArgument('spec.firmware.secure_boot', 'Secure Boot needs UEFI firmware (FIRMWARE_TYPE_UEFI)');
    return {};
  }
  return { firmware: { type: 'uefi', secureBoot: raw.secureBoot === true } };
}

function watchdog(raw: unknown): { watchdog?: { action: WatchdogAction } } {
  if (raw === undefined || raw === null) return {};
  const action = (raw as { action?: unknown }).action;
  if (!(WATCHDOG_ACTIONS as readonly unknown[]).includes(action)) {
    throw invalidArgument('spec.watchdog.action', `must be one of ${WATCHDOG_ACTIONS.join(', ')} (WATCHDOG_ACTION_RESET, _POWEROFF, _SHUTDOWN), got ${String(action)}`);
  }
  return { watchdog: { action: action as WatchdogAction } };
}
