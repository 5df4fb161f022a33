import type { MachineEvent } from '../../model/machine.js';
import type { Machine } from '../ports.js';
import type { VmRecord } from '../registry.js';
import type { OpEnv } from './env.js';
import { RELEASED, releaseHost } from './release.js';
import { followGuest } from './guest-info.js';

/**
 * Makes `machine` the VM's QEMU: its events keep the phase true between operations, and its exit
 * outside an operation (guest power-off, a crash) is handled in the VM's queue.
 */
export function watchMachine(env: OpEnv, record: VmRecord, machine: Machine): void {
  record.machine = machine;
  machine.onEvent((e) => {
    if (record.machine === machine) onEvent(env, record, e);
  });
  void machine.exited.then(() => record.queue.run(() => onExit(env, record, machine)));
  // An incoming QEMU reads no guest agent input before the move commits: its agent is followed from then on.
  if (record.status.phase !== 'Incoming') followGuest(env, record, machine);
}

/** Lets go of the VM's QEMU without affecting it; returns it. */
export function unwatchMachine(record: VmRecord): Machine | undefined {
  const machine = record.machine;
  record.machine = undefined;
  machine?.detach();
  return machine;
}

function onEvent(env: OpEnv, record: VmRecord, e: MachineEvent): void {
  const { phase } = record.status;
  switch (e.kind) {
    case 'paused':
      if (phase === 'Running') env.vms.transition(record, 'Paused', 'vCPUs stopped');
      break;
    case 'resumed':
      if (phase === 'Paused') env.vms.transition(record, 'Running', 'vCPUs resumed');
      break;
    case 'reset':
      record.log.info({ guest: e.guest }, 'guest reset');
      break;
    case 'io-error':
      record.log.warn({ data: e.detail }, 'block I/O error');
      break;
    case 'panicked':
      record.log.error({ data: e.detail }, 'guest panicked');
      env.vms.emit('panic', { id: record.id, detail: e.detail });
      break;
    case 'shutdown':
      record.log.info({ guest: e.guest, reason: e.reason }, 'QEMU is shutting down');
      break;
  }
}

/** The monitor closed outside of a stop: the guest powered off, or QEMU died. */
async function onExit(env: OpEnv, record: VmRecord, machine: Machine): Promise<void> {
  if (record.machine !== machine) return;
  record.machine = undefined;
  await machine.waitExit(5000);
  // Read before releaseHost removes the cell, and its count with it.
  const cell = record.status.cgroup;
  const oomKilled = cell && env.cells ? (await env.cells.oomKills(cell).catch(() => 0)) > 0 : false;
  await releaseHost(env, record, record.status.nics);
  const extra = { ...RELEASED, stoppedAt: env.clock.now().toISOString() };
  const shutdown = machine.shutdown;
  if (oomKilled) {
    env.vms.transition(record, 'Failed', `QEMU was OOM-killed in its cgroup ${cell} (memory limit of the VM reached)`, extra);
  } else if (shutdown?.reason === 'guest-panic') {
    env.vms.transition(record, 'Failed', 'guest panicked', extra);
  } else if (shutdown?.guest) {
    env.vms.transition(record, 'Stopped', 'guest powered off', extra);
  } else if (shutdown) {
    env.vms.transition(record, 'Stopped', `QEMU shut down (${shutdown.reason})`, extra);
  } else {
    const tail = await env.hypervisor.logTail(record.paths, 500);
    env.vms.transition(record, 'Failed', `QEMU exited unexpectedly${tail ? `: ${tail}` : ''}`, extra);
  }
  // Only a power-off the guest asked for is clean; a kill, a crash or a panic is a failure.
  env.afterExit?.(record, shutdown?.guest && shutdown.reason !== 'guest-panic' && !oomKilled ? 'poweroff' : 'failure');
}
