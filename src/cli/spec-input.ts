import { parse as parseYaml } from 'yaml';
import type { DiskBus } from '../api/grpc/generated/vmlet/v1/DiskBus.js';
import type { NicModel } from '../api/grpc/generated/vmlet/v1/NicModel.js';
import type { FirmwareType } from '../api/grpc/generated/vmlet/v1/FirmwareType.js';

/**
 * Turns a spec file (JSON or YAML) and `vmlet create` flags into a VmSpec, without I/O.
 * File keys may be snake_case (`memory_mib`, as in the proto) or camelCase (`memoryMib`, as in
 * `vmlet get -o json`) at any depth; label keys are kept as written.
 */

export interface SpecKernel {
  kernelPath?: string;
  initrdPath?: string;
  cmdline?: string;
}

export interface SpecDisk {
  name: string;
  imagePath: string;
  overlay: boolean;
  readonly: boolean;
  /** raw or qcow2; absent: the daemon reads it from the image's header at create. */
  format?: string;
  /** DISK_BUS_SATA …; `sata` in a file works too. */
  bus?: DiskBus;
  bootOrder?: number;
}

export interface SpecNic {
  name: string;
  bridge: string;
  mac?: string;
  /** NIC_MODEL_E1000E …; `e1000e` in a file works too. */
  model?: NicModel;
}

export interface SpecFirmware {
  type?: FirmwareType;
  secureBoot?: boolean;
}

/** Shaped like the generated VmSpec request type, with only the fields that were given. */
export interface SpecInput {
  id?: string;
  labels: Record<string, string>;
  vcpus?: number;
  memoryMib?: number;
  kernel?: SpecKernel;
  firmware?: SpecFirmware;
  cpuLimitMillicores?: number;
  disks: SpecDisk[];
  nics: SpecNic[];
  cloudInit?: SpecCloudInit;
}

export interface SpecCloudInit {
  userData: string;
  metaData: string;
  networkConfig: string;
}

/** `vmlet create` flags, as parseArgs returns them. */
export interface SpecFlags {
  id?: string;
  vcpus?: string;
  memory?: string;
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  disk?: string[];
  nic?: string[];
  label?: string[];
  /** bios, uefi or uefi-secure-boot. */
  firmware?: string;
  /** The text of --cloud-init-user-data FILE. */
  cloudInitUserData?: string;
}

/** Bad spec input; `origin` says whether a flag (usage error) or the file's content is wrong. */
export class SpecInputError extends Error {
  override readonly name = 'SpecInputError';
  constructor(
    message: string,
    readonly origin: 'file' | 'flag',
  ) {
    super(message);
  }
}

const fileError = (path: string, problem: string): SpecInputError => new SpecInputError(`${path}: ${problem}`, 'file');
const flagError = (message: string): SpecInputError => new SpecInputError(message, 'flag');

export const camelCase = (key: string): string => key.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());

type Plain = Record<string, unknown>;
const isPlainObject = (value: unknown): value is Plain => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * An object's fields by camelCase name, each with the key as written (for messages).
 * Rejects unknown fields and the same field given in both spellings.
 */
function fields(value: unknown, path: string, known: readonly string[]): Map<string, { key: string; value: unknown }> {
  if (!isPlainObject(value)) throw fileError(path, `expected an object, got ${describe(value)}`);
  const out = new Map<string, { key: string; value: unknown }>();
  for (const [key, v] of Object.entries(value)) {
    const name = camelCase(key);
    if (!known.includes(name)) throw fileError(`${path}.${key}`, `unknown field (known: ${known.map(snake).join(', ')})`);
    const seen = out.get(name);
    if (seen) throw fileError(`${path}.${key}`, `given twice (also as ${seen.key})`);
    out.set(name, { key, value: v });
  }
  return out;
}

const snake = (name: string): string => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return `"${value}"`;
  if (typeof value === 'object') return 'an object';
  return String(value);
}

function str(value: unknown, path: string): string {
  if (typeof value !== 'string') throw fileError(path, `expected a string, got ${describe(value)}`);
  return value;
}

function bool(value: unknown, path: string): boolean {
  if (typeof value !== 'boolean') throw fileError(path, `expected true or false, got ${describe(value)}`);
  return value;
}

