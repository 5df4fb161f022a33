/**
 * Run strategies with real QEMUs: a QEMU killed with SIGSEGV comes back under ALWAYS, a guest
 * kernel panic (pvpanic) is a failure that RERUN_ON_FAILURE restarts, a clean power-off is not,
 * and a SIGSTOPped QEMU does not hold up a forced delete.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status as grpcStatus } from '@grpc/grpc-js';
import { TestDaemon } from '../support/daemon.js';
import { guestSpec, KERNEL, INITRD } from '../support/guest.js';
import { expectCode, rpc, watchVms } from '../support/rpc.js';
import { parseMetrics } from '../support/metrics-text.js';
import { qemuPidsOf } from '../support/processes.js';
import { isAlive, waitForExit } from '../../src/host/process.js';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

const runAtBoot = (id: string, script: string, runStrategy: string) =>
  guestSpec(id, { runStrategy: runStrategy as never, kernel: { kernelPath: KERNEL, initrdPath: INITRD, cmdline: `console=ttyS0 panic=-1 vmlet.run="${script}"` } });

describe('run strategies and crash detection', () => {
  let d: TestDaemon;
  let api: ReturnType<typeof rpc>;
  beforeAll(async () => {
    d = await TestDaemon.start();
    api = rpc(d.clients);
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('ALWAYS: kill -SEGV of QEMU is seen at once, FAILED with the signal, then RUNNING again', async () => {
    const vm = await api.create(guestSpec('segv-always', { runStrategy: 'RUN_STRATEGY_ALWAYS' as never }), true);
    const pid = vm.status!.pid;
    const events = watchVms(d.clients, { id: 'segv-always' });
    const killedAt = Date.now();
    process.kill(pid, 'SIGSEGV');
    const failed = await events.until((e) => e.vm?.status?.phase === 'PHASE_FAILED');
    expect(Date.now() - killedAt).toBeLessThan(5000);
    expect(failed.vm!.status!.reason).toMatch(/QEMU exited unexpectedly/);
    const back = await events.until((e) => e.vm?.status?.phase === 'PHASE_RUNNING' && e.vm.status.pid !== pid);
    expect(back.vm!.status!.restartCount).toBe(1);
    events.close();
    const metrics = parseMetrics(await (await fetch(`${d.httpAddress}/metrics`)).text());
    expect(metrics.find((m) => m.name === 'vmlet_vm_restarts_total' && m.labels.kind === 'failure')?.value).toBeGreaterThanOrEqual(1);
    // StopVm is respected whatever the strategy.
    expect((await api.stop('segv-always', 5, true)).status?.phase).toBe('PHASE_STOPPED');
    expect((await api.get('segv-always')).status).toMatchObject({ phase: 'PHASE_STOPPED', nextRestartAt: null });
    await api.delete('segv-always', true);
  });

  it('kill -SEGV under RERUN_ON_FAILURE restarts; under MANUAL the VM stays FAILED with no QEMU', async () => {
    const rerun = await api.create(guestSpec('segv-rerun', { runStrategy: 'RUN_STRATEGY_RERUN_ON_FAILURE' as never }), true);
    const manual = await api.create(guestSpec('segv-manual'), true);
    const rerunEvents = watchVms(d.clients, { id: 'segv-rerun' });
    const manualEvents = watchVms(d.clients, { id: 'segv-manual' });
    process.kill(rerun.status!.pid, 'SIGSEGV');
    process.kill(manual.status!.pid, 'SIGSEGV');
    const back = await rerunEvents.until((e) => e.vm?.status?.phase === 'PHASE_RUNNING' && e.vm.status.pid !== rerun.status!.pid);
    expect(back.vm!.status!.restartCount).toBe(1);
    const failed = await manualEvents.until((e) => e.vm?.status?.phase === 'PHASE_FAILED');
    expect(failed.vm!.status).toMatchObject({ pid: 0, nextRestartAt: null });
    rerunEvents.close();
    manualEvents.close();
    expect(await qemuPidsOf(['segv-manual'])).toEqual([]);
    await api.delete('segv-rerun', true);
    await api.delete('segv-manual', true);
  });

  it('RERUN_ON_FAILURE: a guest kernel panic is FAILED "guest panicked", then restarted', async () => {
    const events = watchVms(d.clients, { id: 'panicky' });
    await api.create(runAtBoot('panicky', 'echo c > /proc/sysrq-trigger', 'RUN_STRATEGY_RERUN_ON_FAILURE'), true);
    const panicked = await events.until((e) => e.vm?.status?.phase === 'PHASE_FAILED', 120_000);
    expect(panicked.vm!.status!.reason).toBe('guest panicked');
    await events.until((e) => (e.vm?.status?.restartCount ?? 0) >= 1 && e.vm?.status?.phase === 'PHASE_RUNNING', 60_000);
    events.close();
    const metrics = parseMetrics(await (await fetch(`${d.httpAddress}/metrics`)).text());
    expect(metrics.find((m) => m.name === 'kubevirt_vmi_guest_os_panic_total' && m.labels.name === 'panicky')?.value).toBeGreaterThanOrEqual(1);
    await api.delete('panicky', true);
    expect(await qemuPidsOf(['panicky'])).toEqual([]);
  });

  it('RERUN_ON_FAILURE: a clean guest power-off stays STOPPED; HALTED refuses StartVm', async () => {
    const events = watchVms(d.clients, { id: 'quitter' });
    await api.create(runAtBoot('quitter', 'poweroff -f', 'RUN_STRATEGY_RERUN_ON_FAILURE'), true);
    const stopped = await events.until((e) => e.vm?.status?.phase === 'PHASE_STOPPED', 120_000);
    expect(stopped.vm!.status).toMatchObject({ reason: 'guest powered off', nextRestartAt: null });
    events.close();
    await api.delete('quitter', true);

    await api.create(guestSpec('halted', { runStrategy: 'RUN_STRATEGY_HALTED' as never }));
    expect(await expectCode(() => api.start('halted'), grpcStatus.FAILED_PRECONDITION)).toContain('HALTED');
    await api.delete('halted');
  });

  it('a QEMU stopped with SIGSTOP does not hold up a forced delete', async () => {
    const vm = await api.create(guestSpec('frozen'), true);
    const pid = vm.status!.pid;
    process.kill(pid, 'SIGSTOP');
    const t0 = Date.now();
    await api.delete('frozen', true);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(await isAlive(pid)).toBe(false);
  });

  it('a node reboot (daemon down, every QEMU killed, run dir emptied): ALWAYS comes back, MANUAL stays down', async () => {
    const always = await api.create(guestSpec('boot-always', { runStrategy: 'RUN_STRATEGY_ALWAYS' as never }), true);
    const manual = await api.create(guestSpec('boot-manual'), true);
    await d.stop();
    for (const pid of [always.status!.pid, manual.status!.pid]) {
      process.kill(pid, 'SIGKILL');
      expect(await waitForExit(pid, 10_000)).toBe(true);
    }
    for (const entry of await readdir(d.runDir)) await rm(join(d.runDir, entry), { recursive: true, force: true });
    await d.restart();
    api = rpc(d.clients);
    const events = watchVms(d.clients, { id: 'boot-always' });
    const back = await events.until((e) => e.vm?.status?.phase === 'PHASE_RUNNING', 60_000);
    events.close();
    expect(back.vm!.status!.restartCount).toBe(1);
    expect((await api.get('boot-manual')).status).toMatchObject({ phase: 'PHASE_FAILED', nextRestartAt: null });
    await api.delete('boot-always', true);
    await api.delete('boot-manual', true);
  });
});
