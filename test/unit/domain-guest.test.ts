import { describe, expect, it } from 'vitest';
import type { VmChange } from '../../src/model/events.js';
import type { GuestInfo } from '../../src/model/vm.js';
import { fakeDomain, specOf } from '../support/fake-ports.js';

const info = (over: Partial<GuestInfo> = {}): GuestInfo => ({
  agentConnected: true,
  osName: 'Debian GNU/Linux',
  osVersion: '12',
  kernelRelease: '6.1.0',
  hostname: 'a',
  interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:01', ipAddresses: ['10.0.0.5'] }],
  ...over,
});

describe('status.guest follows the guest agent', () => {
  it('a change is one MODIFIED event; the same report again is none; QEMU gone clears it', async () => {
    const d = fakeDomain();
    await d.manager.create(specOf('a'), true);
    const machine = d.hypervisor.machines.at(-1)!;
    const guests: (GuestInfo | undefined)[] = [];
    d.manager.on('change', (c: VmChange) => guests.push(c.vm.status.guest));

    // No agent yet: a lost-agent report before any connect changes nothing.
    machine.guestListener!({ ...info(), agentConnected: false, osName: '', osVersion: '', kernelRelease: '', hostname: '', interfaces: [] });
    expect(guests).toEqual([]);

    machine.guestListener!(info());
    machine.guestListener!(info());
    expect(guests).toEqual([info()]);
    machine.guestListener!(info({ hostname: 'renamed' }));
    expect(guests.at(-1)?.hostname).toBe('renamed');
    expect(d.manager.get('a').status.guest?.hostname).toBe('renamed');

    await d.manager.stop('a', 0, true);
    expect(d.manager.get('a').status.guest).toBeUndefined();
    const events = guests.length;
    // A late report of the QEMU that is gone is dropped.
    machine.guestListener!(info({ hostname: 'late' }));
    expect(guests).toHaveLength(events);
  });
});
