import { open } from 'node:fs/promises';
import { QCOW2_MAGIC, readPrefix } from '../image-header.js';

/** The source formats an import reads. `ovf` is a descriptor given on its own, next to its disks. */
export const SOURCE_FORMATS = ['vmdk', 'ova', 'ovf', 'qcow2', 'raw', 'vhdx', 'vdi'] as const;
export type SourceFormat = (typeof SOURCE_FORMATS)[number];

/** Bytes detectFormat looks at: every magic below sits in the first block of a tar header or image. */
export const DETECT_BYTES = 4096;

const ascii = (head: Uint8Array, offset: number, text: string): boolean =>
  head.length >= offset + text.length && Buffer.from(head.buffer, head.byteOffset + offset, text.length).toString('latin1') === text;

/**
 * The format a file's first bytes say (pure). vmlet never lets qemu-img probe: this decides the
 * driver it is told. Anything without a known magic is raw.
 */
export function detectFormat(head: Uint8Array): SourceFormat {
  const buf = Buffer.from(head.buffer, head.byteOffset, head.length);
  if (buf.length >= 4 && buf.subarray(0, 4).equals(QCOW2_MAGIC)) return 'qcow2';
  // Hosted sparse extents (KDMV) and ESX sparse (COWD) both open with QEMU's vmdk driver.
  if (ascii(head, 0, 'KDMV') || ascii(head, 0, 'COWD')) return 'vmdk';
  if (ascii(head, 0, 'vhdxfile')) return 'vhdx';
  if (buf.length >= 0x44 && buf.readUInt32LE(0x40) === 0xbeda107f) return 'vdi';
  // POSIX ustar and GNU tar both put "ustar" at offset 257 of a member header.
  if (ascii(head, 257, 'ustar')) return 'ova';
  const text = buf.subarray(0, Math.min(buf.length, 1024)).toString('latin1').replace(/^\uFEFF/, '').trimStart();
  if (text.startsWith('# Disk DescriptorFile')) return 'vmdk';
  if (text.startsWith('<?xml') || text.startsWith('<')) {
    if (/<(?:[\w-]+:)?Envelope[\s>]/.test(buf.toString('latin1'))) return 'ovf';
  }
  return 'raw';
}

/** The first DETECT_BYTES bytes of a file (fewer when it is shorter). */
export async function readHead(path: string, length = DETECT_BYTES): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    return await readPrefix(file, length);
  } finally {
    await file.close();
  }
}
