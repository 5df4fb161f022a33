import { describe, expect, it } from 'vitest';
import { VmletError } from '../../src/model/errors.js';
import type { VmChange } from '../../src/model/events.js';
import { fakeDomain, phaseReached, specOf } from '../support/fake-ports.js';

const withNic = specOf('web', { nics: [{ name: 'eth0', bridge: 'br0', mac: '' }] });

describe('start', () => {
  it('plugs each NIC on its root port, launches QEMU, records it, runs the guest', async () => {
    const d = fakeDomain();
    const phases: string[] = [];
    d.manager.on('change', (c: VmChange) => phases.push(c.vm.status.phase));
    const vm = await d.manager.create(withNic, true);

    expect(vm.status.phase).toBe('Running');
    expect(phases).toEqual(['Pending', 'Starting', 'Starting', 'Running']);
    const [launch] = d.hypervisor.launches;
    expect(launch!.pciPorts).toBe(1 + 4);
    expect(launch!.nicPorts).toEqual({ eth0: 0 });
    expect(vm.status.pid).toBe(d.hypervisor.machines[0]!.pid);
    expect(vm.status.nics.map((n) => n.tap)).toEqual([...d.network.taps.keys()]);
    expect(d.hypervisor.machines[0]!.calls).toEqual(['run', 'ready']);
    // Both copies of the status say Running.
    expect(d.store.live.get('web')!.phase).toBe('Running');
    await d.manager.record('web').saving;
    expect(d.store.durable.get('web')!.phase).toBe('Running');
  });

  it('undoes the TAPs when QEMU cannot be launched, and the VM is Failed with the reason', async () => {
    const d = fakeDomain();
    await d.manager.create(withNic, false);
    d.hypervisor.failLaunch = new VmletError('UNAVAILABLE', 'cannot start qemu-system-x86_64: no such file');
    await expect(d.manager.start('web')).rejects.toThrow(/no such file/);
    const { status } = d.manager.get('web');
    expect(status.phase).toBe('Failed');
    expect(status.reason).toMatch(/^start failed: cannot start qemu/);
    expect(status).toMatchObject({ pid: 0, nics: [] });
    expect(d.network.taps.size).toBe(0);
  });

  it('kills the QEMU and undoes the TAPs when the handshake fails', async () => {
    const d = fakeDomain();
    d.hypervisor.prepare = (m) => (m.readyError = new VmletError('FAILED_PRECONDITION', 'QEMU exited during start: bad option'));
    await d.manager.create(withNic, false);
    await expect(d.manager.start('web')).rejects.toThrow(/bad option/);
    const [machine] = d.hypervisor.machines;
    expect(d.hypervisor.killed).toEqual([machine!.pid]);
    expect(d.hypervisor.processes.size).toBe(0);
    expect(d.network.taps.size).toBe(0);
    expect(d.manager.get('web').status.phase).toBe('Failed');
    expect(d.manager.record('web').machine).toBeUndefined();
  });

  it('refuses a start that would exceed the node, before anything is made', async () => {
    const d = fakeDomain({ capacity: { capacity: { cpus: 1, memoryMib: 4096 }, reserved: { cpus: 0, memoryMib: 0 }, cpuOvercommit: 1, memoryOvercommit: 1 } });
    await d.manager.create(specOf('a'), true);
    await d.manager.create(specOf('b'), false);
    await expect(d.manager.start('b')).rejects.toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
    expect(d.manager.get('b').status.phase).toBe('Pending');
    expect(d.hypervisor.launches).toHaveLength(1);
  });

  it('a guest that powers off is Stopped and its TAPs go; a QEMU that dies is Failed with its log', async () => {
    const d = fakeDomain();
    await d.manager.create(withNic, true);
    d.hypervisor.machines[0]!.die({ guest: true, reason: 'guest-shutdown' });
    await phaseReached(d.manager, 'web', 'Stopped');
    expect(d.manager.get('web').status).toMatchObject({ phase: 'Stopped', reason: 'guest powered off', pid: 0 });
    expect(d.network.taps.size).toBe(0);

    await d.manager.start('web');
    d.hypervisor.machines[1]!.die();
    await phaseReached(d.manager, 'web', 'Failed');
    expect(d.manager.get('web').status).toMatchObject({ phase: 'Failed', reason: 'QEMU exited unexpectedly: qemu: fake log' });
  });
});

