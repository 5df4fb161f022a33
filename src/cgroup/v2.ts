/** The cgroup driver on the unified (v2) hierarchy: one directory per VM, controllers enabled top-down. */
import { failedPrecondition } from '../model/errors.js';
import { applyWrites, checkOutsideOwn, orphansIn, pidsIn, processGone, removeDirs } from './cgroupfs.js';
import type { CgroupDriver, OrphanCgroup, ParentOptions, VmCgroup } from './driver.js';
import { CgroupFileError, type CgroupFiles } from './files.js';
import { cgroupDir, hierarchyPath, type CgroupMount } from './layout.js';
import { checkCpuWeight, checkLimits, v2LimitWrites, type CgroupLimits } from './limits.js';
import { normalizeParent, scopePath, vmIdOfScopePath } from './names.js';
import { parseControllers, parseFlatKeyed } from './parse.js';

/** The controllers a VM's cgroup needs. */
export const V2_CONTROLLERS = ['cpu', 'memory', 'pids'] as const;

/** VM cgroups as directories of the cgroup2 mount. */
export class V2CgroupDriver implements CgroupDriver {
  readonly kind = 'v2';
  readonly parent: string;

  /** `ownPath`: vmlet's own cgroup (the `0::` line of /proc/self/cgroup), which the parent must not be inside. */
  constructor(
    private readonly files: CgroupFiles,
    private readonly mount: CgroupMount,
    parent: string,
    private readonly ownPath?: string,
  ) {
    this.parent = normalizeParent(parent);
  }

  async ensureParent(options: ParentOptions): Promise<void> {
    checkCpuWeight(options.cpuWeight, 'cgroup parent cpuWeight');
    checkOutsideOwn(hierarchyPath(this.mount, this.parent), this.ownPath, 'cgroup2');
    const rootControllers = parseControllers(await this.files.read(`${this.mount.mountPoint}/cgroup.controllers`));
    const missing = V2_CONTROLLERS.filter((c) => !rootControllers.has(c));
    if (missing.length > 0) {
      throw failedPrecondition(
        `cgroup v2 controller(s) ${missing.join(', ')} not available at ${this.mount.mountPoint} (cgroup.controllers: ${[...rootControllers].join(' ') || 'none'}); ` +
          'they may be bound to a v1 hierarchy or disabled on the kernel command line',
      );
    }
    await this.files.mkdir(this.dir(this.parent));
    // Each level from the mount's root down to the parent must delegate the controllers to its children.
    const parts = this.parent.split('/');
    for (let i = 0; i <= parts.length; i++) await this.enableControllers(cgroupDir(this.mount, parts.slice(0, i).join('/')));
    await this.files.write(`${this.dir(this.parent)}/cpu.weight`, String(options.cpuWeight));
  }

  async create(vmId: string, limits: CgroupLimits): Promise<VmCgroup> {
    checkLimits(limits);
    const path = scopePath(this.parent, vmId);
    const dir = this.dir(path);
    const made = await this.files.mkdir(dir);
    try {
      await applyWrites(this.files, () => dir, v2LimitWrites(limits));
    } catch (err) {
      if (made) await this.files.rmdir(dir).catch(() => undefined);
      throw err;
    }
    return { path };
  }

  async addProcess(path: string, pid: number): Promise<void> {
    const file = `${this.dir(this.checked(path))}/cgroup.procs`;
    await this.files.write(file, String(pid)).catch((err: unknown) => {
      throw processGone(err, pid, file);
    });
  }

  async setCpuWeight(path: string, weight: number): Promise<void> {
    checkCpuWeight(weight, 'cgroup cpuWeight');
    await this.files.write(`${this.dir(this.checked(path))}/cpu.weight`, String(weight));
  }

  async oomKilled(path: string): Promise<number> {
    return parseFlatKeyed(await this.files.read(`${this.dir(this.checked(path))}/memory.events`))['oom_kill'] ?? 0;
  }

  async remove(path: string): Promise<void> {
    await removeDirs(this.files, [this.dir(this.checked(path))]);
  }

  async listOrphans(keep: ReadonlySet<string>): Promise<OrphanCgroup[]> {
    return orphansIn(this.files, [this.dir(this.parent)], this.parent, keep);
  }

  async pidsOf(path: string): Promise<number[]> {
    return pidsIn(this.files, [this.dir(this.checked(path))]);
  }

  private dir(path: string): string {
    return cgroupDir(this.mount, path);
  }

  private checked(path: string): string {
    vmIdOfScopePath(this.parent, path);
    return path;
  }

  private async enableControllers(dir: string): Promise<void> {
    const file = `${dir}/cgroup.subtree_control`;
    const enabled = parseControllers(await this.files.read(file));
    const wanted = V2_CONTROLLERS.filter((c) => !enabled.has(c));
    if (wanted.length === 0) return;
    try {
      await this.files.write(file, wanted.map((c) => `+${c}`).join(' '));
    } catch (err) {
      if (err instanceof CgroupFileError && err.errno === 'EBUSY') {
        throw new CgroupFileError('write', file, 'EBUSY', 'this cgroup holds processes itself, and cgroup v2 enables controllers for children only in cgroups without processes; choose a --cgroup-parent whose ancestors hold none');
      }
      throw err;
    }
  }
}
