import { statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';

/** statfs f_type of tmpfs. */
const TMPFS_MAGIC = 0x01021994;

/**
 * Where benchmarks put run dirs (QEMU's sockets, pidfiles, logs): on a tmpfs, as on a production
 * node, whose /run (vmlet's default --run-dir /run/vmlet) is one. On disk, QEMU creating its files
 * while vmlet fsyncs state next to them would measure the disk's journal, not vmlet. Falls back
 * to the temp dir when no tmpfs is there.
 */
export async function runtimeBase(): Promise<{ dir: string; tmpfs: boolean }> {
  for (const dir of ['/run', '/dev/shm']) {
    try {
      if ((await statfs(dir)).type === TMPFS_MAGIC) return { dir, tmpfs: true };
    } catch {
      // not there: try the next
    }
  }
  return { dir: tmpdir(), tmpfs: false };
}
