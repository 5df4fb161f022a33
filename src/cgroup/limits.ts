/** A VM cgroup's limits and their rendering as v2 and v1 control files. Pure. */
import { invalidArgument } from '../model/errors.js';

/** A hard CPU cap: `quotaUs` of CPU time per `periodUs` (cpu.max, cpu.cfs_quota_us/cfs_period_us). */
export interface CpuQuota {
  quotaUs: number;
  periodUs: number;
}

/** What a VM's cgroup enforces. */
export interface CgroupLimits {
  /** memory.max / memory.limit_in_bytes: guest memory plus QEMU's overhead (see memoryOverhead). Swap is set to 0. */
  memoryBytes: number;
  /** pids.max: QEMU's threads count as tasks. */
  pidsMax: number;
  /** cpu.weight, 1..10000 (v1: cpu.shares converted as systemd does). */
  cpuWeight: number;
  /** A hard cap; undefined for none. */
  cpuQuota?: CpuQuota;
}

/** The lowest cgroup v2 cpu.weight. */
export const CPU_WEIGHT_MIN = 1;
/** The highest cgroup v2 cpu.weight. */
export const CPU_WEIGHT_MAX = 10_000;
/** The kernel's and systemd's default cpu.weight (cpu.shares 1024 in v1). */
export const CPU_WEIGHT_DEFAULT = 100;
/**
 * The default weight of the guests' parent: systemd's default, so that all guests together weigh
 * as much as one sibling slice (or, on a v1 host without systemd, one process of the root cgroup
 * such as vmlet), and vmlet keeps a share of CPU while every vCPU is busy.
 */
export const DEFAULT_PARENT_CPU_WEIGHT = CPU_WEIGHT_DEFAULT;
/**
 * A VM cell's weight while its QEMU initialises (paused, before any guest code): on a node whose
 * running guests keep every CPU busy, a new QEMU at a guest's weight would get 1/n of the guests'
 * share and miss its QMP deadline. Admission bounds how many cells hold it at once.
 */
export const STARTING_CPU_WEIGHT = CPU_WEIGHT_MAX;
/** The default CFS period (cpu.max's second field, cpu.cfs_period_us). */
export const DEFAULT_CPU_PERIOD_US = 100_000;
/**
 * Default pids.max of a VM: QEMU has a main, an RCU and a thread per vCPU, up to 64 block I/O
 * workers per AioContext, and vhost workers that count as tasks on recent kernels.
 */
export const DEFAULT_PIDS_MAX = 1024;

const clamp = (n: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, n));

/** cpu.weight → v1 cpu.shares as systemd converts it: 100 ↔ 1024, clamped to the kernel's 2..262144. */
export function cpuWeightToShares(weight: number): number {
  return clamp(Math.floor((weight * 1024) / CPU_WEIGHT_DEFAULT), 2, 262_144);
}

/** A VM's CPU weight: the default weight per vCPU, so that under contention CPU time follows the vCPU count. */
export function cpuWeightForVcpus(vcpus: number): number {
  return clamp(CPU_WEIGHT_DEFAULT * Math.max(1, Math.floor(vcpus)), CPU_WEIGHT_MIN, CPU_WEIGHT_MAX);
}

/** The spec's cpu_limit_millicores as a quota per period; undefined for 0 (no cap). The kernel's floor is 1 ms per period. */
export function cpuQuotaFromMillicores(millicores: number, periodUs = DEFAULT_CPU_PERIOD_US): CpuQuota | undefined {
  if (!Number.isInteger(millicores) || millicores < 0) throw invalidArgument('cpu_limit_millicores', `must be a non-negative integer, got ${millicores}`);
  if (millicores === 0) return undefined;
  return { quotaUs: Math.max(1000, Math.floor((millicores * periodUs) / 1000)), periodUs };
}

/** Throws INVALID_ARGUMENT when a limit is out of the kernel's range. */
export function checkLimits(limits: CgroupLimits): void {
  const int = (n: number): boolean => Number.isSafeInteger(n);
  if (!int(limits.memoryBytes) || limits.memoryBytes < 1 << 20) throw invalidArgument('cgroup.memoryBytes', `must be an integer of at least 1 MiB, got ${limits.memoryBytes}`);
  if (!int(limits.pidsMax) || limits.pidsMax < 1) throw invalidArgument('cgroup.pidsMax', `must be a positive integer, got ${limits.pidsMax}`);
  checkCpuWeight(limits.cpuWeight, 'cgroup.cpuWeight');
  const q = limits.cpuQuota;
  if (q && (!int(q.periodUs) || q.periodUs < 1000 || q.periodUs > 1_000_000 || !int(q.quotaUs) || q.quotaUs < 1000)) {
    throw invalidArgument('cgroup.cpuQuota', `period must be 1000..1000000 µs and quota at least 1000 µs, got ${q.quotaUs}/${q.periodUs}`);
  }
}

/** Throws INVALID_ARGUMENT naming `field` unless `weight` is an integer in 1..10000. */
export function checkCpuWeight(weight: number, field: string): void {
  if (!Number.isInteger(weight) || weight < CPU_WEIGHT_MIN || weight > CPU_WEIGHT_MAX) {
    throw invalidArgument(field, `must be an integer in ${CPU_WEIGHT_MIN}..${CPU_WEIGHT_MAX}, got ${weight}`);
  }
}

/** One control file write; `ifPresent` writes are skipped where the kernel does not offer the file (no swap accounting). */
export interface ControlWrite {
  controller: 'memory' | 'pids' | 'cpu';
  file: string;
  value: string;
  ifPresent?: boolean;
}

/** The v2 control files of a VM cgroup, in write order. */
export function v2LimitWrites(limits: CgroupLimits): ControlWrite[] {
  const q = limits.cpuQuota;
  return [
    { controller: 'memory', file: 'memory.max', value: String(limits.memoryBytes) },
    { controller: 'memory', file: 'memory.swap.max', value: '0', ifPresent: true },
    { controller: 'pids', file: 'pids.max', value: String(limits.pidsMax) },
    { controller: 'cpu', file: 'cpu.weight', value: String(limits.cpuWeight) },
    { controller: 'cpu', file: 'cpu.max', value: q ? `${q.quotaUs} ${q.periodUs}` : `max ${DEFAULT_CPU_PERIOD_US}` },
  ];
}

/**
 * The v1 control files of a VM cgroup, in write order. memory+swap may never be below memory,
 * so it is lifted first, then memory is set, then memory+swap is set equal to it (no swap).
 */
export function v1LimitWrites(limits: CgroupLimits): ControlWrite[] {
  const q = limits.cpuQuota;
  const mem = String(limits.memoryBytes);
  return [
    { controller: 'memory', file: 'memory.memsw.limit_in_bytes', value: '-1', ifPresent: true },
    { controller: 'memory', file: 'memory.limit_in_bytes', value: mem },
    { controller: 'memory', file: 'memory.memsw.limit_in_bytes', value: mem, ifPresent: true },
    { controller: 'pids', file: 'pids.max', value: String(limits.pidsMax) },
    { controller: 'cpu', file: 'cpu.shares', value: String(cpuWeightToShares(limits.cpuWeight)) },
    // The period first, so that the quota is a share of the intended period.
    { controller: 'cpu', file: 'cpu.cfs_period_us', value: String(q?.periodUs ?? DEFAULT_CPU_PERIOD_US) },
    { controller: 'cpu', file: 'cpu.cfs_quota_us', value: q ? String(q.quotaUs) : '-1' },
  ];
}
