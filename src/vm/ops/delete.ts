import { failedPrecondition, notFound } from '../../model/errors.js';
import type { VmRecord } from '../registry.js';
import type { OpEnv } from './env.js';
import { ensureStopped, type StopOptions } from './stop.js';

/** DeleteVm: refused while migrating out (and while incoming, unless forced). */
export async function deleteVm(env: OpEnv, record: VmRecord, force: boolean): Promise<void> {
  if (!env.vms.has(record.id) || env.vms.record(record.id) !== record) throw notFound(`VM ${record.id}`);
  const { phase } = record.status;
  if (phase === 'Migrating' || (phase === 'Incoming' && !force)) {
    throw failedPrecondition(`VM ${record.id} is ${phase}; cancel the migration first${phase === 'Incoming' ? ' (or delete with force)' : ''}`);
  }
  await retire(env, record, 'deletion requested', { graceSeconds: env.settings.defaultStopGraceSeconds, force });
}

/**
 * The end of a VM on this node: Deleting, QEMU stopped (as `stop` says), its host traces gone,
 * then its files, and watchers see DELETED. A delete, a migrated-away source, a discarded
 * incoming VM and a create whose state could not be written all end here.
 */
export async function retire(env: OpEnv, record: VmRecord, reason: string, stop: StopOptions): Promise<void> {
  if (record.status.phase !== 'Deleting') env.vms.transition(record, 'Deleting', reason);
  await ensureStopped(env, record, stop);
  await env.vms.remove(record);
}

/** Retire without a grace period. */
export const FORCE: StopOptions = { graceSeconds: 0, force: true };
