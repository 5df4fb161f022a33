import { closeSync, fsync, mkdirSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

/*
 * fsync and rename go to libuv's thread pool; open, write and close of a small file are
 * page-cache work, cheaper than a thread-pool round trip. A rename over an existing file is not:
 * ext4 starts the new file's writeback there (auto_da_alloc), which would stall the event loop
 * (docs/atomic-writes.md).
 */
const fsyncAsync = promisify(fsync);

/** A file written to a synced temp file, not yet renamed into place. */
interface Staged {
  tmp: string;
  path: string;
}

async function stage(path: string, data: string | Buffer, mode: number): Promise<Staged> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeFileSync(fd, data);
    await fsyncAsync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  return { tmp, path };
}

async function syncDir(dir: string): Promise<void> {
  const fd = openSync(dir, 'r');
  try {
    await fsyncAsync(fd);
  } finally {
    closeSync(fd);
  }
}

export interface AtomicWriteOptions {
  mode?: number;
  /**
   * fsync the directory after the renames (default true), so that after a power loss the new
   * files are there, not only "old or new". Needed when the files are new (a VM's existence); a
   * file that is rewritten often (a status) can do without, as libvirt's virFileRewrite does:
   * either version survives whole, and the fsync of the data is what guarantees that.
   */
  syncDir?: boolean;
}

/**
 * Writes files of one directory so that a crash at any instant leaves each either old or new:
 * every temp file is written and fsynced (in parallel), then renamed into place in the given
 * order, then (unless told otherwise) the directory is fsynced once.
 */
export async function writeFilesAtomic(files: { path: string; data: string | Buffer }[], options: AtomicWriteOptions = {}): Promise<void> {
  const { mode = 0o640, syncDir: durable = true } = options;
  const staged = await Promise.allSettled(files.map((f) => stage(f.path, f.data, mode)));
  const failed = staged.find((s) => s.status === 'rejected');
  if (failed) {
    for (const s of staged) if (s.status === 'fulfilled') rmSync(s.value.tmp, { force: true });
    throw (failed as PromiseRejectedResult).reason;
  }
  const ready = staged.map((s) => (s as PromiseFulfilledResult<Staged>).value);
  for (const [i, s] of ready.entries()) {
    try {
      await rename(s.tmp, s.path);
    } catch (err) {
      for (const r of ready.slice(i)) rmSync(r.tmp, { force: true });
      throw err;
    }
  }
  if (!durable) return;
  const dirs = new Set(ready.map((s) => dirname(s.path)));
  await Promise.all([...dirs].map(syncDir));
}

/**
 * Replaces a file with synchronous calls and no fsync, making its directory when missing: a crash
 * of the process leaves the old or the new file whole, a power loss may leave neither. For files
 * on a tmpfs, which a power loss takes anyway.
 */
export function replaceFileSync(path: string, data: string, mode = 0o640): void {
  const tmp = `${path}.tmp`;
  try {
    writeFileSync(tmp, data, { mode });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
    writeFileSync(tmp, data, { mode });
  }
  renameSync(tmp, path);
}

export const json = (value: unknown): string => JSON.stringify(value, null, 2) + '\n';

export const writeJsonAtomic = (path: string, value: unknown, options?: AtomicWriteOptions): Promise<void> =>
  writeFilesAtomic([{ path, data: json(value) }], options);
