/**
 * The size a VM's disk offers its guest, for `kubevirt_vm_disk_allocated_size_bytes` (KubeVirt
 * reports the capacity of the disk's PersistentVolumeClaim). A raw file's size, a qcow2's
 * virtual size from its header, a block device's size from sysfs. Results are kept while the
 * file's size and mtime stay the same, so a scrape reads a header only after a change.
 */
import { open, readFile, stat } from 'node:fs/promises';

export interface DiskSize {
  bytes: number;
  /** KubeVirt's volume_mode: `Block` for a block device, else `Filesystem`. */
  volumeMode: 'Block' | 'Filesystem';
}

/** The virtual size: a big-endian u64 at offset 24 of a qcow2 header. */
export function qcow2VirtualSize(header: Buffer): number {
  if (header.length < 32 || header.readUInt32BE(0) !== 0x514649fb) throw new Error('not a qcow2 header');
  return Number(header.readBigUInt64BE(24));
}

/** Linux's dev_t encoding of the major and minor numbers. */
export function devNumbers(rdev: number): { major: number; minor: number } {
  const dev = BigInt(rdev);
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return { major, minor };
}

async function readHeader(path: string): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const buf = Buffer.alloc(32);
    const { bytesRead } = await file.read(buf, 0, 32, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

export class DiskSizes {
  private readonly known = new Map<string, { key: string; size: DiskSize }>();

  async read(path: string, format: 'raw' | 'qcow2'): Promise<DiskSize> {
    const s = await stat(path);
    const key = `${format}/${s.size}/${s.mtimeMs}/${s.rdev}`;
    const hit = this.known.get(path);
    if (hit?.key === key) return hit.size;
    let size: DiskSize;
    if (format === 'qcow2') {
      size = { bytes: qcow2VirtualSize(await readHeader(path)), volumeMode: s.isBlockDevice() ? 'Block' : 'Filesystem' };
    } else if (s.isBlockDevice()) {
      const { major, minor } = devNumbers(s.rdev);
      const sectors = Number((await readFile(`/sys/dev/block/${major}:${minor}/size`, 'utf8')).trim());
      size = { bytes: sectors * 512, volumeMode: 'Block' };
    } else {
      size = { bytes: s.size, volumeMode: 'Filesystem' };
    }
    this.known.set(path, { key, size });
    return size;
  }

  /** Forgets files no VM uses any more. */
  keepOnly(paths: ReadonlySet<string>): void {
    for (const p of this.known.keys()) if (!paths.has(p)) this.known.delete(p);
  }
}
