import { XMLParser } from 'fast-xml-parser';
import type { Firmware, NicModel } from '../../model/vm.js';

/** A disk of the virtual system, in the order the hardware section lists it. */
export interface OvfDisk {
  /** The References/File href: the disk's file (an OVA member, or next to the .ovf). */
  href: string;
  /** DiskSection ovf:diskId. */
  diskId: string;
  /** ovf:capacity in bytes, when stated. */
  capacityBytes?: number;
  /** The controller the disk hangs on, as far as the OVF says (IDE, SATA or SCSI). */
  controller: 'ide' | 'sata' | 'scsi' | 'unknown';
}

export interface OvfNic {
  model: NicModel;
  /** As the OVF states it (rasd:Address); empty when absent. */
  mac: string;
  /** The OVF network (rasd:Connection), for the operator to map to a bridge. */
  network: string;
}

/** What vmlet takes from an OVF descriptor; everything else is a warning. */
export interface OvfDescriptor {
  name: string;
  vcpus: number;
  memoryMib: number;
  disks: OvfDisk[];
  nics: OvfNic[];
  firmware: Firmware;
  /** Every file the References section names, by ovf:id. */
  files: Map<string, string>;
  warnings: string[];
}

/** A descriptor vmlet cannot use; the message says what is missing. */
export class OvfError extends Error {
  override readonly name = 'OvfError';
}

type Node = Record<string, unknown>;

/** Elements that may repeat: always arrays, so one and many read alike. */
const LISTS = new Set(['File', 'Disk', 'Item', 'StorageItem', 'EthernetPortItem', 'Config', 'ExtraConfig', 'VirtualSystem', 'VirtualHardwareSection']);

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  removeNSPrefix: true,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: false,
  isArray: (name) => LISTS.has(name),
});

const list = (v: unknown): Node[] => (Array.isArray(v) ? (v as Node[]) : v === undefined ? [] : [v as Node]);
const text = (v: unknown): string => {
  if (v === undefined || v === null) return '';
  if (typeof v === 'object') return text((v as Node)['#text']);
  return String(v as string | number).trim();
};

/** OVF ResourceType values (CIM_ResourceAllocationSettingData). */
const RT = { other: 1, cpu: 3, memory: 4, ide: 5, scsi: 6, ethernet: 10, floppy: 14, cdrom: 15, dvd: 16, disk: 17, sata: 20, usb: 23, graphics: 24, sound: 35 } as const;
const RESOURCE_NAMES: Record<number, string> = { 1: 'other device', 14: 'floppy drive', 15: 'CD drive', 16: 'DVD drive', 21: 'serial port', 22: 'parallel port', 23: 'USB controller', 24: 'graphics controller', 35: 'sound card' };

/**
 * Bytes in one unit of `units` (`byte * 2^20`, `byte * 1024`, `MegaBytes`, …); OVF's default is bytes.
 * Undefined for a unit vmlet does not know.
 */
export function unitBytes(units: string): number | undefined {
  const u = units.replace(/\s+/g, '').toLowerCase();
  if (u === '' || u === 'byte' || u === 'bytes') return 1;
  const pow = /^byte\*(\d+)\^(\d+)$/.exec(u);
  if (pow) return Number(pow[1]) ** Number(pow[2]);
  const mul = /^byte\*(\d+)$/.exec(u);
  if (mul) return Number(mul[1]);
  const words: Record<string, number> = { kilobytes: 2 ** 10, kb: 2 ** 10, megabytes: 2 ** 20, mb: 2 ** 20, gigabytes: 2 ** 30, gb: 2 ** 30, terabytes: 2 ** 40 };
  return words[u];
}

/** The NIC model for an OVF ResourceSubType; a model vmlet does not emulate maps to e1000e with a warning. */
export function nicModelFor(subType: string): { model: NicModel; warning?: string } {
  const s = subType.toLowerCase().replace(/[^a-z0-9]/g, '');
  if (s === 'vmxnet3') return { model: 'vmxnet3' };
  if (s === 'e1000' || s === 'e1000e') return { model: 'e1000e' };
  if (s === 'virtio' || s === 'virtionet') return { model: 'virtio' };
  return { model: 'e1000e', warning: `NIC type "${subType || 'unspecified'}" is not emulated; the NIC is proposed as e1000e` };
}

/** The items of the hardware section, OVF 1 (Item) and OVF 2 (StorageItem, EthernetPortItem) alike. */
function hardwareItems(section: Node): Node[] {
  return [...list(section.Item), ...list(section.StorageItem), ...list(section.EthernetPortItem)];
}

/**
 * What vmlet uses of an OVF descriptor (pure): the first virtual system's name, vCPUs, memory,
 * disks in hardware order (with the files they come from), NICs with their model and MAC, and the
 * firmware from VMware's `vmw:Config firmware`. Hardware vmlet does not carry over is listed in
 * `warnings`; only a descriptor without a virtual system or with a disk that names no file fails.
 */
