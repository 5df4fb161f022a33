/** The port a VM start uses to put its QEMU in a cgroup of its own, outside vmlet's. */
import type { CgroupLimits } from './limits.js';

/** A VM's cgroup: its path relative to each hierarchy's root, e.g. `vmlet.slice/vmlet-web1.scope` (goes in VmStatus). */
export interface VmCgroup {
  path: string;
}

/** A VM cgroup under the parent that no kept VM owns. */
export interface OrphanCgroup {
  vmId: string;
  path: string;
}

/** Options of the parent cgroup that holds every VM's cgroup. */
export interface ParentOptions {
  /** The parent's CPU weight against its siblings, bounded so that vmlet still answers when every vCPU is busy. */
  cpuWeight: number;
}

/**
 * One cgroup per VM under a parent (`--cgroup-parent`, default `vmlet.slice`). Implemented on
 * cgroupfs v2, on cgroupfs v1 (one directory per hierarchy), and through systemd's D-Bus API.
 */
export interface CgroupDriver {
  /** `v2`, `v1` (cgroupfs) or `systemd` (transient scopes). */
  readonly kind: 'v2' | 'v1' | 'systemd';
  /** The parent, relative to each hierarchy's root. */
  readonly parent: string;
  /** Creates the parent if needed, enables the controllers below it, and sets its CPU weight. */
  ensureParent(options: ParentOptions): Promise<void>;
  /** Creates (or re-applies the limits of) a VM's cgroup; nothing is in it yet. */
  create(vmId: string, limits: CgroupLimits): Promise<VmCgroup>;
  /** Moves a process (QEMU, before it runs guest code) into the VM's cgroup. */
  addProcess(path: string, pid: number): Promise<void>;
  /** Sets the VM cgroup's CPU weight against its siblings (v1: cpu.shares as systemd converts it). */
  setCpuWeight(path: string, weight: number): Promise<void>;
  /** How many processes the kernel OOM-killed in this cgroup (v1 without an oom_kill count: 1 when its limit was hit, else 0). */
  oomKilled(path: string): Promise<number>;
  /** Removes the VM's cgroup; fine when already gone; fails, naming them, while processes remain. */
  remove(path: string): Promise<void>;
  /** VM cgroups under the parent whose VM id is not in `keep`. */
  listOrphans(keep: ReadonlySet<string>): Promise<OrphanCgroup[]>;
  /** The processes in the VM's cgroup, ascending. */
  pidsOf(path: string): Promise<number[]>;
}
