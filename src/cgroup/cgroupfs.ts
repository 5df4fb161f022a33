/** Steps shared by the v2 and v1 cgroupfs drivers: writing limits, removing, listing, reading pids. */
import { failedPrecondition, invalidArgument } from '../model/errors.js';
import { CgroupFileError, type CgroupFiles } from './files.js';
import { isWithin } from './layout.js';
import type { ControlWrite } from './limits.js';
import { vmIdOfScope } from './names.js';
import type { OrphanCgroup } from './driver.js';
import { parseProcs } from './parse.js';

/** Writes limits in order into the directory of each write's controller; a required file that is missing means the controller is not enabled there. */
export async function applyWrites(files: CgroupFiles, dirOf: (controller: ControlWrite['controller']) => string, writes: ControlWrite[]): Promise<void> {
  for (const w of writes) {
    const file = `${dirOf(w.controller)}/${w.file}`;
    if (w.ifPresent && !(await files.exists(file))) continue;
    try {
      await files.write(file, w.value);
    } catch (err) {
      if (!(err instanceof CgroupFileError)) throw err;
      if (err.errno === 'ENOENT') throw new CgroupFileError('write', file, 'ENOENT', `the ${w.controller} controller is not enabled for this cgroup`);
      if (err.errno === 'EBUSY' && w.file === 'memory.limit_in_bytes') {
        const usage = await files.read(`${dirOf('memory')}/memory.usage_in_bytes`).catch(() => '?');
        throw new CgroupFileError('write', file, 'EBUSY', `the cgroup already uses ${usage.trim()} bytes, more than the limit ${w.value}; in cgroup v1 the limit must be set before the process is added`);
      }
      throw err;
    }
  }
}

/** Removes a cgroup's directory in every hierarchy; fine when gone, an error naming the processes while some remain. */
export async function removeDirs(files: CgroupFiles, dirs: string[]): Promise<void> {
  for (const dir of dirs) {
    try {
      await files.rmdir(dir);
    } catch (err) {
      if (!(err instanceof CgroupFileError) || err.errno !== 'EBUSY') throw err;
      const pids = await pidsIn(files, [dir]);
      const why = pids.length > 0 ? `it still has processes ${pids.join(', ')}: stop them first` : 'it still has child cgroups';
      throw failedPrecondition(`cgroup ${dir} cannot be removed: ${why}`);
    }
  }
}

/** The union of the pids in these cgroup directories, ascending; a missing directory has none. */
export async function pidsIn(files: CgroupFiles, dirs: string[]): Promise<number[]> {
  const all = new Set<number>();
  for (const dir of dirs) {
    let text: string;
    try {
      text = await files.read(`${dir}/cgroup.procs`);
    } catch (err) {
      if (err instanceof CgroupFileError && err.errno === 'ENOENT') continue;
      throw err;
    }
    for (const pid of parseProcs(text)) all.add(pid);
  }
  return [...all].sort((a, b) => a - b);
}

/** VM cgroups in any of the parent's directories whose VM id is not kept, each once. */
export async function orphansIn(files: CgroupFiles, parentDirs: string[], parent: string, keep: ReadonlySet<string>): Promise<OrphanCgroup[]> {
  const found = new Map<string, OrphanCgroup>();
  for (const dir of parentDirs) {
    for (const name of await files.listDirs(dir)) {
      const vmId = vmIdOfScope(name);
      if (vmId !== undefined && !keep.has(vmId)) found.set(vmId, { vmId, path: `${parent}/${name}` });
    }
  }
  return [...found.values()].sort((a, b) => a.vmId.localeCompare(b.vmId));
}

/** Refuses a parent inside vmlet's own cgroup: stopping vmlet's service would then stop every guest. */
export function checkOutsideOwn(parentPath: string, ownPath: string | undefined, hierarchy: string): void {
  if (ownPath === undefined || ownPath === '/' || !isWithin(parentPath, ownPath)) return;
  throw invalidArgument('cgroup-parent', `${parentPath} is inside vmlet's own cgroup ${ownPath} (${hierarchy}): guests must live outside it; choose another --cgroup-parent`);
}

/** The error of a cgroup.procs write, where ESRCH means the process does not exist (any more). */
export function processGone(err: unknown, pid: number, file: string): Error {
  if (err instanceof CgroupFileError && err.errno === 'ESRCH') return failedPrecondition(`cannot add process ${pid} to ${file}: ESRCH (the process does not exist)`);
  return err as Error;
}
