import { stringify } from 'yaml';
import type { VmSpec__Output } from '../api/grpc/generated/vmlet/v1/VmSpec.js';
import type { Image__Output } from '../api/grpc/generated/vmlet/v1/Image.js';
import { alignTable, formatAge, timestampToDate } from './format.js';

const short = (value: string, prefix: string): string => value.slice(prefix.length).toLowerCase();

/**
 * A proposed VmSpec as the YAML `vmlet create -f` reads: snake_case keys, enums as words
 * (sata, e1000e, uefi), defaults left out.
 */
export function specYaml(spec: VmSpec__Output): string {
  const doc: Record<string, unknown> = { id: spec.id, vcpus: spec.vcpus, memory_mib: Number(spec.memoryMib) };
  if (spec.firmware && spec.firmware.type !== 'FIRMWARE_TYPE_UNSPECIFIED') {
    doc.firmware = { type: short(spec.firmware.type, 'FIRMWARE_TYPE_'), ...(spec.firmware.secureBoot ? { secure_boot: true } : {}) };
  }
  doc.disks = spec.disks.map((d) => ({
    name: d.name,
    image_path: d.imagePath,
    ...(d.overlay ? { overlay: true } : {}),
    ...(d.readonly ? { readonly: true } : {}),
    ...(d.format ? { format: d.format } : {}),
    ...(d.bus !== 'DISK_BUS_UNSPECIFIED' ? { bus: short(d.bus, 'DISK_BUS_') } : {}),
    ...(d.bootOrder ? { boot_order: d.bootOrder } : {}),
  }));
  if (spec.nics.length) {
    doc.nics = spec.nics.map((n) => ({
      name: n.name,
      bridge: n.bridge,
      ...(n.mac ? { mac: n.mac } : {}),
      ...(n.model !== 'NIC_MODEL_UNSPECIFIED' ? { model: short(n.model, 'NIC_MODEL_') } : {}),
    }));
  }
  return stringify(doc);
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export function formatBytes(bytes: number): string {
  if (bytes >= GiB) return `${(bytes / GiB).toFixed(1)} GiB`;
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

/** `vmlet image ls`: NAME FORMAT VIRTUAL ON-DISK AGE USED-BY SOURCE */
export function formatImageList(images: readonly Image__Output[], now: Date): string {
  const rows = images.map((i) => {
    const created = timestampToDate(i.createdAt);
    return [
      i.name,
      i.format,
      formatBytes(Number(i.virtualSizeBytes)),
      formatBytes(Number(i.actualSizeBytes)),
      created ? formatAge(now.getTime() - created.getTime()) : '-',
      i.usedBy.join(',') || '-',
      i.source || '-',
    ];
  });
  return alignTable([['NAME', 'FORMAT', 'VIRTUAL', 'ON-DISK', 'AGE', 'USED-BY', 'SOURCE'], ...rows]);
}

/** Turns progress messages into a rate and a time left, from the first message on. */
export class ProgressMeter {
  private start?: { ms: number; bytes: number };

  constructor(private readonly now: () => number) {}

  /** `[#########...........]  45.0%  120.3 MiB/s  0:12 left  disk.vmdk` (bar only when `bar`). */
  line(percent: number, bytesDone: number, bytesTotal: number, current: string, bar: boolean): string {
    const ms = this.now();
    this.start ??= { ms, bytes: bytesDone };
    const seconds = (ms - this.start.ms) / 1000;
    const rate = seconds > 0.2 ? (bytesDone - this.start.bytes) / seconds : 0;
    const left = rate > 0 ? (bytesTotal - bytesDone) / rate : undefined;
    const width = 30;
    const filled = Math.round((Math.min(100, percent) / 100) * width);
    const parts = [
      ...(bar ? [`[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`] : []),
      `${percent.toFixed(1).padStart(5)}%`,
      rate > 0 ? `${(rate / MiB).toFixed(1)} MiB/s` : '- MiB/s',
      left === undefined ? '-:-- left' : `${clock(left)} left`,
      current,
    ];
    return parts.join('  ');
  }
}

function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}