function uint(value: unknown, path: string, max: number): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > max) {
    throw fileError(path, `expected a whole number between 0 and ${max}, got ${describe(value)}`);
  }
  return n;
}

function list(value: unknown, path: string): unknown[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) throw fileError(path, `expected a list, got ${describe(value)}`);
  return value;
}

const SPEC_FIELDS = ['id', 'labels', 'vcpus', 'memoryMib', 'kernel', 'disks', 'nics', 'firmware', 'cloudInit', 'cpuLimitMillicores'] as const;
const FIRMWARE_FIELDS = ['type', 'secureBoot'] as const;
const CLOUD_INIT_FIELDS = ['userData', 'metaData', 'networkConfig'] as const;
function cloudInitFrom(value: unknown, path: string): SpecCloudInit {
  const f = fields(value, path, CLOUD_INIT_FIELDS);
  const text = (name: (typeof CLOUD_INIT_FIELDS)[number]): string => {
    const v = f.get(name);
    return v ? str(v.value, `${path}.${v.key}`) : '';
  };
  return { userData: text('userData'), metaData: text('metaData'), networkConfig: text('networkConfig') };
}
const KERNEL_FIELDS = ['kernelPath', 'initrdPath', 'cmdline'] as const;
const DISK_FIELDS = ['name', 'imagePath', 'overlay', 'readonly', 'format', 'bus', 'bootOrder'] as const;
const NIC_FIELDS = ['name', 'bridge', 'mac', 'model'] as const;

const ENUMS = {
  DISK_BUS_: ['virtio', 'scsi', 'sata'],
  NIC_MODEL_: ['virtio', 'e1000e', 'vmxnet3'],
  FIRMWARE_TYPE_: ['bios', 'uefi'],
} as const;

/**
 * An enum value as the proto names it: `sata` (or DISK_BUS_SATA, as `-o json` prints it) →
 * DISK_BUS_SATA. Throws for a value the enum lacks (the proto would quietly send 0).
 */
export function enumName<T>(prefix: keyof typeof ENUMS, value: string, where: string, origin: 'file' | 'flag' = 'file'): T {
  const upper = value.toUpperCase();
  const word = upper.startsWith(prefix) ? upper.slice(prefix.length).toLowerCase() : value.toLowerCase();
  const known: readonly string[] = ENUMS[prefix];
  if (!known.includes(word) && word !== 'unspecified') throw new SpecInputError(`${where}: "${value}" is not one of ${known.join(', ')}`, origin);
  return `${prefix}${word.toUpperCase()}` as T;
}

function labelsFrom(value: unknown, path: string): Record<string, string> {
  if (value === null || value === undefined) return {};
  if (!isPlainObject(value)) throw fileError(path, `expected a map of strings, got ${describe(value)}`);
  const labels: Record<string, string> = {};
  for (const [key, v] of Object.entries(value)) {
    // YAML reads `version: 2` or `canary: true` as scalars; a label value is their text.
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
      throw fileError(`${path}.${key}`, `expected a string, got ${describe(v)}`);
    }
    labels[key] = String(v);
  }
  return labels;
}

function kernelFrom(value: unknown, path: string): SpecKernel | undefined {
  if (value === null || value === undefined) return undefined;
  const kernel: SpecKernel = {};
  for (const [name, { key, value: v }] of fields(value, path, KERNEL_FIELDS)) {
    kernel[name as keyof SpecKernel] = str(v, `${path}.${key}`);
  }
  return kernel;
}

function diskFrom(value: unknown, path: string): SpecDisk {
  const f = fields(value, path, DISK_FIELDS);
  const name = f.get('name');
  const image = f.get('imagePath');
  if (!name) throw fileError(path, 'missing name');
  if (!image) throw fileError(path, 'missing image_path');
  const overlay = f.get('overlay');
  const readonly = f.get('readonly');
  const format = f.get('format');
  const disk: SpecDisk = {
    name: str(name.value, `${path}.${name.key}`),
    imagePath: str(image.value, `${path}.${image.key}`),
    overlay: overlay ? bool(overlay.value, `${path}.${overlay.key}`) : false,
    readonly: readonly ? bool(readonly.value, `${path}.${readonly.key}`) : false,
  };
  // `vmlet get -o json` prints an undetected format as ""; the daemon validates the value.
  if (format && format.value !== '') disk.format = str(format.value, `${path}.${format.key}`);
  const bus = f.get('bus');
  if (bus && bus.value !== '') disk.bus = enumName<DiskBus>('DISK_BUS_', str(bus.value, `${path}.${bus.key}`), `${path}.${bus.key}`);
  const bootOrder = f.get('bootOrder');
  if (bootOrder) disk.bootOrder = uint(bootOrder.value, `${path}.${bootOrder.key}`, 0xffffffff);
  return disk;
}