describe('stop', () => {
  it('a guest that answers the power button stops within the grace period', async () => {
    const d = fakeDomain();
    await d.manager.create(specOf('vm'), true);
    const vm = await d.manager.stop('vm', 30, false);
    expect(vm.status).toMatchObject({ phase: 'Stopped', reason: 'stopped by request (powered off)', pid: 0 });
    expect(d.hypervisor.machines[0]!.calls.filter((c) => c === 'powerDown')).toHaveLength(1);
  });

  it('re-sends the ACPI power button while the guest has not reacted', async () => {
    const d = fakeDomain();
    d.hypervisor.prepare = (m) => (m.guest = { powerOffAfterPresses: 3 });
    await d.manager.create(specOf('vm'), true);
    const vm = await d.manager.stop('vm', 30, false);
    expect(vm.status.reason).toBe('stopped by request (powered off)');
    expect(d.hypervisor.machines[0]!.calls.filter((c) => c === 'powerDown')).toHaveLength(3);
  });

  it('a guest that ignores ACPI but runs an agent is shut down through it after a third of the grace period', async () => {
    const d = fakeDomain();
    d.hypervisor.prepare = (m) => (m.guest = 'ignores-acpi');
    await d.manager.create(specOf('a'), true);
    const m = d.hypervisor.machines[0]!;
    m.agentConnected = true;
    m.guestListener!({ agentConnected: true, osName: '', osVersion: '', kernelRelease: '', hostname: 'a', interfaces: [] });
    const began = d.clock.now().getTime();
    const a = await d.manager.stop('a', 30, false);
    expect(a.status.reason).toBe('stopped by request (powered off)');
    expect(m.calls.filter((c) => c === 'guestShutdown')).toHaveLength(1);
    expect(m.calls.indexOf('guestShutdown')).toBeGreaterThan(m.calls.indexOf('powerDown'));
    expect(d.clock.now().getTime() - began).toBeGreaterThanOrEqual(10_000);
    expect(d.clock.now().getTime() - began).toBeLessThan(30_000);
  });

  it('without an agent, the guest agent is never asked', async () => {
    const d = fakeDomain();
    d.hypervisor.prepare = (m) => (m.guest = 'ignores-acpi');
    await d.manager.create(specOf('a'), true);
    await d.manager.stop('a', 10, false);
    expect(d.hypervisor.machines[0]!.calls).not.toContain('guestShutdown');
  });

  it('quits QEMU once the grace period is over, and kills a QEMU that answers nothing', async () => {
    const d = fakeDomain();
    d.hypervisor.prepare = (m) => (m.guest = 'ignores-acpi');
    await d.manager.create(specOf('a'), true);
    const a = await d.manager.stop('a', 10, false);
    expect(a.status.reason).toBe('stopped by request (quit)');
    const pressed = d.hypervisor.machines[0]!.calls.filter((c) => c === 'powerDown').length;
    expect(pressed).toBeGreaterThanOrEqual(3);
    expect(pressed).toBeLessThanOrEqual(5);

    d.hypervisor.prepare = (m) => (m.guest = 'hung');
    await d.manager.create(specOf('b'), false);
    d.hypervisor.prepare = () => undefined;
    await d.manager.start('b').catch(() => undefined);
    const b = d.hypervisor.machines[1]!;
    b.guest = 'hung';
    const stopped = await d.manager.stop('b', 2, false);
    expect(stopped.status.reason).toBe('stopped by request (killed)');
    expect(d.hypervisor.killed).toContain(b.pid);
  });

  it('with force skips the power button', async () => {
    const d = fakeDomain();
    await d.manager.create(specOf('vm'), true);
    await d.manager.stop('vm', 30, true);
    expect(d.hypervisor.machines[0]!.calls).not.toContain('powerDown');
    expect(d.manager.get('vm').status.reason).toBe('stopped by request (quit)');
  });
});

describe('delete', () => {
  it('stops the VM and removes its TAPs and files; watchers see DELETED', async () => {
    const d = fakeDomain();
    await d.manager.create(withNic, true);
    const events: string[] = [];
    d.manager.on('change', (c: VmChange) => events.push(`${c.type} ${c.vm.status.phase}`));
    await d.manager.delete('web', false);
    expect(d.manager.has('web')).toBe(false);
    expect(d.store.specs.has('web')).toBe(false);
    expect(d.network.taps.size).toBe(0);
    expect(d.hypervisor.processes.size).toBe(0);
    expect(events[0]).toBe('MODIFIED Deleting');
    expect(events.at(-1)).toBe('DELETED Deleting');
  });

  it('a create whose state cannot be written leaves no VM, QEMU or TAP', async () => {
    const d = fakeDomain();
    d.store.failCreate = new VmletError('INTERNAL', 'disk full');
    await expect(d.manager.create(withNic, true)).rejects.toThrow(/disk full/);
    expect(d.manager.has('web')).toBe(false);
    expect(d.hypervisor.processes.size).toBe(0);
    expect(d.network.taps.size).toBe(0);
  });
});

describe('NIC hotplug', () => {
  it('attaches on a free root port and detaches through the guest', async () => {
    const d = fakeDomain();
    await d.manager.create(withNic, true);
    const attached = await d.manager.attachNic('web', { name: 'eth1', bridge: 'br0', mac: '' });
    expect(attached.spec.nics.map((n) => n.name)).toEqual(['eth0', 'eth1']);
    expect(attached.status.nics.find((n) => n.name === 'eth1')!.port).toBe(1);
    const machine = d.hypervisor.machines[0]!;
    expect(machine.calls).toContain('plugNic eth1@1');
    expect(d.network.taps.size).toBe(2);

    const detached = await d.manager.detachNic('web', 'eth1');
    expect(machine.calls).toContain('unplugNic eth1');
    expect(detached.spec.nics.map((n) => n.name)).toEqual(['eth0']);
    expect(d.network.taps.size).toBe(1);
    expect(d.store.specs.get('web')!.nics).toHaveLength(1);
  });

  it('a device QEMU refuses leaves no TAP and the spec unchanged', async () => {
    const d = fakeDomain();
    await d.manager.create(withNic, true);
    d.hypervisor.machines[0]!.failOn.set('plugNic eth1@1', new VmletError('FAILED_PRECONDITION', 'Bus hotplug-1 does not support hotplugging'));
    await expect(d.manager.attachNic('web', { name: 'eth1', bridge: 'br0', mac: '' })).rejects.toThrow(/hotplugging/);
    expect(d.network.taps.size).toBe(1);
    expect(d.manager.get('web').spec.nics).toHaveLength(1);
  });

  it('on a stopped VM only the spec changes', async () => {
    const d = fakeDomain();
    await d.manager.create(withNic, false);
    const vm = await d.manager.attachNic('web', { name: 'eth1', bridge: 'br0', mac: '' });
    expect(vm.spec.nics).toHaveLength(2);
    expect(d.network.taps.size).toBe(0);
    expect(vm.status.reason).toMatch(/plugged in at the next start/);
  });
});
