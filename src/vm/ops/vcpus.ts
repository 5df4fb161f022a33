import { failedPrecondition } from '../../model/errors.js';
import type { Phase } from '../../model/vm.js';
import type { VmRecord } from '../registry.js';
import type { OpEnv } from './env.js';

export function pause(env: OpEnv, record: VmRecord): Promise<void> {
  return switchVcpus(env, record, { from: 'Running', to: 'Paused', verb: 'paused' });
}

export function resume(env: OpEnv, record: VmRecord): Promise<void> {
  return switchVcpus(env, record, { from: 'Paused', to: 'Running', verb: 'resumed' });
}

/** Idempotent in the target phase; the machine's own event may have moved the phase already. */
async function switchVcpus(env: OpEnv, record: VmRecord, o: { from: Phase; to: Phase; verb: string }): Promise<void> {
  const { phase } = record.status;
  if (phase === o.to) return;
  const machine = record.machine;
  if (phase !== o.from || !machine) throw failedPrecondition(`VM ${record.id} is ${phase}; only a ${o.from} VM can be ${o.verb}`);
  await (o.to === 'Paused' ? machine.pause() : machine.run());
  if (record.status.phase === o.from) env.vms.transition(record, o.to, `${o.verb} by request`);
}

/** A hard reset of the guest. */
export async function reboot(env: OpEnv, record: VmRecord): Promise<void> {
  const { phase } = record.status;
  if ((phase !== 'Running' && phase !== 'Paused') || !record.machine) {
    throw failedPrecondition(`VM ${record.id} is ${phase}; only a Running or Paused VM can be rebooted`);
  }
  await record.machine.reset();
  env.vms.update(record, { reason: 'reset by request' });
}