function nicFrom(value: unknown, path: string): SpecNic {
  const f = fields(value, path, NIC_FIELDS);
  const name = f.get('name');
  const bridge = f.get('bridge');
  const mac = f.get('mac');
  if (!name) throw fileError(path, 'missing name');
  if (!bridge) throw fileError(path, 'missing bridge');
  const nic: SpecNic = { name: str(name.value, `${path}.${name.key}`), bridge: str(bridge.value, `${path}.${bridge.key}`) };
  if (mac && mac.value !== '') nic.mac = str(mac.value, `${path}.${mac.key}`);
  const model = f.get('model');
  if (model && model.value !== '') nic.model = enumName<NicModel>('NIC_MODEL_', str(model.value, `${path}.${model.key}`), `${path}.${model.key}`);
  return nic;
}

function firmwareFrom(value: unknown, path: string): SpecFirmware | undefined {
  if (value === null || value === undefined) return undefined;
  const firmware: SpecFirmware = {};
  for (const [name, { key, value: v }] of fields(value, path, FIRMWARE_FIELDS)) {
    if (name === 'type') firmware.type = enumName<FirmwareType>('FIRMWARE_TYPE_', str(v, `${path}.${key}`), `${path}.${key}`);
    else firmware.secureBoot = bool(v, `${path}.${key}`);
  }
  return firmware;
}

/**
 * A parsed document → SpecInput. The document is a VmSpec, or a Vm (`{spec, status}`, as printed
 * by `vmlet get -o json`), whose status is ignored.
 */
function specFromDocument(doc: unknown): SpecInput {
  if (doc === null || doc === undefined) throw fileError('spec', 'the file is empty');
  if (isPlainObject(doc) && 'spec' in doc && !('id' in doc)) {
    fields(doc, '(top level)', ['spec', 'status']);
    return specFromDocument(doc.spec);
  }
  const spec: SpecInput = { labels: {}, disks: [], nics: [] };
  for (const [name, { key, value }] of fields(doc, 'spec', SPEC_FIELDS)) {
    const path = `spec.${key}`;
    switch (name) {
      case 'id':
        spec.id = str(value, path);
        break;
      case 'labels':
        spec.labels = labelsFrom(value, path);
        break;
      case 'vcpus':
        spec.vcpus = uint(value, path, 0xffffffff);
        break;
      case 'memoryMib':
        spec.memoryMib = uint(value, path, Number.MAX_SAFE_INTEGER);
        break;
      case 'kernel':
        spec.kernel = kernelFrom(value, path);
        break;
      case 'disks':
        spec.disks = list(value, path).map((d, i) => diskFrom(d, `${path}[${i}]`));
        break;
      case 'nics':
        spec.nics = list(value, path).map((n, i) => nicFrom(n, `${path}[${i}]`));
        break;
      case 'firmware':
        if (value !== null) spec.firmware = firmwareFrom(value, path);
        break;
      case 'cloudInit':
        if (value !== null) spec.cloudInit = cloudInitFrom(value, path);
        break;
      case 'cpuLimitMillicores':
        spec.cpuLimitMillicores = uint(value, path, 0xffffffff);
        break;
    }
  }
  return spec;
}

/** File text → SpecInput: JSON for `*.json`, else YAML (which also reads JSON). */
export function parseSpecText(text: string, fileName: string): SpecInput {
  let doc: unknown;
  try {
    doc = fileName.toLowerCase().endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new SpecInputError(`${fileName}: not valid ${fileName.toLowerCase().endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}`, 'file');
  }
  try {
    return specFromDocument(doc);
  } catch (err) {
    if (err instanceof SpecInputError) throw new SpecInputError(`${fileName}: ${err.message}`, 'file');
    throw err;
  }
}