export function parseOvf(xml: string): OvfDescriptor {
  let doc: Node;
  try {
    doc = parser.parse(xml, true) as Node;
  } catch (err) {
    throw new OvfError(`the OVF descriptor is not well-formed XML: ${(err as Error).message}`);
  }
  const envelope = doc.Envelope as Node | undefined;
  if (!envelope) throw new OvfError('the OVF descriptor has no Envelope element');
  const warnings: string[] = [];
  const files = new Map<string, string>();
  for (const f of list((envelope.References as Node | undefined)?.File)) files.set(text(f['@id']), text(f['@href']));
  const diskDefs = new Map<string, { fileRef: string; capacityBytes?: number }>();
  for (const d of list((envelope.DiskSection as Node | undefined)?.Disk)) {
    const capacity = Number(text(d['@capacity']));
    const unit = unitBytes(text(d['@capacityAllocationUnits']));
    diskDefs.set(text(d['@diskId']), { fileRef: text(d['@fileRef']), ...(Number.isFinite(capacity) && unit ? { capacityBytes: capacity * unit } : {}) });
  }
  const systems = list(envelope.VirtualSystem);
  const system = systems[0];
  if (!system) throw new OvfError('the OVF descriptor has no VirtualSystem (a VirtualSystemCollection of several VMs is not supported)');
  if (systems.length > 1) warnings.push(`the descriptor holds ${systems.length} virtual systems; only the first is proposed`);
  const name = text(system.Name) || text(system['@id']);
  const sections = list(system.VirtualHardwareSection);
  const hw = sections[0] ?? {};
  let vcpus = 0;
  let memoryMib = 0;
  const controllers = new Map<string, OvfDisk['controller']>();
  const diskItems: Node[] = [];
  const nics: OvfNic[] = [];
  for (const item of hardwareItems(hw)) {
    const type = Number(text(item.ResourceType));
    const label = text(item.ElementName) || text(item.Caption) || `item ${text(item.InstanceID)}`;
    switch (type) {
      case RT.cpu:
        vcpus = Number(text(item.VirtualQuantity)) || 0;
        break;
      case RT.memory: {
        const unit = unitBytes(text(item.AllocationUnits) || 'byte * 2^20');
        if (unit === undefined) warnings.push(`memory unit "${text(item.AllocationUnits)}" is unknown; set memory_mib`);
        else memoryMib = Math.round((Number(text(item.VirtualQuantity)) * unit) / 2 ** 20);
        break;
      }
      case RT.ide:
        controllers.set(text(item.InstanceID), 'ide');
        break;
      case RT.scsi:
        controllers.set(text(item.InstanceID), 'scsi');
        break;
      case RT.sata:
        controllers.set(text(item.InstanceID), 'sata');
        break;
      case RT.disk:
        diskItems.push(item);
        break;
      case RT.ethernet: {
        const { model, warning } = nicModelFor(text(item.ResourceSubType));
        if (warning) warnings.push(`${label}: ${warning}`);
        nics.push({ model, mac: text(item.Address).toLowerCase(), network: text(item.Connection) });
        break;
      }
      default: {
        const what = RESOURCE_NAMES[type] ?? `hardware of ResourceType ${type}`;
        const sub = text(item.ResourceSubType);
        warnings.push(`${label} (${what}${sub ? `, ${sub}` : ''}) is not carried over`);
      }
    }
  }
  const disks: OvfDisk[] = [];
  const used = new Set<string>();
  for (const item of diskItems) {
    const ref = text(item.HostResource);
    const m = /^ovf:\/(?:disk|file)\/(.+)$/.exec(ref);
    const diskId = m?.[1] ?? '';
    const def = diskDefs.get(diskId);
    const href = def ? files.get(def.fileRef) : files.get(diskId);
    if (!href) {
      warnings.push(`disk ${text(item.ElementName) || diskId || '?'} has no backing file (${ref || 'no HostResource'}); it is left out`);
      continue;
    }
    used.add(diskId);
    disks.push({ href, diskId, ...(def?.capacityBytes === undefined ? {} : { capacityBytes: def.capacityBytes }), controller: controllers.get(text(item.Parent)) ?? 'unknown' });
  }
  for (const [diskId, def] of diskDefs) {
    const href = files.get(def.fileRef);
    if (used.has(diskId) || !href) continue;
    warnings.push(`disk ${diskId} is in the DiskSection but on no controller; it is imported after the others`);
    disks.push({ href, diskId, ...(def.capacityBytes === undefined ? {} : { capacityBytes: def.capacityBytes }), controller: 'unknown' });
  }
  if (vcpus < 1) {
    warnings.push('the descriptor states no vCPU count; 1 is proposed');
    vcpus = 1;
  }
  if (memoryMib < 1) {
    warnings.push('the descriptor states no memory size; 512 MiB is proposed');
    memoryMib = 512;
  }
  return { name, vcpus, memoryMib, disks, nics, firmware: firmwareOf(hw, warnings), files, warnings };
}

/** `vmw:Config vmw:key="firmware" vmw:value="efi"` (and secure boot) from VMware's extension. */
function firmwareOf(hw: Node, warnings: string[]): Firmware {
  const configs = new Map<string, string>();
  for (const c of [...list(hw.Config), ...list(hw.ExtraConfig)]) configs.set(text(c['@key']), text(c['@value']));
  const fw = (configs.get('firmware') ?? 'bios').toLowerCase();
  if (fw !== 'efi' && fw !== 'bios') warnings.push(`firmware "${fw}" is unknown; BIOS is proposed`);
  return { type: fw === 'efi' ? 'uefi' : 'bios', secureBoot: (configs.get('uefi.secureBoot.enabled') ?? '').toLowerCase() === 'true' };
}

/** A name made a DNS-1123 label (pure): lowercase, runs of anything else as one '-', at most 63 characters; `fallback` when nothing is left. */
export function dnsLabel(name: string, fallback: string): string {
  const label = name
    .toLowerCase()
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return label || fallback;
}
