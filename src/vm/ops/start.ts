import { errorMessage, failedPrecondition } from '../../model/errors.js';
import { runPlan, together, type Step } from '../plan.js';
import type { VmRecord } from '../registry.js';
import { checkCapacity } from './checks.js';
import type { OpEnv } from './env.js';
import { prepareSteps, runSteps, settleCell, startLaunch, type Launch } from './launch.js';
import { RELEASED } from './release.js';

/** Started with -S: events are subscribed before the guest runs, then `cont`, pipelined behind the handshake. */
const runGuest: Step<Launch> = {
  name: 'run guest',
  async run(l) {
    const machine = l.machine!;
    const running = machine.run();
    running.catch(() => undefined);
    await machine.ready();
    await running;
  },
};

/** The files are checked again at every start, alongside the launch's own preparations. */
const checkFiles: Step<Launch> = { name: 'check boot files', run: (l) => l.env.storage.checkBootFiles(l.record.spec) };

const launchAndRun: readonly Step<Launch>[] = [...runSteps, runGuest, settleCell];
const startSteps: readonly Step<Launch>[] = [together('check and prepare', [checkFiles, ...prepareSteps]), ...launchAndRun];

export interface StartOptions {
  /**
   * The start of a CreateVm{start: true}: the create has just checked the boot files and images
   * by the same rules and made and owned the VM's files, for this spec, so the start does not do
   * it a second time.
   */
  preparedFor?: VmRecord['spec'];
}

/** StartVm: admit, Starting, then the plan; a failed plan is undone and the VM is Failed with the reason. */
export async function start(env: OpEnv, record: VmRecord, options: StartOptions = {}): Promise<void> {
  const { phase } = record.status;
  if (phase === 'Running' || phase === 'Paused') return;
  if (phase !== 'Pending' && phase !== 'Stopped' && phase !== 'Failed') {
    throw failedPrecondition(`VM ${record.id} is ${phase}; it can be started when Pending, Stopped or Failed`);
  }
  await forgetDeadMachine(env, record);
  checkCapacity(env, record.spec);
  env.vms.transition(record, 'Starting', 'start requested');
  const release = await admit(env, record);
  try {
    const prepared = options.preparedFor !== undefined && options.preparedFor === record.spec;
    await runPlan(prepared ? launchAndRun : startSteps, startLaunch(env, record), record.log);
  } catch (err) {
    record.log.error({ err }, 'start failed');
    env.vms.transition(record, 'Failed', `start failed: ${errorMessage(err)}`, RELEASED);
    throw err;
  } finally {
    release();
  }
  env.vms.transition(record, 'Running', 'started', { startedAt: env.clock.now().toISOString() });
}

/** A slot among the QEMU initialisations in flight; while it waits, the reason says its place. */
export async function admit(env: OpEnv, record: VmRecord): Promise<() => void> {
  if (!env.admission) return () => undefined;
  let queued = false;
  const release = await env.admission.enter((ahead) => {
    queued = true;
    env.vms.update(record, { reason: `queued (${ahead} ahead)` });
  });
  if (queued) env.vms.update(record, { reason: 'start requested' });
  return release;
}

/** A previous QEMU whose exit is queued behind this operation: forgotten if it is gone. */
async function forgetDeadMachine(env: OpEnv, record: VmRecord): Promise<void> {
  const machine = record.machine;
  if (!machine) return;
  if (await env.hypervisor.isAlive(machine.pid)) {
    throw failedPrecondition(`VM ${record.id} still has a QEMU process (pid ${machine.pid}); stop it first`);
  }
  record.machine = undefined;
}
