import { failedPrecondition } from '../../model/errors.js';
import type { Machine } from '../ports.js';
import type { VmRecord } from '../registry.js';
import type { OpEnv } from './env.js';
import { RELEASED, releaseHost } from './release.js';
import { unwatchMachine } from './machine-watch.js';

/** How StopVm re-sends the ACPI power button: a guest still booting misses the first press. */
const POWERDOWN_INTERVAL_MS = 3000;
const QUIT_TIMEOUT_MS = 5000;

export interface StopOptions {
  graceSeconds: number;
  force: boolean;
}

/** StopVm: a no-op for a VM that is not running; refused during a migration. */
export async function stop(env: OpEnv, record: VmRecord, options: StopOptions): Promise<void> {
  const { phase, pid } = record.status;
  if (phase === 'Stopped' || phase === 'Pending' || (phase === 'Failed' && !pid)) return;
  if (phase === 'Migrating' || phase === 'Incoming') {
    throw failedPrecondition(`VM ${record.id} is ${phase}; cancel the migration first`);
  }
  await ensureStopped(env, record, options);
}

/**
 * Brings QEMU down: the ACPI power button, re-sent every few seconds, for the grace period; then
 * `quit`; then SIGKILL. A paused guest cannot see the power button, so it skips the grace. A VM
 * being deleted stays Deleting; any other ends Stopped.
 */
export async function ensureStopped(env: OpEnv, record: VmRecord, options: StopOptions): Promise<void> {
  const machine = record.machine;
  const pid = machine?.pid ?? record.status.pid;
  const wasPaused = record.status.phase === 'Paused';
  const deleting = record.status.phase === 'Deleting';
  if (!deleting) env.vms.transition(record, 'Stopping', options.force ? 'forced stop requested' : 'stop requested');
  let how = 'stopped';
  if (machine && !options.force && !wasPaused) how = await powerDown(env, record, machine, options.graceSeconds * 1000);
  if (machine && how !== 'powered off') how = await quit(env, machine);
  if (pid && (await env.hypervisor.isAlive(pid)) && (machine || (await env.hypervisor.isQemuOf(pid, record.id)))) {
    await env.hypervisor.kill(pid);
    how = 'killed';
  }
  unwatchMachine(record);
  await releaseHost(env, record, record.status.nics);
  const stopped = { ...RELEASED, stoppedAt: env.clock.now().toISOString() };
  if (deleting) env.vms.update(record, stopped);
  else env.vms.transition(record, 'Stopped', `stopped by request (${how})`, stopped);
}

/**
/**
 * The ACPI power button until the grace period ends, which a forced stop or delete of the same VM
 * cuts short (record.grace): they queue behind this operation, and must not wait up to an hour for
 * a guest that ignores ACPI. A guest that has not gone after a third of it, and whose guest agent
 * is connected, is also asked through the agent (once): a guest without acpid, or one that
 * ignores the button, still shuts down cleanly.
 */
async function powerDown(env: OpEnv, record: VmRecord, machine: Machine, graceMs: number): Promise<string> {
  const grace = new AbortController();
  record.grace = grace;
  const cut = new Promise<false>((resolve) => grace.signal.addEventListener('abort', () => resolve(false), { once: true }));
  const now = (): number => env.clock.now().getTime();
  const deadline = now() + graceMs;
  const agentAt = now() + graceMs / 3;
  let askedAgent = false;
  try {
    while (now() < deadline && !grace.signal.aborted) {
      if (!askedAgent && now() >= agentAt && record.status.guest?.agentConnected) {
        askedAgent = true;
        if (await Promise.race([machine.guestShutdown(), cut])) record.log.info('the guest ignored the power button; guest-shutdown sent through its agent');
      }
      if (grace.signal.aborted) break;
      try {
        // A QEMU that does not answer (stopped, hung) must not stretch the grace period.
        await Promise.race([machine.powerDown(Math.max(1, Math.min(POWERDOWN_INTERVAL_MS, deadline - now()))), cut]);
      } catch (err) {
        if (machine.closed) break;
        record.log.warn({ err }, 'system_powerdown failed');
      }
      if (grace.signal.aborted) break;
      if (await Promise.race([machine.waitExit(Math.max(0, Math.min(POWERDOWN_INTERVAL_MS, deadline - now()))), cut])) return 'powered off';
    }
  } finally {
    if (record.grace === grace) record.grace = undefined;
  }
  if (grace.signal.aborted) {
    record.log.info('grace period cut short by a forced stop or delete');
    return 'grace period cut short by a forced stop or delete';
  }
  return 'grace period expired';
}

/** `quit`, and at most QUIT_TIMEOUT_MS in all for QEMU to be gone, answer or not. */
async function quit(env: OpEnv, machine: Machine): Promise<string> {
  const deadline = env.clock.now().getTime() + QUIT_TIMEOUT_MS;
  if (!machine.closed) await machine.quit(QUIT_TIMEOUT_MS).catch(() => undefined);
  return (await machine.waitExit(Math.max(0, deadline - env.clock.now().getTime()))) ? 'quit' : 'quit timed out';
}
