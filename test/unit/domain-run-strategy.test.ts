import { describe, expect, it } from 'vitest';
import type { RunStrategy } from '../../src/model/vm.js';
import { RESET_AFTER_RUNNING_MS, restartDelayMs, restartsSoFar, wantsRestart } from '../../src/vm/ops/run-strategy.js';
import { fakeDomain, phaseReached, specOf } from '../support/fake-ports.js';

/** Resolves once the VM has been launched `n` times and runs again. */
async function launchedTimes(d: ReturnType<typeof fakeDomain>, id: string, n: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (d.hypervisor.launches.length < n || d.manager.get(id).status.phase !== 'Running') {
    if (Date.now() > deadline) throw new Error(`${id}: ${d.hypervisor.launches.length} launches, phase ${d.manager.get(id).status.phase}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function running(strategy: RunStrategy) {
  const d = fakeDomain();
  await d.manager.create(specOf('web', { runStrategy: strategy }), true);
  return d;
}

describe('run strategies', () => {
  it('ALWAYS: a crash and a guest power-off both bring the VM back, counted', async () => {
    const d = await running('Always');
    d.hypervisor.machines[0]!.die();
    await launchedTimes(d, 'web', 2);
    expect(d.manager.get('web').status).toMatchObject({ restartCount: 1, nextRestartAt: undefined });
    d.hypervisor.machines[1]!.die({ guest: true, reason: 'guest-shutdown' });
    await phaseReached(d.manager, 'web', 'Stopped');
    // The second restart in a row waits 1 s.
    expect(Date.parse(d.manager.get('web').status.nextRestartAt!) - d.clock.now().getTime()).toBe(1000);
    await launchedTimes(d, 'web', 3);
    expect(d.manager.get('web').status.restartCount).toBe(2);
  });

  it('RERUN_ON_FAILURE: a guest panic is a failure and restarts; a clean power-off does not', async () => {
    const d = await running('RerunOnFailure');
    // QEMU reports a panic's shutdown as the guest's own.
    d.hypervisor.machines[0]!.die({ guest: true, reason: 'guest-panic' });
    await phaseReached(d.manager, 'web', 'Failed');
    expect(d.manager.get('web').status.reason).toBe('guest panicked');
    await launchedTimes(d, 'web', 2);
    d.hypervisor.machines[1]!.die({ guest: true, reason: 'guest-shutdown' });
    await phaseReached(d.manager, 'web', 'Stopped');
    expect(d.manager.get('web').status.nextRestartAt).toBeUndefined();
    expect(d.hypervisor.launches).toHaveLength(2);
  });

  it('MANUAL (the default) never restarts', async () => {
    const d = fakeDomain();
    await d.manager.create(specOf('web'), true);
    d.hypervisor.machines[0]!.die();
    await phaseReached(d.manager, 'web', 'Failed');
    expect(d.manager.get('web').status.nextRestartAt).toBeUndefined();
  });

  it('an explicit StopVm is respected under ALWAYS until StartVm', async () => {
    const d = await running('Always');
    await d.manager.stop('web', 1, false);
    expect(d.manager.get('web').status).toMatchObject({ phase: 'Stopped', stopRequested: true, nextRestartAt: undefined });
    expect(d.hypervisor.launches).toHaveLength(1);
    await d.manager.start('web');
    expect(d.manager.get('web').status).toMatchObject({ phase: 'Running', stopRequested: undefined });
    d.hypervisor.machines[1]!.die();
    await launchedTimes(d, 'web', 3);
  });

  it('a StopVm calls off a planned restart', async () => {
    const d = await running('Always');
    d.hypervisor.machines[0]!.die();
    await launchedTimes(d, 'web', 2);
    d.hypervisor.machines[1]!.die();
    await phaseReached(d.manager, 'web', 'Failed');
    expect(d.manager.get('web').status.nextRestartAt).toBeDefined();
    await d.manager.stop('web', 1, false);
    await new Promise((r) => setTimeout(r, 1300));
    expect(d.hypervisor.launches).toHaveLength(2);
    expect(d.manager.get('web').status).toMatchObject({ phase: 'Failed', nextRestartAt: undefined, stopRequested: true });
  });

  it('HALTED: StartVm (and create with start) is refused with the reason', async () => {
    const d = fakeDomain();
    await expect(d.manager.create(specOf('web', { runStrategy: 'Halted' }), true)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringContaining('HALTED') });
    await expect(d.manager.start('web')).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    expect(d.hypervisor.launches).toHaveLength(0);
  });
});

describe('restart policy', () => {
  it('wants a restart as KubeVirt names the strategies, never after StopVm', () => {
    expect(wantsRestart('Always', 'poweroff', false)).toBe(true);
    expect(wantsRestart('Always', 'failure', true)).toBe(false);
    expect(wantsRestart('RerunOnFailure', 'failure', false)).toBe(true);
    expect(wantsRestart('RerunOnFailure', 'poweroff', false)).toBe(false);
    expect(wantsRestart('Manual', 'failure', false)).toBe(false);
    expect(wantsRestart(undefined, 'failure', false)).toBe(false);
    expect(wantsRestart('Halted', 'failure', false)).toBe(false);
  });

  it('backs off from none to 1 s doubling to 5 min, and forgets after 10 minutes running', () => {
    expect([0, 1, 2, 3, 9, 10, 30].map(restartDelayMs)).toEqual([0, 1000, 2000, 4000, 256_000, 300_000, 300_000]);
    const now = new Date('2026-01-01T12:00:00Z');
    expect(restartsSoFar(5, new Date(now.getTime() - 1000).toISOString(), now)).toBe(5);
    expect(restartsSoFar(5, new Date(now.getTime() - RESET_AFTER_RUNNING_MS).toISOString(), now)).toBe(0);
    expect(restartsSoFar(undefined, undefined, now)).toBe(0);
  });
});
