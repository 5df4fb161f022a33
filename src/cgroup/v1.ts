/** The cgroup driver on v1 hierarchies: the VM's cgroup is a directory in each controller's hierarchy. */
import { failedPrecondition } from '../model/errors.js';
import { applyWrites, checkOutsideOwn, orphansIn, pidsIn, processGone, removeDirs } from './cgroupfs.js';
import type { CgroupDriver, OrphanCgroup, ParentOptions, VmCgroup } from './driver.js';
import type { CgroupFiles } from './files.js';
import { cgroupDir, hierarchyPath, type CgroupMount } from './layout.js';
import { checkCpuWeight, checkLimits, cpuWeightToShares, v1LimitWrites, type CgroupLimits } from './limits.js';
import { normalizeParent, scopePath, vmIdOfScopePath } from './names.js';
import { parseFlatKeyed } from './parse.js';

/** Controllers a VM's cgroup needs, and cpuacct, used where it is mounted for per-VM CPU figures. */
const REQUIRED = ['cpu', 'memory', 'pids'] as const;
const OPTIONAL = ['cpuacct'] as const;

/** VM cgroups as one directory per v1 hierarchy (co-mounted controllers share one). */
export class V1CgroupDriver implements CgroupDriver {
  readonly kind = 'v1';
  readonly parent: string;

  /**
   * `mounts`: controller → hierarchy mount; `own`: vmlet's own cgroup per controller
   * (/proc/self/cgroup); `companions`: the other hierarchies (key as in `own`), where the VM's
   * cgroup gets a directory with no limits so that QEMU leaves vmlet's cgroup in all of them.
   */
  constructor(
    private readonly files: CgroupFiles,
    private readonly mounts: Partial<Record<string, CgroupMount>>,
    parent: string,
    private readonly own: Partial<Record<string, string>> = {},
    private readonly companions: Partial<Record<string, CgroupMount>> = {},
  ) {
    this.parent = normalizeParent(parent);
  }

  async ensureParent(options: ParentOptions): Promise<void> {
    checkCpuWeight(options.cpuWeight, 'cgroup parent cpuWeight');
    const missing = REQUIRED.filter((c) => this.mounts[c] === undefined);
    if (missing.length > 0) throw failedPrecondition(`cgroup v1 controller(s) ${missing.join(', ')} not mounted (see /proc/self/mountinfo); vmlet needs cpu, memory and pids`);
    for (const c of [...REQUIRED, ...OPTIONAL]) {
      const mount = this.mounts[c];
      if (mount) checkOutsideOwn(hierarchyPath(mount, this.parent), this.own[c], `${c} hierarchy`);
    }
    for (const [key, mount] of Object.entries(this.companions)) {
      if (mount) checkOutsideOwn(hierarchyPath(mount, this.parent), this.own[key], `${key || 'cgroup2'} hierarchy`);
    }
    for (const dir of this.dirs(this.parent)) await this.files.mkdir(dir);
    await this.inheritCpuset(this.parent);
    await this.files.write(`${this.dirOf('cpu', this.parent)}/cpu.shares`, String(cpuWeightToShares(options.cpuWeight)));
  }

  async create(vmId: string, limits: CgroupLimits): Promise<VmCgroup> {
    checkLimits(limits);
    const path = scopePath(this.parent, vmId);
    const made: string[] = [];
    try {
      for (const dir of this.dirs(path)) if (await this.files.mkdir(dir)) made.push(dir);
      await applyWrites(this.files, (c) => this.dirOf(c, path), v1LimitWrites(limits));
      await this.inheritCpuset(path);
    } catch (err) {
      for (const dir of made.reverse()) await this.files.rmdir(dir).catch(() => undefined);
      throw err;
    }
    return { path };
  }

  /** Into every hierarchy at once: QEMU waits, paused, for this before its guest runs. */
  async addProcess(path: string, pid: number): Promise<void> {
    await Promise.all(
      this.dirs(this.checked(path)).map(async (dir) => {
        const file = `${dir}/cgroup.procs`;
        await this.files.write(file, String(pid)).catch((err: unknown) => {
          throw processGone(err, pid, file);
        });
      }),
    );
  }

  async setCpuWeight(path: string, weight: number): Promise<void> {
    checkCpuWeight(weight, 'cgroup cpuWeight');
    await this.files.write(`${this.dirOf('cpu', this.checked(path))}/cpu.shares`, String(cpuWeightToShares(weight)));
  }

  async oomKilled(path: string): Promise<number> {
    const dir = this.dirOf('memory', this.checked(path));
    const kills = parseFlatKeyed(await this.files.read(`${dir}/memory.oom_control`))['oom_kill'];
    if (kills !== undefined) return kills;
    // Kernels before 4.13 count no OOM kills: a hit limit is the best sign there is.
    const [failcnt, maxUsage, limit] = await Promise.all(
      ['memory.failcnt', 'memory.max_usage_in_bytes', 'memory.limit_in_bytes'].map(async (f) => Number(await this.files.read(`${dir}/${f}`))),
    );
    return failcnt! > 0 && maxUsage! >= limit! ? 1 : 0;
  }

  async remove(path: string): Promise<void> {
    await removeDirs(this.files, this.dirs(this.checked(path)));
  }

  async listOrphans(keep: ReadonlySet<string>): Promise<OrphanCgroup[]> {
    return orphansIn(this.files, this.dirs(this.parent), this.parent, keep);
  }

  async pidsOf(path: string): Promise<number[]> {
    return pidsIn(this.files, this.dirs(this.checked(path)));
  }

  /** The path's directory in every hierarchy vmlet uses, each once, the companions last. */
  private dirs(path: string): string[] {
    const mounts = [...[...REQUIRED, ...OPTIONAL].map((c) => this.mounts[c]), ...Object.values(this.companions)].filter((m) => m !== undefined);
    return [...new Set(mounts.map((m) => cgroupDir(m, path)))];
  }

  /**
   * A new v1 cpuset cgroup has no CPUs and no memory nodes, and refuses processes until it has:
   * each level of `path` that is empty takes its parent's (what cgroup.clone_children would do).
   */
  private async inheritCpuset(path: string): Promise<void> {
    const mount = this.companions['cpuset'];
    if (!mount) return;
    let dir = mount.mountPoint;
    for (const part of path.split('/').filter(Boolean)) {
      const parentDir = dir;
      dir = `${dir}/${part}`;
      for (const file of ['cpuset.cpus', 'cpuset.mems']) {
        if ((await this.files.read(`${dir}/${file}`)).trim() !== '') continue;
        await this.files.write(`${dir}/${file}`, (await this.files.read(`${parentDir}/${file}`)).trim());
      }
    }
  }

  private dirOf(controller: string, path: string): string {
    const mount = this.mounts[controller];
    if (!mount) throw failedPrecondition(`cgroup v1 controller ${controller} is not mounted`);
    return cgroupDir(mount, path);
  }

  private checked(path: string): string {
    vmIdOfScopePath(this.parent, path);
    return path;
  }
}
