import { describe, expect, it, vi } from 'vitest';
import type { Phase, VmStatus } from '../../src/model/vm.js';
import { fakeDomain, specOf } from '../support/fake-ports.js';

/** A domain whose store holds VM `id` with this status, as a vmlet that went down left it. */
function leftBehind(id: string, status: Partial<VmStatus> & { phase: Phase }) {
  const d = fakeDomain();
  const spec = specOf(id, { nics: [{ name: 'eth0', bridge: 'br0', mac: '' }] });
  const t = d.clock.now().toISOString();
  d.store.specs.set(id, spec);
  d.store.durable.set(id, { reason: '', pid: 0, nics: [], disks: [], accelerator: 'tcg', createdAt: t, lastTransitionAt: t, generation: 5, ...status });
  return d;
}

describe('reconcile after a vmlet restart', () => {
  it('adopts a QEMU that is alive and names its VM, with the phase QEMU reports', async () => {
    const d = leftBehind('vm', { phase: 'Running' });
    const pid = d.hypervisor.spawnOrphan('vm');
    d.store.durable.set('vm', { ...d.store.durable.get('vm')!, pid });
    d.hypervisor.adoptedRunState = 'paused';
    await d.manager.init();
    expect(d.manager.get('vm').status).toMatchObject({ phase: 'Paused', pid });
    expect(d.manager.record('vm').machine?.pid).toBe(pid);
    expect(d.hypervisor.killed).toEqual([]);
  });

  it('is done only once every live QEMU has answered for its state', async () => {
    const d = leftBehind('vm', { phase: 'Running' });
    const pid = d.hypervisor.spawnOrphan('vm');
    d.store.durable.set('vm', { ...d.store.durable.get('vm')!, pid });
    const t = d.clock.now().toISOString();
    d.store.specs.set('off', specOf('off'));
    d.store.durable.set('off', { phase: 'Stopped', reason: '', pid: 0, nics: [], disks: [], accelerator: 'tcg', createdAt: t, lastTransitionAt: t, generation: 1 });
    let answer!: () => void;
    d.hypervisor.adoptedRunStateGate = new Promise<void>((resolve) => (answer = resolve));
    let initDone = false;
    const init = d.manager.init().then(() => (initDone = true));
    await vi.waitFor(() => expect(d.manager.record('vm').machine?.pid).toBe(pid));
    expect(initDone).toBe(false);
    answer();
    await init;
    expect(d.manager.get('vm').status).toMatchObject({ phase: 'Running', pid });
  });

  it('marks a VM whose QEMU died while vmlet was down Failed and removes its TAPs', async () => {
    const tap = { name: 'eth0', tap: 'vml000000000099', mac: '02:00:00:00:00:01', bridge: 'br0', port: 0 };
    const d = leftBehind('vm', { phase: 'Running', pid: 4242, nics: [tap] });
    d.network.taps.set(tap.tap, tap);
    await d.manager.init();
    expect(d.manager.get('vm').status).toMatchObject({ phase: 'Failed', reason: 'QEMU (pid 4242) exited while vmlet was down', pid: 0, nics: [] });
    expect(d.network.taps.size).toBe(0);
  });

  it('kills an orphan QEMU of the run dir that no VM holds, and removes stray TAPs', async () => {
    const d = leftBehind('vm', { phase: 'Stopped' });
    const orphan = d.hypervisor.spawnOrphan('ghost');
    d.network.taps.set('vml0000000000aa', { name: 'x', tap: 'vml0000000000aa', mac: '', bridge: 'br0' });
    await d.manager.init();
    expect(d.hypervisor.killed).toEqual([orphan]);
    expect(d.network.taps.size).toBe(0);
    expect(d.manager.get('vm').status.phase).toBe('Stopped');
  });

  it('kills the QEMU of a start that never ran the guest (prelaunch) and fails the start', async () => {
    const d = leftBehind('vm', { phase: 'Starting' });
    const pid = d.hypervisor.spawnOrphan('vm');
    d.store.live.set('vm', { ...d.store.durable.get('vm')!, pid, generation: 6 });
    d.hypervisor.adoptedRunState = 'prelaunch';
    await d.manager.init();
    expect(d.manager.get('vm').status).toMatchObject({ phase: 'Failed', reason: 'start interrupted by a vmlet restart', pid: 0 });
    expect(d.hypervisor.killed).toEqual([pid]);
  });

  it('marks a VM whose QEMU does not answer QMP Failed without killing it', async () => {
    const d = leftBehind('vm', { phase: 'Running' });
    const pid = d.hypervisor.spawnOrphan('vm');
    d.store.durable.set('vm', { ...d.store.durable.get('vm')!, pid });
    d.hypervisor.unresponsive.add(pid);
    await d.manager.init();
    expect(d.manager.get('vm').status.phase).toBe('Failed');
    expect(d.manager.get('vm').status.reason).toMatch(/alive but QMP does not answer/);
    expect(d.hypervisor.processes.has(pid)).toBe(true);
  });

  it('finishes a delete cut short, even when its QEMU does not answer', async () => {
    const d = leftBehind('vm', { phase: 'Deleting' });
    const pid = d.hypervisor.spawnOrphan('vm');
    d.store.durable.set('vm', { ...d.store.durable.get('vm')!, pid });
    d.hypervisor.unresponsive.add(pid);
    await d.manager.init();
    expect(d.manager.has('vm')).toBe(false);
    expect(d.store.specs.has('vm')).toBe(false);
    expect(d.hypervisor.processes.has(pid)).toBe(false);
  });

  it('takes the newer of the live and durable status copies', async () => {
    const d = leftBehind('vm', { phase: 'Stopped' });
    d.store.live.set('vm', { ...d.store.durable.get('vm')!, phase: 'Pending', reason: 'newer', generation: 9 });
    await d.manager.init();
    expect(d.manager.get('vm').status.reason).toBe('newer');
  });
});