/** `name=a,b=c,flag` → entries; a bare word is `flag=true`. */
function keyValues(flag: string, raw: string, syntax: string): [string, string | undefined][] {
  if (raw.trim() === '') throw flagError(`${flag}: empty; expected ${syntax}`);
  return raw.split(',').map((part) => {
    const trimmed = part.trim();
    if (trimmed === '') throw flagError(`${flag} "${raw}": empty item; expected ${syntax}`);
    const eq = trimmed.indexOf('=');
    if (eq === 0) throw flagError(`${flag} "${raw}": "${trimmed}" has no key; expected ${syntax}`);
    return eq < 0 ? [trimmed, undefined] : [trimmed.slice(0, eq), trimmed.slice(eq + 1)];
  });
}

function flagBool(flag: string, raw: string, key: string, value: string | undefined): boolean {
  if (value === undefined) return true;
  const v = value.toLowerCase();
  if (['true', 'yes', 'on', '1'].includes(v)) return true;
  if (['false', 'no', 'off', '0'].includes(v)) return false;
  throw flagError(`${flag} "${raw}": ${key}=${value}: expected true or false`);
}

const DISK_SYNTAX = 'name=NAME,image=PATH[,overlay][,readonly]';
const NIC_SYNTAX = 'name=NAME,bridge=BRIDGE[,mac=MAC][,model=virtio|e1000e|vmxnet3]';

/** `--disk name=root,image=/path,overlay,readonly,format=qcow2` */
export function parseDiskFlag(raw: string): SpecDisk {
  const flag = '--disk';
  let name: string | undefined;
  let imagePath: string | undefined;
  let overlay = false;
  let readonly = false;
  let format: string | undefined;
  for (const [key, value] of keyValues(flag, raw, DISK_SYNTAX)) {
    const needValue = (): string => {
      if (value === undefined || value === '') throw flagError(`${flag} "${raw}": ${key} needs a value; expected ${DISK_SYNTAX}`);
      return value;
    };
    switch (key) {
      case 'name':
        name = needValue();
        break;
      case 'image':
      case 'image_path':
      case 'imagePath':
      case 'path':
        imagePath = needValue();
        break;
      case 'overlay':
        overlay = flagBool(flag, raw, key, value);
        break;
      case 'readonly':
      case 'ro':
        readonly = flagBool(flag, raw, key, value);
        break;
      case 'format':
        format = needValue();
        break;
      default:
        throw flagError(`${flag} "${raw}": unknown key "${key}"; expected ${DISK_SYNTAX}`);
    }
  }
  if (!name) throw flagError(`${flag} "${raw}": missing name=; expected ${DISK_SYNTAX}`);
  if (!imagePath) throw flagError(`${flag} "${raw}": missing image=; expected ${DISK_SYNTAX}`);
  return format === undefined ? { name, imagePath, overlay, readonly } : { name, imagePath, overlay, readonly, format };
}

/** `--nic name=eth0,bridge=br0[,mac=52:54:00:…]` */
export function parseNicFlag(raw: string): SpecNic {
  const flag = '--nic';
  const nic: Partial<Record<'name' | 'bridge' | 'mac' | 'model', string>> = {};
  for (const [key, value] of keyValues(flag, raw, NIC_SYNTAX)) {
    if (key !== 'name' && key !== 'bridge' && key !== 'mac' && key !== 'model') throw flagError(`${flag} "${raw}": unknown key "${key}"; expected ${NIC_SYNTAX}`);
    if (value === undefined || value === '') throw flagError(`${flag} "${raw}": ${key} needs a value; expected ${NIC_SYNTAX}`);
    nic[key] = value;
  }
  if (!nic.name) throw flagError(`${flag} "${raw}": missing name=; expected ${NIC_SYNTAX}`);
  if (!nic.bridge) throw flagError(`${flag} "${raw}": missing bridge=; expected ${NIC_SYNTAX}`);
  return { name: nic.name, bridge: nic.bridge, ...(nic.mac ? { mac: nic.mac } : {}), ...(nic.model ? { model: enumName<NicModel>('NIC_MODEL_', nic.model, `${flag} "${raw}": model`, 'flag') } : {}) };
}

/** `--label key=value` (the value may be empty and may hold `=`). */
export function parseLabelFlag(raw: string): [string, string] {
  const eq = raw.indexOf('=');
  if (eq <= 0) throw flagError(`--label "${raw}": expected KEY=VALUE`);
  return [raw.slice(0, eq), raw.slice(eq + 1)];
}

