import type { NicStatus } from '../../model/vm.js';
import type { VmRecord } from '../registry.js';
import type { OpEnv } from './env.js';

/** Removes what a running VM had on the host: TAPs, sockets, pid file. The console log stays. */
export async function releaseHost(env: OpEnv, record: VmRecord, nics: readonly NicStatus[]): Promise<void> {
  try {
    await env.network.unplug(nics);
  } catch (err) {
    record.log.error({ err }, 'could not remove TAP devices');
  }
  await env.hypervisor.clearRunFiles(record.paths);
}
