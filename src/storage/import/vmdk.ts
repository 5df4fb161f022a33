import { open } from 'node:fs/promises';

/** The files a VMDK descriptor makes QEMU open: its extents and, for a delta disk, its parent. */
export interface VmdkReferences {
  extents: string[];
  parent?: string;
}

/** The extent file names and parentFileNameHint of a VMDK descriptor (pure). */
export function vmdkReferences(descriptor: string): VmdkReferences {
  const extents: string[] = [];
  let parent: string | undefined;
  for (const raw of descriptor.split(/\r?\n/)) {
    const line = raw.trim();
    // RW 2048 SPARSE "disk-s001.vmdk" [offset]; ZERO extents name no file.
    const extent = /^(?:RW|RDONLY|NOACCESS)\s+\d+\s+(\w+)\s+"([^"]*)"/.exec(line);
    if (extent && extent[1] !== 'ZERO') extents.push(extent[2]!);
    const hint = /^parentFileNameHint\s*=\s*"([^"]*)"/.exec(line);
    if (hint) parent = hint[1]!;
  }
  return { extents, ...(parent === undefined ? {} : { parent }) };
}

const SECTOR = 512;
/** The hosted sparse extent header's flag for deflated grains (VMware's Virtual Disk Format 1.1). */
const COMPRESSED_GRAINS = 1 << 16;

/** A hosted sparse extent whose grains are deflated: streamOptimized, as vSphere exports disks. */
export function hasCompressedGrains(head: Buffer): boolean {
  return head.length >= 12 && head.toString('latin1', 0, 4) === 'KDMV' && (head.readUInt32LE(8) & COMPRESSED_GRAINS) !== 0;
}
const MAX_DESCRIPTOR = 1024 * 1024;

/**
 * The descriptor embedded in a hosted sparse extent (`KDMV`, as monolithicSparse and
 * streamOptimized files carry it), read from the file at `base` (its offset inside an OVA);
 * empty when it has none.
 */
export async function embeddedDescriptor(path: string, base = 0): Promise<string> {
  const file = await open(path, 'r');
  try {
    const header = Buffer.alloc(44);
    await file.read(header, 0, header.length, base);
    if (header.toString('latin1', 0, 4) !== 'KDMV') return '';
    const sector = header.readBigUInt64LE(28);
    // A damaged header's offset may be anything; qemu-img then refuses the file itself.
    if (sector === 0n || sector * BigInt(SECTOR) > BigInt(Number.MAX_SAFE_INTEGER - base)) return '';
    const offset = Number(sector) * SECTOR;
    const size = Math.min(Number(header.readBigUInt64LE(36)) * SECTOR, MAX_DESCRIPTOR);
    if (size === 0) return '';
    const buf = Buffer.alloc(size);
    const { bytesRead } = await file.read(buf, 0, size, base + offset);
    const text = buf.subarray(0, bytesRead);
    const nul = text.indexOf(0);
    return text.subarray(0, nul < 0 ? text.length : nul).toString('utf8');
  } finally {
    await file.close();
  }
}
