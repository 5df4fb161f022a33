import type { NicStatus, VmStatus } from '../../model/vm.js';
import type { VmRecord } from '../registry.js';
import type { OpEnv } from './env.js';

/** The status of a VM whose QEMU is gone: what releaseHost removed is no longer recorded. */
export const RELEASED: Pick<VmStatus, 'pid' | 'nics' | 'cgroup' | 'guest'> = { pid: 0, nics: [], cgroup: undefined, guest: undefined };

/** Removes what a running VM had on the host: TAPs, its cell, sockets, pid file. The console log stays. */
export async function releaseHost(env: OpEnv, record: VmRecord, nics: readonly NicStatus[]): Promise<void> {
  try {
    await env.network.unplug(nics);
  } catch (err) {
    record.log.error({ err }, 'could not remove TAP devices');
  }
  const cell = record.status.cgroup;
  if (cell && env.cells) await env.cells.remove(cell).catch((err: unknown) => record.log.error({ err, cgroup: cell }, 'could not remove the VM cgroup'));
  await env.hypervisor.clearRunFiles(record.paths);
}
