import { setImmediate as nextLoopTurn } from 'node:timers/promises';
import type { VmSpec } from '../../model/vm.js';
import { runPlan, type Step } from '../plan.js';
import type { VmRecord } from '../registry.js';
import { checkBridges, checkCouldFit, checkMacsFree } from './checks.js';
import type { OpEnv } from './env.js';
import { reserveUid } from './owner.js';

interface Creation {
  env: OpEnv;
  spec: VmSpec;
  record?: VmRecord;
  /** Settles when the VM's state files are on disk. */
  durable?: Promise<void>;
}

const createSteps: readonly Step<Creation>[] = [
  {
    // A VM that can never fit is refused here; whether it fits now is checked at start.
    name: 'check',
    async run({ env, spec }) {
      checkCouldFit(env, spec);
      checkMacsFree(env, spec.id, spec.nics);
      await checkBridges(env, spec.nics);
    },
  },
  {
    // The uid is reserved until the VM is registered with it, so two creates never share one.
    name: 'prepare disks',
    async run(c) {
      const status = c.env.vms.newStatus('Pending', 'created');
      const paths = c.env.store.paths(c.spec.id);
      const { uid, release } = reserveUid(c.env);
      try {
        status.disks = await c.env.storage.prepareDisks(c.spec, paths);
        await c.env.storage.prepareVmFiles(c.spec, paths);
        if (uid) {
          status.uid = uid;
          await c.env.storage.own(paths, status.disks, { uid, gid: uid });
        }
        c.record = c.env.vms.add(c.spec, status);
      } finally {
        release();
      }
    },
    async undo(c) {
      if (c.record) c.env.vms.drop(c.record);
      await c.env.store.remove(c.spec.id);
    },
  },
  {
    // Not awaited, and begun a loop turn later: a start right behind the create goes first, and
    // the files are written while it runs. The call answers once both are done.
    name: 'write state',
    run(c) {
      const record = c.record!;
      c.durable = nextLoopTurn().then(() => c.env.store.create(c.spec, record.status));
      c.durable.catch(() => undefined);
      record.saving = c.durable.catch(() => undefined);
      record.log.info({ vcpus: c.spec.vcpus, memoryMib: c.spec.memoryMib }, 'VM created');
      c.env.vms.announce(record);
    },
  },
];

/** A new VM: checked, its overlays made, registered while its state files are written. */
export async function createVm(env: OpEnv, spec: VmSpec): Promise<{ record: VmRecord; durable: Promise<void> }> {
  const creation: Creation = { env, spec };
  await runPlan(createSteps, creation, env.vms.log);
  return { record: creation.record!, durable: creation.durable! };
}
