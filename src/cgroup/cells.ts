import { setTimeout as delay } from 'node:timers/promises';
import type { VmSpec } from '../model/vm.js';
import { isAlive } from '../host/process.js';
import type { CgroupDriver } from './driver.js';
import { cpuQuotaFromMillicores, cpuWeightForVcpus, DEFAULT_PIDS_MAX, STARTING_CPU_WEIGHT, type CgroupLimits } from './limits.js';
import { memoryLimitBytes, memoryOverhead, type OverheadOptions } from './overhead.js';

const MIB = 1024 * 1024;
/** How long a cell may still list exited processes that are not reaped yet. */
const REAP_WAIT_MS = 5000;
const REAP_POLL_MS = 20;

/** How a cell's memory limit is sized: the formula's options, or a fixed overhead in MiB that replaces it. */
export type CellOverhead = OverheadOptions & { fixedMib?: number };

/** A VM's cell limits from its spec: memory with QEMU's overhead, pids, a weight by vCPUs, the optional cap. */
export function limitsOf(spec: VmSpec, overhead: CellOverhead): CgroupLimits {
  const cpuQuota = cpuQuotaFromMillicores(spec.cpuLimitMillicores ?? 0);
  const guest = spec.memoryMib * MIB;
  return {
    memoryBytes: overhead.fixedMib === undefined ? memoryLimitBytes(guest, spec.vcpus, overhead) : guest + overhead.fixedMib * MIB,
    pidsMax: DEFAULT_PIDS_MAX,
    cpuWeight: cpuWeightForVcpus(spec.vcpus),
    ...(cpuQuota ? { cpuQuota } : {}),
  };
}

/** The domain's Cells port on a cgroup driver: one cgroup per VM under the driver's parent. */
export class CgroupCells {
  constructor(
    private readonly driver: CgroupDriver,
    private readonly overhead: CellOverhead,
  ) {}

  /** The cell at the start-up weight; `settle` gives it the spec's once QEMU is initialised. */
  async create(spec: VmSpec): Promise<string> {
    return (await this.driver.create(spec.id, { ...limitsOf(spec, this.overhead), cpuWeight: STARTING_CPU_WEIGHT })).path;
  }

  settle(path: string, spec: VmSpec): Promise<void> {
    return this.driver.setCpuWeight(path, limitsOf(spec, this.overhead).cpuWeight);
  }

  /** The memory a VM's cell allows beyond its guest's (kubevirt_vmi_launcher_memory_overhead_bytes). */
  overheadBytes(spec: Pick<VmSpec, 'memoryMib' | 'vcpus'>): number {
    const fixed = this.overhead.fixedMib;
    return fixed === undefined ? memoryOverhead(spec.memoryMib * MIB, spec.vcpus, this.overhead) : fixed * MIB;
  }

  enter(path: string, pid: number): Promise<void> {
    return this.driver.addProcess(path, pid);
  }

  oomKills(path: string): Promise<number> {
    return this.driver.oomKilled(path);
  }

  /**
   * Removes the cell once its QEMU is gone. A killed QEMU stays listed in the cell until its
   * parent reaps it, so a cell holding only exited processes is retried for a moment.
   */
  async remove(path: string): Promise<void> {
    const deadline = Date.now() + REAP_WAIT_MS;
    for (;;) {
      try {
        return await this.driver.remove(path);
      } catch (err) {
        const pids = await this.driver.pidsOf(path).catch(() => []);
        const alive = await Promise.all(pids.map((pid) => isAlive(pid)));
        if (alive.some(Boolean) || Date.now() > deadline) throw err;
        await delay(REAP_POLL_MS);
      }
    }
  }

  async stray(keep: ReadonlySet<string>): Promise<string[]> {
    return (await this.driver.listOrphans(keep)).map((o) => o.path);
  }
}
