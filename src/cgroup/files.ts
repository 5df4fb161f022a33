/**
 * The cgroup driver's only access to the file system: small operations on host paths
 * (`/sys/fs/cgroup/...`, `/proc/...`) under an injectable root, so unit tests run against a
 * fake tree in a temp dir. Every failure is a CgroupFileError naming the path and the errno.
 */
import { closeSync, constants, openSync, readdirSync, readFileSync, statSync, writeSync } from 'node:fs';
import { mkdir, open, rmdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { VmletError, type ErrorCode } from '../model/errors.js';

/** File operations the cgroup driver uses; paths are host paths such as `/sys/fs/cgroup/memory/x`. */
export interface CgroupFiles {
  /** The whole file as text. */
  read(path: string): Promise<string>;
  /** One write(2) of `value` to an existing file (never creates it: cgroupfs files are made by the kernel). */
  write(path: string, value: string): Promise<void>;
  /** Creates the directory and its missing parents; false when it already existed. */
  mkdir(path: string): Promise<boolean>;
  /** Removes one (cgroup) directory; false when it was already gone. */
  rmdir(path: string): Promise<boolean>;
  exists(path: string): Promise<boolean>;
  /** Names of the subdirectories; empty when the directory does not exist. */
  listDirs(path: string): Promise<string[]>;
}

/** A cgroupfs or procfs operation failed; `errno` is the kernel's code (EBUSY, ENOENT, …). */
export class CgroupFileError extends VmletError {
  constructor(
    readonly op: 'read' | 'write' | 'mkdir' | 'rmdir' | 'list',
    readonly path: string,
    readonly errno: string,
    detail?: string,
    options?: { cause?: unknown },
  ) {
    super(codeOf(errno), `cgroup: ${op} ${path} failed: ${errno}${detail ? ` (${detail})` : ''}`, options);
  }
}

function codeOf(errno: string): ErrorCode {
  return errno === 'EACCES' || errno === 'EPERM' || errno === 'EROFS' ? 'PERMISSION_DENIED' : 'FAILED_PRECONDITION';
}

const errnoOf = (err: unknown): string => (err as NodeJS.ErrnoException | undefined)?.code ?? 'EIO';

/** Wraps a Node fs error into a CgroupFileError for `path`. */
export function fileError(op: CgroupFileError['op'], path: string, err: unknown, detail?: string): CgroupFileError {
  return err instanceof CgroupFileError ? err : new CgroupFileError(op, path, errnoOf(err), detail, { cause: err });
}

/**
 * Writes that can wait in the kernel: moving a process waits for an RCU grace period (with
 * cgroup_mutex held), lowering a memory limit reclaims. Every other control file is read and
 * written at once, so those calls are made synchronously: a round trip through the thread pool
 * costs the daemon more than the call itself, and a start makes dozens of them.
 */
const WAITING_WRITES = new Set(['cgroup.procs', 'cgroup.threads', 'tasks', 'cgroup.kill', 'cgroup.freeze', 'memory.max', 'memory.high', 'memory.swap.max', 'memory.reclaim', 'memory.limit_in_bytes', 'memory.memsw.limit_in_bytes']);

function writeAtOnce(file: string, value: string): void {
  const fd = openSync(file, constants.O_WRONLY);
  try {
    writeSync(fd, value);
  } finally {
    closeSync(fd);
  }
}

/** The host's files, or those of a fake tree when `root` is a temp dir. mkdir and rmdir take cgroup_mutex, and stay off the event loop. */
export function hostCgroupFiles(root = ''): CgroupFiles {
  const at = (path: string): string => (root ? join(root, path) : path);
  return {
    async read(path) {
      try {
        return readFileSync(at(path), 'utf8');
      } catch (err) {
        throw fileError('read', path, err);
      }
    },
    async write(path, value) {
      try {
        if (!WAITING_WRITES.has(basename(path))) return writeAtOnce(at(path), value);
        const handle = await open(at(path), constants.O_WRONLY);
        try {
          await handle.write(value);
        } finally {
          await handle.close();
        }
      } catch (err) {
        throw fileError('write', path, err, `writing ${JSON.stringify(value)}`);
      }
    },
    async mkdir(path) {
      try {
        return (await mkdir(at(path), { recursive: true })) !== undefined;
      } catch (err) {
        throw fileError('mkdir', path, err);
      }
    },
    async rmdir(path) {
      try {
        await rmdir(at(path));
        return true;
      } catch (err) {
        if (errnoOf(err) === 'ENOENT') return false;
        throw fileError('rmdir', path, err);
      }
    },
    async exists(path) {
      try {
        return statSync(at(path), { throwIfNoEntry: false }) !== undefined;
      } catch {
        return false;
      }
    },
    async listDirs(path) {
      try {
        return readdirSync(at(path), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
      } catch (err) {
        if (errnoOf(err) === 'ENOENT') return [];
        throw fileError('list', path, err);
      }
    },
  };
}
