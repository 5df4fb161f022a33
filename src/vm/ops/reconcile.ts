import { errorMessage } from '../../model/errors.js';
import type { Phase } from '../../model/vm.js';
import type { RunState } from '../../model/machine.js';
import type { VmRecord } from '../registry.js';
import type { OpEnv } from './env.js';
import { RELEASED, releaseHost } from './release.js';
import { unwatchMachine, watchMachine } from './machine-watch.js';
import { FORCE, retire } from './delete.js';

/** Live migration plugs in here: a VM with a migration marker is resolved by it. */
export interface MigrationHooks {
  /** Called in the VM's queue at startup; the machine is watched when QEMU is alive (runState set). */
  reconcile(record: VmRecord, runState: RunState | undefined): Promise<void>;
}

const HELD_PHASES = new Set<Phase>(['Starting', 'Running', 'Paused', 'Stopping', 'Migrating', 'Incoming']);

/** QEMU's run states → phases, for adoption. */
function phaseOfRunState(state: RunState): Phase {
  switch (state) {
    case 'running':
      return 'Running';
    case 'inmigrate':
      return 'Incoming';
    case 'postmigrate':
    case 'finish-migrate':
      return 'Migrating';
    default:
      return 'Paused';
  }
}

/** A vmlet cut short while QEMU initialised may have left its cell at the start-up weight. */
async function settleAdopted(env: OpEnv, record: VmRecord): Promise<void> {
  const cell = record.status.cgroup;
  if (!cell || !env.cells) return;
  await env.cells.settle(cell, record.spec).catch((err: unknown) => record.log.warn({ err, cgroup: cell }, 'could not set the CPU weight of the VM cgroup'));
}

/**
 * After a vmlet restart: adopt the QEMU that is still alive, or record why there is none, and
 * finish a delete that was cut short. Never kills a live guest, except the QEMU of a start that
 * never ran it.
 */
export async function reconcile(env: OpEnv, record: VmRecord, hooks: MigrationHooks | undefined): Promise<void> {
  const { status } = record;
  const pid = status.pid;
  if (pid && (await env.hypervisor.isQemuOf(pid, record.id))) {
    let runState: RunState;
    try {
      const machine = await env.hypervisor.adopt(pid, record.paths);
      watchMachine(env, record, machine);
      runState = await machine.runState();
    } catch (err) {
      unwatchMachine(record);
      if (status.phase === 'Starting') return failInterruptedStart(env, record, pid);
      if (status.phase === 'Deleting') {
        record.log.warn({ err, pid }, 'the QEMU of a VM being deleted does not answer QMP; killing it');
        return finishDelete(env, record);
      }
      record.log.error({ err, pid }, 'QEMU is alive but QMP does not answer');
      env.vms.transition(record, 'Failed', `QEMU pid ${pid} is alive but QMP does not answer: ${errorMessage(err)}; stop or delete the VM to kill it`);
      return;
    }
    // QEMU runs with -S: "prelaunch" means `cont` never came, so the guest never ran. Any other
    // state means the start got through (RUNNING is answered before it is on disk).
    if (status.phase === 'Starting' && runState === 'prelaunch') return failInterruptedStart(env, record, pid);
    await settleAdopted(env, record);
    if (status.migration && hooks) return hooks.reconcile(record, runState);
    const phase = status.phase === 'Deleting' ? 'Deleting' : phaseOfRunState(runState);
    record.log.info({ pid, runState }, 'adopted running QEMU');
    if (phase !== status.phase) env.vms.transition(record, phase, `adopted after vmlet restart (QEMU ${runState})`);
  } else if (status.migration && hooks) {
    return hooks.reconcile(record, undefined);
  } else if (pid || HELD_PHASES.has(status.phase)) {
    await releaseHost(env, record, status.nics);
    // Starting without a pid: the start was cut short before QEMU was recorded (a QEMU it
    // launched is an orphan of the run dir, killed once every VM is reconciled). With a pid the
    // start may have finished (RUNNING is answered before its status is on disk): QEMU is gone.
    const wasStopping = status.phase === 'Stopping';
    const reason = wasStopping
      ? 'stopped while vmlet was down'
      : status.phase === 'Starting' && !pid
        ? 'start interrupted by a vmlet restart'
        : `QEMU (pid ${pid}) exited while vmlet was down`;
    if (status.phase === 'Deleting') env.vms.update(record, RELEASED);
    else env.vms.transition(record, wasStopping ? 'Stopped' : 'Failed', reason, RELEASED);
    // A node reboot: the run strategy brings the VM back, one start at a time.
    if (!wasStopping && status.phase !== 'Deleting') env.afterExit?.(record, 'failure', { serial: true });
  } else if (status.nextRestartAt && !status.stopRequested) {
    // A restart was planned when vmlet went down: plan it again.
    env.afterExit?.(record, 'failure', { serial: true });
  }
  if (record.status.phase === 'Deleting') await finishDelete(env, record);
}

/** vmlet went down before the start finished: the guest never ran; the start failed. */
async function failInterruptedStart(env: OpEnv, record: VmRecord, pid: number): Promise<void> {
  unwatchMachine(record);
  record.log.warn({ pid }, 'killing the QEMU of a start interrupted by a vmlet restart');
  await env.hypervisor.kill(pid);
  await releaseHost(env, record, record.status.nics);
  env.vms.transition(record, 'Failed', 'start interrupted by a vmlet restart', RELEASED);
}

async function finishDelete(env: OpEnv, record: VmRecord): Promise<void> {
  record.log.info('finishing a delete interrupted by a vmlet restart');
  await retire(env, record, 'deletion requested', FORCE);
}