/** `--memory 512`, `512M`, `512MiB`, `2G`, `2GiB` → MiB. */
export function parseMemoryMib(raw: string): number {
  const m = /^\s*(\d+)\s*(m|mi|mib|g|gi|gib)?\s*$/i.exec(raw);
  if (!m) throw flagError(`--memory "${raw}": expected MiB, e.g. 512, 512M or 2G`);
  const n = Number(m[1]) * ((m[2] ?? 'm').toLowerCase().startsWith('g') ? 1024 : 1);
  if (!Number.isSafeInteger(n)) throw flagError(`--memory "${raw}": too large`);
  return n;
}

function parseVcpus(raw: string): number {
  if (!/^\s*\d+\s*$/.test(raw) || Number(raw) > 0xffffffff) throw flagError(`--vcpus "${raw}": expected a whole number`);
  return Number(raw);
}

/** Replaces entries of `base` by name with those of `over`, appending new names; names in `over` must be unique. */
function mergeByName<T extends { name: string }>(flag: string, base: T[], over: T[]): T[] {
  const seen = new Set<string>();
  const out = [...base];
  for (const item of over) {
    if (seen.has(item.name)) throw flagError(`${flag}: name "${item.name}" given twice`);
    seen.add(item.name);
    const i = out.findIndex((b) => b.name === item.name);
    if (i >= 0) out[i] = item;
    else out.push(item);
  }
  return out;
}

/** Flags on top of a file's spec (or an empty one): scalars replace, labels merge, disks/NICs replace by name. */
export function applyFlags(base: SpecInput, flags: SpecFlags): SpecInput {
  const spec: SpecInput = { ...base, labels: { ...base.labels }, disks: [...base.disks], nics: [...base.nics] };
  if (flags.id !== undefined) spec.id = flags.id;
  if (flags.vcpus !== undefined) spec.vcpus = parseVcpus(flags.vcpus);
  if (flags.memory !== undefined) spec.memoryMib = parseMemoryMib(flags.memory);
  if (flags.kernel !== undefined || flags.initrd !== undefined || flags.cmdline !== undefined) {
    const kernel: SpecKernel = { ...base.kernel };
    if (flags.kernel !== undefined) kernel.kernelPath = flags.kernel;
    if (flags.initrd !== undefined) kernel.initrdPath = flags.initrd;
    if (flags.cmdline !== undefined) kernel.cmdline = flags.cmdline;
    spec.kernel = kernel;
  }
  for (const raw of flags.label ?? []) {
    const [key, value] = parseLabelFlag(raw);
    spec.labels[key] = value;
  }
  spec.disks = mergeByName('--disk', spec.disks, (flags.disk ?? []).map(parseDiskFlag));
  spec.nics = mergeByName('--nic', spec.nics, (flags.nic ?? []).map(parseNicFlag));
  if (flags.firmware !== undefined) spec.firmware = parseFirmwareFlag(flags.firmware);
  if (flags.cloudInitUserData !== undefined) {
    spec.cloudInit = { ...(spec.cloudInit ?? { metaData: '', networkConfig: '' }), userData: flags.cloudInitUserData };
  }
  return spec;
}

/** `--firmware bios|uefi|uefi-secure-boot` */
export function parseFirmwareFlag(raw: string): SpecFirmware {
  switch (raw.toLowerCase()) {
    case 'bios':
      return { type: 'FIRMWARE_TYPE_BIOS', secureBoot: false };
    case 'uefi':
      return { type: 'FIRMWARE_TYPE_UEFI', secureBoot: false };
    case 'uefi-secure-boot':
      return { type: 'FIRMWARE_TYPE_UEFI', secureBoot: true };
    default:
      throw flagError(`--firmware "${raw}": expected bios, uefi or uefi-secure-boot`);
  }
}

/** The whole of `vmlet create`'s input: optional file text, then flags. */
export function buildSpec(input: { file?: { name: string; text: string }; flags: SpecFlags }): SpecInput {
  const base = input.file ? parseSpecText(input.file.text, input.file.name) : { labels: {}, disks: [], nics: [] };
  const spec = applyFlags(base, input.flags);
  if (!spec.id) throw flagError('no VM id: give --id ID or an id in the spec file');
  return spec;
}
